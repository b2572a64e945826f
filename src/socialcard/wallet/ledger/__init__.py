"""The ledger: accounts, balanced postings, holds and idempotency records."""
