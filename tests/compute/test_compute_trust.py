"""Adaptive replication (compute/trust.py): probation, a falling rate with a floor, lies reset."""

from __future__ import annotations

import hashlib

import pytest

from ledger_net.compute.trust import (
    CHECK,
    PPM,
    REPLICATE,
    TRUST,
    Standing,
    TrustPolicy,
    decide,
    probation_for,
    rate_ppm,
    standing,
)
from ledger_net.errors import TaskError

POLICY = TrustPolicy(probation=10, half_life=10, floor_ppm=50_000, max_lie_doublings=4)


def _secrets(n: int) -> list[bytes]:
    return [hashlib.sha256(f"secret {i}".encode()).digest() for i in range(n)]


def test_a_worker_on_probation_is_verified_every_time():
    for s in (Standing(), standing([True] * 9), standing([True] * 50 + [False] + [True] * 19)):
        for secret in _secrets(200):
            assert decide(s, secret, True, POLICY).action == CHECK
            assert decide(s, secret, False, POLICY).action == REPLICATE


def test_the_rate_falls_with_passes_and_stops_at_the_floor():
    rates = [rate_ppm(Standing(streak=n), POLICY) for n in range(0, 400)]
    assert rates[:20] == [PPM] * 20 and rates[20] == PPM // 2 and rates[30] == PPM // 4
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False))
    assert min(rates) == rates[-1] == 50_000


def test_one_caught_lie_resets_and_each_lie_doubles_the_probation():
    trusted = standing([True] * 200)
    assert rate_ppm(trusted, POLICY) == 50_000
    caught = trusted.after(False)
    assert caught == Standing(streak=0, lies=1, passes=200) and rate_ppm(caught, POLICY) == PPM
    assert probation_for(caught, POLICY) == 20
    assert rate_ppm(standing([True] * 200 + [False] + [True] * 19), POLICY) == PPM
    assert rate_ppm(standing([True] * 200 + [False] + [True] * 20), POLICY) == PPM
    assert rate_ppm(standing([True] * 200 + [False] + [True] * 30), POLICY) == PPM // 2
    many = standing([False] * 9)
    assert probation_for(many, POLICY) == 10 << 4  # capped doublings


def test_at_the_floor_about_one_result_in_twenty_is_verified_and_the_coin_is_the_secret():
    s = standing([True] * 500)
    actions = [decide(s, secret, True, POLICY).action for secret in _secrets(4000)]
    share = actions.count(CHECK) / len(actions)
    assert 0.035 < share < 0.065 and set(actions) == {CHECK, TRUST}
    assert actions == [decide(s, secret, True, POLICY).action for secret in _secrets(4000)]  # a pure function
    record = decide(s, _secrets(1)[0], True, POLICY).record()
    assert record["rate_ppm"] == 50_000 and record["streak"] == 500 and record["lies"] == 0
    assert all(isinstance(v, (str, int)) for v in record.values())


def test_policy_bounds_are_checked():
    for bad in ({"probation": 0}, {"half_life": 0}, {"floor_ppm": 0}, {"floor_ppm": PPM + 1}):
        with pytest.raises(TaskError):
            TrustPolicy(**bad)
