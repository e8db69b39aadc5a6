"""The ingest benches still run on tiny sizes: `ledger_bench.trial_ingest` with the pages parsed
in the worker processes (`check_wire_ahead`, the default) and parsed here (`verify_ahead`)
stores the whole economy both ways. Never a timing."""

from __future__ import annotations

import pytest

from tests.support.bench import load_bench

pytestmark = pytest.mark.timeout(120)


@pytest.mark.parametrize("parse_ahead", [True, False])
def test_trial_ingest_stores_the_economy(tmp_path, parse_ahead):
    bench = load_bench("ledger_bench")
    _, log = bench.make_economy(700, 5)
    wire = [(e.raw, e.sig) for e in log]
    count, _ = bench.trial_ingest(f"sqlite:///{tmp_path}/ingest.db", wire, 300, parse_ahead)
    assert count == len(wire) - 1  # all but the genesis, which the fresh ledger got first
