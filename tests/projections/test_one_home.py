"""Issue 11 items 3 and 5: projections read through typed accessors under the lock they fold
under, one task-status vocabulary, one wire form, one DataDir, errors told apart by type."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ledger_net.core import credits
from ledger_net.core.task import TaskStatus as SeedTaskStatus
from ledger_net.errors import (
    ChainError,
    CreditError,
    InsufficientCredits,
    NetworkError,
    PeerUnavailable,
    RefusedPeerURL,
    SchemaError,
    UnknownEventType,
    WrongNetwork,
)
from ledger_net.ledger.chain import Ledger, RuleViolation
from ledger_net.ledger.datadir import DataDir
from ledger_net.ledger.events import Event
from ledger_net.ledger.identity import Identity
from ledger_net.ledger.schemas import validate_body
from ledger_net.ledger.store import Store, sqlite_url
from ledger_net.ledger.wire import is_wire, stored_to_wire, to_wire
from ledger_net.network.openapi import build_spec
from ledger_net.projections import (
    BalancesProjection,
    NodesProjection,
    ProjectionRunner,
    ReputationProjection,
    TasksProjection,
)
from ledger_net.projections.status import ROW_STATUSES, TERMINAL, TaskStatus
from ledger_net.replay import Fold

ISSUER = Identity.from_seed(b"\x71" * 32)
BOB = Identity.from_seed(b"\x72" * 32)


@pytest.fixture
def books():
    led = Ledger(Store.open("sqlite://"), ISSUER)
    led.create_network("one-home", issuers=[ISSUER.node_id])
    led.append("credit.minted", {"to": ISSUER.node_id, "amount": 1000, "reason": "t"})
    led.append("credit.transfer", {"to": BOB.node_id, "amount": 10})
    yield led
    led.close()


def test_runner_and_fold_give_each_projection_by_its_class(books):
    runner = ProjectionRunner(books)
    for view in (runner, Fold(books).advance()):
        assert isinstance(view.balances, BalancesProjection) and isinstance(view.tasks, TasksProjection)
        assert isinstance(view.nodes, NodesProjection) and isinstance(view.reputation, ReputationProjection)
        assert view.of(BalancesProjection) is view.balances
        assert view.balances.balance(BOB.node_id) == 0 and view.balances.accounts[BOB.node_id]["incoming"] == 10
    assert runner.state_hash() == Fold(books).advance().state_hash()


def test_reading_holds_the_lock_the_runner_folds_under(books):
    runner = ProjectionRunner(books)
    folded = threading.Event()

    def append() -> None:
        books.append("credit.transfer", {"to": BOB.node_id, "amount": 5})  # the runner folds it
        folded.set()

    with runner.balances.reading() as balances:
        before = balances.accounts[BOB.node_id]["incoming"]
        writer = threading.Thread(target=append)
        writer.start()
        assert not folded.wait(0.3)  # the fold waits for the reader
        assert balances.accounts[BOB.node_id]["incoming"] == before
    writer.join(5)
    assert folded.is_set()
    with runner.reading() as view:
        assert view.balances.accounts[BOB.node_id]["incoming"] == before + 5


def test_one_task_status_vocabulary():
    assert SeedTaskStatus is TaskStatus
    assert set(ROW_STATUSES) == {s.value for s in TaskStatus} - {"assigned"}
    assert {"completed", "failed", "cancelled"} == TERMINAL and TaskStatus.CANCELLED.is_terminal
    assert list(TasksProjection().count_by_status()) == list(ROW_STATUSES)
    params = build_spec()["paths"]["/api/v1/tasks"]["get"]["parameters"]
    assert next(p for p in params if p["name"] == "status")["schema"]["enum"] == list(ROW_STATUSES)


def test_one_wire_form(books):
    row = next(iter(books.store.select_events()))
    event = Event.from_stored(row.raw, row.sig, row.hash)
    wire = to_wire(row.raw, row.sig)
    assert wire == event.to_json() and is_wire(wire) and Event.from_json(wire).hash == row.hash
    assert stored_to_wire(row) == {"offset": row.offset, **wire, "valid": True, "reason": None}
    assert not is_wire({"raw": b"x", "sig": "00"}) and not is_wire([wire])


def test_a_data_dir_names_its_files(tmp_path: Path):
    d = DataDir.of(tmp_path)
    assert DataDir.of(d) is d
    assert [p.name for p in (d.key, d.token, d.database, d.config, d.network, d.lock, d.blobs, d.work)] == [
        "node.key", "api.token", "ledger.db", "node.json", "network", "node.lock", "blobs", "work"]
    assert all(p.parent == tmp_path for p in (d.key, d.database, d.blobs))
    assert d.database_url() == sqlite_url(tmp_path / "ledger.db")


def test_errors_are_told_apart_by_type(books):
    assert issubclass(PeerUnavailable, NetworkError) and issubclass(RefusedPeerURL, NetworkError)
    assert issubclass(InsufficientCredits, CreditError) and issubclass(WrongNetwork, ChainError)
    with pytest.raises(UnknownEventType):
        validate_body("no.such.type", {})
    assert issubclass(UnknownEventType, SchemaError)
    with pytest.raises(RuleViolation) as caught:
        books.append("credit.transfer", {"to": BOB.node_id, "amount": 10**9})
    assert type(credits.refused(caught.value)) is InsufficientCredits
    assert type(credits.refused(RuleViolation("something else"))) is CreditError
