"""Verification bench (issue 12 item 6): adaptive replication and checks against fixed quorums.

Part 1, a simulation driven by the real policies: ``compute.trust.decide`` chooses replicate,
check or trust for every result; ``compute.checks.freivalds`` checks it; ``compute.compare.decide``
groups replicas within the float bound. 100 workers (10% always lie, 5% lie one time in 20,
the rest honest), 10,000 chunks, each a small float product whose honest replicas differ in the
last bits (every honest worker sums in its own order, as different BLAS kernels do); a lie moves
one element beyond the bound (each liar its own way: liars do not collude). Workers are drawn
uniformly (the router is not assumed to learn). Printed per scheme: wrong results accepted (by
always-liars and overall) and the total work as a multiple of running every chunk once; a check
costs the share of a chunk measured in part 2 (or --check-cost).

Part 2, on this node: a real 2048 x 2048 float64 multiply (numpy, the baseline) and its
Freivalds check (8 rounds), interleaved, best of --repeat (the check: of 3 x --repeat); the
check's cost as a share of the multiply, and a lie one element beyond the bound is caught. It
runs in a fresh process per BLAS thread setting (the default, and one thread): the check's thin
products are memory-bound and suffer most when another process holds a core.

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
from dataclasses import dataclass, field
from typing import Any

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from ledger_net.compute import checks, compare, trust  # noqa: E402 - after the path fix above

SPEC = {"kind": "product", "k": compare.PRODUCT_K}


@dataclass
class Worker:
    name: str
    kind: str  # honest | liar | sometimes
    order: np.ndarray  # the summation order of its "BLAS"
    standing: trust.Standing = field(default_factory=trust.Standing)


@dataclass
class Tally:
    scheme: str
    runs: int = 0
    checks: int = 0
    wrong: int = 0
    wrong_by_liars: int = 0
    chunks: int = 0
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
        self.payload = {"a": self.a, "b": self.b}
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


def _pick(workers: list[Worker], exclude: set[str], rng: random.Random) -> Worker:
    while True:
        w = workers[rng.randrange(len(workers))]
        if w.name not in exclude:
            return w


def _accept(tally: Tally, chunk: Chunk, value: np.ndarray, by: Worker) -> None:
    if not (np.abs(value - chunk.truth) <= chunk.bound).all():
        tally.wrong += 1
        tally.wrong_by_liars += by.kind == "liar"


def adaptive(workers: list[Worker], chunks: list[Chunk], checkable: bool, lie_one_in: int, seed: int,
             rounds: int) -> Tally:
    """Every chunk to one worker; trust.decide says whether to check it, replicate it or trust it."""
    rng = random.Random(seed)
    for w in workers:
        w.standing = trust.Standing()
    tally = Tally("adaptive, checks" if checkable else "adaptive, replicas")
    for index, chunk in enumerate(chunks):
        tally.chunks += 1
        tried: set[str] = set()
        attempt = 0
        while True:
            worker = _pick(workers, tried, rng)
            tried.add(worker.name)
            value, _ = run(worker, chunk, index, attempt, lie_one_in)
            tally.runs += 1
            secret = _seed("secret", seed, index, attempt)
            decision = trust.decide(worker.standing, secret, checkable)
            tally.actions[decision.action] = tally.actions.get(decision.action, 0) + 1
            attempt += 1
            if decision.action == trust.TRUST:
                _accept(tally, chunk, value, worker)
                break
            if decision.action == trust.CHECK:
                tally.checks += 1
                outcome = checks.freivalds(chunk.a, chunk.b, value, checks.check_seed(secret, rhash(value)), rounds)
                worker.standing = worker.standing.after(outcome.passed)
                if outcome.passed:
                    _accept(tally, chunk, value, worker)
                    break
                continue  # caught: the chunk goes to someone else
            if _replicate(tally, workers, chunk, index, worker, value, tried, lie_one_in, rng):
                break
    return tally


def _replicate(tally: Tally, workers: list[Worker], chunk: Chunk, index: int, first: Worker, value: np.ndarray,
               tried: set[str], lie_one_in: int, rng: random.Random, quorum: int = 2) -> bool:
    """Add replicas until a group of ``quorum`` agrees (compare.decide); update every standing."""
    reports = [compare.Report(first.name, rhash(value), value)]
    by_name = {first.name: first}
    while True:
        verdict = compare.decide(SPEC, reports, quorum, 0, chunk.payload)
        if verdict.decision == "accept":
            for r in verdict.winners:
                by_name[r.worker].standing = by_name[r.worker].standing.after(True)
            for r in verdict.losers:
                by_name[r.worker].standing = by_name[r.worker].standing.after(False)
            winner = next(r for r in verdict.winners if r.result_hash == verdict.accepted)
            _accept(tally, chunk, winner.value, by_name[winner.worker])
            return True
        if len(tried) >= len(workers):
            return False
        extra = _pick(workers, tried, rng)
        tried.add(extra.name)
        v, _ = run(extra, chunk, index, len(reports) + 100, lie_one_in)
        tally.runs += 1
        reports.append(compare.Report(extra.name, rhash(v), v))
        by_name[extra.name] = extra


def fixed_quorum(workers: list[Worker], chunks: list[Chunk], quorum: int, lie_one_in: int, seed: int) -> Tally:
    """BOINC's fixed quorum: ``quorum`` replicas of every chunk, more until ``quorum`` agree."""
    rng = random.Random(seed)
    tally = Tally(f"fixed quorum {quorum}")
    for index, chunk in enumerate(chunks):
        tally.chunks += 1
        tried: set[str] = set()
        reports, by_name = [], {}
        while True:
            verdict = compare.decide(SPEC, reports, quorum, 0, chunk.payload) if reports else None
            if verdict is not None and verdict.decision == "accept":
                winner = next(r for r in verdict.winners if r.result_hash == verdict.accepted)
                _accept(tally, chunk, winner.value, by_name[winner.worker])
                break
            need = max(1, quorum - len(reports)) if verdict is None else 1
            for _ in range(need):
                w = _pick(workers, tried, rng)
                tried.add(w.name)
                v, _ = run(w, chunk, index, len(reports), lie_one_in)
                tally.runs += 1
                reports.append(compare.Report(w.name, rhash(v), v))
                by_name[w.name] = w
    return tally


def freivalds_cost(size: int, repeat: int, rounds: int) -> dict[str, Any]:
    g = np.random.default_rng(2048)
    a, b = g.standard_normal((size, size)), g.standard_normal((size, size))
    muls: list[float] = []
    tests: list[float] = []
    c = a @ b
    passed = True
    for i in range(repeat):  # interleaved, so both see the same machine; the short check gets 3 tries a turn
        t = time.perf_counter()
        c = a @ b
        muls.append(time.perf_counter() - t)
        for j in range(3):
            t = time.perf_counter()
            outcome = checks.freivalds(a, b, c, _seed("bench", i, j), rounds)
            tests.append(time.perf_counter() - t)
            passed &= outcome.passed
    best_mul, best_check = min(muls), min(tests)
    lie = c.copy()
    bound = compare.product_bound(a[:1], b)
    lie[0, 0] += 4 * bound[0, 0] * size  # beyond Freivalds' row bound, not only the element bound
    caught = not checks.freivalds(a, b, lie, _seed("bench-lie"), rounds).passed
    median = sorted(tests)[len(tests) // 2] / sorted(muls)[len(muls) // 2]
    return {"size": size, "multiply_s": best_mul, "check_s": best_check, "share": best_check / best_mul,
            "median_share": median,
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
        print(f"{t.scheme:<22} {t.wrong:>15} {t.wrong_by_liars:>16} {100 * t.wrong / t.chunks:>7.2f}% "
              f"{t.work(cost):>6.3f}x  {acts}")
    print(f"  (simulated in {time.perf_counter() - t0:.1f} s; goals: 0 by always-liars, <= 0.1% overall, "
          "work <= 1.25x)")
    print(f"part 2 (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores): {args.size}x{args.size} "
          f"float64 multiply (numpy) against its Freivalds check ({args.rounds} rounds), best of {args.repeat} "
          f"and of {3 * args.repeat}")
    for threads, r in part2.items():
        print(f"  BLAS threads {threads:<8} multiply {r['multiply_s'] * 1e3:7.0f} ms"
              f"  check {r['check_s'] * 1e3:6.1f} ms"
              f"  = {100 * r['share']:.2f}% (goal <= 5%; medians {100 * r['median_share']:.2f}%)  honest passed: "
              f"{r['honest_passed']}, lie caught: {r['lie_caught']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
