"""families per region and eligibility bit of each stored run (the decisions list's count)

Revision ID: 0711
Revises: 0710
Create Date: 2026-12-07 21:40:00

Creates rules_run_count and fills it for the runs already stored, from their outcome rows
(a stored run never changes; new runs write their counts with their outcomes).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0711"
down_revision: str | None = "0710"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "rules_run_count",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("region_kato", sa.String(length=9), nullable=False),
        sa.Column("families", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["rules_run.id"],
            name=op.f("fk_rules_run_count_run_id_rules_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rules_run_count")),
    )
    with op.batch_alter_table("rules_run_count", schema=None) as batch_op:
        batch_op.create_index(
            "ix_rules_run_count_run_period_position", ["run_id", "period", "position"]
        )
    grouped = op.get_bind().execute(
        sa.text(
            "SELECT run_id, period, COALESCE(region_kato, ''), eligible_mask, count(*)"
            " FROM rules_outcome GROUP BY run_id, period, COALESCE(region_kato, ''),"
            " eligible_mask"
        )
    )
    counts: dict[tuple[int, str, str, int], int] = {}
    for run_id, period, region, mask, families in grouped:
        key = (int(run_id), str(period), str(region))
        counts[(*key, -1)] = counts.get((*key, -1), 0) + int(families)
        bits, position = int(mask) & 0xFFFF_FFFF_FFFF_FFFF, 0
        while bits:
            if bits & 1:
                counts[(*key, position)] = counts.get((*key, position), 0) + int(families)
            bits >>= 1
            position += 1
    if counts:
        op.bulk_insert(
            table,
            [
                {"run_id": r, "period": p, "region_kato": g, "position": b, "families": n}
                for (r, p, g, b), n in sorted(counts.items())
            ],
        )


def downgrade() -> None:
    with op.batch_alter_table("rules_run_count", schema=None) as batch_op:
        batch_op.drop_index("ix_rules_run_count_run_period_position")
    op.drop_table("rules_run_count")
