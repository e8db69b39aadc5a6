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
    verdict = light.verify_balance(case["proof"], net=case["net"], witnesses=case["witnesses"],
                                   threshold=case["threshold"], account=case.get("account"))
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


def test_every_single_byte_change_of_the_good_proof_fails():
    """Any one hex digit of any hash or signature, or any number, changed: refused."""
    good = next(c for c in DATA["cases"] if c["name"] == "good")
    text = json.dumps(good["proof"], sort_keys=True)
    trust = {k: good[k] for k in ("net", "witnesses", "threshold")}
    hexdigits = "0123456789abcdef"
    changed = 0
    for i in range(0, len(text), 7):
        ch = text[i]
        if ch not in hexdigits:
            continue
        swapped = text[:i] + hexdigits[(hexdigits.index(ch) + 1) % 16] + text[i + 1:]
        try:
            proof = json.loads(swapped)
        except ValueError:
            continue
        if proof == good["proof"]:
            continue
        verdict = light.verify_balance(proof, **trust)
        assert not verdict.ok, f"changing byte {i} ({text[max(0, i - 30):i + 5]!r}) went unnoticed"
        changed += 1
    assert changed > 100


def test_the_worked_example_in_docs_is_the_good_vector():
    """docs/proofs.md walks the good balance proof with real hex: every value it shows is
    the vector's (the leaf, its hash, each step of the walk, the root, the note, its digest)."""
    from ledger_net.ledger import checkpoint as cp
    from ledger_net.ledger.encoding import canonical_bytes
    from ledger_net.ledger.merkle import leaf_hash, node_hash

    doc = (Path(__file__).resolve().parents[2] / "docs" / "proofs.md").read_text(encoding="utf-8")
    example = doc[doc.index("## Worked example: a balance proof"):]
    good = next(c for c in DATA["cases"] if c["name"] == "good")["proof"]
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
    missing = [s for s in shown if s not in example]
    assert not missing, f"docs/proofs.md's worked example lacks or misstates: {missing}"
    assert f"{len(json.dumps(good, separators=(',', ':'))):,} bytes" in example
