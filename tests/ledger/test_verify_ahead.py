"""Signatures checked ahead (`Ledger.verify_ahead`: on threads, or in worker processes for
a large batch) while another batch is written: a forged event in a batch checked ahead
still refuses the whole batch, an event the checks did not cover is verified on the spot,
and the worker processes are shut on close (or never start: small batch, no processes)"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest

from ledger_net.errors import SignatureError
from ledger_net.ledger.chain import VERIFY_CHUNK, Ledger
from ledger_net.ledger.crypto_pool import PROCESS_FROM
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


def _forged(event: Event) -> Event:
    return Event.from_wire(event.raw, bytes([event.sig[0] ^ 1]) + event.sig[1:])


def test_a_forged_event_checked_in_worker_processes_refuses_its_page_and_close_shuts_them(pair):
    alice, observer = pair
    events = _events(alice)
    observer.ingest(events[:2])
    page = events[2:]
    middle = len(page) // 2
    page[middle] = _forged(page[middle])
    assert len(page) >= PROCESS_FROM
    checks = observer.verify_ahead(page)
    assert observer._crypto.processes_running and multiprocessing.active_children()
    with pytest.raises(SignatureError):
        observer.ingest(page, checks=checks)
    assert observer.store.count() == 2 and observer.head(ALICE.node_id)[0] == 2
    assert page[middle].hash not in {r.hash for r in observer.stored()}
    good = events[2:]
    assert len(observer.ingest(good, checks=observer.verify_ahead(good)).stored) == len(good)
    observer.close()
    assert not observer._crypto.processes_running and not multiprocessing.active_children()


def test_worker_processes_that_cannot_start_leave_the_checks_to_threads(pair, monkeypatch):
    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("no processes here")

    monkeypatch.setattr(ProcessPoolExecutor, "submit", refuse)
    alice, observer = pair
    events = _events(alice)
    observer.ingest(events[:2])
    page = events[2:]
    page[5] = _forged(page[5])
    checks = observer.verify_ahead(page)
    assert not observer._crypto.processes_running
    with pytest.raises(SignatureError):
        observer.ingest(page, checks=checks)
    assert observer.store.count() == 2


def test_a_small_batch_starts_no_worker_processes(pair):
    alice, observer = pair
    events = _events(alice)[:PROCESS_FROM - 1]
    assert len(observer.ingest(events, checks=observer.verify_ahead(events)).stored) == len(events)
    assert not observer._crypto.processes_running
