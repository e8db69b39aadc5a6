"""Projections fold long stretches of the log in bounded memory (issue 13 item 2).

The first catch-up of a big log and a rebuild used to fold every event and then flush
once, holding every history row of the log in memory. They now flush every
`flush_every` events, each flush a consistent checkpoint, so a crash in the middle
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

        def wrapped(runner, projections, offset):  # type: ignore[no-untyped-def]
            pending = len(runner.by_name["balances"]._new_history)
            recorder.calls.append((offset, pending))
            if fail_after is not None and len(recorder.calls) > fail_after:
                raise RuntimeError("power cut")
            return real(runner, projections, offset)

        monkeypatch.setattr(ProjectionRunner, "_flush", wrapped)


def test_first_catch_up_flushes_as_it_goes(db_url, monkeypatch):
    led = _log(db_url)  # 62 events, no projections yet
    try:
        rec = Recorder(monkeypatch)
        runner = ProjectionRunner(led, subscribe=False, flush_every=10)
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
        runner = ProjectionRunner(led, subscribe=False, flush_every=10)
        want = runner.state_hash()
        rec = Recorder(monkeypatch, fail_after=3)  # the rebuild dies after three flushes
        with pytest.raises(RuntimeError, match="power cut"):
            runner.rebuild()
        assert [o for o, _ in rec.calls][:3] == [10, 20, 30]
        monkeypatch.undo()
        loaded = load_stored(led, runner.projections, runner.context())
        assert not loaded.problems and set(loaded.checkpoints.values()) == {30}
        again = ProjectionRunner(led, subscribe=False, flush_every=10)  # resumes from offset 30
        assert again.state_hash() == want
    finally:
        led.close()
