"""audit log: append-only (UPDATE and DELETE refused) and hash-chained; applied actions keyed by event id

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-05

Existing rows are chained in id order. On SQLite the triggers live on the table: a later batch migration of
``audit_entry`` (which recreates the table) must create them again (``create_triggers``).
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

REFUSED = "audit_entry is append-only: entries cannot be changed or removed"


def create_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"""
            CREATE FUNCTION audit_entry_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{REFUSED}' USING ERRCODE = 'insufficient_privilege';
            END $$""")
        op.execute("CREATE TRIGGER audit_entry_no_change BEFORE UPDATE OR DELETE ON audit_entry "
                   "FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()")
        op.execute("CREATE TRIGGER audit_entry_no_truncate BEFORE TRUNCATE ON audit_entry "
                   "FOR EACH STATEMENT EXECUTE FUNCTION audit_entry_append_only()")
    else:
        for verb in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER audit_entry_no_{verb.lower()} BEFORE {verb} ON audit_entry "
                       f"BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END")


def drop_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_change ON audit_entry")
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_truncate ON audit_entry")
        op.execute("DROP FUNCTION IF EXISTS audit_entry_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_entry_no_delete")


def upgrade() -> None:
    from safeguarding.audit_log import GENESIS, row_hash

    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('event_id', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('seq', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('row_hash', sa.String(length=64), nullable=True))

    # chain what is there, oldest first
    bind = op.get_bind()
    audit = sa.table('audit_entry', sa.column('id', sa.Integer), sa.column('at', sa.DateTime(timezone=True)),
                     *(sa.column(name, sa.String) for name in ('actor', 'action', 'partnership_id', 'case_id',
                                                               'outcome', 'detail', 'event_id', 'prev_hash',
                                                               'row_hash')), sa.column('seq', sa.Integer))
    prev = GENESIS
    for seq, row in enumerate(bind.execute(sa.select(audit).order_by(audit.c.id)).mappings().all(), start=1):
        values = {**row, 'seq': seq, 'prev_hash': prev, 'detail': row['detail'] or ''}
        prev = row_hash(values)
        bind.execute(audit.update().where(audit.c.id == row['id']).values(
            seq=seq, prev_hash=values['prev_hash'], row_hash=prev))

    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.alter_column('seq', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('row_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index(batch_op.f('ix_audit_entry_seq'), ['seq'], unique=True)
        batch_op.create_index(batch_op.f('ix_audit_entry_event_id'), ['event_id'], unique=True)
    create_triggers()


def downgrade() -> None:
    drop_triggers()
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_entry_event_id'))
        batch_op.drop_index(batch_op.f('ix_audit_entry_seq'))
        batch_op.drop_column('row_hash')
        batch_op.drop_column('prev_hash')
        batch_op.drop_column('seq')
        batch_op.drop_column('event_id')
