"""Stored jobs for long work: progress, owner and heartbeat, one active whole-registry job
of a kind (a partial unique index).

Revision ID: 0801
Revises: 0711
Create Date: 2026-12-07 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import socialcard.core.types

revision: str = "0801"
down_revision: str | None = "0711"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ACTIVE = "status IN ('queued', 'running') AND scope = 'registry'"


def upgrade() -> None:
    big = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "job",
        sa.Column("id", big, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("scope", sa.String(length=10), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("step", sa.String(length=40), nullable=False),
        sa.Column("done", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_code", sa.String(length=60), nullable=True),
        sa.Column("started_by", sa.String(length=100), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("heartbeat_at", socialcard.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "cancel_requested_at", socialcard.core.types.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("rules_run_id", big, nullable=True),
        sa.Column("created_at", socialcard.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", socialcard.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", socialcard.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["rules_run_id"],
            ["rules_run.id"],
            name=op.f("fk_job_rules_run_id_rules_run"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job")),
    )
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.create_index("ix_job_status", ["status"], unique=False)
        batch_op.create_index("ix_job_created_at", ["created_at"], unique=False)
        batch_op.create_index(
            "uq_job_active_kind",
            ["kind"],
            unique=True,
            sqlite_where=sa.text(_ACTIVE),
            postgresql_where=sa.text(_ACTIVE),
        )


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("uq_job_active_kind")
        batch_op.drop_index("ix_job_created_at")
        batch_op.drop_index("ix_job_status")
    op.drop_table("job")
