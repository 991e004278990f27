"""drop ix_diary_entry_version_entry_id

The unique constraint ``(entry_id, version)`` leads with ``entry_id``: it already serves every
lookup and join by entry (and the foreign key's checks), so the single-column index only cost
every capture a page write (26 -> 25 per single entry on SQLite) and PostgreSQL its WAL.
Dropped CONCURRENTLY on PostgreSQL (no lock on the writers); the downgrade builds it again the
same way. Either step is safe to run twice.

Revision ID: 0406_drop_version_entry_index
Revises: 0405_vital_sign_fever_index
Create Date: 2026-12-04 20:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0406_drop_version_entry_index"
down_revision: str | None = "0405_vital_sign_fever_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_diary_entry_version_entry_id"
TABLE = "diary_entry_version"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index(INDEX, table_name=TABLE, postgresql_concurrently=True, if_exists=True)
    else:
        op.drop_index(INDEX, table_name=TABLE, if_exists=True)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            # An interrupted CONCURRENTLY build leaves an invalid index: drop it, build again.
            op.drop_index(INDEX, table_name=TABLE, postgresql_concurrently=True, if_exists=True)
            op.create_index(INDEX, TABLE, ["entry_id"], postgresql_concurrently=True)
    else:
        op.create_index(INDEX, TABLE, ["entry_id"], if_not_exists=True)
