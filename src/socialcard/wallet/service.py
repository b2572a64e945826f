"""The wallet as a whole: invariant check, citizen keys, and the demo step."""

from __future__ import annotations

from sqlalchemy.orm import Session

from socialcard.registry import service as registry_service
from socialcard.security import service as security_service
from socialcard.security.enums import Role
from socialcard.security.schemas import ApiKeyCreated
from socialcard.wallet.errors import PersonNotFound
from socialcard.wallet.ledger import service as ledger_service
from socialcard.wallet.redemption import service as redemption_service
from socialcard.wallet.schemas import CheckRead
from socialcard.wallet.vouchers import service as voucher_service


def check(session: Session) -> CheckRead:
    """Verify every wallet invariant: balanced postings, no forbidden overdraft, cached balances
    equal to a replay of the entries, holds resolved once, statements equal to the ledger."""
    problems = ledger_service.check_ledger(session) + redemption_service.check_settlements(session)
    return CheckRead(
        ok=not problems, problems=problems, counts=ledger_service.ledger_counts(session)
    )


def create_citizen_key(session: Session, *, person_id: int) -> ApiKeyCreated:
    """Issue a key of role citizen bound to one person's wallet (shown once)."""
    if registry_service.preferred_language(session, person_id=person_id) is None:
        raise PersonNotFound(f"no person with id {person_id}")
    created = security_service.create_api_key(
        session, name=f"citizen-{person_id}", role=Role.CITIZEN.value
    )
    voucher_service.bind_citizen_key(session, api_key_id=created.id, person_id=person_id)
    return created
