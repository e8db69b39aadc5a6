"""Float results across heterogeneous workers (issue 12 items 1 and 5): three nodes whose sandboxed
workers run OpenBLAS with different kernels (OPENBLAS_CORETYPE Prescott, Sandybridge, Haswell),
so one float product differs in its last bits from node to node. A replicated float task
completes because replicas are compared within the product's error bound, not by hash; a worker
that perturbs its result beyond the bound loses the quorum, is not paid and gets the complaint.

The nodes share this test's process; each node's warm workers are separate processes started
with the node's own core type (the sandbox passes OPENBLAS_CORETYPE through, see sandbox/view.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_network_tasks import Cluster, events_of, finished

from ledger_net.compute import pack, unpack
from ledger_net.compute.compare import product_bound
from ledger_net.core.task import Task
from ledger_net.execution import executor as executor_module
from ledger_net.execution.executor import ChunkOutcome

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
        chunks = node.runner["tasks"].chunks_of(task_id)
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
