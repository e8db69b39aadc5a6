"""Projections fold long stretches of the log in bounded memory (issue 13 item 2).

The first catch-up of a big log and a rebuild used to fold every event and then flush
once, holding every history row of the log in memory. They now flush every
`fold_batch` events, each flush a consistent checkpoint, so a crash in the middle
resumes from the last one, and the result is the same as one fold.
"""

from __future__ import annotations

import pytest

from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.identity import Identity
from ledger_net.ledger.store import Store
from ledger_net.projections import ProjectionRunner
from ledger_net.projections.consistency import load_stored

ISSUER = Identity.from_seed(b"\x61" * 32)
BOB = Identity.from_seed(b"\x62" * 32)


def _log(url: str, transfers: int = 60) -> Ledger:
    led = Ledger(Store.open(url), ISSUER)
    led.create_network("batches", issuers=[ISSUER.node_id])
    led.append("credit.minted", {"to": ISSUER.node_id, "amount": 10**6, "reason": "t"})
    for i in range(transfers):
        led.append("credit.transfer", {"to": BOB.node_id, "amount": 1 + i})
    return led


class Recorder:
    """Wraps `ProjectionRunner._flush`: the offsets flushed and the history rows pending at each."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail_after: int | None = None) -> None:
        self.calls: list[tuple[int, int]] = []
        real = ProjectionRunner._flush
        recorder = self

        def wrapped(runner, projections, offset, *writer):  # type: ignore[no-untyped-def]
            pending = len(runner.by_name["balances"]._new_history)
            recorder.calls.append((offset, pending))
            if fail_after is not None and len(recorder.calls) > fail_after:
                raise RuntimeError("power cut")
            return real(runner, projections, offset, *writer)

        monkeypatch.setattr(ProjectionRunner, "_flush", wrapped)


def test_first_catch_up_flushes_as_it_goes(db_url, monkeypatch):
    led = _log(db_url)  # 62 events, no projections yet
    try:
        rec = Recorder(monkeypatch)
        runner = ProjectionRunner(led, subscribe=False, fold_batch=10)
        expected = runner.replay()  # fresh projections, one fold, nothing written
        offsets = [o for o, _ in rec.calls]
        assert offsets[:6] == [10, 20, 30, 40, 50, 60] and offsets[-1] == 62
        assert max(p for _, p in rec.calls) <= 2 * 10  # a transfer writes two history rows
        assert runner.state_hash() == runner.state_hash(expected)
        assert not load_stored(led, runner.projections, runner.context()).problems
    finally:
        led.close()


def test_rebuild_flushes_as_it_goes_and_resumes_after_a_crash(db_url, monkeypatch):
    led = _log(db_url)
    try:
        runner = ProjectionRunner(led, subscribe=False, fold_batch=10)
        want = runner.state_hash()
        rec = Recorder(monkeypatch, fail_after=3)  # the rebuild dies after three flushes
        with pytest.raises(RuntimeError, match="power cut"):
            runner.rebuild()
        assert [o for o, _ in rec.calls][:3] == [10, 20, 30]
        monkeypatch.undo()
        loaded = load_stored(led, runner.projections, runner.context())
        assert not loaded.problems and set(loaded.checkpoints.values()) == {30}
        again = ProjectionRunner(led, subscribe=False, fold_batch=10)  # resumes from offset 30
        assert again.state_hash() == want
    finally:
        led.close()


# --------------------------------------------------------------- memory saved with checkpoints
def _with_open_credits(url: str) -> Ledger:
    """A log whose balances projection holds open credits and an open voucher at the end."""
    led = _log(url, transfers=12)
    led.append("credit.voucher_issued", {"name": "v", "amount": 5})
    return led


def _derive_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from ledger_net.projections.balances import BalancesProjection

    calls: list[int] = []
    real = BalancesProjection._load_open_credits

    def counted(self, conn, offset):  # type: ignore[no-untyped-def]
        calls.append(offset)
        return real(self, conn, offset)

    monkeypatch.setattr(BalancesProjection, "_load_open_credits", counted)
    return calls


def test_reopening_reads_the_memory_instead_of_the_log(db_url, monkeypatch):
    led = _with_open_credits(db_url)
    try:
        runner = ProjectionRunner(led, subscribe=False)
        want = runner.state_hash()
        assert runner.balances.transit and runner.balances.vouchers
        calls = _derive_calls(monkeypatch)
        again = ProjectionRunner(led, subscribe=False)
        assert calls == []  # open credits and vouchers came from the stored memory
        assert again.state_hash() == want
        assert again.balances.transit == runner.balances.transit
        assert again.balances.vouchers == runner.balances.vouchers
    finally:
        led.close()


@pytest.mark.parametrize("spoil", ["digest", "offset", "code", "garbage"])
def test_unusable_memory_is_re_derived_from_the_log(db_url, monkeypatch, spoil):
    import hashlib

    import orjson
    from sqlalchemy import update

    from ledger_net.projections.tables import projection_memory

    led = _with_open_credits(db_url)
    try:
        runner = ProjectionRunner(led, subscribe=False)
        want, transit = runner.state_hash(), dict(runner.balances.transit)
        with led.store.engine.begin() as conn:
            data = bytes(conn.execute(projection_memory.select()).first().data)
            if spoil == "digest":
                values = {"digest": "0" * 64}
            elif spoil == "offset":
                values = {"offset": 1}
            else:
                if spoil == "code":
                    items = orjson.loads(data)
                    items[1] = "f" * 64
                    data = orjson.dumps(items)
                else:
                    data = b"[1, 2"
                values = {"data": data, "digest": hashlib.sha256(data).hexdigest()}
            conn.execute(update(projection_memory).values(**values))
        calls = _derive_calls(monkeypatch)
        again = ProjectionRunner(led, subscribe=False)
        assert calls  # re-derived
        assert again.state_hash() == want and again.balances.transit == transit
    finally:
        led.close()
