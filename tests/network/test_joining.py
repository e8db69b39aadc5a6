"""One join (network/joining.py): a fresh ledger takes a running node's network (its
genesis first, then its log) through a Synchronizer; a seed that does not answer is
one NetworkError naming it."""

from __future__ import annotations

import pytest

from ledger_net.errors import NetworkError
from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.identity import Identity
from ledger_net.main import ComputeNetwork
from ledger_net.network.joining import join


async def test_a_fresh_ledger_joins_and_catches_up(async_node: ComputeNetwork) -> None:
    assert async_node.ledger is not None and async_node.server is not None
    fresh = Ledger.open("sqlite://", Identity.generate(), signer_threads=1)
    try:
        stored = await join(fresh, [async_node.server.url], timeout=10, catch_up=True)
        assert fresh.net == async_node.ledger.net
        assert stored >= 1 and fresh.store.count() == async_node.ledger.store.count()
        assert fresh.store.heads() == async_node.ledger.store.heads()
    finally:
        fresh.close()


async def test_an_unreachable_seed_is_one_error_naming_it() -> None:
    fresh = Ledger.open("sqlite://", Identity.generate(), signer_threads=1)
    try:
        with pytest.raises(NetworkError, match=r"no network after 0s; peers: http://127\.0\.0\.1:9 is unreachable"):
            await join(fresh, ["http://127.0.0.1:9"], timeout=0)
        assert fresh.net is None and fresh.store.count() == 0
    finally:
        fresh.close()
