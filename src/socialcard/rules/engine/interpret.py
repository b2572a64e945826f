"""Evaluate one household row by row in Python, with the same bound SQL as the batch.

DuckDB spends 20-30 ms planning and starting the pipelines of a pack's statement, whatever
the input size; a household has a handful of rows. This evaluator runs the bound stages of
`compiler.Bound` (`person_steps`, `family_aggs`, `family_steps`, `person_result_steps`)
directly: every SQL expression of those steps is parsed once with sqlglot and turned into a
Python closure that follows DuckDB's semantics for the constructs the engine emits:

- NULL propagates through arithmetic and comparisons; AND/OR/NOT are three-valued; CASE
  falls through on NULL; greatest/least/coalesce skip NULLs;
- an integer literal is BIGINT, a literal with a point DECIMAL (exact, `Decimal`), `/` gives
  DOUBLE, `//` truncates toward zero, `%` keeps the dividend's sign;
- round/ceil/floor keep the argument's type, round halves away from zero; a DECIMAL cast
  rounds half away from zero, a DOUBLE cast to an integer half to even.

The preparation of the input (codes, day numbers, merged duplicate incomes, deaths, birth
ranks) and the per-person fact aggregates mirror `builtins.prepare_*_sql` and `FACT_AGGS`.
The agreement test runs both evaluators on random households and compares every decision.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Context, Decimal
from typing import Any

import sqlglot
from sqlglot import exp

from socialcard.rules.engine.builtins import (
    CARER_CONTRIBUTION_CODE,
    CARER_PRIORITY,
    CONTRIBUTION_CODE,
    DISABILITY_BIT,
    FACT_CODES,
    INCOME_AGGS,
    MOTHER_RELATIONS,
    QUALIFIER_CODES,
    RAISED8_CODE,
    RAISED_AGE,
    STUDY_FT_BIT,
    looks_back,
)
from socialcard.rules.engine.columnar import fact_spec
from socialcard.rules.engine.compiler import Bound, Layer
from socialcard.rules.engine.loader import ROLES
from socialcard.rules.engine.periods import add_years
from socialcard.rules.engine.problems import EvaluationError

Row = dict[str, Any]
Fn = Callable[[Row], Any]

_EPOCH = date(1970, 1, 1)
_OPEN_END = (date(2200, 1, 1) - _EPOCH).days
_CTX = Context(prec=38)
_ONE = Decimal(1)


# --- values ---------------------------------------------------------------------------------
def _days(day: date | None) -> int | None:
    return None if day is None else (day - _EPOCH).days


def _as_date(value: Any) -> date | None:
    if value is None or type(value) is date:
        return value
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _num(a: Any, b: Any) -> tuple[Any, Any, int]:
    """Both operands in a common representation: 0 int, 1 Decimal, 2 float."""
    ta, tb = type(a), type(b)
    if ta is float or tb is float:
        return float(a), float(b), 2
    if ta is Decimal or tb is Decimal:
        return (a if ta is Decimal else Decimal(a)), (b if tb is Decimal else Decimal(b)), 1
    return a, b, 0


def _add(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if isinstance(a, date):
        return a + timedelta(days=int(b))
    if isinstance(b, date):
        return b + timedelta(days=int(a))
    x, y, k = _num(a, b)
    return _CTX.add(x, y) if k == 1 else x + y


def _sub(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    if isinstance(a, date):
        return (a - b).days if isinstance(b, date) else a - timedelta(days=int(b))
    x, y, k = _num(a, b)
    return _CTX.subtract(x, y) if k == 1 else x - y


def _mul(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    x, y, k = _num(a, b)
    return _CTX.multiply(x, y) if k == 1 else x * y


def _div(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    x, y = float(a), float(b)
    if y == 0.0:
        return math.nan if x == 0.0 or math.isnan(x) else math.copysign(math.inf, x)
    return x / y


def _intdiv(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    x, y, k = _num(a, b)
    if y == 0:
        raise EvaluationError("division by zero")
    if k == 0:
        q = abs(x) // abs(y)
        return q if (x >= 0) == (y >= 0) else -q
    return float(math.floor(float(x) / float(y)))


def _mod(a: Any, b: Any) -> Any:
    if a is None or b is None:
        return None
    x, y, k = _num(a, b)
    if y == 0:
        raise EvaluationError("division by zero")
    if k == 0:
        r = abs(x) % abs(y)
        return r if x >= 0 else -r
    if k == 1:
        return _CTX.remainder(x, y)
    return math.fmod(x, y)


def _round_half_away(value: Decimal, exponent: Decimal = _ONE) -> Decimal:
    return value.quantize(exponent, rounding=ROUND_HALF_UP, context=_CTX)


def _round(value: Any, places: Any = None) -> Any:
    if value is None:
        return None
    digits = 0 if places is None else int(places)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if digits >= 0:
            return value
        step = 10**-digits
        return int(_round_half_away(Decimal(value) / step) * step)
    exponent = Decimal(1).scaleb(-digits)
    if isinstance(value, Decimal):
        return _round_half_away(value, exponent) if digits >= 0 else value
    if math.isnan(value) or math.isinf(value):
        return value
    if digits == 0:
        return float(math.floor(abs(value) + 0.5)) * (1.0 if value >= 0 else -1.0)
    return float(_round_half_away(Decimal(repr(value)), exponent))


def _floor_ceil(value: Any, up: bool) -> Any:
    if value is None or isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        return value.to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
    return float(math.ceil(value) if up else math.floor(value))


def _to_int(value: Any) -> Any:
    if value is None or type(value) is int:
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return int(_round_half_away(value))
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise EvaluationError(f"cannot cast {value} to an integer")
        return round(value)  # half to even, as DuckDB casts a DOUBLE
    return int(str(value).strip())


def _to_decimal(value: Any, scale: int) -> Any:
    if value is None:
        return None
    exponent = Decimal(1).scaleb(-scale)
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return Decimal(value).quantize(exponent, context=_CTX)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise EvaluationError(f"cannot cast {value} to a decimal")
        value = Decimal(repr(value))
    return _round_half_away(Decimal(value), exponent)


_INTEGER_TYPES = frozenset({"BIGINT", "INT", "SMALLINT", "TINYINT", "UBIGINT", "UINT"})


def _cast(value: Any, to: exp.DataType) -> Any:
    kind = to.this.name if hasattr(to.this, "name") else str(to.this)
    if value is None:
        return None
    if kind in _INTEGER_TYPES:
        return _to_int(value)
    if kind in ("DOUBLE", "FLOAT"):
        return float(value)
    if kind == "DECIMAL":
        params = to.expressions
        scale = int(params[1].this.this) if len(params) > 1 else 3
        return _to_decimal(value, scale)
    if kind == "DATE":
        return _as_date(value)
    if kind in ("VARCHAR", "TEXT"):
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)
    if kind == "BOOLEAN":
        return bool(value)
    raise EvaluationError(f"internal: no cast to {to.sql('duckdb')}")


def _cmp(op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], Any]:
    def compare(a: Any, b: Any) -> Any:
        if a is None or b is None:
            return None
        return op(a, b)

    return compare


def _unify(values: list[Any]) -> list[Any]:
    """greatest/least: a DOUBLE among the arguments makes them all DOUBLE."""
    if any(type(v) is float for v in values):
        return [float(v) for v in values]
    return values


# --- SQL expression -> closure ----------------------------------------------------------------
_BINARY: dict[type[exp.Expression], Callable[[Any, Any], Any]] = {
    exp.Add: _add,
    exp.Sub: _sub,
    exp.Mul: _mul,
    exp.Div: _div,
    exp.IntDiv: _intdiv,
    exp.Mod: _mod,
    exp.EQ: _cmp(lambda a, b: a == b),
    exp.NEQ: _cmp(lambda a, b: a != b),
    exp.GT: _cmp(lambda a, b: a > b),
    exp.GTE: _cmp(lambda a, b: a >= b),
    exp.LT: _cmp(lambda a, b: a < b),
    exp.LTE: _cmp(lambda a, b: a <= b),
    exp.BitwiseAnd: _cmp(lambda a, b: a & b),
    exp.BitwiseOr: _cmp(lambda a, b: a | b),
    exp.BitwiseXor: _cmp(lambda a, b: a ^ b),
    exp.BitwiseLeftShift: _cmp(lambda a, b: a << b),
    exp.BitwiseRightShift: _cmp(lambda a, b: a >> b),
}


def _literal(node: exp.Literal) -> Any:
    if node.is_string:
        return node.this
    text = node.this
    if text.lstrip("-").isdigit():
        return int(text)
    if "e" in text.lower():
        return float(text)
    return Decimal(text)


def parse_sql(sql: str) -> exp.Expression:
    """One SQL expression of the compiled stages as a sqlglot tree."""
    try:
        tree = sqlglot.parse_one(sql, dialect="duckdb")
    except sqlglot.errors.ParseError as exc:  # pragma: no cover - the compiler wrote it
        raise EvaluationError(f"internal: cannot parse {sql!r}") from exc
    if not isinstance(tree, exp.Expression):  # pragma: no cover
        raise EvaluationError(f"internal: cannot parse {sql!r}")
    return tree


def compile_sql(sql: str) -> Fn:
    """A closure evaluating one SQL expression over a row (column name -> value)."""
    return _build(parse_sql(sql))


def _build(node: exp.Expression) -> Fn:
    b = _build
    if isinstance(node, exp.Paren):
        return b(node.this)
    if isinstance(node, exp.Column):
        name = node.name
        return lambda row: row.get(name)
    if isinstance(node, exp.Literal):
        value = _literal(node)
        return lambda row: value
    if isinstance(node, exp.Boolean):
        flag = bool(node.this)
        return lambda row: flag
    if isinstance(node, exp.Null):
        return lambda row: None
    op = _BINARY.get(type(node))
    if op is not None:
        left, right = b(node.this), b(node.expression)
        return lambda row: op(left(row), right(row))
    if isinstance(node, exp.And):
        left, right = b(node.this), b(node.expression)

        def and_(row: Row) -> Any:
            x = left(row)
            if x is False:
                return False
            y = right(row)
            if y is False:
                return False
            return None if x is None or y is None else True

        return and_
    if isinstance(node, exp.Or):
        left, right = b(node.this), b(node.expression)

        def or_(row: Row) -> Any:
            x = left(row)
            if x is True:
                return True
            y = right(row)
            if y is True:
                return True
            return None if x is None or y is None else False

        return or_
    if isinstance(node, exp.Not):
        inner = b(node.this)

        def not_(row: Row) -> Any:
            x = inner(row)
            return None if x is None else not x

        return not_
    if isinstance(node, exp.Neg):
        inner = b(node.this)

        def neg(row: Row) -> Any:
            x = inner(row)
            return None if x is None else -x

        return neg
    if isinstance(node, exp.Is):
        inner = b(node.this)
        if not isinstance(node.expression, exp.Null):
            raise EvaluationError(f"internal: IS {node.expression.sql()}")
        return lambda row: inner(row) is None
    if isinstance(node, exp.In):
        subject = b(node.this)
        items = [b(i) for i in node.expressions]

        def in_(row: Row) -> Any:
            x = subject(row)
            if x is None:
                return None
            unknown = False
            for item in items:
                y = item(row)
                if y is None:
                    unknown = True
                elif x == y:
                    return True
            return None if unknown else False

        return in_
    if isinstance(node, exp.Between):
        subject, low, high = b(node.this), b(node.args["low"]), b(node.args["high"])
        ge, le = _BINARY[exp.GTE], _BINARY[exp.LTE]

        def between(row: Row) -> Any:
            x = subject(row)
            first, second = ge(x, low(row)), le(x, high(row))
            if first is False or second is False:
                return False
            return None if first is None or second is None else True

        return between
    if isinstance(node, exp.Case):
        return _case(node)
    if isinstance(node, exp.If):
        cond, then = b(node.this), b(node.args["true"])
        other = b(node.args["false"]) if node.args.get("false") is not None else (lambda r: None)
        return lambda row: then(row) if cond(row) is True else other(row)
    if isinstance(node, exp.Cast):
        inner, to = b(node.this), node.args["to"]
        return lambda row: _cast(inner(row), to)
    if isinstance(node, exp.Coalesce):
        args = [b(a) for a in [node.this, *node.expressions]]

        def coalesce(row: Row) -> Any:
            for arg in args:
                value = arg(row)
                if value is not None:
                    return value
            return None

        return coalesce
    if isinstance(node, exp.Greatest | exp.Least):
        args = [b(a) for a in [node.this, *node.expressions]]
        pick = max if isinstance(node, exp.Greatest) else min

        def extreme(row: Row) -> Any:
            values = [v for v in (a(row) for a in args) if v is not None]
            return pick(_unify(values)) if values else None

        return extreme
    if isinstance(node, exp.Nullif):
        left, right = b(node.this), b(node.expression)

        def nullif(row: Row) -> Any:
            x = left(row)
            return None if x is not None and x == right(row) else x

        return nullif
    if isinstance(node, exp.Round):
        inner = b(node.this)
        places = node.args.get("decimals")
        if places is None:
            return lambda row: _round(inner(row))
        digits = b(places)
        return lambda row: _round(inner(row), digits(row))
    if isinstance(node, exp.Floor | exp.Ceil):
        inner, up = b(node.this), isinstance(node, exp.Ceil)
        return lambda row: _floor_ceil(inner(row), up)
    if isinstance(node, exp.Abs):
        inner = b(node.this)
        return lambda row: None if (x := inner(row)) is None else abs(x)
    if isinstance(node, exp.Year | exp.Month | exp.Day):
        inner = b(node.this)
        part = {exp.Year: "year", exp.Month: "month", exp.Day: "day"}[type(node)]
        return lambda row: None if (x := inner(row)) is None else getattr(x, part)
    if isinstance(node, exp.Log):
        base, inner = b(node.this), b(node.expression)

        def log(row: Row) -> Any:
            x, k = inner(row), base(row)
            if x is None or k is None:
                return None
            return math.log2(x) if k == 2 else math.log(x, k)

        return log
    raise EvaluationError(f"internal: cannot evaluate {node.sql('duckdb')!r}")


def _case(node: exp.Case) -> Fn:
    subject = _build(node.this) if node.args.get("this") is not None else None
    branches = [(_build(i.this), _build(i.args["true"])) for i in node.args.get("ifs") or []]
    default = node.args.get("default")
    other = _build(default) if default is not None else (lambda row: None)
    if subject is None:

        def case(row: Row) -> Any:
            for cond, value in branches:
                if cond(row) is True:
                    return value(row)
            return other(row)

        return case

    def case_value(row: Row) -> Any:
        x = subject(row)
        if x is not None:
            for cond, value in branches:
                y = cond(row)
                if y is not None and x == y:
                    return value(row)
        return other(row)

    return case_value


# --- a bound pack as closures -------------------------------------------------------------------
Steps = list[list[tuple[str, Fn]]]


def _steps(layers: Iterable[Layer]) -> Steps:
    return [[(column, compile_sql(sql)) for column, sql in layer] for layer in layers]


def _run(steps: Steps, row: Row) -> None:
    for layer in steps:
        for column, fn in layer:
            row[column] = fn(row)


class Program:
    """One bound period of a pack, ready to evaluate households row by row."""

    def __init__(self, bound: Bound, retirement: tuple[str, str] | None) -> None:
        self.bound = bound
        self.literals = {
            k: v for k, v in bound.literals.items() if k.endswith("_d") or k == "zzper_lookback"
        }
        self.retirement = (
            (compile_sql(retirement[0]), compile_sql(retirement[1])) if retirement else None
        )
        self.person_steps = _steps(bound.person_steps)
        self.aggs = [
            (a.column, a.kind, compile_sql(a.arg) if a.arg else None, compile_sql(a.guard), a.type)
            for a in bound.family_aggs
        ]
        self.family_steps = _steps(bound.family_steps)
        self.person_result_steps = (
            _steps(bound.person_result_steps) if bound.person_result_steps is not None else None
        )
        self.fact_specs = [(name, fact_spec(name)) for name in bound.raw_facts]
        self.incomes = any(name in INCOME_AGGS for name in bound.raw_facts)

    # --- input --------------------------------------------------------------------------------
    def _persons(self, persons: list[Row], deaths: Mapping[int, date]) -> list[Row]:
        out: list[Row] = []
        for p in persons:
            pid = int(p["person_id"])
            family_id = p.get("family_id")
            family_id = None if family_id is None else int(family_id)
            role, sex = p.get("role"), p.get("sex")
            birth = _as_date(p.get("birth_on"))
            death = _as_date(p.get("death_on"))
            fact_death = deaths.get(pid)
            if fact_death is not None and (death is None or fact_death < death):
                death = fact_death
            region = p.get("region_kato")
            row: Row = {
                "person_id": pid,
                "family_id": family_id,
                "fkey": family_id if family_id is not None else -pid,
                "raw_role": None if role is None else str(role),
                "role": (str(role) if role in ROLES else "other") if role is not None else None,
                "sex": sex if sex in ("F", "M") else None,
                "region_kato": None if region is None else str(region),
                "birth_on": birth,
                "death_on": death,
                "b_int": None
                if birth is None
                else birth.year * 10000 + birth.month * 100 + birth.day,
                "b_ym": None if birth is None else birth.year * 12 + birth.month,
                "b_day": None if birth is None else birth.day,
                "b_d": _days(birth),
                "d_d": _days(death),
                "child_rank": None,
                "birth_rank": None,
                "carer_id": None,
            }
            if self.retirement is not None:
                retire = {"birth_on": birth, "sex": sex}
                row["retire_age"] = self.retirement[0](retire)
                row["retire_months"] = self.retirement[1](retire)
            else:
                row["retire_age"] = row["retire_months"] = None
            out.append(row)
        # Birth rank among the children of a family: by birth date (unknown last), then id.
        children: dict[int, list[Row]] = {}
        for row in out:
            if row["raw_role"] == "child":
                children.setdefault(row["fkey"], []).append(row)
        for members in children.values():
            members.sort(
                key=lambda r: (r["birth_on"] is None, r["birth_on"] or _EPOCH, r["person_id"])
            )
            for rank, row in enumerate(members, start=1):
                row["child_rank"] = rank
        return out

    @staticmethod
    def _facts(facts: list[Row]) -> tuple[dict[int, list[tuple[Any, ...]]], dict[int, date]]:
        """Facts per person as (code, amt, qty, vf, vt, bit); and the earliest death facts."""
        deaths: dict[int, date] = {}
        incomes: dict[tuple[int, int, int | None], list[Any]] = {}
        others: list[tuple[int, tuple[Any, ...]]] = []
        for f in facts:
            pid = f.get("person_id")
            if pid is None:
                continue
            pid = int(pid)
            kind, detail = f.get("kind"), f.get("detail")
            start = _as_date(f.get("valid_from"))
            if kind == "death":
                if start is not None and (pid not in deaths or start < deaths[pid]):
                    deaths[pid] = start
                continue
            code = FACT_CODES.get((kind, detail))  # type: ignore[arg-type]
            if code is None:
                continue
            until = _as_date(f.get("valid_until"))
            vf = _days(start)
            vt = _OPEN_END if until is None else min(_OPEN_END, (until - _EPOCH).days)
            amount = f.get("amount_minor")
            amount = None if amount is None else int(amount)
            if kind == "income":
                key = (pid, code, vf)
                merged = incomes.get(key)
                if merged is None:
                    incomes[key] = [amount, vt]
                else:
                    if amount is not None and (merged[0] is None or amount > merged[0]):
                        merged[0] = amount
                    merged[1] = max(merged[1], vt)
                continue
            qual = QUALIFIER_CODES.get(f.get("qualifier"))  # type: ignore[arg-type]
            bit = 1 << code
            if 6 <= code <= 9:
                bit |= 1 << (DISABILITY_BIT + (code - 6) * 4 + min(qual or 4, 4) - 1)
            elif 10 <= code <= 12 and qual == 5:
                bit |= 1 << STUDY_FT_BIT
            quantity = f.get("quantity")
            quantity = None if quantity is None else int(quantity)
            others.append((pid, (code, amount, quantity, vf, vt, bit)))
        by_person: dict[int, list[tuple[Any, ...]]] = {}
        for (pid, code, vf), (amount, vt) in incomes.items():
            by_person.setdefault(pid, []).append((code, amount, None, vf, vt, 1 << code))
        for pid, fact in others:
            by_person.setdefault(pid, []).append(fact)
        return by_person, deaths

    def _aggregates(self, facts: list[tuple[Any, ...]], row: Row) -> None:
        lit = self.literals
        ps, pe = int(lit["zzper_ps_d"]), int(lit["zzper_pe_d"])
        lookback = int(lit.get("zzper_lookback", ps)) if self.incomes else ps
        for name, spec in self.fact_specs:
            window = None
            if spec.window is not None:
                window = (int(lit[spec.window[0]]), int(lit[spec.window[1]]))
            result: Any = None
            for code, amount, quantity, vf, vt, bit in facts:
                if vf is None or vf > pe:
                    continue
                if not (vt >= ps or (self.incomes and looks_back(code) and vt >= lookback)):
                    continue
                if spec.op == "or":
                    if vt >= ps:
                        result = bit if result is None else result | bit
                    continue
                if not spec.low <= code <= spec.high:
                    continue
                if window is None:
                    if vt < ps:
                        continue
                    value = {"vf": vf, "qty": quantity, "amt": amount}[spec.value]
                    if value is not None and (result is None or value > result):
                        result = value
                    continue
                days = max(0, min(vt, window[1]) - max(vf, window[0]) + 1)
                if spec.value == "one":
                    term = float(days)
                elif amount is None:
                    continue
                else:
                    term = float(amount) * days
                result = term if result is None else result + term
            row[name] = result

    @staticmethod
    def _lineage(
        people: list[Row],
        links: list[Row],
        deaths: Mapping[int, date],
        by_person: dict[int, list[tuple[Any, ...]]],
    ) -> None:
        """Birth ranks, caring parents and the facts derived from parent-child links, as
        `builtins.prepare_person_sql` / `prepare_fact_sql` compute them."""
        # The legal mother: an adoptive mother first, then the latest link, then the lower id.
        chosen: dict[int, tuple[tuple[Any, ...], Row]] = {}
        for link in links:
            child, parent = link.get("child_id"), link.get("parent_id")
            if child is None or parent is None or link.get("relation") not in MOTHER_RELATIONS:
                continue
            since = _as_date(link.get("valid_from"))
            key = (
                0 if link.get("relation") == "adoptive_mother" else 1,
                since is None,
                -(since - _EPOCH).days if since is not None else 0,
                int(parent),
            )
            if int(child) not in chosen or key < chosen[int(child)][0]:
                chosen[int(child)] = (key, link)
        children: dict[int, list[tuple[int, date | None, date | None]]] = {}
        for child, (_, link) in chosen.items():
            children.setdefault(int(link["parent_id"]), []).append(
                (child, _as_date(link.get("child_birth_on")), _as_date(link.get("child_death_on")))
            )
        ranks: dict[int, int] = {}
        for mother, kids in children.items():
            kids.sort(key=lambda k: (k[1] is None, k[1] or _EPOCH, k[0]))
            for rank, (child, _, _) in enumerate(kids, start=1):
                ranks[child] = rank
            raised = []
            for child, born, died in kids:
                if born is None:
                    continue
                eighth = add_years(born, RAISED_AGE)
                if died is None or died >= eighth:
                    raised.append(((eighth - _EPOCH).days, child))
            raised.sort()
            for ordinal, (day, _) in enumerate(raised, start=1):
                by_person.setdefault(mother, []).append(
                    (RAISED8_CODE, None, ordinal, day, _OPEN_END, 1 << RAISED8_CODE)
                )
        rows = {row["person_id"]: row for row in people}
        carers: dict[int, tuple[tuple[int, int], int]] = {}
        for link in links:
            child, parent = link.get("child_id"), link.get("parent_id")
            relation = link.get("relation")
            if child is None or parent is None or relation not in CARER_PRIORITY:
                continue
            kid, carer = rows.get(int(child)), rows.get(int(parent))
            if kid is None or carer is None or link.get("valid_until") is not None:
                continue
            if kid["family_id"] is None or carer["family_id"] != kid["family_id"]:
                continue
            if carer["death_on"] is not None or int(parent) in deaths:
                continue
            priority = (CARER_PRIORITY[str(relation)], int(parent))
            if int(child) not in carers or priority < carers[int(child)][0]:
                carers[int(child)] = (priority, int(parent))
        for row in people:
            row["birth_rank"] = ranks.get(row["person_id"])
            found = carers.get(row["person_id"])
            if found is None:
                continue
            row["carer_id"] = found[1]
            copies = [
                (CARER_CONTRIBUTION_CODE, amount, quantity, vf, vt, 1 << CARER_CONTRIBUTION_CODE)
                for code, amount, quantity, vf, vt, _ in by_person.get(found[1], [])
                if code == CONTRIBUTION_CODE
            ]
            if copies:
                by_person.setdefault(row["person_id"], []).extend(copies)

    # --- evaluation ---------------------------------------------------------------------------
    def evaluate(
        self, persons: list[Row], facts: list[Row], links: list[Row] | None = None
    ) -> tuple[list[Row], list[Row]]:
        """Family rows and person rows (with the family values person rules read)."""
        by_person, deaths = self._facts(facts)
        people = self._persons(persons, deaths)
        if links:
            self._lineage(people, links, deaths, by_person)
        for row in people:
            self._aggregates(by_person.get(row["person_id"], []), row)
            _run(self.person_steps, row)
        groups: dict[int, list[Row]] = {}
        for row in people:
            groups.setdefault(row["fkey"], []).append(row)
        families: dict[int, Row] = {}
        for fkey, members in groups.items():
            family_ids: list[int] = [m["family_id"] for m in members if m["family_id"] is not None]
            family: Row = {
                "fkey": fkey,
                "family_id": max(family_ids) if family_ids else None,
                "first_person_id": min(int(m["person_id"]) for m in members),
            }
            for column, kind, arg, guard, _ in self.aggs:
                family[column] = _aggregate(kind, arg, guard, members)
            _run(self.family_steps, family)
            family["region"] = family.get("f_family_region")
            families[fkey] = family
        if self.person_result_steps is not None:
            reads = self.bound.family_reads
            for row in people:
                family = families[row["fkey"]]
                for column in reads:
                    row[column] = family.get(column)
                _run(self.person_result_steps, row)
        return list(families.values()), people


def _aggregate(kind: str, arg: Fn | None, guard: Fn, members: list[Row]) -> Any:
    """One aggregate over a family's rows, as `AggSpec.sql()` / `term()` compute it."""
    rows = [m for m in members if guard(m) is True]
    if kind == "count_star":
        return len(rows)
    assert arg is not None  # noqa: S101 - every other kind has an argument
    values = [arg(m) for m in rows]
    if kind == "count":
        return sum(1 for v in values if v is not None)
    if kind == "bool_or":
        return any(v is True for v in values)
    if kind == "bool_and":
        return not any(v is False for v in values)
    present = [v for v in values if v is not None]
    if kind == "sum":
        if not present:
            return 0
        if all(type(v) is int for v in present):
            return sum(present)
        if any(type(v) is float for v in present):
            return math.fsum(float(v) for v in present)
        return sum((Decimal(v) for v in present), Decimal(0))
    if not present:
        return None
    if kind == "avg":
        return math.fsum(float(v) for v in present) / len(present)
    return max(present) if kind == "max" else min(present)
