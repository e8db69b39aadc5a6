"""merkle_nodes: every complete subtree of each author's chain (RFC 9162 Merkle logs)

Inclusion and consistency proofs must cost O(log n) stored hashes, so the store keeps
the interior nodes of each author's tree as events arrive: those of level >= 4 (lower
ones are recomputed from at most 16 leaf hashes, each derived from events.hash). Existing
chains are backfilled here, author by author, a slice of events at a time; a chain with a
gap (which the log never writes) is filled up to the gap only, and the store then refuses
to extend it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 19:10:00.000000
"""
import hashlib

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_SLICE = 10_000
_STORED_LEVEL = 4  # ledger_net.ledger.merkle_log.STORED_LEVEL when this was written


def upgrade() -> None:
    op.create_table(
        'merkle_nodes',
        sa.Column('author', sa.String(length=64), nullable=False),
        sa.Column('level', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('idx', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('hash', sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint('author', 'level', 'idx', name=op.f('pk_merkle_nodes')),
    )
    _backfill(op.get_bind())


def _backfill(conn: sa.Connection) -> None:
    """RFC 9162 nodes of every stored chain. Written out here (not imported) so that this
    migration keeps meaning what it meant when it was written."""
    nodes = sa.table('merkle_nodes', sa.column('author'), sa.column('level'), sa.column('idx'),
                     sa.column('hash'))
    events = sa.table('events', sa.column('author'), sa.column('seq'), sa.column('hash'))
    authors = list(conn.execute(sa.select(events.c.author).distinct()).scalars())
    for author in authors:
        stack: list[tuple[int, bytes]] = []  # (level, hash) of the perfect subtrees so far
        size = 0
        while True:
            page = conn.execute(sa.select(events.c.seq, events.c.hash)
                                .where(events.c.author == author, events.c.seq > size)
                                .order_by(events.c.seq).limit(_SLICE)).all()
            rows = []
            for seq, hex_hash in page:
                if seq != size + 1:
                    break
                h = hashlib.sha256(b"\x00" + bytes.fromhex(hex_hash)).digest()
                level, index = 0, size
                while stack and stack[-1][0] == level:
                    h = hashlib.sha256(b"\x01" + stack.pop()[1] + h).digest()
                    level, index = level + 1, index >> 1
                    if level >= _STORED_LEVEL:
                        rows.append({"author": author, "level": level, "idx": index, "hash": h})
                stack.append((level, h))
                size += 1
            if rows:
                conn.execute(nodes.insert(), rows)
            if len(page) < _SLICE or page[-1][0] != size:
                break


def downgrade() -> None:
    op.drop_table('merkle_nodes')
