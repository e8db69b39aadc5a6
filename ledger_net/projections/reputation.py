"""Reputation of every node: a deterministic integer fold of effective feedback.

Scores are parts per million in [0, 1_000_000]. Time is logical: a subject's
feedback is taken in one canonical order — (author clock, author, seq), the same on
every peer whatever order events arrived in (honest authors keep their clocks
non-decreasing along their chains) — and each step first decays its score toward the initial score by `decay`, then
moves it — toward 1 for a success (by rate·reward·quality·(1−s)), toward 0 for a
failure (by rate·penalty·(1−quality)·s), with rate = 10 % × weight. A node proven
to have forked is pinned to 0. All arithmetic is integer, so every peer agrees.

Only *effective* feedback is folded: whether a praise or complaint counts is decided
once, by the rules (`ledger/rules.py`) — praise only for a subject the author paid a
non-zero amount in that task, a complaint only for one it assigned work in it — so
reputation moves only through real, paid work (or an issuer's word), never by a
second, looser rule here.

Level names (by score): untrusted < 0.2 ≤ low < 0.4 ≤ neutral < 0.6 ≤ trusted
< 0.8 ≤ high < 0.95 ≤ elite.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, cast

from sqlalchemy import Connection, Table, select

from ..ledger.events import Event
from .base import Context, Projection, RowBatch
from .rows import FeedbackRow, SubjectRow, stored
from .tables import reputation, reputation_history

PPM = 1_000_000
RATE_PPM = 100_000  # 10 % of the distance per full-weight feedback

LEVELS = ((200_000, "untrusted"), (400_000, "low"), (600_000, "neutral"), (800_000, "trusted"),
          (950_000, "high"), (PPM + 1, "elite"))


@dataclass(frozen=True)
class ReputationParams:
    """The scoring constants; a network fixes them in its genesis `params.reputation`."""

    initial_ppm: int = 500_000
    decay_ppm: int = 10_000
    reward_ppm: int = 1_200_000
    penalty_ppm: int = 1_500_000

    @classmethod
    def from_genesis(cls, params: dict[str, Any]) -> ReputationParams:
        rep = params.get("reputation") or {}
        return cls(**{k: int(v) for k, v in rep.items() if k in cls.__dataclass_fields__})

    def as_params(self) -> dict[str, int]:
        return {"initial_ppm": self.initial_ppm, "decay_ppm": self.decay_ppm,
                "reward_ppm": self.reward_ppm, "penalty_ppm": self.penalty_ppm}


def next_score(score: int, positive: bool, quality_ppm: int, weight_ppm: int, p: ReputationParams) -> int:
    """One feedback step, in integers."""
    score += (p.initial_ppm - score) * p.decay_ppm // PPM
    rate = RATE_PPM * weight_ppm // PPM
    if positive:
        delta = rate * p.reward_ppm // PPM * quality_ppm // PPM * (PPM - score) // PPM
        score += delta
    else:
        delta = rate * p.penalty_ppm // PPM * (PPM - quality_ppm) // PPM * score // PPM
        score -= delta
    return max(0, min(PPM, score))


def level_of(score_ppm: int) -> str:
    for bound, name in LEVELS:
        if score_ppm < bound:
            return name
    return LEVELS[-1][1]


_TYPES = frozenset({"node.joined", "reputation.feedback"})  # what `apply` reads of anyone not frozen


class Feedback(NamedTuple):
    """One effective feedback about a subject; tuples sort into the canonical order."""

    ts: int
    author: str
    seq: int
    hash: str
    positive: bool
    quality_ppm: int
    weight_ppm: int


_COLUMNS: tuple[Literal["score_ppm", "positive", "negative", "quality_sum_ppm", "feedback_count", "forked"], ...] = (
    "score_ppm", "positive", "negative", "quality_sum_ppm", "feedback_count", "forked")


class ReputationProjection(Projection):
    name = "reputation"
    tables = (reputation, reputation_history)

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.subjects: dict[str, SubjectRow] = {}
        self.feedback: dict[str, list[Feedback]] = {}  # per subject, in canonical order
        self.params: ReputationParams | None = None
        self._dirty: set[str] = set()
        self._new_history: list[FeedbackRow] = []

    def subject(self, key: str) -> SubjectRow:
        row = self.subjects.get(key)
        if row is None:
            initial = (self.params or ReputationParams()).initial_ppm
            row = {"score_ppm": initial, "positive": 0, "negative": 0, "quality_sum_ppm": 0, "feedback_count": 0,
                   "forked": False}
            self.subjects[key] = row
        self._dirty.add(key)
        return row

    def apply(self, offset: int, event: Event, reason: str | None, ctx: Context) -> None:
        if self.params is None:
            self.params = ReputationParams.from_genesis(ctx.params)
        if event.type == "node.joined" and reason is None:
            self.subject(event.author)
        if event.author in ctx.frozen:
            row = self.subject(event.author)
            row["forked"], row["score_ppm"] = True, 0
        if event.type != "reputation.feedback" or reason is not None:
            return
        b = event.body
        row = self.subject(b["subject"])
        item = Feedback(event.ts, event.author, event.seq, event.hash, b["positive"], b["quality_ppm"],
                        b["weight_ppm"])
        items = self.feedback.setdefault(b["subject"], [])
        if not items or items[-1] < item:
            items.append(item)
            row["score_ppm"] = next_score(row["score_ppm"], item.positive, item.quality_ppm, item.weight_ppm,
                                          self.params)
        else:  # arrived out of canonical order: refold this subject
            bisect.insort(items, item)
            row["score_ppm"] = self.fold_scores(items)[-1]
        if b["subject"] in ctx.frozen:
            row["forked"], row["score_ppm"] = True, 0
        row["positive" if b["positive"] else "negative"] += 1
        row["quality_sum_ppm"] += b["quality_ppm"]
        row["feedback_count"] += 1
        feedback: FeedbackRow = {
            "offset": offset, "subject": b["subject"], "author": event.author, "seq": event.seq,
            "event_hash": event.hash, "positive": b["positive"], "quality_ppm": b["quality_ppm"],
            "weight_ppm": b["weight_ppm"], "score_after_ppm": row["score_ppm"], "ts": event.ts}
        self._new_history.append(feedback)

    def fold_rows(self, batch: RowBatch, ctx: Context) -> None:
        """`apply` over a batch: only joins, feedback and a forker's events change anything."""
        if self.params is None:
            self.params = ReputationParams.from_genesis(ctx.params)
        frozen = ctx.frozen
        if frozen or not batch.types.isdisjoint(_TYPES):
            self.apply_rows(batch, [i for i, r in enumerate(batch.rows) if r[4] in _TYPES or r[2] in frozen], ctx)

    def fold_scores(self, items: list[Feedback]) -> list[int]:
        """Score after each feedback of `items` (in canonical order), from the initial score."""
        params = self.params or ReputationParams()
        score, out = params.initial_ppm, []
        for item in items:
            score = next_score(score, item.positive, item.quality_ppm, item.weight_ppm, params)
            out.append(score)
        return out

    def rows(self) -> dict[Table, list[dict[str, Any]]]:
        return {reputation: [dict(subject=k, **v) for k, v in self.subjects.items()]}

    def full_rows(self) -> dict[Table, list[dict[str, Any]]]:
        return {**self.rows(), reputation_history: stored(list(self._new_history))}

    def take_history(self) -> dict[Table, list[dict[str, Any]]]:
        rows, self._new_history = self._new_history, []
        return {reputation_history: stored(rows)}

    def dirty_rows(self) -> dict[Table, tuple[list[Any], list[dict[str, Any]]]]:
        keys = sorted(self._dirty)
        out: dict[Table, tuple[list[Any], list[dict[str, Any]]]] = {
            reputation: (keys, [dict(subject=k, **self.subjects[k]) for k in keys]),
            reputation_history: ([], stored(self._new_history))}
        self._dirty, self._new_history = set(), []
        return out

    def load(self, conn: Connection, offset: int) -> None:
        self.reset()
        for row in conn.execute(select(reputation)).mappings():
            self.subjects[row["subject"]] = cast(SubjectRow, {c: row[c] for c in _COLUMNS})
        for row in conn.execute(select(reputation_history)).mappings():
            self.feedback.setdefault(row["subject"], []).append(Feedback(
                row["ts"], row["author"], row["seq"], row["event_hash"], row["positive"], row["quality_ppm"],
                row["weight_ppm"]))
        for items in self.feedback.values():
            items.sort()

    def digest_items(self) -> Iterable[Any]:
        for key in sorted(self.subjects):
            row = self.subjects[key]
            yield [key, [int(row[c]) for c in _COLUMNS]]

    def score(self, subject: str) -> int:
        row = self.subjects.get(subject)
        return row["score_ppm"] if row else (self.params or ReputationParams()).initial_ppm
