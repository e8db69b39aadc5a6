"""The row kinds the projections hold and hand out, one type each.

Rows are `TypedDict`s, not dataclasses: the projections fold into them in place many
times per event, store them as table rows (`dict(key=…, **row)`), and most of them flow
unchanged into JSON answers of the HTTP API and the CLI, whose bytes must not change.
A `TypedDict` is that same dict at run time while mypy checks every field a reader
names, outside `projections/` as inside: a misspelt or removed column is a type error,
not a `KeyError` in production.

The fields are the columns of projections/tables.py (JSON columns hold canonical JSON
text), without the table's key columns, which the projections keep as dict keys.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict, cast

AccountColumn = Literal["balance", "escrow", "incoming", "vouchers", "minted", "burnt", "earned", "spent", "sent",
                        "received"]
ACCOUNT_COLUMNS: tuple[AccountColumn, ...] = (
    "balance", "escrow", "incoming", "vouchers", "minted", "burnt", "earned", "spent", "sent", "received")


class AccountRow(TypedDict):
    """One account's money (base units); key: the account (node id)."""

    balance: int  # spendable
    escrow: int  # locked in open tasks
    incoming: int  # sent to it, not yet received
    vouchers: int  # issued to names, unsettled
    minted: int
    burnt: int
    earned: int  # task payments received
    spent: int  # task payments made
    sent: int
    received: int


class HistoryRow(TypedDict):
    """One change of an account's money, with the running balance (credit_history)."""

    offset: int
    part: int
    account: str
    event_hash: str
    kind: str
    delta: int  # change of the spendable balance
    amount: int
    counterparty: str | None
    task_id: str | None
    reason: str | None
    ts: int
    balance_after: int


class NodeRow(TypedDict):
    """One node as its events describe it; key: the node id."""

    name: str
    url: str | None
    node_type: str
    status: str
    capabilities: str  # canonical JSON
    load: str  # canonical JSON
    events: int
    forked_at: int | None
    last_ts: int


class NodeInfo(TypedDict):
    """A node row for readers (`NodesProjection.describe`): its id, JSON columns decoded."""

    node_id: str
    name: str
    url: str | None
    node_type: str
    status: str
    capabilities: dict[str, Any]
    load: dict[str, Any]
    events: int
    forked_at: int | None
    last_ts: int


class TaskRow(TypedDict):
    """One owner's task (a candidate); key: (task_id, owner)."""

    owner: str
    task_type: str
    status: str  # a TaskStatus value
    priority: int
    escrow: int
    max_price: int
    paid: int
    refund: int
    chunks_total: int
    chunks_done: int
    chunks_failed: int
    submitted_hash: str
    spec: str  # canonical JSON
    result: str | None  # canonical JSON
    result_hash: str | None
    reason: str | None
    submitted_ts: int
    finished_ts: int | None


class ChunkRow(TypedDict):
    """One chunk of a candidate; key: (task_id, owner, chunk)."""

    status: str  # a ChunkStatus value
    worker: str | None
    price: int | None
    attempts: int
    result_hash: str | None
    payment: int
    error: str | None
    usage: str | None  # canonical JSON


class AssignmentRow(TypedDict):
    """One effective assignment, the owner's verdict on it and the worker's latest report;
    key: the `task.assigned` event's hash."""

    task_id: str
    owner: str
    chunk: int
    worker: str
    position: int  # among the chunk's assignments, in the owner's order
    verdict: str | None  # accepted | rejected
    reason: str | None  # of a rejection
    verdict_hash: str | None  # the result an acceptance names
    ok: bool | None  # the worker's latest report; None: none yet
    result_hash: str | None
    error: str | None
    usage: str | None  # canonical JSON


class SubjectRow(TypedDict):
    """One node's reputation; key: the subject (node id)."""

    score_ppm: int
    positive: int
    negative: int
    quality_sum_ppm: int
    feedback_count: int
    forked: bool


class FeedbackRow(TypedDict):
    """One effective feedback and the score after it (reputation_history)."""

    offset: int
    subject: str
    author: str
    seq: int
    event_hash: str
    positive: bool
    quality_ppm: int
    weight_ppm: int
    score_after_ppm: int
    ts: int


def stored(rows: list[HistoryRow] | list[FeedbackRow]) -> list[dict[str, Any]]:
    """History rows as the runner stores them: the very same dicts, no copy (a `TypedDict` is
    a dict at run time; only its static type is narrower than the store's)."""
    return cast("list[dict[str, Any]]", rows)
