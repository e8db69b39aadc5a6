"""Array blobs and the float-free wire form of payloads and results."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ledger_net.compute import (
    aggregate,
    blob_hash,
    blob_refs,
    decode_array,
    encode_array,
    pack,
    plan_chunks,
    run_chunk,
    unpack,
)
from ledger_net.errors import TaskError


def signable(value):
    """True when the value has no floats and no ints beyond 64 bits (what the ledger signs)."""
    if isinstance(value, float):
        return False
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**63
    if isinstance(value, list):
        return all(signable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and signable(v) for k, v in value.items())
    return value is None or isinstance(value, (str, bool))


@pytest.mark.parametrize("array", [
    np.arange(12, dtype=np.int64).reshape(3, 4), np.linspace(0, 1, 7), np.array([[True, False]]),
    np.zeros((0, 5)), np.float32([1.5, -2]), np.array(3.25), np.array([1, 2], dtype=">i4"),
])
def test_array_round_trip(array):
    data = encode_array(array)
    back = decode_array(data)
    assert back.shape == array.shape and back.dtype == array.dtype.newbyteorder("<")
    np.testing.assert_array_equal(back, array)
    assert len(blob_hash(data)) == 64 and blob_hash(data) == blob_hash(bytes(data))


def test_encoding_is_canonical():
    a = np.arange(6, dtype=np.float64).reshape(2, 3)
    assert encode_array(a) == encode_array(np.asfortranarray(a)) == encode_array(a.astype(">f8"))
    assert encode_array(a) != encode_array(a.reshape(3, 2))  # shape is part of the content
    assert encode_array(a) != encode_array(a.astype(np.float32))


def test_decode_refuses_foreign_or_truncated_bytes():
    data = encode_array(np.arange(4))
    for bad in (b"", b"XXXX" + data[4:], data[:-1], data + b"\0"):
        with pytest.raises(TaskError):
            decode_array(bad)
    with pytest.raises(TaskError, match="dtype"):
        encode_array(np.array(["a", "b"]))


def test_pack_makes_values_signable_and_unpack_restores_them_exactly():
    value = {"a": [[0.1 * i for i in range(20)] for _ in range(10)], "b": [1, 2.5, True, None, "s"],
             "big": 3**90, "neg": -(2**70), "ints": list(range(500)), "small": [1.0, 2.0],
             "$weird": {"$float": "not a tag"}, "tiny": 5e-324, "nested": {"x": (1, 2)}}
    wire, blobs = pack(value)
    assert signable(wire)
    json.dumps(wire)
    assert set(blob_refs(wire)) == set(blobs) and len(blobs) == 2
    back = unpack(wire, blobs)
    assert back == {**value, "nested": {"x": [1, 2]}}
    assert type(back["ints"][0]) is int and type(back["a"][0][0]) is float and back["b"][2] is True
    assert math.copysign(1, unpack(pack(-0.0)[0])) == -1


def test_mixed_lists_keep_their_types():
    wire, blobs = pack([1, 2.0] * 100)
    assert not blobs and unpack(wire) == [1, 2.0] * 100 and type(unpack(wire)[0]) is int


def test_unpack_refuses_missing_or_forged_blobs():
    wire, blobs = pack({"m": [[1.5] * 10] * 10})
    (ref,) = blobs
    with pytest.raises(TaskError, match="not available"):
        unpack(wire, {})
    with pytest.raises(TaskError, match="does not match"):
        unpack(wire, {ref: encode_array(np.zeros((10, 10)))})


def test_payloads_and_results_travel_through_the_wire_form():
    rng = np.random.default_rng(3)
    a, b = rng.random((30, 20)).tolist(), rng.random((20, 10)).tolist()
    config = {"matrix_a": a, "matrix_b": b, "operation": "multiply"}
    results = []
    for payload in plan_chunks("matrix_ops", config, 8):
        wire, blobs = pack(payload)
        assert signable(wire) and blobs
        result_wire, result_blobs = pack(run_chunk("matrix_ops", wire, blobs))
        assert signable(result_wire)
        results.append(unpack(result_wire, result_blobs))
    np.testing.assert_allclose(aggregate("matrix_ops", config, results), np.asarray(a) @ np.asarray(b), rtol=1e-12)
    # a huge exact partial (product of a range) also fits signed content
    partial = run_chunk("range_reduce", {"start": 1, "end": 500, "operation": "product"})
    wire, _ = pack(partial)
    assert signable(wire) and aggregate("range_reduce", {"operation": "product"}, [wire]) == math.factorial(500)


def test_arrays_round_trip_as_arrays_inline_by_blob_and_by_rows():
    from ledger_net.compute import Packer

    small = np.arange(6, dtype=np.int32).reshape(2, 3)
    big = np.arange(400, dtype=np.float64).reshape(40, 10)
    packer = Packer()
    wire, blobs = packer.pack({"small": small, "big": big, "rows": big[10:20]})
    assert wire["small"] == {"$array": {"dtype": "<i4", "shape": [2, 3], "data": [0, 1, 2, 3, 4, 5]}}
    ref = wire["big"]["$array"]
    assert wire["rows"] == {"$array": [ref, 10, 20]} and list(blobs) == [ref]
    back = unpack(wire, blobs)
    assert back["small"].dtype == np.int32 and np.array_equal(back["small"], small)
    assert np.array_equal(back["rows"], big[10:20]) and not back["big"].flags.writeable
    joined = unpack({"$concat": [wire["rows"], {"$array": [ref, 0, 5]}]}, blobs)
    assert np.array_equal(joined, np.concatenate([big[10:20], big[:5]]))
    assert blob_refs({"$concat": [wire["rows"], wire["small"]]}) == [ref]


@pytest.mark.parametrize("bad, message", [
    ({"$array": ["00" * 32, 0, 5]}, "not available"),
    ({"$array": [None, 0, 5]}, "malformed"),
    ({"$array": {"dtype": "<U3", "shape": [1], "data": ["abc"]}}, "malformed inline array"),
    ({"$concat": [1, 2]}, "joins arrays only"),
])
def test_malformed_array_references_are_task_errors(bad, message):
    with pytest.raises(TaskError, match=message):
        unpack(bad, {})


def test_a_row_reference_outside_its_blob_is_refused():
    from ledger_net.compute import Packer

    wire, blobs = Packer().pack(np.zeros((10, 10)))
    with pytest.raises(TaskError, match="outside blob"):
        unpack({"$array": [wire["$array"], 5, 11]}, blobs)


def test_big_blobs_are_files_hashed_while_written(tmp_path):
    from ledger_net.compute import ArrayBlob
    from ledger_net.ledger.store import BIG_BLOB, Store

    store = Store.open(f"sqlite:///{tmp_path}/x.db")
    store.blob_dir = tmp_path / "blobs"
    array = np.random.default_rng(1).random((512, 512))  # 2 MiB
    blob = ArrayBlob(array)
    name = store.put_new_blob(blob)
    assert name == blob_hash(bytes(blob)) and len(blob) >= BIG_BLOB
    path = store.blob_path(name)
    assert path is not None and path.read_bytes() == bytes(blob)
    assert np.array_equal(decode_array(store.blob_view(name), copy=False), array)
    small = encode_array(np.arange(3))
    store.put_blob(blob_hash(small), small)  # small blobs stay in the database
    assert store.blob_path(blob_hash(small)) is None and store.get_blob(blob_hash(small)) == small
