"""The CLI round trip on the demo's books (issue 14): `ledger-net demo`, then `checkpoint
--make`, `prove balance` -> `verify-proof` -> OK, and the same proof with one byte changed ->
a non-zero exit and one line naming the failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from ledger_net.ledger.identity import Identity
from tests.support.cli import assert_one_line_error, invoke, json_of


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("demo")
    done = invoke("demo", "--data-dir", root, "--workers", 2, "--tasks", 1, "--json")
    assert done.exit_code == 0, done.output
    operator = root / "operator"
    nothing = invoke("prove", "balance", "ab" * 32, "--data-dir", operator)
    assert_one_line_error(nothing, "no checkpoint yet")
    made = json_of(invoke("checkpoint", "--make", "--data-dir", operator, "--json"))
    shown = json_of(invoke("checkpoint", "--data-dir", operator, "--json"))
    assert shown["hash"] == made["hash"] and shown["signer"] == Identity.public_of(operator).node_id
    return {"root": root, "operator": operator, "checkpoint": made,
            "worker": Identity.public_of(root / "worker-1").node_id}


def _verify(path: Path, demo: dict[str, Any], *extra: Any) -> Any:
    cp = demo["checkpoint"]
    return invoke("verify-proof", path, "--genesis", cp["net"], "--witness", cp["signer"], "--threshold", 1, *extra)


def test_prove_balance_then_verify_proof_is_ok(demo, tmp_path):
    out = tmp_path / "proof.json"
    done = invoke("prove", "balance", demo["worker"], "--data-dir", demo["operator"], "--at",
                  demo["checkpoint"]["hash"][:12], "-o", out)
    assert done.exit_code == 0, done.output
    proof = orjson.loads(out.read_bytes())
    assert proof["v"] == 2 and set(proof["leaf"]) == {"index", "value"} and proof["leaf"]["value"]["balance"] > 0
    ok = _verify(out, demo)
    assert ok.exit_code == 0 and ok.stdout.startswith("OK: the balance proof holds"), ok.output


@pytest.mark.parametrize("where, fragment", [
    ('"balance": ', "does not lead to the root"),
    ('"state_root": "', "checkpoint signature does not verify"),
    ('"sig": "', "checkpoint signature does not verify"),
])
def test_one_byte_changed_fails_with_one_line_naming_it(demo, tmp_path, where, fragment):
    good = tmp_path / "good.json"
    assert invoke("prove", "balance", demo["worker"], "--data-dir", demo["operator"], "-o", good).exit_code == 0
    text = good.read_text(encoding="utf-8")
    i = text.index(where) + len(where)
    digit = text[i]  # a digit of the balance, or the first base64url character of a hash or signature
    other = ("1" if digit != "1" else "2") if digit.isdigit() else ("A" if digit != "A" else "B")
    bad = tmp_path / "bad.json"
    bad.write_text(text[:i] + other + text[i + 1:], encoding="utf-8")
    failed = _verify(bad, demo)
    assert failed.exit_code == 1, failed.output
    lines = failed.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("FAILED: ") and fragment in lines[0], failed.output
    assert "Traceback" not in failed.output


def test_verify_proof_refuses_untrusted_keys_and_junk(demo, tmp_path):
    good = tmp_path / "good.json"
    assert invoke("prove", "balance", demo["worker"], "--data-dir", demo["operator"], "-o", good).exit_code == 0
    cp = demo["checkpoint"]
    other = invoke("verify-proof", good, "--genesis", cp["net"], "--witness", demo["worker"], "--threshold", 1)
    assert other.exit_code == 1 and "threshold not met" in other.stdout
    junk = tmp_path / "junk.json"
    junk.write_bytes(b"{not json")
    assert _verify(junk, demo).exit_code == 1 and "not JSON" in _verify(junk, demo).stdout
    assert_one_line_error(_verify(tmp_path / "missing.json", demo), "cannot read")
    assert_one_line_error(invoke("prove", "balance", "xyz", "--data-dir", demo["operator"]), "ACCOUNT")


def test_an_unknown_account_gets_a_proof_of_its_absence(demo, tmp_path):
    """An account with no entry at the checkpoint: its neighbours in key order, adjacent
    leaves of the state root, prove it held nothing; a changed neighbour fails."""
    out = tmp_path / "absent.json"
    done = invoke("prove", "balance", "ab" * 32, "--data-dir", demo["operator"], "-o", out)
    assert done.exit_code == 0, done.output
    proof = orjson.loads(out.read_bytes())
    assert proof["type"] == "absence" and proof["v"] == 2
    ok = _verify(out, demo)
    assert ok.stdout.startswith("OK: account abababababababab… has no entry (balance 0)"), ok.output
    assert ok.exit_code == 0
    side = "left" if proof["left"] is not None else "right"
    proof[side]["index"] += 1
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps(proof))
    failed = _verify(bad, demo)
    assert failed.exit_code == 1 and f"{side} neighbour not in the checkpoint's state root" in failed.stdout, \
        failed.output


def test_prove_event_round_trip(demo, tmp_path):
    from ledger_net.ledger.chain import Ledger
    from ledger_net.ledger.store import sqlite_url

    led = Ledger.open(sqlite_url(demo["operator"] / "ledger.db"))
    try:
        event = next(e for e in led.stored() if e.type == "credit.transfer")
    finally:
        led.close()
    out = tmp_path / "event.json"
    assert invoke("prove", "event", event.hash, "--data-dir", demo["operator"], "-o", out).exit_code == 0
    ok = _verify(out, demo)
    assert ok.exit_code == 0 and "event proof holds" in ok.stdout, ok.output
