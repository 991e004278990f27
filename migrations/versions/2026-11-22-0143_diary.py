"""diary

Revision ID: 0b967762296e
Revises: e08af87e8f2d
Create Date: 2026-11-22
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0b967762296e'
down_revision: str | None = 'e08af87e8f2d'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('diary_entry',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('study_id', sa.Uuid(), nullable=False),
    sa.Column('client_entry_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_offset_minutes', sa.Integer(), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('diary_date', sa.Date(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('current_version', sa.Integer(), nullable=False),
    sa.Column('flags', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.CheckConstraint("kind IN ('mg_adl', 'vitals', 'symptoms', 'medication_dose', 'steps', 'note')", name=op.f('ck_diary_entry_kind')),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_diary_entry_participant_id_participant')),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_diary_entry_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_diary_entry')),
    sa.UniqueConstraint('participant_id', 'client_entry_id', name=op.f('uq_diary_entry_participant_id_client_entry_id'))
    )
    with op.batch_alter_table('diary_entry', schema=None) as batch_op:
        batch_op.create_index('ix_diary_entry_participant_id_diary_date', ['participant_id', 'diary_date'], unique=False)
        batch_op.create_index('ix_diary_entry_participant_id_kind_diary_date', ['participant_id', 'kind', 'diary_date'], unique=False)

    op.create_table('idempotency_record',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('response_body', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_idempotency_record_participant_id_participant')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_record')),
    sa.UniqueConstraint('participant_id', 'key', name=op.f('uq_idempotency_record_participant_id_key'))
    )
    op.create_table('diary_conflict',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('study_id', sa.Uuid(), nullable=False),
    sa.Column('entry_id', sa.Uuid(), nullable=False),
    sa.Column('client_entry_id', sa.Uuid(), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution', sa.String(length=2000), nullable=True),
    sa.ForeignKeyConstraint(['entry_id'], ['diary_entry.id'], name=op.f('fk_diary_conflict_entry_id_diary_entry')),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_diary_conflict_participant_id_participant')),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_diary_conflict_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_diary_conflict'))
    )
    with op.batch_alter_table('diary_conflict', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_diary_conflict_participant_id'), ['participant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_diary_conflict_study_id'), ['study_id'], unique=False)

    op.create_table('diary_entry_version',
    sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('entry_id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('score', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('reason', sa.String(length=2000), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_type', sa.String(length=20), nullable=False),
    sa.Column('actor_id', sa.String(length=255), nullable=False),
    sa.Column('actor_role', sa.String(length=40), nullable=False),
    sa.Column('txid', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['entry_id'], ['diary_entry.id'], name=op.f('fk_diary_entry_version_entry_id_diary_entry')),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_diary_entry_version_participant_id_participant')),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_diary_entry_version')),
    sa.UniqueConstraint('entry_id', 'version', name=op.f('uq_diary_entry_version_entry_id_version')),
    sa.UniqueConstraint('id', name=op.f('uq_diary_entry_version_id'))
    )
    with op.batch_alter_table('diary_entry_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_diary_entry_version_entry_id'), ['entry_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_diary_entry_version_participant_id'), ['participant_id'], unique=False)

    op.create_table('medication_dose',
    sa.Column('version_id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('medication_code', sa.String(length=60), nullable=True),
    sa.Column('medication_text', sa.String(length=120), nullable=False),
    sa.Column('amount', sa.Float(), nullable=False),
    sa.Column('unit', sa.String(length=20), nullable=False),
    sa.Column('route', sa.String(length=20), nullable=False),
    sa.Column('taken_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('schedule', sa.String(length=20), nullable=True),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_medication_dose_participant_id_participant')),
    sa.ForeignKeyConstraint(['version_id'], ['diary_entry_version.id'], name=op.f('fk_medication_dose_version_id_diary_entry_version')),
    sa.PrimaryKeyConstraint('version_id', name=op.f('pk_medication_dose'))
    )
    with op.batch_alter_table('medication_dose', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_medication_dose_participant_id'), ['participant_id'], unique=False)

    op.create_table('mg_adl_response',
    sa.Column('version_id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('talking', sa.Integer(), nullable=False),
    sa.Column('chewing', sa.Integer(), nullable=False),
    sa.Column('swallowing', sa.Integer(), nullable=False),
    sa.Column('breathing', sa.Integer(), nullable=False),
    sa.Column('brushing_teeth_or_combing_hair', sa.Integer(), nullable=False),
    sa.Column('arising_from_chair', sa.Integer(), nullable=False),
    sa.Column('double_vision', sa.Integer(), nullable=False),
    sa.Column('eyelid_droop', sa.Integer(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('ocular', sa.Integer(), nullable=False),
    sa.Column('bulbar', sa.Integer(), nullable=False),
    sa.Column('respiratory', sa.Integer(), nullable=False),
    sa.Column('limb', sa.Integer(), nullable=False),
    sa.Column('instrument_version', sa.String(length=40), nullable=False),
    sa.Column('recall_period_days', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_mg_adl_response_participant_id_participant')),
    sa.ForeignKeyConstraint(['version_id'], ['diary_entry_version.id'], name=op.f('fk_mg_adl_response_version_id_diary_entry_version')),
    sa.PrimaryKeyConstraint('version_id', name=op.f('pk_mg_adl_response'))
    )
    with op.batch_alter_table('mg_adl_response', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mg_adl_response_participant_id'), ['participant_id'], unique=False)

    op.create_table('step_count',
    sa.Column('version_id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('step_date', sa.Date(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=60), nullable=False),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_step_count_participant_id_participant')),
    sa.ForeignKeyConstraint(['version_id'], ['diary_entry_version.id'], name=op.f('fk_step_count_version_id_diary_entry_version')),
    sa.PrimaryKeyConstraint('version_id', name=op.f('pk_step_count'))
    )
    with op.batch_alter_table('step_count', schema=None) as batch_op:
        batch_op.create_index('ix_step_count_participant_id_step_date', ['participant_id', 'step_date'], unique=False)

    op.create_table('step_interval',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('version_id', sa.Uuid(), nullable=False),
    sa.Column('start_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['diary_entry_version.id'], name=op.f('fk_step_interval_version_id_diary_entry_version')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_step_interval'))
    )
    with op.batch_alter_table('step_interval', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_step_interval_version_id'), ['version_id'], unique=False)

    op.create_table('symptom_report',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('version_id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('severity', sa.Integer(), nullable=False),
    sa.Column('onset_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_symptom_report_participant_id_participant')),
    sa.ForeignKeyConstraint(['version_id'], ['diary_entry_version.id'], name=op.f('fk_symptom_report_version_id_diary_entry_version')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_symptom_report'))
    )
    with op.batch_alter_table('symptom_report', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_symptom_report_participant_id'), ['participant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_symptom_report_version_id'), ['version_id'], unique=False)

    op.create_table('vital_sign',
    sa.Column('version_id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('temperature_c', sa.Float(), nullable=True),
    sa.Column('heart_rate_bpm', sa.Integer(), nullable=True),
    sa.Column('spo2_percent', sa.Integer(), nullable=True),
    sa.Column('systolic_mmhg', sa.Integer(), nullable=True),
    sa.Column('diastolic_mmhg', sa.Integer(), nullable=True),
    sa.Column('measured_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('method', sa.String(length=40), nullable=True),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_vital_sign_participant_id_participant')),
    sa.ForeignKeyConstraint(['version_id'], ['diary_entry_version.id'], name=op.f('fk_vital_sign_version_id_diary_entry_version')),
    sa.PrimaryKeyConstraint('version_id', name=op.f('pk_vital_sign'))
    )
    with op.batch_alter_table('vital_sign', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vital_sign_participant_id'), ['participant_id'], unique=False)

    # Versions are append-only: corrections add rows, nothing is updated or deleted.
    if op.get_bind().dialect.name == "postgresql":
        # The changes feed orders versions by their writer's transaction id (bulk inserts
        # leave the column out and get it from here).
        op.execute(
            "ALTER TABLE diary_entry_version "
            "ALTER COLUMN txid SET DEFAULT pg_current_xact_id()::text::bigint"
        )
        op.execute(
            "CREATE TRIGGER diary_entry_version_no_update_delete BEFORE UPDATE OR DELETE "
            "ON diary_entry_version FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()"
        )
        op.execute(
            "CREATE TRIGGER diary_entry_version_no_truncate BEFORE TRUNCATE "
            "ON diary_entry_version FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()"
        )
    else:
        op.execute(
            "CREATE TRIGGER diary_entry_version_no_update BEFORE UPDATE ON diary_entry_version "
            "BEGIN SELECT RAISE(ABORT, 'diary_entry_version is append-only'); END"
        )
        op.execute(
            "CREATE TRIGGER diary_entry_version_no_delete BEFORE DELETE ON diary_entry_version "
            "BEGIN SELECT RAISE(ABORT, 'diary_entry_version is append-only'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS diary_entry_version_no_truncate ON diary_entry_version")
        op.execute(
            "DROP TRIGGER IF EXISTS diary_entry_version_no_update_delete ON diary_entry_version"
        )
    else:
        op.execute("DROP TRIGGER IF EXISTS diary_entry_version_no_update")
        op.execute("DROP TRIGGER IF EXISTS diary_entry_version_no_delete")

    with op.batch_alter_table('vital_sign', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vital_sign_participant_id'))

    op.drop_table('vital_sign')
    with op.batch_alter_table('symptom_report', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_symptom_report_version_id'))
        batch_op.drop_index(batch_op.f('ix_symptom_report_participant_id'))

    op.drop_table('symptom_report')
    with op.batch_alter_table('step_interval', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_step_interval_version_id'))

    op.drop_table('step_interval')
    with op.batch_alter_table('step_count', schema=None) as batch_op:
        batch_op.drop_index('ix_step_count_participant_id_step_date')

    op.drop_table('step_count')
    with op.batch_alter_table('mg_adl_response', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mg_adl_response_participant_id'))

    op.drop_table('mg_adl_response')
    with op.batch_alter_table('medication_dose', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_medication_dose_participant_id'))

    op.drop_table('medication_dose')
    with op.batch_alter_table('diary_entry_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_diary_entry_version_participant_id'))
        batch_op.drop_index(batch_op.f('ix_diary_entry_version_entry_id'))

    op.drop_table('diary_entry_version')
    with op.batch_alter_table('diary_conflict', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_diary_conflict_study_id'))
        batch_op.drop_index(batch_op.f('ix_diary_conflict_participant_id'))

    op.drop_table('diary_conflict')
    op.drop_table('idempotency_record')
    with op.batch_alter_table('diary_entry', schema=None) as batch_op:
        batch_op.drop_index('ix_diary_entry_participant_id_kind_diary_date')
        batch_op.drop_index('ix_diary_entry_participant_id_diary_date')

    op.drop_table('diary_entry')

