"""The owner's bookkeeping (execution/owner.py) and chunk verdicts (execution/results.py) without
a network: quorum verdicts."""

from __future__ import annotations

from ledger_net.execution import results
from ledger_net.execution.owner import Attempt, ChunkWork, OwnedTask


def judge(owned: OwnedTask, chunk: ChunkWork) -> tuple[str, list[Attempt], list[Attempt]]:
    """The verdict on ``chunk`` as memory stands, with the attempts that won and lost."""
    outcome, winners, losers = results.verdict(chunk, owned.quorum)
    return outcome, [r.attempt for r in winners], [r.attempt for r in losers]


def task(replicas: int, quorum: int) -> tuple[OwnedTask, ChunkWork]:
    chunk = ChunkWork(0, {"x": 1}, None)
    owned = OwnedTask("t", "range_reduce", {}, {}, 2, replicas, quorum, 100, 5.0, [chunk])
    return owned, chunk


def attempt(chunk: ChunkWork, worker: str, result: str | None, ok: bool | None = True) -> Attempt:
    a = Attempt(worker, f"assign-{worker}", 10, 1e18)
    if result is not None or ok is False:
        a.ok, a.result_hash = ok, result
    chunk.attempts.append(a)
    return a


def test_quorum_waits_for_every_replica_before_judging() -> None:
    owned, chunk = task(3, 2)
    attempt(chunk, "a", "h1")
    attempt(chunk, "b", "h1")
    late = attempt(chunk, "c", None, ok=None)  # still running
    assert judge(owned, chunk) == ("wait", [], [])
    late.ok, late.result_hash = True, "h2"  # a different (wrong) answer arrives
    verdict, winners, losers = judge(owned, chunk)
    assert verdict == "accept"
    assert [a.worker for a in winners] == ["a", "b"] and [a.worker for a in losers] == ["c"]


def test_quorum_accepts_once_a_silent_replica_timed_out() -> None:
    owned, chunk = task(3, 2)
    attempt(chunk, "a", "h1")
    attempt(chunk, "b", "h1")
    dead = attempt(chunk, "c", None, ok=None)
    dead.ok, dead.error = False, "timed out"
    verdict, winners, losers = judge(owned, chunk)
    assert verdict == "accept" and [a.worker for a in losers] == ["c"]


def test_quorum_out_of_reach_retries() -> None:
    owned, chunk = task(3, 2)
    attempt(chunk, "a", "h1")
    attempt(chunk, "b", "h2")
    attempt(chunk, "c", None, ok=False)
    verdict, _, losers = judge(owned, chunk)
    assert verdict == "retry" and [a.worker for a in losers] == ["c"]
    assert results.missing_attempts(chunk, owned.quorum) == 1


def test_single_replica_accepts_its_result() -> None:
    owned, chunk = task(1, 1)
    attempt(chunk, "a", "h1")
    assert judge(owned, chunk)[0] == "accept"
