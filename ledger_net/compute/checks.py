"""Checks instead of replication: the owner verifies one reported chunk result itself, cheaply.

* ``matrix_ops`` multiply: Freivalds' test. For k random sign vectors ``r`` (entries +-1),
  compare ``C r`` with ``A (B r)``: O(k n^2) instead of O(n^3). Floats pass within
  ``2 (n + p + 2) eps ||a_i|| sqrt(p) ||B||_F + n tiny`` per row, an upper bound of
  ``2 (n + p + 2) eps (|A| (|B| |r|))_i`` that needs no copy of A or B (|r| = 1; see docs/tasks.md
  for the derivation); integer products are checked exactly modulo a random
  prime. An error ``e`` in a row passes one round with probability <= 1/2 when some
  ``|e_j|`` exceeds the row's bound (flipping ``r_j`` moves ``e . r`` by ``2 e_j``), so k rounds
  miss it with probability <= 2^-k.
* ``range_reduce``: every reduction but ``product`` has a closed form (compute/ranges.py), so the
  check recomputes the chunk's partial in O(1) and compares it exactly; a ``product`` is checked
  modulo a random 61-bit prime (n small multiplications instead of a big-int product tree).
* ``map``: recompute ``samples`` random elements. ``ml_inference``: recompute ``samples`` random rows.

The randomness: the owner commits, in each assignment, to a secret it keeps
(:func:`assignment_secret`, :func:`commitment`); the check's seed is
``sha256(tag | secret | result hash)`` (:func:`check_seed`), so the worker cannot predict the
vectors or samples when it reports, and the owner cannot choose them after seeing the result.
The verdict reveals the secret and carries :meth:`CheckOutcome.record` (integers, strings and
booleans only): an auditor checks the secret against the commitment and re-runs the check.

One module, over 400 lines, because the three checks share that seed, commitment and record
format: an auditor re-running any check reads one file.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import TaskError
from .compare import EPS, TINY, comparison_spec, inference_close, values_close
from .matrices import matrix_name
from .ml import decode_inputs, infer, load_model
from .numbers import decode_exact
from .operations import map_element
from .ranges import range_partial
from .reductions import reduce_name

MODES = ("quorum", "check", "none")
DEFAULT_ROUNDS = 8  # Freivalds: a lie beyond the bound passes with probability <= 2^-8
DEFAULT_SAMPLES = 8  # map elements / inference rows recomputed
MAX_ROUNDS = 64
MAX_SAMPLES = 1024
FREIVALDS_K = 2
_SECRET_TAG = b"ledger_net/check-secret/v1\x00"
_COMMIT_TAG = b"ledger_net/check-commit/v1\x00"
_SEED_TAG = b"ledger_net/check-seed/v1\x00"


# ---- randomness the worker cannot predict ---------------------------------------------

def assignment_secret(owner_seed: bytes, assignment: str) -> bytes:
    """The owner's secret for one assignment: HMAC of a key only the owner holds."""
    return hmac.new(owner_seed, _SECRET_TAG + assignment.encode(), hashlib.sha256).digest()


def commitment(secret: bytes) -> str:
    """What the assignment event carries: the secret stays hidden until the verdict."""
    return hashlib.sha256(_COMMIT_TAG + secret).hexdigest()


def verify_reveal(commit: str, secret_hex: str) -> bool:
    """An auditor's test that the verdict's revealed secret is the one committed to."""
    try:
        secret = bytes.fromhex(secret_hex)
    except ValueError:
        return False
    return hmac.compare_digest(commitment(secret), commit)


def check_seed(secret: bytes, result_hash: str) -> bytes:
    """The seed of one check: fixed by the committed secret and the reported result."""
    return hashlib.sha256(_SEED_TAG + secret + result_hash.encode()).digest()


def draw_u64(seed: bytes, label: str) -> int:
    """A uniform 64-bit integer derived from ``seed`` for one named purpose."""
    return int.from_bytes(hashlib.sha256(seed + b"\x00" + label.encode()).digest()[:8], "big")


def sample_indices(seed: bytes, n: int, k: int, label: str = "sample") -> list[int]:
    """``min(k, n)`` distinct indices in ``range(n)``, sorted; a partial Fisher-Yates shuffle whose
    draws are hashes of the seed (the bias of ``% (n - i)`` is below 2^-40 for n < 2^24)."""
    k = min(k, n)
    chosen: dict[int, int] = {}
    out = []
    for i in range(k):
        j = i + draw_u64(seed, f"{label}/{i}") % (n - i)
        out.append(chosen.get(j, j))
        chosen[j] = chosen.get(i, i)
    return sorted(out)


def sign_vectors(seed: bytes, rows: int, k: int) -> np.ndarray:
    """A (rows, k) float64 matrix of +-1 from SHAKE-256 of the seed (version-independent, unlike
    numpy's generators: an auditor years later draws the same vectors)."""
    bits = np.unpackbits(np.frombuffer(hashlib.shake_256(_SEED_TAG + seed).digest((rows * k + 7) // 8),
                                       dtype=np.uint8))[: rows * k]
    return (1.0 - 2.0 * bits.astype(np.float64)).reshape(rows, k)


def _is_probable_prime(n: int) -> bool:
    if n < 2:
        return False
    small = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)
    for p in small:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in small:  # deterministic for n < 3.3e24
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def random_prime(seed: bytes, bits: int, label: str = "prime") -> int:
    """The first prime at or above a random odd ``bits``-bit number drawn from the seed."""
    if not 8 <= bits <= 62:
        raise TaskError("a check's prime has 8 to 62 bits")
    n = (draw_u64(seed, label) >> (64 - bits)) | (1 << (bits - 1)) | 1
    while not _is_probable_prime(n):
        n += 2
    return n


# ---- the outcome ------------------------------------------------------------------------

@dataclass
class CheckOutcome:
    """What a check did and found; :meth:`record` is what the verdict event carries."""

    method: str
    passed: bool
    rounds: int = 0
    samples: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)  # rows / elements / sample positions that failed
    modulus: int | None = None
    reason: str = ""

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "passed": self.passed}
        if self.rounds:
            out["rounds"] = self.rounds
        if self.samples:
            out["samples"] = list(self.samples)
        if self.failed:
            out["failed"] = list(self.failed[:16])
        if self.modulus is not None:
            out["modulus"] = str(self.modulus)
        if self.reason:
            out["reason"] = self.reason[:200]
        return out


# ---- Freivalds ----------------------------------------------------------------------------

def _all_int_array(m: Any) -> bool:
    arr = np.asarray(m) if not isinstance(m, np.ndarray) else m
    return arr.dtype.kind in "biu" or (arr.dtype == object and all(isinstance(x, int) for x in arr.reshape(-1)))


def _mod_array(m: Any, q: int) -> np.ndarray:
    arr = np.asarray(m)
    if arr.dtype.kind in "biu":
        return np.mod(arr.astype(np.int64), q)
    return np.array([[int(x) % q for x in row] for row in m], dtype=np.int64)


def freivalds(a: Any, b: Any, c: Any, seed: bytes, rounds: int = DEFAULT_ROUNDS, k: int = FREIVALDS_K) -> CheckOutcome:
    """Freivalds' test of ``c == a @ b`` with ``rounds`` sign vectors drawn from ``seed``."""
    if not 1 <= rounds <= MAX_ROUNDS:
        raise TaskError(f"Freivalds rounds must be 1..{MAX_ROUNDS}")
    A0, B0 = np.asarray(a), np.asarray(b)  # once: wire operands arrive as lists
    exact = _all_int_array(A0) and _all_int_array(B0)
    if A0.ndim != 2 or B0.ndim != 2 or A0.shape[1] != B0.shape[0]:
        raise TaskError("Freivalds: operands are not conformable matrices")
    m, n, p = A0.shape[0], A0.shape[1], B0.shape[1]
    try:
        C0 = np.asarray(c, dtype=object if exact else np.float64)
    except (TypeError, ValueError):
        return CheckOutcome("freivalds", False, rounds, reason="the result is not a matrix of numbers")
    if C0.shape != (m, p):
        return CheckOutcome("freivalds", False, rounds, reason=f"the result has shape {C0.shape}, not {(m, p)}")
    r = sign_vectors(seed, p, rounds)
    if exact:
        return _freivalds_mod(a, b, c, seed, r, rounds, n)
    A = A0.astype(np.float64, copy=False)  # no copy when the operands already are float64 arrays
    B = B0.astype(np.float64, copy=False)
    lhs, _ = _product_and_squares(C0, r, squares=False)
    if not np.isfinite(lhs).all():  # a NaN or infinity in C reaches C r (no sum of +-inf is finite)
        return CheckOutcome("freivalds", False, rounds, reason="the result holds NaN or infinity")
    br, _ = _product_and_squares(B, r, squares=False)
    rhs, _ = _product_and_squares(A, br, squares=False)
    diff = np.abs(lhs - rhs)
    # The row's bound is k (n+p+2) eps (|A| (|B| |r|))_i, itself bounded without an |A| or |B| copy by
    # Cauchy-Schwarz: |a_i| . v <= ||a_i|| ||v||, and ||(|B| 1)|| <= sqrt(p) ||B||_F (|r| = 1). Every
    # |(A (B r))_ij| is at most (|A| (|B| |r|))_i, so half the bound taken at max_j |rhs_ij| is below
    # it: a row within that passes as it would with the norms, which are then read only for the rows
    # left (none, for an honest product of well-scaled operands: two passes fewer).
    low = 0.5 * k * (n + p + 2) * EPS * np.abs(rhs).max(axis=1) + n * TINY
    unsure = np.nonzero((diff > low[:, None]).any(axis=1))[0]
    if not len(unsure):
        return CheckOutcome("freivalds", True, rounds)
    b_sq = float(np.einsum("ij,ij->", B, B))
    a_sq = np.einsum("ij,ij->i", A[unsure], A[unsure])
    tol = k * (n + p + 2) * EPS * np.sqrt(a_sq * (p * b_sq)) + n * TINY
    bad = unsure[(diff[unsure] > tol[:, None]).any(axis=1)]
    return CheckOutcome("freivalds", not len(bad), rounds, failed=[int(i) for i in bad])


_BLOCK_BYTES = 256 * 1024  # a row block that stays in L2 between its product and its squares
# OpenBLAS runs a gemm of m*n*k below 65536 * 4 (SMP_THRESHOLD_MIN * GEMM_MULTITHREAD_THRESHOLD) on one
# thread. Above it, a thin product of 2048^2 operands on two busy cores took 64 ms to 780 ms (median of
# 24) instead of 31 ms: its threads wait for each other and for the core someone else holds.
_ONE_THREAD_WORK = 65536 * 4


def _product_and_squares(m: np.ndarray, v: np.ndarray, squares: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``m @ v`` and (``squares``) the squared norm of each row of ``m``, in one pass over ``m``.

    The check is bound by memory, not arithmetic: reading each operand once instead of twice
    (a product, then the norms) is most of its cost. Row blocks small enough to stay in cache
    are multiplied and then squared while still there. A product this thin gains nothing from
    BLAS threads (they contend for the same memory, and wait for a busy core), and blocks this
    small run on one. Measured on 2 shared cores (load 9), 2048^2 operands, best and median of 24
    against one pass per product and per norm: 30.7 / 64.5 ms against 50.0 / 72.4 ms with the
    default two BLAS threads, 28.5 / 45.5 against 34.7 / 45.8 with one."""
    rows, cols = m.shape
    step = max(1, min(_BLOCK_BYTES // max(1, cols * m.itemsize), (_ONE_THREAD_WORK - 1) // max(1, cols * v.shape[1])))
    v = np.asfortranarray(v)  # each of the k vectors contiguous: OpenBLAS's thin gemm runs about twice as fast
    out = np.empty((rows, v.shape[1]))
    norms = np.empty(rows if squares else 0)
    for s in range(0, rows, step):
        block = m[s:s + step]
        np.matmul(block, v, out=out[s:s + step])
        if squares:
            np.einsum("ij,ij->i", block, block, out=norms[s:s + step])
    return out, norms


def _freivalds_mod(a: Any, b: Any, c: Any, seed: bytes, r: np.ndarray, rounds: int, n: int) -> CheckOutcome:
    # Every product and n-term sum stays below 2^63: q^2 * (n + 1) < 2^62.
    bits = max(8, min(31, (62 - max(1, (n + 1).bit_length())) // 2))
    q = random_prime(seed, bits, "freivalds-modulus")
    A, B, C = _mod_array(a, q), _mod_array(b, q), _mod_array(c, q)
    R = np.mod(r.astype(np.int64), q)
    rhs = np.mod(A @ np.mod(B @ R, q), q)
    lhs = np.mod(C @ R, q)
    bad = np.nonzero((lhs != rhs).any(axis=1))[0]
    return CheckOutcome("freivalds", not len(bad), rounds, failed=[int(i) for i in bad], modulus=q)


# ---- samples ------------------------------------------------------------------------------

def check_map(payload: Mapping[str, Any], result: Any, seed: bytes, samples: int = DEFAULT_SAMPLES) -> CheckOutcome:
    """Recompute ``samples`` random elements of a map chunk and compare within the map's bound."""
    data = list(payload.get("data") or [])
    operation = str(payload.get("operation"))
    if not isinstance(result, (list, tuple)) or len(result) != len(data):
        return CheckOutcome("sample", False, reason=f"the result has {len(result) if isinstance(result, list) else '?'}"
                            f" elements for {len(data)} inputs")
    rel = 2.0 ** -int(comparison_spec("map", {})["bits"])
    idx = sample_indices(seed, len(data), samples)
    failed = []
    for i in idx:
        try:
            want = map_element(operation, data[i], f"data[{i}]")
        except TaskError:
            continue  # the owner's recomputation fails too: the worker could not do better
        if not values_close(want, result[i], rel):
            failed.append(i)
    return CheckOutcome("sample", not failed, samples=idx, failed=failed)


def check_inference(payload: Mapping[str, Any], result: Any, seed: bytes, samples: int = DEFAULT_SAMPLES,
                    blobs: Mapping[str, Any] | None = None, bits: int | None = None) -> CheckOutcome:
    """Recompute ``samples`` random rows of an inference chunk and compare within the model's bound."""
    model = load_model(payload.get("model") or {}, blobs)
    x = decode_inputs(payload.get("input_data"))
    if not isinstance(result, Mapping) or len(result.get("predictions") or []) != x.shape[0]:
        return CheckOutcome("sample", False, reason=f"the result does not predict {x.shape[0]} rows")
    if bits is None:
        bits = int(comparison_spec("ml_inference", {"weights": {"W": 1}} if len(model.weights) == 1 else {})["bits"])
    idx = sample_indices(seed, x.shape[0], samples)
    want = infer(model, x[idx], bool(payload.get("return_probabilities", True)))
    failed = []
    for pos, i in enumerate(idx):
        mine = {key: (None if v is None else [v[pos]]) for key, v in want.items()}
        theirs = {key: (None if v is None else [_at(v, i)]) for key, v in result.items()}
        if not inference_close(mine, theirs, bits):
            failed.append(i)
    return CheckOutcome("sample", not failed, samples=idx, failed=failed)


def _at(values: Any, i: int) -> Any:
    try:
        return values[i]
    except (IndexError, TypeError, KeyError):
        return None


def check_range(payload: Mapping[str, Any], result: Any, seed: bytes) -> CheckOutcome:
    """A range_reduce chunk: closed forms are recomputed in O(1); a product is checked modulo a prime."""
    op = reduce_name(payload.get("operation"))
    start, end = payload.get("start"), payload.get("end")
    if op != "product":
        partial = range_partial(op, start, end)  # type: ignore[arg-type]  # checked by range_partial
        return CheckOutcome("recompute", values_close(partial, result, 0.0, 0.0))
    assert isinstance(start, int) and isinstance(end, int)
    q = random_prime(seed, 61, "range-modulus")
    try:
        part = result["parts"][0]
        value = decode_exact(part["p"])
        ok_shape = result.get("op") == "product" and part.get("n") == end - start + 1 and value.denominator == 1
    except (KeyError, IndexError, TypeError, ValueError, TaskError, ZeroDivisionError):
        return CheckOutcome("modular", False, modulus=q, reason="the result is not a product's partial")
    want = 1
    for i in range(start, end + 1):
        want = want * (i % q) % q
    return CheckOutcome("modular", bool(ok_shape) and value.numerator % q == want, modulus=q)


# ---- per task ------------------------------------------------------------------------------

def checkable(task_type: str, config: Mapping[str, Any]) -> bool:
    """Whether this task's chunks have a check cheaper than running them again."""
    if task_type in ("range_reduce", "map", "ml_inference"):
        return True
    if task_type == "matrix_ops":
        try:
            return matrix_name(config.get("operation")) == "multiply"
        except TaskError:
            return False
    return False


def verification_spec(task_type: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """The task's ``verification`` config, with its defaults: ``check`` where a check exists,
    else ``quorum``; ``none`` only when asked. ``quorum`` asked for by name is marked ``adaptive``:
    a task of one replica then gets a second one when the trust policy says so (left out, one
    replica stays one: a ``code`` task's output need not be reproducible). A string is the mode
    alone; a dict may also set ``rounds`` (Freivalds) and ``samples`` (map elements, inference rows)."""
    raw = config.get("verification")
    spec: dict[str, Any] = {"mode": raw} if isinstance(raw, str) else dict(raw or {})
    mode = spec.get("mode") or ("check" if checkable(task_type, config) else "quorum")
    if mode not in MODES:
        raise TaskError(f"verification mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "check" and not checkable(task_type, config):
        raise TaskError(f"{task_type} has no check cheaper than replication: use verification 'quorum' or 'none'")
    out: dict[str, Any] = {"mode": mode}
    if mode == "quorum" and spec.get("mode"):
        out["adaptive"] = True  # asked for by name: with replicas 1, replicate as the trust policy says
    if mode == "check":
        for key, default, top in (("rounds", DEFAULT_ROUNDS, MAX_ROUNDS), ("samples", DEFAULT_SAMPLES, MAX_SAMPLES)):
            value = spec.get(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
                raise TaskError(f"verification {key} must be an integer in 1..{top}, got {value!r}")
            out[key] = value
    unknown = set(spec) - {"mode", "rounds", "samples"}
    if unknown:
        raise TaskError(f"unknown verification keys: {', '.join(sorted(unknown))}")
    return out


def check_chunk(task_type: str, payload: Mapping[str, Any], result: Any, seed: bytes,
                verification: Mapping[str, Any] | None = None, blobs: Mapping[str, Any] | None = None) -> CheckOutcome:
    """Run the check of one chunk (payload and result unpacked) with the seed of :func:`check_seed`."""
    v = dict(verification or {})
    rounds, samples = int(v.get("rounds", DEFAULT_ROUNDS)), int(v.get("samples", DEFAULT_SAMPLES))
    if task_type == "matrix_ops" and matrix_name(payload.get("operation")) == "multiply":
        rows = result.get("rows") if isinstance(result, Mapping) else None
        if rows is None:
            return CheckOutcome("freivalds", False, rounds, reason="the result has no rows")
        return freivalds(payload["a"], payload["b"], rows, seed, rounds)
    if task_type == "range_reduce":
        return check_range(payload, result, seed)
    if task_type == "map":
        return check_map(payload, result, seed, samples)
    if task_type == "ml_inference":
        return check_inference(payload, result, seed, samples, blobs)
    raise TaskError(f"{task_type} chunks have no check; they are verified by quorum")


def rerun_check(outcome: Mapping[str, Any], task_type: str, payload: Mapping[str, Any], result: Any,
                secret_hex: str, result_hash: str, verification: Mapping[str, Any] | None = None,
                blobs: Mapping[str, Any] | None = None) -> bool:
    """An auditor's re-run: the same secret and result give the same record, or the verdict lied."""
    seed = check_seed(bytes.fromhex(secret_hex), result_hash)
    return check_chunk(task_type, payload, result, seed, verification, blobs).record() == dict(outcome)


__all__ = ["MODES", "CheckOutcome", "assignment_secret", "check_chunk", "check_inference", "check_map",
           "check_range", "check_seed", "checkable", "commitment", "draw_u64", "freivalds", "random_prime",
           "rerun_check", "sample_indices", "sign_vectors", "verification_spec", "verify_reveal"]

