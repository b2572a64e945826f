"""case-folded last and first names of persons, indexed, for the name search

Revision ID: 0710
Revises: 0702
Create Date: 2026-12-07 21:20:00

Adds registry_person.last_name_folded / first_name_folded (Unicode casefold, see
registry/folding.py; "C" collation on PostgreSQL so that a prefix is a byte range), fills them
from the names (each distinct name folded once in Python, then one UPDATE through a mapping
table: a few thousand distinct names for millions of persons), makes them NOT NULL and indexes
them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from socialcard.registry.folding import FOLDED_COLUMNS, fold_name

revision: str = "0710"
down_revision: str | None = "0702"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MAP = "migration_folded_name"


def _folded_type() -> sa.types.TypeEngine[str]:
    return sa.String(length=100).with_variant(sa.String(length=100, collation="C"), "postgresql")


def _backfill(bind: sa.Connection) -> None:
    """Both folded columns in one UPDATE (each rewrite of a row leaves a dead copy behind on
    PostgreSQL), from a table of each distinct name and its folded form."""
    names: set[str] = set()
    for name, _ in FOLDED_COLUMNS:
        names.update(
            row[0]
            for row in bind.execute(sa.text(f"SELECT DISTINCT {name} FROM registry_person"))
            if row[0] is not None
        )
    if not names:
        return
    bind.execute(sa.text(f"CREATE TEMPORARY TABLE {_MAP} (name VARCHAR(100), folded VARCHAR(100))"))
    bind.execute(
        sa.text(f"INSERT INTO {_MAP} (name, folded) VALUES (:name, :folded)"),
        [{"name": n, "folded": fold_name(n)} for n in sorted(names)],
    )
    bind.execute(sa.text(f"CREATE UNIQUE INDEX ix_{_MAP} ON {_MAP} (name)"))
    (last, last_folded), (first, first_folded) = FOLDED_COLUMNS
    bind.execute(
        sa.text(
            f"UPDATE registry_person SET {last_folded} = a.folded, {first_folded} = b.folded"
            f" FROM {_MAP} a, {_MAP} b"
            f" WHERE a.name = registry_person.{last} AND b.name = registry_person.{first}"
        )
    )
    bind.execute(sa.text(f"DROP TABLE {_MAP}"))


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    with op.batch_alter_table("registry_person", schema=None) as batch_op:
        for _, folded in FOLDED_COLUMNS:
            # SQLite adds a NOT NULL column only with a default, and changing it afterwards
            # would copy the whole table (millions of rows): the '' default stays there, and
            # every write path sets the column (PostgreSQL, without a default, checks that).
            batch_op.add_column(
                sa.Column(
                    folded,
                    _folded_type(),
                    nullable=not sqlite,
                    # A constant (not an expression), or batch mode would copy the table.
                    server_default="" if sqlite else None,
                )
            )
    _backfill(bind)
    with op.batch_alter_table("registry_person", schema=None) as batch_op:
        if not sqlite:
            for _, folded in FOLDED_COLUMNS:
                batch_op.alter_column(folded, existing_type=_folded_type(), nullable=False)
        batch_op.create_index("ix_registry_person_last_name_folded", ["last_name_folded"])
        batch_op.create_index("ix_registry_person_first_name_folded", ["first_name_folded"])
    if not sqlite:
        # Statistics of the new columns, or the planner guesses how many names a prefix
        # matches (autovacuum catches up later; the search is used at once).
        bind.execute(sa.text("ANALYZE registry_person"))


def downgrade() -> None:
    with op.batch_alter_table("registry_person", schema=None) as batch_op:
        batch_op.drop_index("ix_registry_person_first_name_folded")
        batch_op.drop_index("ix_registry_person_last_name_folded")
        for _, folded in reversed(FOLDED_COLUMNS):
            batch_op.drop_column(folded)
