"""Frozen test vectors: the canonical bytes, hashes and signatures of a few events
made with fixed seeds, and tampered events with the error each must raise.

If a test here fails, the event format drifted: an encoding, hashing or signing
change that would split the network from every existing peer and ledger. Fix the
code, do not regenerate tests/ledger/vectors/events.json (see make_vectors.py: that is a
deliberate, reviewed format change).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ledger_net import errors
from ledger_net.ledger import encoding
from ledger_net.ledger.chain import Ledger
from ledger_net.ledger.events import Event
from ledger_net.ledger.identity import Identity

VECTORS = json.loads((Path(__file__).parent / "vectors" / "events.json").read_text(encoding="utf-8"))
GOOD = VECTORS["good"]
BAD = VECTORS["bad"]


def test_vector_file_shape():
    assert VECTORS["format"] == "ledger_net event vectors v1"
    assert [g["name"] for g in GOOD] == ["genesis", "mint", "transfer", "receive"]
    assert {b["name"] for b in BAD} >= {"raw_flipped_byte", "sig_flipped_byte", "non_canonical_spacing",
                                        "float_inside", "wrong_net"}


@pytest.mark.parametrize("vec", GOOD, ids=[g["name"] for g in GOOD])
def test_good_vector_recreated_byte_for_byte(vec):
    identity = Identity.from_seed(bytes.fromhex(vec["seed_hex"]))
    assert identity.node_id == vec["author"]
    ev = Event.create(identity, **vec["input"])
    assert ev.raw.hex() == vec["raw_hex"]
    assert ev.raw.decode("utf-8") == vec["raw_text"]
    assert ev.hash == vec["hash"]
    assert ev.sig.hex() == vec["sig_hex"]


@pytest.mark.parametrize("vec", GOOD, ids=[g["name"] for g in GOOD])
def test_good_vector_parses_and_verifies(vec):
    raw = bytes.fromhex(vec["raw_hex"])
    assert hashlib.sha256(raw).hexdigest() == vec["hash"]
    assert encoding.canonical_bytes(encoding.decode(raw)) == raw
    ev = Event.from_wire(raw, bytes.fromhex(vec["sig_hex"]))
    assert ev.hash == vec["hash"] and ev.verify_signature()
    assert Event.from_json({"raw": vec["raw_text"], "sig": vec["sig_hex"]}) == ev


def test_good_vectors_chain_and_ingest_into_a_fresh_ledger():
    events = [Event.from_wire(bytes.fromhex(v["raw_hex"]), bytes.fromhex(v["sig_hex"])) for v in GOOD]
    genesis, mint, transfer, receive = events
    assert mint.net == transfer.net == receive.net == genesis.hash
    assert mint.prev == genesis.hash and transfer.prev == mint.hash and receive.deps == (transfer.hash,)
    ledger = Ledger.open("sqlite://")
    try:
        report = ledger.ingest(list(reversed(events)))  # any order: the pending buffer sorts it out
        assert sorted(report.stored) == sorted(e.hash for e in events)
        assert report.invalid == {} and report.refused == {}
        bob = receive.author
        assert ledger.state.spendable(bob) == 30
        assert ledger.state.spendable(genesis.author) == 970
        assert ledger.state.conserved()
    finally:
        ledger.close()


def _judge(raw: bytes, sig: bytes) -> Exception | None:
    """Parse, verify and ingest into a ledger of the vectors' network; return the refusal."""
    ledger = Ledger.open("sqlite://")
    try:
        ledger.ingest([Event.from_wire(bytes.fromhex(v["raw_hex"]), bytes.fromhex(v["sig_hex"])) for v in GOOD[:2]])
        before = ledger.store.count()
        try:
            ev = Event.from_wire(raw, sig)
            ev.require_signature()
            ledger.ingest([ev])
        except errors.LedgerError as exc:
            assert ledger.store.count() == before  # a refusal stores nothing
            return exc
        return None
    finally:
        ledger.close()


@pytest.mark.parametrize("vec", BAD, ids=[b["name"] for b in BAD])
def test_tampered_vector_refused_with_expected_error(vec):
    exc = _judge(bytes.fromhex(vec["raw_hex"]), bytes.fromhex(vec["sig_hex"]))
    assert exc is not None, f"{vec['name']} was accepted: {vec['why']}"
    # The frozen vectors name the error class the rules promise; a narrower subclass (e.g.
    # WrongNetwork, a ChainError) still keeps that promise.
    named = [cls.__name__ for cls in type(exc).__mro__]
    assert vec["error"] in named, f"{vec['name']}: got {type(exc).__name__}: {exc}"


@pytest.mark.parametrize("vec", [b for b in BAD if b["error"] == "SignatureError" and len(b["sig_hex"]) == 128],
                         ids=lambda b: b["name"])
def test_tampered_signature_also_refused_by_ingest_alone(vec):
    """Skipping the explicit signature check must not help a forger: ingest verifies too."""
    ledger = Ledger.open("sqlite://")
    try:
        ledger.ingest([Event.from_wire(bytes.fromhex(v["raw_hex"]), bytes.fromhex(v["sig_hex"])) for v in GOOD[:2]])
        ev = Event.from_wire(bytes.fromhex(vec["raw_hex"]), bytes.fromhex(vec["sig_hex"]))
        with pytest.raises(errors.SignatureError):
            ledger.ingest([ev])
        assert ledger.store.count() == 2
    finally:
        ledger.close()
