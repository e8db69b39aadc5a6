"""Shared helpers for the multi-node tests (no tests of its own): real node servers on
loopback with random ports, credit receipts, and hand-forged events
for the hostile-peer tests."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ledger_net.ledger import encoding
from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.events import FORMAT_VERSION, Event
from ledger_net.ledger.identity import Identity
from ledger_net.network.server import NodeServer, open_local

FAST = dict(sync_interval=0.1, backoff_base=0.05, backoff_max=0.5, metrics_interval=0.2, shutdown_timeout=0.5)


class Node:
    """A node under test: its data dir, books and server."""

    def __init__(self, root: Path, name: str, seeds: Iterable[str] = (), **options: Any) -> None:
        self.root = root
        self.name = name
        self.seeds = list(seeds)
        self.runner_options = {k: options.pop(k) for k in ("flush_every",) if k in options}
        self.options = {**FAST, **options}
        self.ledger, self.runner = open_local(root / name, **self.runner_options)
        self.server = NodeServer(self.ledger, self.runner, seeds=self.seeds, data_dir=root / name, **self.options)

    @property
    def id(self) -> str:
        return self.ledger.node_id

    @property
    def url(self) -> str:
        assert self.server.url is not None
        return self.server.url

    async def start(self, port: int | None = None) -> str:
        return await self.server.start(port=port)

    async def append(self, type_: str, body: dict[str, Any], deps: Iterable[str] = ()) -> Event:
        return await self.server.append(type_, body, deps)

    async def receive_all(self) -> int:
        """Append `credit.received` for every open credit to this node (on the writer thread,
        so the state read and the appends are not interleaved with an ingest)."""
        ledger = self.ledger

        def work() -> int:
            credits = ledger.state.open_credits_to(ledger.node_id)
            if credits:
                ledger.append_batch([("credit.received", {"source": h}, (h,)) for h, _ in credits])
            return len(credits)

        return await self.server.run_write(work)

    def balance(self) -> int:
        return self.ledger.state.spendable(self.id)

    async def stop(self, hard: bool = False) -> None:
        await self.server.stop(hard=hard)

    def close(self) -> None:
        self.ledger.close()

    def reopen(self) -> None:
        """Open the node's files again (after a crash) with a fresh server object."""
        self.ledger, self.runner = open_local(self.root / self.name, **self.runner_options)
        self.server = NodeServer(self.ledger, self.runner, seeds=self.seeds, data_dir=self.root / self.name,
                                 **self.options)


async def start_cluster(root: Path, count: int, **options: Any) -> list[Node]:
    """`count` nodes on loopback: the first creates the network (and is its issuer), the
    rest join through it as seed; every node announces its URL in the ledger."""
    first = Node(root, "n0", **options)
    first.ledger.create_network("test-net")
    await first.start()
    await first.server.announce("n0")
    nodes = [first]
    for i in range(1, count):
        node = Node(root, f"n{i}", seeds=[first.url], **options)
        await node.start()
        nodes.append(node)
    for node in nodes[1:]:
        await node.server.wait_for_network(10)
        await node.server.announce(node.name)
    return nodes


async def stop_all(nodes: Iterable[Node]) -> None:
    for node in nodes:
        await node.stop()
        node.close()


def converged(nodes: list[Node]) -> bool:
    """Same events and same projection state hash on every node."""
    counts = {n.ledger.store.count() for n in nodes}
    if len(counts) != 1:
        return False
    return len({n.runner.state_hash() for n in nodes}) == 1


def forge(identity: Identity, *, net: str, seq: int, prev: str | None, type: str, body: Any,
          deps: Iterable[str] = (), ts: int | None = None, v: int = FORMAT_VERSION) -> dict[str, str]:
    """A signed wire event built without any validation (so tests can sign nonsense)."""
    envelope = {"v": v, "net": net, "author": identity.node_id, "seq": seq, "prev": prev,
                "deps": sorted(set(deps)), "type": type, "body": body,
                "ts": int(time.time() * 1000) if ts is None else ts}
    raw = encoding.canonical_bytes(envelope)
    return {"raw": raw.decode("utf-8"), "sig": identity.sign(encoding.digest(raw)).hex()}


def wire_hash(item: dict[str, str]) -> str:
    return encoding.content_hash(item["raw"].encode("utf-8"))


def memory_ledger(identity: Identity | None = None) -> Ledger:
    return Ledger.open("sqlite://", identity or Identity.generate())
