"""Auditor bundles that merge (issue 14 item 6): `verify`, `audit` and `import` take bundles in
any line order and the union of several nodes' bundles, duplicates included
(`ledger_net.bundle`: causal sort first, then judge).

The books are the demo's (`ledger-net demo`: an operator and three workers that ran tasks and
paid each other), exported from the operator's and from a worker's data directory."""

from __future__ import annotations

import random
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest

from ledger_net.bundle import Bundle, bundle_line
from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.identity import Identity
from tests.support.cli import assert_one_line_error, invoke, json_of

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("demo")
    done = subprocess.run([sys.executable, "-m", "ledger_net.cli", "demo", "--data-dir", str(root / "d")],
                          capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr[-2000:]
    operator, worker = root / "d" / "operator", root / "d" / "worker-1"
    for name, data_dir in (("operator", operator), ("worker", worker)):
        result = invoke("export", "--data-dir", data_dir, "-o", root / f"{name}.ndjson")
        assert result.exit_code == 0, result.stderr
    lines = (root / "operator.ndjson").read_bytes().splitlines(keepends=True)
    shuffled = list(lines)
    random.Random(14).shuffle(shuffled)
    (root / "shuffled.ndjson").write_bytes(b"".join(shuffled))
    report = json_of(invoke("audit", "--data-dir", operator, "--json"))
    assert report["ok"]
    return {"root": root, "operator": operator, "worker": worker, "lines": lines, "shuffled": shuffled,
            "state_hash": report["state_hash"], "events": report["events"]}


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines))
    return path


def items(lines: list[bytes]) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in lines]


def test_the_shuffle_breaks_the_offset_order(demo: dict[str, Any]) -> None:
    """The shuffled bundle is not causal as it stands: many events come before their prev."""
    seen: set[str] = set()
    early = 0
    for item in items(demo["shuffled"]):
        prev = orjson.loads(item["raw"])["prev"]
        early += prev is not None and prev not in seen
        seen.add(item["hash"])
    assert early > len(demo["shuffled"]) // 3


def test_shuffled_bundle_verifies_audits_and_imports_to_the_same_state(demo: dict[str, Any], tmp_path: Path) -> None:
    shuffled = demo["root"] / "shuffled.ndjson"
    report = json_of(invoke("verify", shuffled, "--json"))
    assert report["ok"] and report["events"] == demo["events"] and report["problems"] == []
    human = invoke("verify", "--bundle", shuffled)
    assert human.exit_code == 0 and "VERIFY OK" in human.stdout
    audited = json_of(invoke("audit", shuffled, "--json"))
    assert audited["ok"] and audited["state_hash"] == demo["state_hash"] and audited["waiting"] == []
    imported = json_of(invoke("import", shuffled, "--data-dir", tmp_path / "books", "--json"))
    assert imported["state_hash"] == demo["state_hash"] and imported["stored"] == demo["events"]
    again = json_of(invoke("audit", "--data-dir", tmp_path / "books", "--json"))
    assert again["ok"] and again["state_hash"] == demo["state_hash"]


def test_two_nodes_bundles_merge_with_duplicates(demo: dict[str, Any], tmp_path: Path) -> None:
    """The operator's first 60 lines and a worker's from its 40th on, each shuffled: together
    the whole ledger, 20-odd events twice; plus one file given twice."""
    rnd = random.Random(6)
    first = list(demo["lines"][:60])
    worker_lines = (demo["root"] / "worker.ndjson").read_bytes().splitlines(keepends=True)
    rest = list(worker_lines[40:])
    rnd.shuffle(first)
    rnd.shuffle(rest)
    a, b = write(tmp_path / "a.ndjson", first), write(tmp_path / "b.ndjson", rest)
    hashes = {i["hash"] for i in items(first)} | {i["hash"] for i in items(rest)}
    assert len(hashes) == demo["events"] and len(first) + len(rest) > demo["events"]
    for args in ((a, b), (b, "-", a)):
        report = json_of(invoke("verify", *args, "--json", input=b.read_bytes()))
        assert report["ok"] and report["events"] == demo["events"], report["problems"]
    alone = invoke("verify", a, "--json")  # one node's part alone is not the ledger (b's tail is missing,
    assert alone.exit_code == 0  # but a's first 60 lines are a causal prefix: they verify on their own)
    audited = json_of(invoke("audit", a, b, "--json"))
    assert audited["ok"] and audited["state_hash"] == demo["state_hash"]
    imported = json_of(invoke("import", b, a, "--data-dir", tmp_path / "merged", "--json"))
    assert imported["state_hash"] == demo["state_hash"] and imported["stored"] == demo["events"]
    assert imported["duplicates"] == len(first) + len(rest) - demo["events"]
    assert_one_line_error(invoke("verify", "-", "-", input=b""), "standard input ('-') can be given once")
    assert_one_line_error(invoke("verify", tmp_path / "nothing.ndjson"), "no bundle file")


def test_missing_causal_past_fails_naming_it(demo: dict[str, Any], tmp_path: Path) -> None:
    parsed = items(demo["shuffled"])
    worker = next(i["author"] for i in parsed if orjson.loads(i["raw"])["type"] == "node.joined")
    dropped = next(i for i in parsed if i["author"] == worker and i["seq"] == 1)
    second = next(i for i in parsed if i["author"] == worker and i["seq"] == 2)
    holey = write(tmp_path / "holey.ndjson", [line for line, i in zip(demo["shuffled"], parsed, strict=True)
                                              if i is not dropped])
    result = invoke("verify", holey, "--json")
    assert result.exit_code == 1
    report = orjson.loads(result.stdout)
    named = {p["hash"]: p["problem"] for p in report["problems"]}
    assert dropped["hash"] in named[second["hash"]] and "not in the bundle" in named[second["hash"]]
    later = [i for i in parsed if i["author"] == worker and i["seq"] > 2]
    assert later and all(i["hash"] in named for i in later)
    assert report["events"] == len(parsed) - 1
    human = invoke("verify", holey)
    assert human.exit_code == 1 and f"hash {second['hash']}: its causal past is not in the bundle" in human.stdout
    audited = invoke("audit", holey, "--json")
    assert audited.exit_code == 1
    waiting = {w["hash"]: w for w in orjson.loads(audited.stdout)["waiting"]}
    assert dropped["hash"] in waiting[second["hash"]]["missing"]
    result = invoke("import", holey, "--data-dir", tmp_path / "gap")
    assert result.exit_code == 1 and "wait for events the bundle does not hold" in result.stderr


def test_a_tampered_line_still_fails(demo: dict[str, Any], tmp_path: Path) -> None:
    parsed = items(demo["shuffled"])
    at = next(n for n, i in enumerate(parsed) if orjson.loads(i["raw"])["type"] == "credit.transfer")
    victim = parsed[at]
    raw = victim["raw"].replace('"amount":', '"amount":1', 1)
    lines = list(demo["shuffled"])
    lines[at] = orjson.dumps({**victim, "raw": raw}) + b"\n"
    tampered = write(tmp_path / "tampered.ndjson", lines)
    result = invoke("verify", tampered, "--json")
    assert result.exit_code == 1
    first = orjson.loads(result.stdout)["problems"][0]
    assert first["hash"] == victim["hash"] and first["author"] == victim["author"]
    assert f"line {at + 1}" in first["problem"]
    # a good copy of the event in another file does not hide the bad line
    both = orjson.loads(invoke("verify", tampered, demo["root"] / "operator.ndjson", "--json").stdout)
    assert not both["ok"] and any(victim["hash"] == p["hash"] for p in both["problems"])
    assert_one_line_error(invoke("import", tampered, "--data-dir", tmp_path / "never"), f"line {at + 1}",
                          victim["hash"])
    assert not (tmp_path / "never").exists()
    assert_one_line_error(invoke("audit", tampered), f"line {at + 1}")


def test_the_order_is_the_same_whatever_the_input_order(demo: dict[str, Any], tmp_path: Path) -> None:
    reference = Bundle.read([str(demo["root"] / "operator.ndjson")])
    order = [reference.hash_of(i) for i in reference.order]
    offsets = [i["hash"] for i in items(demo["lines"])]
    assert order[0] == offsets[0]  # the genesis first
    shuffled = Bundle.read([str(demo["root"] / "shuffled.ndjson")], threads=1)
    assert [shuffled.hash_of(i) for i in shuffled.order] == order
    assert [r.hash for r in shuffled.rows()] == order


def test_index_memory_per_event_is_bounded(tmp_path: Path) -> None:
    """What the index keeps of each event (the bodies are read back by offset): under 400
    bytes an event held, under 800 at the peak of the sort (docs/auditing.md gives the bound)."""
    ledger = Ledger.open("sqlite://", Identity.generate())
    try:
        me = ledger.identity.node_id  # type: ignore[union-attr]
        ledger.append("network.genesis", {"name": "mem", "issuers": [me], "decimals": 6})
        for start in range(0, 4000, 500):
            ledger.append_batch([("credit.minted", {"to": me, "amount": 1 + start + k, "reason": "m"}, ())
                                 for k in range(500)])
        path = tmp_path / "big.ndjson"
        with path.open("wb") as out:
            for row in ledger.store.select_events():
                out.write(bundle_line(row))
    finally:
        ledger.close()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        bundle = Bundle.read([str(path)], threads=2)  # its peak: the read-ahead, 2 x 2 x 512 lines at most
        tracemalloc.reset_peak()
        assert len(bundle.order) == 4001 and not bundle.unreached and not bundle.problems
        held, peak = (m - before for m in tracemalloc.get_traced_memory())
    finally:
        tracemalloc.stop()
    print(f"index: {held / 4001:.0f} bytes an event held, {peak / 4001:.0f} at the peak (the sort)")
    assert held / 4001 < 400, held / 4001
    assert peak / 4001 < 800, peak / 4001
    assert bundle.verify().ok
