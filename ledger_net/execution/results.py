"""Chunk verdicts: which replicas of a chunk win, which lose, and what the owner signs for it.

Pure: a chunk's attempts, the time and who is frozen in, decisions out (``task.chunk_accepted``
with the payment, ``task.chunk_rejected`` with a complaint, a retry count, or the task's
failure). A replica that is late or whose worker is a proven forker is judged failed *for this
verdict* without touching memory: memory learns it when the rejection commits, and until then
every step re-derives the same judgement from the same deadline.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..compute.compare import Report, centred_groups
from ..compute.trust import REPLICATE, Standing
from ..compute.verdicts import Judgement
from ..ledger.events import Event
from .decisions import Emit
from .owner import Attempt, ChunkWork, OwnedTask

PPM = 1_000_000
NEVER = float("inf")


@dataclass(frozen=True)
class Replica:
    """An attempt as judged now: its report, or its expiry (late, or its worker frozen)."""

    attempt: Attempt
    ok: bool | None
    error: str | None

    @property
    def worker(self) -> str:
        return self.attempt.worker


def replicas(chunk: ChunkWork, now: float = -NEVER, frozen: Container[str] = ()) -> list[Replica]:
    """Every attempt of ``chunk`` as judged at ``now``."""
    out = []
    for a in chunk.attempts:
        ok, error = a.ok, a.error
        if ok is None and a.worker not in chunk.rejected_workers:
            if a.worker in frozen:
                ok, error = False, "worker is a proven forker"
            elif now > a.deadline:
                ok, error = False, "timed out"
        out.append(Replica(a, ok, error))
    return out


def open_replicas(chunk: ChunkWork, now: float = -NEVER, frozen: Container[str] = ()) -> list[Replica]:
    """Attempts still out: not reported, not expired, their worker not rejected."""
    return [r for r in replicas(chunk, now, frozen) if r.ok is None and r.worker not in chunk.rejected_workers]


Agree = Callable[[Attempt, Attempt], bool]
Judge = Callable[[OwnedTask, ChunkWork, Attempt, Standing], Judgement | None]  # None: not judged yet


def _same_hash(a: Attempt, b: Attempt) -> bool:
    return a.result_hash == b.result_hash


def _groups(reported: list[Replica], agree: Agree | None, rejected: Container[str] = ()) -> list[tuple[Replica, ...]]:
    """The ok reports grouped around centres (compute.compare.centred_groups): results that agree
    with one centre, by hash or, for float results, within the task type's bound; best first.
    A report whose worker this chunk already rejected (it lost, or failed the owner's check) never
    counts again."""
    same = agree or _same_hash
    reports = [Report(r.worker, r.attempt.result_hash or "", r) for r in reported if r.ok and r.worker not in rejected]
    groups = centred_groups(reports, lambda x, y: x.result_hash == y.result_hash
                            or same(x.value.attempt, y.value.attempt))
    return [tuple(m.value for m in members) for _, members in groups]


def verdict(chunk: ChunkWork, quorum: int, now: float = -NEVER, frozen: Container[str] = (),
            agree: Agree | None = None) -> tuple[str, list[Replica], list[Replica]]:
    """('accept', winners, losers) once a quorum agrees and no replica is still out; ('retry', [], losers)
    when the reported results cannot reach one; ('wait', [], []) otherwise. Results agree by hash, or by
    ``agree`` (the task's comparison per result kind: float results within their bound)."""
    judged = replicas(chunk, now, frozen)
    reported = [r for r in judged if r.ok is not None]
    groups = _groups(reported, agree, chunk.rejected_workers)
    outstanding = len([r for r in judged if r.ok is None and r.worker not in chunk.rejected_workers])
    best = len(groups[0]) if groups else 0
    # Judge only once every replica has reported or timed out: a result that
    # would disagree with the quorum must not slip through unjudged (unpaid, yet
    # without the complaint it earned) because two others were faster.
    if best >= quorum and not outstanding:
        group = list(groups[0])
        return "accept", group, [r for r in reported if r not in group]
    if best + outstanding < quorum:
        return "retry", [], [r for r in reported if not r.ok]
    return "wait", [], []


def missing_attempts(chunk: ChunkWork, quorum: int, now: float = -NEVER, frozen: Container[str] = (),
                     agree: Agree | None = None) -> int:
    """How many more workers a chunk needs for a quorum to be still reachable."""
    groups = _groups(replicas(chunk, now, frozen), agree, chunk.rejected_workers)
    best = len(groups[0]) if groups else 0
    return max(0, quorum - best - len(open_replicas(chunk, now, frozen)))


def accepted_result(attempts: list[Attempt]) -> Attempt:
    """Whose bytes a chunk keeps among its paid replicas: the smallest result hash, so every peer
    re-deriving the verdict picks the same one whatever order it saw the payments in."""
    return min(attempts, key=lambda a: (a.result_hash or "", a.worker))


def feedback(task_id: str, worker: str, positive: bool) -> Emit:
    return Emit("reputation.feedback", {"subject": worker, "task_id": task_id, "positive": positive,
                                        "quality_ppm": PPM if positive else 0, "weight_ppm": PPM})


@dataclass
class Settlement:
    """What one look at a running task decided: events, chunks to reassign (index → how many
    workers), the failure that ends it, and each chunk's accepted attempt (settled before or now)."""

    emits: list[Emit] = field(default_factory=list)
    retry: dict[int, int] = field(default_factory=dict)
    replicate: dict[int, dict[str, Any]] = field(default_factory=dict)  # chunk -> the decision's record
    failure: str | None = None
    accepted: dict[int, Attempt] = field(default_factory=dict)


def settle(task: OwnedTask, now: float, *, me: str, frozen: Container[str],
           rated: Callable[[str, str], bool],
           agree: Callable[[OwnedTask, ChunkWork, Attempt, Attempt], bool] | None = None,
           judge: Judge | None = None, standings: Mapping[str, Standing] | None = None,
           pending: dict[str, Standing] | None = None) -> Settlement:
    """Judge every unsettled chunk of ``task``: complaints and rejections for losers, payment for
    winners, retries while a quorum is reachable, failure once a chunk used up its attempts.
    ``agree`` compares two results of one chunk per the task's result kind (None: by hash). A task
    verified one replica at a time (``task.single_verified()``) has each result judged by ``judge``
    (the adaptive policy on the worker's standing, then the owner's check when it says so).

    ``pending``: the standings this look's verdicts moved, not yet committed (shared by the tasks of
    one look, and moved here too). A decision uses the standing the owner's verdicts signed before it
    give, so an auditor folding the log re-derives it: every verdict of a replicated chunk comes
    first, then the results judged alone in order, and the replicas they ask for are assigned after."""
    out = Settlement()
    complained: set[str] = set()
    pending = {} if pending is None else pending
    singles: list[tuple[ChunkWork, Replica]] = []
    for chunk in task.unsettled():
        same = _bound(agree, task, chunk)
        quorum = task.quorum_of(chunk)
        outcome, winners, losers = verdict(chunk, quorum, now, frozen, same)
        if outcome == "accept" and judge is not None and task.single_verified() and chunk.replication is None \
                and len(winners) == 1 and winners[0].worker not in frozen:
            singles.append((chunk, winners[0]))
            continue
        record = {"verification": chunk.replication} if chunk.replication is not None else {}
        _reject(task, chunk, losers, record, out, complained, me, rated, pending, standings)
        if outcome == "accept":
            payable = [w.attempt for w in winners if w.worker not in frozen]
            for winner in payable:
                out.emits.append(Emit("task.chunk_accepted", {
                    "task_id": task.task_id, "chunk": chunk.index, "worker": winner.worker,
                    "payment": winner.price, "result_hash": winner.result_hash, **record},
                    tuple(x for x in (winner.event,) if x), _accepted(chunk, winner)))
                if record:
                    _moved(pending, standings, winner.worker, True)
            if payable:
                out.accepted[chunk.index] = accepted_result(payable)
            else:
                chunk.settled = True  # nobody to pay (every winner frozen): nothing to sign, nothing refused
        elif outcome == "retry" or missing_attempts(chunk, quorum, now, frozen, same):
            failed = [r for r in replicas(chunk, now, frozen) if r.ok is False]
            if len(failed) >= task.max_attempts * task.replicas:
                last = next((r.error for r in reversed(failed) if r.error), "no valid result")
                out.failure = f"chunk {chunk.index} failed after {len(chunk.attempts)} attempts: {last}"[:4000]
                return out
            out.retry[chunk.index] = max(1, missing_attempts(chunk, quorum, now, frozen, same))
    for chunk, alone in singles:
        assert judge is not None
        _judge_single(task, chunk, alone, judge, (standings or {}), pending, out,
                      complained if alone.worker != me else {me}, rated)
    for chunk in task.chunks:
        if chunk.settled and chunk.accepted:
            out.accepted.setdefault(chunk.index, accepted_result(chunk.accepted))
    return out


def _reject(task: OwnedTask, chunk: ChunkWork, losers: list[Replica], record: dict[str, Any], out: Settlement,
            complained: set[str], me: str, rated: Callable[[str, str], bool], pending: dict[str, Standing],
            standings: Mapping[str, Standing] | None) -> None:
    """Rejections (and one complaint per task and worker) for a chunk's losers. A replicated chunk's
    loser that reported a result was caught lying (``record`` moves its standing); one that failed
    or timed out was not."""
    for loser in losers:
        if loser.worker in chunk.rejected_workers:
            continue
        out.emits.append(Emit("task.chunk_rejected", {
            "task_id": task.task_id, "chunk": chunk.index, "worker": loser.worker,
            "reason": (loser.error or "result lost the quorum")[:4000], **(record if loser.ok else {})}, (),
            _rejected(chunk, loser)))
        if record and loser.ok:
            _moved(pending, standings, loser.worker, False)
        if loser.worker != me and loser.worker not in complained and not rated(task.task_id, loser.worker):
            complained.add(loser.worker)  # once per task and subject
            out.emits.append(feedback(task.task_id, loser.worker, False))


def _moved(pending: dict[str, Standing], standings: Mapping[str, Standing] | None, worker: str,
           passed: bool) -> None:
    """A verdict of this look verified ``worker``: its standing moves now for the decisions after it."""
    pending[worker] = (pending.get(worker) or (standings or {}).get(worker, Standing())).after(passed)


def _judge_single(task: OwnedTask, chunk: ChunkWork, replica: Replica, judge: Judge, standings: Mapping[str, Standing],
                  pending: dict[str, Standing], out: Settlement, complained: set[str],
                  rated: Callable[[str, str], bool]) -> None:
    """One replica's result judged alone: accepted with the record of why it was trusted or how it
    was checked, or rejected (a complaint, no pay, the chunk reassigned) when the check fails."""
    winner = replica.attempt
    standing = pending.get(winner.worker) or standings.get(winner.worker, Standing())
    judged = judge(task, chunk, winner, standing)
    if judged is None:  # its check is still running (off the engine's loop): look again when it is done
        return
    if judged.action == REPLICATE:  # a second worker runs it; the two must agree (quorum_of)
        out.replicate[chunk.index] = judged.record
        out.retry[chunk.index] = 1
        return
    if judged.action == "check":
        pending[winner.worker] = standing.after(judged.passed is True)
    if judged.passed is False:
        method = (judged.record.get("check") or {}).get("method", "check")
        out.emits.append(Emit("task.chunk_rejected", {
            "task_id": task.task_id, "chunk": chunk.index, "worker": winner.worker,
            "reason": f"the result failed the owner's {method} check", "verification": judged.record},
            (), _rejected(chunk, replica)))
        if winner.worker not in complained and not rated(task.task_id, winner.worker):
            complained.add(winner.worker)  # once per task and subject; never the owner itself
            out.emits.append(feedback(task.task_id, winner.worker, False))
        out.retry[chunk.index] = 1
        return
    out.emits.append(Emit("task.chunk_accepted", {
        "task_id": task.task_id, "chunk": chunk.index, "worker": winner.worker, "payment": winner.price,
        "result_hash": winner.result_hash, "verification": judged.record},
        tuple(x for x in (winner.event,) if x), _accepted(chunk, winner)))
    out.accepted[chunk.index] = winner


def _bound(agree: Callable[[OwnedTask, ChunkWork, Attempt, Attempt], bool] | None, task: OwnedTask,
           chunk: ChunkWork) -> Agree | None:
    if agree is None:
        return None
    return lambda a, b: agree(task, chunk, a, b)


def _rejected(chunk: ChunkWork, loser: Replica) -> Callable[[Event], None]:
    def commit(_: Event) -> None:
        if loser.attempt.ok is None:  # an expiry becomes the attempt's outcome only now
            loser.attempt.ok, loser.attempt.error = False, loser.error
        chunk.rejected_workers.add(loser.worker)
    return commit


def _accepted(chunk: ChunkWork, winner: Attempt) -> Callable[[Event], None]:
    def commit(_: Event) -> None:
        if winner not in chunk.accepted:
            chunk.accepted.append(winner)
        chunk.settled = True
    return commit


def paid_workers(task: OwnedTask, emits: list[Emit]) -> set[str]:
    """Workers of the task paid something (praise is for paid work: the rules refuse it after a
    zero payment): those accepted before, and those ``emits`` accept now."""
    paid = {a.worker for c in task.chunks for a in c.accepted if a.price > 0}
    return paid | {e.body["worker"] for e in emits if e.type == "task.chunk_accepted" and e.body["payment"] > 0}
