"""Tables of the projections. Every row here is derivable from the log: drop them,
rebuild, and the state hash must come out the same."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, LargeBinary, String, Table, Text

from ..ledger.tables import metadata

checkpoints = Table(
    "projection_checkpoints",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("offset", BigInteger, nullable=False),
    Column("state_hash", String(64), nullable=False),
)

# What a projection keeps only in memory (e.g. open credits, the history's running hash),
# written with its checkpoint in the flush's transaction, so opening reads it instead of
# re-deriving it from the log. `offset` must equal the checkpoint's, `digest` is the sha256
# of `data`; otherwise the projection re-derives it (see BalancesProjection.load).
projection_memory = Table(
    "projection_memory",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("offset", BigInteger, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
)

balances = Table(
    "balances",
    metadata,
    Column("account", String(64), primary_key=True),
    Column("balance", BigInteger, nullable=False),  # spendable
    Column("escrow", BigInteger, nullable=False),  # locked in open tasks
    Column("incoming", BigInteger, nullable=False),  # sent to it, not yet received
    Column("vouchers", BigInteger, nullable=False),  # issued to names, unsettled
    Column("minted", BigInteger, nullable=False),
    Column("burnt", BigInteger, nullable=False),
    Column("earned", BigInteger, nullable=False),  # task payments received
    Column("spent", BigInteger, nullable=False),  # task payments made
    Column("sent", BigInteger, nullable=False),
    Column("received", BigInteger, nullable=False),
)

credit_history = Table(
    "credit_history",
    metadata,
    Column("offset", BigInteger, primary_key=True, autoincrement=False),
    Column("part", Integer, primary_key=True, autoincrement=False),
    Column("account", String(64), nullable=False),
    Column("event_hash", String(64), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("delta", BigInteger, nullable=False),  # change of the spendable balance
    Column("amount", BigInteger, nullable=False),
    Column("counterparty", String(64), nullable=True),
    Column("task_id", String(128), nullable=True),
    Column("reason", Text, nullable=True),
    Column("ts", BigInteger, nullable=False),
    Column("balance_after", BigInteger, nullable=False),
)
Index("ix_credit_history_account", credit_history.c.account, credit_history.c.offset)

reputation = Table(
    "reputation",
    metadata,
    Column("subject", String(64), primary_key=True),
    Column("score_ppm", Integer, nullable=False),
    Column("positive", Integer, nullable=False),
    Column("negative", Integer, nullable=False),
    Column("quality_sum_ppm", BigInteger, nullable=False),
    Column("feedback_count", Integer, nullable=False),
    Column("forked", Boolean, nullable=False),
)

reputation_history = Table(
    "reputation_history",
    metadata,
    Column("offset", BigInteger, primary_key=True, autoincrement=False),
    Column("subject", String(64), nullable=False),
    Column("author", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("event_hash", String(64), nullable=False),
    Column("positive", Boolean, nullable=False),
    Column("quality_ppm", Integer, nullable=False),
    Column("weight_ppm", Integer, nullable=False),
    Column("score_after_ppm", Integer, nullable=False),
    Column("ts", BigInteger, nullable=False),
)
Index("ix_reputation_history_subject", reputation_history.c.subject, reputation_history.c.offset)

# Task ids are unique only within an owner's chain, so a task is keyed by (task_id, owner):
# every owner's submission under a shared id keeps its own row and chunks (migration 0002).
tasks = Table(
    "tasks",
    metadata,
    Column("task_id", String(128), primary_key=True),
    Column("owner", String(64), primary_key=True),
    Column("task_type", String(64), nullable=False),
    Column("status", String(32), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("escrow", BigInteger, nullable=False),
    Column("max_price", BigInteger, nullable=False),
    Column("paid", BigInteger, nullable=False),
    Column("refund", BigInteger, nullable=False),
    Column("chunks_total", Integer, nullable=False),
    Column("chunks_done", Integer, nullable=False),
    Column("chunks_failed", Integer, nullable=False),
    Column("submitted_hash", String(64), nullable=False),
    Column("spec", Text, nullable=False),  # canonical JSON
    Column("result", Text, nullable=True),  # canonical JSON
    Column("result_hash", String(64), nullable=True),
    Column("reason", Text, nullable=True),
    Column("submitted_ts", BigInteger, nullable=False),
    Column("finished_ts", BigInteger, nullable=True),
)
Index("ix_tasks_owner", tasks.c.owner)
Index("ix_tasks_status", tasks.c.status)

chunks = Table(
    "chunks",
    metadata,
    Column("task_id", String(128), primary_key=True),
    Column("owner", String(64), primary_key=True),
    Column("chunk", Integer, primary_key=True, autoincrement=False),
    Column("status", String(32), nullable=False),
    Column("worker", String(64), nullable=True),
    Column("price", BigInteger, nullable=True),
    Column("attempts", Integer, nullable=False),
    Column("result_hash", String(64), nullable=True),
    Column("payment", BigInteger, nullable=False),
    Column("error", Text, nullable=True),
    Column("usage", Text, nullable=True),  # canonical JSON
)

# Effective assignments (event hash -> task, owner, chunk, worker): a chunk result names its
# assignment in deps, and this is how the projection knows which owner's task it reports on.
# Each keeps the owner's verdict on it and its worker's latest report, from which the chunk's
# row is derived (migration 0007): `position` is its place among the chunk's assignments.
task_assignments = Table(
    "task_assignments",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("task_id", String(128), nullable=False),
    Column("owner", String(64), nullable=False),
    Column("chunk", Integer, nullable=False),
    Column("worker", String(64), nullable=False),
    Column("position", Integer, nullable=False),
    Column("verdict", String(16), nullable=True),  # accepted | rejected
    Column("reason", Text, nullable=True),  # of a rejection
    Column("verdict_hash", String(64), nullable=True),  # the result an acceptance names
    Column("ok", Boolean, nullable=True),  # the worker's latest report; None: none yet
    Column("result_hash", String(64), nullable=True),
    Column("error", Text, nullable=True),
    Column("usage", Text, nullable=True),  # canonical JSON
)

nodes = Table(
    "nodes",
    metadata,
    Column("node_id", String(64), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("url", String(512), nullable=True),
    Column("node_type", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    Column("capabilities", Text, nullable=False),  # canonical JSON
    Column("load", Text, nullable=False),  # canonical JSON
    Column("events", BigInteger, nullable=False),
    Column("forked_at", BigInteger, nullable=True),
    Column("last_ts", BigInteger, nullable=False),
)
