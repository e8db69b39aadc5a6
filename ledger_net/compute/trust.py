"""Adaptive replication: how much to verify a worker's next result, from its verified history.

BOINC's adaptive replication, decided on the signed log. A worker's *standing* is derived
from the verdicts about it, in log order: each verified result either passed (a check or a
quorum confirmed it) or was caught as a lie. Results that were trusted unverified say nothing
and do not count. From the standing:

* on probation (fewer than ``probation`` passes since its last caught lie, or ever) every
  result is verified: checked where the task type has a check, else replicated;
* after that it is verified with probability ``rate = 2^-(excess // half_life)``, ``excess``
  being the passes beyond probation, never below ``floor_ppm`` (5% by default);
* one caught lie resets the streak to zero, and each caught lie doubles the probation (up to
  ``2^max_lie_doublings`` times), so a worker that lies now and then spends its life checked.

The coin is :func:`checks.draw_u64` of the assignment's committed secret, revealed with the
verdict, so the decision is a pure function of events: an auditor recomputes the standing from
the earlier verdicts, the rate from the standing and the coin from the secret. The worker cannot
know, when it reports, whether it will be verified. Rates are integers (parts per million):
nothing here puts a float into a signed event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..errors import TaskError
from .checks import draw_u64

PPM = 1_000_000
REPLICATE, CHECK, TRUST = "replicate", "check", "trust"
ACTIONS = (REPLICATE, CHECK, TRUST)


@dataclass(frozen=True)
class TrustPolicy:
    # Tuned with bench/verification_bench.py (the real owner policy, 100 workers, 15% liars): 10/10
    # met the work goal of replication at 1.24x with 0.09-0.10% wrong accepted; 20/5 keeps the
    # occasional liar under full verification longer (0.95^20: 36% pass it unseen, against 60%)
    # and then trusts faster, 1.21x with 0.06%.
    probation: int = 20
    half_life: int = 5
    floor_ppm: int = 50_000
    max_lie_doublings: int = 4

    def __post_init__(self) -> None:
        if self.probation < 1 or self.half_life < 1 or not 0 < self.floor_ppm <= PPM or self.max_lie_doublings < 0:
            raise TaskError("trust policy: probation and half_life >= 1, floor_ppm in 1..1000000, "
                            "max_lie_doublings >= 0")


DEFAULT_POLICY = TrustPolicy()


@dataclass(frozen=True)
class Standing:
    """What the verdicts say about one worker: passes since its last caught lie, lies caught, passes."""

    streak: int = 0
    lies: int = 0
    passes: int = 0

    def after(self, passed: bool) -> Standing:
        """The standing after one more verified result."""
        if passed:
            return Standing(self.streak + 1, self.lies, self.passes + 1)
        return Standing(0, self.lies + 1, self.passes)


def standing(history: Iterable[bool]) -> Standing:
    """The standing from verified outcomes in log order (True: passed, False: caught lying)."""
    s = Standing()
    for passed in history:
        s = s.after(passed)
    return s


def probation_for(s: Standing, policy: TrustPolicy = DEFAULT_POLICY) -> int:
    return policy.probation << min(s.lies, policy.max_lie_doublings)


def rate_ppm(s: Standing, policy: TrustPolicy = DEFAULT_POLICY) -> int:
    """The probability (ppm) that the worker's next result is verified."""
    excess = s.streak - probation_for(s, policy)
    if excess < 0:
        return PPM
    return max(policy.floor_ppm, PPM >> min(40, excess // policy.half_life))


def caught(s: Standing | None) -> bool:
    """Was the last result of this worker that was verified a lie? Such a worker gets chunks only
    when no one else bids: each chunk it is given costs a wasted run and a re-run, and the streak
    it would need to regain trust starts from zero, so it is in effect shut out while honest
    workers bid (bench/verification_bench.py: without this, replication's work was 1.49x)."""
    return s is not None and s.lies > 0 and s.streak == 0


def least_sure(workers: Iterable[str], standings: Mapping[str, Standing],
               policy: TrustPolicy = DEFAULT_POLICY) -> set[str]:
    """The workers verified most often (rate at or above the median): where a replica should go.
    A replica verifies its own worker as much as the first one, so sending it where the policy is
    least sure gets newcomers through probation sooner and catches a worker that lies now and then
    as a replica too, at no extra cost (the router still chooses among them by price and load)."""
    rates = {w: rate_ppm(standings.get(w, Standing()), policy) for w in workers}
    if len(rates) < 2:
        return set(rates)
    median = sorted(rates.values())[len(rates) // 2]
    return {w for w, r in rates.items() if r >= median}


@dataclass(frozen=True)
class Decision:
    action: str  # replicate | check | trust
    rate_ppm: int
    streak: int
    lies: int

    def record(self) -> dict[str, object]:
        """What the verdict carries, so an auditor sees why the result was (or was not) verified."""
        return {"action": self.action, "rate_ppm": self.rate_ppm, "streak": self.streak, "lies": self.lies}


def decide(s: Standing, secret: bytes, checkable: bool, policy: TrustPolicy = DEFAULT_POLICY) -> Decision:
    """Replicate, check or trust one result of a worker with standing ``s``; the coin comes from the
    assignment's committed secret (``secret``), revealed in the verdict."""
    rate = rate_ppm(s, policy)
    verify = rate >= PPM or draw_u64(secret, "trust") < (rate << 64) // PPM
    action = (CHECK if checkable else REPLICATE) if verify else TRUST
    return Decision(action, rate, s.streak, s.lies)


__all__ = ["ACTIONS", "CHECK", "DEFAULT_POLICY", "PPM", "REPLICATE", "TRUST", "Decision", "Standing", "TrustPolicy",
           "caught", "decide", "least_sure", "probation_for", "rate_ppm", "standing"]
