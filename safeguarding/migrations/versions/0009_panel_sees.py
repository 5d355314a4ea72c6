"""issue 16: whether the Panel sees a case, and how many children it names

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

import json

import sqlalchemy as sa
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('panel_sees', sa.Boolean(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('children_count', sa.Integer(), server_default='0', nullable=False))
    # the number of children of the cases already there, from their JSON list (read here: the SQL for it differs
    # between SQLite and PostgreSQL)
    conn = op.get_bind()
    case = sa.table('case', sa.column('id', sa.String), sa.column('children', sa.Text),
                    sa.column('children_count', sa.Integer))
    counts = {}
    for case_id, children in conn.execute(sa.select(case.c.id, case.c.children)):
        try:
            number = len(json.loads(children or "[]"))
        except ValueError:
            number = 0
        if number:
            counts[case_id] = number
    if counts:
        conn.execute(case.update().where(case.c.id == sa.bindparam('b_id')).values(
            children_count=sa.bindparam('b_count')), [{'b_id': k, 'b_count': v} for k, v in counts.items()])


def downgrade() -> None:
    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.drop_column('children_count')
        batch_op.drop_column('panel_sees')
