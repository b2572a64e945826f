"""Registry tables: person, family, membership, fact, batch, quarantine, event outbox."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, validates

from socialcard.core.clock import utcnow
from socialcard.core.db import Base
from socialcard.core.types import BigId, UTCDateTime
from socialcard.registry.folding import fold_name

# A folded name: byte order on both stores (SQLite's default BINARY collation; "C" on
# PostgreSQL, whatever the database's locale), so that `>= p AND < p + U+10FFFF` is an index
# range.
FoldedName = String(100).with_variant(String(100, collation="C"), "postgresql")


class Person(Base):
    """A person known to the registry, keyed by the national identifier."""

    __tablename__ = "registry_person"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    national_id: Mapped[str] = mapped_column(String(20), unique=True)
    country: Mapped[str] = mapped_column(String(2), default="KZ")
    last_name: Mapped[str] = mapped_column(String(100))
    first_name: Mapped[str] = mapped_column(String(100))
    # The names case-folded for search (registry/folding.py), set with the names on every
    # write path; compared byte by byte ("C" on PostgreSQL) so a prefix is an index range.
    last_name_folded: Mapped[str] = mapped_column(FoldedName)
    first_name_folded: Mapped[str] = mapped_column(FoldedName)
    patronymic: Mapped[str | None] = mapped_column(String(100))
    birth_on: Mapped[date] = mapped_column(Date)
    sex: Mapped[str] = mapped_column(String(1))
    phone: Mapped[str | None] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(2), default="kk")
    region_kato: Mapped[str] = mapped_column(String(9), index=True)
    address: Mapped[str | None] = mapped_column(String(300))
    death_on: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_registry_person_last_name_first_name", "last_name", "first_name"),
        Index("ix_registry_person_last_name_folded", "last_name_folded"),
        Index("ix_registry_person_first_name_folded", "first_name_folded"),
    )

    @validates("last_name", "first_name")
    def _fold(self, key: str, value: str) -> str:
        setattr(self, f"{key}_folded", fold_name(value) if value is not None else None)
        return value


class Family(Base):
    """A family (household); `ref` is the civil registry's household key."""

    __tablename__ = "registry_family"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ref: Mapped[str] = mapped_column(String(40), unique=True)
    region_kato: Mapped[str] = mapped_column(String(9), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FamilyMember(Base):
    """A person's membership of a family with a role, from a date until a date (open = current)."""

    __tablename__ = "registry_family_member"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    family_id: Mapped[int] = mapped_column(ForeignKey("registry_family.id"), index=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("registry_person.id"))
    role: Mapped[str] = mapped_column(String(10))
    from_on: Mapped[date] = mapped_column(Date)
    until_on: Mapped[date | None] = mapped_column(Date)

    __table_args__ = (
        # A person belongs to one family at a time: one open membership per person.
        Index(
            "uq_registry_family_member_current_person",
            "person_id",
            unique=True,
            sqlite_where=text("until_on IS NULL"),
            postgresql_where=text("until_on IS NULL"),
        ),
        Index("ix_registry_family_member_person_id", "person_id"),
    )


class Fact(Base):
    """A dated fact about a person from one agency. Rows are never deleted: a correction from
    the same agency marks the older row superseded, and a later validity supersedes an earlier
    one when the current state is read."""

    __tablename__ = "registry_fact"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("registry_person.id"))
    kind: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str] = mapped_column(String(40))
    qualifier: Mapped[str | None] = mapped_column(String(40))
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    quantity: Mapped[int | None] = mapped_column(Integer)
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(40))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("registry_batch.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_registry_fact_person_id_kind", "person_id", "kind"),
        # The natural key of a live fact: same agency, same person, same thing, same start.
        Index(
            "uq_registry_fact_live_key",
            "person_id",
            "kind",
            "detail",
            "source",
            "valid_from",
            unique=True,
            sqlite_where=text("superseded_at IS NULL"),
            postgresql_where=text("superseded_at IS NULL"),
        ),
    )


class PersonLink(Base):
    """A parent-child link from one agency: birth (mother, father), adoption (adoptive_mother,
    adoptive_father) or guardianship (guardian), valid from a date until a date. Rows are never
    deleted: a correction from the same agency marks the older row superseded."""

    __tablename__ = "registry_person_link"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    child_id: Mapped[int] = mapped_column(ForeignKey("registry_person.id"), index=True)
    parent_id: Mapped[int] = mapped_column(ForeignKey("registry_person.id"), index=True)
    relation: Mapped[str] = mapped_column(String(20))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(40))
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("registry_batch.id"))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        # The natural key of a live link: the same child, parent and relation from one agency.
        Index(
            "uq_registry_person_link_live_key",
            "child_id",
            "parent_id",
            "relation",
            "source",
            unique=True,
            sqlite_where=text("superseded_at IS NULL"),
            postgresql_where=text("superseded_at IS NULL"),
        ),
    )


class Batch(Base):
    """One file or API batch from a source; its key makes a resend a no-op."""

    __tablename__ = "registry_batch"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    source: Mapped[str] = mapped_column(String(40))
    agency: Mapped[str] = mapped_column(String(40))
    batch_key: Mapped[str] = mapped_column(String(100))
    content_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10))
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_accepted: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (UniqueConstraint("source", "agency", "batch_key"),)


class QuarantinedRow(Base):
    """A rejected row with the field and the reason; the batch's good rows still landed."""

    __tablename__ = "registry_quarantine"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("registry_batch.id"), index=True)
    row_number: Mapped[int] = mapped_column(Integer)
    field: Mapped[str] = mapped_column(String(60))
    reason: Mapped[str] = mapped_column(String(300))
    raw: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Event(Base):
    """A life event in the outbox; `id` is the order consumers read in, from their own cursor."""

    __tablename__ = "registry_event"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(30))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("registry_person.id"))
    family_id: Mapped[int | None] = mapped_column(ForeignKey("registry_family.id"))
    occurred_on: Mapped[date] = mapped_column(Date)
    payload: Mapped[str] = mapped_column(Text, default="{}")
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EventCursor(Base):
    """How far a consumer (another domain) has read the event outbox."""

    __tablename__ = "registry_event_cursor"

    consumer: Mapped[str] = mapped_column(String(60), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
