"""Exact arithmetic on user numbers, so chunked and unchunked answers agree to the bit.

Every finite float is an exact rational (an integer over a power of two), so sums,
sums of squares and products of ints *and* floats can be carried exactly between
chunks as ``[numerator, denominator]`` pairs and rounded once, at the very end.
Then the answer never depends on how the work was split, and two honest workers
given one chunk always report identical bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

from ..errors import TaskError

# Every finite double is k / 2**1074 for an integer k (1074 = 1022 + 52).
_FLOAT_SHIFT = 1074
# Refuse to build exact numbers larger than this many bits (about 300k decimal digits).
MAX_EXACT_BITS = 1_000_000

Number = int | float


def is_number(value: Any) -> bool:
    """True for ints, bools and finite floats (numpy scalars are converted first)."""
    return isinstance(value, (int, float)) and not (isinstance(value, float) and not math.isfinite(value))


def check_number(value: Any, where: str = "value") -> Number:
    """Return ``value`` as a plain Python number or raise a readable TaskError."""
    if hasattr(value, "item") and not isinstance(value, (int, float)):
        value = value.item()  # numpy scalar
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TaskError(f"{where} is {value!r}: only finite numbers can be computed on")
        return value
    raise TaskError(f"{where} is {type(value).__name__} {value!r:.60}, not a number")


def _scaled(value: Number) -> int:
    """``value * 2**1074`` as an exact int."""
    if isinstance(value, int):
        return value << _FLOAT_SHIFT
    num, den = value.as_integer_ratio()
    return num << (_FLOAT_SHIFT - (den.bit_length() - 1))


def exact_sum(values: Iterable[Number]) -> Fraction:
    """Exact sum of ints and finite floats (fast: one big-int add per value)."""
    int_total = 0
    float_total = 0
    for v in values:
        if isinstance(v, int):
            int_total += v
        else:
            float_total += _scaled(v)
    if float_total == 0:
        return Fraction(int_total)
    return Fraction(int_total) + Fraction(float_total, 1 << _FLOAT_SHIFT)


def exact_sum_of_squares(values: Iterable[Number]) -> Fraction:
    """Exact sum of squares of ints and finite floats."""
    int_total = 0
    float_total = 0
    for v in values:
        if isinstance(v, int):
            int_total += v * v
        else:
            s = _scaled(v)
            float_total += s * s
    if float_total == 0:
        return Fraction(int_total)
    return Fraction(int_total) + Fraction(float_total, 1 << (2 * _FLOAT_SHIFT))


def exact_product(values: Iterable[Number]) -> Fraction | None:
    """Exact product; None when it would exceed MAX_EXACT_BITS (a zero factor always gives 0)."""
    values = list(values)
    if any(v == 0 for v in values):
        return Fraction(0)
    num, den = 1, 1
    for v in values:
        n, d = v.as_integer_ratio() if isinstance(v, float) else (v, 1)
        num *= n
        den *= d
        if num.bit_length() + den.bit_length() > MAX_EXACT_BITS:
            return None
    return Fraction(num, den)


def encode_exact(value: Fraction | int) -> list[int]:
    """A JSON-friendly exact number: ``[numerator, denominator]`` (denominator > 0)."""
    f = Fraction(value)
    return [f.numerator, f.denominator]


def decode_exact(pair: Any) -> Fraction:
    """Inverse of :func:`encode_exact`; also accepts a bare int."""
    if isinstance(pair, int) and not isinstance(pair, bool):
        return Fraction(pair)
    if (isinstance(pair, (list, tuple)) and len(pair) == 2
            and all(isinstance(p, int) and not isinstance(p, bool) for p in pair) and pair[1] > 0):
        return Fraction(pair[0], pair[1])
    raise TaskError(f"malformed exact number {pair!r:.60}: expected [numerator, denominator]")


def to_float(value: Fraction) -> float:
    """Correctly rounded float of an exact number, with ±inf instead of OverflowError."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def finish_number(value: Fraction, integral_inputs: bool) -> Number:
    """Give the user an int when inputs were ints and the value is whole, else a float."""
    if integral_inputs and value.denominator == 1:
        return value.numerator
    return to_float(value)


def split_ints(values: Iterable[Any], where: str) -> tuple[list[Number], bool]:
    """Check every value is a number; return them and whether all are integers."""
    out: list[Number] = []
    all_int = True
    for i, v in enumerate(values):
        n = check_number(v, f"{where}[{i}]")
        if isinstance(n, float):
            all_int = False
        out.append(n)
    return out, all_int
