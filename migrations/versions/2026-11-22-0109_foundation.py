"""foundation

Revision ID: e08af87e8f2d
Revises: 
Create Date: 2026-11-22
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from sqlalchemy.dialects import postgresql

revision: str = 'e08af87e8f2d'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


AUDIT_GUARD_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_event_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:

    op.create_table('audit_event',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_type', sa.String(length=20), nullable=False),
    sa.Column('actor_id', sa.String(length=255), nullable=False),
    sa.Column('actor_role', sa.String(length=40), nullable=False),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('entity_type', sa.String(length=60), nullable=False),
    sa.Column('entity_id', sa.String(length=64), nullable=False),
    sa.Column('study_id', sa.Uuid(), nullable=True),
    sa.Column('participant_id', sa.Uuid(), nullable=True),
    sa.Column('changes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('reason', sa.String(length=2000), nullable=True),
    sa.Column('request_id', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_event'))
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index('ix_audit_event_entity', ['entity_type', 'entity_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_event_occurred_at'), ['occurred_at'], unique=False)
        batch_op.create_index('ix_audit_event_participant_id_occurred_at', ['participant_id', 'occurred_at'], unique=False)
        batch_op.create_index('ix_audit_event_study_id_occurred_at', ['study_id', 'occurred_at'], unique=False)

    op.create_table('staff_user',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('subject', sa.String(length=255), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deactivated_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_user')),
    sa.UniqueConstraint('subject', name=op.f('uq_staff_user_subject'))
    )
    op.create_table('study',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('registry_id', sa.String(length=40), nullable=True),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('current_protocol_version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_study')),
    sa.UniqueConstraint('registry_id', name=op.f('uq_study_registry_id'))
    )
    op.create_table('worker_heartbeat',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('jobs_run', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_worker_heartbeat'))
    )
    op.create_table('protocol_version',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('study_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('definition', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('reason', sa.String(length=2000), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_protocol_version_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_protocol_version')),
    sa.UniqueConstraint('study_id', 'version', name=op.f('uq_protocol_version_study_id_version'))
    )
    with op.batch_alter_table('protocol_version', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_protocol_version_study_id'), ['study_id'], unique=False)

    op.create_table('site',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('study_id', sa.Uuid(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_site_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_site')),
    sa.UniqueConstraint('study_id', 'code', name=op.f('uq_site_study_id_code'))
    )
    with op.batch_alter_table('site', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_site_study_id'), ['study_id'], unique=False)

    op.create_table('participant',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('study_id', sa.Uuid(), nullable=False),
    sa.Column('site_id', sa.Uuid(), nullable=False),
    sa.Column('protocol_version_id', sa.Uuid(), nullable=False),
    sa.Column('subject_code', sa.String(length=40), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('enrolled_date', sa.Date(), nullable=False),
    sa.Column('day0_date', sa.Date(), nullable=True),
    sa.Column('dose_level', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('withdrawal_reason', sa.String(length=2000), nullable=True),
    sa.Column('activated_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('screening', 'enrolled', 'withdrawn', 'completed')", name=op.f('ck_participant_status')),
    sa.ForeignKeyConstraint(['protocol_version_id'], ['protocol_version.id'], name=op.f('fk_participant_protocol_version_id_protocol_version')),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_participant_site_id_site')),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_participant_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_participant')),
    sa.UniqueConstraint('study_id', 'subject_code', name=op.f('uq_participant_study_id_subject_code'))
    )
    with op.batch_alter_table('participant', schema=None) as batch_op:
        batch_op.create_index('ix_participant_study_id_site_id', ['study_id', 'site_id'], unique=False)

    op.create_table('staff_membership',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('staff_user_id', sa.Uuid(), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('study_id', sa.Uuid(), nullable=True),
    sa.Column('site_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("role IN ('investigator', 'monitor', 'admin')", name=op.f('ck_staff_membership_role')),
    sa.CheckConstraint("study_id IS NOT NULL OR role = 'admin'", name=op.f('ck_staff_membership_global_admin_only')),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], name=op.f('fk_staff_membership_site_id_site')),
    sa.ForeignKeyConstraint(['staff_user_id'], ['staff_user.id'], name=op.f('fk_staff_membership_staff_user_id_staff_user')),
    sa.ForeignKeyConstraint(['study_id'], ['study.id'], name=op.f('fk_staff_membership_study_id_study')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_membership'))
    )
    with op.batch_alter_table('staff_membership', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_staff_membership_staff_user_id'), ['staff_user_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_staff_membership_study_id'), ['study_id'], unique=False)

    op.create_table('activation_code',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_activation_code_participant_id_participant')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_activation_code')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_activation_code_code_hash'))
    )
    with op.batch_alter_table('activation_code', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_activation_code_participant_id'), ['participant_id'], unique=False)

    op.create_table('refresh_token',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('family_id', sa.Uuid(), nullable=False),
    sa.Column('participant_id', sa.Uuid(), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('spent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['participant_id'], ['participant.id'], name=op.f('fk_refresh_token_participant_id_participant')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refresh_token')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_refresh_token_token_hash'))
    )
    with op.batch_alter_table('refresh_token', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refresh_token_family_id'), ['family_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_refresh_token_participant_id'), ['participant_id'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        # The audit trail is append-only: UPDATE, DELETE and TRUNCATE are refused at the database.
        op.execute(AUDIT_GUARD_FUNCTION)
        op.execute("CREATE TRIGGER audit_event_no_update_delete BEFORE UPDATE OR DELETE "
                   "ON audit_event FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()")
        op.execute("CREATE TRIGGER audit_event_no_truncate BEFORE TRUNCATE "
                   "ON audit_event FOR EACH STATEMENT EXECUTE FUNCTION audit_event_append_only()")
    else:
        op.execute("CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event "
                   "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END")
        op.execute("CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event "
                   "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_truncate ON audit_event")
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_update_delete ON audit_event")
        op.execute("DROP FUNCTION IF EXISTS audit_event_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_delete")

    with op.batch_alter_table('refresh_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refresh_token_participant_id'))
        batch_op.drop_index(batch_op.f('ix_refresh_token_family_id'))

    op.drop_table('refresh_token')
    with op.batch_alter_table('activation_code', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_activation_code_participant_id'))

    op.drop_table('activation_code')
    with op.batch_alter_table('staff_membership', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_staff_membership_study_id'))
        batch_op.drop_index(batch_op.f('ix_staff_membership_staff_user_id'))

    op.drop_table('staff_membership')
    with op.batch_alter_table('participant', schema=None) as batch_op:
        batch_op.drop_index('ix_participant_study_id_site_id')

    op.drop_table('participant')
    with op.batch_alter_table('site', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_site_study_id'))

    op.drop_table('site')
    with op.batch_alter_table('protocol_version', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_protocol_version_study_id'))

    op.drop_table('protocol_version')
    op.drop_table('worker_heartbeat')
    op.drop_table('study')
    op.drop_table('staff_user')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_event_study_id_occurred_at')
        batch_op.drop_index('ix_audit_event_participant_id_occurred_at')
        batch_op.drop_index(batch_op.f('ix_audit_event_occurred_at'))
        batch_op.drop_index('ix_audit_event_entity')

    op.drop_table('audit_event')

