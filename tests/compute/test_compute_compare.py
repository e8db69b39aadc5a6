"""Comparison per result kind (compute/compare.py): what agrees, what does not, and the verdict."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ledger_net.compute import plan_chunks, run_chunk
from ledger_net.compute.compare import (
    ML_BITS,
    Report,
    agree,
    check_spec,
    comparison_spec,
    decide,
    group_reports,
    product_bound,
)
from ledger_net.errors import TaskError

PRODUCT = {"kind": "product", "k": 2}


def _h(value: object) -> str:
    if isinstance(value, np.ndarray):
        return hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def test_each_type_declares_its_kind():
    floats, ints = [[1.5, 2.0], [3.0, 4.0]], [[1, 2], [3, 4]]
    assert comparison_spec("range_reduce", {}) == {"kind": "exact"}
    assert comparison_spec("map_reduce", {}) == {"kind": "exact"}
    assert comparison_spec("code", {}) == {"kind": "exact"}
    assert comparison_spec("map", {})["kind"] == "relative"
    assert comparison_spec("matrix_ops", {"operation": "multiply", "matrix_a": ints, "matrix_b": ints}) \
        == {"kind": "exact"}
    assert comparison_spec("matrix_ops", {"operation": "matmul", "matrix_a": floats, "matrix_b": ints}) == PRODUCT
    assert comparison_spec("matrix_ops", {"operation": "add", "matrix_a": floats, "matrix_b": floats}) \
        == {"kind": "exact"}  # one IEEE operation per element: correctly rounded everywhere
    big = np.eye(40)
    assert comparison_spec("matrix_ops", {"operation": "inverse", "matrix_a": big})["kind"] == "relative"
    assert comparison_spec("matrix_ops", {"operation": "inverse", "matrix_a": floats}) == {"kind": "exact"}
    assert comparison_spec("ml_inference", {"weights": {"W": [[1.0]], "b": [0.0]}}) \
        == {"kind": "inference", "bits": ML_BITS["linear"]}
    assert comparison_spec("ml_inference", {"model_path": "m.npz"}) == {"kind": "inference", "bits": ML_BITS["mlp"]}
    assert comparison_spec("ml_train_step", {"model_path": "m.npz"})["kind"] == "train"
    with pytest.raises(TaskError):
        comparison_spec("nope", {})
    for spec in ({"kind": "fuzzy"}, {"kind": "product", "k": 0}, {"kind": "relative", "bits": 2.5}):
        with pytest.raises(TaskError):
            check_spec(spec)


def test_specs_hold_no_floats():
    """A spec may enter a signed event: strings and integers only."""
    configs = [("matrix_ops", {"operation": "multiply", "matrix_a": [[1.5]], "matrix_b": [[2.5]]}),
               ("map", {}), ("ml_inference", {"model_path": "m.npz"}), ("ml_train_step", {"model_path": "m.npz"})]
    for task_type, config in configs:
        assert all(isinstance(v, (str, int)) for v in comparison_spec(task_type, config).values())


def test_chunked_float_product_agrees_with_the_whole_within_the_bound():
    g = np.random.default_rng(5)
    a, b = g.standard_normal((48, 300)), g.standard_normal((300, 20))
    config = {"operation": "multiply", "matrix_a": a, "matrix_b": b}
    whole = run_chunk("matrix_ops", plan_chunks("matrix_ops", config, 48)[0])["rows"]
    parts = np.concatenate([run_chunk("matrix_ops", p)["rows"] for p in plan_chunks("matrix_ops", config, 7)])
    payload = {"a": a, "b": b}
    assert agree(PRODUCT, {"rows": whole}, {"rows": parts}, payload)
    lie = parts.copy()
    lie[3, 4] += 3 * product_bound(a, b)[3, 4]
    assert not agree(PRODUCT, {"rows": whole}, {"rows": lie}, payload)
    assert not agree(PRODUCT, {"rows": whole}, {"rows": parts[:-1]}, payload)
    with pytest.raises(TaskError):
        agree(PRODUCT, {"rows": whole}, {"rows": parts})  # no payload: no bound


_CORE_SCRIPT = """
import sys, numpy as np
g = np.random.default_rng(7)
a, b = g.standard_normal((96, 640)), g.standard_normal((640, 64))
np.save(sys.argv[1], a @ b)
"""


def test_honest_products_under_different_openblas_kernels_agree(tmp_path):
    """The issue's case: OPENBLAS_CORETYPE picks other kernels, the bits differ, the bound holds."""
    results = {}
    for core in ("Prescott", "Sandybridge", "Haswell"):
        out = tmp_path / f"{core}.npy"
        env = {**os.environ, "OPENBLAS_CORETYPE": core}
        subprocess.run([sys.executable, "-c", _CORE_SCRIPT, str(out)], env=env, check=True, timeout=120)
        results[core] = np.load(out)
    g = np.random.default_rng(7)
    payload = {"a": g.standard_normal((96, 640)), "b": g.standard_normal((640, 64))}
    reports = [Report(core, _h(c), {"rows": c}) for core, c in results.items()]
    verdict = decide(PRODUCT, reports, quorum=3, payload=payload)
    assert verdict.decision == "accept" and not verdict.losers
    assert verdict.accepted == min(r.result_hash for r in reports)


def test_map_floats_within_ulps_ints_exact():
    spec = comparison_spec("map", {})
    x = [1.0, 2.5, [3, 4.25]]
    assert agree(spec, x, [1.0 * (1 + 2**-52), 2.5, [3, 4.25]])
    assert not agree(spec, x, [1.0 * (1 + 2**-40), 2.5, [3, 4.25]])
    assert not agree(spec, x, [1.0, 2.5, [4, 4.25]])
    assert not agree(spec, [1], [1.0])  # an int where a float stands is another result
    assert not agree(spec, x, x[:2])


def test_inference_tolerates_bits_and_true_ties_only():
    spec = {"kind": "inference", "bits": 30}
    tol = 2.0**-30
    base = {"predictions": [0, 1], "probabilities": [[0.7, 0.3], [0.5 - tol / 4, 0.5 + tol / 4]]}
    near = {"predictions": [0, 0], "probabilities": [[0.7 + tol / 2, 0.3 - tol / 2], [0.5 + tol / 4, 0.5 - tol / 4]]}
    assert agree(spec, base, near)  # row 1 is a tie within the bound: either class is honest
    flipped = {"predictions": [1, 0], "probabilities": near["probabilities"]}
    assert not agree(spec, base, flipped)  # row 0 is no tie
    far = {"predictions": [0, 1], "probabilities": [[0.7 + 4 * tol, 0.3 - 4 * tol], base["probabilities"][1]]}
    assert not agree(spec, base, far)
    reg = {"predictions": [10.0, -3.0], "probabilities": None}
    assert agree(spec, reg, {"predictions": [10.0 + 5 * tol, -3.0], "probabilities": None})
    assert not agree(spec, reg, {"predictions": [10.0 + 100 * tol, -3.0], "probabilities": None})


def test_train_gradients_compare_to_their_scale():
    spec = {"kind": "train", "bits": 26}
    tol = 2.0**-26
    x = {"n": 8, "loss": 0.5, "gradients": {"W": [[1.0, 0.0]], "b": [1e-3]}}
    y = {"n": 8, "loss": 0.5 * (1 + tol / 2), "gradients": {"W": [[1.0, tol / 2]], "b": [1e-3 * (1 + tol)]}}
    assert agree(spec, x, y)
    assert not agree(spec, x, {**y, "n": 9})
    assert not agree(spec, x, {**y, "gradients": {"W": [[1.0, 4 * tol]], "b": [1e-3]}})
    assert not agree(spec, x, {**y, "loss": 0.6})


def test_verdict_waits_retries_accepts_and_names_the_smallest_hash():
    spec = {"kind": "exact"}
    good = [Report("w1", "bb", 1), Report("w2", "aa", 1)]
    assert decide(spec, good[:1], quorum=2, outstanding=1).decision == "wait"
    assert decide(spec, good, quorum=2, outstanding=1).decision == "wait"  # a late disagreement must be judged
    assert decide(spec, [Report("w1", "bb", 1), Report("w3", "cc", 2)], quorum=2).decision == "retry"
    failed = Report("w4", "", None, ok=False)
    v = decide(spec, [Report("w1", "aa", 1), Report("w2", "aa", 1), Report("w3", "cc", 2), failed], quorum=2)
    assert v.decision == "accept" and v.accepted == "aa"
    assert {r.worker for r in v.winners} == {"w1", "w2"} and {r.worker for r in v.losers} == {"w3", "w4"}


def test_groups_are_centred_so_a_chain_of_near_results_does_not_merge():
    """a~b and b~c but not a~c: the group of b holds all three, which is right only if b is the centre."""
    spec = {"kind": "relative", "bits": 20}
    step = 0.9 * 2.0**-20
    reports = [Report("w1", "h1", [1.0]), Report("w2", "h2", [1.0 + step]), Report("w3", "h3", [1.0 + 2 * step])]
    groups = group_reports(spec, reports)
    assert groups[0][0].worker == "w2" and len(groups[0][1]) == 3
    assert [len(members) for _, members in groups] == [3, 2, 2]
