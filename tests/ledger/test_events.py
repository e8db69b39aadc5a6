"""Signed events: envelope and body schemas, genesis rules, wire round trips."""

from __future__ import annotations

import pytest

from ledger_net.errors import ChainError, EncodingError, LedgerError, SchemaError, SignatureError
from ledger_net.ledger import encoding
from ledger_net.ledger.events import MAX_DEPS, Event
from ledger_net.ledger.identity import Identity

ALICE = Identity.from_seed(bytes(32))
BOB = Identity.from_seed(bytes([1]) * 32)
NET = "ab" * 32
H1, H2 = "11" * 32, "22" * 32


def genesis(**over):
    kw = dict(net="", seq=1, prev=None, type="network.genesis",
              body={"name": "t", "issuers": [ALICE.node_id], "decimals": 6}, ts=1)
    kw.update(over)
    return Event.create(ALICE, **kw)


def transfer(**over):
    kw = dict(net=NET, seq=2, prev=H1, type="credit.transfer", body={"to": BOB.node_id, "amount": 5}, ts=2)
    kw.update(over)
    return Event.create(ALICE, **kw)


def resign(env: dict, identity: Identity = ALICE) -> tuple[bytes, bytes]:
    raw = encoding.canonical_bytes(env)
    return raw, identity.sign(encoding.digest(raw))


def test_create_fills_envelope_and_signs():
    ev = transfer(deps=[H2, H1, H2])
    assert ev.author == ALICE.node_id and ev.seq == 2 and ev.prev == H1
    assert ev.deps == (H1, H2)  # sorted, unique
    assert ev.hash == encoding.content_hash(ev.raw)
    assert ev.verify_signature()
    ev.require_signature()
    assert encoding.decode(ev.raw)["v"] == 1


def test_create_uses_clock_when_ts_missing():
    ev = transfer(ts=None)
    assert isinstance(ev.ts, int) and ev.ts > 1_600_000_000_000


def test_wire_and_json_round_trip():
    ev = transfer()
    assert Event.from_wire(ev.raw, ev.sig) == ev
    again = Event.from_json(ev.to_json())
    assert again == ev and again.verify_signature()
    assert ev.describe()["hash"] == ev.hash


def test_describe_is_readable():
    d = transfer().describe()
    assert d["type"] == "credit.transfer" and d["body"]["amount"] == 5 and len(d["sig"]) == 128


# ------------------------------------------------------------------ schema errors
@pytest.mark.parametrize(
    "type_,body,match",
    [
        ("credit.transfer", {"to": BOB.node_id}, "credit.transfer: body lacks field 'amount'"),
        ("credit.transfer", {"to": BOB.node_id, "amount": 0}, "credit.transfer: field 'amount' has a bad value 0"),
        ("credit.transfer", {"to": BOB.node_id, "amount": -3}, "field 'amount' has a bad value -3"),
        ("credit.transfer", {"to": BOB.node_id, "amount": True}, "field 'amount' has a bad value True"),
        ("credit.transfer", {"to": "bob", "amount": 1}, "field 'to' has a bad value 'bob'"),
        ("credit.transfer", {"to": BOB.node_id, "amount": 1, "extra": 1}, "credit.transfer: unknown field 'extra'"),
        ("credit.transfer", {"to": BOB.node_id, "amount": 1, "memo": 7}, "field 'memo' has a bad value 7"),
        ("credit.transfer", [1], "credit.transfer: body must be an object"),
        ("credit.received", {"source": "nothash"}, "credit.received: field 'source'"),
        ("reputation.feedback", {"subject": BOB.node_id, "positive": True, "quality_ppm": 1_000_001,
                                 "weight_ppm": 1}, "field 'quality_ppm'"),
        ("task.submitted", {"task_id": "", "task_type": "map", "escrow": 1, "max_price": 1, "chunks": 1,
                            "spec": {}}, "task.submitted: field 'task_id'"),
        ("no.such.type", {}, "unknown event type 'no.such.type'"),
    ],
)
def test_schema_errors_are_named(type_, body, match):
    with pytest.raises(SchemaError, match=match.replace("(", r"\(").replace(")", r"\)")):
        transfer(type=type_, body=body)


def test_float_in_body_is_an_encoding_error():
    # `memo` accepts text only, so smuggle the float through an open mapping field
    with pytest.raises(EncodingError, match="float"):
        Event.create(ALICE, net=NET, seq=2, prev=H1, type="node.updated", body={"load": {"cpu": 0.5}}, ts=1)


@pytest.mark.parametrize(
    "over,error,match",
    [
        ({"seq": 0}, SchemaError, "seq must be an integer >= 1"),
        ({"seq": 1, "prev": H1}, ChainError, "first event of a chain has no prev"),
        ({"seq": 3, "prev": None}, ChainError, "names its prev by hash"),
        ({"prev": "xyz"}, ChainError, "names its prev by hash"),
        ({"net": ""}, ChainError, "net must be the genesis hash"),
        ({"net": "AB" * 32}, ChainError, "net must be the genesis hash"),
        ({"deps": ["nothash"]}, SchemaError, "deps must be a list"),
        ({"deps": [f"{i:064x}" for i in range(MAX_DEPS + 1)]}, SchemaError, "deps must be a list of at most"),
    ],
)
def test_envelope_errors(over, error, match):
    with pytest.raises(error, match=match):
        transfer(**over)


def test_errors_share_the_ledger_root():
    for cls in (SchemaError, ChainError, EncodingError, SignatureError):
        assert issubclass(cls, LedgerError)


# ------------------------------------------------------------------ genesis rules
def test_genesis_is_seq_1_with_empty_net():
    g = genesis()
    assert g.is_genesis and g.net == "" and g.seq == 1 and g.prev is None


@pytest.mark.parametrize(
    "over",
    [{"net": NET}, {"seq": 2, "prev": H1}, {"deps": [H1]}],
)
def test_genesis_rules(over):
    with pytest.raises(ChainError, match="genesis is seq 1 with an empty net and no deps"):
        genesis(**over)


@pytest.mark.parametrize(
    "body,match",
    [
        ({"name": "t", "issuers": [], "decimals": 6}, "issuers"),
        ({"name": "", "issuers": [ALICE.node_id], "decimals": 6}, "name"),
        ({"name": "t", "issuers": [ALICE.node_id], "decimals": 13}, "decimals"),
        ({"name": "t", "issuers": ["nokey"], "decimals": 6}, "issuers"),
        ({"name": "t", "issuers": [ALICE.node_id]}, "lacks field 'decimals'"),
    ],
)
def test_genesis_body_schema(body, match):
    with pytest.raises(SchemaError, match=match):
        genesis(body=body)


# ------------------------------------------------------------------ wire parsing
def test_from_wire_refuses_non_canonical_bytes():
    ev = transfer()
    spaced = ev.raw.replace(b'"seq":2', b'"seq": 2')
    with pytest.raises(EncodingError, match="canonical"):
        Event.from_wire(spaced, ev.sig)


def test_from_wire_refuses_bad_sig_length():
    ev = transfer()
    with pytest.raises(SignatureError, match="64 bytes"):
        Event.from_wire(ev.raw, ev.sig[:63])


def test_from_wire_refuses_oversized():
    with pytest.raises(EncodingError, match="limit"):
        Event.from_wire(b"x" * ((1 << 20) + 1), bytes(64))


def test_from_wire_checks_envelope_fields():
    env = encoding.decode(transfer().raw)
    env["extra"] = 1
    with pytest.raises(SchemaError, match="exactly the fields"):
        Event.from_wire(*resign(env))
    del env["extra"]
    env["v"] = 2
    with pytest.raises(SchemaError, match="format version"):
        Event.from_wire(*resign(env))


def test_from_wire_checks_body_schema():
    env = encoding.decode(transfer().raw)
    env["body"]["amount"] = 0
    with pytest.raises(SchemaError, match="amount"):
        Event.from_wire(*resign(env))


def test_signature_of_another_key_does_not_verify():
    ev = transfer()
    raw, sig = resign(encoding.decode(ev.raw), BOB)  # author field says ALICE
    parsed = Event.from_wire(raw, sig)
    assert not parsed.verify_signature()
    with pytest.raises(SignatureError):
        parsed.require_signature()


def test_tampered_body_breaks_the_signature():
    ev = transfer()
    env = encoding.decode(ev.raw)
    env["body"]["amount"] = 500
    raw = encoding.canonical_bytes(env)
    tampered = Event.from_wire(raw, ev.sig)
    assert tampered.hash != ev.hash
    assert not tampered.verify_signature()


@pytest.mark.parametrize(
    "item",
    [None, {"raw": b"x", "sig": "00"}, {"raw": "{}"}, {"raw": "{}", "sig": "zz"}],
)
def test_from_json_refuses_malformed_items(item):
    with pytest.raises((EncodingError, SignatureError)):
        Event.from_json(item)


def test_version_must_be_the_integer_one():
    """`true == 1` in Python: a `"v":true` envelope is another spelling of version 1
    and must be refused like any other unknown version."""
    env = encoding.decode(transfer().raw)
    env["v"] = True
    with pytest.raises(SchemaError, match="version"):
        Event.from_wire(*resign(env))
