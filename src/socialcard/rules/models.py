"""Rules tables: stored runs, their programs and regional summaries, and packed outcomes.

A run evaluates every program of a pack over the whole registry for one or more months.
Per (run, month, program) `rules_run_program` keeps the version, the parameter values, the
legal basis and the names and types of the conditions and variables each decision carries.
Per (run, month, family) one `rules_outcome` row packs every decision of the family and of
its members (eligibility, amount, each condition's value and each variable's value), in the
order `rules_run_program` lists them (see `rules.codec`): 1 M families write 1 M rows a month,
not the ~28 M rows of one row per decision.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from socialcard.core.clock import utcnow
from socialcard.core.db import Base
from socialcard.core.types import BigId, UTCDateTime


class RulesRun(Base):
    """One whole-registry evaluation of a pack for one or more consecutive periods."""

    __tablename__ = "rules_run"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    pack_id: Mapped[str] = mapped_column(String(60))
    pack_path: Mapped[str] = mapped_column(String(300))
    pack_hash: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(7), index=True)  # the first period
    months: Mapped[int] = mapped_column(Integer, default=1)
    programs: Mapped[list[str] | None] = mapped_column(JSON)  # None: every program
    status: Mapped[str] = mapped_column(String(12), default="queued")
    error: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str | None] = mapped_column(String(100))
    families: Mapped[int] = mapped_column(Integer, default=0)
    persons: Mapped[int] = mapped_column(Integer, default=0)
    decisions: Mapped[int] = mapped_column(BigInteger, default=0)
    eligible: Mapped[int] = mapped_column(BigInteger, default=0)
    read_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    compile_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    evaluate_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    write_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RulesRunProgram(Base):
    """A program in one period of a run: its version, parameters and what decisions carry."""

    __tablename__ = "rules_run_program"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("rules_run.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(7))
    program_id: Mapped[str] = mapped_column(String(80))
    position: Mapped[int] = mapped_column(Integer)  # bit of `eligible_mask`, slot in payload
    entity: Mapped[str] = mapped_column(String(6))  # family | person
    version: Mapped[str | None] = mapped_column(String(10))
    citation: Mapped[str] = mapped_column(Text, default="")
    legal_basis: Mapped[dict[str, str]] = mapped_column(JSON)
    parameters: Mapped[list[list[Any]]] = mapped_column(JSON)  # [name, type, text]
    conditions: Mapped[list[str]] = mapped_column(JSON)
    variables: Mapped[list[list[str]]] = mapped_column(JSON)  # [name, type]
    evaluated: Mapped[int] = mapped_column(Integer, default=0)
    eligible: Mapped[int] = mapped_column(Integer, default=0)
    amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        Index(
            "uq_rules_run_program_run_period_program", "run_id", "period", "program_id", unique=True
        ),
    )


class RulesRunRegion(Base):
    """Counts and cost of a program in one region (KATO oblast level) in one period."""

    __tablename__ = "rules_run_region"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("rules_run.id", ondelete="CASCADE"), index=True)
    period: Mapped[str] = mapped_column(String(7))
    program_id: Mapped[str] = mapped_column(String(80))
    region_kato: Mapped[str] = mapped_column(String(9))
    evaluated: Mapped[int] = mapped_column(Integer, default=0)
    eligible: Mapped[int] = mapped_column(Integer, default=0)
    amount_minor: Mapped[int] = mapped_column(BigInteger, default=0)


class RulesOutcome(Base):
    """Every decision of one family (and its members) in one period of a run, packed.

    `family_key` is the family id, or minus the person id for a person without a family.
    Bit `position` of `eligible_mask` is set when the family (family programs) or any member
    (person programs) is eligible for the program at that position.
    """

    __tablename__ = "rules_outcome"

    run_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    family_key: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    family_id: Mapped[int | None] = mapped_column(BigInteger)
    head_person_id: Mapped[int | None] = mapped_column(BigInteger)
    region_kato: Mapped[str | None] = mapped_column(String(9))
    eligible_mask: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[str] = mapped_column(Text)


class RulesRunCount(Base):
    """How many families' outcome rows of a run fall in one region (the outcome's KATO code,
    '' for none) in one period: all of them (`position` -1) and those with bit `position` of
    `eligible_mask` set. Written with the outcomes (a stored run never changes), so a list of
    decisions counts its pages from a few rows instead of every outcome of the run."""

    __tablename__ = "rules_run_count"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("rules_run.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(7))
    position: Mapped[int] = mapped_column(Integer)
    region_kato: Mapped[str] = mapped_column(String(9))
    families: Mapped[int] = mapped_column(Integer)

    __table_args__ = (
        Index("ix_rules_run_count_run_period_position", "run_id", "period", "position"),
    )
