"""The seed's `Reputation`: a node's standing, folded from signed feedback events.

Standalone, a `Reputation` owns a private network: a rater key (the genesis
issuer, whose attestations count without a paid task) rates a subject key, and
the constructor's constants go into the genesis so the fold is reproducible.
Bound to a node, it reads the network's reputation projection for `subject`.
Scores are integers (ppm) in the ledger and floats in [0, 1] here; the level
names and the formula are in `ledger_net.projections.reputation`.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any

from ..errors import LedgerError, NodeError
from ..ledger.chain import Ledger, RuleViolation
from ..ledger.events import Event
from ..ledger.identity import Identity
from ..projections.reputation import PPM, Feedback, ReputationParams, level_of, next_score
from ..projections.rows import SubjectRow
from ..projections.runner import ProjectionRunner
from .private_ledger import private_network

MAX_UNITS = 100  # one call adds at most this many full-weight feedback events


def _ppm(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise NodeError(f"{what} must be a finite number")
    if not 0.0 <= value <= 1.0:
        raise NodeError(f"{what} must lie in [0, 1], got {value}")
    return round(value * PPM)


class Reputation:
    """Score, level and analytics of one subject's reputation."""

    def __init__(self, initial_score: float = 0.5, decay_rate: float = 0.01, reward_multiplier: float = 1.2,
                 penalty_multiplier: float = 1.5, *, ledger: Ledger | None = None,
                 runner: ProjectionRunner | None = None, subject: str | None = None) -> None:
        for name, value, hi in (("reward_multiplier", reward_multiplier, 10.0),
                                ("penalty_multiplier", penalty_multiplier, 10.0)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= hi:
                raise NodeError(f"{name} must be a number in [0, {hi}]")
        self.params = ReputationParams(initial_ppm=_ppm(initial_score, "initial_score"),
                                       decay_ppm=_ppm(decay_rate, "decay_rate"),
                                       reward_ppm=round(reward_multiplier * PPM),
                                       penalty_ppm=round(penalty_multiplier * PPM))
        if ledger is None:
            ledger, runner = private_network("reputation", params={"reputation": self.params.as_params()})
            subject_id = Identity.generate()
            joined = Event.create(subject_id, net=ledger.net or "", seq=1, prev=None, type="node.joined",
                                  body={"name": "subject"})
            ledger.ingest([joined])
            subject = subject_id.node_id
        elif runner is None or subject is None:
            raise NodeError("a node-bound Reputation needs its runner and subject")
        else:
            self.params = runner.reputation.params or ReputationParams.from_genesis(runner.context().params)
        self.ledger, self.runner, self.subject = ledger, runner, subject

    # ---------------------------------------------------------------- reading
    def _row(self) -> SubjectRow:
        row = self.runner.reputation.subjects.get(self.subject)
        return row or SubjectRow(score_ppm=self.params.initial_ppm, positive=0, negative=0, quality_sum_ppm=0,
                                 feedback_count=0, forked=False)

    def _feedback(self) -> list[Feedback]:
        return list(self.runner.reputation.feedback.get(self.subject, []))

    def get_score(self) -> float:
        return self._row()["score_ppm"] / PPM

    def get_level(self) -> str:
        return level_of(self._row()["score_ppm"])

    # ---------------------------------------------------------------- writing
    def _rate(self, positive: bool, quality_ppm: int, weight_ppm: int, reason: str) -> None:
        body = {"subject": self.subject, "positive": positive, "quality_ppm": quality_ppm,
                "weight_ppm": weight_ppm, "reason": reason}
        try:
            self.ledger.append("reputation.feedback", body)
        except RuleViolation as exc:
            raise NodeError(f"feedback refused: {exc}") from None
        except LedgerError as exc:
            raise NodeError(f"the ledger refused the feedback: {exc}") from None

    def update_score(self, success: bool, quality: float = 1.0) -> None:
        """Record the outcome of one task: success or failure, with its quality in [0, 1]."""
        if not isinstance(success, bool):
            raise NodeError("success must be True or False")
        self._rate(success, _ppm(quality, "quality"), PPM, "task outcome")

    def _feedback_units(self, amount: Any) -> list[int]:
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not math.isfinite(amount) \
                or amount <= 0 or amount > MAX_UNITS:
            raise NodeError(f"feedback amount must be a number in (0, {MAX_UNITS}]")
        whole, rest = int(amount), amount - int(amount)
        weights = [PPM] * whole + ([round(rest * PPM)] if round(rest * PPM) else [])
        return weights

    def add_positive_feedback(self, amount: float = 1.0) -> None:
        """Positive feedback of weight `amount` (each whole unit is one full-weight event)."""
        for weight in self._feedback_units(amount):
            self._rate(True, PPM, weight, "positive feedback")

    def add_negative_feedback(self, amount: float = 1.0) -> None:
        for weight in self._feedback_units(amount):
            self._rate(False, 0, weight, "negative feedback")

    # ---------------------------------------------------------------- metrics
    def calculate_success_rate(self) -> float:
        """Share of positive feedback (0.0 before any feedback)."""
        row = self._row()
        total = row["positive"] + row["negative"]
        return row["positive"] / total if total else 0.0

    def calculate_quality_score(self) -> float:
        """Mean quality of all feedback (0.0 before any feedback)."""
        row = self._row()
        return row["quality_sum_ppm"] / row["feedback_count"] / PPM if row["feedback_count"] else 0.0

    def calculate_consistency(self) -> float:
        """1 − the spread (population std dev) of feedback quality: 1.0 is perfectly steady."""
        qualities = [f.quality_ppm / PPM for f in self._feedback()]
        if len(qualities) < 2:
            return 1.0
        return max(0.0, 1.0 - statistics.pstdev(qualities))

    def get_metrics(self) -> dict[str, float]:
        """Every value a float, as the seed's signature says; the level's name is get_level()."""
        row = self._row()
        return {"score": self.get_score(), "success_rate": self.calculate_success_rate(),
                "quality_score": self.calculate_quality_score(), "consistency": self.calculate_consistency(),
                "total_feedback": float(row["feedback_count"]), "positive": float(row["positive"]),
                "negative": float(row["negative"]), "forked": 1.0 if row["forked"] else 0.0}

    def get_reputation_trend(self, days: int = 30) -> dict[str, Any]:
        """Score over the last `days` of the raters' clocks (informative)."""
        if not isinstance(days, int) or isinstance(days, bool) or days <= 0:
            raise NodeError("days must be a positive integer")
        items = self._feedback()
        scores = self.runner.reputation.fold_scores(items) if items else []
        since = (time.time() - days * 86400) * 1000
        points = [(f.ts / 1000.0, s / PPM) for f, s in zip(items, scores, strict=False) if f.ts >= since]
        before = [s for f, s in zip(items, scores, strict=False) if f.ts < since]
        start = (before[-1] if before else self.params.initial_ppm) / PPM
        end = self.get_score()
        change = end - start
        direction = "rising" if change > 1e-6 else "falling" if change < -1e-6 else "stable"
        return {"days": days, "start_score": start, "end_score": end, "change": change, "direction": direction,
                "samples": len(points), "points": points}

    def predict_reputation_score(self, actions: list[dict[str, Any]]) -> float:
        """The score after hypothetical `actions`, without recording anything.

        An action is {"success": bool, "quality": float} (an `update_score`) or
        {"type": "positive"|"negative", "amount": float} (a feedback)."""
        if not isinstance(actions, list):
            raise NodeError("actions must be a list of dicts")
        score = self._row()["score_ppm"]
        for action in actions:
            if not isinstance(action, dict):
                raise NodeError("each action must be a dict")
            if "success" in action:
                steps = [(bool(action["success"]), _ppm(action.get("quality", 1.0), "quality"), PPM)]
            elif action.get("type") in ("positive", "negative"):
                positive = action["type"] == "positive"
                steps = [(positive, PPM if positive else 0, w)
                         for w in self._feedback_units(action.get("amount", 1.0))]
            else:
                raise NodeError(f"unknown action {action!r}: give 'success' or 'type'")
            for positive, quality, weight in steps:
                score = next_score(score, positive, quality, weight, self.params)
        return score / PPM

    def history(self) -> list[dict[str, Any]]:
        items = self._feedback()
        scores = self.runner.reputation.fold_scores(items) if items else []
        return [{"timestamp": f.ts / 1000.0, "event": f.hash, "rater": f.author, "positive": f.positive,
                 "quality": f.quality_ppm / PPM, "weight": f.weight_ppm / PPM, "score_after": s / PPM}
                for f, s in zip(items, scores, strict=False)]

    def __repr__(self) -> str:
        return f"Reputation(subject={self.subject[:16]}…, score={self.get_score():.4f}, level={self.get_level()})"


__all__ = ["Reputation"]
