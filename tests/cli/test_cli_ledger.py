"""`ledger-net` over a ledger: verify, audit, export/import, replay, explain, inspect, diff.

The books are real: two `ComputeNetwork` nodes on loopback (B joined through A) that
transferred credits, ran escrowed tasks and paid each other; then both stopped, and
the commands read A's data directory (or copies of it, for tampering)."""

from __future__ import annotations

import os
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.store import sqlite_url
from ledger_net.projections.runner import ProjectionRunner
from ledger_net.replay import fold as replay_fold
from tests.support.cli import assert_one_line_error, invoke, json_of
from tests.support.nodes import NodeThread
from tests.support.waiting import wait_until_blocking

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("books")
    a = NodeThread(root / "a").start()
    b = None
    try:
        b = NodeThread(root / "b", seed_nodes=[a.url]).start()
        a_id, b_id = a.node_id, b.node_id

        async def work(n: Any) -> list[str]:
            n.credits.transfer_credits(b_id, 5.0)
            n.credits.transfer_credits("carol", 1.0)  # a name: a voucher
            ids = [await n.submit_task({"task_type": "range_reduce", "config": {
                "start": 1, "end": 1000, "operation": "sum", "max_price": 0.2, "chunk_size": 250}})]
            ids.append(await n.submit_task({"task_type": "map", "config": {
                "data": [1, 2, 3], "operation": "square", "max_price": 0.1}}))
            return ids

        task_ids = a.call(work)
        ledger = a.network.ledger  # type: ignore[union-attr]
        tasks = a.network.runner.tasks.tasks  # type: ignore[union-attr]
        wait_until_blocking(lambda: all(tasks.get(t, {}).get("status") == "completed" for t in task_ids), what="tasks")
        wait_until_blocking(lambda: ledger.state.spendable(b_id) >= 5_000_000, what="B's receipt synced to A")
    finally:
        if b is not None:
            b.stop()
        a.stop()
    return {"dir": root / "a", "a": a_id, "b": b_id, "tasks": task_ids, "root": root}


def bundle_of(books: dict[str, Any], name: str = "bundle.ndjson") -> Path:
    path = books["root"] / name
    if not path.exists():
        result = invoke("export", "--data-dir", books["dir"], "-o", path)
        assert result.exit_code == 0, result.stderr
        assert "exported" in result.stderr
    return path


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def runner_of(data_dir: Path) -> tuple[Ledger, ProjectionRunner]:
    ledger = Ledger.open(sqlite_url(data_dir / "ledger.db"))
    return ledger, ProjectionRunner(ledger, subscribe=False)


def flip_byte(raw: str) -> str:
    """One character of the signed text changed (a digit of the clock), still valid JSON."""
    at = raw.index('"ts":') + 6
    return raw[:at] + ("1" if raw[at] != "1" else "2") + raw[at + 1:]


# ------------------------------------------------------------------ verify

def test_verify_data_dir_and_bundle(books: dict[str, Any]) -> None:
    result = invoke("verify", "--data-dir", books["dir"])
    assert result.exit_code == 0, result.output
    assert "VERIFY OK" in result.stdout
    report = json_of(invoke("verify", "--data-dir", books["dir"], "--json"))
    assert report["ok"] and report["problems"] == [] and report["conserved"]
    events = len(lines_of(bundle_of(books)))
    assert report["events"] == events and report["effective"] + report["invalid"] == events
    bundle = json_of(invoke("verify", "--bundle", bundle_of(books), "--json"))
    assert bundle["ok"] and bundle["events"] == events and bundle["supply"] == report["supply"]
    piped = json_of(invoke("verify", "--bundle", "-", "--json", input=bundle_of(books).read_bytes()))
    assert piped["ok"] and piped["events"] == events and piped["source"] == "stdin"
    by_url = json_of(invoke("verify", "--db-url", f"sqlite:///{books['dir'] / 'ledger.db'}", "--json"))
    assert by_url["ok"] and by_url["events"] == events
    assert_one_line_error(invoke("verify", "--bundle", "-", input=b""), "no events to verify")


def test_verify_names_a_tampered_bundle_event(books: dict[str, Any]) -> None:
    items = lines_of(bundle_of(books))
    victim = next(i for i in items if i["type"] == "credit.transfer")
    victim_index = items.index(victim)
    tampered = books["root"] / "tampered.ndjson"
    with tampered.open("wb") as out:
        for i, item in enumerate(items):
            if i == victim_index:
                item = {**item, "raw": flip_byte(item["raw"])}
            out.write(orjson.dumps(item) + b"\n")
    result = invoke("verify", "--bundle", tampered)
    assert result.exit_code == 1
    bad = [line for line in result.stdout.splitlines() if line.startswith("BAD")]
    assert bad and victim["hash"] in bad[0] and victim["author"] in bad[0] and f"seq {victim['seq']}" in bad[0]
    assert "VERIFY FAILED" in result.stdout
    report = orjson.loads(invoke("verify", "--bundle", tampered, "--json").stdout)
    assert not report["ok"]
    assert {"author": victim["author"], "seq": victim["seq"], "hash": victim["hash"]}.items() <= \
        report["problems"][0].items()

    garbage = books["root"] / "garbage.ndjson"
    garbage.write_bytes(tampered.read_bytes().replace(b"\n", b"\nnot json\n", 1))
    report = orjson.loads(invoke("verify", "--bundle", garbage, "--json").stdout)
    assert any(p["hash"] == "line 2" and "not JSON" in p["problem"] for p in report["problems"])


def test_verify_and_audit_catch_a_tampered_database(books: dict[str, Any], tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(books["dir"], copy)
    with sqlite3.connect(copy / "ledger.db") as db:
        offset, hash_, raw = db.execute('SELECT "offset", hash, raw FROM events WHERE type = ? ORDER BY "offset" '
                                        "LIMIT 1", ("task.chunk_accepted",)).fetchone()
        db.execute('UPDATE events SET raw = ? WHERE "offset" = ?', (flip_byte(raw.decode()).encode(), offset))
    result = invoke("verify", "--data-dir", copy)
    assert result.exit_code == 1 and hash_ in result.stdout
    result = invoke("audit", "--data-dir", copy, "--json")
    assert result.exit_code == 1
    report = orjson.loads(result.stdout)
    assert not report["ok"] and report["violations"][0]["hash"] == hash_


# ------------------------------------------------------------------ export / import

def test_export_import_round_trip_same_state(books: dict[str, Any], tmp_path: Path) -> None:
    source_ledger, source_runner = runner_of(books["dir"])
    try:
        expected = source_runner.state_hash()
        count = source_ledger.store.count()
    finally:
        source_ledger.close()
    target = tmp_path / "imported"
    report = json_of(invoke("import", bundle_of(books), "--data-dir", target, "--json"))
    assert report["stored"] == count and report["events"] == count and report["pending"] == 0
    assert report["state_hash"] == expected
    again = json_of(invoke("import", "-", "--data-dir", target, "--json", input=bundle_of(books).read_bytes()))
    assert again["stored"] == 0 and again["duplicates"] == count and again["state_hash"] == expected
    assert json_of(invoke("verify", "--data-dir", target, "--json"))["ok"]
    assert not (target / "node.key").exists()  # importing creates no identity


def test_export_range_and_import_refusals(books: dict[str, Any], tmp_path: Path) -> None:
    items = lines_of(bundle_of(books))
    partial = tmp_path / "part.ndjson"
    result = invoke("export", "--data-dir", books["dir"], "--after", 3, "--until", items[9]["hash"], "-o", partial)
    assert result.exit_code == 0, result.stderr
    assert [i["offset"] for i in lines_of(partial)] == [i["offset"] for i in items if 3 < i["offset"] <= 10]
    stdout = invoke("export", "--data-dir", books["dir"], "--until", 2)
    assert [orjson.loads(line)["offset"] for line in stdout.stdout.splitlines()] == [1, 2]

    tampered = tmp_path / "bad.ndjson"
    lines = bundle_of(books).read_bytes().splitlines()
    item = orjson.loads(lines[4])
    lines[4] = orjson.dumps({**item, "raw": flip_byte(item["raw"])})
    tampered.write_bytes(b"\n".join(lines) + b"\n")
    target = tmp_path / "never"
    assert_one_line_error(invoke("import", tampered, "--data-dir", target), "line 5", item["hash"])
    assert not target.exists()  # refused before anything was created
    assert_one_line_error(invoke("import", tmp_path / "missing.ndjson", "--data-dir", target), "no bundle file")
    assert_one_line_error(invoke("export", "--data-dir", books["dir"], "--after", 5, "--until", 2), "before")

    gap = tmp_path / "gap.ndjson"  # events whose causal past is missing: nothing dangling is stored
    gap.write_bytes(b"\n".join(bundle_of(books).read_bytes().splitlines()[:1] + lines[5:8]) + b"\n")
    result = invoke("import", gap, "--data-dir", tmp_path / "gap")
    assert result.exit_code == 1 and "wait for events the bundle does not hold" in result.stderr


# ------------------------------------------------------------------ audit

def test_audit_human_and_json(books: dict[str, Any]) -> None:
    result = invoke("audit", "--data-dir", books["dir"])
    assert result.exit_code == 0, result.output
    assert "AUDIT OK" in result.stdout and "conserved" in result.stdout
    report = json_of(invoke("audit", "--data-dir", books["dir"], "--json"))
    assert report["ok"] and report["conserved"] and report["violations"] == []
    s = report["supply"]
    assert s["minted"] == s["balances"] + s["escrow"] + s["in_transit"] + s["vouchers"] + s["burnt"]
    assert s["vouchers"] == 1_000_000
    accounts = {a["account"]: a for a in report["accounts"]}
    assert accounts[books["a"]]["sent"] == 5_000_000 and accounts[books["b"]]["received"] == 5_000_000
    assert sum(a["earned"] for a in accounts.values()) > 0
    spent, earned = (sum(a[k] for a in accounts.values()) for k in ("spent", "earned"))
    assert 0 <= spent - earned <= sum(a["incoming"] for a in accounts.values())  # paid, not yet received
    bundle = json_of(invoke("audit", "--bundle", bundle_of(books), "--json"))
    assert bundle["ok"] and bundle["state_hash"] == report["state_hash"]


def test_audit_offline_says_pending_is_not_on_disk(books: dict[str, Any]) -> None:
    """Pending events live in a node's memory only: offline there is no count to give."""
    report = json_of(invoke("audit", "--data-dir", books["dir"], "--json"))
    assert report["pending_events"] is None and "memory only" in report["pending"]
    assert report["void_events"] == 0 and report["invalid"] == [] and report["source"] == str(books["dir"])
    human = invoke("audit", "--data-dir", books["dir"])
    assert human.exit_code == 0
    assert "pending: none on disk" in human.stdout and "0 pending" not in human.stdout


def test_audit_bundle_with_missing_past_fails_and_names_the_waiting(books: dict[str, Any], tmp_path: Path) -> None:
    lines = bundle_of(books).read_bytes().splitlines()
    items = [orjson.loads(line) for line in lines]
    full = json_of(invoke("audit", "--bundle", bundle_of(books), "--json"))
    assert full["ok"] and full["pending_events"] == 0 and full["waiting"] == []
    # drop B's first event: everything B signed after it waits for it
    dropped = next(i for i in items if i["author"] == books["b"] and i["seq"] == 1)
    holey = tmp_path / "holey.ndjson"
    holey.write_bytes(b"\n".join(line for line, i in zip(lines, items, strict=False) if i is not dropped) + b"\n")
    result = invoke("audit", "--bundle", holey, "--json")
    assert result.exit_code == 1
    report = orjson.loads(result.stdout)
    b_events = [i for i in items if i["author"] == books["b"]]
    assert not report["ok"] and report["pending_events"] == len(report["waiting"]) >= len(b_events) - 1
    assert {w["hash"] for w in report["waiting"]} >= {i["hash"] for i in b_events if i is not dropped}
    first = next(w for w in report["waiting"] if w["author"] == books["b"] and w["seq"] == 2)
    assert dropped["hash"] in first["missing"]
    assert any("wait for events it does not hold" in v["problem"] for v in report["violations"])
    human = invoke("audit", "--bundle", holey)
    assert human.exit_code == 1 and "AUDIT FAILED" in human.stdout
    assert f"pending: {report['pending_events']} event(s) of the bundle wait" in human.stdout
    assert f"seq 2 {first['hash']} needs" in human.stdout


def test_audit_without_a_runner_folds_in_its_own_pass(books: dict[str, Any]) -> None:
    """`audit(ledger)` folds fresh projections in the verification's pass: same report as
    with the node's persisted runner, and it reads the log once."""
    from ledger_net.audit import audit

    ledger, runner = runner_of(books["dir"])
    try:
        with_runner = audit(ledger, runner, live=False)
        reads = 0
        select = ledger.store.select_events

        def counting(*args: Any, **kwargs: Any) -> Any:
            nonlocal reads
            reads += 1
            return select(*args, **kwargs)

        ledger.store.select_events = counting  # type: ignore[method-assign]
        ticks: list[int] = []
        alone = audit(ledger, live=False, tick=ticks.append)
    finally:
        ledger.close()
    assert reads == 1 and sum(ticks) == alone["events"] == with_runner["events"]
    assert alone["state_hash"] == with_runner["state_hash"] == runner.state_hash()
    assert alone["accounts"] == with_runner["accounts"] and alone["ok"] and alone["violations"] == []


# ------------------------------------------------------------------ replay

def test_replay_until_equals_runner_replay(books: dict[str, Any]) -> None:
    ledger, runner = runner_of(books["dir"])
    try:
        last = ledger.store.last_offset()
        items = lines_of(bundle_of(books))
        for until in (1, last // 2, last):
            view = json_of(invoke("replay", "--data-dir", books["dir"], "--until", until, "--json"))
            projections = runner.replay(until)
            assert view["offset"] == until
            assert view["state_hash"] == runner.state_hash(projections)
            balances = next(p for p in projections if p.name == "balances")
            assert view["balances"] == {k: v for k, v in sorted(balances.accounts.items())}
        end = json_of(invoke("replay", "--data-dir", books["dir"], "--json"))
        assert end["state_hash"] == runner.state_hash() and end["offset"] == last
        assert {t: end["tasks"][t]["status"] for t in books["tasks"]} == dict.fromkeys(books["tasks"], "completed")
        assert end["reputation"][books["b"]]["level"] in ("neutral", "trusted", "high", "elite", "low", "untrusted")
        by_hash = json_of(invoke("replay", "--data-dir", books["dir"], "--until", items[6]["hash"], "--json"))
        assert by_hash["offset"] == items[6]["offset"]
        moment = datetime.fromtimestamp(items[6]["ts"] / 1000, UTC).isoformat()
        by_time = json_of(invoke("replay", "--data-dir", books["dir"], "--until", moment, "--json"))
        assert by_time["offset"] >= items[6]["offset"]
        assert all(i["ts"] > items[6]["ts"] for i in items if i["offset"] > by_time["offset"])
        epoch = json_of(invoke("replay", "--data-dir", books["dir"], "--until", f"@{items[0]['ts'] / 1000 - 1}",
                               "--json"))
        assert epoch["offset"] == 0 and epoch["balances"] == {}
    finally:
        ledger.close()
    human = invoke("replay", "--data-dir", books["dir"], "--until", 2)
    assert human.exit_code == 0 and "state at offset 2" in human.stdout and "100.000000" in human.stdout
    assert_one_line_error(invoke("replay", "--data-dir", books["dir"], "--until", 10**6), "outside this ledger")
    assert_one_line_error(invoke("replay", "--data-dir", books["dir"], "--until", "yesterday-ish"), "not an offset")
    assert_one_line_error(invoke("replay", "--data-dir", books["dir"], "--until", "ab" * 32), "no event")


def test_replay_step_shows_what_each_event_changed(books: dict[str, Any]) -> None:
    items = lines_of(bundle_of(books))
    transfer = next(i for i in items if i["type"] == "credit.transfer")
    result = json_of(invoke("replay", "--data-dir", books["dir"], "--step", "--from", transfer["hash"], "--limit", 1,
                            "--json"))
    (step,) = result["steps"]
    assert step["hash"] == transfer["hash"] and step["type"] == "credit.transfer"
    sender = step["changes"]["balances"][books["a"]]
    assert sender["balance"][0] - sender["balance"][1] == 5_000_000
    receiver = step["changes"]["balances"][books["b"]]
    assert (receiver["added"]["incoming"] if "added" in receiver else receiver["incoming"][1]) >= 5_000_000
    full = json_of(invoke("replay", "--data-dir", books["dir"], "--step", "--limit", 10**6, "--json"))["steps"]
    assert [s["offset"] for s in full] == [i["offset"] for i in items]
    # folding the balance changes step by step ends at the final balances
    balances: dict[str, int] = {}
    for s in full:
        for account, change in s["changes"].get("balances", {}).items():
            balances[account] = change["added"]["balance"] if "added" in change else \
                change.get("balance", [None, balances.get(account, 0)])[1]
    end = json_of(invoke("replay", "--data-dir", books["dir"], "--json"))
    assert balances == {k: v["balance"] for k, v in end["balances"].items()}
    human = invoke("replay", "--data-dir", books["dir"], "--step", "--limit", 3)
    assert human.exit_code == 0 and human.stdout.startswith("#1 network.genesis")
    human = invoke("replay", "--data-dir", books["dir"], "--step", "--from", transfer["hash"], "--limit", 1)
    head, *changes = human.stdout.splitlines()
    assert head.startswith(f"#{transfer['offset']} credit.transfer by {books['a'][:12]}")
    sender_line = next(line for line in changes if line.split()[:2] == ["balances", books["a"][:16] + "…"])
    before, after = step["changes"]["balances"][books["a"]]["balance"]
    assert f"balance {before / 1e6:.6f} → {after / 1e6:.6f}" in sender_line and after == before - 5_000_000
    until = invoke("replay", "--data-dir", books["dir"], "--step", "--from", 2, "--until", 4)
    assert [line.split()[0] for line in until.stdout.splitlines() if line.startswith("#")] == ["#2", "#3", "#4"]
    assert_one_line_error(invoke("replay", "--data-dir", books["dir"], "--from", 3), "--from goes with --step")


# ------------------------------------------------------------------ explain / inspect / diff

@pytest.mark.parametrize("who", ["a", "b"])
def test_explain_balance_sums_to_the_balance(books: dict[str, Any], who: str) -> None:
    report = json_of(invoke("explain", "balance", books[who], "--data-dir", books["dir"], "--json"))
    assert report["ok"] and report["problems"] == []
    assert sum(r["delta"] for r in report["rows"]) == report["sum"] == report["balance"] == report["rules_balance"]
    assert report["rows"][-1]["running"] == report["balance"]
    by_prefix = json_of(invoke("explain", "balance", books[who][:10], "--data-dir", books["dir"], "--json"))
    assert by_prefix["account"] == books[who]
    human = invoke("explain", "balance", books[who], "--data-dir", books["dir"])
    assert human.exit_code == 0 and "BALANCE EXPLAINED" in human.stdout


def test_explain_balance_in_history_batches_by_key_prefix_and_name(books: dict[str, Any],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The fold hands its history rows over in batches of 3 events and explain keeps the
    account's: the same rows as one batch; a node name (known only at the fold's end) too."""
    whole = json_of(invoke("explain", "balance", books["a"], "--data-dir", books["dir"], "--json"))
    monkeypatch.setattr(replay_fold, "HISTORY_BATCH", 3)
    assert len(whole["rows"]) > 3
    for text in (books["a"], books["a"][:10], whole["name"]):
        assert json_of(invoke("explain", "balance", text, "--data-dir", books["dir"], "--json")) == whole


def test_explain_balance_at_a_point_and_errors(books: dict[str, Any]) -> None:
    report = json_of(invoke("explain", "balance", books["a"], "--data-dir", books["dir"], "--until", 2, "--json"))
    assert report["balance"] == 100_000_000 and [r["kind"] for r in report["rows"]] == ["minted"]
    assert report["rules_balance"] is None  # the rules' own view exists only at the end of the log
    assert_one_line_error(invoke("explain", "balance", "f" * 64, "--data-dir", books["dir"]), "no account")
    assert_one_line_error(invoke("explain", "task", "task-nope", "--data-dir", books["dir"]), "no task")


def test_explain_task_history(books: dict[str, Any]) -> None:
    task_id = books["tasks"][0]
    report = json_of(invoke("explain", "task", task_id, "--data-dir", books["dir"], "--json"))
    types = [e["type"] for e in report["events"]]
    # A node that had not yet seen the completion may still quote on the submission, so a late
    # task.quote can follow; the task's own story ends with its completion or the refund's receipt.
    story = [t for t in types if t != "task.quote"]
    assert types[0] == "task.submitted" and story[-1] in ("task.completed", "credit.received")
    assert "task.completed" in types and types.count("task.chunk_accepted") == 4 == report["task"]["chunks_total"]
    assert report["task"]["status"] == "completed" and set(report["chunks"]) == {"0", "1", "2", "3"}
    offsets = [e["offset"] for e in report["events"]]
    assert offsets == sorted(offsets)
    human = invoke("explain", "task", task_id, "--data-dir", books["dir"])
    assert human.exit_code == 0 and f"task {task_id}: completed" in human.stdout


def test_explain_task_by_unique_prefix(books: dict[str, Any]) -> None:
    task_id = books["tasks"][0]
    prefix = next(task_id[:n] for n in range(6, len(task_id))
                  if sum(t.startswith(task_id[:n]) for t in books["tasks"]) == 1)
    human = invoke("explain", "task", prefix, "--data-dir", books["dir"])
    assert human.exit_code == 0 and f"task {task_id}: completed" in human.stdout
    if len(books["tasks"]) > 1:  # "task-" starts every id: ambiguous, and the error says so
        assert_one_line_error(invoke("explain", "task", "task-", "--data-dir", books["dir"]), "tasks have an id")


def test_inspect_event(books: dict[str, Any]) -> None:
    items = lines_of(bundle_of(books))
    transfer = next(i for i in items if i["type"] == "credit.transfer")
    report = json_of(invoke("inspect", transfer["hash"], "--data-dir", books["dir"], "--json"))
    assert report["offset"] == transfer["offset"] and report["valid"] and report["checks_ok"]
    assert report["event"]["body"]["to"] == books["b"]
    receipts = [d for d in report["named_by"] if d["type"] == "credit.received"]
    assert receipts and receipts[0]["author"] == books["b"] and receipts[0]["role"] == "dep"
    assert report["names"][0]["role"] == "prev" and report["names"][0]["offset"] < transfer["offset"]
    assert report["changes"]["balances"][books["a"]]["sent"] == [0, 5_000_000]
    short = json_of(invoke("inspect", transfer["hash"][:12], "--data-dir", books["dir"], "--json"))
    assert short["hash"] == transfer["hash"]
    human = invoke("inspect", transfer["hash"], "--data-dir", books["dir"])
    assert human.exit_code == 0 and "check out" in human.stdout and "named by (dep)" in human.stdout
    assert_one_line_error(invoke("inspect", "0" * 64, "--data-dir", books["dir"]), "no event")
    assert_one_line_error(invoke("inspect", "xyz", "--data-dir", books["dir"]), "not an event hash")


def test_diff_between_points(books: dict[str, Any]) -> None:
    last_hash = lines_of(bundle_of(books))[-1]["hash"]
    report = json_of(invoke("diff", 2, last_hash, "--data-dir", books["dir"], "--json"))
    assert report["a"]["offset"] == 2 and report["events_between"] == report["b"]["offset"] - 2
    # a task row's key is its primary key joined by '#' (task id first)
    assert set(books["tasks"]) <= {key.split("#")[0] for key in report["changes"]["tasks"]}
    assert "added" in report["changes"]["balances"][books["b"]]
    back = json_of(invoke("diff", report["b"]["offset"], 2, "--data-dir", books["dir"], "--json"))
    assert back["a"]["state_hash"] == report["b"]["state_hash"]
    assert "removed" in back["changes"]["balances"][books["b"]]
    same = invoke("diff", 5, 5, "--data-dir", books["dir"])
    assert same.exit_code == 0 and "no difference" in same.stdout
    human = invoke("diff", 2, last_hash, "--data-dir", books["dir"])
    head, *rows = human.stdout.splitlines()
    assert head.startswith(f"from offset 2 (state {report['a']['state_hash'][:12]}")
    assert f"{report['events_between']} events between" in head
    assert len(rows) == sum(len(changes) for changes in report["changes"].values())
    assert any(row.split()[:2] == ["balances", books["b"][:16] + "…"] and "new:" in row for row in rows)


# ------------------------------------------------------------------ wrong arguments

def test_wrong_arguments_are_one_line(books: dict[str, Any], tmp_path: Path) -> None:
    assert_one_line_error(invoke("verify", "--data-dir", tmp_path / "nothing"), "no ledger at")
    assert_one_line_error(invoke("verify", "--bundle", tmp_path / "nothing.ndjson"), "nothing.ndjson")
    assert_one_line_error(invoke("frobnicate"), "No such command")
    assert_one_line_error(invoke("explain", "balance"), "Missing argument")
    assert_one_line_error(invoke("replay", "--data-dir", books["dir"], "--limit", 0), "--limit")
    assert_one_line_error(invoke("audit", "--db-url", "nosuchdriver://x"), "nosuchdriver")
    assert invoke("--help").exit_code == 0


@pytest.mark.parametrize("args, fragment", [
    (["inspect", "0" * 64], "no event"),
    (["inspect", "abc"], "at least 6 hex"),
    (["inspect", "not-hex!"], "not an event hash"),
    (["inspect"], "Missing argument 'HASH'"),
    (["replay", "--until", "-3"], "not an offset"),
    (["replay", "--until", "1e400"], "not an offset"),
    (["replay", "--until", "@inf"], "not an offset"),
    (["replay", "--until", "2025-13-01"], "not an offset"),
    (["replay", "--step", "--from", 10**6], "outside this ledger"),
    (["replay", "--step", "--until", "ff" * 32], "no event"),
    (["replay", "--step", "--from", 5, "--until", 2], "before --from"),
    (["diff", 1, "nowhere"], "not an offset"),
    (["diff", 1, 10**6], "outside this ledger"),
    (["diff", 1], "Missing argument 'B'"),
    (["explain", "balance", "nobody-at-all"], "no account"),
    (["explain", "task", "task-nope"], "no task"),
    (["export", "--until", "@nan"], "not an offset"),
])
def test_bad_points_and_names_are_one_line(books: dict[str, Any], args: list[Any], fragment: str) -> None:
    assert_one_line_error(invoke(*args, "--data-dir", books["dir"]), fragment)


@pytest.mark.parametrize("command", [["verify"], ["audit"], ["replay"], ["replay", "--step"], ["inspect", "abcdef"],
                                     ["diff", 1, 2], ["explain", "balance", "x"], ["explain", "task", "t"],
                                     ["export"]])
def test_missing_or_unreadable_data_dir_is_one_line(command: list[Any], tmp_path: Path) -> None:
    assert_one_line_error(invoke(*command, "--data-dir", tmp_path / "nothing"), "no ledger at")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "ledger.db").write_bytes(b"this is not a database" * 100)
    assert_one_line_error(invoke(*command, "--data-dir", broken), "cannot open the database")


def test_garbage_ndjson_is_refused_in_one_line(books: dict[str, Any], tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.ndjson"
    garbage.write_bytes(b'not json\n{"a": 1}\n\xff\xfe\x00binary\n')
    empty = tmp_path / "empty.ndjson"
    empty.write_bytes(b"\n")
    assert_one_line_error(invoke("verify", "--bundle", garbage), "not an NDJSON audit bundle", "line 1 is not JSON")
    assert_one_line_error(invoke("verify", "--bundle", empty), "no events to verify")
    assert_one_line_error(invoke("audit", "--bundle", garbage), "line 1 is not JSON")
    assert_one_line_error(invoke("audit", "--bundle", empty), "no events to audit")
    target = tmp_path / "target"
    assert_one_line_error(invoke("import", garbage, "--data-dir", target), "line 1 is not JSON")
    assert_one_line_error(invoke("import", empty, "--data-dir", target), "no events to import")
    assert_one_line_error(invoke("import", "-", "--data-dir", target, input=b"[1, 2]\n"), "not a bundle line")
    assert not target.exists()  # nothing was created for a refused import
    # good lines with one bad line among them: verified, and the bad line named by number
    mixed = tmp_path / "mixed.ndjson"
    lines = bundle_of(books).read_bytes().splitlines()
    mixed.write_bytes(b"\n".join(lines[:3] + [b"garbage"] + lines[3:]) + b"\n")
    result = invoke("verify", "--bundle", mixed)
    assert result.exit_code == 1 and "BAD line 4 is not JSON" in result.stdout and "VERIFY FAILED" in result.stdout


def test_console_errors_are_one_line_in_a_real_process(tmp_path: Path) -> None:
    """The same contract outside click's test runner: a real interpreter, real stderr."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    garbage = tmp_path / "garbage.ndjson"
    garbage.write_bytes(b"\x00\x01 not a bundle\n")
    for args, fragment in ((["inspect", "abcdef", "--data-dir", str(tmp_path / "none")], "no ledger at"),
                           (["verify", "--bundle", str(garbage)], "not an NDJSON audit bundle"),
                           (["import", str(garbage), "--data-dir", str(tmp_path / "t")], "line 1 is not JSON")):
        done = subprocess.run([sys.executable, "-m", "ledger_net.cli", *args], cwd=root, capture_output=True,
                              text=True, timeout=60, env={k: v for k, v in os.environ.items()
                                                          if k != "LEDGER_NET_DEBUG"})
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], (args, done.stderr)
        assert done.stdout == ""
