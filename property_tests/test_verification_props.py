"""Properties of result comparison, checks and adaptive replication (issue 12 items 1-3):
results perturbed inside the bound agree; a liar beyond it never wins against an honest
quorum; the verdict does not depend on the order reports arrive in; Freivalds passes what
the comparison accepts and catches what lies beyond its row bound; trust decisions are pure."""

from __future__ import annotations

import hashlib

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger_net.compute.checks import freivalds
from ledger_net.compute.compare import Report, agree, decide, product_bound
from ledger_net.compute.trust import PPM, Standing, TrustPolicy, rate_ppm
from ledger_net.compute.trust import decide as trust_decide

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PRODUCT = {"kind": "product", "k": 2}


@st.composite
def products(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.random.Generator]:
    m, n, p = draw(st.integers(1, 6)), draw(st.integers(1, 40)), draw(st.integers(1, 6))
    g = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = 10.0 ** draw(st.integers(-8, 8))
    a = g.standard_normal((m, n)) * scale
    b = g.standard_normal((n, p)) * g.choice([1e-3, 1.0, 1e3])
    return a, b, a @ b, product_bound(a, b), g


def _honest(c: np.ndarray, bound: np.ndarray, g: np.random.Generator) -> np.ndarray:
    return c + g.uniform(-0.45, 0.45, c.shape) * bound


def _liar(c: np.ndarray, bound: np.ndarray, g: np.random.Generator, i: int) -> np.ndarray:
    out = c + g.uniform(-0.45, 0.45, c.shape) * bound
    row, col = int(g.integers(c.shape[0])), int(g.integers(c.shape[1]))
    out[row, col] = c[row, col] + (1.6 + i) * bound[row, col] * g.choice([-1.0, 1.0])
    return out


def _h(x: np.ndarray) -> str:
    return hashlib.sha256(x.tobytes()).hexdigest()


@SETTINGS
@given(products())
def test_results_perturbed_inside_the_bound_always_agree(case):
    a, b, c, bound, g = case
    x, y = _honest(c, bound, g), _honest(c, bound, g)
    assert agree(PRODUCT, {"rows": x}, {"rows": y}, {"a": a, "b": b})


@SETTINGS
@given(products(), st.integers(2, 4), st.data())
def test_a_liar_beyond_the_bound_never_wins_against_an_honest_quorum(case, honest_count, data):
    a, b, c, bound, g = case
    liars = data.draw(st.integers(0, honest_count - 1))
    collude = data.draw(st.booleans())
    reports = [Report(f"h{i}", "", {"rows": _honest(c, bound, g)}) for i in range(honest_count)]
    lie = _liar(c, bound, g, 0)
    reports += [Report(f"l{i}", "", {"rows": lie if collude else _liar(c, bound, g, i)}) for i in range(liars)]
    reports = [Report(r.worker, _h(r.value["rows"]), r.value) for r in reports]
    verdict = decide(PRODUCT, reports, quorum=honest_count, payload={"a": a, "b": b})
    assert verdict.decision == "accept"
    assert {r.worker for r in verdict.winners} == {f"h{i}" for i in range(honest_count)}
    assert verdict.accepted in {r.result_hash for r in reports if r.worker.startswith("h")}
    assert {r.worker for r in verdict.losers} == {f"l{i}" for i in range(liars)}


@SETTINGS
@given(products(), st.integers(1, 5), st.integers(0, 3), st.integers(1, 4), st.randoms(use_true_random=False))
def test_the_verdict_does_not_depend_on_the_order_of_reports(case, honest_count, liars, quorum, rnd):
    a, b, c, bound, g = case
    values = [_honest(c, bound, g) for _ in range(honest_count)] + [_liar(c, bound, g, i) for i in range(liars)]
    reports = [Report(f"w{i}", _h(v), {"rows": v}) for i, v in enumerate(values)]
    reports.append(Report("failed", "", None, ok=False))
    first = decide(PRODUCT, reports, quorum, payload={"a": a, "b": b})
    for _ in range(3):
        shuffled = list(reports)
        rnd.shuffle(shuffled)
        again = decide(PRODUCT, shuffled, quorum, payload={"a": a, "b": b})
        assert (again.decision, again.accepted) == (first.decision, first.accepted)
        assert {r.worker for r in again.winners} == {r.worker for r in first.winners}
        assert {r.worker for r in again.losers} == {r.worker for r in first.losers}


@SETTINGS
@given(products(), st.binary(min_size=32, max_size=32))
def test_freivalds_passes_what_comparison_accepts_and_catches_a_lie_beyond_its_row_bound(case, seed):
    a, b, c, bound, g = case
    assert freivalds(a, b, _honest(c, bound, g), seed, rounds=4).passed
    n, p = b.shape
    row = int(g.integers(c.shape[0]))
    # Freivalds' own bound for the row (see checks.freivalds), exceeded four times over.
    tol = 2 * (n + p + 2) * np.finfo(np.float64).eps * np.linalg.norm(a[row]) * np.sqrt(p) * np.linalg.norm(b)
    lie = c.copy()
    lie[row, int(g.integers(c.shape[1]))] += 4 * tol + 4 * np.abs(c[row]).max() * np.finfo(np.float64).eps
    outcome = freivalds(a, b, lie, seed, rounds=1)  # one nonzero error: every round sees it whole
    assert not outcome.passed and outcome.failed == [row]


@SETTINGS
@given(st.integers(0, 500), st.integers(0, 6), st.binary(min_size=32, max_size=32), st.booleans())
def test_trust_is_a_pure_function_with_a_floor(streak, lies, secret, checkable):
    policy = TrustPolicy()
    s = Standing(streak=streak, lies=lies, passes=streak)
    one, two = trust_decide(s, secret, checkable, policy), trust_decide(s, secret, checkable, policy)
    assert one == two
    assert policy.floor_ppm <= rate_ppm(s, policy) <= PPM
    assert rate_ppm(s.after(True), policy) <= rate_ppm(s, policy)
    assert rate_ppm(s.after(False), policy) == PPM
    if one.action == "trust":
        assert rate_ppm(s, policy) < PPM


def _freivalds_with_norms(a: np.ndarray, b: np.ndarray, c: np.ndarray, seed: bytes, rounds: int = 8,
                          k: int = 2) -> list[int]:
    """The rows Freivalds fails when every row's bound is computed from the norms (the reference
    the check's fast path must agree with)."""
    from ledger_net.compute.checks import sign_vectors
    from ledger_net.compute.compare import EPS, TINY

    n, p = b.shape
    r = sign_vectors(seed, p, rounds)
    diff = np.abs(c @ r - a @ (b @ r))
    tol = k * (n + p + 2) * EPS * np.sqrt(np.einsum("ij,ij->i", a, a) * (p * float(np.einsum("ij,ij->", b, b))))
    return [int(i) for i in np.nonzero((diff > (tol + n * TINY)[:, None]).any(axis=1))[0]]


@SETTINGS
@given(products(), st.floats(0.0, 40.0), st.booleans(), st.binary(min_size=4, max_size=4))
def test_freivalds_fast_path_fails_exactly_the_rows_the_norms_fail(
        case: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.random.Generator], size: float,
        cancel: bool, seed: bytes) -> None:
    """Rows within half the bound taken at max |A (B r)| are passed without the operands' norms:
    whatever the perturbation (inside, near or far beyond the row bound) and even when the product
    cancels (so that the fast path cannot decide), the failed rows are those of the full bound."""
    a, b, c, _, g = case
    if cancel:  # columns that cancel: A (B r) near 0 while |A| |B| |r| is not
        b = np.concatenate([b, -b], axis=1)
        c = a @ b
    n, p = b.shape
    row_bound = 2 * (n + p + 2) * np.finfo(np.float64).eps * np.sqrt(
        np.einsum("ij,ij->i", a, a) * p * float(np.einsum("ij,ij->", b, b)))
    lied = c.copy()
    i, j = int(g.integers(c.shape[0])), int(g.integers(c.shape[1]))
    lied[i, j] += size * row_bound[i] / 8 * g.choice([-1.0, 1.0])
    outcome = freivalds(a, b, lied, seed)
    assert outcome.failed == _freivalds_with_norms(a, b, lied, seed)
    assert outcome.passed == (not outcome.failed)
