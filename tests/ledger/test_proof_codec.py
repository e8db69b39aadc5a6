"""Proof documents in format 2 (ledger/proof_codec.py): a round trip gives back the node's
version 1 document, and the decoder refuses every other spelling of the same bytes."""

from __future__ import annotations

import copy
import hashlib

import pytest

from ledger_net.errors import ProofError
from ledger_net.ledger.proof_codec import b64, compact, expand, unb64


def _h(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


def _checkpoint() -> dict:
    note = {"v": 1, "net": _h("net"), "signer": _h("signer"), "frontier_root": _h("fr"), "authors": 3,
            "events": 9, "state_root": _h("sr"), "state_size": 5, "ts": 1}
    return {"note": note, "sig": _h("s1") + _h("s2"),
            "cosignatures": [{"witness": _h("w1"), "sig": _h("c1") + _h("c2")}]}


def _leaf(i: int) -> dict:
    return {"index": i, "size": 4 + i, "root": _h(f"root{i}"), "proof": [_h(f"p{i}{j}") for j in range(i)]}


DOCUMENTS = [
    {"type": "balance", "account": _h("acct"), "checkpoint": _checkpoint(),
     "leaf": {"index": 2, "key": "a/" + _h("acct"), "value": {"balance": 5, "escrow": 0, "incoming": 0, "vouchers": 0}},
     "proof": [_h("x"), _h("y")]},
    {"type": "absence", "account": _h("nobody"), "checkpoint": _checkpoint(), "left": None,
     "right": {"index": 0, "key": "a/00", "value": {"balance": 1}, "proof": [_h("z")]}},
    {"type": "event", "checkpoint": _checkpoint(), "author": _leaf(2), "event": {"raw": '{"a":1}', "sig": _h("e") * 2},
     "proof": []},
    {"type": "author_consistency", "author": _h("author"), "old": _checkpoint(), "new": _checkpoint(),
     "old_leaf": _leaf(1), "new_leaf": _leaf(3), "proof": [_h("c")]},
]


@pytest.mark.parametrize("doc", DOCUMENTS, ids=[d["type"] for d in DOCUMENTS])
def test_round_trip(doc):
    wire = compact(doc)
    assert wire["v"] == 2 and expand(wire) == doc
    assert expand(doc) is doc  # version 1 passes through


def test_the_balance_leaf_key_is_not_sent():
    wire = compact(DOCUMENTS[0])
    assert set(wire["leaf"]) == {"index", "value"} and isinstance(wire["proof"], str)


@pytest.mark.parametrize("bad, reason", [
    (lambda w: w.__setitem__("account", w["account"] + "="), "not unpadded base64url"),
    (lambda w: w.__setitem__("account", w["account"].replace(w["account"][0], "+")), "not unpadded base64url"),
    (lambda w: w.__setitem__("account", w["account"][:-1]), "not 32"),
    (lambda w: w.__setitem__("proof", w["proof"][:-2]), "not a whole number of 32-byte hashes"),
    (lambda w: w["checkpoint"]["cosignatures"].append(["x"]), "not a [witness, sig] pair"),
    (lambda w: w.__setitem__("v", True), "proof version"),
    (lambda w: w.__setitem__("extra", 1), "has the fields"),
    (lambda w: w["leaf"].__setitem__("key", "a/"), "leaf is not an object of"),
])
def test_junk_is_a_reason(bad, reason):
    wire = compact(DOCUMENTS[0])
    bad(wire)
    with pytest.raises(ProofError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        expand(wire)


def test_only_the_canonical_base64url_of_the_bytes_is_taken():
    raw = bytes(range(32))
    text = b64(raw)
    assert unb64(text, 32, "x") == raw and len(text) == 43
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    sloppy = text[:-1] + alphabet[alphabet.index(text[-1]) | 1]  # an unused low bit set: the same bytes
    assert sloppy != text
    with pytest.raises(ProofError, match="canonical"):
        unb64(sloppy, 32, "x")


def test_compact_does_not_touch_its_input():
    doc = copy.deepcopy(DOCUMENTS[0])
    compact(doc)
    assert doc == DOCUMENTS[0]


def test_junk_anywhere_in_a_format_2_proof_is_a_verdict_never_a_trace():
    """Every field of the good balance and absence vectors replaced by junk of every kind:
    `light.verify_proof` answers with a failed verdict and raises nothing."""
    import json
    from pathlib import Path

    from ledger_net import light

    data = json.loads((Path(__file__).with_name("vectors") / "balance_proofs.json").read_text(encoding="utf-8"))
    junk = [None, 1, -1, True, "x", "", [], {}, [1, 2], {"a": 1}, "A" * 43, 2**70]

    def paths(value, at=()):
        yield at
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, item in items:
            yield from paths(item, (*at, key))

    tried = 0
    for case in (c for c in data["cases"] if c["name"] in ("good", "absent: between two accounts")):
        for path in list(paths(case["proof"]))[1:]:
            for item in junk:
                doc = copy.deepcopy(case["proof"])
                holder = doc
                for key in path[:-1]:
                    holder = holder[key]
                if holder[path[-1]] == item:
                    continue
                holder[path[-1]] = item
                verdict = light.verify_proof(doc, net=case["net"], witnesses=case["witnesses"],
                                             threshold=case["threshold"])
                assert not verdict.ok and verdict.reasons, (path, item)
                tried += 1
    assert tried > 800
