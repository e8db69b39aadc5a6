"""Concurrent HTTP transfers into one running node: events per commit and transfers/s.

A node is started in a thread with its own event loop (data dir in a temp dir, file SQLite);
N clients on this thread's loop POST `/api/v1/transfers` (0.1 credits each to fresh node ids)
until `--transfers` are done. Each client count runs twice in the same process:

* `single-writer`: appends on the node's one writer thread, as before group commit reached
  the node (the baseline: `NodeAPI.appender` set to `NodeAPI.writer`);
* `append-pool`: appends on the append pool (`NodeAPI.run_append`), where overlapping calls
  meet in the ledger's group commit (ledger/commit.py).

Events per commit = events stored / commits (`GroupCommit.groups`) over the row; "in commit"
is the share of the row's wall time spent inside the store's write of a group (what group
commit can save: with WAL and synchronous=NORMAL a commit does not fsync).

    python bench/node_append_bench.py --transfers 2000 --clients 1 8 64
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger_net.ledger.identity import Identity  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.main import ComputeNetwork  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.network.client import PeerClient  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.network.protocol import API  # noqa: E402 -- after sys.path gets this checkout


class Node:
    """A node served from a thread with its own loop (the clients' loop stays apart)."""

    def __init__(self, data_dir: Path) -> None:
        self.network = ComputeNetwork(data_dir=data_dir, host="127.0.0.1", port=0, log_level="WARNING",
                                      initial_credits=5000.0)
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.network.start())
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.network.stop())

    def start(self) -> Node:
        self._thread.start()
        if not self._ready.wait(60):
            raise TimeoutError("node did not start")
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(60)


async def row(node: Node, clients: int, transfers: int, pooled: bool) -> dict[str, Any]:
    server, ledger = node.network.server, node.network.ledger
    assert server is not None and server.api is not None and ledger is not None
    api = server.api
    pool = api.appender
    if not pooled:
        api.appender = api.writer
    targets = [Identity.generate().node_id for _ in range(min(transfers, 256))]
    left = transfers
    groups, offset = ledger._group.groups, ledger.store.last_offset()
    write, in_commit = ledger._group._write, [0.0]

    def timed_write(*a: Any) -> list[int]:  # the share of the row spent storing groups
        t = time.perf_counter()
        try:
            return write(*a)
        finally:
            in_commit[0] += time.perf_counter() - t

    ledger._group._write = timed_write
    try:
        async with PeerClient.local(server.url or "", node.network.data_dir) as client:
            async def worker(k: int) -> None:
                nonlocal left
                while left > 0:
                    left -= 1
                    await client.request("POST", f"{API}/transfers", body={"to": targets[left % len(targets)],
                                                                           "amount": "0.1"})

            start = time.perf_counter()
            await asyncio.gather(*(worker(k) for k in range(clients)))
            elapsed = time.perf_counter() - start
    finally:
        api.appender = pool
        ledger._group._write = write
    events = ledger.store.last_offset() - offset
    commits = max(1, ledger._group.groups - groups)
    return {"clients": clients, "mode": "append-pool" if pooled else "single-writer", "events": events,
            "per_commit": events / commits, "rate": transfers / elapsed, "commit_share": in_commit[0] / elapsed}


async def main_async(node: Node, clients: list[int], transfers: int) -> None:
    await row(node, 8, min(transfers, 300), pooled=True)  # warm-up (connections, caches), not printed
    print(f"{'clients':>7}  {'mode':<13}  {'events':>6}  {'events/commit':>13}  {'transfers/s':>11}  "
          f"{'in commit':>9}  vs single-writer")
    for n in clients:
        base = await row(node, n, transfers, pooled=False)
        pooled = await row(node, n, transfers, pooled=True)
        for r in (base, pooled):
            print(f"{r['clients']:>7}  {r['mode']:<13}  {r['events']:>6}  {r['per_commit']:>13.2f}  "
                  f"{r['rate']:>11.0f}  {r['commit_share']:>9.0%}  {r['rate'] / base['rate']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--transfers", type=int, default=2000, help="transfers per row")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="node-append-bench-") as tmp:
        node = Node(Path(tmp) / "node").start()
        try:
            asyncio.run(main_async(node, args.clients, args.transfers))
        finally:
            node.stop()


if __name__ == "__main__":
    main()
