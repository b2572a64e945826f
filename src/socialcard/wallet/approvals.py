"""The wallet's maker–checker requests: budget top-ups, manual fundings (outside a decision),
merchant onboarding and citizen keys issued at an office.

An operator files each (`request_*`); it takes effect when a person of another role approves
it (`security.approvals.approve`): a policy owner for money, a policy owner or an admin for a
merchant, an admin for a citizen key. Importing this module registers the kinds.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from socialcard.core.errors import AppError, InvalidInput, field_error
from socialcard.registry import service as registry_service
from socialcard.security import approvals
from socialcard.security import service as security_service
from socialcard.security.enums import Role
from socialcard.security.schemas import Actor, ApprovalRead
from socialcard.wallet.errors import PersonNotFound
from socialcard.wallet.funding import service as funding_service
from socialcard.wallet.funding.schemas import BudgetAllocation, FundingOrder, FundingRequest
from socialcard.wallet.ledger import service as ledger_service
from socialcard.wallet.merchants import service as merchant_service
from socialcard.wallet.merchants.schemas import MerchantCreate
from socialcard.wallet.vouchers import service as voucher_service

BUDGET = "budget_allocation"
FUNDING = "manual_funding"
MERCHANT = "merchant_onboarding"
CITIZEN_KEY = "citizen_key"


def _by(maker: Actor) -> str:
    return f"; requested by {maker.name} ({maker.role}, key {maker.key_id})"


def _allocate(session: Session, payload: dict[str, Any], maker: Actor, checker: Actor) -> Any:
    return funding_service.allocate_budget(
        session,
        idempotency_key=payload["idempotency_key"],
        allocation=BudgetAllocation.model_validate(payload["allocation"]),
        actor=checker,
        detail=_by(maker),
    ).model_dump(mode="json")


def _fund(session: Session, payload: dict[str, Any], maker: Actor, checker: Actor) -> Any:
    orders = [FundingOrder.model_validate(o) for o in payload["orders"]]
    outcomes = funding_service.fund_orders(
        session, [(o.idempotency_key, o) for o in orders], actor=checker
    )
    if len(outcomes) == 1 and outcomes[0].error is not None:
        raise outcomes[0].error  # one order refused: the request stays open
    return {
        "funded": [o.result.model_dump(mode="json") for o in outcomes if o.result is not None],
        "refused": [
            {"idempotency_key": o.key, "code": o.error.code, "message": o.error.message}
            for o in outcomes
            if o.error is not None
        ],
    }


def _onboard(session: Session, payload: dict[str, Any], maker: Actor, checker: Actor) -> Any:
    return merchant_service.create_merchant(
        session,
        data=MerchantCreate.model_validate(payload["merchant"]),
        actor=checker,
        detail=_by(maker),
    ).model_dump(mode="json")


def _citizen_key(session: Session, payload: dict[str, Any], maker: Actor, checker: Actor) -> Any:
    person_id = int(payload["person_id"])
    _known_person(session, person_id)
    return security_service.issue_citizen_key(
        session, person_id=person_id, actor=checker
    ).model_dump(mode="json")


approvals.register_kind(
    BUDGET, makers={Role.OPERATOR}, checkers={Role.POLICY_OWNER}, execute=_allocate
)
approvals.register_kind(
    FUNDING, makers={Role.OPERATOR}, checkers={Role.POLICY_OWNER}, execute=_fund
)
approvals.register_kind(
    MERCHANT, makers={Role.OPERATOR}, checkers={Role.POLICY_OWNER, Role.ADMIN}, execute=_onboard
)
approvals.register_kind(
    CITIZEN_KEY, makers={Role.OPERATOR}, checkers={Role.ADMIN}, execute=_citizen_key
)


def _known_person(session: Session, person_id: int) -> None:
    if registry_service.preferred_language(session, person_id=person_id) is None:
        raise PersonNotFound(f"no person with id {person_id}")


def request_allocation(
    session: Session, *, actor: Actor, allocation: BudgetAllocation, idempotency_key: str | None
) -> ApprovalRead:
    """File a budget top-up (money created from the program's source)."""
    key = idempotency_key or f"approved-allocation:{uuid.uuid4().hex}"
    return approvals.request(
        session,
        actor=actor,
        kind=BUDGET,
        payload={"allocation": allocation.model_dump(mode="json"), "idempotency_key": key},
        summary=f"top up {allocation.program_id} in {allocation.region_kato} by "
        f"{allocation.amount_minor} tiyn",
    )


def request_fundings(session: Session, *, actor: Actor, orders: list[FundingOrder]) -> ApprovalRead:
    """File manual fundings (payments into wallets outside a decision's payment order); an
    order that cannot be paid at all is named (`orders.<n>.<field>`) and nothing is filed."""
    problems = []
    for number, order in enumerate(orders, start=1):
        try:
            voucher_service.voucher_type(order.benefit_type)
            ledger_service.require_idempotency_key(order.idempotency_key)
        except AppError as exc:
            for detail in exc.details or [field_error("order", exc.message)]:
                problems.append({**detail, "field": f"orders.{number}.{detail['field']}"})
    if problems:
        raise InvalidInput(
            "; ".join(f"{p['field']}: {p['reason']}" for p in problems[:5]), details=problems
        )
    total = sum(o.amount_minor for o in orders)
    first = orders[0]
    what = (
        f"fund person {first.person_id} {first.amount_minor} tiyn {first.benefit_type} "
        f"from {first.program_id}"
        if len(orders) == 1
        else f"fund {len(orders)} orders, {total} tiyn in all"
    )
    return approvals.request(
        session,
        actor=actor,
        kind=FUNDING,
        payload={"orders": [o.model_dump(mode="json") for o in orders]},
        summary=what,
    )


def request_funding(
    session: Session, *, actor: Actor, request: FundingRequest, idempotency_key: str | None
) -> ApprovalRead:
    """File one manual funding (the API's: its Idempotency-Key header keys the payment)."""
    key = ledger_service.require_idempotency_key(idempotency_key)
    order = FundingOrder(**request.model_dump(), idempotency_key=key)
    return request_fundings(session, actor=actor, orders=[order])


def request_merchant(session: Session, *, actor: Actor, data: MerchantCreate) -> ApprovalRead:
    """File a merchant's onboarding (checked now, registered on approval)."""
    merchant_service.check_new_merchant(session, data=data)
    return approvals.request(
        session,
        actor=actor,
        kind=MERCHANT,
        payload={"merchant": data.model_dump(mode="json")},
        summary=f"onboard {data.name} (БИН {data.bin}, {data.category})",
    )


def request_citizen_key(session: Session, *, actor: Actor, person_id: int) -> ApprovalRead:
    """File a citizen key for a person who came to an office (the key is shown to the
    approving admin, once, to hand over)."""
    _known_person(session, person_id)
    return approvals.request(
        session,
        actor=actor,
        kind=CITIZEN_KEY,
        payload={"person_id": person_id},
        summary=f"citizen key for person {person_id}",
    )
