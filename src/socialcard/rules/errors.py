"""Errors of the rules domain, mapped from the pure engine's exceptions."""

from __future__ import annotations

from socialcard.core.errors import BusinessRuleViolation, InvalidInput, NotFound
from socialcard.rules.engine.problems import EvaluationError, PackError, RulesEngineError


class RulePackInvalid(InvalidInput):
    """A rule pack that does not load; `details` lists every problem with file and line."""

    code = "rule_pack_invalid"
    title = "Invalid rule pack"

    @classmethod
    def from_pack_error(cls, error: PackError) -> RulePackInvalid:
        count = len(error.problems)
        return cls(
            f"the rule pack has {count} problem(s); the first: {error.problems[0]}"
            if count
            else "the rule pack does not load",
            details=[p.as_dict() for p in error.problems],
        )


class ProgramNotFound(NotFound):
    code = "rule_program_not_found"


class RunNotFound(NotFound):
    code = "rules_run_not_found"


class DecisionNotFound(NotFound):
    code = "rules_decision_not_found"


class FamilyNotFound(NotFound):
    code = "family_not_found"


class RuleEvaluationFailed(BusinessRuleViolation):
    """A period, parameter or entity the engine cannot evaluate."""

    code = "rule_evaluation_failed"
    title = "Rule evaluation failed"


def from_engine(error: RulesEngineError) -> InvalidInput | BusinessRuleViolation:
    """The domain error for an engine exception (for the service layer)."""
    if isinstance(error, PackError):
        return RulePackInvalid.from_pack_error(error)
    if isinstance(error, EvaluationError):
        return RuleEvaluationFailed(str(error))
    return RuleEvaluationFailed(str(error))
