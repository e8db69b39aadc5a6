"""`bench/matrix_steps.py` still runs on tiny sizes and reports every step before and after
(the leaves read, a fetch on a new and a kept connection, a worker's second chunk). Never a timing."""

from __future__ import annotations

import json

import pytest

from tests.support.bench import load_bench

pytestmark = pytest.mark.timeout(120)


def test_every_step_is_measured_before_and_after(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench("matrix_steps")
    assert bench.main(["--quick", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    for step in ("leaves", "fetch_1KiB", "fetch_8MiB", "worker"):
        assert set(doc[step]) == {"before", "after"}
        for which in ("before", "after"):
            figures = doc[step][which]
            assert set(figures) == {"cpu_ms_min", "cpu_ms_median", "wall_ms_min", "wall_ms_median"}
            assert figures["wall_ms_min"] > 0
