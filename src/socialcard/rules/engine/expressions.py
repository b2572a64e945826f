"""Rule expressions: parsed with sqlglot (DuckDB dialect), checked, and translated to SQL.

An expression is one SQL *expression* over the names a rule may see. Nothing else gets
through: statements, subqueries and any function outside ALLOWED_FUNCTIONS are refused, every
name must resolve, and types must fit. The translation replaces names with the engine's own
column names, parameters and period dates with `zzprm_*`/`zzper_*` placeholders bound per
period, and, at family level, lifts each aggregate over members into the GROUP BY stage.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from socialcard.rules.engine.model import T

Scope = Literal["person", "family", "member"]
SymbolLevel = Literal["person", "family", "param", "period"]

DIALECT = "duckdb"
RANGES = {"member": "is_member", "deceased": "is_deceased"}

# Scalar functions a rule may call, by their sqlglot node, with the name shown in messages.
_SCALAR_FUNCS: dict[type[exp.Expression], str] = {
    exp.Abs: "abs",
    exp.Round: "round",
    exp.Floor: "floor",
    exp.Ceil: "ceil",
    exp.Greatest: "greatest",
    exp.Least: "least",
    exp.Coalesce: "coalesce",
    exp.Nullif: "nullif",
    exp.If: "if",
    exp.Year: "year",
    exp.Month: "month",
    exp.Day: "day",
}
_AGG_FUNCS: dict[type[exp.Expression], str] = {
    exp.Count: "count",
    exp.Sum: "sum",
    exp.Avg: "avg",
    exp.Min: "min",
    exp.Max: "max",
    exp.LogicalOr: "bool_or",
    exp.LogicalAnd: "bool_and",
}
ALLOWED_FUNCTIONS = tuple(sorted({*_SCALAR_FUNCS.values(), *_AGG_FUNCS.values(), "any", "all"}))

_STATEMENTS: tuple[type[exp.Expression], ...] = tuple(
    getattr(exp, name)
    for name in (
        "Query",
        "DDL",
        "DML",
        "Command",
        "Drop",
        "Create",
        "Pragma",
        "Set",
        "Use",
        "Transaction",
        "Commit",
        "Rollback",
        "Alter",
        "Copy",
        "Describe",
        "Attach",
        "Detach",
        "Install",
        "Insert",
        "Update",
        "Delete",
        "Merge",
    )
    if hasattr(exp, name)
)
_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ)
_CAST_TYPES: dict[str, T] = {
    "DATE": T.DATE,
    "INT": T.INT,
    "BIGINT": T.INT,
    "SMALLINT": T.INT,
    "DECIMAL": T.NUM,
    "DOUBLE": T.NUM,
    "FLOAT": T.NUM,
    "VARCHAR": T.TEXT,
    "TEXT": T.TEXT,
    "BOOLEAN": T.BOOL,
}


@dataclass(frozen=True)
class Symbol:
    """A name a rule can use: a built-in, a variable, a parameter or a period date."""

    key: str  # unique: graph node and placeholder suffix
    name: str
    level: SymbolLevel
    column: str  # SQL column name, or the placeholder for a parameter / period date
    type: T
    unit: str
    title: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    keys: tuple[int, ...] = ()  # a table parameter's integer keys


@dataclass
class Names:
    """What an expression can see; `lookup` resolves (qualifier, name) to a symbol."""

    person: dict[str, Symbol]
    family: dict[str, Symbol]
    params: dict[str, Symbol]
    period: dict[str, Symbol]


@dataclass(frozen=True)
class AggSpec:
    """An aggregate over members, lifted out of an expression: `kind` of `arg` where `guard`."""

    kind: str  # count_star, count, sum, avg, min, max, bool_or, bool_and
    arg: str | None  # SQL over person columns
    guard: str  # SQL: the member range and the FILTER condition
    type: T

    def sql(self) -> str:
        """Plain SQL; over no members: count 0, sum 0, bool_or false, bool_and true, else NULL."""
        where = f" FILTER (WHERE {self.guard})"
        if self.kind == "count_star":
            return f"count(*){where}"
        if self.kind == "sum" and self.type == T.INT:
            # DOUBLE accumulation is exact below 2**53 minor units and cheaper than HUGEINT.
            return f"CAST(coalesce(sum(CAST({self.arg} AS DOUBLE)){where}, 0) AS BIGINT)"
        empty = {"sum": "0", "bool_or": "FALSE", "bool_and": "TRUE"}.get(self.kind)
        body = f"{self.kind}({self.arg}){where}"
        return f"coalesce({body}, {empty})" if empty else body

    @property
    def packable(self) -> bool:
        """Counts and any/all become 0/1 terms that several aggregates can share one sum for."""
        return self.kind in ("count_star", "count", "bool_or", "bool_and")

    def term(self) -> str:
        """The 0/1 per-row term of a packable aggregate."""
        cond = {
            "count_star": self.guard,
            "count": f"({self.guard}) AND ({self.arg}) IS NOT NULL",
            "bool_or": f"({self.guard}) AND ({self.arg})",
            "bool_and": f"({self.guard}) AND NOT ({self.arg})",
        }[self.kind]
        return f"CASE WHEN {cond} THEN 1 ELSE 0 END"

    def decode(self, lane: str) -> str:
        """The aggregate's value from its lane (the count of rows whose term was 1)."""
        if self.kind == "bool_or":
            return f"({lane} > 0)"
        if self.kind == "bool_and":
            return f"({lane} = 0)"
        return lane


@dataclass
class Compiled:
    """A checked expression: its SQL, type, display unit and what it references."""

    sql: str
    type: T
    unit: str
    refs: set[Symbol]  # names used as values of this entity
    member_refs: set[Symbol]  # person names used inside aggregates over members
    aggregates: set[str]  # lifted aggregate columns this expression reads


class ExprError(Exception):
    """A problem in one expression (the loader adds file, line and program)."""


def parse(text: str) -> exp.Expression:
    """Parse one SQL expression; statements and several expressions are refused."""
    if not isinstance(text, str) or not text.strip():
        raise ExprError("an expression is required")
    if "zzprm_" in text or "zzper_" in text or "zzretire" in text:
        raise ExprError("names starting with 'zzprm_', 'zzper_' or 'zzretire' are reserved")
    try:
        trees = [t for t in sqlglot.parse(text, dialect=DIALECT) if t is not None]
    except (ParseError, TokenError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise ExprError(f"cannot parse {text!r}: {message}") from exc
    if len(trees) != 1:
        raise ExprError(f"one expression expected, found {len(trees)} statements in {text!r}")
    tree = trees[0]
    if not isinstance(tree, exp.Expression):
        raise ExprError(f"cannot parse {text!r}")
    if isinstance(tree, _STATEMENTS):
        raise ExprError(f"a statement ({tree.key.upper()}) where an expression belongs: {text!r}")
    return tree


def references(tree: exp.Expression) -> set[tuple[str, str]]:
    """The (qualifier, name) pairs an expression mentions; qualifier '' when unqualified."""
    out: set[tuple[str, str]] = set()
    for column in tree.find_all(exp.Column):
        if isinstance(column.this, exp.Star):
            continue
        out.add((column.table or "", column.name))
    return out


def _fits(a: T, b: T) -> bool:
    if T.ANY in (a, b) or T.NULL in (a, b):
        return True
    if a.numeric and b.numeric:
        return True
    return a == b


def _unify(types: list[T], what: str) -> T:
    known = [t for t in types if t not in (T.NULL, T.ANY)]
    if not known:
        return T.ANY if T.ANY in types else T.NULL
    if all(t.numeric for t in known):
        return T.NUM if T.NUM in known else T.INT
    first = known[0]
    for t in known[1:]:
        if t != first:
            raise ExprError(f"{what} mix types {first} and {t}")
    return first


class _Translator:
    """One pass over an expression tree: checks it and builds the translated tree."""

    def __init__(self, names: Names, scope: Scope, lift: Callable[[AggSpec], str] | None) -> None:
        self.names = names
        self.scope = scope
        self.lift = lift
        self.refs: set[Symbol] = set()
        self.member_refs: set[Symbol] = set()
        self.aggregates: set[str] = set()
        self.range: str | None = None  # member / deceased, inside an aggregate

    # --- names ---------------------------------------------------------------------------
    def _unknown(self, name: str, pool: dict[str, Symbol], what: str) -> ExprError:
        close = difflib.get_close_matches(name, list(pool), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return ExprError(f"unknown {what} {name!r}{hint}")

    def column(self, node: exp.Column, scope: Scope) -> tuple[exp.Expression, T, str]:
        if isinstance(node.this, exp.Star):
            raise ExprError("'*' is only allowed in count(*)")
        parts = [p.name for p in node.parts]
        if len(parts) > 2:
            raise ExprError(f"unknown name {'.'.join(parts)!r}")
        qualifier, name = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])
        names = self.names
        if qualifier in RANGES:
            if scope != "member":
                raise ExprError(
                    f"{qualifier}.{name} can only be used inside an aggregate over members,"
                    f" e.g. count({qualifier}) filter (where {qualifier}.{name} ...)"
                )
            if self.range is not None and qualifier != self.range:
                raise ExprError(f"an aggregate mixes {self.range} and {qualifier}")
            symbol = names.person.get(name)
            if symbol is None:
                raise self._unknown(name, names.person, "person variable")
            self.range = qualifier
            self.member_refs.add(symbol)
            return exp.column(symbol.column), symbol.type, symbol.unit
        if qualifier == "family":
            if scope != "person":
                raise ExprError(f"family.{name} is only needed in person-level expressions")
            symbol = names.family.get(name)
            if symbol is None:
                raise self._unknown(name, names.family, "family variable")
            return self._use(symbol)
        if qualifier:
            raise ExprError(f"unknown qualifier {qualifier!r} in {qualifier}.{name}")
        if name in names.params:
            return self._use(names.params[name], member=scope == "member")
        if name in names.period:
            return self._use(names.period[name], member=scope == "member")
        if scope == "person":
            if name in names.person:
                return self._use(names.person[name])
            if name in names.family:
                raise ExprError(f"{name!r} is a family variable: write family.{name}")
            raise self._unknown(name, {**names.person, **names.params}, "variable")
        if scope == "family":
            if name in names.family:
                return self._use(names.family[name])
            if name in names.person:
                raise ExprError(
                    f"{name!r} is a person variable used at family level: aggregate it over"
                    f" members, e.g. max(member.{name}) or count(member) filter (where ...)"
                )
            raise self._unknown(name, {**names.family, **names.params}, "variable")
        # member scope, unqualified
        if name in names.person:
            raise ExprError(f"write member.{name} inside an aggregate over members")
        if name in names.family:
            raise ExprError(f"family variable {name!r} cannot be used inside an aggregate")
        raise self._unknown(name, {**names.person, **names.params}, "variable")

    def _use(self, symbol: Symbol, member: bool = False) -> tuple[exp.Expression, T, str]:
        (self.member_refs if member else self.refs).add(symbol)
        if symbol.keys:
            raise ExprError(
                f"{symbol.name!r} is a table parameter: look a value up with {symbol.name}[key]"
            )
        return exp.column(symbol.column), symbol.type, symbol.unit

    # --- the walk --------------------------------------------------------------------------
    def walk(self, node: exp.Expression, scope: Scope) -> tuple[exp.Expression, T, str]:
        w = self.walk
        if isinstance(node, exp.Paren):
            inner, t, u = w(node.this, scope)
            return exp.Paren(this=inner), t, u
        if isinstance(node, exp.Literal):
            if node.is_string:
                return node.copy(), T.TEXT, "text"
            text = node.this
            is_int = text.lstrip("-").isdigit()
            return node.copy(), (T.INT if is_int else T.NUM), "number"
        if isinstance(node, exp.Boolean):
            return node.copy(), T.BOOL, "bool"
        if isinstance(node, exp.Null):
            return node.copy(), T.NULL, "number"
        if isinstance(node, exp.Column):
            return self.column(node, scope)
        if isinstance(node, exp.Neg):
            inner, t, u = w(node.this, scope)
            self._numeric(t, "unary minus")
            return exp.Neg(this=inner), t, u
        if isinstance(node, exp.Not):
            inner, t, _ = w(node.this, scope)
            self._bool(t, "NOT")
            return exp.Not(this=inner), T.BOOL, "bool"
        if isinstance(node, exp.And | exp.Or):
            left, lt, _ = w(node.this, scope)
            right, rt, _ = w(node.expression, scope)
            word = "AND" if isinstance(node, exp.And) else "OR"
            self._bool(lt, word)
            self._bool(rt, word)
            return type(node)(this=left, expression=right), T.BOOL, "bool"
        if isinstance(node, _COMPARISONS):
            left, lt, _ = w(node.this, scope)
            right, rt, _ = w(node.expression, scope)
            if not _fits(lt, rt):
                raise ExprError(f"cannot compare {lt} with {rt} in {node.sql(DIALECT)!r}")
            return type(node)(this=left, expression=right), T.BOOL, "bool"
        if isinstance(node, exp.Is):
            left, _, _ = w(node.this, scope)
            right, _, _ = w(node.expression, scope)
            return exp.Is(this=left, expression=right), T.BOOL, "bool"
        if isinstance(node, exp.In):
            if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
                raise ExprError("IN takes a list of values, not a subquery")
            left, lt, _ = w(node.this, scope)
            items = []
            for item in node.expressions:
                new, it, _ = w(item, scope)
                if not _fits(lt, it):
                    raise ExprError(f"IN list item of type {it} does not fit {lt}")
                items.append(new)
            return exp.In(this=left, expressions=items), T.BOOL, "bool"
        if isinstance(node, exp.Between):
            this, t, _ = w(node.this, scope)
            low, lo, _ = w(node.args["low"], scope)
            high, hi, _ = w(node.args["high"], scope)
            if not (_fits(t, lo) and _fits(t, hi)):
                raise ExprError(f"BETWEEN bounds do not fit {t}")
            return exp.Between(this=this, low=low, high=high), T.BOOL, "bool"
        if isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Div | exp.Mod | exp.IntDiv):
            return self._arith(node, scope)
        if isinstance(node, exp.Case):
            return self._case(node, scope)
        if isinstance(node, exp.Cast):
            return self._cast(node, scope)
        if isinstance(node, exp.Bracket):
            return self._lookup(node, scope)
        if isinstance(node, exp.Filter) or type(node) in _AGG_FUNCS or _is_any_all(node):
            return self._aggregate(node, scope)
        if type(node) in _SCALAR_FUNCS:
            return self._scalar(node, scope)
        if isinstance(node, (exp.Subquery, exp.Exists, *_STATEMENTS)):
            raise ExprError("subqueries are not allowed in rule expressions")
        if isinstance(node, exp.Func):
            name = node.name if isinstance(node, exp.Anonymous) else node.sql_name().lower()
            raise ExprError(
                f"function {name}() is not allowed; allowed: {', '.join(ALLOWED_FUNCTIONS)}"
            )
        raise ExprError(f"{node.key.upper()} is not allowed in a rule expression")

    def _numeric(self, t: T, what: str) -> None:
        if not t.numeric:
            raise ExprError(f"{what} needs a number, got {t}")

    def _bool(self, t: T, what: str) -> None:
        if t not in (T.BOOL, T.NULL, T.ANY):
            raise ExprError(f"{what} needs a boolean, got {t}")

    def _arith(self, node: exp.Expression, scope: Scope) -> tuple[exp.Expression, T, str]:
        left, lt, lu = self.walk(node.this, scope)
        right, rt, ru = self.walk(node.expression, scope)
        new = _rebuild(node, this=left, expression=right)
        ops: dict[type[exp.Expression], str] = {
            exp.Add: "+",
            exp.Sub: "-",
            exp.Mul: "*",
            exp.Div: "/",
            exp.Mod: "%",
            exp.IntDiv: "//",
        }
        op = ops[type(node)]
        if isinstance(node, exp.Add | exp.Sub) and T.DATE in (lt, rt):
            if isinstance(node, exp.Sub) and lt == T.DATE and rt == T.DATE:
                return new, T.INT, "days"
            if lt == T.DATE and rt in (T.INT, T.NULL, T.ANY):
                return new, T.DATE, "date"
            if isinstance(node, exp.Add) and rt == T.DATE and lt in (T.INT, T.NULL, T.ANY):
                return new, T.DATE, "date"
            raise ExprError(f"cannot compute {lt} {op} {rt}")
        if not (lt.numeric and rt.numeric):
            raise ExprError(f"cannot compute {lt} {op} {rt} in {node.sql(DIALECT)!r}")
        if isinstance(node, exp.Div):
            t = T.NUM
        elif isinstance(node, exp.IntDiv):
            t = T.INT
        else:
            t = T.INT if (lt in (T.INT, T.NULL) and rt in (T.INT, T.NULL)) else T.NUM
        unit = "number"
        if isinstance(node, exp.Add | exp.Sub | exp.Mod):
            unit = lu if lu == ru or ru == "number" else ("number" if lu == "number" else lu)
        elif isinstance(node, exp.Mul):
            unit = lu if lu != "number" else ru
        elif isinstance(node, exp.Div | exp.IntDiv):
            unit = lu if ru in ("number", "count") else "number"
        return new, t, unit

    def _case(self, node: exp.Case, scope: Scope) -> tuple[exp.Expression, T, str]:
        subject = node.args.get("this")
        subject_new, st = None, None
        if subject is not None:
            subject_new, st, _ = self.walk(subject, scope)
        ifs = []
        types: list[T] = []
        units: list[str] = []
        for branch in node.args.get("ifs") or []:
            cond, ct, _ = self.walk(branch.this, scope)
            if st is None:
                self._bool(ct, "CASE WHEN")
            elif not _fits(st, ct):
                raise ExprError(f"CASE value {ct} does not fit {st}")
            value, vt, vu = self.walk(branch.args["true"], scope)
            ifs.append(exp.If(this=cond, true=value))
            types.append(vt)
            units.append(vu)
        default = node.args.get("default")
        default_new = None
        if default is not None:
            default_new, dt, du = self.walk(default, scope)
            types.append(dt)
            units.append(du)
        t = _unify(types, "CASE branches")
        unit = next((u for u in units if u != "number"), "number")
        return exp.Case(this=subject_new, ifs=ifs, default=default_new), t, unit

    def _cast(self, node: exp.Cast, scope: Scope) -> tuple[exp.Expression, T, str]:
        to = node.args["to"]
        type_name = to.this.name if isinstance(to.this, exp.Expression) else str(to.this.value)
        target = _CAST_TYPES.get(type_name.upper())
        if target is None:
            raise ExprError(f"cannot cast to {to.sql(DIALECT)}")
        inner, t, u = self.walk(node.this, scope)
        literal = t in (T.TEXT, T.DATE, T.NULL) and node.this.is_string
        if target == T.DATE and not literal and t != T.DATE:
            raise ExprError("only a date literal can become a date, e.g. DATE '2025-09-01'")
        new = exp.Cast(this=inner, to=to.copy())
        unit = "date" if target == T.DATE else ("text" if target == T.TEXT else u)
        return new, target, unit

    def _lookup(self, node: exp.Bracket, scope: Scope) -> tuple[exp.Expression, T, str]:
        base = node.this
        if not isinstance(base, exp.Column) or base.table or base.name not in self.names.params:
            raise ExprError("[...] looks a value up in a table parameter, e.g. coef[children]")
        symbol = self.names.params[base.name]
        if not symbol.keys:
            raise ExprError(f"{symbol.name!r} is not a table parameter")
        if len(node.expressions) != 1:
            raise ExprError(f"{symbol.name}[...] takes one key")
        key, kt, _ = self.walk(node.expressions[0], scope)
        if kt not in (T.INT, T.NULL, T.ANY):
            raise ExprError(f"the key of {symbol.name}[...] must be an integer, got {kt}")
        (self.member_refs if scope == "member" else self.refs).add(symbol)
        # The value at the largest key <= the lookup key; NULL below the smallest key.
        ifs = [
            exp.If(
                this=exp.GTE(this=key.copy(), expression=exp.Literal.number(k)),
                true=exp.column(f"{symbol.column}_{k}"),
            )
            for k in sorted(symbol.keys, reverse=True)
        ]
        return exp.Paren(this=exp.Case(ifs=ifs)), symbol.type, symbol.unit

    def _scalar(self, node: exp.Expression, scope: Scope) -> tuple[exp.Expression, T, str]:
        name = _SCALAR_FUNCS[type(node)]
        if name in ("year", "month", "day"):
            inner, t, _ = self.walk(node.this, scope)
            if t not in (T.DATE, T.NULL, T.ANY):
                raise ExprError(f"{name}() needs a date, got {t}")
            return type(node)(this=inner), T.INT, "number"
        if name == "if":
            cond, ct, _ = self.walk(node.this, scope)
            self._bool(ct, "if()")
            a, at, au = self.walk(node.args["true"], scope)
            false = node.args.get("false")
            if false is None:
                raise ExprError("if() takes three arguments: condition, then, else")
            b, bt, bu = self.walk(false, scope)
            t = _unify([at, bt], "if() branches")
            unit = au if au != "number" else bu
            return exp.If(this=cond, true=a, false=b), t, unit
        if name == "nullif":
            a, at, au = self.walk(node.this, scope)
            b, bt, _ = self.walk(node.expression, scope)
            if not _fits(at, bt):
                raise ExprError(f"nullif() compares {at} with {bt}")
            return exp.Nullif(this=a, expression=b), at, au
        if name in ("greatest", "least", "coalesce"):
            args = [node.this, *node.expressions]
            news, types, units = [], [], []
            for arg in args:
                new, t, u = self.walk(arg, scope)
                news.append(new)
                types.append(t)
                units.append(u)
            t = _unify(types, f"{name}() arguments")
            unit = next((u for u in units if u != "number"), "number")
            return _rebuild(node, this=news[0], expressions=news[1:]), t, unit
        # abs, round, floor, ceil
        inner, t, u = self.walk(node.this, scope)
        self._numeric(t, f"{name}()")
        kwargs: dict[str, exp.Expression] = {"this": inner}
        decimals = node.args.get("decimals")
        if decimals is not None:
            d, dt, _ = self.walk(decimals, scope)
            if dt not in (T.INT, T.ANY):
                raise ExprError(f"{name}() decimals must be an integer")
            kwargs["decimals"] = d
        if name in ("floor", "ceil") and decimals is None:
            t = T.INT if t == T.INT else T.NUM
        return _rebuild(node, **kwargs), t, u

    def _aggregate(self, node: exp.Expression, scope: Scope) -> tuple[exp.Expression, T, str]:
        if scope != "family" or self.lift is None:
            where = "inside another aggregate" if scope == "member" else "at person level"
            raise ExprError(f"aggregates over members are not allowed {where}")
        filter_cond: exp.Expression | None = None
        agg = node
        if isinstance(node, exp.Filter):
            agg = node.this
            where = node.expression
            if not isinstance(where, exp.Where):
                raise ExprError("FILTER needs (WHERE condition)")
            filter_cond = where.this
            if not (type(agg) in _AGG_FUNCS or _is_any_all(agg)):
                raise ExprError("FILTER (WHERE ...) follows an aggregate such as count(member)")
        self.range = None
        name, arg = _agg_parts(agg)
        translated_arg: exp.Expression | None = None
        arg_t, arg_u = T.INT, "count"
        if name == "count" and (
            arg is None
            or isinstance(arg, exp.Star)
            or (isinstance(arg, exp.Column) and not arg.table and arg.name in RANGES)
        ):
            if isinstance(arg, exp.Column):
                self.range = arg.name
        else:
            if arg is None:
                raise ExprError(f"{name}() needs an argument such as member.age")
            translated_arg, arg_t, arg_u = self.walk(arg, "member")
        cond_sql = None
        if filter_cond is not None:
            cond, ct, _ = self.walk(filter_cond, "member")
            self._bool(ct, "FILTER (WHERE ...)")
            cond_sql = cond
        rng = self.range or "member"
        self.range = None
        guard: exp.Expression = exp.column(RANGES[rng])
        if cond_sql is not None:
            guard = exp.And(this=guard, expression=exp.Paren(this=cond_sql))
        result_t, unit = T.INT, "count"
        kind = name
        if name == "count":
            kind = "count" if translated_arg is not None else "count_star"
        elif name in ("sum", "avg", "min", "max"):
            if name in ("sum", "avg"):
                self._numeric(arg_t, f"{name}()")
            result_t = T.NUM if name == "avg" else arg_t
            unit = arg_u
        else:  # bool_or / bool_and
            self._bool(arg_t, f"{name}()")
            result_t, unit = T.BOOL, "bool"
        spec = AggSpec(
            kind=kind,
            arg=translated_arg.sql(DIALECT) if translated_arg is not None else None,
            guard=guard.sql(DIALECT),
            type=result_t if kind != "sum" else (T.INT if arg_t == T.INT else T.NUM),
        )
        column = self.lift(spec)
        self.aggregates.add(column)
        return exp.column(column), result_t, unit


def _rebuild(node: exp.Expression, **children: Any) -> exp.Expression:
    """A copy of `node` with new children, keeping its own flags (e.g. GREATEST ignoring
    NULLs as DuckDB does; dropping it makes sqlglot emit a NULL-propagating CASE)."""
    new = node.copy()
    for key, value in children.items():
        new.set(key, value)
    return new


def _is_any_all(node: exp.Expression) -> bool:
    if isinstance(node, exp.Any):
        return True
    return isinstance(node, exp.Anonymous) and node.name.lower() == "all"


def _agg_parts(node: exp.Expression) -> tuple[str, exp.Expression | None]:
    if isinstance(node, exp.Any):
        inner = node.this
        if isinstance(inner, exp.Paren):
            inner = inner.this
        return "bool_or", inner
    if isinstance(node, exp.Anonymous):  # all(...)
        if len(node.expressions) != 1:
            raise ExprError("all() takes one argument")
        return "bool_and", node.expressions[0]
    name = _AGG_FUNCS[type(node)]
    if isinstance(node, exp.Min | exp.Max) and node.expressions:
        raise ExprError(f"{name}() over members takes one argument; use least()/greatest()")
    if isinstance(node, exp.Count) and node.expressions:
        raise ExprError("count() takes one argument")
    arg = node.this
    if isinstance(arg, exp.Distinct):
        raise ExprError("DISTINCT is not supported in rule aggregates")
    return name, arg


def compile_expr(
    text: str,
    names: Names,
    scope: Literal["person", "family"],
    lift: Callable[[AggSpec], str] | None = None,
) -> Compiled:
    """Check an expression and translate it to SQL; raises ExprError on the first problem."""
    tree = parse(text)
    translator = _Translator(names, scope, lift)
    new, t, unit = translator.walk(tree, scope)
    return Compiled(
        sql=new.sql(DIALECT),
        type=t,
        unit=unit,
        refs=translator.refs,
        member_refs=translator.member_refs,
        aggregates=translator.aggregates,
    )
