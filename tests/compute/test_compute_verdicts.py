"""One result judged (compute/verdicts.py): the policy's action, the check, and an auditor's re-derivation."""

from __future__ import annotations

import numpy as np

from ledger_net.compute import plan_chunks, run_chunk
from ledger_net.compute.checks import assignment_secret, commitment
from ledger_net.compute.compare import product_bound
from ledger_net.compute.trust import Standing, standing
from ledger_net.compute.verdicts import audit, judge

G = np.random.default_rng(9)
CONFIG = {"operation": "multiply", "matrix_a": G.standard_normal((12, 40)), "matrix_b": G.standard_normal((40, 6))}
PAYLOAD = plan_chunks("matrix_ops", CONFIG, 4)[2]
RESULT = run_chunk("matrix_ops", PAYLOAD)
LIE = {"rows": RESULT["rows"] + 3 * product_bound(PAYLOAD["a"], PAYLOAD["b"]) * 40}
OWNER = b"owner key"


def _only_scalars(value: object) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _only_scalars(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_only_scalars(v) for v in value)
    return isinstance(value, (str, int, bool)) and not isinstance(value, float)


def test_a_new_worker_is_checked_and_its_lie_caught_and_the_record_audits():
    secret = assignment_secret(OWNER, "assignment-1")
    honest = judge("matrix_ops", CONFIG, PAYLOAD, RESULT, "h1", secret, Standing())
    assert honest.action == "check" and honest.passed is True and _only_scalars(honest.record)
    assert audit(honest.record, commitment(secret), "matrix_ops", CONFIG, PAYLOAD, RESULT, "h1", Standing()) == []
    lie = judge("matrix_ops", CONFIG, PAYLOAD, LIE, "h2", secret, Standing())
    assert lie.action == "check" and lie.passed is False and lie.record["check"]["passed"] is False
    assert audit(lie.record, commitment(secret), "matrix_ops", CONFIG, PAYLOAD, LIE, "h2", Standing()) == []


def test_an_auditor_sees_a_forged_record():
    secret = assignment_secret(OWNER, "assignment-2")
    commit = commitment(secret)
    honest = judge("matrix_ops", CONFIG, PAYLOAD, RESULT, "h1", secret, Standing())
    # An owner that rejects an honest result by writing a failed check:
    forged = {**honest.record, "check": {**honest.record["check"], "passed": False}}
    assert any(p.startswith("check:") for p in audit(forged, commit, "matrix_ops", CONFIG, PAYLOAD, RESULT, "h1",
                                                     Standing()))
    # ... or that trusts a result its own policy said to check:
    trusted = {**honest.record, "decision": {**honest.record["decision"], "action": "trust"}}
    assert audit(trusted, commit, "matrix_ops", CONFIG, PAYLOAD, RESULT, "h1", Standing())
    # ... or that reveals another secret than the one it committed to:
    other = {**honest.record, "secret": assignment_secret(OWNER, "x").hex()}
    assert audit(other, commit, "matrix_ops", CONFIG, PAYLOAD, RESULT, "h1", Standing()) == [
        "the revealed secret does not match the assignment's commitment"]
    # ... or that claims a worse standing than the events give (the auditor derives its own):
    assert audit(honest.record, commit, "matrix_ops", CONFIG, PAYLOAD, RESULT, "h1", standing([True] * 300))


def test_modes_quorum_and_none_and_a_trusted_worker():
    secret = assignment_secret(OWNER, "assignment-3")
    quorum = judge("matrix_ops", {**CONFIG, "verification": "quorum"}, PAYLOAD, RESULT, "h1", secret, Standing())
    assert quorum.action == "replicate" and quorum.passed is None and "check" not in quorum.record
    none = judge("matrix_ops", {**CONFIG, "verification": "none"}, PAYLOAD, LIE, "h2", secret, Standing())
    assert none.action == "trust" and none.record["mode"] == "none"
    veteran = standing([True] * 400)
    actions = {judge("matrix_ops", CONFIG, PAYLOAD, RESULT, "h1", assignment_secret(OWNER, f"a{i}"), veteran).action
               for i in range(200)}
    assert actions == {"check", "trust"}
    train = judge("ml_train_step", {"model_path": "m.npz"}, {}, None, "h", secret, Standing())
    assert train.action == "replicate"  # no check for train steps: verified by replicas


def test_the_owners_own_result_is_trusted_with_its_reason_read_and_checked_by_nobody():
    """The owner trusts its own worker as itself (issue 13: checking its own results was 10% of a
    multiply's CPU): trust at rate 0, reason "own result", no check run, payload and result unread."""
    secret = assignment_secret(OWNER, "assignment-own")
    commit = commitment(secret)
    for config in (CONFIG, {**CONFIG, "verification": "quorum"}):
        own = judge("matrix_ops", config, {}, None, "h1", secret, Standing(), own=True)  # nothing to read
        assert own.action == "trust" and own.passed is None and "check" not in own.record
        assert own.record["decision"] == {"action": "trust", "rate_ppm": 0, "streak": 0, "lies": 0,
                                          "reason": "own result"}
        assert audit(own.record, commit, "matrix_ops", config, PAYLOAD, RESULT, "h1", Standing(), own=True) == []
        # The same record for a result the verdict's author did not produce is a forgery an auditor sees:
        assert any(p.startswith("decision:") for p in audit(own.record, commit, "matrix_ops", config, PAYLOAD,
                                                            RESULT, "h1", Standing()))


def test_an_own_verdict_signed_before_the_reason_existed_still_audits():
    """Before "own result", the owner checked its own results and trusted the replicas it decided."""
    secret = assignment_secret(OWNER, "assignment-old")
    checked = judge("matrix_ops", CONFIG, PAYLOAD, RESULT, "h1", secret, Standing())  # what it signed then
    assert audit(checked.record, commitment(secret), "matrix_ops", CONFIG, PAYLOAD, RESULT, "h1", Standing(),
                 own=True) == []
    quorum = {**CONFIG, "verification": "quorum"}
    old_trust = {"secret": secret.hex(), "mode": "quorum",
                 "decision": {"action": "trust", "rate_ppm": 0, "streak": 0, "lies": 0}}
    assert audit(old_trust, commitment(secret), "matrix_ops", quorum, PAYLOAD, RESULT, "h1", Standing(),
                 own=True) == []
