"""judge_snapshots: the validity fold's state at an offset, so opening judges only the tail

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 19:30:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No backfill: without a snapshot a node judges the whole log once and writes one.
    op.create_table(
        'judge_snapshots',
        sa.Column('offset', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('rules', sa.String(length=64), nullable=False),
        sa.Column('digest', sa.String(length=64), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('offset', name=op.f('pk_judge_snapshots')),
    )


def downgrade() -> None:
    op.drop_table('judge_snapshots')
