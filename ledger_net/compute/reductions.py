"""Reductions as mergeable partial states: reduce each chunk, merge, finish once.

A chunk never returns a rounded answer; it returns a *state* (count, exact sum,
exact sum of squares, exact product, extreme, truth value) from which the final
answer is computed after all chunks are merged. Merging is associative and
exact, so any split of the data gives the same answer as no split at all.

Values may be numbers or equally shaped nested lists (vectors, matrices); then
the reduction runs position by position (the sum of rows is a row).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from fractions import Fraction
from typing import Any

from ..errors import TaskError
from .numbers import (
    MAX_EXACT_BITS,
    Number,
    decode_exact,
    encode_exact,
    exact_product,
    exact_sum,
    exact_sum_of_squares,
    finish_number,
    split_ints,
    to_float,
)

REDUCE_OPERATIONS = (
    "sum", "product", "min", "max", "count", "mean",
    "sum_of_squares", "variance", "std", "any", "all",
)
_ALIASES = {
    "add": "sum", "total": "sum", "prod": "product", "multiply": "product",
    "minimum": "min", "maximum": "max", "len": "count", "length": "count",
    "avg": "mean", "average": "mean", "sumsq": "sum_of_squares", "sum_squares": "sum_of_squares",
    "var": "variance", "stdev": "std", "stddev": "std", "or": "any", "and": "all",
}

State = dict[str, Any]


def reduce_name(operation: Any) -> str:
    """The canonical name of a reduction, or a TaskError listing the known ones."""
    name = _ALIASES.get(str(operation).lower(), str(operation).lower()) if isinstance(operation, str) else None
    if name not in REDUCE_OPERATIONS:
        raise TaskError(f"unknown reduce operation {operation!r}; known: {', '.join(REDUCE_OPERATIONS)}")
    return name


# ---- one position: a list of numbers -------------------------------------------------

def numbers_state(op: str, numbers: Sequence[Number], all_int: bool) -> State:
    """The partial state of ``op`` over plain numbers."""
    state: State = {"n": len(numbers), "int": all_int}
    if op in ("sum", "mean", "variance", "std"):
        state["s"] = encode_exact(exact_sum(numbers))
    if op in ("sum_of_squares", "variance", "std"):
        state["q"] = encode_exact(exact_sum_of_squares(numbers))
    if op == "product":
        prod = exact_product(numbers)
        state["p"] = None if prod is None else encode_exact(prod)  # None: too large to carry
    if op in ("min", "max"):
        state["m"] = (min(numbers) if op == "min" else max(numbers)) if numbers else None
    if op == "any":
        state["b"] = any(numbers)
    if op == "all":
        state["b"] = all(numbers)
    return state


def merge_states(op: str, states: Iterable[State]) -> State:
    """Fold several partial states of ``op`` into one (associative, exact)."""
    merged: State = {"n": 0, "int": True}
    for st in states:
        merged["n"] += st["n"]
        merged["int"] = merged["int"] and st["int"]
        for key in ("s", "q"):
            if key in st:
                merged[key] = encode_exact(decode_exact(merged.get(key, 0)) + decode_exact(st[key]))
        if "p" in st:
            merged["p"] = _merge_products(merged.get("p", [1, 1]), st["p"])
        if "m" in st:
            cur, new = merged.get("m"), st["m"]
            if cur is None:
                merged["m"] = new
            elif new is not None:
                merged["m"] = min(cur, new) if op == "min" else max(cur, new)
        if "b" in st:
            merged["b"] = (merged.get("b", False) or st["b"]) if op == "any" else (merged.get("b", True) and st["b"])
    return merged


def _merge_products(a: Any, b: Any) -> Any:
    """Product of two encoded partial products; a zero wins over a too-large (None) one."""
    if a == [0, 1] or b == [0, 1]:
        return [0, 1]
    if a is None or b is None:
        return None
    prod = decode_exact(a) * decode_exact(b)
    if prod.numerator.bit_length() + prod.denominator.bit_length() > MAX_EXACT_BITS:
        return None
    return encode_exact(prod)


def finish_state(op: str, state: State) -> Number | bool:
    """Turn a merged state into the user's answer, rounding at most once."""
    n, integral = state["n"], state["int"]
    if op == "count":
        return n
    if op == "any":
        return bool(state.get("b", False))
    if op == "all":
        return bool(state.get("b", True))
    if op == "sum":
        return finish_number(decode_exact(state.get("s", 0)), integral)
    if op == "sum_of_squares":
        return finish_number(decode_exact(state.get("q", 0)), integral)
    if op == "product":
        if state.get("p", 1) is None:
            raise TaskError(f"exact product exceeds {MAX_EXACT_BITS} bits; reduce with sum of logs instead")
        return finish_number(decode_exact(state.get("p", 1)), integral)
    if n == 0:
        raise TaskError(f"{op} of no values is undefined")
    if op in ("min", "max"):
        return state["m"]
    s = decode_exact(state["s"])
    if op == "mean":
        return finish_number(s / n, integral)
    variance = (decode_exact(state["q"]) - s * s / n) / n
    if op == "variance":
        return finish_number(variance, integral)
    return exact_sqrt(variance)


def exact_sqrt(value: Fraction) -> float:
    """sqrt of a non-negative rational, exact when it is a perfect square."""
    num, den = value.numerator, value.denominator
    rn, rd = math.isqrt(num), math.isqrt(den)
    if rn * rn == num and rd * rd == den:
        return to_float(Fraction(rn, rd))
    return math.sqrt(to_float(value))


# ---- shaped values: numbers, vectors, matrices ---------------------------------------

def shape_of(value: Any, where: str = "value") -> tuple[int, ...]:
    """Shape of a number () or a rectangular nested list; TaskError when ragged."""
    if not isinstance(value, (list, tuple)):
        return ()
    if not value:
        return (0,)
    inner = shape_of(value[0], f"{where}[0]")
    for i, item in enumerate(value[1:], 1):
        if shape_of(item, f"{where}[{i}]") != inner:
            raise TaskError(f"{where} is ragged: item {i} has a different shape than item 0")
    return (len(value),) + inner


def flatten(value: Any) -> list[Any]:
    """Leaves of a nested list in row-major order."""
    if not isinstance(value, (list, tuple)):
        return [value]
    out: list[Any] = []
    for item in value:
        out.extend(flatten(item))
    return out


def unflatten(flat: Sequence[Any], shape: Sequence[int]) -> Any:
    """Inverse of :func:`flatten` for a known shape."""
    if not shape:
        return flat[0]
    step = len(flat) // shape[0] if shape[0] else 0
    return [unflatten(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def partial_reduce(operation: str, values: Sequence[Any], where: str = "data") -> State:
    """A chunk's partial: ``{"op", "shape", "parts"}`` with one state per position."""
    op = reduce_name(operation)
    if not values:
        return {"op": op, "shape": None, "parts": []}
    shape = shape_of(values[0], f"{where}[0]")
    columns: list[list[Any]]
    if shape == ():
        columns = [list(values)]
        for i, v in enumerate(values):
            if isinstance(v, (list, tuple)):
                raise TaskError(f"{where}[{i}] is a list but {where}[0] is a number")
    else:
        flats = []
        for i, v in enumerate(values):
            if shape_of(v, f"{where}[{i}]") != shape:
                raise TaskError(f"{where}[{i}] has shape {shape_of(v)} but {where}[0] has {shape}")
            flats.append(flatten(v))
        columns = [list(col) for col in zip(*flats, strict=False)]
    parts = []
    for col in columns:
        numbers, all_int = split_ints(col, where)
        parts.append(numbers_state(op, numbers, all_int))
    return {"op": op, "shape": list(shape), "parts": parts}


def merge_partials(operation: str, partials: Iterable[State]) -> State:
    """Merge chunk partials position by position; shapes must agree."""
    op = reduce_name(operation)
    shape: list[int] | None = None
    groups: list[list[State]] = []
    for p in partials:
        if p.get("op", op) != op:
            raise TaskError(f"cannot merge a {p.get('op')!r} partial into a {op!r} reduction")
        if p["shape"] is None:
            continue
        if shape is None:
            shape, groups = list(p["shape"]), [[] for _ in p["parts"]]
        elif list(p["shape"]) != shape:
            raise TaskError(f"chunk values have shape {p['shape']} but earlier chunks had {shape}")
        for group, part in zip(groups, p["parts"], strict=False):
            group.append(part)
    return {"op": op, "shape": shape, "parts": [merge_states(op, g) for g in groups]}


def finish_partial(operation: str, partial: State) -> Any:
    """The final answer: a number, or a nested list shaped like the values."""
    op = reduce_name(operation)
    if partial["shape"] is None:
        return finish_state(op, {"n": 0, "int": True})
    answers = [finish_state(op, st) for st in partial["parts"]]
    return unflatten(answers, partial["shape"])


def reduce_values(operation: str, values: Sequence[Any]) -> Any:
    """Reduce a whole list at once (the unchunked reference answer)."""
    return finish_partial(operation, partial_reduce(operation, values))
