"""Frozen balance-proof vectors (issue 14 item 7): the light client accepts the good proofs
and refuses each tampered one with the reason the vector names. The file is also what the
generator makes today, so a format change shows as a diff of the vectors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger_net import light

VECTORS = Path(__file__).with_name("vectors") / "balance_proofs.json"
DATA = json.loads(VECTORS.read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", DATA["cases"], ids=[c["name"] for c in DATA["cases"]])
def test_balance_vector(case):
    verify = light.verify_absence if case["name"].startswith("absent") else light.verify_balance
    verdict = verify(case["proof"], net=case["net"], witnesses=case["witnesses"], threshold=case["threshold"],
                     account=case.get("account"))
    assert verdict.ok is case["ok"], verdict
    if not case["ok"]:
        assert case["expect"] in str(verdict), str(verdict)
        assert len(verdict.reasons) >= 1 and all("\n" not in r for r in verdict.reasons)
    generic = light.verify_proof(case["proof"], net=case["net"], witnesses=case["witnesses"],
                                 threshold=case["threshold"])
    if "account" not in case:
        assert generic.ok is case["ok"]


def test_vectors_are_what_the_generator_makes():
    import sys

    sys.path.insert(0, str(VECTORS.parent))
    try:
        import make_balance_vectors
    finally:
        sys.path.pop(0)
    assert make_balance_vectors.build() == DATA


def test_the_vectors_are_format_2():
    """A format change is a version bump of the file and of the documents in it."""
    assert DATA["format"] == 2
    assert [c["name"] for c in DATA["cases"] if "v" not in c["proof"]] == ["good, in version 1 (hex)"]


@pytest.mark.parametrize("name", ["good", "absent: between two accounts"])
def test_every_single_character_change_of_a_good_proof_fails(name):
    """Any one character of any base64url hash, key or signature, of any number or of any
    field name, changed to another of its alphabet: refused."""
    good = next(c for c in DATA["cases"] if c["name"] == name)
    verify = light.verify_absence if name.startswith("absent") else light.verify_balance
    text = json.dumps(good["proof"], sort_keys=True)
    trust = {k: good[k] for k in ("net", "witnesses", "threshold")}
    if "account" in good:  # an absence proof holds for any account between its neighbours: ask for this one
        trust["account"] = good["account"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    changed = 0
    for i in range(0, len(text), 7):
        ch = text[i]
        if ch not in alphabet:
            continue
        swapped = text[:i] + alphabet[(alphabet.index(ch) + 1) % 64] + text[i + 1:]
        try:
            proof = json.loads(swapped)
        except ValueError:
            continue
        if proof == good["proof"]:
            continue
        verdict = verify(proof, **trust)
        assert not verdict.ok, f"changing character {i} ({text[max(0, i - 30):i + 5]!r}) went unnoticed"
        changed += 1
    assert changed > 100


def test_the_worked_example_in_docs_is_the_good_vector():
    """docs/proofs.md walks the good balance proof with real hex: every value it shows is
    the vector's (the leaf, its hash, each step of the walk, the root, the note, its digest)."""
    from ledger_net.ledger import checkpoint as cp
    from ledger_net.ledger.encoding import canonical_bytes
    from ledger_net.ledger.merkle import leaf_hash, node_hash
    from ledger_net.ledger.proof_codec import expand

    doc = (Path(__file__).resolve().parents[2] / "docs" / "proofs.md").read_text(encoding="utf-8")
    example = doc[doc.index("## Worked example: a balance proof"):]
    wire = next(c for c in DATA["cases"] if c["name"] == "good")["proof"]
    good = expand(wire)
    note, leaf = good["checkpoint"]["note"], good["leaf"]
    data = cp.state_leaf(leaf["key"], leaf["value"])
    digest = cp.note_digest(note)
    shown = [data.decode(), leaf_hash(data).hex(), note["state_root"], canonical_bytes(note).decode(),
             digest.hex(), cp.cosign_message(digest).hex(), f"leaf {leaf['index']}"]
    r, fn, sn = leaf_hash(data), leaf["index"], note["state_size"] - 1
    for p in good["proof"]:
        shown.append(f"`{p[:8]}…` | {fn}, {sn}")
        if fn & 1 or fn == sn:
            r = node_hash(bytes.fromhex(p), r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, bytes.fromhex(p))
        shown.append(r.hex()[:8])
        fn, sn = fn >> 1, sn >> 1
    shown += [wire["proof"][:16], wire["checkpoint"]["note"]["state_root"]]  # and the wire form's base64url
    missing = [s for s in shown if s not in example]
    assert not missing, f"docs/proofs.md's worked example lacks or misstates: {missing}"
    assert f"{len(json.dumps(wire, separators=(',', ':'))):,} bytes" in example
