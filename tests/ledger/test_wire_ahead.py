"""Pages parsed and checked ahead in their wire form (`Ledger.check_wire_ahead`: the worker
processes parse each (bytes, signature) pair and check its signature, the writer builds the
events without checking them again): the events are those `Event.from_wire` makes, and a
page with one bad event (forged signature, broken chain link, another network, malformed
bytes) stores nothing of that page, exactly as a page parsed here does."""

from __future__ import annotations

import pytest

from ledger_net.errors import ChainError, EncodingError, SignatureError, WrongNetwork
from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.crypto_pool import PROCESS_FROM, check_wire
from ledger_net.ledger.events import Event
from ledger_net.ledger.identity import Identity

ALICE = Identity.from_seed(bytes([61]) * 32)
BOB = Identity.from_seed(bytes([62]) * 32)
PAGE = PROCESS_FROM + 40  # big enough for the worker processes


@pytest.fixture
def pair():
    alice, observer = Ledger.open("sqlite://", ALICE), Ledger.open("sqlite://")
    alice.create_network("wire-ahead", issuers=[ALICE.node_id])
    alice.append("credit.minted", {"to": ALICE.node_id, "amount": 10**6, "reason": "seed"})
    alice.append_batch([("credit.transfer", {"to": BOB.node_id, "amount": 1 + i % 5}, ()) for i in range(PAGE)])
    yield alice, observer
    alice.close()
    observer.close()


def _wire(ledger: Ledger) -> list[tuple[bytes, bytes]]:
    return [(bytes(r.raw), bytes(r.sig)) for r in ledger.stored()]


@pytest.mark.parametrize("processes", [True, False])
def test_a_page_checked_ahead_gives_the_events_from_wire_gives_and_stores_them(pair, processes):
    alice, observer = pair
    wire = _wire(alice)
    observer.ingest([Event.from_wire(*wire[0])])
    page = wire[1:]
    checked = observer.check_wire_ahead(page, processes=processes)
    assert observer._crypto.processes_running is processes
    events, checks = checked.result()
    assert events == [Event.from_wire(raw, sig) for raw, sig in page]
    assert len(observer.ingest(events, checks=checks).stored) == len(page)
    assert observer.head(ALICE.node_id) == alice.head()


def _resigned(event: Event, **changes: object) -> tuple[bytes, bytes]:
    """`event` with some envelope fields changed, signed again by its author (ALICE)."""
    fields = {"net": event.net, "seq": event.seq, "prev": event.prev, "type": event.type, "body": event.body,
              "deps": event.deps, "ts": event.ts, **changes}
    made = Event.create(ALICE, **fields)  # type: ignore[arg-type]
    return made.raw, made.sig


def _bad_signature(page: list[tuple[bytes, bytes]], i: int) -> None:
    raw, sig = page[i]
    page[i] = (raw, bytes([sig[0] ^ 1]) + sig[1:])


def _bad_link(page: list[tuple[bytes, bytes]], i: int) -> None:
    event = Event.from_wire(*page[i])
    page[i] = _resigned(event, prev=Event.from_wire(*page[i - 2]).hash)  # skips its real prev


def _wrong_network(page: list[tuple[bytes, bytes]], i: int) -> None:
    page[i] = _resigned(Event.from_wire(*page[i]), net="ab" * 32)


def _malformed(page: list[tuple[bytes, bytes]], i: int) -> None:
    raw, sig = page[i]
    page[i] = (raw.replace(b":", b": ", 1), sig)  # not canonical


@pytest.mark.parametrize(("spoil", "error", "mark"), [
    (_bad_signature, SignatureError, b"\x00"), (_malformed, EncodingError, b"\x00"),  # the workers flag these
    (_bad_link, ChainError, b"\x01"), (_wrong_network, WrongNetwork, b"\x01")])  # the ledger judges these
def test_a_page_with_one_bad_event_stores_nothing_of_that_page(pair, spoil, error, mark):
    alice, observer = pair
    wire = _wire(alice)
    observer.ingest([Event.from_wire(*w) for w in wire[:3]])
    before = observer.store.count(), observer.head(ALICE.node_id)
    page = wire[3:]
    spoil(page, len(page) // 2)
    assert check_wire(page[len(page) // 2:len(page) // 2 + 1]) == mark
    with pytest.raises(error):
        events, checks = observer.check_wire_ahead(page).result()
        observer.ingest(events, checks=checks)
    assert (observer.store.count(), observer.head(ALICE.node_id)) == before
    stored = {r.hash for r in observer.stored()}
    assert not stored & {Event.from_wire(*w).hash for w in wire[3:]}
    # the page as it should be is then stored whole
    events, checks = observer.check_wire_ahead(wire[3:]).result()
    assert len(observer.ingest(events, checks=checks).stored) == len(wire) - 3


def test_a_page_of_forged_events_is_refused_without_comparing_them_pairwise(pair, monkeypatch):
    """Finding the forged events among those checked ahead goes by identity: comparing whole
    events (`e in bad`) cost bad x page comparisons, a second of the writer's time for a
    page of 2,000 forgeries."""
    alice, observer = pair
    wire = _wire(alice)
    observer.ingest([Event.from_wire(*w) for w in wire[:2]])
    page = wire[2:]
    for i in range(len(page)):
        _bad_signature(page, i)
    events, checks = observer.check_wire_ahead(page).result()
    compared = []
    original = Event.__eq__
    monkeypatch.setattr(Event, "__eq__", lambda a, b: compared.append(1) or original(a, b))
    with pytest.raises(SignatureError):
        observer.ingest(events, checks=checks)
    assert len(compared) < len(page)
    assert observer.store.count() == 2
