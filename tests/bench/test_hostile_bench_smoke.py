"""`bench/hostile_bench.py` still runs: one cheap phase (CSRF against the control routes) with
tiny sizes, on two real node processes. Checks that the figures are produced and that every
forged request was refused; never a timing (that is the benchmark's business)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.support.bench import load_bench

pytestmark = pytest.mark.timeout(60)




async def test_one_csrf_phase_produces_its_figures_and_refuses_every_forgery(tmp_path: Path) -> None:
    bench = load_bench("hostile_bench")
    sizes = bench.Sizes(transfers=2, spacing=0.05, csrf_requests=60, timeout=20.0)
    result = await bench.run_phase("csrf", sizes, tmp_path)
    assert result.error is None, result.error
    assert len(result.base_latencies) == len(result.latencies) == 2
    assert all(math.isfinite(x) and x > 0 for x in result.base_latencies + result.latencies)
    assert result.base_rss > 0 and result.rss > 0
    handled = result.handled
    assert handled["ok"] is True, handled
    assert handled["requests"] == 60 and handled["accepted"] == 0 and not handled["unexpected"], handled
    assert all(400 <= int(status) < 500 for status in handled["statuses"]), handled
    assert handled["victim_account"] == "unknown (404)"
    text = bench.table([result])
    assert "csrf" in text and ("met" in text or "MISSED" in text)
