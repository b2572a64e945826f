"""wallet vouchers keep the decision they were issued from; SMS replies find offers by phone

Revision ID: 0008
Revises: 0005
Create Date: 2026-11-30 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("wallet_voucher") as batch:
        batch.add_column(sa.Column("source_run_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("source_program_id", sa.String(length=80), nullable=True))
        batch.add_column(sa.Column("source_period", sa.String(length=7), nullable=True))
        batch.add_column(sa.Column("source_entity_type", sa.String(length=6), nullable=True))
        batch.add_column(sa.Column("source_entity_id", sa.BigInteger(), nullable=True))
    op.create_index("ix_proactive_message_phone", "proactive_message", ["phone"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_proactive_message_phone", table_name="proactive_message")
    with op.batch_alter_table("wallet_voucher") as batch:
        batch.drop_column("source_entity_id")
        batch.drop_column("source_entity_type")
        batch.drop_column("source_period")
        batch.drop_column("source_program_id")
        batch.drop_column("source_run_id")
