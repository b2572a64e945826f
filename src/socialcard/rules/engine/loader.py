"""Read a rule pack directory into the model, collecting every structural problem."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal, cast

from socialcard.rules.engine import yamlio
from socialcard.rules.engine.builtins import WELLBEING_SCALES
from socialcard.rules.engine.model import (
    LANGUAGES,
    UNITS,
    Case,
    Condition,
    FactSpec,
    Loc,
    MemberSpec,
    Pack,
    Parameter,
    ParamValue,
    Program,
    RetirementStep,
    Rounding,
    Scalar,
    Source,
    T,
    Variable,
    Version,
)
from socialcard.rules.engine.periods import Period, add_months, add_years
from socialcard.rules.engine.problems import Problem
from socialcard.rules.engine.yamlio import BadDate, Map, Seq

NAME = re.compile(r"^[a-z][a-z0-9_]*$")
PROGRAM_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
RESERVED = frozenset(
    {
        "member",
        "deceased",
        "family",
        "period_start",
        "period_end",
        "true",
        "false",
        "null",
        "and",
        "or",
        "not",
        "case",
        "when",
        "then",
        "else",
        "end",
        "in",
        "is",
        "between",
        "filter",
        "where",
    }
)

# The registry's fact vocabulary (registry.enums.FACT_DETAILS; a test keeps them equal).
FACT_DETAILS: dict[str, frozenset[str]] = {
    "income": frozenset({"wages", "pension", "benefits", "other"}),
    "unemployment": frozenset({"registered"}),
    "disability": frozenset({"group_1", "group_2", "group_3", "child"}),
    "study": frozenset({"school", "college", "university"}),
    "award": frozenset(
        {"altyn_alka", "kumis_alka", "mother_heroine", "maternal_glory_1", "maternal_glory_2"}
    ),
    "pension": frozenset({"retirement"}),
    "property": frozenset({"real_estate", "vehicle"}),
    "loan": frozenset({"consumer", "mortgage"}),
    "birth": frozenset({"registered"}),
    "death": frozenset({"registered"}),
    "social_insurance": frozenset({"contribution"}),
}
# Parent-child links a test member may name (`mother: <member name>`, ...).
LINK_RELATIONS = ("mother", "father", "adoptive_mother", "adoptive_father", "guardian")
ROLES = ("child", "head", "other", "parent", "spouse")  # sorted: the ENUM order
PACK_FILE = "pack.yaml"


class _Ctx:
    """Collects problems for one file; `program` names what is being read."""

    def __init__(self, file: str, problems: list[Problem], program: str = "") -> None:
        self.file = file
        self.problems = problems
        self.program = program

    def err(self, line: int, reason: str) -> None:
        self.problems.append(Problem(self.file, line, self.program, reason))

    def loc(self, line: int) -> Loc:
        return Loc(self.file, line)

    def fields(
        self, node: Map, allowed: Iterable[str], where: str, required: Iterable[str] = ()
    ) -> None:
        """Report unknown, duplicate and missing keys of a mapping."""
        allowed = list(allowed)
        for key, line in node.duplicates:
            self.err(line, f"duplicate key {key!r} in {where}")
        for key in node:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                self.err(node.line_of(key), f"unknown field {key!r} in {where}{hint}")
        for key in required:
            if key not in node:
                self.err(node.line, f"{where} needs {key!r}")


def _texts(ctx: _Ctx, value: Any, line: int, what: str, required: bool = True) -> dict[str, str]:
    """A text per language (kk, ru, en); a plain string is accepted for all three."""
    if isinstance(value, str):
        return dict.fromkeys(LANGUAGES, value)
    if not isinstance(value, Map):
        if required or value is not None:
            ctx.err(line, f"{what} must give kk, ru and en texts")
        return {}
    ctx.fields(value, LANGUAGES, what)
    out: dict[str, str] = {}
    for lang in LANGUAGES:
        text = value.get(lang)
        if not isinstance(text, str) or not text.strip():
            ctx.err(value.line_of(lang), f"{what} needs a {lang!r} text")
        else:
            out[lang] = text
    return out


def _date(ctx: _Ctx, value: Any, line: int, what: str) -> date | None:
    if isinstance(value, BadDate):
        ctx.err(line, f"bad date {value.text!r} for {what}")
        return None
    if yamlio.is_date(value):
        return cast(date, value)
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    ctx.err(line, f"bad date {value!r} for {what} (use YYYY-MM-DD)")
    return None


def _scalar(value: Any) -> Scalar | None:
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if yamlio.is_date(value):
        return cast(date, value)
    return None


def _type_of(value: Scalar) -> T:
    if isinstance(value, bool):
        return T.BOOL
    if isinstance(value, int):
        return T.INT
    if isinstance(value, Decimal):
        return T.NUM
    if isinstance(value, date):
        return T.DATE
    return T.TEXT


def parse_parameter(ctx: _Ctx, name: str, node: Any, line: int, owner: str) -> Parameter | None:
    """A dated parameter, short (`{date: value}`) or long (`{unit, source, values}`) form."""
    if not NAME.match(str(name)) or name in RESERVED:
        ctx.err(line, f"bad parameter name {name!r} (lowercase letters, digits, _)")
        return None
    meta: Map | None = None
    values_node: Any = node
    if isinstance(node, Map) and "values" in node:
        meta = node
        ctx.fields(
            node,
            ("values", "unit", "title", "source", "description", "range"),
            f"parameter {name!r}",
        )
        values_node = node["values"]
    if not isinstance(values_node, Map) or not values_node:
        ctx.err(line, f"parameter {name!r} needs dated values, e.g. {{2025-01-01: 3932_00}}")
        return None
    unit = "number"
    title: dict[str, str] = {}
    source = ""
    if meta is not None:
        unit = str(meta.get("unit", "number"))
        if unit not in UNITS:
            ctx.err(meta.line_of("unit"), f"unknown unit {unit!r}; one of {sorted(UNITS)}")
        if "title" in meta:
            title = _texts(ctx, meta["title"], meta.line_of("title"), f"title of {name!r}")
        source = str(meta.get("source", ""))
    for key, dup_line in values_node.duplicates:
        ctx.err(dup_line, f"parameter {name!r} has {key} twice")
    values: list[tuple[date, ParamValue]] = []
    types: set[T] = set()
    key_sets: set[tuple[int, ...]] = set()
    for key, raw in values_node.items():
        vline = values_node.line_of(key)
        day = _date(ctx, key, vline, f"a value of parameter {name!r}")
        if day is None:
            continue
        if isinstance(raw, Map):
            table: dict[int, Scalar] = {}
            for k, v in raw.items():
                scalar = _scalar(v)
                if not isinstance(k, int) or isinstance(k, bool) or scalar is None:
                    ctx.err(raw.line_of(k), f"table parameter {name!r} maps integers to values")
                    continue
                if isinstance(scalar, bool | date | str):
                    ctx.err(raw.line_of(k), f"table parameter {name!r} holds numbers only")
                    continue
                table[k] = scalar
                types.add(_type_of(scalar))
            key_sets.add(tuple(sorted(table)))
            values.append((day, dict(table)))
        else:
            scalar = _scalar(raw)
            if scalar is None:
                ctx.err(vline, f"parameter {name!r} on {day}: unsupported value {raw!r}")
                continue
            types.add(_type_of(scalar))
            key_sets.add(())
            values.append((day, scalar))
    if not values:
        return None
    if len(key_sets) > 1:
        ctx.err(line, f"parameter {name!r}: every date must give the same kind of value and keys")
        return None
    numeric = {T.INT, T.NUM}
    if len(types) > 1 and not types <= numeric:
        ctx.err(line, f"parameter {name!r} mixes value types {sorted(t.value for t in types)}")
        return None
    ptype = T.NUM if types == numeric else next(iter(types))
    values.sort(key=lambda item: item[0])
    declared = _range(ctx, meta, name, values) if meta is not None and "range" in meta else None
    return Parameter(
        name=str(name),
        owner=owner,
        unit=unit,
        loc=ctx.loc(line),
        values=values,
        title=title,
        source=source,
        type=ptype,
        keys=next(iter(key_sets)),
        range=declared,
    )


def _range(
    ctx: _Ctx, meta: Map, name: str, values: list[tuple[date, ParamValue]]
) -> tuple[Decimal, Decimal] | None:
    """`range: [low, high]`: the values a what-if may give the parameter; its own values lie
    within it."""
    line = meta.line_of("range")
    raw = meta["range"]
    ends = [_scalar(v) for v in raw] if isinstance(raw, list) and len(raw) == 2 else []
    if len(ends) != 2 or not all(
        isinstance(v, int | Decimal) and not isinstance(v, bool) for v in ends
    ):
        ctx.err(line, f"parameter {name!r}: range is [low, high], two numbers")
        return None
    low, high = Decimal(cast(int | Decimal, ends[0])), Decimal(cast(int | Decimal, ends[1]))
    if low > high:
        ctx.err(line, f"parameter {name!r}: range [{low}, {high}] is empty")
        return None
    for day, value in values:
        for v in value.values() if isinstance(value, dict) else [value]:
            if isinstance(v, int | Decimal) and not isinstance(v, bool) and not low <= v <= high:
                ctx.err(line, f"parameter {name!r}: its value {v} on {day} is outside its range")
    return low, high


def _parameters(ctx: _Ctx, node: Any, line: int, owner: str) -> dict[str, Parameter]:
    out: dict[str, Parameter] = {}
    if node is None:
        return out
    if not isinstance(node, Map):
        ctx.err(line, "parameters must be a mapping of name to dated values")
        return out
    for key, dup_line in node.duplicates:
        ctx.err(dup_line, f"parameter {key!r} defined twice")
    for name, value in node.items():
        param = parse_parameter(ctx, str(name), value, node.line_of(name), owner)
        if param is not None:
            out[param.name] = param
    return out


def _variables(
    ctx: _Ctx, node: Any, line: int, owner: str, allow_remove: bool = False
) -> dict[str, Variable | None]:
    """`{person: {name: expr}, family: {name: expr}}`; None marks a removal in a version."""
    out: dict[str, Variable | None] = {}
    if node is None:
        return out
    if not isinstance(node, Map):
        ctx.err(line, "variables must be a mapping with 'person' and/or 'family'")
        return out
    ctx.fields(node, ("person", "family"), "variables")
    levels: tuple[Literal["person", "family"], ...] = ("person", "family")
    for level in levels:
        group = node.get(level)
        if group is None:
            continue
        if not isinstance(group, Map):
            ctx.err(node.line_of(level), f"variables.{level} must map names to expressions")
            continue
        for key, dup_line in group.duplicates:
            ctx.err(dup_line, f"variable {key!r} defined twice")
        for name, spec in group.items():
            vline = group.line_of(name)
            if not NAME.match(str(name)) or name in RESERVED:
                ctx.err(vline, f"bad variable name {name!r} (lowercase letters, digits, _)")
                continue
            if name in out:
                ctx.err(vline, f"variable {name!r} is defined at both levels")
                continue
            if spec is None and allow_remove:
                out[name] = None
                continue
            unit = ""
            title: dict[str, str] = {}
            expr_text: Any = spec
            if isinstance(spec, Map):
                ctx.fields(spec, ("expr", "unit", "title"), f"variable {name!r}", ("expr",))
                expr_text = spec.get("expr")
                unit = str(spec.get("unit", ""))
                if unit and unit not in UNITS:
                    ctx.err(spec.line_of("unit"), f"unknown unit {unit!r}")
                if "title" in spec:
                    title = _texts(ctx, spec["title"], spec.line_of("title"), f"title of {name!r}")
            if isinstance(expr_text, bool | int | float):
                expr_text = str(expr_text).lower()
            if not isinstance(expr_text, str):
                ctx.err(vline, f"variable {name!r} needs an expression")
                continue
            out[str(name)] = Variable(
                name=str(name),
                level=level,
                expr=Source(expr_text, ctx.loc(vline), owner),
                unit=unit,
                title=title,
            )
    return out


def _conditions(ctx: _Ctx, node: Any, line: int, owner: str) -> dict[str, Condition | None]:
    out: dict[str, Condition | None] = {}
    if node is None:
        return out
    if not isinstance(node, Map):
        ctx.err(line, "conditions must map names to {when: ..., explain: {kk, ru, en}}")
        return out
    for key, dup_line in node.duplicates:
        ctx.err(dup_line, f"condition {key!r} defined twice")
    for name, spec in node.items():
        cline = node.line_of(name)
        if not NAME.match(str(name)):
            ctx.err(cline, f"bad condition name {name!r} (lowercase letters, digits, _)")
            continue
        if spec is None:
            out[str(name)] = None
            continue
        if not isinstance(spec, Map):
            ctx.err(cline, f"condition {name!r} needs 'when' and 'explain'")
            continue
        ctx.fields(spec, ("when", "explain"), f"condition {name!r}", ("when", "explain"))
        when = spec.get("when")
        if isinstance(when, bool):
            when = str(when).lower()
        if not isinstance(when, str):
            if "when" in spec:
                ctx.err(spec.line_of("when"), f"condition {name!r}: 'when' must be an expression")
            continue
        explain = _texts(
            ctx, spec.get("explain"), spec.line_of("explain"), f"explanation of condition {name!r}"
        )
        out[str(name)] = Condition(
            name=str(name),
            expr=Source(when, ctx.loc(spec.line_of("when")), owner),
            explain=explain,
        )
    return out


def _rounding(ctx: _Ctx, node: Any, line: int) -> Rounding | None:
    if not isinstance(node, Map):
        ctx.err(line, "rounding is {mode: half_up|ceil|floor, unit: 100, why: ...}")
        return None
    ctx.fields(node, ("mode", "unit", "why"), "rounding", ("mode", "unit", "why"))
    mode = node.get("mode")
    unit = node.get("unit")
    if mode not in ("half_up", "ceil", "floor"):
        ctx.err(node.line_of("mode"), f"rounding mode {mode!r} is not half_up, ceil or floor")
        return None
    if (
        not isinstance(unit, int)
        or isinstance(unit, bool)
        or unit < 1
        or str(unit).strip("0") != "1"
    ):
        ctx.err(node.line_of("unit"), f"rounding unit {unit!r} must be 1, 10, 100, ... minor units")
        return None
    return Rounding(mode=mode, unit=unit, why=str(node.get("why", "")))


def _member(ctx: _Ctx, node: Any, line: int, index: int, period: Period) -> MemberSpec | None:
    if not isinstance(node, Map):
        ctx.err(line, "a member is a mapping (role, sex, age, facts, ...)")
        return None
    ctx.fields(
        node,
        (
            "name",
            "role",
            "sex",
            "age",
            "age_months",
            "birth_on",
            "born_in_period",
            "dead",
            "death_on",
            "region",
            "facts",
            "no_family",
            *LINK_RELATIONS,
        ),
        "member",
    )
    ps = period.start
    birth: date | None = None
    ways = [k for k in ("age", "age_months", "birth_on", "born_in_period") if k in node]
    if len(ways) != 1:
        ctx.err(line, "a member needs exactly one of age, age_months, birth_on, born_in_period")
        return None
    way = ways[0]
    raw = node[way]
    if way == "age" and isinstance(raw, int) and raw >= 0:
        birth = add_years(ps, -raw) - timedelta(days=1)
    elif way == "age_months" and isinstance(raw, int) and raw >= 0:
        birth = add_months(ps, -raw) - timedelta(days=1)
    elif way == "birth_on":
        birth = _date(ctx, raw, node.line_of(way), "birth_on")
    elif way == "born_in_period" and raw is True:
        birth = ps
    else:
        ctx.err(node.line_of(way), f"bad {way} {raw!r}")
    role = node.get("role", "head" if index == 0 else "other")
    if role not in ROLES:
        ctx.err(node.line_of("role"), f"role {role!r} is not one of {sorted(ROLES)}")
    sex = node.get("sex", "M" if role == "head" else "F")
    if sex not in ("M", "F"):
        ctx.err(node.line_of("sex"), f"sex {sex!r} must be 'M' or 'F'")
    death: date | None = None
    if node.get("dead") is True:
        death = ps - timedelta(days=1)
    if "death_on" in node:
        death = _date(ctx, node["death_on"], node.line_of("death_on"), "death_on")
    region = str(node.get("region", "750000000"))
    if not (len(region) == 9 and region.isdigit()):
        ctx.err(node.line_of("region"), f"region {region!r} must be a 9-digit KATO code")
    facts: list[FactSpec] = []
    facts_node = node.get("facts")
    if facts_node is not None:
        if not isinstance(facts_node, Seq):
            ctx.err(node.line_of("facts"), "facts must be a list")
        else:
            for i, fact in enumerate(facts_node):
                spec = _fact(ctx, fact, facts_node.line_of(i), ps, birth, death)
                if spec is not None:
                    facts.append(spec)
    parents: list[tuple[str, str]] = []
    for relation in LINK_RELATIONS:
        if relation in node:
            parent = node[relation]
            if not isinstance(parent, str):
                ctx.err(node.line_of(relation), f"{relation} must name another member")
            else:
                parents.append((relation, parent))
    if birth is None:
        return None
    return MemberSpec(
        name=str(node.get("name", f"member{index}")),
        role=str(role),
        sex=str(sex),
        birth_on=birth,
        death_on=death,
        region_kato=region,
        facts=facts,
        in_family=node.get("no_family") is not True,
        parents=parents,
    )


def _fact(
    ctx: _Ctx, node: Any, line: int, ps: date, birth: date | None, death: date | None
) -> FactSpec | None:
    if not isinstance(node, Map):
        ctx.err(line, "a fact is a mapping with kind and detail")
        return None
    ctx.fields(
        node,
        (
            "kind",
            "detail",
            "qualifier",
            "amount",
            "amount_minor",
            "quantity",
            "from",
            "until",
            "source",
        ),
        "fact",
        ("kind", "detail"),
    )
    kind, detail = node.get("kind"), node.get("detail")
    if kind not in FACT_DETAILS:
        if "kind" in node:
            ctx.err(
                node.line_of("kind"), f"fact kind {kind!r} is not one of {sorted(FACT_DETAILS)}"
            )
        return None
    if detail not in FACT_DETAILS[kind]:
        ctx.err(
            node.line_of("detail"),
            f"{kind} detail {detail!r} is not one of {sorted(FACT_DETAILS[kind])}",
        )
        return None
    amount = node.get("amount_minor", node.get("amount"))
    quantity = node.get("quantity")
    for what, value in (("amount", amount), ("quantity", quantity)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            ctx.err(node.line, f"fact {what} must be an integer")
            return None
    default_from = ps - timedelta(days=3653)
    if kind == "birth" and birth is not None:
        default_from = birth
    if kind == "death" and death is not None:
        default_from = death
    valid_from = default_from
    if "from" in node:
        valid_from = _date(ctx, node["from"], node.line_of("from"), "fact 'from'") or default_from
    valid_until = None
    if "until" in node:
        valid_until = _date(ctx, node["until"], node.line_of("until"), "fact 'until'")
    return FactSpec(
        kind=str(kind),
        detail=str(detail),
        qualifier=None if node.get("qualifier") is None else str(node["qualifier"]),
        amount_minor=amount,
        quantity=quantity,
        valid_from=valid_from,
        valid_until=valid_until,
        source=str(node.get("source", "case")),
    )


def parse_cases(ctx: _Ctx, node: Any, line: int, default_program: str | None) -> list[Case]:
    """Rule test cases: a household, a period and the expected decision."""
    out: list[Case] = []
    if node is None:
        return out
    if not isinstance(node, Seq):
        ctx.err(line, "tests must be a list of cases")
        return out
    for i, spec in enumerate(node):
        cline = node.line_of(i)
        if not isinstance(spec, Map):
            ctx.err(cline, "a test case is a mapping")
            continue
        ctx.fields(
            spec,
            (
                "name",
                "program",
                "period",
                "members",
                "subject",
                "eligible",
                "amount",
                "conditions",
                "variables",
                "wellbeing",
            ),
            "test case",
            ("name", "period", "members", "eligible"),
        )
        program = spec.get("program", default_program)
        if not isinstance(program, str):
            ctx.err(cline, "a test case outside a program file needs 'program'")
            continue
        try:
            period = Period.parse(str(spec.get("period")))
        except ValueError as exc:
            ctx.err(spec.line_of("period"), str(exc))
            continue
        members_node = spec.get("members")
        if not isinstance(members_node, Seq) or not members_node:
            ctx.err(spec.line_of("members"), "a test case needs a non-empty list of members")
            continue
        members = [
            _member(ctx, m, members_node.line_of(j), j, period) for j, m in enumerate(members_node)
        ]
        if any(m is None for m in members):
            continue
        ok_members = [m for m in members if m is not None]
        subject = spec.get("subject", 0)
        names = [m.name for m in ok_members]
        unknown = [
            f"{relation} {parent!r}"
            for m in ok_members
            for relation, parent in m.parents
            if parent not in names or parent == m.name
        ]
        if unknown:
            ctx.err(members_node.line, f"links name no other member: {', '.join(unknown)}")
            continue
        if isinstance(subject, str) and subject in names:
            subject = names.index(subject)
        if not isinstance(subject, int) or not 0 <= subject < len(ok_members):
            ctx.err(spec.line_of("subject"), f"subject {subject!r} is not a member index or name")
            continue
        eligible = spec.get("eligible")
        if not isinstance(eligible, bool):
            ctx.err(spec.line_of("eligible"), "eligible must be true or false")
            continue
        amount = spec.get("amount")
        if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool)):
            ctx.err(spec.line_of("amount"), "amount must be an integer in minor units")
            continue
        conditions: dict[str, bool] = {}
        cond_node = spec.get("conditions")
        if isinstance(cond_node, Map):
            for k, v in cond_node.items():
                if not isinstance(v, bool):
                    ctx.err(cond_node.line_of(k), f"condition {k!r} must be true or false")
                else:
                    conditions[str(k)] = v
        elif cond_node is not None:
            ctx.err(spec.line_of("conditions"), "conditions must map names to true/false")
        variables: dict[str, bool | int | str] = {}
        var_node = spec.get("variables")
        if isinstance(var_node, Map):
            for k, v in var_node.items():
                if not isinstance(v, bool | int | str):
                    ctx.err(
                        var_node.line_of(k),
                        f"variable {k!r} must be true/false, an integer (money in minor units)"
                        " or text",
                    )
                else:
                    variables[str(k)] = v
        elif var_node is not None:
            ctx.err(spec.line_of("variables"), "variables must map names to expected values")
        if "wellbeing" in spec:
            scored = _wellbeing(ctx, spec.get("wellbeing"), spec.line_of("wellbeing"), period)
            if scored is None:
                continue
            for member in ok_members:
                if member.in_family:
                    member.facts.extend(scored)
        out.append(
            Case(
                name=str(spec.get("name")),
                program=program,
                period=period,
                members=ok_members,
                loc=ctx.loc(cline),
                subject=subject,
                eligible=eligible,
                amount=amount,
                conditions=conditions,
                variables=variables,
            )
        )
    return out


def _wellbeing(ctx: _Ctx, node: Any, line: int, period: Period) -> list[FactSpec] | None:
    """A case's family well-being (`{category: "6", run: 12}`, `{level: E}`) as the facts the
    adapter gives every member: scored for the case's period by run `run` (default 1)."""
    hint = 'wellbeing is {level: A..E and/or category: "1".."6", run: <scoring run id>}'
    if not isinstance(node, Map):
        ctx.err(line, hint)
        return None
    ctx.fields(node, ("level", "category", "run"), "wellbeing")
    run = node.get("run", 1)
    if not isinstance(run, int) or isinstance(run, bool) or run < 1:
        ctx.err(node.line_of("run"), f"wellbeing run {run!r} must be a positive integer")
        return None
    out: list[FactSpec] = []
    for scale, codes in WELLBEING_SCALES.items():
        if scale not in node:
            continue
        code = str(node[scale])
        if code not in codes:
            ctx.err(node.line_of(scale), f"wellbeing {scale} {code!r} is not one of {list(codes)}")
            return None
        out.append(
            FactSpec(
                kind="wellbeing",
                detail=scale,
                amount_minor=run,
                quantity=codes.index(code) + 1,
                valid_from=period.start,
                source="case",
            )
        )
    if not out:
        ctx.err(line, hint)
        return None
    return out


def _read(path: Path, problems: list[Problem], display: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(display, 0, "", f"cannot read: {exc}"))
        return None
    try:
        return yamlio.load(text)
    except yamlio.YamlSyntaxError as exc:
        problems.append(Problem(display, exc.line, "", exc.reason))
        return None


def _program(ctx: _Ctx, node: Map, index: int, pack_id: str) -> Program | None:
    ctx.fields(
        node,
        (
            "id",
            "title",
            "legal_basis",
            "entity",
            "period",
            "kind",
            "parameters",
            "versions",
            "tests",
            "until",
            "description",
        ),
        "program",
        ("id", "title", "legal_basis", "entity", "period", "versions"),
    )
    pid = node.get("id")
    if not isinstance(pid, str) or not PROGRAM_ID.match(pid):
        ctx.err(node.line_of("id"), f"program id {pid!r} must look like '{pack_id}.name'")
        return None
    ctx.program = pid
    if not pid.startswith(pack_id + "."):
        ctx.err(node.line_of("id"), f"program id {pid!r} must start with '{pack_id}.'")
    title = _texts(ctx, node.get("title"), node.line_of("title"), "title")
    basis_node = node.get("legal_basis")
    citation = ""
    basis: dict[str, str] = {}
    if isinstance(basis_node, Map):
        ctx.fields(basis_node, ("text", "citation"), "legal_basis", ("text", "citation"))
        basis = _texts(ctx, basis_node.get("text"), basis_node.line_of("text"), "legal_basis text")
        citation = str(basis_node.get("citation", ""))
    else:
        ctx.err(node.line_of("legal_basis"), "legal_basis needs text (kk, ru, en) and citation")
    entity = node.get("entity")
    if entity not in ("person", "family"):
        ctx.err(node.line_of("entity"), f"entity {entity!r} must be person or family")
        entity = "person"
    period = node.get("period")
    if period not in ("month", "year"):
        ctx.err(node.line_of("period"), f"period {period!r} must be month or year")
        period = "month"
    kind = node.get("kind", "benefit")
    if kind not in ("benefit", "status"):
        ctx.err(node.line_of("kind"), f"kind {kind!r} must be benefit or status")
        kind = "benefit"
    until = None
    if "until" in node:
        until = _date(ctx, node["until"], node.line_of("until"), "until")
    program = Program(
        id=pid,
        index=index,
        title=title,
        legal_basis=basis,
        citation=citation,
        entity=cast(Literal["person", "family"], entity),
        period=cast(Literal["month", "year"], period),
        loc=ctx.loc(node.line),
        kind=cast(Literal["benefit", "status"], kind),
        parameters=_parameters(ctx, node.get("parameters"), node.line_of("parameters"), pid),
        until=until,
    )
    program.versions = _versions(ctx, node.get("versions"), node.line_of("versions"), program)
    program.cases = parse_cases(ctx, node.get("tests"), node.line_of("tests"), pid)
    if kind == "benefit" and len(program.cases) < 1:
        ctx.err(node.line, "a benefit program needs test cases under 'tests'")
    return program


def _versions(ctx: _Ctx, node: Any, line: int, program: Program) -> list[Version]:
    out: list[Version] = []
    if not isinstance(node, Seq) or not node:
        ctx.err(line, "versions must be a non-empty list; the first one defines the rules")
        return out
    variables: dict[str, Variable] = {}
    conditions: dict[str, Condition] = {}
    amount: Source | None = None
    rounding: Rounding | None = None
    report: list[str] = []
    for i, spec in enumerate(node):
        vline = node.line_of(i)
        if not isinstance(spec, Map):
            ctx.err(vline, "a version is a mapping with 'from'")
            continue
        ctx.fields(
            spec,
            ("from", "note", "citation", "variables", "conditions", "amount", "rounding", "report"),
            "version",
            ("from",),
        )
        start = _date(ctx, spec.get("from"), spec.line_of("from"), "version 'from'")
        if start is None:
            continue
        if out and start <= out[-1].effective_from:
            ctx.err(spec.line_of("from"), "versions must be in increasing order of 'from'")
            continue
        for name, var in _variables(
            ctx, spec.get("variables"), spec.line_of("variables"), program.id, allow_remove=True
        ).items():
            if var is None:
                variables.pop(name, None)
            else:
                variables[name] = var
        for name, cond in _conditions(
            ctx, spec.get("conditions"), spec.line_of("conditions"), program.id
        ).items():
            if cond is None:
                conditions.pop(name, None)
            else:
                conditions[name] = cond
        if "amount" in spec:
            raw = spec["amount"]
            if isinstance(raw, int | float) and not isinstance(raw, bool):
                raw = str(raw)
            if isinstance(raw, str):
                amount = Source(raw, ctx.loc(spec.line_of("amount")), program.id)
            else:
                ctx.err(spec.line_of("amount"), "amount must be an expression")
        if "rounding" in spec:
            rounding = _rounding(ctx, spec["rounding"], spec.line_of("rounding")) or rounding
        if "report" in spec:
            names = spec["report"]
            if isinstance(names, Seq) and all(isinstance(n, str) for n in names):
                report = list(names)
            else:
                ctx.err(spec.line_of("report"), "report is a list of variable names")
        if not conditions:
            ctx.err(vline, "a version needs at least one condition")
        if program.kind == "benefit":
            if amount is None:
                ctx.err(vline, "a benefit needs an amount")
            if rounding is None:
                ctx.err(vline, "a benefit needs a rounding rule (mode, unit, why)")
        out.append(
            Version(
                index=len(out) + 1,
                effective_from=start,
                loc=ctx.loc(vline),
                note=str(spec.get("note", "")),
                citation=str(spec.get("citation", "")),
                variables=dict(variables),
                conditions=dict(conditions),
                amount=amount,
                rounding=rounding or Rounding(),
                report=list(report),
            )
        )
    return out


def _retirement(ctx: _Ctx, node: Any, line: int) -> dict[str, list[RetirementStep]]:
    out: dict[str, list[RetirementStep]] = {}
    if node is None:
        return out
    if not isinstance(node, Map):
        ctx.err(line, "retirement_age maps M and F to lists of {year, age}")
        return out
    ctx.fields(node, ("M", "F"), "retirement_age", ("M", "F"))
    for sex in ("M", "F"):
        steps = node.get(sex)
        if not isinstance(steps, Seq) or not steps:
            continue
        parsed: list[RetirementStep] = []
        for i, step in enumerate(steps):
            sline = steps.line_of(i)
            if not isinstance(step, Map):
                ctx.err(sline, "a retirement step is {year: 2028, age: 61.5}")
                continue
            ctx.fields(step, ("year", "age"), "retirement step", ("year", "age"))
            year, age = step.get("year"), _scalar(step.get("age"))
            if not isinstance(year, int) or not isinstance(age, int | Decimal):
                ctx.err(sline, "a retirement step needs an integer year and a numeric age")
                continue
            try:
                parsed.append(RetirementStep(year=year, age=Decimal(age)))
            except InvalidOperation:
                ctx.err(sline, f"bad retirement age {age!r}")
        years = [s.year for s in parsed]
        if years != sorted(set(years)):
            ctx.err(steps.line, f"retirement steps for {sex} must have increasing years")
        out[sex] = parsed
    return out


def parse_pack(path: str | Path) -> tuple[Pack | None, list[Problem]]:
    """Read `pack.yaml` and every other `*.yaml` program file; never raises on bad content."""
    root = Path(path)
    problems: list[Problem] = []
    pack_file = root / PACK_FILE
    if not pack_file.is_file():
        return None, [Problem(str(pack_file), 0, "", "a pack directory needs pack.yaml")]
    display = str(pack_file)
    node = _read(pack_file, problems, display)
    if not isinstance(node, Map):
        if node is not None:
            problems.append(Problem(display, 1, "", "pack.yaml must be a mapping"))
        return None, problems
    ctx = _Ctx(display, problems)
    ctx.fields(
        node,
        (
            "id",
            "title",
            "country",
            "currency",
            "parameters",
            "variables",
            "retirement_age",
            "description",
        ),
        "pack.yaml",
        ("id", "title", "country", "currency"),
    )
    pack_id = node.get("id")
    if not isinstance(pack_id, str) or not NAME.match(pack_id):
        ctx.err(node.line_of("id"), f"pack id {pack_id!r} must be lowercase letters/digits/_")
        pack_id = "pack"
    currency = node.get("currency")
    code, symbol, minor = "", "", 100
    if isinstance(currency, Map):
        ctx.fields(
            currency,
            ("code", "symbol", "minor_per_major"),
            "currency",
            ("code", "symbol", "minor_per_major"),
        )
        code = str(currency.get("code", ""))
        symbol = str(currency.get("symbol", ""))
        raw_minor = currency.get("minor_per_major", 100)
        minor = raw_minor if isinstance(raw_minor, int) and raw_minor > 0 else 100
    else:
        ctx.err(node.line_of("currency"), "currency is {code, symbol, minor_per_major}")
    pack = Pack(
        id=pack_id,
        title=_texts(ctx, node.get("title"), node.line_of("title"), "title"),
        country=str(node.get("country", "")),
        currency=code,
        currency_symbol=symbol,
        minor_per_major=minor,
        path=str(root),
        parameters=_parameters(ctx, node.get("parameters"), node.line_of("parameters"), pack_id),
        retirement=_retirement(ctx, node.get("retirement_age"), node.line_of("retirement_age")),
    )
    pack.variables = {
        k: v
        for k, v in _variables(
            ctx, node.get("variables"), node.line_of("variables"), pack_id
        ).items()
        if v is not None
    }
    seen: dict[str, str] = {}
    for index, file in enumerate(sorted(p for p in root.glob("*.yaml") if p.name != PACK_FILE)):
        shown = str(file)
        program_node = _read(file, problems, shown)
        if program_node is None:
            continue
        pctx = _Ctx(shown, problems)
        if not isinstance(program_node, Map):
            pctx.err(1, "a program file must be a mapping")
            continue
        program = _program(pctx, program_node, index + 1, pack_id)
        if program is None:
            continue
        if program.id in seen:
            pctx.err(
                program.loc.line, f"program {program.id!r} is also defined in {seen[program.id]}"
            )
            continue
        seen[program.id] = shown
        pack.programs.append(program)
    if not pack.programs:
        problems.append(Problem(display, 0, "", "the pack has no program files"))
    return pack, problems


def load_cases(path: str | Path) -> tuple[list[Case], list[Problem]]:
    """Golden cases from a YAML file holding a list of cases (each names its program)."""
    problems: list[Problem] = []
    file = Path(path)
    node = _read(file, problems, str(file))
    if node is None:
        return [], problems
    ctx = _Ctx(str(file), problems)
    cases = parse_cases(ctx, node, getattr(node, "line", 1), None)
    return cases, problems


# --- Public hooks for other rule-shaped documents (the well-being methodology) -------------
# They parse one section in the pack's own format and append problems naming `file`, so a
# document that embeds parameters, variables or kk/ru/en texts is checked exactly as a pack is.


def parse_parameters(
    file: str, node: Any, line: int, owner: str, problems: list[Problem]
) -> dict[str, Parameter]:
    """A `parameters:` section (dated values), as in pack.yaml."""
    return _parameters(_Ctx(file, problems, owner), node, line, owner)


def parse_variables(
    file: str, node: Any, line: int, owner: str, problems: list[Problem]
) -> dict[str, Variable]:
    """A `variables:` section (`person:` and `family:` maps of expressions), as in pack.yaml."""
    parsed = _variables(_Ctx(file, problems, owner), node, line, owner)
    return {k: v for k, v in parsed.items() if v is not None}


def parse_texts(
    file: str, value: Any, line: int, what: str, problems: list[Problem], owner: str = ""
) -> dict[str, str]:
    """A text per language (kk, ru, en); a plain string stands for all three."""
    return _texts(_Ctx(file, problems, owner), value, line, what)


def check_fields(
    file: str,
    node: Map,
    allowed: Iterable[str],
    where: str,
    problems: list[Problem],
    required: Iterable[str] = (),
    owner: str = "",
) -> None:
    """Report unknown (with a close-match hint), duplicate and missing keys of a mapping."""
    _Ctx(file, problems, owner).fields(node, allowed, where, required)


def read_yaml(path: Path, problems: list[Problem]) -> Any:
    """A YAML file with line numbers (Map/Seq), or None after recording why it cannot load."""
    return _read(path, problems, str(path))
