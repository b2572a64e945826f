"""The packed form of a family's decisions in one period (`rules_outcome.payload`).

One text per family, built in the batch (segments by DuckDB, `segment_parts`; members joined
with Arrow kernels, `service._outcome_rows`) and parsed here on read::

    payload   = family-part "#" person-part
    family    = segment ("|" segment)*            one per family program, in position order
    person    = member (";" member)*
    member    = person_id ":" segment ("|" segment)*   one per person program
    segment   = E C* "=" amount ("~" value)*    values only when eligible or a condition is met

E is 1/0 (eligible), C one character per named condition (1 met, 0 not met, - unknown),
amount the integer minor units (empty when none), and the values are the variables the
explanation shows, as text, typed by `rules_run_program.variables`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

# Characters a text value may not contain (they separate the parts); replaced by "_".
RESERVED = "~|#;:="


def value_type(duckdb_type: str) -> str:
    """The codec type of a DuckDB column type: int, dec, float, date, bool or str."""
    upper = duckdb_type.upper()
    if upper.startswith("DECIMAL"):
        return "dec"
    if upper in ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "HUGEINT", "UBIGINT", "UINTEGER"):
        return "int"
    if upper in ("DOUBLE", "FLOAT", "REAL"):
        return "float"
    if upper == "DATE":
        return "date"
    if upper == "BOOLEAN":
        return "bool"
    return "str"


def value_sql(column: str, kind: str) -> str:
    """A DuckDB expression rendering a column as a codec value (empty for NULL)."""
    if kind == "str":
        # A present text starts with an apostrophe, so that '' (empty) differs from NULL.
        text = f"translate(CAST({column} AS VARCHAR), '{RESERVED}', '{'_' * len(RESERVED)}')"
        return f"coalesce('''' || {text}, '')"
    return f"coalesce(CAST({column} AS VARCHAR), '')"


def segment_parts(
    eligible: str, amount: str, conditions: Sequence[str], values: Sequence[tuple[str, str]]
) -> list[str]:
    """The DuckDB expressions whose concatenation is one decision's segment (none is NULL).

    The values are kept when the decision is eligible or any of its conditions is met; a
    decision that meets none (a man for the mothers' award, an adult for the birth allowance:
    most person decisions) keeps its verdicts, amount, version and parameters but not the
    values (about 40 % of the text, and of the work, at 1 M families). Callers concatenate
    the parts of a whole row with one `concat(...)`: a chain of `||` copies the growing text
    at every step.
    """
    parts = [f"(CASE WHEN {eligible} THEN '1' ELSE '0' END)"]
    parts += [f"(CASE WHEN {c} THEN '1' WHEN NOT {c} THEN '0' ELSE '-' END)" for c in conditions]
    parts.append("'='")
    parts.append(f"coalesce(CAST({amount} AS VARCHAR), '')")
    if values:
        shown = ", ".join(f"'~', {value_sql(column, kind)}" for column, kind in values)
        relevant = " OR ".join(
            [f"coalesce({eligible}, false)"] + [f"coalesce({c}, false)" for c in conditions]
        )
        parts.append(f"(CASE WHEN {relevant} THEN concat({shown}) ELSE '' END)")
    return parts


def concat_sql(parts: Sequence[str]) -> str:
    """One DuckDB `concat` of the parts (an empty text for none)."""
    return f"concat({', '.join(parts)})" if parts else "''"


def parse_value(text: str, kind: str) -> Any:
    """A codec value back in its Python type (None for the empty text)."""
    if text == "":
        return None
    if kind == "int":
        return int(text)
    if kind == "dec":
        return Decimal(text)
    if kind == "float":
        return float(text)
    if kind == "date":
        return date.fromisoformat(text)
    if kind == "bool":
        return text == "true"
    return text[1:] if text.startswith("'") else None


def render_value(value: Any) -> list[Any]:
    """A parameter value as [type, text] for storage (JSON-safe, exact)."""
    if isinstance(value, bool):
        return ["bool", "true" if value else "false"]
    if isinstance(value, int):
        return ["int", str(value)]
    if isinstance(value, Decimal):
        return ["dec", str(value)]
    if isinstance(value, float):
        return ["float", repr(value)]
    if isinstance(value, date):
        return ["date", value.isoformat()]
    if value is None:
        return ["str", ""]
    return ["str", "'" + str(value)]


_FLAG = {"1": True, "0": False, "-": None}


@dataclass
class Segment:
    """One decision unpacked."""

    eligible: bool
    amount_minor: int | None
    conditions: dict[str, bool | None] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)


def parse_segment(
    text: str, conditions: Sequence[str], variables: Sequence[Sequence[str]]
) -> Segment:
    """Unpack one segment given the names (and types) its program period stores."""
    head, *values = text.split("~")
    flags, _, amount = head.partition("=")
    segment = Segment(eligible=flags[:1] == "1", amount_minor=int(amount) if amount else None)
    for name, flag in zip(conditions, flags[1:], strict=False):
        segment.conditions[name] = _FLAG.get(flag)
    for (name, kind), value in zip(variables, values, strict=False):
        segment.variables[name] = parse_value(value, kind)
    return segment


def split_payload(payload: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The family segments and, per member, (person_id, segments)."""
    family_part, _, person_part = payload.partition("#")
    family = family_part.split("|") if family_part else []
    members: list[tuple[int, list[str]]] = []
    if person_part:
        for member in person_part.split(";"):
            person_id, _, rest = member.partition(":")
            members.append((int(person_id), rest.split("|")))
    return family, members
