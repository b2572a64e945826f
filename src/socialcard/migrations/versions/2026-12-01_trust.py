"""trust: bound, expiring keys; a hash-chained audit log; approvals; one-time codes

API keys carry their binding (citizen person, merchant, agency and sources), expiry and the
keyring key that hashed them (citizen keys move here from wallet_citizen_key). The audit log
gets each row's MAC and its place in the chain (seq, hashes, key ids), the server's and the
client's request ids and a detail; existing rows are MAC'd and chained in id order under the
keyring's audit key. Maker–checker approvals
and one-time codes get their tables; terminals expire; outbox messages keep a reference to
the secret (link or code) filled in only when sent.

Revision ID: 0301
Revises: 0008
Create Date: 2026-12-01 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0301"
down_revision: str | None = "0501"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GENESIS = "0" * 64
# A column referring to a BigId primary key has its type (INTEGER on SQLite).
_FK_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _chain_existing() -> None:
    """MAC and chain the audit rows written before the chain (id order)."""
    from socialcard.core.types import UTCDateTime
    from socialcard.security import chain, keyring

    bind = op.get_bind()
    columns = ("id", "seq", "row_mac", "key_id", "prev_hash", "row_hash", "chain_key_id")
    event = sa.table("security_audit_event", *(sa.column(n) for n in (*columns, *chain.FIELDS)))
    rows = [dict(r._mapping) for r in bind.execute(event.select().order_by(event.c.id))]
    prev, seq = _GENESIS, 0
    if rows:
        decode = UTCDateTime().process_result_value
        key = keyring.keyset("audit_chain").current
        for row in rows:
            seq += 1
            row.update(client_request_id=None, detail=None)
            row["at"] = decode(row["at"], bind.dialect)
            mac = chain.row_mac(key, row)
            row_hash = chain.link(key, prev, seq, mac)
            bind.execute(
                event.update()
                .where(event.c.id == row["id"])
                .values(
                    seq=seq,
                    row_mac=mac,
                    key_id=key.id,
                    prev_hash=prev,
                    row_hash=row_hash,
                    chain_key_id=key.id,
                )
            )
            prev = row_hash
    head = sa.table("security_audit_head", sa.column("id"), sa.column("seq"), sa.column("row_hash"))
    bind.execute(head.insert().values(id=1, seq=seq, row_hash=prev))


def upgrade() -> None:
    with op.batch_alter_table("security_api_key") as batch:
        batch.add_column(sa.Column("hash_key_id", sa.String(length=24), nullable=True))
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("person_id", _FK_ID, nullable=True))
        batch.add_column(sa.Column("merchant_id", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("agency", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("sources", sa.String(length=400), nullable=True))
        batch.create_foreign_key(
            op.f("fk_security_api_key_person_id_registry_person"),
            "registry_person",
            ["person_id"],
            ["id"],
        )
        batch.create_index(op.f("ix_security_api_key_person_id"), ["person_id"], unique=False)
    op.execute(
        "UPDATE security_api_key SET person_id = (SELECT c.person_id FROM wallet_citizen_key c "
        "WHERE c.api_key_id = security_api_key.id) "
        "WHERE id IN (SELECT api_key_id FROM wallet_citizen_key)"
    )
    op.drop_index(op.f("ix_wallet_citizen_key_person_id"), table_name="wallet_citizen_key")
    op.drop_table("wallet_citizen_key")

    op.create_table(
        "security_audit_head",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("row_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_audit_head")),
    )
    with op.batch_alter_table("security_audit_event") as batch:
        batch.alter_column("action", existing_type=sa.String(length=40), type_=sa.String(length=60))
        batch.add_column(sa.Column("seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("client_request_id", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("detail", sa.String(length=300), nullable=True))
        batch.add_column(sa.Column("row_mac", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("key_id", sa.String(length=24), nullable=True))
        batch.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("row_hash", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("chain_key_id", sa.String(length=24), nullable=True))
    _chain_existing()
    with op.batch_alter_table("security_audit_event") as batch:
        batch.alter_column("row_mac", existing_type=sa.String(length=64), nullable=False)
        batch.alter_column("key_id", existing_type=sa.String(length=24), nullable=False)
        batch.create_unique_constraint(op.f("uq_security_audit_event_seq"), ["seq"])
    op.create_index(
        "ix_security_audit_event_unsealed",
        "security_audit_event",
        ["id"],
        unique=False,
        postgresql_where=sa.text("seq IS NULL"),
        sqlite_where=sa.text("seq IS NULL"),
    )

    op.create_table(
        "security_approval",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("summary", sa.String(length=300), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("maker_key_id", _FK_ID, nullable=True),
        sa.Column("maker_name", sa.String(length=80), nullable=False),
        sa.Column("maker_role", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("checker_key_id", _FK_ID, nullable=True),
        sa.Column("checker_name", sa.String(length=80), nullable=True),
        sa.Column("checker_role", sa.String(length=20), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["maker_key_id"],
            ["security_api_key.id"],
            name=op.f("fk_security_approval_maker_key_id_security_api_key"),
        ),
        sa.ForeignKeyConstraint(
            ["checker_key_id"],
            ["security_api_key.id"],
            name=op.f("fk_security_approval_checker_key_id_security_api_key"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_approval")),
    )
    op.create_index(
        op.f("ix_security_approval_status"), "security_approval", ["status"], unique=False
    )
    op.create_table(
        "security_one_time_code",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("purpose", sa.String(length=30), nullable=False),
        sa.Column("subject", sa.String(length=80), nullable=False),
        sa.Column("person_id", sa.BigInteger(), nullable=False),
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("key_id", sa.String(length=24), nullable=False),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("consumed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_one_time_code")),
    )
    op.create_index(
        "ix_security_one_time_code_subject",
        "security_one_time_code",
        ["purpose", "subject"],
        unique=False,
    )
    with op.batch_alter_table("wallet_terminal") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("proactive_message") as batch:
        batch.add_column(sa.Column("secret_ref", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("proactive_message") as batch:
        batch.drop_column("secret_ref")
    with op.batch_alter_table("wallet_terminal") as batch:
        batch.drop_column("expires_at")
    op.drop_index("ix_security_one_time_code_subject", table_name="security_one_time_code")
    op.drop_table("security_one_time_code")
    op.drop_index(op.f("ix_security_approval_status"), table_name="security_approval")
    op.drop_table("security_approval")
    op.drop_index("ix_security_audit_event_unsealed", table_name="security_audit_event")
    with op.batch_alter_table("security_audit_event") as batch:
        batch.drop_constraint(op.f("uq_security_audit_event_seq"), type_="unique")
        for name in (
            "chain_key_id",
            "row_hash",
            "prev_hash",
            "key_id",
            "row_mac",
            "detail",
            "client_request_id",
            "seq",
        ):
            batch.drop_column(name)
        batch.alter_column("action", existing_type=sa.String(length=60), type_=sa.String(length=40))
    op.drop_table("security_audit_head")
    op.create_table(
        "wallet_citizen_key",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("api_key_id", sa.BigInteger(), nullable=False),
        sa.Column("person_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["security_api_key.id"],
            name=op.f("fk_wallet_citizen_key_api_key_id_security_api_key"),
        ),
        sa.ForeignKeyConstraint(
            ["person_id"],
            ["registry_person.id"],
            name=op.f("fk_wallet_citizen_key_person_id_registry_person"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_citizen_key")),
        sa.UniqueConstraint("api_key_id", name=op.f("uq_wallet_citizen_key_api_key_id")),
    )
    op.create_index(
        op.f("ix_wallet_citizen_key_person_id"), "wallet_citizen_key", ["person_id"], unique=False
    )
    with op.batch_alter_table("security_api_key") as batch:
        batch.drop_index(op.f("ix_security_api_key_person_id"))
        batch.drop_constraint(
            op.f("fk_security_api_key_person_id_registry_person"), type_="foreignkey"
        )
        for name in ("sources", "agency", "merchant_id", "person_id", "expires_at", "hash_key_id"):
            batch.drop_column(name)
