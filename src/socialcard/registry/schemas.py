"""What the registry sends and receives over the API."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict


class PersonRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    national_id: str
    last_name: str
    first_name: str
    patronymic: str | None
    birth_on: date
    sex: str
    phone: str | None
    language: str
    region_kato: str
    address: str | None
    death_on: date | None


class PersonPage(BaseModel):
    items: list[PersonRead]
    page: int
    size: int
    total: int


class FactRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    detail: str
    qualifier: str | None
    amount_minor: int | None
    quantity: int | None
    valid_from: date
    valid_until: date | None
    source: str
    recorded_at: datetime
    superseded_at: datetime | None


class MemberRead(BaseModel):
    role: str
    from_on: date
    until_on: date | None
    person: PersonRead
    facts: list[FactRead]


class FamilyRead(BaseModel):
    id: int
    ref: str
    region_kato: str
    as_of: date
    members: list[MemberRead]


class PersonDetail(PersonRead):
    """A person with their current family and the facts in force."""

    family_id: int | None
    role: str | None
    as_of: date
    facts: list[FactRead]


class RegionRead(BaseModel):
    kato: str
    name_kk: str
    name_ru: str
    name_en: str
