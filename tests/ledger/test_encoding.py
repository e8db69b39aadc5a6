"""Canonical bytes: sorted-key compact JSON, integers only, 64-bit ints, and a
decoder that refuses every non-canonical spelling of a value."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from ledger_net.errors import EncodingError, LedgerError
from ledger_net.ledger import encoding
from ledger_net.ledger.encoding import INT_MAX, INT_MIN, canonical_bytes, content_hash, decode, digest


def test_sorted_keys_compact_utf8():
    value = {"b": 1, "a": [True, None, "é"], "A": {"z": -1, "y": ""}}
    raw = canonical_bytes(value)
    assert raw == '{"A":{"y":"","z":-1},"a":[true,null,"é"],"b":1}'.encode()
    assert b" " not in raw and b"\n" not in raw


def test_keys_sorted_by_code_point_beyond_bmp():
    value = {"\U0001F600": 1, "\uffff": 2, "b": 3, "\u00e9": 4}
    keys = list(orjson.loads(canonical_bytes(value)))
    assert keys == sorted(value)  # Python sorts str by code point


def test_tuple_encodes_as_list():
    assert canonical_bytes({"x": (1, 2)}) == b'{"x":[1,2]}'


@pytest.mark.parametrize("value", [1.0, 0.5, {"a": 1.5}, [1, 2.0], {"n": {"deep": [float("nan")]}}, float("inf")])
def test_floats_rejected(value):
    with pytest.raises(EncodingError, match="float"):
        canonical_bytes(value)


def test_float_error_names_the_path():
    with pytest.raises(EncodingError, match=r"\$\.body\.amount"):
        canonical_bytes({"body": {"amount": 1.25}})


@pytest.mark.parametrize("value", [INT_MAX + 1, INT_MIN - 1, 2**64, -(2**70)])
def test_ints_outside_64_bits_rejected(value):
    with pytest.raises(EncodingError, match="64 bits"):
        canonical_bytes({"n": value})


@pytest.mark.parametrize("value", [INT_MAX, INT_MIN, 0, -1])
def test_ints_at_the_64_bit_edges_round_trip(value):
    raw = canonical_bytes({"n": value})
    assert decode(raw) == {"n": value}


@pytest.mark.parametrize("value", [{1: "x"}, {"a": b"bytes"}, {"a": {1, 2}}, object()])
def test_values_without_canonical_form_rejected(value):
    with pytest.raises(EncodingError):
        canonical_bytes(value)


def test_bool_stays_bool_not_int():
    assert canonical_bytes([True, False, 1, 0]) == b"[true,false,1,0]"
    assert decode(b"[true,false,1,0]") == [True, False, 1, 0]
    assert type(decode(b"[true]")[0]) is bool


@pytest.mark.parametrize(
    "raw",
    [
        b'{"b":1,"a":2}',  # keys out of order
        b'{"a": 2}',  # whitespace after colon
        b'{"a":2} ',  # trailing whitespace
        b' {"a":2}',  # leading whitespace
        b'{"a":2,"a":3}',  # duplicate key
        b'{"a":1.0}',  # float
        b'{"a":1e3}',  # exponent
        b'{"a":"\\u0041"}',  # needless escape
        b'{"a":01}',  # leading zero (invalid JSON)
        b'{"a":-0}',  # negative zero
        b'{"a":2',  # truncated
        b"\xff\xfe",  # not UTF-8
        b'{"a":9223372036854775808}',  # > INT_MAX
        b"",
    ],
)
def test_decode_refuses_non_canonical(raw):
    with pytest.raises(EncodingError):
        decode(raw)


def test_decode_error_is_a_ledger_error():
    with pytest.raises(LedgerError):
        decode(b"[1, 2]")


@pytest.mark.parametrize(
    "value",
    [{}, [], "", 0, None, True, {"k": [1, {"x": "y"}, [], {}]}, {"unicode": "дом ✓ 😀", "ctrl": "\n\t\u0001"}],
)
def test_round_trip_byte_for_byte(value):
    raw = canonical_bytes(value)
    assert decode(raw) == value
    assert canonical_bytes(decode(raw)) == raw


def test_hashes_are_sha256_of_the_bytes():
    raw = canonical_bytes({"a": 1})
    assert digest(raw) == hashlib.sha256(raw).digest()
    assert content_hash(raw) == hashlib.sha256(raw).hexdigest()
    assert len(content_hash(raw)) == 64


def test_lone_surrogate_is_an_encoding_error():
    """A str orjson cannot encode (a lone surrogate) has no canonical form: the
    contract is EncodingError (a LedgerError), not orjson's own TypeError."""
    with pytest.raises(EncodingError):
        canonical_bytes({"a": "\ud800"})


def test_too_deep_nesting_is_an_encoding_error():
    value: list = []
    for _ in range(300):
        value = [value]
    with pytest.raises(EncodingError):
        canonical_bytes(value)


def test_module_exports_limits():
    assert encoding.INT_MAX == 2**63 - 1 and encoding.INT_MIN == -(2**63)
