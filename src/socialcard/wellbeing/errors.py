"""Well-being errors: unknown runs, methodologies and families, invalid methodologies."""

from __future__ import annotations

from socialcard.core.errors import BusinessRuleViolation, InvalidInput, NotFound


class MethodologyNotFound(NotFound):
    code = "wellbeing_methodology_not_found"


class MethodologyInvalid(BusinessRuleViolation):
    """The methodology file has problems; `details` lists each with file, line and reason."""

    code = "wellbeing_methodology_invalid"


class RunNotFound(NotFound):
    code = "wellbeing_run_not_found"


class FamilyNotScored(NotFound):
    code = "wellbeing_family_not_scored"


class PeriodNotCovered(BusinessRuleViolation):
    """The methodology is not in force in the requested period."""

    code = "wellbeing_period_not_covered"


class InvalidWellbeingQuery(InvalidInput):
    """A filter that names something the run does not have (a level code, a period)."""

    code = "wellbeing_invalid_query"
