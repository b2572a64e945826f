"""Registry errors."""

from __future__ import annotations

from socialcard.core.errors import InvalidInput, NotFound


class PersonNotFound(NotFound):
    code = "person_not_found"


class FamilyNotFound(NotFound):
    code = "family_not_found"


class InvalidSearch(InvalidInput):
    code = "invalid_search"
