"""medication list

Revision ID: 270d6fa0010a
Revises: 0b967762296e
Create Date: 2026-11-22
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '270d6fa0010a'
down_revision: str | None = '0b967762296e'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('medication_line',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('study_id', sa.Uuid(), nullable=False),
    sa.Column('current_version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_medication_line_participant_id_participant')),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_medication_line_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_medication_line'))
    )
    with op.batch_alter_table('medication_line', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_medication_line_participant_id'), ['participant_id'], unique=False)

    op.create_table('medication_line_version',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('line_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('medication_code', sa.String(length=60), nullable=True),
    sa.Column('medication_text', sa.String(length=120), nullable=False),
    sa.Column('dose', sa.Float(), nullable=False),
    sa.Column('unit', sa.String(length=20), nullable=False),
    sa.Column('route', sa.String(length=20), nullable=False),
    sa.Column('frequency', sa.String(length=30), nullable=False),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('stop_date', sa.Date(), nullable=True),
    sa.Column('reason', sa.String(length=2000), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_type', sa.String(length=20), nullable=False),
    sa.Column('actor_id', sa.String(length=255), nullable=False),
    sa.Column('actor_role', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['line_id'], ['medication_line.id'], name=op.f('fk_medication_line_version_line_id_medication_line')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_medication_line_version')),
    sa.UniqueConstraint('line_id', 'version', name=op.f('uq_medication_line_version_line_id_version'))
    )
    with op.batch_alter_table('medication_line_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_medication_line_version_line_id'), ['line_id'], unique=False)

    # Versions are append-only: changes add rows, nothing is updated or deleted.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER medication_line_version_no_update_delete BEFORE UPDATE OR DELETE "
            "ON medication_line_version FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER medication_line_version_no_update BEFORE UPDATE "
            "ON medication_line_version "
            "BEGIN SELECT RAISE(ABORT, 'medication_line_version is append-only'); END"
        )
        op.execute(
            "CREATE TRIGGER medication_line_version_no_delete BEFORE DELETE "
            "ON medication_line_version "
            "BEGIN SELECT RAISE(ABORT, 'medication_line_version is append-only'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP TRIGGER IF EXISTS medication_line_version_no_update_delete "
            "ON medication_line_version"
        )
    else:
        op.execute("DROP TRIGGER IF EXISTS medication_line_version_no_update")
        op.execute("DROP TRIGGER IF EXISTS medication_line_version_no_delete")

    with op.batch_alter_table('medication_line_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_medication_line_version_line_id'))

    op.drop_table('medication_line_version')
    with op.batch_alter_table('medication_line', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_medication_line_participant_id'))

    op.drop_table('medication_line')

