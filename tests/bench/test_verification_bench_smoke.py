"""`bench/verification_bench.py` still runs, on tiny sizes: the simulation's schemes produce
their figures, no always-liar's result is accepted, a fixed quorum costs what it must, and the
real Freivalds check passes the honest product and catches the lie. Never a timing."""

from __future__ import annotations

import random

import pytest

from tests.support.bench import load_bench

pytestmark = pytest.mark.timeout(120)




def test_the_simulation_and_the_real_check_produce_their_figures():
    bench = load_bench("verification_bench")
    workers = bench.make_workers(30, 0.1, 0.1, 16, random.Random(1))
    assert sum(w.kind == "liar" for w in workers) == 3 and sum(w.kind == "sometimes" for w in workers) == 3
    chunks = [bench.Chunk(i, 3, 16, 3) for i in range(300)]
    checked = bench.adaptive(workers, chunks, True, 20, 1, 8)
    replicated = bench.adaptive(workers, chunks, False, 20, 1, 8)
    q2 = bench.fixed_quorum(workers, chunks, 2, 20, 1)
    for tally in (checked, replicated, q2):
        assert tally.chunks == 300 and tally.wrong_by_liars == 0
    assert checked.checks > 0 and checked.actions.get("check", 0) == checked.checks
    assert replicated.actions.get("replicate", 0) > 0 and replicated.checks == 0
    assert q2.wrong == 0 and q2.work(0.0) >= 2.0
    real = bench.freivalds_cost(64, 1, 8)
    assert real["honest_passed"] and real["lie_caught"] and real["share"] > 0
    args = ["--workers", "20", "--chunks", "50", "--size", "32", "--repeat", "1", "--threads", "default,1"]
    assert bench.main(args) == 0
