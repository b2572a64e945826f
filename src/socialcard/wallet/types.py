"""Typing helpers for the wallet."""

from __future__ import annotations

from typing import Any, TypeAlias

# A Core result row read by attribute (`row.balance_minor`); SQLAlchemy's Row is generic over
# its column tuple, which says nothing useful for rows built from joins.
Record: TypeAlias = Any
