"""Merchants (БИН-checked), their categories and terminals with hashed keys."""
