"""Vouchers: types as data (catalog.yaml), issue, activation, expiry and statistics."""
