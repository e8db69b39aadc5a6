"""Matrix operations against numpy, chunked by row blocks, exact for integers."""

from __future__ import annotations

import numpy as np
import pytest

from ledger_net.compute import aggregate, plan_chunks, run_chunk
from ledger_net.compute.matrices import EXACT_MAX_N, MATRIX_OPERATIONS
from ledger_net.errors import TaskError

RNG = np.random.default_rng(7)


def run(op, a, b=None, chunk_size=None):
    config = {"matrix_a": a, "matrix_b": b, "operation": op}
    payloads = plan_chunks("matrix_ops", config, chunk_size)
    return len(payloads), aggregate("matrix_ops", config, [run_chunk("matrix_ops", p) for p in payloads])


def reference(op, a, b):
    A, B = np.asarray(a, dtype=float), None if b is None else np.asarray(b, dtype=float)
    return {"multiply": lambda: A @ B, "add": lambda: A + B, "subtract": lambda: A - B,
            "elementwise_multiply": lambda: A * B, "transpose": lambda: A.T, "inverse": lambda: np.linalg.inv(A),
            "determinant": lambda: np.linalg.det(A), "trace": lambda: np.trace(A),
            "solve": lambda: np.linalg.solve(A, B), "norm": lambda: np.linalg.norm(A)}[op]()


@pytest.mark.parametrize("op", MATRIX_OPERATIONS)
@pytest.mark.parametrize("n", [3, 12, EXACT_MAX_N + 8])
def test_every_operation_matches_numpy(op, n):
    a = (RNG.random((n, n)) + np.eye(n) * n).tolist()  # well conditioned
    b = RNG.random(n).tolist() if op == "solve" else RNG.random((n, n)).tolist()
    chunks, got = run(op, a, b if op in ("multiply", "add", "subtract", "elementwise_multiply", "solve") else None,
                      chunk_size=5)
    np.testing.assert_allclose(got, reference(op, a, b), rtol=1e-10, atol=1e-12)
    if op in ("inverse", "determinant", "solve"):
        assert chunks == 1
    else:
        assert chunks == -(-n // 5)  # row blocks of five


def test_multiply_rectangular_splits_a_by_rows():
    a, b = RNG.random((7, 3)).tolist(), RNG.random((3, 4)).tolist()
    chunks, got = run("multiply", a, b, chunk_size=2)
    assert chunks == 4 and np.asarray(got).shape == (7, 4)
    np.testing.assert_allclose(got, np.asarray(a) @ np.asarray(b), rtol=1e-12)
    _, t = run("transpose", a, None, chunk_size=3)
    assert t == np.asarray(a).T.tolist()


def test_integer_matrices_are_exact_beyond_int64():
    big = 3**40  # squares overflow int64
    a = [[big, 1], [2, big]]
    _, prod = run("multiply", a, a, chunk_size=1)
    assert prod == [[big * big + 2, 2 * big], [4 * big, big * big + 2]]
    assert all(type(x) is int for row in prod for x in row)
    _, det = run("determinant", [[1, 2], [3, 4]])
    assert det == -2 and type(det) is int
    _, tr = run("trace", [[1, 2, 3], [4, 5, 6], [7, 8, 9]], chunk_size=1)
    assert tr == 15 and type(tr) is int
    _, inv = run("inverse", [[1, 2], [3, 4]])
    assert inv == [[-2.0, 1.0], [1.5, -0.5]]  # exact elimination, rounded once
    _, norm = run("norm", [[3, 0], [0, 4]], chunk_size=1)
    assert norm == 5.0


def test_solve_with_a_matrix_right_hand_side():
    a = [[2, 1], [1, 3]]
    b = [[3, 1], [5, 2]]
    _, x = run("solve", a, b)
    np.testing.assert_allclose(np.asarray(a) @ np.asarray(x), b, rtol=1e-14)


@pytest.mark.parametrize("op", ["inverse", "solve", "determinant"])
def test_singular_matrices(op):
    a = [[1, 2], [2, 4]]
    if op == "determinant":
        assert run(op, a)[1] == 0
        return
    with pytest.raises(TaskError, match="singular"):
        run(op, a, [1, 2] if op == "solve" else None)
    big = np.ones((EXACT_MAX_N + 2, EXACT_MAX_N + 2)).tolist()
    with pytest.raises(TaskError, match="singular"):
        run(op, big, [1.0] * len(big) if op == "solve" else None)


def test_chunk_refuses_bad_shapes_even_without_validation():
    with pytest.raises(TaskError, match="shape mismatch"):
        run_chunk("matrix_ops", {"operation": "multiply", "a": [[1, 2]], "b": [[1, 2]], "row_offset": 0})
    with pytest.raises(TaskError, match="unknown matrix operation"):
        run_chunk("matrix_ops", {"operation": "explode", "a": [[1]], "b": None})
