"""`bench/scale_bench.py` still builds and measures, on a tiny economy: the events signed by
its worker processes are the ones `ledger-net verify` accepts, the build leaves its one judge
snapshot SNAPSHOT_EVERY - 1 events before the end, and `--skip` leaves out exactly the phases
it names. Never a timing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger_net.ledger.chain import SNAPSHOT_EVERY, Ledger
from ledger_net.ledger.store import Store, sqlite_url
from tests.support.bench import BENCH_DIR, load_bench

pytestmark = pytest.mark.timeout(240)

EVENTS = SNAPSHOT_EVERY + 2_000  # past one quiet point, so the build saves its snapshot
USERS = 30


def test_build_signs_on_workers_and_the_measure_skips_what_it_is_told(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.syspath_prepend(str(BENCH_DIR))  # the signing workers (spawned) import the bench by name
    bench = load_bench("scale_bench")
    bench.build(tmp_path, [EVENTS], USERS, 7, batch=1_000)
    cached = bench.cached_path(tmp_path, EVENTS, USERS, 7)
    assert sorted(p.name for p in tmp_path.iterdir()) == [cached.name]  # the building file was moved
    store = Store.open(sqlite_url(cached))
    try:
        snap = store.latest_snapshot()
        assert snap is not None and snap.offset == EVENTS - (SNAPSHOT_EVERY - 1)
        assert store.last_offset() == EVENTS
    finally:
        store.close()
    ledger = Ledger.open(sqlite_url(cached), snapshot_on_close=False)
    try:
        assert ledger.judged_on_open == SNAPSHOT_EVERY - 1
    finally:
        ledger.close()

    args = ["--sizes", str(EVENTS), "--users", str(USERS), "--cache-dir", str(tmp_path), "--repeat", "1",
            "--skip", "open_full,rebuild,audit", "--json"]
    assert bench.main(args) == 0
    result = json.loads(capsys.readouterr().out)["results"][str(EVENTS)]
    assert result["events"] == EVENTS and result["judged_on_open"] == SNAPSHOT_EVERY - 1
    assert result["verify_ok"], result.get("verify_error")  # every signature the workers made checks
    assert "catchup_s" in result and "feed_page_ms" in result
    assert result["state_accounts"][0] == USERS + 1 and result["state_accounts"][1] > 0
    for skipped in ("open_full_s", "rebuild_s", "audit_s"):
        assert skipped not in result
    assert result["skipped"] == ["audit", "open_full", "rebuild"]


def test_an_unknown_phase_to_skip_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    bench = load_bench("scale_bench")
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--skip", "rebuild,everything"])
    assert exit_.value.code == 2
    assert "unknown phase(s) everything" in capsys.readouterr().err
