"""Map operations: what ``map`` and ``map_reduce`` do to each element.

Two kinds. *Elementwise* operations (square, sqrt, ...) apply to a number, or to
every number inside a vector or matrix element, keeping its shape. *Summary*
operations (mean, sum, norm, ...) turn a vector or matrix element into one
number, so mapping ``mean`` over the rows of a matrix gives the row means.
Integer inputs stay exact integers wherever the operation allows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

from ..errors import TaskError
from .numbers import Number, check_number, exact_sum, exact_sum_of_squares, finish_number, to_float
from .reductions import flatten


def _sqrt(x: Number) -> float:
    if x < 0:
        raise TaskError(f"sqrt of negative value {x!r}")
    if isinstance(x, int):
        root = math.isqrt(x)
        if root * root == x:
            return float(root)  # exact for perfect squares of any size
    return math.sqrt(x)


def _log(fn: Callable[[Number], float]) -> Callable[[Number], float]:
    def op(x: Number) -> float:
        if x <= 0:
            raise TaskError(f"log of non-positive value {x!r}")
        return fn(x)
    return op


def _exp(x: Number) -> float:
    try:
        return math.exp(x)
    except OverflowError:
        raise TaskError(f"exp({x!r}) overflows a float") from None


def _reciprocal(x: Number) -> Number:
    if x == 0:
        raise TaskError("reciprocal of zero")
    return 1 / x


def _sigmoid(x: Number) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


ELEMENTWISE: dict[str, Callable[[Number], Number]] = {
    "identity": lambda x: x,
    "square": lambda x: x * x,
    "cube": lambda x: x * x * x,
    "double": lambda x: x * 2,
    "half": lambda x: x / 2,
    "negate": lambda x: -x,
    "abs": abs,
    "increment": lambda x: x + 1,
    "decrement": lambda x: x - 1,
    "sqrt": _sqrt,
    "log": _log(math.log),
    "log2": _log(math.log2),
    "log10": _log(math.log10),
    "exp": _exp,
    "reciprocal": _reciprocal,
    "relu": lambda x: x if x > 0 else (0 if isinstance(x, int) else 0.0),
    "sigmoid": _sigmoid,
    "floor": lambda x: math.floor(x),
    "ceil": lambda x: math.ceil(x),
    "round": lambda x: round(x),
    "sign": lambda x: (x > 0) - (x < 0),
}


def _mean(xs: list[Number]) -> Number:
    if not xs:
        raise TaskError("mean of an empty element")
    if all(isinstance(x, int) for x in xs):
        return finish_number(Fraction(sum(x for x in xs if isinstance(x, int)), len(xs)), True)
    return math.fsum(xs) / len(xs)


def _sum(xs: list[Number]) -> Number:
    return sum(xs) if all(isinstance(x, int) for x in xs) else math.fsum(xs)


def _norm(xs: list[Number]) -> float:
    if all(isinstance(x, int) for x in xs):
        return _sqrt(sum(x * x for x in xs))
    return math.sqrt(math.fsum(x * x for x in xs))


def _variance(xs: list[Number]) -> Number:
    if not xs:
        raise TaskError("variance of an empty element")
    s = exact_sum(xs)
    var = (exact_sum_of_squares(xs) - s * s / len(xs)) / len(xs)
    return finish_number(var, all(isinstance(x, int) for x in xs))


def _extreme(pick: Callable[[list[Number]], Number]) -> Callable[[list[Number]], Number]:
    def op(xs: list[Number]) -> Number:
        if not xs:
            raise TaskError("min/max of an empty element")
        return pick(xs)
    return op


SUMMARY: dict[str, Callable[[list[Number]], Any]] = {
    "mean": _mean,
    "sum": _sum,
    "min": _extreme(min),
    "max": _extreme(max),
    "norm": _norm,
    "count": len,
    "len": len,
    "variance": _variance,
    "std": lambda xs: math.sqrt(to_float(Fraction(_variance(xs)))),
    "product": lambda xs: math.prod(xs),
    "any": lambda xs: any(xs),
    "all": lambda xs: all(xs),
}
_ALIASES = {"inc": "increment", "dec": "decrement", "neg": "negate", "sq": "square", "id": "identity",
            "avg": "mean", "average": "mean", "l2": "norm", "var": "variance", "stdev": "std",
            "times2": "double", "exponent": "exp", "ln": "log"}

MAP_OPERATIONS = tuple(ELEMENTWISE) + tuple(SUMMARY)


def map_name(operation: Any) -> str:
    """The canonical name of a map operation, or a TaskError listing the known ones."""
    name = _ALIASES.get(operation.lower(), operation.lower()) if isinstance(operation, str) else None
    if name not in ELEMENTWISE and name not in SUMMARY:
        raise TaskError(f"unknown map operation {operation!r}; known: {', '.join(sorted(MAP_OPERATIONS))}")
    return name


def _apply_elementwise(fn: Callable[[Number], Number], value: Any, where: str) -> Any:
    if isinstance(value, (list, tuple)):
        return [_apply_elementwise(fn, v, f"{where}[{i}]") for i, v in enumerate(value)]
    x = check_number(value, where)
    try:
        return fn(x)
    except TaskError as exc:
        raise TaskError(f"{where}: {exc}") from None
    except (OverflowError, ValueError) as exc:
        raise TaskError(f"{where}: {exc}") from None


def map_element(operation: str, value: Any, where: str = "element") -> Any:
    """Apply one map operation to one element (number, vector or matrix)."""
    name = map_name(operation)
    if name in ELEMENTWISE:
        return _apply_elementwise(ELEMENTWISE[name], value, where)
    leaves = [check_number(v, where) for v in flatten(value)]
    try:
        return SUMMARY[name](leaves)
    except TaskError as exc:
        raise TaskError(f"{where}: {exc}") from None


def map_values(operation: str, values: Sequence[Any], offset: int = 0) -> list[Any]:
    """Map a list of elements; ``offset`` only makes error messages name the global index."""
    name = map_name(operation)
    return [map_element(name, v, f"data[{offset + i}]") for i, v in enumerate(values)]
