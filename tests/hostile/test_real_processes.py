"""The hostile suite on real node processes: two `ledger-net node` processes on loopback (P
founds, Q joins) and a separate attacker process (bench/hostile_bench.py --attacker KIND) hitting
P, at small sizes. Each attack must be handled as docs/security.md says, and every honest
transfer P → Q must arrive while it lasts. Liveness bounds only, never a timing goal (that is the
benchmark's business: bench/hostile_bench.py)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.support.bench import load_bench

pytestmark = pytest.mark.timeout(180)




@pytest.mark.parametrize("attack", ["orphans", "big_events", "tarpits", "conn_flood"])
async def test_honest_transfers_arrive_while_an_attacker_process_hits_a_real_node(tmp_path: Path,
                                                                                   attack: str) -> None:
    bench = load_bench("hostile_bench")
    sizes = bench.Sizes(transfers=3, spacing=0.2, big_pushes=40, orphans=600, orphan_rounds=2, tarpits=8,
                        connections=1100, tarpit_window=4.0, timeout=30.0)
    result = await bench.run_phase(attack, sizes, tmp_path)
    assert result.error is None, result.error
    assert len(result.base_latencies) == len(result.latencies) == 3  # every honest transfer arrived
    assert all(math.isfinite(x) and 0 < x < 30 for x in result.latencies)
    assert result.handled["ok"] is True, result.handled  # refused or contained, no 5xx, nothing stored
