"""clinic data

Revision ID: c9e0f1613e8f
Revises: 270d6fa0010a
Create Date: 2026-11-22
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = 'c9e0f1613e8f'
down_revision: str | None = '270d6fa0010a'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


VERSION_TABLES = ("clinic_assessment_version", "lab_result_version")


def upgrade() -> None:

    op.create_table('clinic_assessment',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('study_id', sa.Uuid(), nullable=False),
    sa.Column('instrument', sa.String(length=20), nullable=False),
    sa.Column('current_version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_clinic_assessment_participant_id_participant')),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_clinic_assessment_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clinic_assessment'))
    )
    with op.batch_alter_table('clinic_assessment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_clinic_assessment_participant_id'), ['participant_id'], unique=False)

    op.create_table('lab_result',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('study_id', sa.Uuid(), nullable=False),
    sa.Column('analyte', sa.String(length=30), nullable=False),
    sa.Column('current_version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_lab_result_participant_id_participant')),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_lab_result_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lab_result'))
    )
    with op.batch_alter_table('lab_result', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lab_result_participant_id'), ['participant_id'], unique=False)

    op.create_table('clinic_assessment_version',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('assessment_id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('instrument', sa.String(length=20), nullable=False),
    sa.Column('assessed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('assessed_date', sa.Date(), nullable=False),
    sa.Column('visit_id', sa.Uuid(), nullable=True),
    sa.Column('items', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('measurements', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('sex', sa.String(length=10), nullable=True),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('subscores', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('instrument_version', sa.String(length=40), nullable=False),
    sa.Column('reason', sa.String(length=2000), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.String(length=255), nullable=False),
    sa.Column('actor_role', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['assessment_id'], ['clinic_assessment.id'], name=op.f('fk_clinic_assessment_version_assessment_id_clinic_assessment')),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_clinic_assessment_version_participant_id_participant')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_clinic_assessment_version')),
    sa.UniqueConstraint('assessment_id', 'version', name=op.f('uq_clinic_assessment_version_assessment_id_version'))
    )
    with op.batch_alter_table('clinic_assessment_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_clinic_assessment_version_assessment_id'), ['assessment_id'], unique=False)
        batch_op.create_index('ix_clinic_assessment_version_participant', ['participant_id', 'instrument', 'assessed_date'], unique=False)

    op.create_table('lab_result_version',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('lab_id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('analyte', sa.String(length=30), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('unit', sa.String(length=20), nullable=False),
    sa.Column('qualifier', sa.String(length=2), nullable=False),
    sa.Column('collected_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('collected_date', sa.Date(), nullable=False),
    sa.Column('visit_id', sa.Uuid(), nullable=True),
    sa.Column('reason', sa.String(length=2000), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_id', sa.String(length=255), nullable=False),
    sa.Column('actor_role', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['lab_id'], ['lab_result.id'], name=op.f('fk_lab_result_version_lab_id_lab_result')),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_lab_result_version_participant_id_participant')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lab_result_version')),
    sa.UniqueConstraint('lab_id', 'version', name=op.f('uq_lab_result_version_lab_id_version'))
    )
    with op.batch_alter_table('lab_result_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lab_result_version_lab_id'), ['lab_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lab_result_version_participant_id'), ['participant_id'], unique=False)

    # Versions are append-only: corrections add rows, nothing is updated or deleted.
    for table in VERSION_TABLES:
        if op.get_bind().dialect.name == "postgresql":
            op.execute(
                f"CREATE TRIGGER {table}_no_update_delete BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()"
            )
        else:
            for event in ("update", "delete"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{event} BEFORE {event.upper()} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )


def downgrade() -> None:
    for table in VERSION_TABLES:
        if op.get_bind().dialect.name == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update_delete ON {table}")
        else:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_update")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_delete")

    with op.batch_alter_table('lab_result_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lab_result_version_participant_id'))
        batch_op.drop_index(batch_op.f('ix_lab_result_version_lab_id'))

    op.drop_table('lab_result_version')
    with op.batch_alter_table('clinic_assessment_version', schema=None) as batch_op:
        batch_op.drop_index('ix_clinic_assessment_version_participant')
        batch_op.drop_index(batch_op.f('ix_clinic_assessment_version_assessment_id'))

    op.drop_table('clinic_assessment_version')
    with op.batch_alter_table('lab_result', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lab_result_participant_id'))

    op.drop_table('lab_result')
    with op.batch_alter_table('clinic_assessment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_clinic_assessment_participant_id'))

    op.drop_table('clinic_assessment')

