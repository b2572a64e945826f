"""Whether a voucher pays for a purchase: a pure function of the voucher, merchant and items."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from socialcard.wallet.enums import Decision, DeclineReason, VoucherStatus
from socialcard.wallet.vouchers.catalog import Catalog


@dataclass(frozen=True, slots=True)
class Item:
    """One line of a purchase."""

    sku: str
    category: str
    quantity: int
    amount_minor: int
    atc: str | None = None


@dataclass(slots=True)
class Evaluation:
    """The outcome: what the voucher pays, per line, and the reason for anything refused."""

    decision: Decision
    requested_minor: int
    approved_minor: int
    reason: DeclineReason | None
    lines: list[dict[str, Any]] = field(default_factory=list)
    # Prescription after dispensing the approved quantities (None when not a prescription).
    prescription: list[dict[str, Any]] | None = None
    uses: int = 0


def _declined(reason: DeclineReason, requested: int) -> Evaluation:
    return Evaluation(Decision.DECLINED, requested, 0, reason)


def scale_amounts(amounts: list[int], total: int) -> list[int]:
    """Integer shares of `total` proportional to `amounts`, summing to `total` exactly.

    Largest remainder: each share is rounded down, then the tiyn left over go one each to the
    shares with the largest remainders (the earlier line first on a tie).

    >>> scale_amounts([1_000, 1_000, 1_000], 1_000)
    [334, 333, 333]
    >>> scale_amounts([500, 0, 1_500], 1_001)
    [250, 0, 751]
    """
    whole = sum(amounts)
    if whole <= 0:
        return [0 for _ in amounts]
    shares = [amount * total // whole for amount in amounts]
    left = total - sum(shares)
    by_remainder = sorted(range(len(amounts)), key=lambda i: (-(amounts[i] * total % whole), i))
    for i in by_remainder[:left]:
        shares[i] += 1
    return shares


def _scale_lines(lines: list[dict[str, Any]], approved: int) -> None:
    """Cut each line's approved amount so that the lines sum exactly to `approved`."""
    shares = scale_amounts([line["approved_minor"] for line in lines], approved)
    for line, share in zip(lines, shares, strict=True):
        if share < line["approved_minor"] and line["reason"] is None:
            line["reason"] = DeclineReason.INSUFFICIENT_BALANCE.value
        line["approved_minor"] = share


def evaluate(
    catalog: Catalog,
    *,
    voucher: Any,
    merchant_id: int,
    merchant_category: str,
    merchant_licensed: bool,
    items: list[Item],
    on: date,
    allow_partial: bool = True,
    check_balance: bool = True,
) -> Evaluation:
    """Approve, partly approve or decline; the first failing check gives the reason.

    Without `check_balance` the outcome is what the voucher's rules allow of these items,
    whatever is left on it (a balance inquiry compares the two itself).
    """
    requested = sum(item.amount_minor for item in items)
    vtype = catalog.voucher_types[voucher.type]
    category = catalog.categories.get(merchant_category)
    # Voucher state and window.
    if voucher.status == VoucherStatus.EXPIRED.value or on > voucher.valid_until:
        return _declined(DeclineReason.VOUCHER_EXPIRED, requested)
    if on < voucher.valid_from:
        return _declined(DeclineReason.VOUCHER_NOT_YET_VALID, requested)
    if vtype.needs_activation and voucher.status == VoucherStatus.CREATED.value:
        return _declined(DeclineReason.VOUCHER_NOT_ACTIVATED, requested)
    # Merchant.
    if category is None or voucher.type not in category.accepts:
        return _declined(DeclineReason.MERCHANT_CATEGORY_NOT_ALLOWED, requested)
    if category.requires_license and not merchant_licensed:
        return _declined(DeclineReason.MERCHANT_NOT_LICENSED, requested)
    if vtype.bound_to_merchant and voucher.bound_merchant_id != merchant_id:
        return _declined(DeclineReason.WRONG_MERCHANT, requested)
    # Day and frequency.
    if vtype.school_days_only and on.weekday() >= 5:
        return _declined(DeclineReason.NOT_A_SCHOOL_DAY, requested)
    used_today = voucher.uses_on_day if voucher.last_used_on == on else 0
    if vtype.uses_per_day is not None and used_today >= vtype.uses_per_day:
        return _declined(DeclineReason.DAILY_LIMIT_REACHED, requested)
    # Lines.
    prescription = json.loads(voucher.prescription) if vtype.prescription else None
    units_left = vtype.units_per_use
    lines: list[dict[str, Any]] = []
    first_reason: DeclineReason | None = None
    for item in items:
        quantity, reason = item.quantity, None
        if not vtype.any_item and item.category not in vtype.item_categories:
            quantity, reason = 0, DeclineReason.ITEM_NOT_ALLOWED
        elif prescription is not None:
            line = next((p for p in prescription if p["atc"] == item.atc), None)
            left = 0 if line is None else line["quantity"] - line["dispensed"]
            if left <= 0:
                quantity, reason = 0, DeclineReason.NOT_PRESCRIBED
            elif left < quantity:
                quantity, reason = left, DeclineReason.NOT_PRESCRIBED
            if line is not None and quantity:
                line["dispensed"] += quantity
        elif units_left is not None:
            if units_left < quantity:
                quantity, reason = units_left, DeclineReason.DAILY_LIMIT_REACHED
            units_left -= quantity
        amount = item.amount_minor * quantity // item.quantity
        if vtype.fare_discount_percent:
            percent = vtype.fare_discount_percent.get(voucher.fare_category or "", 0)
            amount = amount * percent // 100
            if percent == 0:
                quantity, reason = 0, DeclineReason.ITEM_NOT_ALLOWED
        first_reason = first_reason or reason
        lines.append(
            {
                "sku": item.sku,
                "approved_quantity": quantity,
                "approved_minor": amount,
                "reason": reason.value if reason else None,
            }
        )
    allowed = sum(line["approved_minor"] for line in lines)
    if allowed <= 0:
        return Evaluation(
            Decision.DECLINED, requested, 0, first_reason or DeclineReason.ITEM_NOT_ALLOWED, lines
        )
    spendable = int(voucher.balance_minor) - int(voucher.held_minor) if check_balance else allowed
    if spendable <= 0:
        return _declined(DeclineReason.INSUFFICIENT_BALANCE, requested)
    approved = allowed
    if spendable < allowed:
        approved, first_reason = spendable, DeclineReason.INSUFFICIENT_BALANCE
        _scale_lines(lines, approved)
    if approved < requested and first_reason is None:
        first_reason = DeclineReason.PARTIAL_COVERAGE
    if approved < requested and not allow_partial:
        return Evaluation(Decision.DECLINED, requested, 0, first_reason, lines)
    decision = Decision.APPROVED if approved == requested else Decision.PARTLY_APPROVED
    return Evaluation(
        decision,
        requested,
        approved,
        first_reason if decision is Decision.PARTLY_APPROVED else None,
        lines,
        prescription,
        uses=used_today + 1,
    )
