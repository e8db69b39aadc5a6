"""Comparison of chunk results per result kind, and the replicas' verdict.

Each task type declares how two honest results of one chunk may differ (its *comparison
spec*, a small dict of strings and integers, so it can stand in a signed event):

``{"kind": "exact"}``
    Integers, exact fractions, strings and the ``code`` type's output: equal bytes, so equal
    result hashes. compute/numbers.py keeps sums, means and the other reductions exact, and
    float ``add``/``subtract``/``elementwise_multiply``/``transpose`` are single IEEE operations
    (correctly rounded everywhere), so these kinds never depend on the processor.
``{"kind": "product", "k": K}``
    A float matrix product ``C = A B`` (A: m x n). Each honest result satisfies
    ``|C~ - AB| <= gamma_n |A||B|`` element-wise (gamma_n = n u / (1 - n u), u = eps/2), so two
    honest results differ by at most ``2 gamma_n |A||B|``. The bound used is
    ``K (n + 2) eps ||a_i||_2 ||b_j||_2`` (plus ``n`` times the smallest normal, for subnormals):
    by Cauchy-Schwarz ``(|A||B|)_ij <= ||a_i|| ||b_j||``, which costs O(n^2) instead of a second
    O(n^3) product, and K = 2 leaves a factor of two over the rigorous bound.
``{"kind": "relative", "bits": B}``
    Floats produced by libm or LAPACK (map's sqrt/exp/log..., inverse/solve/determinant of
    n > 32): ints equal, floats within ``2^-B max(|x|, |y|) + 2^-1022``.
``{"kind": "inference", "bits": B}`` and ``{"kind": "train", "bits": B}``
    ML results, B stated per model kind (:data:`ML_BITS`). Inference: probabilities (in [0, 1])
    within ``2^-B`` absolutely; class predictions equal unless both results' two best classes are
    within ``2^-B`` of each other (a genuine tie may break either way); regressor values within
    ``2^-B`` relative to the largest magnitude of the chunk. Train steps: ``n`` equal, loss within
    ``2^-B`` relative, each gradient tensor within ``2^-B`` of its largest magnitude (the shard's
    sums cancel, so a per-element relative bound would be meaningless near zero).

Replicas that agree form groups (:func:`group_reports`); agreement within a tolerance is not
transitive, so a group is defined from a *centre*: for every report, the reports that agree with
it; the centre with the most agreeing reports wins, ties to the smallest result hash, and the
accepted bytes are those of the smallest result hash in the winning group. All of it is a
function of the set of reports, never of their order, so every peer re-deriving a verdict
picks the same result.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import TaskError
from .matrices import EXACT_MAX_N, matrix_name

EPS = float(np.finfo(np.float64).eps)
TINY = float(np.finfo(np.float64).tiny)
PRODUCT_K = 2
RELATIVE_BITS = 50  # libm and correctly rounded results: 4 eps relative
LINALG_BITS = 24  # LAPACK inverse/solve/det of n > 32 (well-conditioned systems; see docs/tasks.md)
# Per model kind: layers of dense products (fan-in d each) followed by smooth activations; honest
# machines differ by summation order only, ~d eps relative to the layer's scale per layer. The
# stated bits leave a margin of several orders of magnitude for d up to 10^5 and 10 layers.
ML_BITS = {"linear": 36, "mlp": 30}
TRAIN_BITS = {"linear": 30, "mlp": 26}
KINDS = ("exact", "product", "relative", "inference", "train")


def _all_int(m: Any) -> bool:
    if isinstance(m, np.ndarray):
        return m.dtype.kind in "biu"
    if isinstance(m, (list, tuple)):
        return all(_all_int(x) for x in m)
    return isinstance(m, int)


def _model_family(config: Mapping[str, Any]) -> str:
    weights = config.get("weights")
    if isinstance(weights, Mapping) and "W" in weights:
        return "linear"
    return "mlp"  # a model file or blob: the looser bound, unless the caller names the family


def comparison_spec(task_type: str, config: Mapping[str, Any], model_family: str | None = None) -> dict[str, Any]:
    """How two honest results of a chunk of this task may differ (see the module doc)."""
    if task_type in ("range_reduce", "map_reduce", "code"):
        return {"kind": "exact"}
    if task_type == "map":
        return {"kind": "relative", "bits": RELATIVE_BITS}
    if task_type == "matrix_ops":
        op = matrix_name(config.get("operation"))
        a, b = config.get("matrix_a"), config.get("matrix_b")
        if op == "multiply":
            return {"kind": "exact"} if _all_int(a) and _all_int(b) else {"kind": "product", "k": PRODUCT_K}
        if op in ("inverse", "determinant", "solve") and len(a if a is not None else []) > EXACT_MAX_N:
            return {"kind": "relative", "bits": LINALG_BITS}
        return {"kind": "exact"}
    if task_type in ("ml_inference", "ml_train_step"):
        family = model_family or _model_family(config)
        if family not in ML_BITS:
            raise TaskError(f"unknown model family {family!r}; known: {', '.join(ML_BITS)}")
        if task_type == "ml_inference":
            return {"kind": "inference", "bits": ML_BITS[family]}
        return {"kind": "train", "bits": TRAIN_BITS[family]}
    raise TaskError(f"unknown task type {task_type!r}")


def check_spec(spec: Mapping[str, Any]) -> None:
    """Refuse a malformed spec (it may come from a peer's event)."""
    kind = spec.get("kind")
    if kind not in KINDS:
        raise TaskError(f"unknown result kind {kind!r}; known: {', '.join(KINDS)}")
    if kind == "product" and not (isinstance(spec.get("k"), int) and 1 <= spec["k"] <= 1024):
        raise TaskError("a product comparison needs an integer k in 1..1024")
    if kind in ("relative", "inference", "train") and not (isinstance(spec.get("bits"), int)
                                                          and 8 <= spec["bits"] <= 60):
        raise TaskError(f"a {kind} comparison needs an integer bits in 8..60")


# ---- bounds ---------------------------------------------------------------------------

def product_bound(a: Any, b: Any, k: int = PRODUCT_K) -> np.ndarray:
    """Element-wise bound on how far two honest float results of ``a @ b`` may differ."""
    A, B = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n = A.shape[1]
    rows = np.sqrt(np.einsum("ij,ij->i", A, A))
    cols = np.sqrt(np.einsum("ij,ij->j", B, B))
    with np.errstate(over="ignore"):
        return k * (n + 2) * EPS * np.outer(rows, cols) + n * TINY


def _floats(x: Any) -> np.ndarray | None:
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr


def values_close(x: Any, y: Any, rel: float, floor: float = TINY) -> bool:
    """Same structure; ints, strings, bools and None equal; floats within ``rel`` relative."""
    if isinstance(x, Mapping) or isinstance(y, Mapping):
        if not (isinstance(x, Mapping) and isinstance(y, Mapping)) or set(x) != set(y):
            return False
        return all(values_close(x[key], y[key], rel, floor) for key in x)
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        ax, ay = _floats(x), _floats(y)
        if ax is None or ay is None or ax.shape != ay.shape:
            return False
        if np.asarray(x).dtype.kind in "biu" and np.asarray(y).dtype.kind in "biu":
            return bool(np.array_equal(np.asarray(x), np.asarray(y)))
        return _arrays_close(ax, ay, rel, floor)
    if isinstance(x, (list, tuple)) or isinstance(y, (list, tuple)):
        if not (isinstance(x, (list, tuple)) and isinstance(y, (list, tuple))) or len(x) != len(y):
            return False
        return all(values_close(u, v, rel, floor) for u, v in zip(x, y, strict=True))
    if isinstance(x, float) or isinstance(y, float):
        if isinstance(x, bool) or isinstance(y, bool) or not isinstance(x, (int, float)) \
                or not isinstance(y, (int, float)):
            return False
        if type(x) is not type(y):
            return False  # an int where the other has a float is a different result
        if not (math.isfinite(x) and math.isfinite(y)):
            return x == y
        return abs(x - y) <= rel * max(abs(x), abs(y)) + floor
    return type(x) is type(y) and x == y


def _arrays_close(ax: np.ndarray, ay: np.ndarray, rel: float, floor: float = TINY) -> bool:
    if not (np.isfinite(ax).all() and np.isfinite(ay).all()):
        return bool(np.array_equal(ax, ay))
    return bool((np.abs(ax - ay) <= rel * np.maximum(np.abs(ax), np.abs(ay)) + floor).all())


def _top_two_gap(probs: np.ndarray) -> np.ndarray:
    part = np.sort(probs, axis=1)
    return part[:, -1] - part[:, -2] if probs.shape[1] > 1 else np.full(probs.shape[0], np.inf)


def inference_close(x: Mapping[str, Any], y: Mapping[str, Any], bits: int) -> bool:
    tol = 2.0 ** -bits
    if set(x) != set(y):
        return False
    px, py = x.get("probabilities"), y.get("probabilities")
    if (px is None) != (py is None):
        return False
    if px is None:  # a regressor (or a classifier asked for no probabilities)
        vx, vy = _floats(x.get("predictions")), _floats(y.get("predictions"))
        if vx is None or vy is None or vx.shape != vy.shape:
            return False
        if np.asarray(x.get("predictions")).dtype.kind in "biu":
            return bool(np.array_equal(vx, vy))  # class indices without probabilities: exact
        scale = max(float(np.abs(vx).max(initial=0.0)), float(np.abs(vy).max(initial=0.0)))
        return bool((np.abs(vx - vy) <= tol * scale + TINY).all())
    ax, ay = _floats(px), _floats(py)
    if ax is None or ay is None or ax.shape != ay.shape or ax.ndim != 2:
        return False
    if not (np.abs(ax - ay) <= tol).all():
        return False
    cx, cy = list(x.get("predictions") or []), list(y.get("predictions") or [])
    if len(cx) != len(cy) or len(cx) != ax.shape[0]:
        return False
    tied = (_top_two_gap(ax) <= tol) & (_top_two_gap(ay) <= tol)
    for i, (p, q) in enumerate(zip(cx, cy, strict=True)):
        if p != q and not tied[i]:
            return False
    lx, ly = x.get("labels"), y.get("labels")
    if lx is not None or ly is not None:
        if lx is None or ly is None or len(lx) != len(ly):
            return False
        return all(a == b or tied[i] for i, (a, b) in enumerate(zip(lx, ly, strict=True)))
    return True


def _train_close(x: Mapping[str, Any], y: Mapping[str, Any], bits: int) -> bool:
    tol = 2.0 ** -bits
    if set(x) != set(y) or x.get("n") != y.get("n") or not isinstance(x.get("n"), int):
        return False
    if not values_close(float(x.get("loss", 0.0)), float(y.get("loss", 0.0)), tol):
        return False
    gx, gy = x.get("gradients"), y.get("gradients")
    if not isinstance(gx, Mapping) or not isinstance(gy, Mapping) or set(gx) != set(gy):
        return False
    for name in gx:
        ax, ay = _floats(gx[name]), _floats(gy[name])
        if ax is None or ay is None or ax.shape != ay.shape:
            return False
        if not (np.isfinite(ax).all() and np.isfinite(ay).all()):
            return bool(np.array_equal(ax, ay))
        scale = max(float(np.abs(ax).max(initial=0.0)), float(np.abs(ay).max(initial=0.0)))
        if not (np.abs(ax - ay) <= tol * scale + TINY).all():
            return False
    return True


def _product_rows(value: Any) -> np.ndarray | None:
    rows = value.get("rows") if isinstance(value, Mapping) else value
    arr = _floats(rows)
    return arr if arr is not None and arr.ndim == 2 else None


def agree(spec: Mapping[str, Any], x: Any, y: Any, payload: Mapping[str, Any] | None = None,
          hashes: tuple[str, str] | None = None) -> bool:
    """Whether two results of one chunk agree under ``spec``. ``payload`` (unpacked) is needed by
    the product kind; ``hashes`` (their result hashes), when given, decide the exact kind."""
    kind = spec.get("kind")
    if kind == "exact":
        if hashes is not None:
            return hashes[0] == hashes[1]
        return values_close(x, y, 0.0, 0.0) and _exact_types(x, y)
    if hashes is not None and hashes[0] == hashes[1]:
        return True
    if kind == "product":
        if payload is None:
            raise TaskError("comparing float products needs the chunk's payload (its operands)")
        cx, cy = _product_rows(x), _product_rows(y)
        if cx is None or cy is None or cx.shape != cy.shape:
            return False
        bound = product_bound(payload["a"], payload["b"], int(spec["k"]))
        if bound.shape != cx.shape:
            return False
        if not (np.isfinite(cx).all() and np.isfinite(cy).all()):
            return bool(np.array_equal(cx, cy))
        return bool((np.abs(cx - cy) <= bound).all())
    if kind == "relative":
        return values_close(x, y, 2.0 ** -int(spec["bits"]))
    if kind == "inference":
        return isinstance(x, Mapping) and isinstance(y, Mapping) and inference_close(x, y, int(spec["bits"]))
    if kind == "train":
        return isinstance(x, Mapping) and isinstance(y, Mapping) and _train_close(x, y, int(spec["bits"]))
    raise TaskError(f"unknown result kind {kind!r}")


def _exact_types(x: Any, y: Any) -> bool:
    if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
        return isinstance(x, np.ndarray) and isinstance(y, np.ndarray) and x.dtype == y.dtype \
            and x.shape == y.shape and bool(np.array_equal(x, y))
    return True


# ---- the verdict ----------------------------------------------------------------------

@dataclass(frozen=True)
class Report:
    """One replica's report of a chunk: who, its result hash, and (when ok) its unpacked value."""

    worker: str
    result_hash: str
    value: Any = None
    ok: bool = True


@dataclass(frozen=True)
class Verdict:
    """``accept`` (winners agree, ``accepted`` names the bytes to keep), ``retry`` (no quorum is
    reachable) or ``wait``. ``losers`` are the reports outside the winning group."""

    decision: str
    accepted: str | None
    winners: tuple[Report, ...]
    losers: tuple[Report, ...]


def _key(r: Report) -> tuple[str, str]:
    return r.result_hash, r.worker


def centred_groups(reports: Sequence[Report],
                   agrees: Callable[[Report, Report], bool]) -> list[tuple[Report, tuple[Report, ...]]]:
    """Every ok report as a centre with the reports that ``agrees`` with it, best first: most members,
    then the smallest centre hash (then worker). Independent of the order of ``reports``;
    ``agrees`` is asked once per pair, with the pair in a fixed order."""
    good = sorted((r for r in reports if r.ok), key=_key)
    close: dict[tuple[int, int], bool] = {}

    def pair(i: int, j: int) -> bool:
        if i == j:
            return True
        key = (min(i, j), max(i, j))
        if key not in close:
            close[key] = agrees(good[key[0]], good[key[1]])
        return close[key]

    groups = [(centre, tuple(good[j] for j in range(len(good)) if pair(i, j))) for i, centre in enumerate(good)]
    groups.sort(key=lambda g: (-len(g[1]), _key(g[0])))
    return groups


def group_reports(spec: Mapping[str, Any], reports: Sequence[Report],
                  payload: Mapping[str, Any] | None = None) -> list[tuple[Report, tuple[Report, ...]]]:
    """:func:`centred_groups` with agreement under ``spec`` (values compared unless the hashes decide)."""
    return centred_groups(reports, lambda x, y: agree(spec, x.value, y.value, payload, (x.result_hash, y.result_hash)))


def decide(spec: Mapping[str, Any], reports: Sequence[Report], quorum: int, outstanding: int = 0,
           payload: Mapping[str, Any] | None = None) -> Verdict:
    """The replicas' verdict: ``accept`` once the best group has ``quorum`` members and no replica
    is still out (a result that would disagree must be judged, not skipped), ``retry`` when no
    group can reach the quorum, else ``wait``. Pure: any order of the same reports, same verdict."""
    if quorum < 1:
        raise TaskError("quorum must be at least 1")
    check_spec(spec)
    groups = group_reports(spec, reports, payload)
    best = len(groups[0][1]) if groups else 0
    if best >= quorum and not outstanding:
        members = groups[0][1]
        accepted = min(r.result_hash for r in members)
        ids = {id(r) for r in members}
        losers = tuple(sorted((r for r in reports if id(r) not in ids), key=_key))
        return Verdict("accept", accepted, members, losers)
    if best + outstanding < quorum:
        return Verdict("retry", None, (), tuple(sorted((r for r in reports if not r.ok), key=_key)))
    return Verdict("wait", None, (), ())


__all__ = ["KINDS", "ML_BITS", "TRAIN_BITS", "Report", "Verdict", "agree", "centred_groups", "check_spec",
           "comparison_spec",
           "decide", "group_reports", "inference_close", "product_bound", "values_close"]
