"""Problems found in a rule pack, and the engine's exceptions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong in a pack: where it is (file, line, program) and why."""

    file: str
    line: int
    program: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        program = f" [{self.program}]" if self.program else ""
        return f"{where}{program}: {self.reason}"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "program": self.program,
            "reason": self.reason,
        }


class RulesEngineError(Exception):
    """Base class of the engine's errors."""


class PackError(RulesEngineError):
    """A pack that cannot load; `problems` lists every problem found, not just the first."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(set(problems))
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"the rule pack has {len(self.problems)} problem(s):\n{lines}")


class EvaluationError(RulesEngineError):
    """A request the engine cannot evaluate (unknown period, program, entity or parameter)."""
