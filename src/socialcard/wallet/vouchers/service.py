"""Vouchers: issue (from funding), activation by the citizen, expiry back to the program."""

from __future__ import annotations

import calendar
import json
import secrets
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from socialcard.core.clock import utcnow
from socialcard.core.errors import field_error
from socialcard.core.logging import get_logger
from socialcard.registry import service as registry_service
from socialcard.security import service as security_service
from socialcard.security.enums import Purpose
from socialcard.security.schemas import Actor
from socialcard.wallet.business_day import business_day
from socialcard.wallet.enums import AccountKind, HoldStatus, PostingKind, VoucherStatus
from socialcard.wallet.errors import (
    ActivationRefused,
    NotYourWallet,
    UnknownVoucherType,
    VoucherNotFound,
)
from socialcard.wallet.funding.schemas import DecisionRef
from socialcard.wallet.ledger import service as ledger_service
from socialcard.wallet.types import Record
from socialcard.wallet.vouchers import repository
from socialcard.wallet.vouchers.catalog import VoucherType, load_catalog
from socialcard.wallet.vouchers.schemas import (
    BalanceRead,
    ExpiryResult,
    HistoryRow,
    PrescriptionLine,
    VoucherRead,
    VoucherStatRow,
    VoucherSummaryRow,
    WalletRead,
)

log = get_logger(__name__)
lock_voucher = repository.lock_voucher
update_voucher = repository.update_voucher
voucher_by_token = repository.voucher_by_token


def voucher_type(code: str) -> VoucherType:
    """The catalog entry of a voucher type; UnknownVoucherType names the valid ones."""
    found = load_catalog().voucher_types.get(code)
    if found is None:
        raise UnknownVoucherType(
            f"unknown benefit type {code!r}; use one of "
            + ", ".join(sorted(load_catalog().voucher_types)),
            details=[field_error("benefit_type", "unknown")],
        )
    return found


def expired_account_code(program_id: str, region_kato: str) -> str:
    return f"expired:{program_id}:{region_kato}"


def new_voucher_rows(
    *,
    person_id: int,
    vtype: VoucherType,
    program_id: str,
    region_kato: str,
    period: str,
    nominal_minor: int,
    valid_from: date,
    valid_until: date,
    bound_merchant_id: int | None = None,
    utility_account: str | None = None,
    fare_category: str | None = None,
    prescription: list[PrescriptionLine] | None = None,
    source: DecisionRef | None = None,
    now: datetime,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The rows of a new voucher and its own (empty) citizen account: (account, voucher).

    The voucher row's `account_id` is left for the caller to fill once the account is written
    (funding writes a batch of them: repository.insert_vouchers).
    """
    token = secrets.token_urlsafe(18)
    account = ledger_service.new_account_values(
        code=f"citizen:{person_id}:{vtype.code}:{token[:12]}",
        kind=AccountKind.CITIZEN,
        now=now,
        person_id=person_id,
        benefit_type=vtype.code,
        program_id=program_id,
        region_kato=region_kato,
    )
    status = VoucherStatus.CREATED if vtype.needs_activation else VoucherStatus.ACTIVATED
    voucher = {
        "token": token,
        "person_id": person_id,
        "type": vtype.code,
        "program_id": program_id,
        "region_kato": region_kato,
        "period": period,
        "account_id": None,
        "status": status.value,
        "nominal_minor": nominal_minor,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "bound_merchant_id": bound_merchant_id,
        "utility_account": utility_account,
        "fare_category": fare_category,
        "prescription": json.dumps(
            [{"atc": p.atc, "quantity": p.quantity, "dispensed": 0} for p in prescription]
        )
        if prescription
        else None,
        "uses_on_day": 0,
        "created_at": now,
        "activated_at": None if vtype.needs_activation else now,
        "source_run_id": source.run_id if source else None,
        "source_program_id": source.program_id if source else None,
        "source_period": source.period if source else None,
        "source_entity_type": source.entity_type if source else None,
        "source_entity_id": source.entity_id if source else None,
        "rule_version": source.rule_version if source else None,
        "rule_pack_hash": source.pack_hash if source else None,
    }
    return account, voucher


insert_vouchers = repository.insert_vouchers


def activate(
    session: Session,
    *,
    person_id: int,
    voucher_id: int,
    utility_account: str | None,
    now: datetime | None = None,
) -> VoucherRead:
    """The citizen activates a voucher (gas: with the utility account, from the 7th to the 29th)."""
    now = now or utcnow()
    ledger_service.begin_write(session)
    voucher = repository.lock_voucher(session, voucher_id=voucher_id)
    if voucher is None or voucher.person_id != person_id:
        raise VoucherNotFound(f"no voucher {voucher_id} in your wallet")
    vtype = voucher_type(voucher.type)
    if voucher.status != VoucherStatus.CREATED.value:
        if voucher.status in (VoucherStatus.ACTIVATED.value, VoucherStatus.PARTLY_REDEEMED.value):
            return _voucher_read(session, voucher, language=None)
        raise ActivationRefused(f"the voucher is {voucher.status}")
    today = business_day(now)
    if not voucher.valid_from <= today <= voucher.valid_until:
        raise ActivationRefused(
            "the voucher is outside its validity period", code="activation_outside_window"
        )
    if vtype.activation_days and not (
        vtype.activation_days[0] <= today.day <= vtype.activation_days[1]
    ):
        first, last = vtype.activation_days
        raise ActivationRefused(
            f"this voucher can be activated from day {first} to day {last} of the month",
            code="activation_outside_window",
            details=[field_error("date", f"day {today.day} is outside {first}..{last}")],
        )
    values: dict[str, Any] = {"status": VoucherStatus.ACTIVATED.value, "activated_at": now}
    if vtype.activation_requires == "utility_account":
        if not utility_account:
            raise ActivationRefused(
                "enter the gas utility account number to activate",
                code="utility_account_required",
                details=[field_error("utility_account", "required")],
            )
        values["utility_account"] = utility_account
        year, month = int(voucher.period[:4]), int(voucher.period[5:7])
        values["valid_until"] = date(year, month, calendar.monthrange(year, month)[1])
    repository.update_voucher(session, voucher_id, values)
    refreshed = repository.lock_voucher(session, voucher_id=voucher_id)
    assert refreshed is not None  # noqa: S101 - locked just above
    return _voucher_read(session, refreshed, language=None)


def _title(vtype: VoucherType, language: str | None) -> str:
    return vtype.title.get(language or "ru") or vtype.title["ru"]


def _voucher_read(session: Session, row: Record, *, language: str | None) -> VoucherRead:
    language = language or registry_service.preferred_language(session, person_id=row.person_id)
    return VoucherRead(
        id=row.id,
        type=row.type,
        title=_title(voucher_type(row.type), language),
        token=row.token,
        status=row.status,
        period=row.period,
        nominal_minor=row.nominal_minor,
        balance_minor=row.balance_minor,
        available_minor=row.balance_minor - row.held_minor,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        activated_at=row.activated_at,
    )


def _record_wallet_read(session: Session, actor: Actor | None, person_id: int, what: str) -> None:
    if actor is not None:
        security_service.record_access(
            session,
            actor=actor,
            action=f"wallet.{what}.read",
            subject_type="person",
            subject_ids=[person_id],
            purpose=Purpose.SELF_SERVICE,
        )


def citizen_wallet(session: Session, *, person_id: int, actor: Actor | None = None) -> WalletRead:
    """A citizen's balances per benefit type and their vouchers, titles in their language
    (the key's read is audited: their "who read my data" shows every use of a citizen key)."""
    _record_wallet_read(session, actor, person_id, "wallet")
    language = registry_service.preferred_language(session, person_id=person_id)
    vouchers = [
        _voucher_read(session, row, language=language)
        for row in repository.person_vouchers(session, person_id)
    ]
    totals: dict[str, list[int]] = {}
    for voucher in vouchers:
        if voucher.status == VoucherStatus.EXPIRED.value:
            continue
        entry = totals.setdefault(voucher.type, [0, 0])
        entry[0] += voucher.balance_minor
        entry[1] += voucher.available_minor
    balances = [
        BalanceRead(
            benefit_type=code,
            title=_title(voucher_type(code), language),
            balance_minor=total[0],
            available_minor=total[1],
        )
        for code, total in sorted(totals.items())
    ]
    return WalletRead(person_id=person_id, balances=balances, vouchers=vouchers)


def citizen_history(
    session: Session, *, person_id: int, limit: int = 100, actor: Actor | None = None
) -> list[HistoryRow]:
    """Every movement on the citizen's voucher accounts, newest first (audited like
    `citizen_wallet`)."""
    _record_wallet_read(session, actor, person_id, "history")
    account_ids = [row.account_id for row in repository.person_vouchers(session, person_id)]
    if not account_ids:
        return []
    return [
        HistoryRow(
            posting_id=row.id,
            kind=row.kind,
            posted_at=row.posted_at,
            voucher_id=row.voucher_id,
            amount_minor=row.amount_minor,
        )
        for row in ledger_service.history(session, account_ids=account_ids, limit=limit)
    ]


def citizen_person(actor: Actor) -> int:
    """The person a citizen key is bound to; NotYourWallet when it is bound to none."""
    if actor.person_id is None:
        raise NotYourWallet("this key is not bound to a citizen's wallet")
    return actor.person_id


def person_for_citizen_key(session: Session, *, api_key_id: int | None) -> int:
    """The person a citizen key is bound to; NotYourWallet when it is bound to none."""
    person_id = None if api_key_id is None else security_service.person_of_key(session, api_key_id)
    if person_id is None:
        raise NotYourWallet("this key is not bound to a citizen's wallet")
    return person_id


def restore_use(session: Session, *, voucher: Record, hold: Record) -> None:
    """Give back the daily use and prescription quantities of a hold that was not captured."""
    values: dict[str, Any] = {}
    if voucher.last_used_on == business_day(hold.created_at) and voucher.uses_on_day > 0:
        values["uses_on_day"] = voucher.uses_on_day - 1
    if voucher.prescription:
        prescription = json.loads(voucher.prescription)
        lines = json.loads(hold.lines)
        for line in lines:
            for item in prescription:
                if item["atc"] == line.get("atc") and line["approved_quantity"]:
                    item["dispensed"] = max(0, item["dispensed"] - line["approved_quantity"])
        values["prescription"] = json.dumps(prescription)
    if values:
        repository.update_voucher(session, voucher.id, values)


def expire_due(session: Session, *, now: datetime | None = None) -> ExpiryResult:
    """Expire holds past their time and vouchers past their last day.

    A voucher's unspent value returns to its program by an explicit posting to the program's
    expired-value account; nothing is deleted. Each step runs under the voucher's lock, so a
    hold or voucher expires exactly once even when this job runs twice at the same time.
    """
    now = now or utcnow()
    ledger_service.begin_write(session)
    holds_expired = 0
    for hold_id in ledger_service.expired_hold_ids(session, now=now):
        hold = ledger_service.get_hold(session, hold_id)
        voucher = repository.lock_voucher(session, voucher_id=hold.voucher_id)
        hold = ledger_service.get_hold(session, hold_id)  # re-read under the lock
        if voucher is None or hold.status != HoldStatus.AUTHORIZED.value:
            continue
        ledger_service.release_hold(session, hold=hold, status=HoldStatus.EXPIRED, now=now)
        restore_use(session, voucher=voucher, hold=hold)
        holds_expired += 1
    vouchers_expired = returned = 0
    for voucher_id in repository.due_for_expiry(session, today=business_day(now), limit=100_000):
        voucher = repository.lock_voucher(session, voucher_id=voucher_id)
        if voucher is None:
            continue
        if voucher.held_minor:
            # Open holds on an expiring voucher lapse with it.
            for hold_id in ledger_service.open_hold_ids_for_voucher(session, voucher_id):
                hold = ledger_service.get_hold(session, hold_id)
                ledger_service.release_hold(session, hold=hold, status=HoldStatus.EXPIRED, now=now)
                holds_expired += 1
            voucher = repository.lock_voucher(session, voucher_id=voucher_id)
            assert voucher is not None  # noqa: S101 - locked above
        if voucher.balance_minor > 0:
            sink = ledger_service.ensure_account(
                session,
                code=expired_account_code(voucher.program_id, voucher.region_kato),
                kind=AccountKind.EXPIRED,
                program_id=voucher.program_id,
                region_kato=voucher.region_kato,
            )
            ledger_service.post(
                session,
                kind=PostingKind.EXPIRY,
                legs=[
                    ledger_service.Leg(voucher.account_id, -voucher.balance_minor),
                    ledger_service.Leg(sink.id, voucher.balance_minor),
                ],
                now=now,
                voucher_id=voucher_id,
                memo="unspent value returned to the program",
            )
            returned += voucher.balance_minor
        if voucher.status != VoucherStatus.EXPIRED.value:
            repository.update_voucher(
                session, voucher_id, {"status": VoucherStatus.EXPIRED.value, "expired_at": now}
            )
            vouchers_expired += 1
    log.info(
        "vouchers_expired",
        holds=holds_expired,
        vouchers=vouchers_expired,
        returned_minor=returned,
    )
    return ExpiryResult(
        holds_expired=holds_expired, vouchers_expired=vouchers_expired, returned_minor=returned
    )


def statistics(session: Session) -> list[VoucherStatRow]:
    """Vouchers by type and status: how many, their nominal value and what remains."""
    return [
        VoucherStatRow(
            type=row.type,
            status=row.status,
            vouchers=row.vouchers,
            nominal_minor=int(row.nominal_minor or 0),
            remaining_minor=int(row.remaining_minor or 0),
        )
        for row in repository.statistics(session)
    ]


def summary(session: Session, *, region_digits: int = 9) -> list[VoucherSummaryRow]:
    """Vouchers by type and region: issued, activated, redeemed, expired, in counts and tiyn.

    `region_digits` groups KATO codes by their first digits (2: oblasts and cities of republican
    significance, 4: districts, 9: as stored)."""
    out: dict[tuple[str, str], VoucherSummaryRow] = {}
    names = ("issued", "activated", "redeemed", "expired", "issued_minor", "redeemed_minor",
             "expired_minor", "remaining_minor")  # fmt: skip
    for row in repository.summary(session):
        region = row.region_kato[:region_digits].ljust(9, "0")
        found = out.get((row.type, region))
        if found is None:
            found = out[(row.type, region)] = VoucherSummaryRow(
                type=row.type, region_kato=region, **dict.fromkeys(names, 0)
            )
        for name in names:
            setattr(found, name, getattr(found, name) + int(getattr(row, name) or 0))
    return [out[key] for key in sorted(out)]


def ensure_person_owns(voucher: Record | None, person_id: int) -> Record:
    if voucher is None or voucher.person_id != person_id:
        raise VoucherNotFound("no such voucher in your wallet")
    return voucher


def sample_holder(session: Session, *, voucher_type: str) -> int | None:
    """A person holding an unused voucher of a type, or None (the demo shows how to sign in)."""
    return repository.sample_holder(session, voucher_type=voucher_type)


def activation_needs() -> dict[str, str]:
    """Voucher types the citizen activates, each with what activation asks for ("" for nothing,
    "utility_account" for gas)."""
    return {
        code: vtype.activation_requires or ""
        for code, vtype in load_catalog().voucher_types.items()
        if vtype.needs_activation
    }


def turnover(session: Session, *, region_digits: int = 2) -> list[dict[str, Any]]:
    """Turnover over time: value redeemed by month, program and region (KATO cut)."""
    return [
        {
            "period": row.period,
            "program_id": row.program_id,
            "region_kato": row.region_kato,
            "postings": int(row.postings),
            "amount_minor": int(row.amount_minor or 0),
        }
        for row in repository.turnover(session, region_digits=region_digits)
    ]
