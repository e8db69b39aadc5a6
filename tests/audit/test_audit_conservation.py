"""verify_events checks conservation in windows of events (summing every account after each event
made verify O(events x accounts)); a break is still found, and named by its window's last event."""

from __future__ import annotations

from typing import Any

import pytest

from ledger_net import audit
from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.identity import Identity
from ledger_net.ledger.rules import LedgerState

ALICE = Identity.from_seed(bytes(range(32)))


def books(mints: int) -> Ledger:
    ledger = Ledger.open("sqlite://", ALICE)
    ledger.create_network("conservation", issuers=[ALICE.node_id])
    for i in range(mints):
        ledger.append("credit.minted", {"to": ALICE.node_id, "amount": 1 + i, "reason": "test"})
    return ledger


def test_a_sound_ledger_conserves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit, "CONSERVATION_EVERY", 7)
    ledger = books(30)
    try:
        report = audit.verify_events(ledger.store.select_events())
        assert report.ok and report.events == 31, report.problems
    finally:
        ledger.close()


@pytest.mark.parametrize("every", [1, 7, 1024])
def test_a_rule_that_creates_money_is_caught(monkeypatch: pytest.MonkeyPatch, every: int) -> None:
    monkeypatch.setattr(audit, "CONSERVATION_EVERY", every)
    ledger = books(30)
    rows = list(ledger.store.select_events())
    ledger.close()
    bad = rows[12].hash
    real_apply = LedgerState.apply

    def buggy_apply(self: LedgerState, event: Any, reason: str | None) -> None:
        real_apply(self, event, reason)
        if event.hash == bad:  # a rule bug: one unit appears from nothing
            self.account(event.author).balance += 1

    monkeypatch.setattr(LedgerState, "apply", buggy_apply)
    report = audit.verify_events(rows)
    broken = [p for p in report.problems if "conservation broken" in p.problem]
    assert broken, report.problems
    first = rows.index(next(r for r in rows if r.hash == broken[0].hash))
    assert first >= 12 and first - 12 < every  # named by the end of the window holding the bad event
