"""Float results across heterogeneous workers (issue 12 items 1 and 5): three nodes whose sandboxed
workers run OpenBLAS with different kernels (OPENBLAS_CORETYPE Prescott, Sandybridge, Haswell),
so one float product differs in its last bits from node to node. A replicated float task
completes because replicas are compared within the product's error bound, not by hash; a worker
that perturbs its result beyond the bound loses the quorum, is not paid and gets the complaint.
Unreplicated, each result is judged alone: the adaptive policy checks a new worker's results
with Freivalds' test, a liar's fail and are reassigned, and an auditor re-derives every verdict.

The nodes share this test's process; each node's warm workers are separate processes started
with the node's own core type (the sandbox passes OPENBLAS_CORETYPE through, see sandbox/view.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from ledger_net.compute import pack, plan_chunks, unpack
from ledger_net.compute.compare import product_bound
from ledger_net.compute.trust import Standing
from ledger_net.compute.verdicts import audit
from ledger_net.core.task import Task
from ledger_net.execution import executor as executor_module
from ledger_net.execution.executor import ChunkOutcome
from tests.execution.test_network_tasks import Cluster, events_of, finished

pytestmark = pytest.mark.timeout(240)

CORES = ("Prescott", "Sandybridge", "Haswell")


@pytest.fixture
async def hetero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A three-node cluster, node i's workers on OpenBLAS core type CORES[i]."""
    plain = executor_module.blas_threads_env
    started: list[str] = []

    def env_for_next_node(workers: int) -> dict[str, str]:
        core = CORES[len(started)]
        started.append(core)
        return {**plain(workers), "OPENBLAS_CORETYPE": core}

    monkeypatch.setattr(executor_module, "blas_threads_env", env_for_next_node)
    cluster = Cluster(tmp_path)
    try:
        await cluster.start()
        assert started == list(CORES)
        yield cluster
    finally:
        await cluster.stop()


def operands() -> tuple[np.ndarray, np.ndarray]:
    g = np.random.default_rng(12)
    return g.standard_normal((96, 700)), g.standard_normal((700, 48))


def check_answer(answer: Any, a: np.ndarray, b: np.ndarray) -> None:
    got = np.asarray(answer, dtype=np.float64)
    assert got.shape == (a.shape[0], b.shape[1])
    assert (np.abs(got - a @ b) <= product_bound(a, b)).all()


async def test_replicas_on_different_blas_kernels_agree_within_the_bound(hetero: Cluster) -> None:
    owner = hetero.nodes[1]
    ids = {n.ledger.node_id for n in hetero.nodes}
    await hetero.converged()
    a, b = operands()
    task = Task.create_matrix_ops(owner.ledger.node_id, a, b, "multiply", {},
                                        {"chunk_size": 32, "max_price": 5.0, "replicas": 3, "quorum": 3})
    task_id = await owner.submit_task(task.to_dict())
    status = await finished(owner, task_id, timeout=120)
    assert status["status"] == "completed", status
    check_answer(await owner.get_task_result(task_id), a, b)

    reports = events_of(owner, "task.chunk_result", task_id)
    assert {w for w, _ in reports} == ids  # every chunk ran on all three core types
    by_chunk: dict[int, set[str]] = {}
    for _, body in reports:
        by_chunk.setdefault(body["chunk"], set()).add(body["result_hash"])
    # The kernels really differ: some chunk has more than one honest result hash (exact
    # comparison would never reach a quorum of 3 here).
    assert any(len(hashes) > 1 for hashes in by_chunk.values()), by_chunk
    accepted = events_of(owner, "task.chunk_accepted", task_id)
    assert len(accepted) == 3 * len(by_chunk) and not events_of(owner, "task.chunk_rejected", task_id)
    # Every peer keeps, for each chunk, the bytes of the smallest accepted hash: the owner's choice.
    smallest: dict[int, str] = {}
    for _, body in accepted:
        smallest[body["chunk"]] = min(smallest.get(body["chunk"], body["result_hash"]), body["result_hash"])
    await hetero.converged()
    for node in hetero.nodes:
        chunks = node.runner.tasks.chunks_of(task_id)
        assert {i: c["result_hash"] for i, c in chunks.items()} == smallest


async def test_a_worker_perturbing_beyond_the_bound_loses_and_is_caught(hetero: Cluster) -> None:
    founder, owner, liar = hetero.nodes
    honest_run = liar.executor.run

    async def lying_run(task_type: str, payload: Any, blobs: Any, requirements: Any = None,
                        files: Any = None) -> ChunkOutcome:
        outcome = await honest_run(task_type, payload, blobs, requirements, files)
        assert outcome.ok
        value = unpack(outcome.result, outcome.blobs)
        rows = np.array(value["rows"], dtype=np.float64)
        rows[0, 0] *= 1 + 1e-9  # a millionth of a thousandth: far beyond k(n+2)eps for n = 700
        wire, result_blobs = pack({"rows": rows})
        return ChunkOutcome(True, result=wire, blobs=result_blobs, usage=outcome.usage)

    liar.executor.run = lying_run  # type: ignore[method-assign]
    await hetero.converged()
    a, b = operands()
    task = Task.create_matrix_ops(owner.ledger.node_id, a, b, "multiply", {},
                                        {"chunk_size": 48, "max_price": 5.0, "replicas": 3, "quorum": 2})
    task_id = await owner.submit_task(task.to_dict())
    status = await finished(owner, task_id, timeout=120)
    assert status["status"] == "completed", status
    check_answer(await owner.get_task_result(task_id), a, b)

    honest = {founder.ledger.node_id, owner.ledger.node_id}
    accepted = events_of(owner, "task.chunk_accepted", task_id)
    assert {b["worker"] for _, b in accepted} == honest  # Prescott and Sandybridge agree within the bound
    rejected = events_of(owner, "task.chunk_rejected", task_id)
    assert sorted(b["chunk"] for _, b in rejected) == [0, 1]
    assert {b["worker"] for _, b in rejected} == {liar.ledger.node_id}
    complaints = [b for _, b in events_of(owner, "reputation.feedback", task_id) if not b["positive"]]
    assert [b["subject"] for b in complaints] == [liar.ledger.node_id]


def _standings(owner_events: list[tuple[str, dict[str, Any]]]) -> list[tuple[dict[str, Any], Any]]:
    """Each verdict of the owner with the worker's standing before it, derived from the verdicts
    before it in the owner's log order (what an auditor derives)."""
    out = []
    seen: dict[str, Standing] = {}
    for _, body in owner_events:
        record = body.get("verification")
        worker = body["worker"]
        before = seen.get(worker, Standing())
        out.append((body, before))
        if record and record["decision"]["action"] == "check":
            seen[worker] = before.after(record["check"]["passed"])
    return out


def verdicts_in_order(node: Any, task_id: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for row in node.ledger.store.select_events():
        if row.valid and row.type in ("task.chunk_accepted", "task.chunk_rejected"):
            body = orjson.loads(row.raw)["body"]
            if body.get("task_id") == task_id and row.author == node.ledger.node_id:
                out.append((row.type, body))
    return out


async def test_single_replicas_are_checked_by_freivalds_and_a_liar_is_caught(hetero: Cluster) -> None:
    founder, owner, liar = hetero.nodes
    honest_run = liar.executor.run

    async def lying_run(task_type: str, payload: Any, blobs: Any, requirements: Any = None,
                        files: Any = None) -> ChunkOutcome:
        outcome = await honest_run(task_type, payload, blobs, requirements, files)
        value = unpack(outcome.result, outcome.blobs)
        rows = np.array(value["rows"], dtype=np.float64)
        rows[-1, -1] *= 1 + 1e-6
        wire, result_blobs = pack({"rows": rows})
        return ChunkOutcome(True, result=wire, blobs=result_blobs, usage=outcome.usage)

    liar.executor.run = lying_run  # type: ignore[method-assign]
    await hetero.converged()
    a, b = operands()
    task = Task.create_matrix_ops(owner.ledger.node_id, a, b, "multiply", {}, {"chunk_size": 16, "max_price": 5.0})
    task_id = await owner.submit_task(task.to_dict())
    status = await finished(owner, task_id, timeout=120)
    assert status["status"] == "completed", status
    check_answer(await owner.get_task_result(task_id), a, b)

    assigned = {(body["chunk"], body["worker"], body.get("attempt", 0)): body
                for _, body in events_of(owner, "task.assigned", task_id)}
    assert all("check_commit" in body for body in assigned.values())
    verdicts = verdicts_in_order(owner, task_id)
    accepted = [body for kind, body in verdicts if kind == "task.chunk_accepted"]
    rejected = [body for kind, body in verdicts if kind == "task.chunk_rejected"]
    assert len(accepted) == 6 and liar.ledger.node_id not in {body["worker"] for body in accepted}
    assert any(body["worker"] == liar.ledger.node_id for body in assigned.values())  # the router spreads load
    assert rejected and {body["worker"] for body in rejected} == {liar.ledger.node_id}
    assert all(body["verification"]["check"]["method"] == "freivalds" and not body["verification"]["check"]["passed"]
               for body in rejected)
    complaints = [b for _, b in events_of(owner, "reputation.feedback", task_id) if not b["positive"]]
    assert [b["subject"] for b in complaints] == [liar.ledger.node_id]
    # New workers are on probation: every accepted result of another worker was checked, and passed;
    # the owner's own results were trusted, and the verdict says why.
    me = owner.ledger.node_id
    assert all(body["verification"]["decision"]["action"] == "check" and body["verification"]["check"]["passed"]
               for body in accepted if body["worker"] != me)
    assert all(body["verification"]["decision"] == {"action": "trust", "rate_ppm": 0, "streak": 0, "lies": 0,
                                                    "reason": "own result"}
               and "check" not in body["verification"] for body in accepted if body["worker"] == me)
    # An auditor re-derives every verdict: the secret against the assignment's commitment, the
    # standing from the owner's earlier verdicts, the decision and the check from payload and result.
    config = {"operation": "multiply", "matrix_a": a, "matrix_b": b, "chunk_size": 16, "max_price": 5.0}
    payloads = plan_chunks("matrix_ops", config, 16)
    reports = {(body["chunk"], author): body for author, body in events_of(owner, "task.chunk_result", task_id)}
    for body, before in _standings(verdicts):
        worker, chunk = body["worker"], body["chunk"]
        commit = next(v["check_commit"] for (c, w, _), v in sorted(assigned.items()) if c == chunk and w == worker)
        report = reports[(chunk, worker)]
        result = unpack(report["result"], None) if report.get("result") is not None else \
            await owner.blobs.fetch_value(report["result_hash"])
        assert audit(body["verification"], commit, "matrix_ops", config, payloads[chunk], result,
                     report["result_hash"], before, own=worker == me) == []
