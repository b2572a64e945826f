"""Outreach: well-being segments and a light case record per invited family.

Revision ID: 0851
Revises: 0801
Create Date: 2026-12-07 21:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import socialcard.core.types

revision: str = "0851"
down_revision: str | None = "0801"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "outreach_segment",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("methodology_id", sa.String(length=100), nullable=True),
        sa.Column("levels", sa.JSON(), nullable=False),
        sa.Column("region", sa.String(length=9), nullable=True),
        sa.Column("indicators", sa.JSON(), nullable=False),
        sa.Column("worsened", sa.Boolean(), nullable=False),
        sa.Column("condition", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", socialcard.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outreach_segment")),
        sa.UniqueConstraint("code", name=op.f("uq_outreach_segment_code")),
    )
    op.create_table(
        "outreach_case",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("segment_code", sa.String(length=40), nullable=False),
        sa.Column("offer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("campaign_id", sa.BigInteger(), nullable=False),
        sa.Column("wellbeing_run_id", sa.BigInteger(), nullable=False),
        sa.Column("family_id", sa.BigInteger(), nullable=False),
        sa.Column("person_id", sa.BigInteger(), nullable=False),
        sa.Column("region_kato", sa.String(length=9), nullable=False),
        sa.Column("level", sa.String(length=4), nullable=False),
        sa.Column("assigned_worker", sa.String(length=100), nullable=True),
        sa.Column("contacts", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("next_review_on", sa.Date(), nullable=True),
        sa.Column("created_at", socialcard.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", socialcard.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["offer_id"],
            ["proactive_offer.id"],
            name=op.f("fk_outreach_case_offer_id_proactive_offer"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outreach_case")),
        sa.UniqueConstraint("offer_id", name=op.f("uq_outreach_case_offer_id")),
    )
    with op.batch_alter_table("outreach_case", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outreach_case_family_id"), ["family_id"], unique=False)
        batch_op.create_index(
            "ix_outreach_case_segment_code_outcome", ["segment_code", "outcome"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("outreach_case", schema=None) as batch_op:
        batch_op.drop_index("ix_outreach_case_segment_code_outcome")
        batch_op.drop_index(batch_op.f("ix_outreach_case_family_id"))
    op.drop_table("outreach_case")
    op.drop_table("outreach_segment")
