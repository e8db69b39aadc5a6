"""A node always comes back after a crash, and the audit sees what the node sees.

* The reproduction of issue 10, item 1: a receipt in the tail after the last checkpoint
  spends a transfer at or before it; the node must reopen (it used to fail with KeyError).
* Projections inconsistent with the log (corrupted rows, rows without a checkpoint) are
  rebuilt on open, with one log line; `audit` names a corrupted row as a violation.
* Child node processes killed with SIGKILL at random instants, and aborted at chosen
  points inside the commit path (`ledger_net.faults`): after each kill the nodes reopen,
  verify and audit pass, the state hash equals a rebuild and no acknowledged event is lost.
"""

from __future__ import annotations

import logging
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from ledger_net.audit import audit, verify_events
from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.events import Event
from ledger_net.ledger.identity import Identity
from ledger_net.projections import ProjectionRunner
from ledger_net.projections.tables import balances, checkpoints, credit_history

pytestmark = pytest.mark.timeout(120)

X1 = Identity.from_seed(bytes([21]) * 32)  # issuer, sends transfers
X2 = Identity.from_seed(bytes([22]) * 32)  # receives them
# Run as a module from the checkout's root, so it imports ledger_net from there like the tests do
# (a script's own dir heads its sys.path, and the package need not be installed).
CHILD = "tests.support.crash_child"
ROOT = Path(__file__).resolve().parents[2]
REBUILD_LINE = "rebuilding projection"


def _events(ledger: Ledger) -> list[Event]:
    return [Event.from_wire(r.raw, r.sig) for r in ledger.stored()]


def _crashed_receiver(url: str) -> tuple[str, str]:
    """X2's books as `kill -9` leaves them: the checkpoint covers a transfer to X2, the
    tail after it holds X2's `credit.received` of that transfer. Returns (its state
    hash before the crash, the transfer's hash)."""
    x1 = Ledger.open("sqlite://", X1)
    x1.create_network("crash", issuers=[X1.node_id])
    x1.append("credit.minted", {"to": X1.node_id, "amount": 1000, "reason": "seed"})
    transfer = x1.append("credit.transfer", {"to": X2.node_id, "amount": 70})
    x2 = Ledger.open(url, X2)
    runner = ProjectionRunner(x2, flush_every=10**9)
    x2.ingest(_events(x1))
    runner.flush()  # the checkpoint: the transfer is in transit to X2
    x2.append("credit.received", {"source": transfer.hash}, [transfer.hash])  # the tail
    x2.append("credit.transfer", {"to": X1.node_id, "amount": 20})
    before = runner.state_hash()
    x1.close()
    x2.close()  # no flush: the tail never reached the projection tables
    return before, transfer.hash


def test_receipt_after_the_checkpoint_of_its_transfer_reopens(db_url, caplog):
    before, _ = _crashed_receiver(db_url)
    again = Ledger.open(db_url, X2)
    try:
        with caplog.at_level(logging.WARNING):
            runner = ProjectionRunner(again)
        assert runner.state_hash() == before
        assert runner.balances.balance(X2.node_id) == 50
        assert runner.balances.accounts[X2.node_id]["incoming"] == 0
        assert REBUILD_LINE not in caplog.text  # folded from its checkpoint, not rebuilt
        assert runner.state_hash() == runner.state_hash(runner.replay())
        report = audit(again, live=False)
        assert report["ok"], report["violations"]
    finally:
        again.close()


def test_audit_of_the_crashed_directory_is_clean_and_loads_as_the_node_would(db_url):
    """The stored projections plus the tail fold to the same state as a fresh fold."""
    _crashed_receiver(db_url)
    ledger = Ledger.open(db_url, X2)
    try:
        report = audit(ledger, live=False)
        assert report["ok"], report["violations"]
        assert verify_events(ledger.store.select_events()).ok
    finally:
        ledger.close()


def _flushed_books(url: str) -> str:
    """X2's books after a clean flush; returns their state hash."""
    before, _ = _crashed_receiver(url)
    ledger = Ledger.open(url, X2)
    ProjectionRunner(ledger)  # opening flushes: rows and checkpoint at the end of the log
    ledger.close()
    return before


def test_audit_names_a_corrupted_balance_row(db_url):
    _flushed_books(db_url)
    ledger = Ledger.open(db_url, X2)
    try:
        assert audit(ledger, live=False)["ok"]
        with ledger.store.engine.begin() as conn:
            conn.execute(update(balances).where(balances.c.account == X2.node_id).values(balance=10**9))
        report = audit(ledger, live=False)
        assert not report["ok"]
        named = [v for v in report["violations"] if v.get("table") == "balances"]
        assert named and named[0]["rows"][0]["key"] == [X2.node_id]
        assert named[0]["rows"][0]["columns"]["balance"] == {"stored": 10**9, "fold": 50}
        assert any("do not match the state hash" in v["problem"] for v in report["violations"])
    finally:
        ledger.close()


def test_audit_names_a_history_row_changed_without_touching_the_digest(db_url):
    """`balance_after` of an incoming notice is outside the state hash: only the row check sees it."""
    _flushed_books(db_url)
    ledger = Ledger.open(db_url, X2)
    try:
        with ledger.store.engine.begin() as conn:
            conn.execute(update(credit_history).where(credit_history.c.kind == "incoming").values(balance_after=-1))
        report = audit(ledger, live=False)
        assert not report["ok"]
        assert [v["table"] for v in report["violations"] if "table" in v] == ["credit_history"]
    finally:
        ledger.close()


def test_corrupted_rows_are_rebuilt_on_open_with_one_line(db_url, caplog):
    before = _flushed_books(db_url)
    ledger = Ledger.open(db_url, X2)
    with ledger.store.engine.begin() as conn:
        conn.execute(update(balances).where(balances.c.account == X2.node_id).values(balance=10**9))
    try:
        with caplog.at_level(logging.WARNING, logger="ledger_net.projections.runner"):
            runner = ProjectionRunner(ledger)
        lines = [r for r in caplog.records if REBUILD_LINE in r.getMessage()]
        assert len(lines) == 1 and "balances" in lines[0].getMessage()
        assert runner.state_hash() == before
        assert runner.balances.balance(X2.node_id) == 50
        assert audit(ledger, live=False)["ok"]
    finally:
        ledger.close()


def test_deleted_checkpoints_mean_rebuild_not_integrity_error(db_url, caplog):
    """The operator's repair of issue 10 (delete the checkpoint rows) must work."""
    before = _flushed_books(db_url)
    ledger = Ledger.open(db_url, X2)
    with ledger.store.engine.begin() as conn:
        conn.execute(delete(checkpoints))
    try:
        assert not audit(ledger, live=False)["ok"]  # rows without a checkpoint
        with caplog.at_level(logging.WARNING, logger="ledger_net.projections.runner"):
            runner = ProjectionRunner(ledger)
        assert sum(REBUILD_LINE in r.getMessage() for r in caplog.records) == 1
        assert runner.state_hash() == before
        with ledger.store.engine.connect() as conn:
            assert len(conn.execute(select(checkpoints)).all()) == len(runner.projections)
        assert audit(ledger, live=False)["ok"]
    finally:
        ledger.close()


def test_a_tail_that_does_not_fold_is_rebuilt(db_url, caplog):
    """A balances checkpoint behind rows that already hold later events: folding the tail
    again would count it twice. Its history rows show it; the node rebuilds, and until
    then the audit names the rows that a fold at that checkpoint would not hold."""
    before = _flushed_books(db_url)
    ledger = Ledger.open(db_url, X2)
    with ledger.store.engine.begin() as conn:
        conn.execute(update(checkpoints).where(checkpoints.c.name == "balances").values(offset=2))
    try:
        report = audit(ledger, live=False)
        assert {v.get("table") for v in report["violations"]} >= {"balances", "credit_history"}
        with caplog.at_level(logging.WARNING, logger="ledger_net.projections.runner"):
            runner = ProjectionRunner(ledger)
        assert "balances: table credit_history holds rows of events after its checkpoint" in caplog.text
        assert runner.state_hash() == before
        assert audit(ledger, live=False)["ok"]
    finally:
        ledger.close()


# ------------------------------------------------------------ child processes

class Child:
    """A crash_child.py process whose stdout lines arrive on a queue (bounded waits)."""

    def __init__(self, root: Path, seed: int, flush_every: int, rounds: int = 10_000,
                 crash_at: str | None = None) -> None:
        env = {k: v for k, v in os.environ.items() if k != "LEDGER_NET_CRASH_AT"}
        if crash_at:
            env["LEDGER_NET_CRASH_AT"] = crash_at
        self.proc = subprocess.Popen([sys.executable, "-m", CHILD, str(root), str(seed), str(flush_every), str(rounds)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.acked: dict[str, set[str]] = {"x1": set(), "x2": set()}
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def read_until(self, acks: int, deadline: float) -> bool:
        """Collect acknowledgements until `acks` more arrived (True) or the child ended (False)."""
        seen = 0
        while seen < acks:
            line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            if line is None:
                return False
            if line.startswith("ack "):
                _, node, hash_ = line.split()
                self.acked[node].add(hash_)
                seen += 1
        return True

    def finish(self, timeout: float) -> int:
        """Wait for the exit (after a kill or a crash point); the rest of stdout is read."""
        code = self.proc.wait(timeout=timeout)
        while (line := self.lines.get(timeout=timeout)) is not None:
            if line.startswith("ack "):
                _, node, hash_ = line.split()
                self.acked[node].add(hash_)
        return code


class RebuildLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if REBUILD_LINE in record.getMessage():
            self.lines.append(record.getMessage())


def check_after_crash(root: Path, scratch: Path, acked: dict[str, set[str]]) -> None:
    """The crashed books, as they are: verify and audit pass; a copy opens without any
    rebuild, to the state of a from-scratch fold; every acknowledged event is there."""
    for name, identity in (("x1", X1), ("x2", X2)):
        ledger = Ledger.open(f"sqlite:///{root / name / 'ledger.db'}", identity)
        try:
            forks = {p.author: p.seq for p in ledger.store.fork_proofs()}
            assert verify_events(ledger.store.select_events(), forks).ok
            report = audit(ledger, live=False)
            assert report["ok"], (name, report["violations"])
            stored = {r.hash for r in ledger.stored()}
            assert acked[name] <= stored, f"{name} lost {len(acked[name] - stored)} acknowledged event(s)"
        finally:
            ledger.close()
        copy = scratch / name
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(root / name, copy)  # the child restarts on the originals
        handler = RebuildLines()
        logging.getLogger("ledger_net.projections.runner").addHandler(handler)
        ledger = Ledger.open(f"sqlite:///{copy / 'ledger.db'}", identity)
        try:
            runner = ProjectionRunner(ledger)
            assert handler.lines == [], handler.lines  # a crash alone never needs a rebuild
            assert runner.state_hash() == runner.state_hash(runner.replay())
            assert runner.offset == ledger.store.last_offset()
        finally:
            logging.getLogger("ledger_net.projections.runner").removeHandler(handler)
            ledger.close()


def test_sigkill_at_random_instants_around_checkpoints(tmp_path):
    """Two nodes exchanging transfers and tasks, checkpoints every 2-5 events, killed
    with SIGKILL after a random number of acknowledged events plus a random delay; each
    child starts on the books the last one left (the restart), and must reach `open`."""
    rng = random.Random(10)
    root, scratch = tmp_path / "books", tmp_path / "scratch"
    acked: dict[str, set[str]] = {"x1": set(), "x2": set()}
    kills = 0
    budget = time.monotonic() + 30
    for round_ in range(14):
        if time.monotonic() > budget and kills >= 6:
            break
        child = Child(root, seed=round_, flush_every=rng.choice((2, 3, 5)))
        deadline = time.monotonic() + 20
        assert child.lines.get(timeout=20) == "open", child.proc.stderr.read() if child.proc.stderr else ""
        if child.read_until(rng.randint(1, 80), deadline):
            time.sleep(rng.random() * 0.004)  # a random instant between two acknowledgements
            child.proc.send_signal(signal.SIGKILL)
            kills += 1
        code = child.finish(20)
        assert code in (-signal.SIGKILL, 0), child.proc.stderr.read() if child.proc.stderr else ""
        for node in acked:
            acked[node] |= child.acked[node]
        check_after_crash(root, scratch, acked)
    assert kills >= 6


@pytest.mark.parametrize("crash_at", ["append.before_commit:9", "events.committed:7", "events.committed:20",
                                      "flush.mid_write:5", "flush.before_commit:4", "flush.before_commit:11"])
def test_abort_inside_the_commit_path(tmp_path, crash_at):
    """The process dies by SIGKILL at a chosen point of the commit path (ledger_net.faults),
    then restarts on those books and carries on; every check of a crash holds."""
    root, scratch = tmp_path / "books", tmp_path / "scratch"
    child = Child(root, seed=3, flush_every=3, rounds=200, crash_at=crash_at)
    assert child.finish(30) == -signal.SIGKILL  # the hook fired
    check_after_crash(root, scratch, child.acked)
    again = Child(root, seed=4, flush_every=3, rounds=5)  # the restart, past the same point
    assert again.finish(30) == 0, again.proc.stderr.read() if again.proc.stderr else ""
    check_after_crash(root, scratch, {n: child.acked[n] | again.acked[n] for n in child.acked})


def test_a_bad_crash_point_is_a_clear_error():
    from ledger_net import faults

    with pytest.raises(ValueError, match="unknown crash point 'nowhere'"):
        faults._parse("nowhere")
    with pytest.raises(ValueError, match="positive integer"):
        faults._parse("flush.mid_write:0")
    assert faults._parse("flush.mid_write:2").hits == 2


def test_cli_verify_and_audit_see_what_the_node_sees(tmp_path):
    """On a corrupted directory both commands exit 1 and name the projection (and the row);
    after the node's own open repaired it, both say OK."""
    from click.testing import CliRunner

    from ledger_net.cli_ledger import audit as audit_cmd
    from ledger_net.cli_ledger import verify as verify_cmd

    data = tmp_path / "x2"
    data.mkdir()
    url = f"sqlite:///{data / 'ledger.db'}"
    _flushed_books(url)
    cli = CliRunner()
    args = ["--data-dir", str(data)]
    assert cli.invoke(verify_cmd, args).exit_code == 0
    assert cli.invoke(audit_cmd, args).exit_code == 0
    ledger = Ledger.open(url, X2)
    with ledger.store.engine.begin() as conn:
        conn.execute(update(balances).where(balances.c.account == X2.node_id).values(escrow=7))
    ledger.close()
    verified = cli.invoke(verify_cmd, args)
    assert verified.exit_code == 1 and "BAD stored projection balances" in verified.output
    audited = cli.invoke(audit_cmd, args)
    assert audited.exit_code == 1 and "AUDIT FAILED" in audited.output
    assert f"balances row ['{X2.node_id}']: escrow stored 7, fold 0" in audited.output
    ledger = Ledger.open(url, X2)
    ProjectionRunner(ledger)  # the node's start rebuilds the projection
    ledger.close()
    assert cli.invoke(verify_cmd, args).exit_code == 0
    assert cli.invoke(audit_cmd, args).exit_code == 0
