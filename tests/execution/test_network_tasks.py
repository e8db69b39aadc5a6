"""Tasks across a real network: three ComputeNetwork nodes on loopback.

The founder funds the others; tasks submitted on one node run on *other* nodes,
are paid from escrow, and every node ends with the same books (state hash),
the same balances and the same reputations. Redundancy with a quorum catches a
dishonest worker; a worker killed mid-task does not stop the task; a proven
forker is never paid.

Every wait polls a condition against a deadline; nothing sleeps for a fixed time
where a condition can be polled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from ledger_net.core.task import Task
from ledger_net.execution.executor import ChunkOutcome
from ledger_net.main import ComputeNetwork
from ledger_net.sandbox.bundle import CodeBundle
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(180)

class Cluster:
    """Three nodes: `founder` (issuer), `b` and `c` (joined through the founder)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.nodes: list[ComputeNetwork] = []
        self.crashed: set[int] = set()

    async def start(self, count: int = 3) -> None:
        founder = ComputeNetwork(port=0, data_dir=self.root / "n0", initial_credits=1000.0, sync_interval=0.2,
                                 quote_window=0.3, workers=1)
        await founder.start()
        self.nodes.append(founder)
        for i in range(1, count):
            node = ComputeNetwork(port=0, data_dir=self.root / f"n{i}", seed_nodes=[founder.server.url],
                                  sync_interval=0.2, quote_window=0.3, workers=1)
            await node.start()
            self.nodes.append(node)
        await wait_until(lambda: all(len(n.runner.nodes.nodes) == count for n in self.nodes), 30,
                         "every node to see every node joined")
        # The founder funds the others; payments become spendable once received.
        for node in self.nodes[1:]:
            assert self.founder.credits.transfer_credits(node.ledger.node_id, 100.0)
        await wait_until(lambda: all(n.credits.get_balance() >= 100.0 for n in self.nodes[1:]), 30,
                         "the funded nodes to receive their credits")

    @property
    def founder(self) -> ComputeNetwork:
        return self.nodes[0]

    def live(self) -> list[ComputeNetwork]:
        return [n for i, n in enumerate(self.nodes) if i not in self.crashed]

    async def crash(self, node: ComputeNetwork) -> None:
        """Kill a node hard: no flush, no goodbye; its running chunks never report."""
        self.crashed.add(self.nodes.index(node))
        await node.engine.stop()
        await node.executor.close()
        await node.server.stop(hard=True)
        node.ledger.close()

    async def converged(self, timeout: float = 30.0) -> str:
        """Wait until every live node holds the same books; return their state hash."""
        async def same() -> str | None:
            hashes = {n.runner.state_hash() for n in self.live()}
            return hashes.pop() if len(hashes) == 1 else None

        return await wait_until(same, timeout, "every live node to reach the same state hash")

    async def stop(self) -> None:
        for i, node in reversed(list(enumerate(self.nodes))):
            if i not in self.crashed:
                await node.stop()


@pytest.fixture
async def cluster(tmp_path: Path):  # type: ignore[no-untyped-def]
    c = Cluster(tmp_path)
    try:
        await c.start()
        yield c
    finally:
        await c.stop()


def no_bids(node: ComputeNetwork) -> None:
    """Make a node a pure client: it submits tasks but offers no compute of its own."""
    node.engine._can_run = lambda *args: False  # type: ignore[method-assign]


async def finished(node: ComputeNetwork, task_id: str, timeout: float = 60.0) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        status = await node.get_task_status(task_id)
        return status if status["status"] in ("completed", "failed", "cancelled") else None

    return await wait_until(done, timeout, f"task {task_id} to finish")


def events_of(node: ComputeNetwork, kind: str, task_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(author, body) of the valid events of one type about one task, in this node's store."""
    out = []
    for row in node.ledger.store.select_events():
        if row.valid and row.type == kind:
            body = orjson.loads(row.raw)["body"]
            if body.get("task_id") == task_id:
                out.append((row.author, body))
    return out


def reputations(node: ComputeNetwork, ids: list[str]) -> dict[str, int]:
    return {i: node.runner.reputation.score(i) for i in ids}


def balances(node: ComputeNetwork) -> Any:
    return orjson.dumps(node.runner.balances.accounts, option=orjson.OPT_SORT_KEYS)


# ------------------------------------------------------------------- tests
async def test_task_submitted_on_one_node_runs_on_the_others_and_every_book_agrees(cluster: Cluster) -> None:
    founder, owner, other = cluster.nodes
    no_bids(owner)
    ids = [n.ledger.node_id for n in cluster.nodes]
    await cluster.converged()
    rep_before = reputations(founder, ids)
    owner_balance = owner.credits.get_balance()

    task = Task.create_range_reduce(owner.ledger.node_id, 1, 200_000, "sum", {},
                                    {"chunk_size": 20_000, "max_price": 2.0})
    task_id = await owner.submit_task(task.to_dict())
    status = await finished(owner, task_id)
    assert status["status"] == "completed", status
    assert await owner.get_task_result(task_id) == 200_000 * 200_001 // 2

    # Run elsewhere: the workers, the chunk_result authors and the payees are the other nodes.
    workers = set(status["workers"])
    assert workers and workers <= {founder.ledger.node_id, other.ledger.node_id}, status["workers"]
    results = events_of(owner, "task.chunk_result", task_id)
    assert len(results) == 10 and {a for a, _ in results} == workers
    accepted = events_of(owner, "task.chunk_accepted", task_id)
    assert len(accepted) == 10 and {b["worker"] for _, b in accepted} == workers
    assert {a for a, _ in accepted} == {owner.ledger.node_id}  # only the owner pays from its escrow
    paid = sum(b["payment"] for _, b in accepted)
    assert paid > 0
    decimals = owner.ledger.state.decimals
    assert status["paid"] == pytest.approx(paid / 10 ** decimals)
    assert status["paid"] + status["refund"] == pytest.approx(status["escrow"])
    assert owner.credits.get_balance() == pytest.approx(owner_balance - status["paid"])

    # The workers' engines acknowledge their pay; then every node agrees on everything.
    def received() -> bool:
        return all(not n.ledger.state.open_credits_to(n.ledger.node_id) for n in cluster.nodes)

    await wait_until(received, 30, "every payment to be received by its worker")
    state = await cluster.converged()
    assert all(n.runner.state_hash() == state for n in cluster.nodes)
    assert len({balances(n) for n in cluster.nodes}) == 1
    views = [reputations(n, ids) for n in cluster.nodes]
    assert views[0] == views[1] == views[2]
    for worker in workers:  # praised by the owner that paid them
        assert views[0][worker] > rep_before[worker]
    assert views[0][owner.ledger.node_id] == rep_before[owner.ledger.node_id]
    # Each worker's spendable balance grew by exactly what it was paid, on every node.
    pay = {w: sum(b["payment"] for _, b in accepted if b["worker"] == w) for w in workers}
    for node in cluster.nodes:
        for w in workers:
            history = [b for a, b in events_of(node, "task.chunk_accepted", task_id) if b["worker"] == w]
            assert sum(b["payment"] for b in history) == pay[w]
    # Conservation holds on every node.
    for node in cluster.nodes:
        assert node.ledger.state.conserved()


async def test_replicas_with_quorum_catch_a_dishonest_worker(cluster: Cluster) -> None:
    founder, owner, liar = cluster.nodes
    honest_run = liar.executor.run

    async def lying_run(task_type: str, payload: Any, blobs: Any, requirements: Any = None) -> ChunkOutcome:
        outcome = await honest_run(task_type, payload, blobs, requirements)
        assert outcome.ok
        return ChunkOutcome(True, result=_tampered(outcome.result), usage=outcome.usage)

    liar.executor.run = lying_run  # type: ignore[method-assign]
    ids = [n.ledger.node_id for n in cluster.nodes]
    await cluster.converged()
    rep_before = reputations(founder, ids)

    task = Task.create_range_reduce(owner.ledger.node_id, 1, 1000, "sum", {},
                                    {"chunk_size": 500, "max_price": 3.0, "replicas": 3, "quorum": 2})
    task_id = await owner.submit_task(task.to_dict())
    status = await finished(owner, task_id)
    assert status["status"] == "completed", status
    assert await owner.get_task_result(task_id) == 500_500
    assert set(status["workers"]) <= set(ids)

    results = events_of(owner, "task.chunk_result", task_id)
    assert len(results) == 6 and {a for a, _ in results} == set(ids)
    hashes = {(a, b["chunk"]): b["result_hash"] for a, b in results}
    for chunk in (0, 1):
        honest = {hashes[(founder.ledger.node_id, chunk)], hashes[(owner.ledger.node_id, chunk)]}
        assert len(honest) == 1 and hashes[(liar.ledger.node_id, chunk)] not in honest
    accepted = events_of(owner, "task.chunk_accepted", task_id)
    assert sorted((b["chunk"], b["worker"]) for _, b in accepted) == sorted(
        (c, w) for c in (0, 1) for w in (founder.ledger.node_id, owner.ledger.node_id))
    assert liar.ledger.node_id not in {b["worker"] for _, b in accepted}  # the loser is never paid
    rejected = events_of(owner, "task.chunk_rejected", task_id)
    assert sorted((b["chunk"], b["worker"]) for _, b in rejected) == [(0, liar.ledger.node_id),
                                                                     (1, liar.ledger.node_id)]
    assert all("quorum" in b["reason"] for _, b in rejected)
    feedback = events_of(owner, "reputation.feedback", task_id)
    complaints = [b for _, b in feedback if not b["positive"]]
    assert [b["subject"] for b in complaints] == [liar.ledger.node_id]  # one complaint per task and subject
    praised = {b["subject"] for _, b in feedback if b["positive"]}
    assert praised == {founder.ledger.node_id}  # the owner does not rate itself

    await cluster.converged()
    views = [reputations(n, ids) for n in cluster.nodes]
    assert views[0] == views[1] == views[2]
    assert views[0][liar.ledger.node_id] < rep_before[liar.ledger.node_id]
    assert views[0][founder.ledger.node_id] > rep_before[founder.ledger.node_id]


def _tampered(wire: Any) -> Any:
    """The same shape with its first integer changed: a plausible but wrong answer."""
    done = False

    def go(v: Any) -> Any:
        nonlocal done
        if done:
            return v
        if type(v) is int:
            done = True
            return v + 1
        if isinstance(v, list):
            return [go(x) for x in v]
        if isinstance(v, dict):
            return {k: go(x) for k, x in v.items()}
        return v

    out = go(wire)
    return out if done else {"forged": True, "original": wire}


async def test_a_worker_killed_mid_task_does_not_stop_the_task(cluster: Cluster) -> None:
    owner = cluster.founder
    no_bids(owner)
    await cluster.converged()
    # One slow chunk (the sandboxed program sleeps), so the worker is surely mid-chunk when killed.
    bundle = CodeBundle("slow.py", "import time\ntime.sleep(2.0)\nprint('done')\n")
    task = Task.create_code(owner.ledger.node_id, bundle, {"timeout_seconds": 4}, {"max_price": 1.0})
    task_id = await owner.submit_task(task.to_dict())

    async def assigned() -> str | None:
        status = await owner.get_task_status(task_id)
        return status["workers"][0] if status["workers"] else None

    first = await wait_until(assigned, 30, "the chunk to be assigned")
    victim = next(n for n in cluster.nodes if n.ledger.node_id == first)
    await wait_until(lambda: victim.engine._running, 10, "the victim to start the chunk")
    await cluster.crash(victim)

    status = await finished(owner, task_id, timeout=60)
    assert status["status"] == "completed", status
    assert (await owner.get_task_result(task_id))["stdout"] == "done\n"
    survivor = next(n for n in cluster.live() if n is not owner)
    # every worker the chunk had, the victim included (issue 12: not only the chunk's current one)
    assert status["workers"] == sorted([first, survivor.ledger.node_id])
    assigned = events_of(owner, "task.assigned", task_id)
    assert [b["worker"] for _, b in assigned] == [first, survivor.ledger.node_id]
    results = events_of(owner, "task.chunk_result", task_id)
    assert [a for a, _ in results] == [survivor.ledger.node_id]  # the victim never reported
    accepted = events_of(owner, "task.chunk_accepted", task_id)
    assert [b["worker"] for _, b in accepted] == [survivor.ledger.node_id]
    rejected = events_of(owner, "task.chunk_rejected", task_id)
    assert [(b["worker"], b["reason"]) for _, b in rejected] == [(first, "timed out")]
    # The two survivors still agree on everything.
    await wait_until(lambda: not survivor.ledger.state.open_credits_to(survivor.ledger.node_id), 30,
                     "the survivor to receive its pay")
    await cluster.converged()
    rep = [n.runner.reputation.score(first) for n in cluster.live()]
    assert rep[0] == rep[1] < 500_000  # the dead worker lost reputation, identically everywhere


async def test_numpy_matrices_travel_as_blobs_and_big_results_come_back_from_other_nodes(cluster: Cluster) -> None:
    """A 512x512 multiply with numpy operands, split in two, run by the two other nodes: each
    worker fetches the operand blobs by hash, and the owner fetches each worker's 1 MiB result
    (too big for an event) before judging it; the answer names the chunks' result blobs."""
    import numpy as np

    founder, owner, other = cluster.nodes
    # Every node proved its sandbox at start and offers one slot per sandboxed worker.
    assert all(n.sandbox_self_test["ok"] and n.node.capabilities.max_concurrent_tasks == 1 for n in cluster.nodes)
    no_bids(owner)
    rng = np.random.default_rng(5)
    a, b = rng.random((512, 512)), rng.random((512, 512))
    task = Task.create_matrix_ops(owner.ledger.node_id, a, b, "multiply", {},
                                  {"chunk_size": 256, "max_price": 2.0})
    task_id = await owner.submit_task(task.to_dict())
    status = await finished(owner, task_id)
    assert status["status"] == "completed", status
    result = await owner.get_task_result(task_id)
    assert isinstance(result, np.ndarray) and result.shape == (512, 512)
    # The workers' BLAS (own thread count, maybe own kernel) may differ from this process's in the
    # last bits: equal within the dot-product bound k * eps * (|A||B|).
    assert np.all(np.abs(result - a @ b) <= 512 * np.finfo(np.float64).eps * (np.abs(a) @ np.abs(b)))
    submitted = events_of(owner, "task.submitted", task_id)[0][1]
    assert len(submitted["blobs"]) == 2  # A and B, each once: the chunks name rows of A's blob
    assigned = [body for _, body in events_of(owner, "task.assigned", task_id)]
    assert {tuple(body["payload"]["a"]["$array"][1:]) for body in assigned} == {(0, 256), (256, 512)}
    results = events_of(owner, "task.chunk_result", task_id)
    assert {author for author, _ in results} <= {founder.ledger.node_id, other.ledger.node_id}
    assert all("result" not in body for _, body in results)  # 1 MiB results travel as blobs
    completed = events_of(owner, "task.completed", task_id)[0][1]
    found, wire, _ = owner.blobs.local_wire(completed["result_hash"])
    assert found and "$concat" in wire  # the answer names the chunks' blobs, not a new copy
    # Another node reads the same answer once the completion reaches it, fetching blobs it lacks.
    await wait_until(lambda: founder.runner.tasks.tasks.get(task_id, {}).get("status") == "completed", 30,
                     "the completion to reach the founder")
    assert np.array_equal(await founder.get_task_result(task_id), result)
