"""Lying nodes are caught on real nodes (issue 12 item 5), under each kind of verification: a
fixed quorum (3 replicas, 2 must agree), the owner's check (Freivalds, one replica) and adaptive
replication (``verification: quorum`` with one replica: a second one whenever the trust policy
verifies). Three kinds of liar, each a node whose executor returns:

* a result perturbed beyond the product's bound (every time);
* a stale result: the first chunk it ran, returned again for every later chunk (right shape,
  honest numbers, wrong chunk);
* a result perturbed only every other time (it lies sometimes).

Each test runs three in-process nodes on different OpenBLAS kernels (the fixture of
test_float_verification_nodes.py), so honest results differ in their last bits too. What must
hold: the task completes with the right answer, no lie is ever accepted (every result the liar was
paid for is within the bound of its own chunk), and the liar is caught: a rejection and a
complaint. The perturbation under a fixed quorum and under checks, every time, is in
test_float_verification_nodes.py."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from ledger_net.compute import pack, plan_chunks, unpack
from ledger_net.compute.checks import verify_reveal
from ledger_net.compute.compare import product_bound
from ledger_net.compute.trust import Standing
from ledger_net.compute.verdicts import audit
from ledger_net.core.task import Task
from ledger_net.execution.executor import ChunkOutcome
from tests.execution.test_float_verification_nodes import check_answer, hetero, operands  # noqa: F401 - a fixture
from tests.execution.test_network_tasks import Cluster, events_of, finished

pytestmark = pytest.mark.timeout(120)

CHUNK = 8  # 96 rows: 12 chunks of equal shape, so a stale result has the right shape
MODES = {
    "fixed quorum": {"replicas": 3, "quorum": 2, "verification": "quorum"},
    "check": {"verification": "check"},
    "adaptive replication": {"verification": "quorum"},
}


def lying_executor(node: Any, kind: str) -> list[bool]:
    """Make ``node`` lie; returns the list of its calls, True for each lie it told."""
    honest_run = node.executor.run
    told: list[bool] = []
    first: list[Any] = []

    async def run(task_type: str, payload: Any, blobs: Any, requirements: Any = None,
                  files: Any = None) -> ChunkOutcome:
        outcome = await honest_run(task_type, payload, blobs, requirements, files)
        assert outcome.ok
        rows = np.array(unpack(outcome.result, outcome.blobs)["rows"], dtype=np.float64)
        lie = kind == "perturb" or (kind == "stale" and bool(first)) or (kind == "sometimes" and len(told) % 2 == 1)
        if not first:
            first.append(rows)
        told.append(lie)
        if not lie:
            return outcome
        if kind == "stale":
            rows = first[0]
        else:
            rows = rows.copy()
            rows[len(told) % rows.shape[0], 0] *= 1 + 1e-6  # far beyond k(n+2)eps for n = 700
        wire, result_blobs = pack({"rows": rows})
        return ChunkOutcome(True, result=wire, blobs=result_blobs, usage=outcome.usage)

    node.executor.run = run
    return told


async def run_with_liar(cluster: Cluster, kind: str, mode: str) -> None:
    founder, owner, liar = cluster.nodes
    told = lying_executor(liar, kind)
    await cluster.converged()
    a, b = operands()
    task = Task.create_matrix_ops(owner.ledger.node_id, a, b, "multiply", {},
                                  {"chunk_size": CHUNK, "max_price": 5.0, **MODES[mode]})
    task_id = await owner.submit_task(task.to_dict())
    status = await finished(owner, task_id, timeout=90)
    assert status["status"] == "completed", status
    check_answer(await owner.get_task_result(task_id), a, b)
    assert any(told), f"the liar told no lie in {len(told)} runs: the test proves nothing"

    me = liar.ledger.node_id
    reports = {(body["chunk"], author): body for author, body in events_of(owner, "task.chunk_result", task_id)}
    for _, body in events_of(owner, "task.chunk_accepted", task_id):
        if body["worker"] != me:
            continue
        report = reports[(body["chunk"], me)]
        value = unpack(report["result"], None) if report.get("result") is not None else \
            await owner.blobs.fetch_value(report["result_hash"])
        rows = slice(body["chunk"] * CHUNK, (body["chunk"] + 1) * CHUNK)
        got = np.asarray(value["rows"], dtype=np.float64)
        assert (np.abs(got - a[rows] @ b) <= product_bound(a[rows], b)).all(), f"a lie was paid: {body}"
    rejected = [body for _, body in events_of(owner, "task.chunk_rejected", task_id)]
    assert rejected and {body["worker"] for body in rejected} == {me}
    complaints = [body["subject"] for _, body in events_of(owner, "reputation.feedback", task_id)
                  if not body["positive"]]
    assert complaints == [me]
    if mode != "fixed quorum":  # judged one result at a time: every rejection says how it was verified
        action = "check" if mode == "check" else "replicate"
        assert all(body["verification"]["decision"]["action"] == action for body in rejected)
    if mode == "adaptive replication":
        await audit_decisions(owner, task_id, {"operation": "multiply", "matrix_a": a, "matrix_b": b,
                                               "chunk_size": CHUNK, "max_price": 5.0, **MODES[mode]})


async def audit_decisions(owner: Any, task_id: str, config: dict[str, Any]) -> None:
    """An auditor's pass over the owner's log: each decision (a replica's assignment for
    *replicate*, the verdict for *trust*) re-derived by ``verdicts.audit`` from the secret the
    first assignment committed to, the result it judged, and the worker's standing folded from the
    owner's verdicts signed before it."""
    me = owner.ledger.node_id
    payloads = plan_chunks("matrix_ops", config, CHUNK)
    reports = {(body["chunk"], author): body for author, body in events_of(owner, "task.chunk_result", task_id)}
    commits: dict[tuple[int, str], str] = {}  # (chunk, commitment) -> the worker it was assigned to
    seen: dict[str, Standing] = {}
    decisions: dict[str, int] = {}
    for row in owner.ledger.store.select_events():
        if not row.valid or row.author != me:
            continue
        body = orjson.loads(row.raw)["body"]
        record = body.get("verification")
        if row.type == "task.assigned" and "check_commit" in body:
            commits[(body["chunk"], body["check_commit"])] = body["worker"]
        if not record:
            continue
        action = record["decision"]["action"]
        if row.type in ("task.chunk_accepted", "task.chunk_rejected") and action == "replicate":
            seen[body["worker"]] = seen.get(body["worker"], Standing()).after(row.type == "task.chunk_accepted")
            continue
        if row.type == "task.chunk_rejected":
            continue
        chunk = body["chunk"]
        commit, worker = next((c, w) for (i, c), w in commits.items()
                              if i == chunk and verify_reveal(c, record["secret"]))
        assert action == ("replicate" if row.type == "task.assigned" else "trust")
        report = reports[(chunk, worker)]
        result = unpack(report["result"], None) if report.get("result") is not None else \
            await owner.blobs.fetch_value(report["result_hash"])
        assert audit(record, commit, "matrix_ops", config, payloads[chunk], result, report["result_hash"],
                     seen.get(worker, Standing()), own=worker == me) == [], (row.type, body)
        decisions[action] = decisions.get(action, 0) + 1
    assert decisions.get("replicate"), decisions  # new workers were replicated


@pytest.mark.parametrize("mode", list(MODES))
async def test_a_node_returning_a_stale_result_is_caught(hetero: Cluster, mode: str) -> None:  # noqa: F811
    await run_with_liar(hetero, "stale", mode)


@pytest.mark.parametrize("mode", list(MODES))
async def test_a_node_lying_only_sometimes_is_caught(hetero: Cluster, mode: str) -> None:  # noqa: F811
    await run_with_liar(hetero, "sometimes", mode)


async def test_a_node_perturbing_its_results_is_caught_by_adaptive_replication(hetero: Cluster) -> None:  # noqa: F811
    await run_with_liar(hetero, "perturb", "adaptive replication")
