"""A rebuild on a SQLite file commits its flushes in a writer process (flush_writer.py).

Each flush's rows and checkpoint are one transaction of the writer's, so a rebuild killed
by SIGKILL at any instant, or a writer killed at a crash point inside a flush, leaves books
the next open resumes from: the stored rows equal a fresh fold's and the history index is
there. Short logs, in-memory databases and the live path write in the process itself, and
by default so does a rebuild on a machine without a core to spare.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import inspect, select

from ledger_net.audit import audit
from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.identity import Identity
from ledger_net.ledger.store import sqlite_url
from ledger_net.projections import ProjectionRunner
from ledger_net.projections import flush_writer as writer_module
from ledger_net.projections.tables import credit_history

pytestmark = pytest.mark.timeout(180)

ISSUER = Identity.from_seed(b"\x81" * 32)
PEERS = [Identity.from_seed(bytes([0x82 + i]) * 32) for i in range(5)]
ROOT = Path(__file__).resolve().parents[2]
# The rebuilding process: opens the books (caught up), says so, then rebuilds until killed.
CHILD = """
import sys
from ledger_net.ledger.chain import Ledger
from ledger_net.projections import ProjectionRunner
ProjectionRunner.rebuild_writer = True  # whatever the machine's load
led = Ledger.open(sys.argv[1])
runner = ProjectionRunner(led, subscribe=False, fold_batch=int(sys.argv[2]))
print("open", flush=True)
for _ in range(int(sys.argv[3])):
    runner.rebuild()
    print("rebuilt", flush=True)
led.close()
"""


@pytest.fixture(autouse=True)
def _writer_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rebuilds here use the writer process whatever the machine's load (the default's rule)."""
    monkeypatch.setattr(ProjectionRunner, "rebuild_writer", True)


def _books(path: Path, transfers: int) -> None:
    led = Ledger.open(sqlite_url(path), ISSUER)
    try:
        led.create_network("writer", issuers=[ISSUER.node_id])
        led.append("credit.minted", {"to": ISSUER.node_id, "amount": 10**9, "reason": "t"})
        for i in range(transfers):
            led.append("credit.transfer", {"to": PEERS[i % len(PEERS)].node_id, "amount": 1 + i})
        ProjectionRunner(led, subscribe=False).flush()
    finally:
        led.close()


class _RebuildLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _check(path: Path) -> None:
    """The books open without finding a problem (resuming from the last flush, or folding
    anew if none was committed), to the rows and state of a fresh fold."""
    led = Ledger.open(sqlite_url(path))
    handler = _RebuildLines()
    logging.getLogger("ledger_net.projections.runner").addHandler(handler)
    try:
        runner = ProjectionRunner(led, subscribe=False)
        assert not [line for line in handler.lines if "rebuilding projection" in line], handler.lines
        fresh = runner.replay()
        assert runner.state_hash() == runner.state_hash(fresh)
        assert runner.offset == led.store.last_offset()
        want = {t: r for p in fresh for t, r in p.full_rows().items()}
        with led.store.engine.connect() as conn:
            for table, rows in want.items():
                stored = sorted(map(repr, (dict(r) for r in conn.execute(select(table)).mappings())))
                assert stored == sorted(map(repr, (dict(r) for r in rows))), table.name
            indexes = {ix["name"] for ix in inspect(conn).get_indexes(credit_history.name)}
        assert indexes == {"ix_credit_history_account"}
        assert audit(led, live=False)["ok"]
    finally:
        logging.getLogger("ledger_net.projections.runner").removeHandler(handler)
        led.close()


def _child(path: Path, fold_batch: int, rounds: int, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CHILD, sqlite_url(path), str(fold_batch), str(rounds)],
                            cwd=ROOT, env={**os.environ, **(env or {})}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_the_writer_process_stores_what_the_rebuild_folded(tmp_path, monkeypatch):
    path = tmp_path / "ledger.db"
    _books(path, 120)
    started = []
    real = writer_module.FlushWriter.__init__

    def counted(self, *args):  # type: ignore[no-untyped-def]
        started.append(args)
        real(self, *args)

    monkeypatch.setattr(writer_module.FlushWriter, "__init__", counted)
    led = Ledger.open(sqlite_url(path))
    try:
        runner = ProjectionRunner(led, subscribe=False, fold_batch=17)
        want = runner.state_hash()
        runner.rebuild()
        assert len(started) == 1  # 121 events, flushed every 17: the writer process ran
        assert runner.state_hash() == want
        monkeypatch.setattr(ProjectionRunner, "rebuild_writer", False)
        runner.rebuild()  # the same in this process
        assert runner.state_hash() == want
        monkeypatch.setattr(ProjectionRunner, "rebuild_writer", True)
        runner.rebuild()  # the writer's rows are the ones compared below
        assert len(started) == 2
    finally:
        led.close()
    _check(path)
    memory = Ledger.open("sqlite://", ISSUER)
    try:
        memory.create_network("writer", issuers=[ISSUER.node_id])
        for i in range(30):
            memory.append("credit.minted", {"to": ISSUER.node_id, "amount": 1 + i, "reason": "t"})
        ProjectionRunner(memory, subscribe=False, fold_batch=5).rebuild()
        assert len(started) == 2  # no writer process for an in-memory database
    finally:
        memory.close()


def test_sigkill_of_a_rebuild_at_random_instants_leaves_books_that_resume(tmp_path):
    """The rebuilding process is killed with SIGKILL at random instants (the writer it
    forked may be mid-transaction); each time the books open to a fresh fold's rows."""
    path = tmp_path / "ledger.db"
    _books(path, 400)
    rng = random.Random(13)
    kills = 0
    for _ in range(6):
        child = _child(path, fold_batch=rng.choice((23, 50, 97)), rounds=1000)
        assert child.stdout is not None and child.stdout.readline().strip() == "open", child.communicate()[1]
        time.sleep(rng.random() * 0.4)  # inside the first rebuilds
        child.send_signal(signal.SIGKILL)
        kills += child.wait(20) == -signal.SIGKILL
        _check(path)
    assert kills >= 4


@pytest.mark.parametrize("point", ["flush.mid_write:7", "flush.before_commit:3"])
def test_a_writer_killed_inside_a_flush_fails_the_rebuild_and_the_books_resume(tmp_path, point):
    """The writer dies at a crash point (SIGKILL) inside its second flush's transaction: the
    rebuild raises, the flush is not committed, and the next open resumes."""
    path = tmp_path / "ledger.db"
    _books(path, 200)
    child = _child(path, fold_batch=40, rounds=1, env={"LEDGER_NET_CRASH_AT": point})
    out, err = child.communicate(timeout=60)
    assert child.returncode != 0 and "writer process died" in err, (out, err)
    _check(path)
