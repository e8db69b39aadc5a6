"""Properties: for every task type and operation, chunking then aggregating equals the
unchunked answer; serialisation and blobs round-trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ledger_net.compute import (
    aggregate,
    decode_array,
    encode_array,
    pack,
    plan_chunks,
    run_chunk,
    unpack,
)
from ledger_net.compute.matrices import MATRIX_OPERATIONS
from ledger_net.compute.operations import ELEMENTWISE, SUMMARY
from ledger_net.compute.reductions import REDUCE_OPERATIONS
from ledger_net.core.task import Task, TaskPriority
from ledger_net.errors import TaskError

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcome(task_type, config, chunk_size):
    """The aggregated answer, or the TaskError's class when the work is impossible."""
    try:
        payloads = plan_chunks(task_type, config, chunk_size)
        # Chunks travel in wire form, as they will through the ledger.
        results, result_blobs = [], {}
        for p in payloads:
            wire, blobs = pack(p, min_blob_items=8)
            result, more = pack(run_chunk(task_type, wire, blobs), min_blob_items=8)
            results.append(result)
            result_blobs.update(more)
        return aggregate(task_type, config, results, result_blobs)
    except TaskError:
        return TaskError


def same(a, b):
    """Equal, treating two NaN-free floats as equal only when identical."""
    return a == b and type(a) is type(b) or (isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
                                             and all(same(x, y) for x, y in zip(a, b, strict=False)))


numbers = st.one_of(st.integers(-1000, 1000), st.floats(-50, 50, allow_nan=False, allow_infinity=False))


@SETTINGS
@given(start=st.integers(-10**6, 10**6), length=st.integers(1, 3000), op=st.sampled_from(REDUCE_OPERATIONS),
       data=st.data())
def test_range_chunked_equals_whole(start, length, op, data):
    if op == "product":
        length = min(length, 300)
        start = data.draw(st.integers(-200, 200))
    end = start + length - 1
    config = {"start": start, "end": end, "operation": op}
    chunk_size = data.draw(st.integers(1, length))
    whole = outcome("range_reduce", config, length)
    assert same(outcome("range_reduce", config, chunk_size), whole)
    if length <= 300 and op in ("sum", "min", "max", "count", "product", "sum_of_squares"):
        xs = range(start, end + 1)
        assert whole == {"sum": sum, "min": min, "max": max, "count": len, "product": math.prod,
                         "sum_of_squares": lambda v: sum(x * x for x in v)}[op](xs)


@SETTINGS
@given(op=st.sampled_from(sorted(ELEMENTWISE) + sorted(SUMMARY)), width=st.integers(0, 4), data=st.data())
def test_map_chunked_equals_whole(op, width, data):
    element = numbers if width == 0 else st.lists(numbers, min_size=width, max_size=width)
    values = data.draw(st.lists(element, min_size=1, max_size=40))
    config = {"data": values, "operation": op}
    whole = outcome("map", config, len(values))
    assert same(outcome("map", config, data.draw(st.integers(1, len(values)))), whole)
    if whole is not TaskError:
        assert len(whole) == len(values)


@SETTINGS
@given(map_op=st.sampled_from(["identity", "square", "double", "abs", "negate", "sqrt", "mean", "norm"]),
       reduce_op=st.sampled_from(REDUCE_OPERATIONS), width=st.integers(0, 3), data=st.data())
def test_map_reduce_chunked_equals_whole(map_op, reduce_op, width, data):
    element = numbers if width == 0 else st.lists(numbers, min_size=width, max_size=width)
    values = data.draw(st.lists(element, min_size=1, max_size=30 if reduce_op == "product" else 60))
    config = {"data": values, "map_operation": map_op, "reduce_operation": reduce_op}
    whole = outcome("map_reduce", config, len(values))
    assert same(outcome("map_reduce", config, data.draw(st.integers(1, len(values)))), whole)


@SETTINGS
@given(op=st.sampled_from(MATRIX_OPERATIONS), rows=st.integers(1, 7), cols=st.integers(1, 7),
       inner=st.integers(1, 5), ints=st.booleans(), data=st.data())
def test_matrix_chunked_equals_whole(op, rows, cols, inner, ints, data):
    if op in ("inverse", "determinant", "trace", "solve"):
        cols = rows
    entry = st.integers(-20, 20) if ints else st.floats(-10, 10, allow_nan=False).map(lambda x: round(x, 3))
    a = data.draw(st.lists(st.lists(entry, min_size=cols, max_size=cols), min_size=rows, max_size=rows))
    b_shape = {"multiply": (cols, inner), "solve": (rows, 1)}.get(op, (rows, cols))
    b = data.draw(st.lists(st.lists(entry, min_size=b_shape[1], max_size=b_shape[1]),
                           min_size=b_shape[0], max_size=b_shape[0]))
    config = {"matrix_a": a, "matrix_b": b, "operation": op}
    whole = outcome("matrix_ops", config, rows)
    chunked = outcome("matrix_ops", config, data.draw(st.integers(1, rows)))
    if ints and op != "inverse" and op != "solve":
        assert same(chunked, whole)  # exact integer arithmetic
    elif whole is TaskError:
        assert chunked is TaskError
    else:
        np.testing.assert_allclose(chunked, whole, rtol=1e-9, atol=1e-9)
    if whole is not TaskError and op in ("multiply", "add", "subtract", "transpose", "trace"):
        ref = {"multiply": lambda A, B: A @ B, "add": np.add, "subtract": np.subtract,
               "transpose": lambda A, B: A.T, "trace": lambda A, B: np.trace(A)}[op]
        np.testing.assert_allclose(whole, ref(np.asarray(a, float), np.asarray(b, float)), rtol=1e-9, atol=1e-9)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    rng = np.random.default_rng(5)
    path = tmp_path_factory.mktemp("models") / "mlp.npz"
    np.savez(path, W1=rng.normal(size=(3, 5)), b1=rng.normal(size=5), W2=rng.normal(size=(5, 4)),
             b2=rng.normal(size=4), activation=np.array("relu"))
    return str(path)


@SETTINGS
@given(rows=st.integers(1, 30), data=st.data())
def test_ml_chunked_equals_whole(model_path, rows, data):
    x = data.draw(hnp.arrays(np.float64, (rows, 3), elements=st.floats(-5, 5))).tolist()
    y = data.draw(st.lists(st.integers(0, 3), min_size=rows, max_size=rows))
    chunk_size = data.draw(st.integers(1, rows))
    inf = {"model_path": model_path, "input_data": {"inputs": x}}
    whole, chunked = outcome("ml_inference", inf, rows), outcome("ml_inference", inf, chunk_size)
    assert chunked is not TaskError and whole is not TaskError
    np.testing.assert_allclose(chunked["probabilities"], whole["probabilities"], rtol=1e-12, atol=1e-15)
    train = {"model_path": model_path, "training_data": {"X": x, "y": y}, "learning_rate": 0.1}
    whole, chunked = outcome("ml_train_step", train, rows), outcome("ml_train_step", train, chunk_size)
    assert chunked["loss"] == pytest.approx(whole["loss"], rel=1e-9)
    for name in ("W1", "b1", "W2", "b2"):
        np.testing.assert_allclose(chunked["weights"][name], whole["weights"][name], rtol=1e-9, atol=1e-12)


json_like = st.recursive(
    st.one_of(st.none(), st.booleans(), st.text(max_size=5), st.integers(-(2**100), 2**100),
              st.floats(allow_nan=False)),
    lambda inner: st.one_of(st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=4), inner, max_size=4)),
    max_leaves=30)


@SETTINGS
@given(value=json_like, threshold=st.integers(1, 10))
def test_wire_round_trip(value, threshold):
    wire, blobs = pack(value, min_blob_items=threshold)
    assert same_json(unpack(wire, blobs), value)


def same_json(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=False))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@SETTINGS
@given(array=hnp.arrays(st.sampled_from([np.int64, np.float64, np.float32, np.int8, np.bool_, np.uint16]),
                        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)))
def test_blob_round_trip(array):
    back = decode_array(encode_array(array))
    assert back.shape == array.shape and back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)


@SETTINGS
@given(start=st.integers(-100, 100), length=st.integers(1, 100), op=st.sampled_from(REDUCE_OPERATIONS),
       priority=st.sampled_from(list(TaskPriority)), timeout=st.integers(1, 3600), chunk=st.integers(1, 50))
def test_task_dict_round_trip(start, length, op, priority, timeout, chunk):
    task = Task.create_range_reduce("owner", start, start + length - 1, op, {"timeout_seconds": timeout},
                                    {"priority": priority.value, "chunk_size": chunk})
    again = Task.from_dict(task.to_dict())
    assert again == task and again.validate() == []
    assume(op != "product" or abs(start) < 50)
    assert same(again.run_locally(), task.run_locally(length))
