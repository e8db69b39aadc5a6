"""One reported result, judged by the adaptive policy and the check, as a record an auditor re-derives.

The owner's results policy calls :func:`judge` when a chunk result arrives: the worker's standing
(from earlier verdicts) and the assignment's secret decide *replicate*, *check* or *trust*
(:mod:`trust`); a *check* runs at once (:mod:`checks`). The returned record holds only strings,
integers and booleans, for the verdict event: the revealed secret, the decision (action, rate,
streak, lies) and the check's outcome. :func:`audit` is the auditor's side: from the assignment's
commitment, the standing it derives from the same events, the payload and the result, it
recomputes every part of the record and names whatever differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import TaskError
from .checks import check_chunk, check_seed, checkable, commitment, verification_spec
from .trust import DEFAULT_POLICY, REPLICATE, TRUST, Standing, TrustPolicy, decide

# Why a result was trusted unverified when its worker is the owner itself (the decision's reason).
OWN_RESULT = "own result"


@dataclass(frozen=True)
class Judgement:
    """``action`` (replicate | check | trust); ``passed`` (None unless checked); the record to sign."""

    action: str
    passed: bool | None
    record: dict[str, Any]


def judge(task_type: str, config: Mapping[str, Any], payload: Mapping[str, Any], result: Any, result_hash: str,
          secret: bytes, standing: Standing, blobs: Mapping[str, Any] | None = None,
          policy: TrustPolicy = DEFAULT_POLICY, own: bool = False) -> Judgement:
    """Judge one reported result (payload and result unpacked). ``verification: none`` trusts it;
    ``quorum`` replicates whenever the policy verifies; ``check`` checks then. ``own``: the owner
    ran the chunk itself; it trusts its own worker as it trusts itself (a replica or a check would
    tell it nothing it trusts more: issue 13 measured the check of its own results at 10% of a
    2048² multiply's CPU), so the result is trusted at rate 0 with the reason ``own result`` and
    neither payload nor result is read. An auditor sees the reason and that the verdict's author
    was the worker."""
    spec = verification_spec(task_type, config)
    record: dict[str, Any] = {"secret": secret.hex(), "mode": spec["mode"]}
    if spec["mode"] == "none":
        record["decision"] = {"action": TRUST, "rate_ppm": 0, "streak": standing.streak, "lies": standing.lies}
        return Judgement(TRUST, None, record)
    if own:
        record["decision"] = {"action": TRUST, "rate_ppm": 0, "streak": standing.streak, "lies": standing.lies,
                              "reason": OWN_RESULT}
        return Judgement(TRUST, None, record)
    decision = decide(standing, secret, spec["mode"] == "check" and checkable(task_type, config), policy)
    record["decision"] = decision.record()
    if decision.action != "check":
        return Judgement(decision.action, None, record)
    outcome = check_chunk(task_type, payload, result, check_seed(secret, result_hash), spec, blobs)
    record["check"] = outcome.record()
    return Judgement(decision.action, outcome.passed, record)


def audit(record: Mapping[str, Any], commit: str, task_type: str, config: Mapping[str, Any],
          payload: Mapping[str, Any], result: Any, result_hash: str, standing: Standing,
          blobs: Mapping[str, Any] | None = None, policy: TrustPolicy = DEFAULT_POLICY,
          own: bool = False) -> list[str]:
    """What in a verdict's record does not follow from the events (empty: it all does). For a
    replicated chunk, ``result`` is the first result's and ``standing`` its worker's before the
    replica was assigned; ``own``: the verdict's author was that worker. A verdict of its own result
    signed before ``own result`` existed (no reason recorded) is re-derived by the rule of then: a
    replica decided became trust at rate 0, anything else stood."""
    try:
        secret = bytes.fromhex(str(record.get("secret", "")))
    except ValueError:
        return ["the revealed secret is not hex"]
    if commitment(secret) != commit:
        return ["the revealed secret does not match the assignment's commitment"]
    before_reason = own and (record.get("decision") or {}).get("reason") != OWN_RESULT
    try:
        again = judge(task_type, config, payload, result, result_hash, secret, standing, blobs, policy,
                      own and not before_reason)
        if before_reason and again.action == REPLICATE:
            again = Judgement(TRUST, None, {**again.record, "decision": {
                "action": TRUST, "rate_ppm": 0, "streak": standing.streak, "lies": standing.lies}})
    except TaskError as exc:
        return [f"the check cannot be re-run: {exc}"]
    problems = []
    for key in ("mode", "decision", "check"):
        if record.get(key) != again.record.get(key):
            problems.append(f"{key}: recorded {record.get(key)!r}, re-derived {again.record.get(key)!r}")
    return problems


__all__ = ["OWN_RESULT", "REPLICATE", "Judgement", "audit", "judge"]
