"""The feed reader's read-ahead checks (`Transfers._prepare`, `transfer.FEED_CHECKS`): a page
parsed and signature-checked in the ledger's worker processes ("parsed") is refused exactly as
a page parsed here ("threads"): the same error for the peer, and nothing of the page stored;
a good page is stored whole either way."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.crypto_pool import PROCESS_FROM
from ledger_net.ledger.events import Event
from ledger_net.ledger.identity import Identity
from ledger_net.ledger.wire import stored_to_wire
from ledger_net.network import transfer
from ledger_net.network.discovery import Discovery
from ledger_net.network.sync import Synchronizer
from ledger_net.network.transfer import PeerMisbehaved
from tests.support.replication import forge

ALICE = Identity.from_seed(bytes([71]) * 32)
BOB = Identity.from_seed(bytes([72]) * 32)
PAGE = PROCESS_FROM + 20  # big enough for the worker processes
URL = "http://peer.invalid:1"


@pytest.fixture(scope="module")
def source():
    alice = Ledger.open("sqlite://", ALICE)
    alice.create_network("feed-checks", issuers=[ALICE.node_id])
    alice.append("credit.minted", {"to": ALICE.node_id, "amount": 10**6, "reason": "seed"})
    alice.append_batch([("credit.transfer", {"to": BOB.node_id, "amount": 1 + i % 3}, ()) for i in range(PAGE)])
    items = [stored_to_wire(r) for r in alice.stored()]
    yield alice, items
    alice.close()


def _forged_signature(page: list[dict[str, Any]], i: int) -> dict[str, Any]:
    sig = page[i]["sig"]
    return dict(page[i], sig=("1" if sig[0] == "0" else "0") + sig[1:])


def _not_canonical(page: list[dict[str, Any]], i: int) -> dict[str, Any]:
    return dict(page[i], raw=page[i]["raw"].replace(":", ": ", 1))


def _other_network(page: list[dict[str, Any]], i: int) -> dict[str, Any]:
    event = Event.from_json(page[i])
    return dict(page[i], **forge(ALICE, net="cd" * 32, seq=event.seq, prev=event.prev, type=event.type,
                                 body=event.body, ts=event.ts))


def _broken_link(page: list[dict[str, Any]], i: int) -> dict[str, Any]:
    event = Event.from_json(page[i])  # its prev becomes an older event of its author's, held by then
    return dict(page[i], **forge(ALICE, net=event.net, seq=event.seq, prev=Event.from_json(page[i - 2]).hash,
                                 type=event.type, body=event.body, ts=event.ts))


async def _read(items: list[dict[str, Any]], checks: str, ledger: Ledger) -> tuple[int | None, str | None]:
    """Prepare and apply one feed page as `_pull_feed_ahead` does: (stored, or the error)."""
    transfer.FEED_CHECKS = checks
    sync = Synchronizer(ledger, Discovery())
    try:
        prepared = asyncio.create_task(sync._prepare(items))
        return await sync._apply_prepared(prepared, URL), None
    except PeerMisbehaved as exc:
        return None, str(exc)
    finally:
        await sync.stop()


@pytest.mark.parametrize("spoil", [_forged_signature, _not_canonical, _other_network, _broken_link])
async def test_a_bad_page_is_refused_alike_and_nothing_of_it_is_stored(source, spoil: Callable[..., Any], tmp_path):
    alice, items = source
    default, outcomes = transfer.FEED_CHECKS, []
    try:
        for checks in ("parsed", "threads"):
            ledger = Ledger.open(f"sqlite:///{tmp_path}/{checks}.db")
            try:
                assert (await _read(items[:2], checks, ledger))[0] == 2  # the genesis and the mint
                page = items[2:]
                page[len(page) // 2] = spoil(page, len(page) // 2)
                stored, error = await _read(page, checks, ledger)
                assert stored is None and error is not None
                assert ledger.store.count() == 2 and ledger.head(ALICE.node_id)[0] == 2
                if checks == "parsed":
                    assert ledger._crypto.processes_running  # the page went to the workers
                outcomes.append(error)
                assert (await _read(items[2:], checks, ledger))[0] == len(items) - 2  # the good page, whole
            finally:
                ledger.close()
    finally:
        transfer.FEED_CHECKS = default
    assert outcomes[0] == outcomes[1]
