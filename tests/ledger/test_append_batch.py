"""Batches of local appends (`Ledger.append_batch`): digests are built in chain order while
signatures are made on the crypto pool (`CryptoPool.sign_as_built`), so each signature must
still be its own event's, every offset its own, and a batch is stored whole or not at all,
a kill -9 in the middle of its write included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ledger_net.errors import LedgerError
from ledger_net.ledger.chain import Ledger, RuleViolation
from ledger_net.ledger.crypto_pool import PARALLEL_FROM
from ledger_net.ledger.events import Event
from ledger_net.ledger.identity import Identity
from ledger_net.ledger.store import Store

ROOT = Path(__file__).resolve().parents[2]
ALICE = Identity.from_seed(bytes([51]) * 32)
BOB = Identity.from_seed(bytes([52]) * 32)
BATCH = 3 * PARALLEL_FROM + 7  # several turns of every signing thread, and a ragged end


def _open(url: str, threads: int) -> Ledger:
    led = Ledger.open(url, ALICE, signer_threads=threads)
    led.create_network("batches", issuers=[ALICE.node_id])
    led.append("credit.minted", {"to": ALICE.node_id, "amount": 10**9, "reason": "seed"})
    return led


def _transfers(n: int, start: int = 0) -> list[tuple[str, dict, tuple[str, ...]]]:
    return [("credit.transfer", {"to": BOB.node_id, "amount": 1 + (start + i) % 5}, ()) for i in range(n)]


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_a_batch_is_signed_linked_and_stored_in_order(tmp_path, threads):
    """Every signature verifies over its own event's bytes, each event names the one before,
    and the stored offsets are contiguous in seq order and are the ones the listeners got."""
    led = _open(f"sqlite:///{tmp_path}/a.db", threads)
    seen: list[tuple[int, str]] = []
    led.subscribe(lambda applied: seen.extend((a.offset, a.event.hash) for a in applied))
    try:
        first, last_before = led.head()[0] + 1, led.store.last_offset()
        for round_ in range(2):
            created = led.append_batch(_transfers(BATCH, round_ * BATCH))
            assert [e.seq for e in created] == list(range(first, first + BATCH))
            for before, event in zip(created, created[1:], strict=False):
                assert event.prev == before.hash
            first += BATCH
        stored = [r for r in led.stored(after=last_before)]
        assert [r.offset for r in stored] == list(range(last_before + 1, last_before + 2 * BATCH + 1))
        assert [r.seq for r in stored] == list(range(stored[0].seq, stored[0].seq + 2 * BATCH))
        assert seen == [(r.offset, r.hash) for r in stored]
        for r in stored:
            event = Event.from_wire(r.raw, r.sig)  # the stored bytes, parsed as a peer would
            assert event.hash == r.hash and event.verify_signature(), f"seq {r.seq}: not its own signature"
        assert led.head() == (stored[-1].seq, stored[-1].hash)
    finally:
        led.close()


@pytest.mark.parametrize("bad", ["dependency", "overdraft"])
def test_a_batch_refused_in_its_middle_stores_nothing_and_the_ledger_goes_on(tmp_path, bad):
    led = _open(f"sqlite:///{tmp_path}/a.db", 2)
    try:
        head, last = led.head(), led.store.last_offset()
        items = _transfers(BATCH)
        if bad == "dependency":  # refused while digests are built, on whichever thread builds it
            items[BATCH // 2] = ("credit.transfer", {"to": BOB.node_id, "amount": 1}, ("ab" * 32,))
            expected: type[Exception] = LedgerError
        else:  # refused when judged, after every signature is made
            items[BATCH // 2] = ("credit.transfer", {"to": BOB.node_id, "amount": 10**12}, ())
            expected = RuleViolation
        with pytest.raises(expected):
            led.append_batch(items)
        assert led.head() == head and led.store.last_offset() == last
        created = led.append_batch(_transfers(BATCH))
        assert created[0].seq == head[0] + 1 and created[0].prev == head[1]
        assert led.store.last_offset() == last + BATCH
    finally:
        led.close()


CHILD = textwrap.dedent("""
    import sys
    from ledger_net.ledger.chain import Ledger
    from ledger_net.ledger.identity import Identity
    led = Ledger.open(sys.argv[1], Identity.from_seed(bytes([51]) * 32), signer_threads=2)
    if led.net is None:
        led.create_network("batches", issuers=[led.node_id])
        led.append("credit.minted", {"to": led.node_id, "amount": 10**9, "reason": "seed"})
    size = int(sys.argv[3])
    while True:
        created = led.append_batch([("credit.transfer", {"to": sys.argv[2], "amount": 1}, ())] * size)
        print(created[-1].hash, flush=True)
""")


def _child(url: str, size: int, crash_at: str | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("LEDGER_NET_CRASH_AT", None)
    if crash_at:
        env["LEDGER_NET_CRASH_AT"] = crash_at
    return subprocess.Popen([sys.executable, "-c", CHILD, url, BOB.node_id, str(size)],
                            stdout=subprocess.PIPE, text=True, env=env)


def _transfer_seqs(url: str) -> list[int]:
    """Seqs of ALICE's transfers as another connection reads them: what is durable."""
    store = Store.open(url, upgrade=False)
    try:
        return [r.seq for r in store.select_events() if r.author == ALICE.node_id and r.type == "credit.transfer"]
    finally:
        store.close()


def _reopens_and_goes_on(url: str, transfers: int) -> None:
    led = Ledger.open(url, ALICE)
    try:
        assert led.head()[0] == 2 + transfers  # the genesis, the mint, the transfers
        assert led.append("credit.transfer", {"to": BOB.node_id, "amount": 1}).seq == 3 + transfers
    finally:
        led.close()


def test_kill_9_between_a_batchs_rows_and_its_commit_leaves_none_of_it(tmp_path):
    """The child dies (SIGKILL) after the third batch's events and Merkle nodes are written,
    before that transaction commits: the first two batches are there, none of the third."""
    url, size = f"sqlite:///{tmp_path}/a.db", BATCH
    # Writes before the batches: the genesis and the mint (one each); then one per batch.
    proc = _child(url, size, crash_at="events.mid_write:5")
    assert proc.stdout is not None
    acked = [line.strip() for line in proc.stdout]
    assert proc.wait(60) == -signal.SIGKILL and len(acked) == 2
    seqs = _transfer_seqs(url)
    assert seqs == list(range(3, 3 + 2 * size)), "a partial batch is visible"
    _reopens_and_goes_on(url, 2 * size)


def test_every_acknowledged_batch_survives_kill_9_and_none_is_partial(tmp_path):
    """Killed at whatever moment it is in (signing, judging, writing, committing), the child
    leaves every batch it acknowledged, and no part of any other."""
    url, size = f"sqlite:///{tmp_path}/a.db", 500
    acked: list[str] = []
    for _ in range(2):
        proc = _child(url, size)
        assert proc.stdout is not None
        for line in proc.stdout:
            acked.append(line.strip())
            if len(acked) % 3 == 0:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        seqs = _transfer_seqs(url)
        assert seqs == list(range(3, 3 + len(seqs))) and len(seqs) % size == 0, "a partial batch is visible"
        assert len(seqs) >= len(acked) * size
    store = Store.open(url, upgrade=False)
    try:
        assert all(store.get_event(h) is not None for h in acked)
    finally:
        store.close()
    _reopens_and_goes_on(url, len(_transfer_seqs(url)))
