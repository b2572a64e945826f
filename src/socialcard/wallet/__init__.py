"""The social wallet: a double-entry ledger, earmarked vouchers, merchants and redemption."""
