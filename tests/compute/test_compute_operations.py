"""Map operations: elementwise on numbers and inside vectors, summaries of vectors."""

from __future__ import annotations

import math

import pytest

from ledger_net.compute import aggregate, plan_chunks, run_chunk
from ledger_net.compute.operations import ELEMENTWISE, SUMMARY, map_element, map_name, map_values
from ledger_net.errors import TaskError


@pytest.mark.parametrize("op, x, want", [
    ("identity", 3, 3), ("square", -3, 9), ("cube", 2, 8), ("double", 2.5, 5.0), ("half", 3, 1.5),
    ("negate", 4, -4), ("abs", -2.5, 2.5), ("increment", 1, 2), ("decrement", 1, 0),
    ("sqrt", 16, 4.0), ("sqrt", 2, math.sqrt(2)), ("log", math.e, 1.0), ("log2", 8, 3.0), ("log10", 1000, 3.0),
    ("exp", 0, 1.0), ("reciprocal", 4, 0.25), ("relu", -2, 0), ("relu", 1.5, 1.5), ("sigmoid", 0, 0.5),
    ("floor", 2.7, 2), ("ceil", 2.1, 3), ("round", 2.5, 2), ("sign", -0.1, -1),
])
def test_elementwise_on_numbers(op, x, want):
    got = map_element(op, x)
    assert got == pytest.approx(want, rel=1e-15) and type(got) is type(want)


def test_elementwise_keeps_shape_and_int_exactness():
    assert map_element("square", [[1, 2], [3, 4]]) == [[1, 4], [9, 16]]
    big = 10**20
    assert map_element("square", big) == big * big  # no float, no overflow
    assert map_element("increment", [1, [2.5, 3]]) == [2, [3.5, 4]]


@pytest.mark.parametrize("op, row, want", [
    ("mean", [1, 2, 3, 4], 2.5), ("mean", [2, 4], 3), ("sum", [0.1, 0.2, 0.3], math.fsum([0.1, 0.2, 0.3])),
    ("min", [3, -1, 2], -1), ("max", [3, -1, 2], 3), ("norm", [3, 4], 5.0), ("count", [1, 2, 3], 3),
    ("variance", [1, 2, 3, 4], 1.25), ("std", [2, 4, 4, 4, 5, 5, 7, 9], 2.0), ("product", [2, 3, 4], 24),
    ("any", [0, 0, 1], True), ("all", [1, 0], False), ("mean", 7, 7), ("norm", -3, 3.0),
])
def test_summaries_turn_a_vector_into_a_number(op, row, want):
    assert map_element(op, row) == want


def test_mean_over_rows_is_the_list_of_row_means():
    rows = [[1.0, 2.0, 3.0], [10.0, 20.0, 30.0], [0.5, 0.5, 0.5]]
    config = {"data": rows, "operation": "mean"}
    results = [run_chunk("map", p) for p in plan_chunks("map", config, 2)]
    assert aggregate("map", config, results) == [2.0, 20.0, 0.5]


def test_map_errors_name_the_global_index():
    config = {"data": [4, 1, 0, 9], "operation": "log"}
    payloads = plan_chunks("map", config, 2)
    run_chunk("map", payloads[0])
    with pytest.raises(TaskError, match=r"data\[2\]: log of non-positive value 0"):
        run_chunk("map", payloads[1])
    with pytest.raises(TaskError, match="sqrt of negative"):
        map_values("sqrt", [1, -4])
    with pytest.raises(TaskError, match="overflows"):
        map_values("exp", [1000])
    with pytest.raises(TaskError, match="reciprocal of zero"):
        map_values("reciprocal", [0])
    with pytest.raises(TaskError, match="not a number"):
        map_values("square", ["a"])
    with pytest.raises(TaskError, match="unknown map operation 'teleport'"):
        map_name("teleport")


def test_every_named_operation_runs_on_a_simple_input():
    for name in ELEMENTWISE:
        assert map_values(name, [1, 2.5]) is not None
    for name in SUMMARY:
        assert map_values(name, [[1, 2.5], [3, 4]]) is not None
