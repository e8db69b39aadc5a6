"""Replay, explain and diff over a ledger: the debugging and auditing views.

Everything here folds *fresh* projections over the stored log (the same fold as
`ProjectionRunner.replay`, with the same network context), so nothing is written
and nothing in the projection tables is trusted: a view of a live node's data
directory is safe to take while the node runs.

* `Fold` — projections folded up to a point; `snapshot` / `diff_states` compare two points.
* `steps` — event by event, which rows each event changed (before → after).
* `explain_balance` — the history rows that make up an account's balance, with a running
  sum checked against the projection and against the validity rules.
* `explain_task` — every event of a task's life; `inspect` — one event, its verdict,
  its causal links both ways and what it changed.
* `resolve_point` — OFFSET | HASH | TIME (ISO-8601 or epoch seconds) to an offset.
"""

from __future__ import annotations

# `fold` holds points, folding, diffs and stepping; `explain` the explain and inspect views.
from .explain import (
    explain_balance,
    explain_task,
    find_event,
    inspect,
    resolve_account,
    resolve_task,
)
from .fold import (
    EPOCH_SECONDS_FROM,
    HIDDEN_FIELDS,
    MONEY_FIELDS,
    SECTIONS,
    Fold,
    context_of,
    describe_row,
    diff_points,
    diff_rows,
    diff_states,
    event_summary,
    keyed_rows,
    parse_time,
    replay,
    resolve_point,
    state_view,
    steps,
)

__all__ = ["EPOCH_SECONDS_FROM", "Fold", "HIDDEN_FIELDS", "MONEY_FIELDS", "SECTIONS", "context_of",
           "describe_row", "diff_points", "diff_rows", "diff_states", "event_summary", "explain_balance",
           "explain_task", "find_event", "inspect", "keyed_rows", "parse_time", "replay", "resolve_account",
           "resolve_point", "resolve_task", "state_view", "steps"]
