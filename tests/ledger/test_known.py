"""`KnownHashes.unknown`, which an ingest asks of every event of a page: exactly the hashes the
ledger does not hold, whether each is held in the store only, cached, in the batch being
written or absent, with any cache size, in one store query."""

from __future__ import annotations

import pytest

from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.identity import Identity

ALICE = Identity.from_seed(bytes([81]) * 32)


@pytest.mark.parametrize("cache", [0, 3, 1000])
def test_unknown_is_exactly_what_is_not_held(cache, monkeypatch):
    led = Ledger.open("sqlite://", ALICE, known_cache=cache)
    try:
        led.create_network("known", issuers=[ALICE.node_id])
        stored = [e.hash for e in led.append_batch(
            [("credit.minted", {"to": ALICE.node_id, "amount": i + 1, "reason": "k"}, ()) for i in range(10)])]
        led.known.reset()
        cached = stored[-2:]
        assert all(h in led.known for h in cached)  # asked once: cached (when the cache has room)
        pending = "ab" * 32
        led.known.add(pending)  # the batch being written
        absent = ["cd" * 32, "ef" * 32]
        asked: list[int] = []
        real = led.store.has_hashes
        monkeypatch.setattr(led.store, "has_hashes", lambda hs: asked.append(len(set(hs))) or real(hs))
        assert led.known.unknown([*stored, pending, *absent]) == set(absent)
        if cache >= len(stored) + 3:  # a cache that holds the page: one query for it
            assert len(asked) == 1  # (a smaller one asks again for each held hash it evicted)
    finally:
        led.close()
