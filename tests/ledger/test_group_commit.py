"""Group commit (ledger/commit.py): concurrent appenders share a commit, each returns only
once its events are durable, a failing append loses nobody else's, and an author's chain
and the listeners keep the order of judging."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from ledger_net.ledger.chain import Ledger, RuleViolation
from ledger_net.ledger.commit import GroupFailed
from ledger_net.ledger.events import Event
from ledger_net.ledger.identity import Identity
from ledger_net.ledger.store import Store

ROOT = Path(__file__).resolve().parents[2]
ALICE = Identity.from_seed(bytes([41]) * 32)
BOB = Identity.from_seed(bytes([42]) * 32)
THREADS = 8


@pytest.fixture
def alice(tmp_path):
    led = Ledger.open(f"sqlite:///{tmp_path}/alice.db", ALICE)
    led.create_network("group", issuers=[ALICE.node_id])
    led.append("credit.minted", {"to": ALICE.node_id, "amount": 10**9, "reason": "seed"})
    yield led
    led.close()


def _stored_by_another_connection(url: str) -> list[tuple[int, str, int, bytes]]:
    """(offset, hash, seq, raw) of every event, read through a store of its own: what is durable."""
    store = Store.open(url, upgrade=False)
    try:
        return [(r.offset, r.hash, r.seq, r.raw) for r in store.select_events()]
    finally:
        store.close()


class GatedWrite:
    """Wraps the store's write: the first call waits at the gate (so others queue behind
    it), and `fail` makes the next call raise instead of writing."""

    def __init__(self, store: Store) -> None:
        self.real = store.write
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.fail: BaseException | None = None
        self.sizes: list[int] = []

    def __call__(self, rows, void_rows=(), snapshot=None):
        if not self.entered.is_set():
            self.entered.set()
            self.gate.wait(30)
        if self.fail is not None:
            exc, self.fail = self.fail, None
            raise exc
        self.sizes.append(len(rows))
        return self.real(rows, void_rows, snapshot)


def _queued(ledger: Ledger) -> int:
    return sum(len(w.rows) for w in ledger._group._queue)


def _wait_queued(ledger: Ledger, n: int) -> None:
    for _ in range(3000):
        if _queued(ledger) >= n:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"only {_queued(ledger)} events queued, expected {n}")


def _run(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive()


def test_appends_queued_during_a_commit_share_the_next_one(alice, tmp_path, monkeypatch):
    gated = GatedWrite(alice.store)
    monkeypatch.setattr(alice.store, "write", gated)
    results: dict[int, Event] = {}

    def append(i: int) -> None:
        results[i] = alice.append("credit.transfer", {"to": BOB.node_id, "amount": i + 1})

    first = threading.Thread(target=append, args=(0,))
    first.start()
    assert gated.entered.wait(30)  # the first commit is running (held at the gate)
    others = [threading.Thread(target=append, args=(i,)) for i in range(1, THREADS)]
    for t in others:
        t.start()
    _wait_queued(alice, THREADS - 1)
    assert not results  # nobody returned before its commit
    gated.gate.set()
    for t in [first, *others]:
        t.join(60)
    assert gated.sizes == [1, THREADS - 1]  # one commit for the first, one for all who queued behind it
    durable = {h for _, h, _, _ in _stored_by_another_connection(f"sqlite:///{tmp_path}/alice.db")}
    assert {e.hash for e in results.values()} <= durable


def test_concurrent_appenders_are_all_durable_in_chain_order(alice, tmp_path):
    per = 25
    seen: list[int] = []
    alice.subscribe(lambda applied: seen.extend(a.offset for a in applied))
    returned: list[Event] = []
    lock = threading.Lock()

    def work(who: int) -> None:
        for i in range(per):
            event = alice.append("credit.transfer", {"to": BOB.node_id, "amount": 1000 * who + i + 1})
            with lock:
                returned.append(event)

    _run([threading.Thread(target=work, args=(w,)) for w in range(THREADS)])
    stored = _stored_by_another_connection(f"sqlite:///{tmp_path}/alice.db")
    assert {e.hash for e in returned} <= {h for _, h, _, _ in stored}
    mine = [(o, s) for o, _, s, raw in stored if b'"credit.transfer"' in raw]
    assert len(mine) == THREADS * per
    assert [s for _, s in mine] == sorted(s for _, s in mine)  # offsets follow the author's seq
    assert [s for _, s in mine] == list(range(mine[0][1], mine[0][1] + THREADS * per))  # no gap
    # each appender's own events are in its order in the chain
    by_seq = {e.seq: e.body["amount"] for e in returned}
    for who in range(THREADS):
        amounts = [a for _, a in sorted(by_seq.items()) if a // 1000 == who]
        assert amounts == [1000 * who + i + 1 for i in range(per)]
    assert seen == sorted(seen) and len(seen) == len(set(seen))  # listeners: commit order, once each
    assert alice.head() == (stored[-1][2], stored[-1][1])


def test_a_refused_append_loses_no_one_else(alice, tmp_path):
    errors: list[BaseException] = []
    returned: list[Event] = []
    lock = threading.Lock()

    def work(who: int) -> None:
        for i in range(10):
            body = {"to": BOB.node_id, "amount": 10**12 if (who, i) == (3, 4) else 1}  # one overdraft
            try:
                event = alice.append("credit.transfer", body)
            except RuleViolation as exc:
                with lock:
                    errors.append(exc)
                continue
            with lock:
                returned.append(event)

    _run([threading.Thread(target=work, args=(w,)) for w in range(THREADS)])
    assert len(errors) == 1 and len(returned) == THREADS * 10 - 1
    durable = {h for _, h, _, _ in _stored_by_another_connection(f"sqlite:///{tmp_path}/alice.db")}
    assert {e.hash for e in returned} <= durable


def test_a_failed_commit_fails_its_group_and_what_queued_after_it_then_the_ledger_carries_on(
        alice, tmp_path, monkeypatch):
    gated = GatedWrite(alice.store)
    gated.fail = OSError("disk gone")
    monkeypatch.setattr(alice.store, "write", gated)
    outcome: dict[int, object] = {}

    def append(i: int) -> None:
        try:
            outcome[i] = alice.append("credit.transfer", {"to": BOB.node_id, "amount": i + 1})
        except (OSError, GroupFailed) as exc:
            outcome[i] = exc

    first = threading.Thread(target=append, args=(0,))
    first.start()
    assert gated.entered.wait(30)
    others = [threading.Thread(target=append, args=(i,)) for i in range(1, 4)]
    for t in others:
        t.start()
    _wait_queued(alice, 3)
    gated.gate.set()
    for t in [first, *others]:
        t.join(60)
    assert isinstance(outcome[0], OSError)  # the group whose write failed
    assert all(isinstance(outcome[i], GroupFailed) for i in range(1, 4))  # judged on top of it: not stored
    url = f"sqlite:///{tmp_path}/alice.db"
    assert len(_stored_by_another_connection(url)) == 2  # genesis and mint only
    after = alice.append("credit.transfer", {"to": BOB.node_id, "amount": 5})
    assert after.seq == 3 and alice.state.spendable(ALICE.node_id) == 10**9 - 5
    assert [h for _, h, _, _ in _stored_by_another_connection(url)][-1] == after.hash


def test_ingests_and_appends_at_once_keep_offsets_and_listeners_in_order(alice, tmp_path):
    bob = Ledger.open("sqlite://", BOB)
    try:
        bob.ingest([Event.from_wire(r.raw, r.sig) for r in alice.stored()])
        bob_events = [bob.append("node.joined", {"name": f"bob{i}", "node_type": "public"}) for i in range(60)]
    finally:
        bob.close()
    seen: list[int] = []
    alice.subscribe(lambda applied: seen.extend(a.offset for a in applied))

    def ingest() -> None:
        for i in range(0, len(bob_events), 5):
            alice.ingest(bob_events[i:i + 5])

    def append() -> None:
        for i in range(30):
            alice.append("credit.transfer", {"to": BOB.node_id, "amount": i + 1})

    _run([threading.Thread(target=ingest), *[threading.Thread(target=append) for _ in range(4)]])
    stored = _stored_by_another_connection(f"sqlite:///{tmp_path}/alice.db")
    assert {e.hash for e in bob_events} <= {h for _, h, _, _ in stored}
    assert len(stored) == 2 + 60 + 4 * 30  # alice's two, bob's joins, the transfers
    assert seen == [o for o, _, _, _ in stored][2:]  # every commit, in offset order


CHILD = textwrap.dedent("""
    import sys, threading
    from ledger_net.ledger.chain import Ledger
    from ledger_net.ledger.identity import Identity
    led = Ledger.open(sys.argv[1], Identity.from_seed(bytes([41]) * 32))
    if led.net is None:
        led.create_network("group", issuers=[led.node_id])
        led.append("credit.minted", {"to": led.node_id, "amount": 10**9, "reason": "seed"})
    out = threading.Lock()
    def work():
        while True:
            e = led.append("credit.transfer", {"to": sys.argv[2], "amount": 1})
            with out:
                print(e.hash, flush=True)
    for _ in range(8):
        threading.Thread(target=work, daemon=True).start()
    threading.Event().wait()
""")


def test_every_acknowledged_append_survives_kill_9_under_concurrency(tmp_path):
    """8 threads append in a child process that prints each event once append returns;
    after SIGKILL every printed event is in the database, and the ledger reopens and goes on."""
    url = f"sqlite:///{tmp_path}/alice.db"
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    acked: set[str] = set()
    for _ in range(2):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, url, BOB.node_id],
                                stdout=subprocess.PIPE, text=True, env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            acked.add(line.strip())
            if len(acked) % 300 == 0:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert acked <= {h for _, h, _, _ in _stored_by_another_connection(url)}
    led = Ledger.open(url, ALICE)
    try:
        seqs = [r.seq for r in led.stored() if r.author == ALICE.node_id]
        assert seqs == list(range(1, len(seqs) + 1))
        assert led.append("credit.transfer", {"to": BOB.node_id, "amount": 1}).seq == len(seqs) + 1
    finally:
        led.close()
