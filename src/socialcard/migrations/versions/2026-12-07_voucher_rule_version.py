"""wallet vouchers keep the rule version and rule pack they were valued with

Revision ID: 0701
Revises: 0301
Create Date: 2026-12-07 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0701"
down_revision: str | None = "0301"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("wallet_voucher") as batch:
        batch.add_column(sa.Column("rule_version", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("rule_pack_hash", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("wallet_voucher") as batch:
        batch.drop_column("rule_pack_hash")
        batch.drop_column("rule_version")
