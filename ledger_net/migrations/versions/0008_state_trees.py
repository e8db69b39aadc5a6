"""state_trees: the last checkpoint state tree, so a restart rehashes only what changed

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 22:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # No backfill: without a row the next checkpoint builds the tree in full and saves it.
    op.create_table(
        'state_trees',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_state_trees')),
    )


def downgrade() -> None:
    op.drop_table('state_trees')
