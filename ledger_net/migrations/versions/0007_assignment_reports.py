"""task_assignments keep the owner's verdict and the worker's report on each assignment

A chunk's status and result were last-writer-wins between the owner's verdicts and a
worker's concurrent result, so two peers could show one chunk differently. The tasks
projection now derives them from each assignment's verdict and report, which this
revision stores beside the assignment. Old rows cannot be completed from the tables
alone (the reports are only in the log), so the task tables are emptied and the `tasks`
checkpoint dropped: on the next open the runner refolds the tasks projection from the
log, as 0002 does. The downgrade drops the columns and does the same.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 20:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_NEW_COLUMNS = (
    ('position', sa.Integer(), False),
    ('verdict', sa.String(length=16), True),
    ('reason', sa.Text(), True),
    ('verdict_hash', sa.String(length=64), True),
    ('ok', sa.Boolean(), True),
    ('result_hash', sa.String(length=64), True),
    ('error', sa.Text(), True),
    ('usage', sa.Text(), True),
)


def _forget_tasks() -> None:
    """Empty the task tables and drop their checkpoint: the runner refolds them from the log."""
    for name in ('task_assignments', 'chunks', 'tasks'):
        op.execute(sa.table(name).delete())
    checkpoints = sa.table('projection_checkpoints', sa.column('name', sa.String))
    op.execute(checkpoints.delete().where(checkpoints.c.name == 'tasks'))
    memory = sa.table('projection_memory', sa.column('name', sa.String))
    op.execute(memory.delete().where(memory.c.name == 'tasks'))


def upgrade() -> None:
    _forget_tasks()
    with op.batch_alter_table('task_assignments', schema=None) as batch_op:
        for name, type_, nullable in _NEW_COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=nullable))


def downgrade() -> None:
    _forget_tasks()
    with op.batch_alter_table('task_assignments', schema=None) as batch_op:
        for name, _, _ in reversed(_NEW_COLUMNS):
            batch_op.drop_column(name)
