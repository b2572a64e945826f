"""Every wallet table, imported in one place for the shared MetaData."""

from __future__ import annotations

from socialcard.wallet.ledger.models import Account, Entry, Hold, IdempotencyRecord, Posting
from socialcard.wallet.merchants.models import Merchant, Settlement, Terminal
from socialcard.wallet.vouchers.models import Voucher

__all__ = [
    "Account",
    "Entry",
    "Hold",
    "IdempotencyRecord",
    "Merchant",
    "Posting",
    "Settlement",
    "Terminal",
    "Voucher",
]
