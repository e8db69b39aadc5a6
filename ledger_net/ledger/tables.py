"""SQLAlchemy table definitions of the log. The schema exists only through Alembic
migrations (`ledger_net/migrations/`); these definitions are what queries and migrations share."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

# The log. `offset` is this node's ingestion order: causal, gap-free, allocated so readers
# paging by offset never skip an event (ledger/store/writes.py: on SQLite MAX + 1 in the
# insert, the column being the rowid since migration 0010; on PostgreSQL under the
# `counters` row lock).
events = Table(
    "events",
    metadata,
    Column("offset", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False),
    Column("hash", String(64), nullable=False, unique=True),
    Column("author", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("type", String(64), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("sig", LargeBinary(64), nullable=False),
    Column("valid", Boolean, nullable=False),
    Column("reason", Text, nullable=True),
    UniqueConstraint("author", "seq", name="uq_events_author_seq"),
)
Index("ix_events_type", events.c.type)

# Equivocations: two signed headers with one (author, seq).
fork_proofs = Table(
    "fork_proofs",
    metadata,
    Column("author", String(64), primary_key=True),
    Column("seq", BigInteger, primary_key=True),
    Column("hash_a", String(64), nullable=False),
    Column("raw_a", LargeBinary, nullable=False),
    Column("sig_a", LargeBinary(64), nullable=False),
    Column("hash_b", String(64), nullable=False),
    Column("raw_b", LargeBinary, nullable=False),
    Column("sig_b", LargeBinary(64), nullable=False),
)

# Events of a proven forker beyond its fork that arrived after the fork was known.
# They are void; they are kept only so events that name them in deps can be
# delivered (and judged) the same way on every peer.
void_events = Table(
    "void_events",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("author", String(64), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("sig", LargeBinary(64), nullable=False),
)

counters = Table(
    "counters",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# Content-addressed blobs (large operands and results named by hash in events).
blobs = Table(
    "blobs",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

# Who runs the node whose key signs into this database (one row per key). Only the last
# holder is recorded: whether it still runs is told by a lock (PostgreSQL: an advisory
# lock held on the node's own connection; SQLite: flock), never by this row alone.
node_holders = Table(
    "node_holders",
    metadata,
    Column("node_id", String(64), primary_key=True),
    Column("pid", Integer, nullable=False),
    Column("host", String(255), nullable=False),
    Column("url", String(512), nullable=True),
    Column("started_at", BigInteger, nullable=False),
)

# Per-author Merkle logs (RFC 9162; see ledger/merkle_log.py): every complete subtree of
# level >= 4 of an author's chain (lower ones are recomputed from leaves). Node (level, idx)
# covers leaves [idx * 2**level, (idx + 1) * 2**level); leaf s-1 is the event at seq s, its
# hash derived from events.hash.
merkle_nodes = Table(
    "merkle_nodes",
    metadata,
    Column("author", String(64), primary_key=True),
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

# Snapshots of the judge (ledger/snapshot.py): the validity fold's state after the event at
# `offset`, written in the transaction of the events it covers, so opening loads it and
# judges only the events after it. `rules` names the rules that folded it (a snapshot of
# other rules is ignored), `digest` is the sha256 of `data` (a damaged one is ignored).
judge_snapshots = Table(
    "judge_snapshots",
    metadata,
    Column("offset", BigInteger, primary_key=True, autoincrement=False),
    Column("rules", String(64), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# The last state tree a node's checkpoints built (ledger/state_tree.py `StateBuilder.dump`:
# keys, values, leaf bytes and levels, with a digest of its own), so the first checkpoint
# after a restart rehashes only the rows changed since. A cache: a missing, damaged or
# outdated one costs a full build, never a wrong root. One row per builder (`name`).
state_trees = Table(
    "state_trees",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# Which checkpoint each checkpoint.cosigned event cosigns (core/checkpoints.py), by the event's
# hash, so a checkpoint's cosignatures are one indexed query (joined with `events` for their
# current validity) instead of a scan of every cosignature. Filled from the log up to the
# offset kept in meta `cosignatures_indexed`.
cosignatures = Table(
    "cosignatures",
    metadata,
    Column("hash", String(64), primary_key=True),
    Column("checkpoint", String(64), nullable=False),
    Column("witness", String(64), nullable=False),
)
Index("ix_cosignatures_checkpoint", cosignatures.c.checkpoint)
