"""Range and data reductions: closed forms against brute force, exactness, errors."""

from __future__ import annotations

import math
import statistics
from fractions import Fraction

import pytest

from ledger_net.compute import aggregate, plan_chunks, run_chunk
from ledger_net.compute.ranges import range_product, reduce_range
from ledger_net.compute.reductions import REDUCE_OPERATIONS, reduce_name, reduce_values
from ledger_net.errors import TaskError


def brute(op, xs):
    """Straightforward Python reference (exact Fractions where the answer is rational)."""
    fr = [Fraction(x) for x in xs]
    n = len(xs)
    return {
        "sum": sum(fr), "product": math.prod(fr), "min": min(xs), "max": max(xs), "count": n,
        "mean": sum(fr) / n, "sum_of_squares": sum(x * x for x in fr),
        "variance": sum(x * x for x in fr) / n - (sum(fr) / n) ** 2,
        "std": math.sqrt(statistics.pvariance(fr)), "any": any(xs), "all": all(xs),
    }[op]


@pytest.mark.parametrize("op", REDUCE_OPERATIONS)
@pytest.mark.parametrize("start,end", [(1, 1), (1, 100), (-7, 12), (-30, -3), (0, 0), (5, 64)])
def test_range_closed_forms_match_brute_force(op, start, end):
    got = reduce_range(op, start, end)
    want = brute(op, list(range(start, end + 1)))
    if op == "std":
        assert got == pytest.approx(want, rel=1e-15)
    else:
        rounded_once = isinstance(want, Fraction) and want.denominator != 1
        assert got == (float(want) if rounded_once else want)
        if op not in ("any", "all") and isinstance(want, Fraction) and want.denominator == 1:
            assert type(got) is int  # exact ints, never floats, when the answer is whole


def test_range_answers_are_exact_for_huge_ranges():
    n = 10**30
    assert reduce_range("sum", 1, n) == n * (n + 1) // 2
    assert reduce_range("sum_of_squares", 1, n) == n * (n + 1) * (2 * n + 1) // 6
    assert reduce_range("count", -n, n) == 2 * n + 1
    assert reduce_range("mean", 1, 10**18) == (10**18 + 1) / 2  # 500000000000000000.5 rounded once
    assert reduce_range("mean", 1, 9) == 5 and type(reduce_range("mean", 1, 9)) is int
    assert reduce_range("variance", 1, 4) == 1.25
    assert reduce_range("variance", 1, 7) == 4 and type(reduce_range("variance", 1, 7)) is int


def test_range_product_is_exact_and_guarded():
    assert range_product(1, 20) == math.factorial(20)
    assert range_product(-4, -1) == 24 and range_product(-3, 5) == 0
    assert reduce_range("product", 1, 3000) == math.factorial(3000)
    with pytest.raises(TaskError, match="bits"):
        range_product(1, 10**9)
    assert range_product(-(10**12), 10**12) == 0  # zero inside: no work, no error


def test_range_chunked_equals_whole_and_partials_are_json_ints():
    config = {"start": -1000, "end": 12345, "operation": "variance"}
    payloads = plan_chunks("range_reduce", config, 777)
    results = [run_chunk("range_reduce", p) for p in payloads]
    assert aggregate("range_reduce", config, results) == reduce_range("variance", -1000, 12345)
    part = results[0]["parts"][0]
    assert all(isinstance(x, int) for x in part["s"] + part["q"])


def test_reductions_over_floats_are_exact_and_split_independent():
    xs = [0.1] * 10 + [1e16, 1.0, -1e16]
    assert reduce_values("sum", xs) == math.fsum(xs)  # correctly rounded, unlike sum(xs)
    assert sum(xs) != math.fsum(xs)
    config = {"data": xs, "map_operation": "identity", "reduce_operation": "sum"}
    for size in (1, 2, 5, 13):
        results = [run_chunk("map_reduce", p) for p in plan_chunks("map_reduce", config, size)]
        assert aggregate("map_reduce", config, results) == math.fsum(xs)


def test_mixed_ints_and_floats_give_floats_ints_give_ints():
    assert reduce_values("sum", [1, 2, 3]) == 6 and type(reduce_values("sum", [1, 2, 3])) is int
    assert type(reduce_values("sum", [1, 2.0])) is float
    assert reduce_values("mean", [1, 2]) == 1.5
    assert reduce_values("product", [2, 0.5]) == 1.0
    assert reduce_values("any", [0, 0.0, False]) is False and reduce_values("all", [1, True, 2.5]) is True


def test_reduce_vectors_position_by_position():
    rows = [[1, 2, 3], [4, 5, 6], [7, 8, 10]]
    assert reduce_values("sum", rows) == [12, 15, 19]
    assert reduce_values("max", rows) == [7, 8, 10]
    assert reduce_values("mean", [[[1, 2]], [[3, 5]]]) == [[2, 3.5]]
    with pytest.raises(TaskError, match="shape"):
        reduce_values("sum", [[1, 2], [3]])


def test_reduction_errors_are_readable():
    with pytest.raises(TaskError, match="unknown reduce operation 'median'"):
        reduce_name("median")
    with pytest.raises(TaskError, match="not a number"):
        reduce_values("sum", [1, "two"])
    with pytest.raises(TaskError, match="finite"):
        reduce_values("sum", [1.0, float("inf")])
    with pytest.raises(TaskError, match="no values"):
        reduce_values("mean", [])
    assert reduce_values("sum", []) == 0 and reduce_values("count", []) == 0
    assert reduce_name("avg") == "mean" and reduce_name("STD") == "std"


def test_range_product_size_is_checked_before_any_work():
    from ledger_net.compute import validate_config

    errors = validate_config("range_reduce", {"start": 1, "end": 10**8, "operation": "product"})
    assert errors and "bits" in errors[0]
    huge_with_zero = {"start": -(10**9), "end": 10**9, "operation": "product"}
    assert validate_config("range_reduce", huge_with_zero) == []
    payloads = plan_chunks("range_reduce", huge_with_zero, 1000)
    assert len(payloads) == 1  # a zero factor makes the whole product 0: no reason to split
    assert aggregate("range_reduce", huge_with_zero, [run_chunk("range_reduce", p) for p in payloads]) == 0


def test_product_too_large_fails_the_same_way_chunked_or_not_unless_a_zero_is_there():
    huge = [2**60 + 1] * 20_000  # about 1.2 million bits
    for data, expect_zero in ((huge, False), (huge + [0], True), ([0] + huge, True)):
        config = {"data": data, "map_operation": "identity", "reduce_operation": "product"}
        for size in (len(data), 5000):
            results = [run_chunk("map_reduce", p) for p in plan_chunks("map_reduce", config, size)]
            if expect_zero:
                assert aggregate("map_reduce", config, results) == 0
            else:
                with pytest.raises(TaskError, match="exceeds"):
                    aggregate("map_reduce", config, results)
