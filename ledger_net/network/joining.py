"""Joining a network, written once: take the genesis and the log of nodes already on it.

`ledger-net init --seed` and a starting `ComputeNetwork` both join through a `Synchronizer`
(the node's own, or a private one for the seeds that is closed again), so a joiner verifies
and admits what it receives exactly as a running node does: the genesis first
(`Synchronizer._adopt_network`), then the log by the causal feed, every event checked on
ingest.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from ..errors import NetworkError
from ..ledger.chain import Ledger
from .discovery import Discovery
from .sync import Synchronizer


async def join(ledger: Ledger, seeds: Sequence[str] = (), *, sync: Synchronizer | None = None,
               timeout: float = 30.0, catch_up: bool = False, tick: Callable[[int], None] | None = None) -> int:
    """Sync until `ledger` has its network (with `catch_up`, until a round is not cut short
    by the synchronizer's `round_budget`: it reached what the seeds held when it ran, so a
    busy network does not keep a joiner catching up forever); returns how many events were
    stored. `sync` is a running node's synchronizer
    (its peers are the seeds); without one a private one for `seeds` is made and closed.
    Rounds repeat until `timeout` seconds have passed (0: one round), then NetworkError
    names what each seed answered."""
    own = sync is None
    synchronizer = sync if sync is not None else Synchronizer(ledger, Discovery(seeds=seeds))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    stored = 0
    try:
        while True:
            results = await synchronizer.sync_once()
            moved = sum(int(r.get("pulled", 0)) + int(r.get("fetched", 0)) for r in results.values())
            stored += moved
            if tick is not None and moved:
                tick(moved)
            if ledger.net is not None and (not catch_up or moved < synchronizer.round_budget):
                return stored
            if ledger.net is None and loop.time() >= deadline:
                errors = [str(r["error"]) for r in results.values() if r.get("error")]
                errors += [p.last_error for p in synchronizer.discovery.peers.values()
                           if p.last_error and p.last_error not in errors]
                if not errors and results:
                    errors = [f"{url} has no network yet" for url in results]
                raise NetworkError(f"no network after {timeout:g}s; peers: {'; '.join(errors) or 'none reachable'}")
            if ledger.net is None:
                await asyncio.sleep(0.05)
    finally:
        if own:
            await synchronizer.stop()
