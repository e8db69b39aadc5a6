"""The light client (ledger_net.light): verdicts from bytes alone, about events and chains a
real ledger stored, and a verdict (never a trace) for anything tampered or malformed."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import ledger_net
from ledger_net import light
from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.identity import Identity

ALICE = Identity.from_seed(bytes(32))
BOB = Identity.from_seed(bytes([1]) * 32)
PACKAGE = Path(ledger_net.__file__).parent


@pytest.fixture(scope="module")
def books():
    """Alice's chain of 10 events; (ledger, events, genesis hash)."""
    led = Ledger.open("sqlite://", ALICE)
    genesis = led.create_network("light", issuers=[ALICE.node_id])
    events = [genesis] + [led.append("credit.minted", {"to": ALICE.node_id, "amount": i + 1, "reason": "seed"})
                          for i in range(9)]
    yield led, events, genesis.hash
    led.close()


def _inclusion(led, ev, size):
    return {"chain_size": size, "chain_root": led.store.author_root(ev.author, size).hex(),
            "proof": [p.hex() for p in led.store.inclusion_proof(ev.author, ev.seq, size)]}


def test_every_stored_event_verifies_in_every_later_chain(books):
    led, events, net = books
    for size in range(1, 11):
        for ev in events[:size]:
            verdict = light.verify_event_inclusion(event=ev.to_json(), net=net, **_inclusion(led, ev, size))
            assert verdict.ok and verdict.reasons == [] and str(verdict) == "OK", verdict
            by_hash = light.verify_event_inclusion(event_hash=ev.hash, author=ev.author, seq=ev.seq,
                                                   **_inclusion(led, ev, size))
            assert by_hash.ok, by_hash


def test_author_growth_verifies(books):
    led, events, _ = books
    a = events[0].author
    for old in range(11):
        for new in range(old, 11):
            verdict = light.verify_author_consistency(
                old_size=old, old_root=led.store.author_root(a, old), new_size=new,
                new_root=led.store.author_root(a, new), proof=led.store.consistency_proof(a, old, new))
            assert verdict.ok, (old, new, verdict)


def _tampered(led, events, net):
    ev = events[4]
    good = {"event": ev.to_json(), "net": net, **_inclusion(led, ev, 10)}
    raw = ev.to_json()["raw"]
    flipped_proof = list(good["proof"])
    flipped_proof[0] = ("1" if flipped_proof[0][0] != "1" else "2") + flipped_proof[0][1:]
    return {
        "raw_byte_changed": ({**good, "event": {"raw": raw.replace('"amount":4', '"amount":5'), "sig": ev.sig.hex()}},
                             "signature"),
        "sig_of_another_event": ({**good, "event": {"raw": raw, "sig": events[5].sig.hex()}}, "signature"),
        "flipped_sibling": ({**good, "proof": flipped_proof}, "does not lead to the root"),
        "another_event_same_proof": ({**good, "event": events[5].to_json()}, "does not lead to the root"),
        "claimed_other_seq": ({**good, "seq": 6}, "seq is 5, not 6"),
        "claimed_other_author": ({**good, "author": BOB.node_id}, "author"),
        "claimed_other_hash": ({**good, "event_hash": events[5].hash}, "do not hash"),
        "other_network": ({**good, "net": "ab" * 32}, "another network"),
        "root_of_another_size": ({**good, "chain_root": led.store.author_root(ev.author, 9).hex()}, "root"),
        "non_canonical_raw": ({**good, "event": {"raw": raw.replace(":", ": ", 1), "sig": ev.sig.hex()}},
                              "canonical"),
        "sig_not_hex": ({**good, "event": {"raw": raw, "sig": "zz"}}, "signature is not hex"),
        "index_beyond_size": ({**good, "chain_size": 4}, "not inside"),
    }


def test_tampered_inclusions_get_a_verdict_with_the_reason(books):
    led, events, net = books
    for name, (kwargs, reason) in _tampered(led, events, net).items():
        verdict = light.verify_event_inclusion(**kwargs)
        assert not verdict.ok and verdict.reasons, name
        assert reason in str(verdict), (name, verdict.reasons)


@pytest.mark.parametrize("garbage", [
    {"event": None}, {"event": "text"}, {"event": {"raw": 5, "sig": None}}, {"event": {"raw": "[1]"}},
    {"event": {"raw": "{}", "sig": "00" * 64}}, {"event": {"raw": "\udcff", "sig": ""}},
    {"event": {"raw": "{}", "sig": 5}},
    {"chain_size": "10"}, {"chain_size": None}, {"chain_size": -3}, {"chain_size": 2**80},
    {"chain_root": 12}, {"chain_root": "xyz"}, {"proof": None}, {"proof": "ab"}, {"proof": [{}]},
    {"proof": ["00" * 32] * 10_000}, {"event_hash": b"\x00"}, {"seq": True}, {"net": 7},
])
def test_garbage_gets_a_verdict_never_an_exception(books, garbage):
    led, events, net = books
    ev = events[3]
    kwargs = {"event": ev.to_json(), "net": net, **_inclusion(led, ev, 10), **garbage}
    verdict = light.verify_event_inclusion(**kwargs)
    assert verdict.ok is False and all(isinstance(r, str) and r for r in verdict.reasons)
    json.dumps(verdict.reasons)  # plain text, ready for a CLI line or an HTTP answer


def test_inconsistent_growth_is_caught(books):
    led, events, _ = books
    a = events[0].author
    other = Ledger.open("sqlite://", ALICE)  # the same key, another history: a rewritten chain
    try:
        other.create_network("light-2", issuers=[ALICE.node_id])
        for i in range(9):
            other.append("credit.minted", {"to": ALICE.node_id, "amount": 100 + i, "reason": "seed"})
        proof = led.store.consistency_proof(a, 4, 10)
        verdict = light.verify_author_consistency(old_size=4, old_root=led.store.author_root(a, 4), new_size=10,
                                                  new_root=other.store.author_root(a, 10), proof=proof)
        assert not verdict.ok and "new root" in str(verdict)
        swapped = light.verify_author_consistency(old_size=10, old_root=led.store.author_root(a, 10), new_size=4,
                                                  new_root=led.store.author_root(a, 4), proof=proof)
        assert not swapped.ok and "prefix" in str(swapped)
        for junk in ({"old_size": None}, {"proof": 3}, {"old_root": object()}, {"new_size": 2**99}):
            args = {"old_size": 4, "old_root": led.store.author_root(a, 4), "new_size": 10,
                    "new_root": led.store.author_root(a, 10), "proof": proof, **junk}
            assert light.verify_author_consistency(**args).ok is False
    finally:
        other.close()


ALLOWED = {"__future__", "base64", "hashlib", "re", "collections.abc", "dataclasses", "typing", "nacl.exceptions",
           "nacl.signing", "orjson"}
PURE = ["light.py", "ledger/checkpoint.py", "ledger/merkle_verify.py", "ledger/merkle.py", "ledger/encoding.py",
        "ledger/proof_codec.py", "errors.py"]


@pytest.mark.parametrize("module", PURE)
def test_the_light_client_and_what_it_imports_need_no_database(module):
    """light.py and its own imports reach only hashing, nacl, canonical decoding and the
    pure Merkle code (the package's __init__ still loads the rest of ledger_net)."""
    tree = ast.parse((PACKAGE / module).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: must stay inside the pure set
                target = (node.module or "").replace(".", "/")
                base = Path(module).parent
                for _ in range(node.level - 1):
                    base = base.parent
                path = (base / target).as_posix().lstrip("./") + ".py"
                assert path in PURE, f"{module} imports {path}"
                continue
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name in ALLOWED, f"{module} imports {name}"
