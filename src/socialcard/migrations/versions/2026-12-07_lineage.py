"""Parent-child links (birth, adoption, guardianship) with their source agency and dates.

Revision ID: 0702
Revises: 0701
Create Date: 2026-12-07 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import socialcard.core.types

revision: str = "0702"
down_revision: str | None = "0701"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "registry_person_link",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("child_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "parent_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("relation", sa.String(length=20), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_until", sa.Date(), nullable=True),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("batch_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("recorded_at", socialcard.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("superseded_at", socialcard.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["registry_batch.id"],
            name=op.f("fk_registry_person_link_batch_id_registry_batch"),
        ),
        sa.ForeignKeyConstraint(
            ["child_id"],
            ["registry_person.id"],
            name=op.f("fk_registry_person_link_child_id_registry_person"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["registry_person.id"],
            name=op.f("fk_registry_person_link_parent_id_registry_person"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_registry_person_link")),
    )
    with op.batch_alter_table("registry_person_link", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_registry_person_link_child_id"), ["child_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_registry_person_link_parent_id"), ["parent_id"], unique=False
        )
        batch_op.create_index(
            "uq_registry_person_link_live_key",
            ["child_id", "parent_id", "relation", "source"],
            unique=True,
            sqlite_where=sa.text("superseded_at IS NULL"),
            postgresql_where=sa.text("superseded_at IS NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("registry_person_link", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_registry_person_link_live_key",
            sqlite_where=sa.text("superseded_at IS NULL"),
            postgresql_where=sa.text("superseded_at IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_registry_person_link_parent_id"))
        batch_op.drop_index(batch_op.f("ix_registry_person_link_child_id"))
    op.drop_table("registry_person_link")
