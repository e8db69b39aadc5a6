"""Matrix operations, split by row blocks of A wherever the math allows.

``multiply`` sends each chunk a block of A's rows and all of B; ``add``,
``subtract`` and ``elementwise_multiply`` send matching row blocks of A and B;
``transpose``, ``trace`` and ``norm`` need only A's rows. ``inverse``,
``determinant`` and ``solve`` are one chunk each. Integer matrices are computed
with Python ints (no int64 overflow); small systems (n <= EXACT_MAX_N) are
eliminated exactly over the rationals, so ``det([[1,2],[3,4]]) == -2`` exactly.

Operands given as numpy arrays stay arrays end to end (checked, split into row
views, computed and joined without a Python list in between) and results come
back as arrays; operands given as lists give lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ..errors import TaskError
from .numbers import check_number, decode_exact, finish_number, to_float
from .reductions import exact_sqrt, finish_partial, merge_partials, partial_reduce

MATRIX_OPERATIONS = ("multiply", "add", "subtract", "elementwise_multiply", "transpose",
                     "inverse", "determinant", "trace", "solve", "norm")
_ALIASES = {"matmul": "multiply", "dot": "multiply", "mul": "multiply", "product": "multiply",
            "plus": "add", "sum": "add", "sub": "subtract", "minus": "subtract", "difference": "subtract",
            "hadamard": "elementwise_multiply", "elementwise": "elementwise_multiply",
            "elementwise_product": "elementwise_multiply", "multiply_elementwise": "elementwise_multiply",
            "t": "transpose", "inv": "inverse", "det": "determinant", "frobenius": "norm",
            "frobenius_norm": "norm"}
BINARY = ("multiply", "add", "subtract", "elementwise_multiply", "solve")
SINGLE_CHUNK = ("inverse", "determinant", "solve")
SQUARE = ("inverse", "determinant", "trace", "solve")
EXACT_MAX_N = 32

Matrix = list[list[Any]]


def matrix_name(operation: Any) -> str:
    """Canonical matrix operation name, or a TaskError listing the known ones."""
    name = _ALIASES.get(operation.lower(), operation.lower()) if isinstance(operation, str) else None
    if name not in MATRIX_OPERATIONS:
        raise TaskError(f"unknown matrix operation {operation!r}; known: {', '.join(MATRIX_OPERATIONS)}")
    return name


class FiniteMemo:
    """Float arrays already found finite, remembered by their memory in read-only maps the
    caller keeps alive and never sees change (a warm worker's maps of the node's operand files:
    a blob file is written whole, then only renamed). A chunk's worker then checks B once per
    blob instead of once per chunk (~1.2 ms CPU for 32 MiB). Only an identical view (address,
    shape, strides, dtype) of a kept map is trusted, and nothing a payload says is."""

    def __init__(self) -> None:
        self._maps: dict[int, tuple[Any, set[tuple[Any, ...]]]] = {}  # id(map) -> (map, views found finite)

    def keep(self, owner: Any) -> None:
        self._maps[id(owner)] = (owner, set())

    def drop(self, owner: Any) -> None:
        entry = self._maps.get(id(owner))
        if entry is not None and entry[0] is owner:
            del self._maps[id(owner)]

    def _views(self, m: np.ndarray) -> tuple[set[tuple[Any, ...]] | None, tuple[Any, ...]]:
        root: Any = m
        while isinstance(root, np.ndarray):
            root = root.base
        key = (m.__array_interface__["data"][0], m.shape, m.strides, m.dtype.str)
        if not isinstance(root, memoryview) or not root.readonly:
            return None, key
        entry = self._maps.get(id(root.obj))
        return (entry[1] if entry is not None and entry[0] is root.obj else None), key

    def known(self, m: np.ndarray) -> bool:
        views, key = self._views(m)
        return views is not None and key in views

    def note(self, m: np.ndarray) -> None:
        views, key = self._views(m)
        if views is not None:
            views.add(key)


FINITE = FiniteMemo()  # maps are kept only by execution.chunk_job's warm workers; elsewhere it stays empty


def _check_array(m: np.ndarray, name: str, ndim: int) -> None:
    if m.ndim != ndim:
        raise TaskError(f"{name} must be a {'matrix (2-d)' if ndim == 2 else 'vector (1-d)'} array, "
                        f"got {m.ndim}-d")
    if m.dtype.kind not in "biuf":
        raise TaskError(f"{name} must hold numbers, got dtype {m.dtype}")
    if m.size == 0:
        raise TaskError(f"{name} is empty")
    if m.dtype.kind == "f" and not FINITE.known(m):
        if not np.isfinite(m).all():
            raise TaskError(f"{name} holds NaN or infinity: only finite numbers can be computed on")
        FINITE.note(m)


def matrix_shape(m: Any, name: str) -> tuple[int, int]:
    """(rows, cols) of a non-empty rectangular numeric matrix, else TaskError."""
    if isinstance(m, np.ndarray):
        _check_array(m, name, 2)
        return int(m.shape[0]), int(m.shape[1])
    if not isinstance(m, (list, tuple)) or not m:
        raise TaskError(f"{name} must be a non-empty list of rows")
    if not all(isinstance(r, (list, tuple)) for r in m):
        raise TaskError(f"{name} must be a list of rows (lists of numbers)")
    cols = len(m[0])
    if cols == 0:
        raise TaskError(f"{name} has empty rows")
    for i, row in enumerate(m):
        if len(row) != cols:
            raise TaskError(f"{name} is ragged: row {i} has {len(row)} entries, row 0 has {cols}")
        for j, x in enumerate(row):
            check_number(x, f"{name}[{i}][{j}]")
    return len(m), cols


def _vector_or_matrix(b: Any, name: str) -> tuple[int, int | None]:
    """Shape of a right-hand side: (n, None) for a vector, (n, k) for a matrix."""
    if isinstance(b, np.ndarray) and b.ndim == 1:
        _check_array(b, name, 1)
        return int(b.shape[0]), None
    if isinstance(b, (list, tuple)) and b and not isinstance(b[0], (list, tuple)):
        for i, x in enumerate(b):
            check_number(x, f"{name}[{i}]")
        return len(b), None
    return matrix_shape(b, name)


def validate_matrices(operation: Any, a: Any, b: Any) -> list[str]:
    """Readable reasons why ``operation`` cannot run on A and B (empty when it can)."""
    try:
        op = matrix_name(operation)
        ra, ca = matrix_shape(a, "matrix_a")
        if op in SQUARE and ra != ca:
            return [f"{op} needs a square matrix_a, got {ra}x{ca}"]
        if op == "solve":
            rb, _ = _vector_or_matrix(b, "matrix_b")
            if rb != ra:
                return [f"solve: matrix_b has {rb} rows but matrix_a has {ra}"]
        elif op in BINARY:
            rb, cb = matrix_shape(b, "matrix_b")
            if op == "multiply" and ca != rb:
                return [f"shape mismatch: cannot multiply {ra}x{ca} by {rb}x{cb}"]
            if op != "multiply" and (ra, ca) != (rb, cb):
                return [f"shape mismatch: {op} needs equal shapes, got {ra}x{ca} and {rb}x{cb}"]
    except TaskError as exc:
        return [str(exc)]
    return []


def _all_int(m: Any) -> bool:
    if isinstance(m, np.ndarray):
        return m.dtype.kind in "biu"
    return all(isinstance(x, int) for row in m for x in (row if isinstance(row, (list, tuple)) else [row]))


def _array(m: Any, exact: bool) -> np.ndarray:
    if exact:
        if isinstance(m, np.ndarray):
            return m.astype(np.int64).astype(object)  # Python ints: no overflow in the products
        return np.array([[int(x) for x in row] for row in m], dtype=object)
    return np.asarray(m, dtype=np.float64)


def _as_given(out: np.ndarray, arrays_in: bool) -> Any:
    """The result in the operands' form: an array for arrays (int64 when exact ints fit), else lists."""
    if not arrays_in:
        return out.tolist()
    if out.dtype == object:
        values = out.tolist()
        flat = [x for row in values for x in row]
        if all(-(2**63) <= x < 2**63 for x in flat):
            return np.array(values, dtype=np.int64)
        return values
    return out


def split_matrix_op(operation: str, a: Matrix | np.ndarray, b: Any, rows_per_chunk: int) -> list[dict[str, Any]]:
    """Chunk payloads for one matrix task (row blocks of A; one chunk when the op is global)."""
    op = matrix_name(operation)
    if op in SINGLE_CHUNK:
        return [{"operation": op, "a": a, "b": b, "row_offset": 0}]
    step = max(1, int(rows_per_chunk))
    payloads = []
    for i in range(0, len(a), step):
        block_b = b if op == "multiply" else (b[i:i + step] if op in BINARY else None)
        payloads.append({"operation": op, "a": a[i:i + step], "b": block_b, "row_offset": i})
    return payloads


def run_matrix_chunk(payload: dict[str, Any]) -> dict[str, Any]:
    """Compute one chunk's partial result."""
    op = matrix_name(payload.get("operation"))
    a: Any = payload.get("a")  # checked by matrix_shape below
    b: Any = payload.get("b")
    offset = int(payload.get("row_offset", 0))
    matrix_shape(a, "matrix_a")
    if op in ("multiply", "add", "subtract", "elementwise_multiply"):
        errors = validate_matrices(op, a, b)
        if errors:
            raise TaskError(errors[0])
        exact = _all_int(a) and _all_int(b)
        A, B = _array(a, exact), _array(b, exact)
        out = {"multiply": lambda: A @ B, "add": lambda: A + B, "subtract": lambda: A - B,
               "elementwise_multiply": lambda: A * B}[op]()
        return {"rows": _as_given(out, isinstance(a, np.ndarray) and isinstance(b, np.ndarray))}
    if isinstance(a, np.ndarray):
        if op == "transpose":
            return {"cols": np.ascontiguousarray(a.T)}
        a = a.tolist()  # trace and norm are exact over Python numbers
    if op == "transpose":
        return {"cols": [list(col) for col in zip(*a, strict=False)]}
    if op == "trace":
        diag = []
        for i, row in enumerate(a):
            if offset + i >= len(row):
                raise TaskError(f"trace needs a square matrix; row {offset + i} has no diagonal entry")
            diag.append(row[offset + i])
        return {"partial": partial_reduce("sum", diag, "diagonal")}
    if op == "norm":
        return {"partial": partial_reduce("sum_of_squares", [x for row in a for x in row], "matrix_a")}
    errors = validate_matrices(op, a, b)
    if errors:
        raise TaskError(errors[0])
    arrays_in = isinstance(a, np.ndarray)
    if arrays_in and len(a) <= EXACT_MAX_N:
        a, b = a.tolist(), (b.tolist() if isinstance(b, np.ndarray) else b)
    value = _global_op(op, a, b)
    if arrays_in and isinstance(value, list):
        value = np.asarray(value, dtype=np.float64)
    return {"value": value}


def aggregate_matrix(operation: str, partials: Sequence[dict[str, Any]]) -> Any:
    """Join chunk partials (in chunk order) into the final matrix or number."""
    op = matrix_name(operation)
    if not partials:
        raise TaskError(f"matrix {op}: no chunk results to aggregate")
    if op in SINGLE_CHUNK:
        return partials[0]["value"]
    if op == "transpose":
        cols = [p["cols"] for p in partials]
        if all(isinstance(c, np.ndarray) for c in cols):
            return np.hstack(cols)
        return [sum((c[j] for c in cols), []) for j in range(len(cols[0]))]
    if op == "trace":
        return finish_partial("sum", merge_partials("sum", [p["partial"] for p in partials]))
    if op == "norm":
        merged = merge_partials("sum_of_squares", [p["partial"] for p in partials])
        return exact_sqrt(decode_exact(merged["parts"][0]["q"])) if merged["parts"] else 0.0
    if all(isinstance(p["rows"], np.ndarray) for p in partials):
        return np.concatenate([p["rows"] for p in partials])
    return [row for p in partials for row in p["rows"]]


ROW_JOINED = ("multiply", "add", "subtract", "elementwise_multiply")


def rows_by_reference(operation: str, partial_wires: Sequence[Any]) -> dict[str, Any] | None:
    """The answer's wire form as ``{"$concat": [each chunk's result blob]}`` when the operation's
    answer is its chunks' row blocks stacked and every block is an array blob: the answer then
    names bytes the network already holds and checked, instead of copying and hashing them anew."""
    if matrix_name(operation) not in ROW_JOINED or not partial_wires:
        return None
    parts = []
    for wire in partial_wires:
        rows = wire.get("rows") if isinstance(wire, dict) and len(wire) == 1 else None
        if not (isinstance(rows, dict) and len(rows) == 1 and isinstance(rows.get("$array"), (str, list))):
            return None
        parts.append(rows)
    return parts[0] if len(parts) == 1 else {"$concat": parts}


# ---- inverse, determinant, solve ------------------------------------------------------

def _eliminate(a: Matrix, rhs: list[list[Fraction]]) -> tuple[Fraction, list[list[Fraction]] | None]:
    """Exact Gauss-Jordan over the rationals: (det A, A⁻¹·rhs or None when singular)."""
    n = len(a)
    m = [[Fraction(x) for x in row] + list(r) for row, r in zip(a, rhs, strict=False)]
    det = Fraction(1)
    for col in range(n):
        pivot = next((r for r in range(col, n) if m[r][col] != 0), None)
        if pivot is None:
            return Fraction(0), None
        if pivot != col:
            m[col], m[pivot] = m[pivot], m[col]
            det = -det
        p = m[col][col]
        det *= p
        m[col] = [x / p for x in m[col]]
        for r in range(n):
            if r != col and m[r][col] != 0:
                f = m[r][col]
                m[r] = [x - f * y for x, y in zip(m[r], m[col], strict=False)]
    return det, [row[n:] for row in m]


def _global_op(op: str, a: Matrix, b: Any) -> Any:
    n = len(a)
    exact_ok = n <= EXACT_MAX_N
    vector_rhs = op == "solve" and not isinstance(b[0], (list, tuple))
    if exact_ok:
        if op == "determinant":
            det, _ = _eliminate(a, [[] for _ in range(n)])
            return finish_number(det, _all_int(a))
        if op == "inverse":
            rhs = [[Fraction(int(i == j)) for j in range(n)] for i in range(n)]
        else:
            rhs = [[Fraction(x)] for x in b] if vector_rhs else [[Fraction(x) for x in row] for row in b]
        det, x = _eliminate(a, rhs)
        if x is None:
            raise TaskError(f"{op}: matrix_a is singular (determinant 0)")
        floats = [[to_float(v) for v in row] for row in x]
        return [row[0] for row in floats] if vector_rhs else floats
    A = np.asarray(a, dtype=np.float64)
    keep = isinstance(a, np.ndarray)
    try:
        if op == "determinant":
            return float(np.linalg.det(A))
        if op == "inverse":
            inverse = np.linalg.inv(A)
            return inverse if keep else inverse.tolist()
        solution = np.linalg.solve(A, np.asarray(b, dtype=np.float64))
        return solution if keep else solution.tolist()
    except np.linalg.LinAlgError as exc:
        raise TaskError(f"{op}: matrix_a is singular ({exc})") from None
