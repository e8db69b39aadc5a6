"""One judge (ledger/judge.py) for the chain and the audit: an event is valid in an audit
exactly when a node accepts it with that verdict, and judging changes nothing."""

from __future__ import annotations

import pytest

from ledger_net.audit import verify_events
from ledger_net.errors import ChainError, SignatureError
from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.events import Event
from ledger_net.ledger.identity import Identity
from ledger_net.ledger.judge import judge
from ledger_net.ledger.snapshot import state_digest

FOUNDER = Identity.from_seed(bytes(range(32)))
STRANGER = Identity.from_seed(bytes(range(1, 33)))


def _founded() -> Ledger:
    ledger = Ledger.open("sqlite://", FOUNDER, signer_threads=1)
    ledger.create_network("judge", issuers=[FOUNDER.node_id])
    ledger.append("credit.minted", {"to": FOUNDER.node_id, "amount": 5, "reason": "test"})
    return ledger


def _by_stranger(net: str, type_: str, body: dict[str, object], seq: int = 1, prev: str | None = None) -> Event:
    return Event.create(STRANGER, net=net, seq=seq, prev=prev, type=type_, body=body)


def test_evidence_that_does_not_hold_is_invalid_for_the_chain_and_for_the_audit() -> None:
    ledger = _founded()
    try:
        net = ledger.net
        assert net is not None
        genesis = ledger.event(net)
        assert genesis is not None
        # Well-formed, but `a` and `b` are one event, not two inconsistent checkpoints.
        conflict = _by_stranger(net, "checkpoint.conflict", {
            "signer": FOUNDER.node_id, "seq": 1, "author": FOUNDER.node_id, "proof": [],
            "a": genesis.to_json(), "b": genesis.to_json()})
        report = ledger.ingest([conflict])
        assert conflict.hash in report.invalid  # the chain stores it, without effect
        audited = verify_events(ledger.store.select_events())
        assert audited.ok, audited.problems  # ...and the audit gives the same verdict
        assert (audited.events, audited.effective, audited.invalid) == (3, 2, 1)
    finally:
        ledger.close()


def test_judge_refuses_a_bad_signature_and_a_broken_link_and_changes_nothing() -> None:
    ledger = _founded()
    try:
        net = ledger.net
        assert net is not None
        state = ledger.state
        before = state_digest(state)
        seq, head = ledger.head()

        def next_event(amount: int, at: int = seq + 1, prev: str | None = head) -> Event:
            return Event.create(FOUNDER, net=net, seq=at, prev=prev, type="credit.transfer",
                                body={"to": STRANGER.node_id, "amount": amount})

        assert judge(state, next_event(5)) is None
        assert judge(state, next_event(6)) == ledger.state.evaluate(next_event(6)) is not None  # an overdraft
        good = next_event(1)
        forged = Event.from_stored(good.raw, bytes(64), good.hash)
        with pytest.raises(SignatureError):
            judge(state, forged)
        assert judge(state, forged, signature_checked=True) is None  # the caller's word is taken
        with pytest.raises(ChainError):
            judge(state, next_event(1, at=seq + 2, prev=good.hash))  # skips a seq
        with pytest.raises(ChainError):
            judge(state, next_event(1, prev=None))  # does not link to the head
        assert state_digest(state) == before
    finally:
        ledger.close()
