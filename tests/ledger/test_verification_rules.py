"""Issue 12: the rules check a verdict's revealed secret against the commitment its assignment
made. The owner commits to its check's secret in the assignment and reveals it in the verdict; a
verdict (or a replica's assignment) revealing any other secret could have chosen its check or its
trust coin after seeing the result, so every peer refuses it."""

from __future__ import annotations

from typing import Any

import pytest

from ledger_net.compute.checks import commitment
from ledger_net.ledger.chain import Ledger, RuleViolation
from ledger_net.ledger.events import Event
from ledger_net.ledger.identity import Identity

ALICE = Identity.from_seed(bytes([1]) * 32)  # the issuer, and the owner here
CAROL = Identity.from_seed(bytes([3]) * 32)
DAVE = Identity.from_seed(bytes([4]) * 32)
SECRET, OTHER = bytes([7]) * 32, bytes([8]) * 32


@pytest.fixture
def owner():
    led = Ledger.open("sqlite://", ALICE)
    led.create_network("test", issuers=[ALICE.node_id])
    led.append("credit.minted", {"to": ALICE.node_id, "amount": 100, "reason": "seed"})
    led.append("task.submitted", {"task_id": "job", "task_type": "matrix_ops", "escrow": 60, "max_price": 30,
                                  "chunks": 2, "spec": {}})
    led.append("task.assigned", {"task_id": "job", "chunk": 0, "worker": CAROL.node_id, "price": 20,
                                 "check_commit": commitment(SECRET)})
    yield led
    led.close()


def verification(secret: bytes, action: str = "check") -> dict[str, Any]:
    return {"secret": secret.hex(), "mode": "check", "decision": {"action": action, "rate_ppm": 1_000_000,
                                                                 "streak": 0, "lies": 0},
            "check": {"method": "freivalds", "passed": True, "rounds": 8}}


def accept(secret: bytes, chunk: int = 0) -> dict[str, Any]:
    return {"task_id": "job", "chunk": chunk, "worker": CAROL.node_id, "payment": 20,
            "verification": verification(secret)}


def test_a_verdict_revealing_another_secret_is_refused(owner: Ledger) -> None:
    with pytest.raises(RuleViolation, match="matches no commitment of chunk 0"):
        owner.append("task.chunk_accepted", accept(OTHER))
    with pytest.raises(RuleViolation, match="matches no commitment"):
        owner.append("task.chunk_rejected", {"task_id": "job", "chunk": 0, "worker": CAROL.node_id, "reason": "x",
                                             "verification": verification(OTHER)})
    with pytest.raises(RuleViolation, match="matches no commitment"):  # a replica must name the same secret
        owner.append("task.assigned", {"task_id": "job", "chunk": 0, "worker": DAVE.node_id, "price": 20,
                                       "replica": 1, "verification": verification(OTHER, "replicate")})
    assert owner.state.open_credits_to(CAROL.node_id) == []


def test_every_peer_refuses_it_when_it_is_signed_anyway(owner: Ledger) -> None:
    seq, head = owner.head(ALICE.node_id)
    forged = Event.create(ALICE, net=owner.net, seq=seq + 1, prev=head, type="task.chunk_accepted",
                          body=accept(OTHER), deps=())
    peer = Ledger.open("sqlite://", None)
    try:
        peer.ingest([Event.from_wire(r.raw, r.sig) for r in owner.stored()])
        report = peer.ingest([forged])
        assert "matches no commitment of chunk 0" in report.invalid[forged.hash]
        assert peer.state.open_credits_to(CAROL.node_id) == [] and peer.state.conserved()
    finally:
        peer.close()


def test_the_committed_secret_is_accepted_for_its_own_chunk_only(owner: Ledger) -> None:
    owner.append("task.assigned", {"task_id": "job", "chunk": 0, "worker": DAVE.node_id, "price": 20,
                                   "replica": 1, "verification": verification(SECRET, "replicate")})
    pay = owner.append("task.chunk_accepted", accept(SECRET))
    assert owner.state.open_credits_to(CAROL.node_id) == [(pay.hash, 20)]
    owner.append("task.assigned", {"task_id": "job", "chunk": 1, "worker": CAROL.node_id, "price": 10})
    with pytest.raises(RuleViolation, match="matches no commitment of chunk 1"):  # chunk 0's secret
        owner.append("task.chunk_accepted", dict(accept(SECRET, chunk=1), payment=10))
