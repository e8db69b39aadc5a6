"""Checks instead of replication (compute/checks.py): Freivalds, samples, closed forms, the seed."""

from __future__ import annotations

import numpy as np
import pytest

from ledger_net.compute import plan_chunks, run_chunk
from ledger_net.compute.checks import (
    assignment_secret,
    check_chunk,
    check_map,
    check_range,
    check_seed,
    checkable,
    commitment,
    freivalds,
    random_prime,
    rerun_check,
    sample_indices,
    sign_vectors,
    verification_spec,
    verify_reveal,
)
from ledger_net.compute.compare import product_bound
from ledger_net.errors import TaskError

SEED = bytes(range(32))


def test_sign_vectors_are_pinned_and_version_independent():
    r = sign_vectors(SEED, 5, 3)
    assert r.shape == (5, 3) and set(np.unique(r)) <= {-1.0, 1.0}
    assert np.array_equal(r, sign_vectors(SEED, 5, 3))
    # Pinned: SHAKE-256 bits, not numpy's generator, so an auditor with any numpy draws these too.
    assert r.reshape(-1).tolist() == [1, -1, -1, 1, -1, 1, -1, 1, -1, -1, -1, 1, -1, -1, -1]
    assert not np.array_equal(r, sign_vectors(bytes(32), 5, 3))


def test_sample_indices_are_distinct_in_range_and_seeded():
    idx = sample_indices(SEED, 100, 10)
    assert len(set(idx)) == 10 and all(0 <= i < 100 for i in idx) and idx == sorted(idx)
    assert idx == sample_indices(SEED, 100, 10) == [3, 5, 23, 29, 42, 58, 64, 72, 73, 92]  # pinned: sha256 draws
    assert idx != sample_indices(bytes(32), 100, 10)
    assert sample_indices(SEED, 4, 10) == [0, 1, 2, 3]
    assert len({tuple(sample_indices(bytes([i]) * 32, 50, 1)) for i in range(200)}) > 30  # spread, not stuck


def test_random_prime_is_prime_and_seeded():
    q = random_prime(SEED, 61)
    assert q.bit_length() == 61 and pow(3, q - 1, q) == 1 and all(q % p for p in range(3, 2000, 2))
    assert q == random_prime(SEED, 61) and q != random_prime(bytes(32), 61)


def test_freivalds_passes_honest_float_products_and_catches_a_lie():
    g = np.random.default_rng(3)
    a, b = g.standard_normal((30, 200)), g.standard_normal((200, 40))
    c = np.einsum("ik,kj->ij", a[:, ::-1], b[::-1, :])  # another summation order: other last bits
    assert not np.array_equal(c, a @ b)
    assert freivalds(a, b, c, SEED).passed
    assert freivalds(a, b, a @ b, SEED).passed
    lie = c.copy()
    lie[7, 11] += 1e-6 * abs(lie[7, 11]) + 1e-9
    out = freivalds(a, b, lie, SEED, rounds=4)
    assert not out.passed and out.failed == [7]
    assert out.record() == {"method": "freivalds", "passed": False, "rounds": 4, "failed": [7]}
    nan = c.copy()
    nan[0, 0] = np.nan
    assert not freivalds(a, b, nan, SEED).passed
    assert not freivalds(a, b, c[:-1], SEED).passed


def test_freivalds_on_integers_is_exact_modulo_a_prime_even_past_int64():
    a = [[2**40 + i + j for j in range(6)] for i in range(5)]
    b = [[3**25 - i * j for j in range(4)] for i in range(6)]
    c = [[sum(a[i][k] * b[k][j] for k in range(6)) for j in range(4)] for i in range(5)]
    assert max(abs(x) for row in c for x in row) > 2**63
    out = freivalds(a, b, c, SEED)
    assert out.passed and out.modulus is not None
    c[2][1] += 1
    assert not freivalds(a, b, c, SEED).passed
    small = np.arange(12, dtype=np.int64).reshape(3, 4)
    assert freivalds(small, small.T, small @ small.T, SEED).passed


def test_check_chunk_on_a_real_matrix_chunk_and_its_record_reruns():
    g = np.random.default_rng(4)
    config = {"operation": "multiply", "matrix_a": g.standard_normal((20, 30)), "matrix_b": g.standard_normal((30, 8))}
    payload = plan_chunks("matrix_ops", config, 5)[1]
    result = run_chunk("matrix_ops", payload)
    secret = assignment_secret(b"owner key", "assignment-hash")
    seed = check_seed(secret, "result-hash")
    out = check_chunk("matrix_ops", payload, result, seed)
    assert out.passed
    assert rerun_check(out.record(), "matrix_ops", payload, result, secret.hex(), "result-hash")
    bad = {"rows": result["rows"] + 4 * product_bound(payload["a"], payload["b"]) * 30}
    assert not check_chunk("matrix_ops", payload, bad, seed).passed
    assert not rerun_check(out.record(), "matrix_ops", payload, bad, secret.hex(), "result-hash")


def test_commitment_hides_the_secret_until_the_verdict_reveals_it():
    secret = assignment_secret(b"owner key", "a1")
    assert secret != assignment_secret(b"owner key", "a2") and secret != assignment_secret(b"other", "a1")
    commit = commitment(secret)
    assert verify_reveal(commit, secret.hex())
    assert not verify_reveal(commit, assignment_secret(b"owner key", "a2").hex())
    assert not verify_reveal(commit, "not hex")
    assert check_seed(secret, "r1") != check_seed(secret, "r2")


def test_map_samples_catch_a_wholesale_lie_and_pass_the_truth():
    payload = {"data": list(range(1, 201)), "operation": "sqrt", "offset": 0}
    result = run_chunk("map", payload)
    out = check_map(payload, result, SEED, samples=8)
    assert out.passed and len(out.samples) == 8
    assert not check_map(payload, [x * (1 + 1e-9) for x in result], SEED).passed
    assert not check_map(payload, result[:-1], SEED).passed
    one = list(result)
    one[out.samples[3]] += 1.0
    assert check_map(payload, one, SEED).failed == [out.samples[3]]


def test_inference_rows_are_recomputed():
    weights = {"W": [[0.5, -1.0, 0.25], [1.5, 0.5, -0.5]], "b": [0.1, 0.0, -0.1]}
    rows = [[float(i), float(i % 3) - 1.0] for i in range(40)]
    payload = plan_chunks("ml_inference", {"weights": weights, "input_data": rows}, 40)[0]
    result = run_chunk("ml_inference", payload)
    assert check_chunk("ml_inference", payload, result, SEED).passed
    lie = {**result, "probabilities": [[1.0, 0.0, 0.0] for _ in result["probabilities"]], "predictions": [0] * 40}
    assert not check_chunk("ml_inference", payload, lie, SEED).passed


def test_range_closed_forms_and_modular_products():
    for op in ("sum", "variance", "max", "all"):
        payload = {"start": -50, "end": 10**12, "operation": op}
        result = run_chunk("range_reduce", payload)
        assert check_range(payload, result, SEED).passed
        wrong = run_chunk("range_reduce", {**payload, "end": 10**12 - 1})
        assert not check_range(payload, wrong, SEED).passed
    payload = {"start": 1, "end": 3000, "operation": "product"}
    result = run_chunk("range_reduce", payload)
    out = check_range(payload, result, SEED)
    assert out.passed and out.method == "modular" and out.record()["modulus"] == str(out.modulus)
    wrong = run_chunk("range_reduce", {"start": 2, "end": 3000, "operation": "product"})
    wrong["parts"][0]["n"] = 3000  # the right count and 2 * 3000! instead of 3000!
    wrong["parts"][0]["p"] = [wrong["parts"][0]["p"][0] * 2, 1]
    assert not check_range(payload, wrong, SEED).passed
    assert not check_range(payload, {"nonsense": 1}, SEED).passed


def test_verification_config_defaults_and_refusals():
    mul = {"operation": "multiply"}
    assert verification_spec("matrix_ops", mul) == {"mode": "check", "rounds": 8, "samples": 8}
    assert verification_spec("matrix_ops", {"operation": "inverse"}) == {"mode": "quorum"}
    assert verification_spec("map_reduce", {}) == {"mode": "quorum"}
    assert verification_spec("code", {"verification": "none"}) == {"mode": "none"}
    assert verification_spec("map", {"verification": {"mode": "check", "samples": 32}})["samples"] == 32
    assert [checkable(t, mul) for t in ("range_reduce", "map", "ml_inference", "matrix_ops", "ml_train_step",
                                         "code", "map_reduce")] == [True] * 4 + [False] * 3
    for task_type, config in (("code", {"verification": "check"}), ("map", {"verification": "sometimes"}),
                              ("map", {"verification": {"samples": 0}}), ("map", {"verification": {"x": 1}})):
        with pytest.raises(TaskError):
            verification_spec(task_type, config)
    with pytest.raises(TaskError):
        check_chunk("code", {}, None, SEED)
