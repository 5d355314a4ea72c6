"""issue 16: cross-boundary cases (where the child lives; the partnerships a case involves)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resident_partnership_id', sqlmodel.sql.sqltypes.AutoString(length=63),
                                      nullable=True))
        batch_op.add_column(sa.Column('resident_area_name', sqlmodel.sql.sqltypes.AutoString(length=200),
                                      nullable=True))
        batch_op.create_index(batch_op.f('ix_case_resident_partnership_id'), ['resident_partnership_id'],
                              unique=False)
    op.create_table('case_partnership',
    sa.Column('case_id', sqlmodel.sql.sqltypes.AutoString(length=140), nullable=False),
    sa.Column('partnership_id', sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['case.id'], ),
    sa.PrimaryKeyConstraint('case_id', 'partnership_id')
    )
    with op.batch_alter_table('case_partnership', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_case_partnership_partnership_id'), ['partnership_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('case_partnership', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_partnership_partnership_id'))
    op.drop_table('case_partnership')
    with op.batch_alter_table('case', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_case_resident_partnership_id'))
        batch_op.drop_column('resident_area_name')
        batch_op.drop_column('resident_partnership_id')
