"""Closed vocabularies of the registry."""

from __future__ import annotations

from enum import StrEnum


class Sex(StrEnum):
    MALE = "M"
    FEMALE = "F"


class Language(StrEnum):
    KAZAKH = "kk"
    RUSSIAN = "ru"
    ENGLISH = "en"


class MemberRole(StrEnum):
    HEAD = "head"
    SPOUSE = "spouse"
    CHILD = "child"
    PARENT = "parent"
    OTHER = "other"


class FactKind(StrEnum):
    """What a fact is about. `detail` narrows it; the allowed details are in FACT_DETAILS."""

    INCOME = "income"
    UNEMPLOYMENT = "unemployment"
    DISABILITY = "disability"
    STUDY = "study"
    AWARD = "award"
    PENSION = "pension"
    PROPERTY = "property"
    LOAN = "loan"
    BIRTH = "birth"
    DEATH = "death"
    SOCIAL_INSURANCE = "social_insurance"


# Allowed `detail` per kind, and the meaning of `qualifier`, `amount_minor` and `quantity`.
FACT_DETAILS: dict[FactKind, frozenset[str]] = {
    # amount_minor = monthly income in tiyn over the validity period
    FactKind.INCOME: frozenset({"wages", "pension", "benefits", "other"}),
    FactKind.UNEMPLOYMENT: frozenset({"registered"}),
    # qualifier = cause: general_illness, occupational, from_childhood, other
    FactKind.DISABILITY: frozenset({"group_1", "group_2", "group_3", "child"}),
    # qualifier = full_time or part_time
    FactKind.STUDY: frozenset({"school", "college", "university"}),
    FactKind.AWARD: frozenset(
        {"altyn_alka", "kumis_alka", "mother_heroine", "maternal_glory_1", "maternal_glory_2"}
    ),
    # quantity = years of participation (стаж участия)
    FactKind.PENSION: frozenset({"retirement"}),
    # quantity = number of objects, amount_minor = assessed value
    FactKind.PROPERTY: frozenset({"real_estate", "vehicle"}),
    # amount_minor = outstanding principal
    FactKind.LOAN: frozenset({"consumer", "mortgage"}),
    FactKind.BIRTH: frozenset({"registered"}),
    FactKind.DEATH: frozenset({"registered"}),
    # one row per month a contribution was paid to the social insurance fund (ГФСС):
    # valid_from..valid_until = that month, amount_minor = the contribution in tiyn
    FactKind.SOCIAL_INSURANCE: frozenset({"contribution"}),
}

DISABILITY_CAUSES = frozenset({"general_illness", "occupational", "from_childhood", "other"})
STUDY_MODES = frozenset({"full_time", "part_time"})


class LinkRelation(StrEnum):
    """How a person is linked to a child: by birth, adoption or guardianship."""

    MOTHER = "mother"
    FATHER = "father"
    ADOPTIVE_MOTHER = "adoptive_mother"
    ADOPTIVE_FATHER = "adoptive_father"
    GUARDIAN = "guardian"


class EventKind(StrEnum):
    """Life events written to the registry outbox."""

    BIRTH = "birth"
    DEATH = "death"
    DISABILITY_ASSIGNED = "disability_assigned"
    UNEMPLOYMENT_REGISTERED = "unemployment_registered"
    FAMILY_CHANGED = "family_changed"


FACT_EVENTS: dict[FactKind, EventKind] = {
    FactKind.BIRTH: EventKind.BIRTH,
    FactKind.DEATH: EventKind.DEATH,
    FactKind.DISABILITY: EventKind.DISABILITY_ASSIGNED,
    FactKind.UNEMPLOYMENT: EventKind.UNEMPLOYMENT_REGISTERED,
}


class BatchStatus(StrEnum):
    LOADING = "loading"
    LOADED = "loaded"
    FAILED = "failed"
