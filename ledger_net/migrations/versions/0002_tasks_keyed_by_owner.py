"""tasks keyed by (task_id, owner); chunks by (task_id, owner, chunk); task_assignments

Task ids are unique only within an owner's chain, so two owners may choose the same
one. 0001 keyed the tasks projection by task_id alone, which made its rows depend on
arrival order. The tables only hold projection rows (derivable from the log), and the
old rows may be exactly the arrival-order-dependent ones this revision fixes, so both
tables are recreated empty and the `tasks` checkpoint is dropped: on the next open the
projection runner refolds the tasks projection from the log (the other projections
keep their checkpoints). The downgrade does the same in reverse.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00.000000
"""
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_TASK_COLUMNS = (
    ('task_type', sa.String(length=64), False),
    ('status', sa.String(length=32), False),
    ('priority', sa.Integer(), False),
    ('escrow', sa.BigInteger(), False),
    ('max_price', sa.BigInteger(), False),
    ('paid', sa.BigInteger(), False),
    ('refund', sa.BigInteger(), False),
    ('chunks_total', sa.Integer(), False),
    ('chunks_done', sa.Integer(), False),
    ('chunks_failed', sa.Integer(), False),
    ('submitted_hash', sa.String(length=64), False),
    ('spec', sa.Text(), False),
    ('result', sa.Text(), True),
    ('result_hash', sa.String(length=64), True),
    ('reason', sa.Text(), True),
    ('submitted_ts', sa.BigInteger(), False),
    ('finished_ts', sa.BigInteger(), True),
)
_CHUNK_COLUMNS = (
    ('status', sa.String(length=32), False),
    ('worker', sa.String(length=64), True),
    ('price', sa.BigInteger(), True),
    ('attempts', sa.Integer(), False),
    ('result_hash', sa.String(length=64), True),
    ('payment', sa.BigInteger(), False),
    ('error', sa.Text(), True),
    ('usage', sa.Text(), True),
)


def _columns(spec: tuple[tuple[str, sa.types.TypeEngine[Any], bool], ...]) -> list[sa.Column[Any]]:
    return [sa.Column(name, type_, nullable=nullable) for name, type_, nullable in spec]


def _drop_task_tables() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_status')
        batch_op.drop_index('ix_tasks_owner')
    op.drop_table('tasks')
    op.drop_table('chunks')


def _create_task_tables(by_owner: bool) -> None:
    task_key = ['task_id', 'owner'] if by_owner else ['task_id']
    chunk_key = ['task_id', 'owner', 'chunk'] if by_owner else ['task_id', 'chunk']
    op.create_table(
        'tasks',
        sa.Column('task_id', sa.String(length=128), nullable=False),
        sa.Column('owner', sa.String(length=64), nullable=False),
        *_columns(_TASK_COLUMNS),
        sa.PrimaryKeyConstraint(*task_key, name=op.f('pk_tasks')),
    )
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index('ix_tasks_owner', ['owner'], unique=False)
        batch_op.create_index('ix_tasks_status', ['status'], unique=False)
    owner = [sa.Column('owner', sa.String(length=64), nullable=False)] if by_owner else []
    op.create_table(
        'chunks',
        sa.Column('task_id', sa.String(length=128), nullable=False),
        *owner,
        sa.Column('chunk', sa.Integer(), autoincrement=False, nullable=False),
        *_columns(_CHUNK_COLUMNS),
        sa.PrimaryKeyConstraint(*chunk_key, name=op.f('pk_chunks')),
    )


def _forget_tasks_checkpoint() -> None:
    """Without its checkpoint the tasks projection is refolded from the log on open."""
    checkpoints = sa.table('projection_checkpoints', sa.column('name', sa.String))
    op.execute(checkpoints.delete().where(checkpoints.c.name == 'tasks'))


def upgrade() -> None:
    _drop_task_tables()
    _create_task_tables(by_owner=True)
    op.create_table(
        'task_assignments',
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.Column('task_id', sa.String(length=128), nullable=False),
        sa.Column('owner', sa.String(length=64), nullable=False),
        sa.Column('chunk', sa.Integer(), nullable=False),
        sa.Column('worker', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('hash', name=op.f('pk_task_assignments')),
    )
    _forget_tasks_checkpoint()


def downgrade() -> None:
    op.drop_table('task_assignments')
    _drop_task_tables()
    _create_task_tables(by_owner=False)
    _forget_tasks_checkpoint()
