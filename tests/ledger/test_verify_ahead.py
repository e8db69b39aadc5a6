"""Signatures checked ahead on the pool (`Ledger.verify_ahead`) while another batch is
written: a forged event in a batch checked ahead still refuses the whole batch, and an
event the checks did not cover is verified on the spot."""

from __future__ import annotations

import pytest

from ledger_net.errors import SignatureError
from ledger_net.ledger.chain import VERIFY_CHUNK, Ledger
from ledger_net.ledger.events import Event
from ledger_net.ledger.identity import Identity

ALICE = Identity.from_seed(bytes([51]) * 32)
BOB = Identity.from_seed(bytes([52]) * 32)


@pytest.fixture
def pair():
    alice, observer = Ledger.open("sqlite://", ALICE), Ledger.open("sqlite://")
    alice.create_network("ahead", issuers=[ALICE.node_id])
    alice.append("credit.minted", {"to": ALICE.node_id, "amount": 10**6, "reason": "seed"})
    alice.append_batch([("credit.transfer", {"to": BOB.node_id, "amount": 1}, ())] * (2 * VERIFY_CHUNK + 5))
    yield alice, observer
    alice.close()
    observer.close()


def _events(ledger: Ledger) -> list[Event]:
    return [Event.from_wire(r.raw, r.sig) for r in ledger.stored()]


def test_batches_checked_ahead_are_stored_in_order(pair):
    alice, observer = pair
    events = _events(alice)
    first, second = events[:100], events[100:]
    ahead = observer.verify_ahead(first), observer.verify_ahead(second)
    assert len(observer.ingest(first, checks=ahead[0]).stored) == 100
    assert len(observer.ingest(second, checks=ahead[1]).stored) == len(second)
    assert observer.head(ALICE.node_id) == alice.head()


def test_a_forged_event_checked_ahead_refuses_its_whole_batch(pair):
    alice, observer = pair
    events = _events(alice)
    observer.ingest(events[:2])
    last = events[-1]
    batch = [*events[2:-1], Event.from_wire(last.raw, bytes([last.sig[0] ^ 1]) + last.sig[1:])]
    checks = observer.verify_ahead(batch)
    with pytest.raises(SignatureError):
        observer.ingest(batch, checks=checks)
    assert observer.store.count() == 2 and observer.head(ALICE.node_id)[0] == 2


def test_events_not_covered_by_the_checks_are_verified(pair):
    alice, observer = pair
    events = _events(alice)
    observer.ingest(events[:2])
    last = events[3]
    forged = Event.from_wire(last.raw, bytes([last.sig[0] ^ 1]) + last.sig[1:])
    checks = observer.verify_ahead(events[2:3])  # covers only the first of the two
    with pytest.raises(SignatureError):
        observer.ingest([events[2], forged], checks=checks)
    assert observer.store.count() == 2
