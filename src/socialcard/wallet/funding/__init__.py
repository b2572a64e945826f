"""Funding: program budgets and payments from budgets into citizens' wallets."""
