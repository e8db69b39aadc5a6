"""Verification bench (issue 12 item 6): adaptive replication and checks against fixed quorums.

Part 1, a simulation driven by the real owner policy: ``execution.owner_policy`` routes, judges
and pays every chunk through its ``observe``/``look`` steps, exactly as the engine runs it, with
the real router (``market.routing.Router``), the real adaptive policy (``compute.verdicts.judge``
on ``compute.trust``), the real checks and the real float comparison. Only the world around it is
simulated (``SimView``, this file's ``OwnerView``): events are committed at once without
signatures, and every worker runs its chunk the moment it is assigned. 100 workers (10% always
lie, 5% lie one time in 20, the rest honest) quote a random price per task (so the router's
choice moves from task to task); 10,000 chunks in tasks of 50, each a small float product whose
honest results differ in the last bits (every honest worker sums in its own order, as different
BLAS kernels do); a lie moves one element far beyond the bound (each liar its own way: liars do
not collude). Printed per scheme: wrong results accepted (by always-liars and overall) and the
total work as a multiple of running every chunk once; a check costs the share of a chunk
measured in part 2 (or --check-cost). The schemes: ``verification: check`` (adaptive checks),
``verification: quorum`` with one replica (adaptive replication: the policy adds a second replica
when it verifies), and fixed quorums of 2 and 3 (every replica must agree).

Part 2, on this node: a real 2048 x 2048 float64 multiply (numpy, the baseline) and its
Freivalds check (8 rounds), interleaved, best of --repeat (the check: of 3 x --repeat); the
check's cost as a share of the multiply (wall time, and CPU time, which the load of other
processes sways far less), and a lie one element beyond the bound is caught. It runs in a fresh
process per BLAS thread setting (the default, and one thread).

    python bench/verification_bench.py                 # ~1-2 minutes on 2 busy cores
    python bench/verification_bench.py --chunks 2000 --size 512   # quick
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from ledger_net.compute import checks, compare, trust, verdicts  # noqa: E402 - after the path fix above
from ledger_net.execution import owner_policy  # noqa: E402
from ledger_net.execution.decisions import Emit, Fetch, Notify, Run  # noqa: E402
from ledger_net.execution.owner import Attempt, Bid, ChunkWork, OwnedTask  # noqa: E402
from ledger_net.ledger.events import Event  # noqa: E402
from ledger_net.market.routing import Bid as RouterBid  # noqa: E402
from ledger_net.market.routing import Router  # noqa: E402

SPEC = {"kind": "product", "k": compare.PRODUCT_K}
OWNER = "owner"
PER_TASK = 50
PPM = 1_000_000


@dataclass
class Worker:
    name: str
    kind: str  # honest | liar | sometimes
    order: np.ndarray  # the summation order of its "BLAS"


@dataclass
class Tally:
    scheme: str
    runs: int = 0
    checks: int = 0
    wrong: int = 0
    wrong_by_liars: int = 0
    chunks: int = 0
    failed: int = 0
    actions: dict[str, int] = field(default_factory=dict)

    def work(self, check_cost: float) -> float:
        return (self.runs + self.checks * check_cost) / self.chunks


def _seed(*parts: Any) -> bytes:
    return hashlib.sha256("/".join(map(str, parts)).encode()).digest()


def make_workers(n: int, liars: float, sometimes: float, inner: int, rng: random.Random) -> list[Worker]:
    kinds = ["liar"] * round(n * liars) + ["sometimes"] * round(n * sometimes)
    kinds += ["honest"] * (n - len(kinds))
    rng.shuffle(kinds)
    return [Worker(f"w{i:03d}", kind, np.array(rng.sample(range(inner), inner))) for i, kind in enumerate(kinds)]


class Chunk:
    def __init__(self, index: int, rows: int, inner: int, cols: int) -> None:
        g = np.random.default_rng(index)
        self.a = g.standard_normal((rows, inner))
        self.b = g.standard_normal((inner, cols))
        self.payload = {"operation": "multiply", "a": self.a, "b": self.b}
        self.truth = self.a @ self.b
        self.bound = compare.product_bound(self.a, self.b)


def run(worker: Worker, chunk: Chunk, index: int, attempt: int, lie_one_in: int) -> tuple[np.ndarray, bool]:
    """The worker's result (its own summation order) and whether it lied."""
    o = worker.order
    honest = np.einsum("ik,kj->ij", chunk.a[:, o], chunk.b[o, :])
    lies = worker.kind == "liar" or (worker.kind == "sometimes"
                                     and checks.draw_u64(_seed(worker.name, index, attempt), "lie") % lie_one_in == 0)
    if not lies:
        return honest, False
    wrong = honest.copy()
    i = int(worker.name[1:]) % wrong.shape[0]
    wrong[i, 0] += (10 + int(worker.name[1:])) * chunk.bound[i, 0] * 1000  # far beyond the bound, liar by liar
    return wrong, True


def rhash(value: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()


class SimView:
    """The owner policy's window on the simulated world (``owner_policy.OwnerView``): the real
    router and the real judge on this file's chunks; the ledger is a dict of escrows."""

    me = OWNER
    quote_window = 0.0
    frozen: frozenset[str] = frozenset()

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.router = Router()

    def is_open(self, task_id: str) -> bool:
        return task_id in self.sim.escrow

    def escrow(self, task_id: str) -> int | None:
        return self.sim.escrow.get(task_id)

    def rated(self, task_id: str, worker: str) -> bool:
        return (task_id, worker) in self.sim.rated

    def expected_bidders(self) -> set[str]:
        return set(self.sim.by_name)

    def verify_quote(self, body: dict[str, Any]) -> bool:
        return True

    def router_bids(self, bids: list[Bid]) -> list[RouterBid]:
        return [RouterBid(b.worker, b.price, PPM, 0, {"max_concurrent_tasks": 1}, b.quote_hash) for b in bids]

    def route(self, indexes: list[int], bids: list[RouterBid], requirements: dict[str, Any], *, replicas: int,
              current_load: dict[str, int], max_price: int) -> Mapping[int, list[str]]:
        plan: Mapping[int, list[str]] = self.router.assign(indexes, bids, requirements, replicas=replicas,
                                                           exclude=set(), current_load=current_load,
                                                           max_price=max_price)
        return plan

    def no_offer_hint(self, task: OwnedTask) -> str:
        return ""

    def restore(self, event: Event) -> OwnedTask | None:
        return None

    def has_result(self, result_hash: str) -> bool:
        return True

    def answer(self, task: OwnedTask, accepted: dict[int, Attempt]) -> dict[str, Any]:
        self.sim.answered(task, accepted)
        return {}

    def agree(self, task: OwnedTask, chunk: ChunkWork, a: Attempt, b: Attempt) -> bool:
        c = self.sim.chunk_of(task, chunk)
        return compare.agree(SPEC, {"rows": self.sim.values[a.result_hash or ""]},
                             {"rows": self.sim.values[b.result_hash or ""]}, c.payload)

    def check_secret(self, label: str) -> bytes:
        return hashlib.sha256(b"owner key/" + label.encode()).digest()

    def judge(self, task: OwnedTask, chunk: ChunkWork, attempt: Attempt,
              standing: trust.Standing) -> verdicts.Judgement:
        c = self.sim.chunk_of(task, chunk)
        assert attempt.check_label is not None
        judged = verdicts.judge("matrix_ops", self.sim.config, c.payload,
                                {"rows": self.sim.values[attempt.result_hash or ""]}, attempt.result_hash or "",
                                self.check_secret(attempt.check_label), standing, own=attempt.worker == self.me)
        tally = self.sim.tally
        tally.actions[judged.action] = tally.actions.get(judged.action, 0) + 1
        tally.checks += judged.action == trust.CHECK
        return judged


class Sim:
    """One scheme's run: tasks of ``PER_TASK`` chunks, one after another, through the owner policy."""

    def __init__(self, scheme: str, workers: list[Worker], chunks: list[Chunk], config: dict[str, Any],
                 replicas: int, quorum: int, lie_one_in: int, seed: int) -> None:
        self.tally = Tally(scheme)
        self.workers, self.chunks, self.config = workers, chunks, config
        self.replicas, self.quorum, self.lie_one_in = replicas, quorum, lie_one_in
        self.by_name = {w.name: w for w in workers}
        self.rng = random.Random(seed)
        self.escrow: dict[str, int] = {}
        self.rated: set[tuple[str, str]] = set()
        self.values: dict[str, np.ndarray] = {}
        self.state = owner_policy.OwnerState(OWNER)
        self.view = SimView(self)
        self.seq = 0
        self.now = 0.0
        self.closed: set[str] = set()
        self.first: dict[str, int] = {}  # task id -> index of its first chunk

    def chunk_of(self, task: OwnedTask, chunk: ChunkWork) -> Chunk:
        return self.chunks[self.first[task.task_id] + chunk.index]

    def event(self, author: str, type_: str, body: dict[str, Any], deps: tuple[str, ...] = ()) -> Event:
        self.seq += 1
        return Event("sim", author, self.seq, None, deps, type_, body, 0, b"", f"{self.seq:064x}", b"")

    def observe(self, event: Event) -> None:
        self.commit(owner_policy.observe(self.state, self.view, event))

    def commit(self, decisions: list[Any]) -> None:
        for d in decisions:
            if isinstance(d, Emit):
                event = self.event(OWNER, d.type, d.body, d.deps)
                self.apply(event)
                if d.on_commit is not None:
                    d.on_commit(event)
                self.observe(event)
                if event.type == "task.assigned":
                    self.work(event)
            elif isinstance(d, Notify):
                self.closed.add(d.task_id)
            elif isinstance(d, (Run, Fetch)):
                raise AssertionError(f"the owner never runs or fetches here: {d}")

    def apply(self, event: Event) -> None:
        b = event.body
        if event.type == "task.chunk_accepted":
            self.escrow[b["task_id"]] -= b["payment"]
        elif event.type in ("task.completed", "task.failed"):
            self.escrow.pop(b["task_id"], None)
            self.tally.failed += event.type == "task.failed"
        elif event.type == "reputation.feedback":
            self.rated.add((b["task_id"], b["subject"]))

    def work(self, assignment: Event) -> None:
        """The assigned worker runs the chunk at once and reports it."""
        b = assignment.body
        worker = self.by_name[b["worker"]]
        global_index = self.first[b["task_id"]] + b["chunk"]
        value, _ = run(worker, self.chunks[global_index], global_index, b.get("attempt", 0), self.lie_one_in)
        self.tally.runs += 1
        h = rhash(value)
        self.values[h] = value
        self.observe(self.event(worker.name, "task.chunk_result",
                                {"task_id": b["task_id"], "chunk": b["chunk"], "ok": True, "result_hash": h},
                                (assignment.hash,)))

    def answered(self, task: OwnedTask, accepted: dict[int, Attempt]) -> None:
        for index, attempt in accepted.items():
            c = self.chunks[self.first[task.task_id] + index]
            value = self.values[attempt.result_hash or ""]
            self.tally.chunks += 1
            if not (np.abs(value - c.truth) <= c.bound).all():
                self.tally.wrong += 1
                self.tally.wrong_by_liars += self.by_name[attempt.worker].kind == "liar"

    def run_all(self) -> Tally:
        for start in range(0, len(self.chunks), PER_TASK):
            self.run_task(f"t{start // PER_TASK}", start, min(len(self.chunks), start + PER_TASK))
        return self.tally

    def run_task(self, task_id: str, start: int, end: int) -> None:
        cap = 100
        chunks = [ChunkWork(i, {"chunk": start + i}, None) for i in range(end - start)]
        task = OwnedTask(task_id, "matrix_ops", self.config, {}, 2, self.replicas, self.quorum, cap, 60.0, chunks)
        task.verification = checks.verification_spec("matrix_ops", self.config)
        task.submitted = f"{task_id}-submitted"
        for w in self.workers:  # each worker quotes its own price for this task
            task.bids[w.name] = Bid(w.name, self.rng.randrange(50, cap + 1), f"{task_id}-{w.name}", {})
        self.first[task_id] = start
        self.escrow[task_id] = cap * len(chunks) * 10
        self.state.owned[task_id] = task
        self.state.touch(task_id)  # as its task.submitted would: looked at in the next step, not the next sweep
        steps = 0
        while task_id not in self.closed:
            self.now += owner_policy.TICK
            self.commit(owner_policy.look(self.state, self.view, self.now))
            steps += 1
            if steps > 1000:
                raise RuntimeError(f"task {task_id} did not close")


def adaptive(workers: list[Worker], chunks: list[Chunk], checkable: bool, lie_one_in: int, seed: int,
             rounds: int) -> Tally:
    """One replica per chunk; the owner policy checks it (``check``) or replicates it (``quorum``)
    when the adaptive policy says so, and trusts it otherwise."""
    config: dict[str, Any] = {"operation": "multiply",
                              "verification": {"mode": "check", "rounds": rounds} if checkable else "quorum"}
    return Sim("adaptive, checks" if checkable else "adaptive, replicas", workers, chunks, config, 1, 1,
               lie_one_in, seed).run_all()


def fixed_quorum(workers: list[Worker], chunks: list[Chunk], quorum: int, lie_one_in: int, seed: int) -> Tally:
    """BOINC's fixed quorum: ``quorum`` replicas of every chunk, more until ``quorum`` agree."""
    config: dict[str, Any] = {"operation": "multiply", "verification": "quorum"}
    return Sim(f"fixed quorum {quorum}", workers, chunks, config, quorum, quorum, lie_one_in, seed).run_all()


def freivalds_cost(size: int, repeat: int, rounds: int) -> dict[str, Any]:
    """The multiply and its check, interleaved so both see the same machine; the short check gets
    3 tries a turn. Wall time and this process's CPU time (all its threads): on cores shared with
    other work the wall time swings with their load, the CPU time hardly."""
    g = np.random.default_rng(2048)
    a, b = g.standard_normal((size, size)), g.standard_normal((size, size))
    muls: list[float] = []
    tests: list[float] = []
    mul_cpu: list[float] = []
    test_cpu: list[float] = []
    c = a @ b
    passed = True
    for i in range(repeat):
        t, cpu = time.perf_counter(), time.process_time()
        c = a @ b
        muls.append(time.perf_counter() - t)
        mul_cpu.append(time.process_time() - cpu)
        for j in range(3):
            t, cpu = time.perf_counter(), time.process_time()
            outcome = checks.freivalds(a, b, c, _seed("bench", i, j), rounds)
            tests.append(time.perf_counter() - t)
            test_cpu.append(time.process_time() - cpu)
            passed &= outcome.passed
    best_mul, best_check = min(muls), min(tests)
    lie = c.copy()
    bound = compare.product_bound(a[:1], b)
    lie[0, 0] += 4 * bound[0, 0] * size  # beyond Freivalds' row bound, not only the element bound
    caught = not checks.freivalds(a, b, lie, _seed("bench-lie"), rounds).passed
    median = sorted(tests)[len(tests) // 2] / sorted(muls)[len(muls) // 2]
    return {"size": size, "multiply_s": best_mul, "check_s": best_check, "share": best_check / best_mul,
            "median_share": median, "cpu_share": min(test_cpu) / min(mul_cpu),
            "honest_passed": passed, "lie_caught": caught, "rounds": rounds}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, default=100)
    p.add_argument("--chunks", type=int, default=10_000)
    p.add_argument("--liars", type=float, default=0.10)
    p.add_argument("--sometimes", type=float, default=0.05)
    p.add_argument("--lie-one-in", type=int, default=20)
    p.add_argument("--size", type=int, default=2048, help="the real multiply's n (part 2)")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--rounds", type=int, default=checks.DEFAULT_ROUNDS)
    p.add_argument("--check-cost", type=float, default=None,
                   help="a check's cost as a share of a chunk (default: measured in part 2)")
    p.add_argument("--seed", type=int, default=12)
    p.add_argument("--threads", default="default,1",
                   help="part 2 runs once per BLAS thread setting, each in its own process (default,1)")
    p.add_argument("--part2-json", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.part2_json:
        print(json.dumps(freivalds_cost(args.size, args.repeat, args.rounds)))
        return 0

    part2 = {}
    for threads in args.threads.split(","):
        env = dict(os.environ)
        if threads != "default":
            env["OPENBLAS_NUM_THREADS"] = env["OMP_NUM_THREADS"] = threads
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--part2-json", "--size", str(args.size),
                              "--repeat", str(args.repeat), "--rounds", str(args.rounds)],
                             env=env, check=True, capture_output=True, text=True).stdout
        part2[threads] = json.loads(out.strip().splitlines()[-1])
    first = next(iter(part2.values()))
    cost = first["share"] if args.check_cost is None else args.check_cost
    rng = random.Random(args.seed)
    workers = make_workers(args.workers, args.liars, args.sometimes, 16, rng)
    chunks = [Chunk(i, 4, 16, 4) for i in range(args.chunks)]
    print(f"part 1: {args.workers} workers ({args.liars:.0%} always lie, {args.sometimes:.0%} lie 1 in "
          f"{args.lie_one_in}), {args.chunks} chunks; a check costs {cost:.3f} of a chunk")
    print(f"{'scheme':<22} {'wrong accepted':>15} {'by always-liars':>16} {'wrong %':>8} {'work':>7}  actions")
    t0 = time.perf_counter()
    tallies = [adaptive(workers, chunks, True, args.lie_one_in, args.seed, args.rounds),
               adaptive(workers, chunks, False, args.lie_one_in, args.seed, args.rounds),
               fixed_quorum(workers, chunks, 2, args.lie_one_in, args.seed),
               fixed_quorum(workers, chunks, 3, args.lie_one_in, args.seed)]
    for t in tallies:
        acts = ", ".join(f"{k} {v}" for k, v in sorted(t.actions.items()))
        acts += f"; {t.failed} task(s) failed" if t.failed else ""
        print(f"{t.scheme:<22} {t.wrong:>15} {t.wrong_by_liars:>16} {100 * t.wrong / t.chunks:>7.2f}% "
              f"{t.work(cost):>6.3f}x  {acts}".rstrip())
    print(f"  (simulated in {time.perf_counter() - t0:.1f} s; goals: 0 by always-liars, <= 0.1% overall, "
          "work <= 1.25x)")
    print(f"part 2 (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores): {args.size}x{args.size} "
          f"float64 multiply (numpy) against its Freivalds check ({args.rounds} rounds), best of {args.repeat} "
          f"and of {3 * args.repeat}")
    for threads, r in part2.items():
        print(f"  BLAS threads {threads:<8} multiply {r['multiply_s'] * 1e3:7.0f} ms"
              f"  check {r['check_s'] * 1e3:6.1f} ms"
              f"  = {100 * r['share']:.2f}% (goal <= 5%; medians {100 * r['median_share']:.2f}%; CPU time "
              f"{100 * r['cpu_share']:.2f}%)  honest passed: {r['honest_passed']}, lie caught: {r['lie_caught']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
