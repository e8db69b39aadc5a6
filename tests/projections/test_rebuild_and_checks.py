"""Rebuilds at write speed, and checks that hold no row per event (issue 13 items 2 and 3).

A rebuild drops the history tables' secondary indexes while it folds and builds them in
one pass at its end; one that dies in between leaves them to the next open. verify's
`load_stored` and the audit's `StoredCheck` fold the log without writing it, so they hand
their history rows over every `HISTORY_BATCH` events instead of holding them all: the
audit still names a changed history row wherever it is; verify folds only the projections
that have something stored; a replay hands its history rows over the same way. `verify_events` checks
signatures on a pool ahead of the judge and still names a bad one.
"""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, update

import ledger_net.audit as audit_module
from ledger_net.audit import audit, checked_rows, verify_events
from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.identity import Identity
from ledger_net.ledger.store import Store, StoredEvent
from ledger_net.ledger.tables import events
from ledger_net.projections import ProjectionRunner, consistency
from ledger_net.projections.balances import BalancesProjection
from ledger_net.projections.consistency import load_stored
from ledger_net.projections.tables import credit_history
from ledger_net.replay import Fold, replay
from ledger_net.replay import fold as replay_fold
from tests.support.cli import invoke, json_of

ISSUER = Identity.from_seed(b"\x71" * 32)
BOB = Identity.from_seed(b"\x72" * 32)
CAROL = Identity.from_seed(b"\x73" * 32)


def _log(url: str, transfers: int = 40) -> Ledger:
    led = Ledger(Store.open(url), ISSUER)
    led.create_network("rebuilds", issuers=[ISSUER.node_id])
    led.append("credit.minted", {"to": ISSUER.node_id, "amount": 10**6, "reason": "t"})
    for i in range(transfers):
        led.append("credit.transfer", {"to": (BOB if i % 2 else CAROL).node_id, "amount": 1 + i})
    return led


def _history_indexes(led: Ledger) -> set[str]:
    with led.store.engine.connect() as conn:
        return {ix["name"] for ix in inspect(conn).get_indexes(credit_history.name)}


def _spoil_signature(led: Ledger, index: int) -> tuple[StoredEvent, list[StoredEvent]]:
    """Zero the stored signature of the log's event at `index`; that event and every row as now stored."""
    victim = list(led.store.select_events())[index]
    with led.store.engine.begin() as conn:
        conn.execute(update(events).where(events.c.offset == victim.offset).values(sig=bytes(64)))
    return victim, list(led.store.select_events())


def _small_process_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Signatures go to worker processes past 4 rows, 8 a chunk."""
    monkeypatch.setattr(audit_module, "PROCESS_AFTER", 4)
    monkeypatch.setattr(audit_module, "PROCESS_CHUNK", 8)


def test_rebuild_equals_the_fold_and_keeps_its_indexes(db_url):
    led = _log(db_url)
    try:
        runner = ProjectionRunner(led, subscribe=False, fold_batch=7)
        want, indexes = runner.state_hash(), _history_indexes(led)
        assert indexes  # the account index the explorer's history reads use
        runner.rebuild()
        assert runner.state_hash() == want == runner.state_hash(runner.replay())
        assert _history_indexes(led) == indexes
        assert audit(led, live=False)["ok"]
    finally:
        led.close()


def test_a_rebuild_that_dies_leaves_its_indexes_to_the_next_open(db_url, monkeypatch):
    led = _log(db_url)
    try:
        runner = ProjectionRunner(led, subscribe=False, fold_batch=7)
        want, indexes = runner.state_hash(), _history_indexes(led)
        real, calls = ProjectionRunner._flush, []

        def dies(self, projections, offset, *writer):  # type: ignore[no-untyped-def]
            calls.append(offset)
            if len(calls) > 2:
                raise RuntimeError("power cut")
            return real(self, projections, offset, *writer)

        monkeypatch.setattr(ProjectionRunner, "_flush", dies)
        with pytest.raises(RuntimeError, match="power cut"):
            runner.rebuild()
        monkeypatch.undo()
        assert not _history_indexes(led) & indexes  # dropped for the fold, not yet built
        again = ProjectionRunner(led, subscribe=False, fold_batch=7)  # resumes from its checkpoint
        assert again.state_hash() == want
        assert _history_indexes(led) == indexes
    finally:
        led.close()


def test_audit_compares_history_in_batches_and_names_a_changed_row(db_url, monkeypatch):
    monkeypatch.setattr(consistency, "HISTORY_BATCH", 3)
    led = _log(db_url)
    try:
        ProjectionRunner(led, subscribe=False).flush()
        assert audit(led, live=False)["ok"]
        with led.store.engine.begin() as conn:  # one row in the middle of the log, outside the digest
            conn.execute(update(credit_history).where(credit_history.c.offset == 20,
                                                      credit_history.c.kind == "incoming").values(balance_after=-1))
        report = audit(led, live=False)
        named = [v for v in report["violations"] if v.get("table") == "credit_history"]
        assert not report["ok"] and len(named) == 1
        assert "1 row(s)" in named[0]["problem"]
        assert named[0]["rows"][0]["key"] == [20, 1]
        assert named[0]["rows"][0]["columns"]["balance_after"]["stored"] == -1
    finally:
        led.close()


def test_checks_hand_their_history_rows_over(db_url, monkeypatch):
    """verify's load_stored of a log with no projections stored folds it all and keeps no
    more than a batch of history rows; the audit's fresh fold the same."""
    monkeypatch.setattr(consistency, "HISTORY_BATCH", 4)
    led = _log(db_url)
    try:
        fresh = ProjectionRunner(led, subscribe=False).replay()
        loaded = load_stored(led, fresh, ProjectionRunner(led, subscribe=False).context())
        assert not loaded.problems
        assert len(fresh[0].take_history()[credit_history]) < 2 * 4
    finally:
        led.close()


def test_a_bad_signature_is_named_when_checked_on_the_pool(db_url):
    led = _log(db_url)
    try:
        victim, rows = _spoil_signature(led, 10)
        assert [signed for _, _, signed in checked_rows(rows, threads=3)] == [
            r.offset != victim.offset for r in rows]
        report = verify_events(rows)
        assert [(p.hash, p.problem) for p in report.problems][:1] == [(victim.hash, "bad signature")]
    finally:
        led.close()


def test_a_bad_signature_is_named_when_checked_in_worker_processes(db_url, monkeypatch):
    """Past PROCESS_AFTER rows the signatures go to worker processes; the verdicts are the same."""
    _small_process_batches(monkeypatch)
    led = _log(db_url)
    try:
        victim, rows = _spoil_signature(led, 10)
        assert [signed for _, _, signed in checked_rows(rows, threads=2)] == [r.offset != victim.offset for r in rows]
        report = verify_events(rows, threads=2)
        assert [(p.hash, p.problem) for p in report.problems][:1] == [(victim.hash, "bad signature")]
        assert report.events == len(rows)
    finally:
        led.close()


def test_signatures_are_checked_here_when_worker_processes_cannot_start(db_url, monkeypatch):
    import concurrent.futures

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError("no processes here")

    _small_process_batches(monkeypatch)
    monkeypatch.setattr(concurrent.futures.ProcessPoolExecutor, "submit", refuse)
    led = _log(db_url)
    try:
        victim, rows = _spoil_signature(led, 20)
        assert [signed for _, _, signed in checked_rows(rows, threads=2)] == [r.offset != victim.offset for r in rows]
    finally:
        led.close()


def test_verify_folds_nothing_when_no_projection_is_stored(tmp_path, monkeypatch):
    """With no projection stored, verify judges the log alone: no projection fold (it was
    14 s of a 1M-event verify) and the JSON names what was not stored. With one stored,
    only that one is folded."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    _log(url).close()
    folded: list[int] = []
    real = consistency.fold_tail
    monkeypatch.setattr(consistency, "fold_tail",
                        lambda loaded, ps, row, *rest: (folded.append(len(ps)), real(loaded, ps, row, *rest)))
    report = json_of(invoke("verify", "--db-url", url, "--json"))
    assert report["ok"] and report["projections_not_stored"] == ["balances", "nodes", "reputation", "tasks"]
    assert folded == []
    assert "the log alone was judged" in invoke("verify", "--db-url", url).stdout
    led = Ledger(Store.open(url), ISSUER)
    try:
        ProjectionRunner(led, [BalancesProjection()], subscribe=False)  # a first start stores it
        led.append("credit.transfer", {"to": BOB.node_id, "amount": 5})  # a tail past its checkpoint
    finally:
        led.close()
    report = json_of(invoke("verify", "--db-url", url, "--json"))
    assert report["ok"] and report["projections_not_stored"] == ["nodes", "reputation", "tasks"]
    assert folded == [1]  # the one tail event, into the one stored projection


def test_replay_hands_its_history_over_in_batches(db_url, monkeypatch):
    """A replay (the fold of `ledger-net replay`, diff, step) hands its history rows over
    every `HISTORY_BATCH` events and holds none at its end, with the runner's state hash."""
    monkeypatch.setattr(replay_fold, "HISTORY_BATCH", 4)
    led = _log(db_url)
    try:
        batches: list[int] = []
        fold = Fold(led).advance(None, None, lambda taken: batches.append(len(taken[credit_history])))
        assert len(batches) > 5 and max(batches) <= 2 * 4 and sum(batches) >= 2 * 40
        assert fold.balances.full_rows()[credit_history] == []
        view = replay(led)
        assert view.balances.full_rows()[credit_history] == []
        assert view.state_hash() == fold.state_hash() == ProjectionRunner(led, subscribe=False).state_hash()
    finally:
        led.close()
