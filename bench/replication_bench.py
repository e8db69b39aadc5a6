"""Replication benchmark: events/s copied from one node to a fresh one over loopback
HTTP (every event parsed, hash-checked, signature-verified, rule-checked, stored and
projected), feed read events/s (HTTP + JSON only), and the raw single-thread PyNaCl
verify rate measured in the same run, with the ratio replication / verify.

    pip install -e .                             # nothing beyond the package itself
    python bench/replication_bench.py            # 100,000 events
    python bench/replication_bench.py --quick    # 10,000 events

Goal (issue 13): replication >= 0.9 x the single-thread verify rate: the receiver verifies
on every core (the next feed page on the ledger's pool while the current one is written).
The machine is shared and noisy, so the replication is repeated (`--repeat`, into a fresh
node each time) and the best trial is kept; the verify rate is measured before every trial
and the best of those is the baseline, so a noisy moment cannot flatter the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import nacl.signing

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger_net.ledger.events import Event  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.ledger.identity import Identity  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.network import transfer  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.network.client import PeerClient  # noqa: E402 -- after sys.path gets this checkout
from ledger_net.network.server import NodeServer, open_local  # noqa: E402 -- after sys.path gets this checkout

GOAL = 0.9  # replication / single-thread verify (issue 13)


def build_source(data_dir: Path, count: int) -> tuple[object, object]:
    """A node whose log holds `count` events: mints to a few accounts and their receipts."""
    ledger, runner = open_local(data_dir, flush_every=50_000)
    ledger.create_network("bench")
    others = [Identity.generate().node_id for _ in range(8)]
    made, batch = 1, 1000
    i = 0
    while made < count:
        items = []
        for _ in range(min(batch, count - made)):
            to = others[i % len(others)] if i % 4 else ledger.node_id
            items.append(("credit.minted", {"to": to, "amount": 1 + i % 1000, "reason": f"bench {i}"}, ()))
            i += 1
        made += len(ledger.append_batch(items))
    runner.flush()
    return ledger, runner


def verify_rate(events: list[Event]) -> float:
    """Raw PyNaCl verifies per second on one thread (the same digests and signatures)."""
    keys = {e.author: nacl.signing.VerifyKey(bytes.fromhex(e.author)) for e in events}
    items = [(keys[e.author], bytes.fromhex(e.hash), e.sig) for e in events]
    start = time.perf_counter()
    for key, digest, sig in items:
        key.verify(digest, sig)
    return len(items) / (time.perf_counter() - start)


async def serve_source(data_dir: Path, count: int) -> None:
    """Child process: build the source node, serve it, print its facts, run until stdin closes."""
    t0 = time.perf_counter()
    ledger, runner = build_source(data_dir, count)
    build_s = time.perf_counter() - t0
    source = NodeServer(ledger, runner, sync_interval=3600)
    await source.start()
    print(f"{source.url} {ledger.store.count()} {runner.state_hash()} {build_s:.3f}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await source.stop()
    ledger.close()


async def run(count: int, page: int, lanes: int = 1, repeat: int = 3) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    # The source node is another process, as on a network: its serving does not share our GIL.
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve-source", str(root / "source"), "--events", str(count),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert child.stdout is not None and child.stdin is not None
    line = (await asyncio.wait_for(child.stdout.readline(), 1800)).decode().split()
    url, total, source_hash, build_s = line[0], int(line[1]), line[2], float(line[3])
    try:
        async with PeerClient(url, timeout=60) as client:
            # raw verify rate on the same signatures, in this process
            sample_items = (await client.feed(0, min(total, 5000)))["events"]
            sample = [Event.from_json(item) for item in sample_items]
            while len(sample) < 20_000:
                sample = sample + sample
            sample = sample[:20_000]
            verify = verify_rate(sample)
            # feed read: HTTP + JSON only
            start = time.perf_counter()
            after, read = 0, 0
            while True:
                answer = await client.feed(after, page)
                if not answer["events"]:
                    break
                read += len(answer["events"])
                after = answer["next"]
            feed_rate = read / (time.perf_counter() - start)

        # replication into a fresh node (with its projections), driven round by round
        trials: list[tuple[float, float]] = []  # (wall s, CPU s)
        same = True
        for trial in range(repeat):
            verify = max(verify, verify_rate(sample))
            dst_ledger, dst_runner = open_local(root / f"fresh{trial}", flush_every=50_000)
            fresh = NodeServer(dst_ledger, dst_runner, seeds=[url], enable_sync=False, page_size=page,
                               round_budget=count + 1, bulk_lanes=lanes)
            await fresh.start()
            start, cpu0 = time.perf_counter(), time.process_time()
            deadline = start + 3600
            while dst_ledger.store.count() < total and time.perf_counter() < deadline:
                await fresh.sync_once()
            trials.append((time.perf_counter() - start, time.process_time() - cpu0))
            assert dst_ledger.store.count() == total, (dst_ledger.store.count(), total)
            same = same and dst_runner.state_hash() == source_hash
            await fresh.stop()
            dst_ledger.close()
        verify = max(verify, verify_rate(sample))
    finally:
        child.stdin.close()
        await asyncio.wait_for(child.wait(), 60)
    repl_s, repl_cpu = min(trials)
    repl_rate = total / repl_s
    return {"events": total, "build_s": build_s, "verify_per_s": verify, "feed_read_per_s": feed_rate,
            "replication_per_s": repl_rate, "replication_s": repl_s, "ratio": repl_rate / verify,
            "state_hash_equal": same, "cpus": os.cpu_count() or 0, "load": os.getloadavg()[0],
            "replication_cpu_s": repl_cpu, "trials_per_s": [total / w for w, _ in trials]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 events instead of 100,000")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--page", type=int, default=2000, help="feed page size")
    parser.add_argument("--lanes", type=int, default=1, help="feed pages ingested at once")
    parser.add_argument("--repeat", type=int, default=3, help="replications into fresh nodes (best kept)")
    parser.add_argument("--checks", choices=("parsed", "processes", "threads"), default=transfer.FEED_CHECKS,
                        help="where the receiver checks the pages it reads ahead: parsed and signatures checked "
                             "in worker processes, or parsed here and signatures checked in worker processes or "
                             f"on threads (the node's default: {transfer.FEED_CHECKS})")
    parser.add_argument("--serve-source", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_source:
        asyncio.run(serve_source(Path(args.serve_source), args.events or 100_000))
        return
    count = args.events or (10_000 if args.quick else 100_000)
    transfer.FEED_CHECKS = args.checks
    result = asyncio.run(run(count, args.page, args.lanes, max(1, args.repeat)))
    print(f"events                      {result['events']:>12,}")
    print(f"source built in             {result['build_s']:>12.1f} s")
    print(f"raw PyNaCl verify (1 thread){result['verify_per_s']:>12,.0f} /s  (best of {args.repeat + 2})")
    print(f"feed read (HTTP+JSON)       {result['feed_read_per_s']:>12,.0f} events/s")
    print(f"replication to a fresh node {result['replication_per_s']:>12,.0f} events/s "
          f"({result['replication_s']:.1f} s, state hash equal: {result['state_hash_equal']}; best of "
          f"{', '.join(f'{r:,.0f}' for r in result['trials_per_s'])})")
    print(f"replication CPU time        {result['replication_cpu_s']:>12.1f} s of this process "
          f"({result['events'] / result['replication_cpu_s']:,.0f} events per CPU-second)")
    verdict = "met" if result["ratio"] >= GOAL else "MISSED"
    print(f"ratio replication / verify  {result['ratio']:>12.2f}  (goal >= {GOAL:.1f}: {verdict}; "
          f"{result['cpus']} cpus, load average {result['load']:.2f})")


if __name__ == "__main__":
    main()
