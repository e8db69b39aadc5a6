"""Reductions over an inclusive integer range ``start..end`` in closed form.

A range chunk costs O(1) whatever its length (except ``product``), and answers
are exact Python ints or rationals; the chunk returns the same partial state as a
data reduction (see :mod:`reductions`), so ranges merge and finish identically.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import TaskError
from .numbers import MAX_EXACT_BITS, encode_exact
from .reductions import State, finish_partial, merge_partials, reduce_name

# A product over more nonzero factors than this is refused before any work starts.
MAX_PRODUCT_TERMS = 200_000


def _sum_to(n: int) -> int:
    """1 + 2 + ... + n, valid for every integer n as a polynomial identity."""
    return n * (n + 1) // 2


def _squares_to(n: int) -> int:
    """1² + ... + n², valid for every integer n (F(n) - F(n-1) = n²)."""
    return n * (n + 1) * (2 * n + 1) // 6


def range_sum(start: int, end: int) -> int:
    return _sum_to(end) - _sum_to(start - 1)


def range_sum_of_squares(start: int, end: int) -> int:
    return _squares_to(end) - _squares_to(start - 1)


def _product_bits(start: int, end: int) -> float:
    """Approximate bit length of Π|k| over a range without zero."""
    lo, hi = (start, end) if start > 0 else (-end, -start)
    return (math.lgamma(hi + 1) - math.lgamma(lo)) / math.log(2)


def check_product_size(start: int, end: int) -> None:
    """Refuse a range product too large to be worth computing (a range holding 0 is fine: 0)."""
    if start <= 0 <= end:
        return
    if end - start + 1 > MAX_PRODUCT_TERMS or _product_bits(start, end) > MAX_EXACT_BITS:
        raise TaskError(
            f"product of {start}..{end} has about {_product_bits(start, end):.3g} bits "
            f"(limit {MAX_EXACT_BITS} bits, {MAX_PRODUCT_TERMS} factors); use a smaller range")


def range_product(start: int, end: int) -> int:
    """Exact product of start..end, refusing sizes that cannot be worth computing."""
    if start <= 0 <= end:
        return 0
    check_product_size(start, end)
    # Balanced binary splitting keeps big-int multiplications similar in size.
    def prod(a: int, b: int) -> int:
        if b - a < 16:
            r = 1
            for k in range(a, b + 1):
                r *= k
            return r
        mid = (a + b) // 2
        return prod(a, mid) * prod(mid + 1, b)
    return prod(start, end)


def check_range(start: Any, end: Any) -> None:
    """Raise TaskError unless start and end are ints with start <= end."""
    for name, v in (("start", start), ("end", end)):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TaskError(f"range {name} must be an integer, got {v!r:.40}")
    if end < start:
        raise TaskError(f"range end {end} is before start {start}")


def range_partial(operation: str, start: int, end: int) -> State:
    """The partial state of a reduction over the inclusive range start..end."""
    op = reduce_name(operation)
    check_range(start, end)
    n = end - start + 1
    st: dict[str, Any] = {"n": n, "int": True}
    if op in ("sum", "mean", "variance", "std"):
        st["s"] = encode_exact(range_sum(start, end))
    if op in ("sum_of_squares", "variance", "std"):
        st["q"] = encode_exact(range_sum_of_squares(start, end))
    if op == "product":
        st["p"] = encode_exact(range_product(start, end))
    if op == "min":
        st["m"] = start
    if op == "max":
        st["m"] = end
    if op == "any":
        st["b"] = not (start == 0 and end == 0)
    if op == "all":
        st["b"] = not (start <= 0 <= end)
    return {"op": op, "shape": [], "parts": [st]}


def reduce_range(operation: str, start: int, end: int) -> Any:
    """The unchunked answer for a range reduction."""
    return finish_partial(operation, merge_partials(operation, [range_partial(operation, start, end)]))
