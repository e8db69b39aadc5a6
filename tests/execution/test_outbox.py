"""The engine's outbox: a step's decisions commit together, a refused one alone is dropped."""

from __future__ import annotations

from ledger_net.execution.outbox import Outbox
from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.identity import Identity


def founded() -> Ledger:
    ledger = Ledger.open("sqlite://", Identity.from_seed(bytes([7]) * 32))
    ledger.create_network("outbox-test")
    ledger.append("credit.minted", {"to": ledger.node_id, "amount": 1_000, "reason": "test"})
    return ledger


def test_decisions_of_a_step_are_one_commit_in_order_with_callbacks() -> None:
    ledger = founded()
    outbox = Outbox(ledger)
    seen = []
    other = Identity.from_seed(bytes([8]) * 32).node_id
    for amount in (1, 2, 3):
        outbox.add("credit.transfer", {"to": other, "amount": amount}, on_event=seen.append)
    assert len(outbox) == 3 and ledger.store.last_offset() == 2
    events = outbox.flush()
    assert [e.body["amount"] for e in events] == [1, 2, 3] and seen == events and len(outbox) == 0
    assert [e.seq for e in events] == [3, 4, 5] and ledger.store.last_offset() == 5
    assert outbox.flush() == []
    ledger.close()


def test_a_refused_decision_is_dropped_alone_and_its_callback_hears_none() -> None:
    ledger = founded()
    outbox = Outbox(ledger)
    other = Identity.from_seed(bytes([8]) * 32).node_id
    heard = []
    outbox.add("credit.transfer", {"to": other, "amount": 10}, on_event=heard.append)
    outbox.add("credit.transfer", {"to": other, "amount": 10_000}, on_event=heard.append)  # more than held
    outbox.add("credit.transfer", {"to": other, "amount": 20}, on_event=heard.append)
    events = outbox.flush()
    assert events[1] is None and heard[1] is None
    assert [e.body["amount"] for e in (events[0], events[2])] == [10, 20] and heard[0] is events[0]
    assert ledger.state.spendable(ledger.node_id) == 1_000 - 30 and ledger.state.conserved()
    ledger.close()


def test_payments_queued_for_a_task_are_what_a_refund_must_leave() -> None:
    ledger = founded()
    outbox = Outbox(ledger)
    outbox.add("task.chunk_accepted", {"task_id": "t", "chunk": 0, "worker": "w", "payment": 7, "result_hash": None})
    outbox.add("task.chunk_accepted", {"task_id": "t", "chunk": 1, "worker": "w", "payment": 5, "result_hash": None})
    outbox.add("task.chunk_accepted", {"task_id": "u", "chunk": 0, "worker": "w", "payment": 100,
                                       "result_hash": None})
    assert outbox.payments("t") == 12 and outbox.payments("u") == 100 and outbox.payments("v") == 0
    ledger.close()


def test_the_engine_changes_memory_only_for_decisions_the_ledger_signed() -> None:
    """TaskEngine._commit queues each Emit in the outbox; its on_commit runs once the event is
    signed, with that event, and never for a refused one."""
    from ledger_net.execution.decisions import Emit
    from ledger_net.execution.engine import TaskEngine
    from ledger_net.projections import ProjectionRunner

    ledger = founded()
    engine = TaskEngine(ledger, ProjectionRunner(ledger), None, None, pricing=None, router=None)  # type: ignore[arg-type]
    other = Identity.from_seed(bytes([8]) * 32).node_id
    memory: list[int] = []
    engine._commit([Emit("credit.transfer", {"to": other, "amount": amount}, (),
                         lambda event: memory.append(event.body["amount"])) for amount in (10, 10_000, 20)])
    assert memory == []  # queued, not signed
    events = engine.outbox.flush()
    assert events[1] is None and memory == [10, 20]
    ledger.close()
