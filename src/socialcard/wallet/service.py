"""The wallet as a whole: the invariant check."""

from __future__ import annotations

from sqlalchemy.orm import Session

from socialcard.wallet.ledger import service as ledger_service
from socialcard.wallet.redemption import service as redemption_service
from socialcard.wallet.schemas import CheckRead


def check(session: Session) -> CheckRead:
    """Verify every wallet invariant: balanced postings, no forbidden overdraft, cached balances
    equal to a replay of the entries, holds resolved once, statements equal to the ledger."""
    problems = ledger_service.check_ledger(session) + redemption_service.check_settlements(session)
    return CheckRead(
        ok=not problems, problems=problems, counts=ledger_service.ledger_counts(session)
    )
