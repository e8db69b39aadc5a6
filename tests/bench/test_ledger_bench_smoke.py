"""`bench/ledger_bench.py --appends` still runs, on tiny sizes, and reports both append goals'
rows (one per commit, batches of 500) as ratios to the same run's signing baseline. Never a timing."""

from __future__ import annotations

import json

import pytest

from tests.support.bench import load_bench

pytestmark = pytest.mark.timeout(120)


def test_the_append_rows_are_measured_against_their_goals(capsys):
    bench = load_bench("ledger_bench")
    assert bench.main(["--appends", "--no-pg", "--quick", "--repeat", "1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc["baselines"]) == {"sign"} and doc["baselines"]["sign"]["value"] > 0
    rows = doc["backends"]["sqlite"]
    assert set(rows) == {"append_single", "append_batch"} and all(r["value"] > 0 for r in rows.values())
    assert set(doc["ratios"]["sqlite"]) == {"append_single/sign", "append_batch/sign"}
    assert doc["goals"]["append_single/sign"] == 0.3 and doc["goals"]["append_batch/sign"] == 0.7
