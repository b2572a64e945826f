"""Compile a pack once: check every expression, then assemble SQL stages per period.

Stages (each one SQL SELECT over the previous ones):

- `pb_raw`, materialized: one row per person with the person columns and the per-period
  fact aggregates the used built-ins read (one GROUP BY over the facts, one join; a
  whole-registry batch computes the same columns in numpy instead, see `columnar.py`);
- `pb`, a view over `pb_raw`: built-ins and the person variables that do not read family
  values; each consumer computes only the columns it reads;
- `fr`, family results: one GROUP BY over `pb` computes every aggregate of every program
  (counts and any/all packed into shared sums), then family variables and each family
  program's conditions, eligibility and amount;
- `pr`, person results: `pb` joined with the family values person rules read, then the
  remaining person variables and each person program's conditions, eligibility and amount.

Parameters and period dates stay `zzprm_*`/`zzper_*` placeholders in the compiled SQL; `bind`
replaces them with literals for one period (and any what-if overrides).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Literal

from socialcard.rules.engine import expressions as ex
from socialcard.rules.engine.builtins import (
    ALWAYS_FAMILY,
    ALWAYS_PERSON,
    FACT_AGGS,
    FAMILY_BUILTINS,
    HELPERS,
    INCOME_AGGS,
    LOOKBACK_CODES_SQL,
    PERSON_BUILTINS,
    RUN_OF,
    income_lookback_start,
    period_constants,
    retirement_sql,
)
from socialcard.rules.engine.expressions import AggSpec, Compiled, ExprError, Names, Symbol
from socialcard.rules.engine.loader import RESERVED, parse_pack
from socialcard.rules.engine.model import (
    LANGUAGES,
    Pack,
    Parameter,
    ParamValue,
    Program,
    Scalar,
    Source,
    T,
    Variable,
    Version,
    check_override,
)
from socialcard.rules.engine.periods import Period
from socialcard.rules.engine.problems import EvaluationError, PackError, Problem

Layer = list[tuple[str, str]]  # (column, SQL) computed side by side


@dataclass(frozen=True)
class BoundAgg:
    """An aggregate over a family's members with literals in place."""

    column: str
    kind: str  # count_star, count, sum, avg, min, max, bool_or, bool_and
    arg: str | None
    guard: str
    type: T


_PLACEHOLDER = re.compile(r"\bzz(?:prm|per)_[a-z0-9_]+\b")
_TEMPLATE = re.compile(r"\{([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)?)\}")


@dataclass
class VarPlan:
    """A compiled variable: its symbol, SQL and what it reads."""

    symbol: Symbol
    compiled: Compiled
    late: bool = False  # a person variable that reads family values


@dataclass
class CondPlan:
    """A compiled condition with its explanation templates and the names they show."""

    name: str
    compiled: Compiled
    explain: dict[str, str]
    shows: list[Symbol]
    column: str


@dataclass
class VersionPlan:
    """One version of a program, compiled."""

    version: Version
    variables: dict[str, VarPlan]
    conditions: list[CondPlan]
    amount: Compiled | None
    used: list[Symbol] = field(default_factory=list)  # variables reported with decisions
    reported: list[Symbol] = field(default_factory=list)  # asked for by `report`
    params: list[Symbol] = field(default_factory=list)  # parameters reported with decisions


@dataclass
class ProgramPlan:
    """A program with its compiled versions and output column names."""

    program: Program
    versions: list[VersionPlan]

    @property
    def prefix(self) -> str:
        return f"p{self.program.index}"

    @property
    def eligible_column(self) -> str:
        return f"{self.prefix}__eligible"

    @property
    def amount_column(self) -> str:
        return f"{self.prefix}__amount"

    def version_plan(self, day: date) -> VersionPlan | None:
        version = self.program.version_on(day)
        if version is None:
            return None
        return self.versions[version.index - 1]


@dataclass
class Stages:
    """The SQL of one period's evaluation, with placeholders still unbound."""

    person_raw: str  # materialized: person columns and fact aggregates
    person_base: str  # a view over `pb_raw`: built-ins and person variables
    family_result: str
    person_result: str | None
    active: dict[str, VersionPlan]  # program id -> version in force
    params: set[Symbol]
    family_columns: list[str]
    person_columns: list[str]
    family_reads: list[str]  # family columns person rules read
    raw_person: list[str] = field(default_factory=list)  # person columns `pb_raw` keeps
    raw_facts: list[str] = field(default_factory=list)  # fact aggregates `pb_raw` adds
    # The same stages as steps for the row-at-a-time evaluator (`interpret.py`): layers of
    # (column, SQL expression), each layer reading only earlier columns.
    person_steps: list[Layer] = field(default_factory=list)  # over `pb_raw` -> `pb`
    family_aggs: list[str] = field(default_factory=list)  # aggregate columns, GROUP BY fkey
    family_steps: list[Layer] = field(default_factory=list)
    person_result_steps: list[Layer] = field(default_factory=list)


@dataclass
class Bound:
    """Stages with literals in place for one period: ready to run."""

    period: Period
    person_raw: str
    person_base: str
    family_result: str
    person_result: str | None
    active: dict[str, VersionPlan]
    param_values: dict[str, ParamValue]  # symbol key -> value used
    family_reads: list[str]
    raw_person: list[str] = field(default_factory=list)
    raw_facts: list[str] = field(default_factory=list)
    literals: dict[str, str] = field(default_factory=dict)  # placeholder -> SQL literal
    person_steps: list[Layer] = field(default_factory=list)
    family_aggs: list[BoundAgg] = field(default_factory=list)
    family_steps: list[Layer] = field(default_factory=list)
    person_result_steps: list[Layer] | None = None
    person_columns: list[str] = field(default_factory=list)  # what `person_result` selects
    family_columns: list[str] = field(default_factory=list)  # what `family_result` selects

    def person_base_carrying(self, columns: Sequence[str]) -> str:
        """The person base view also passing raw columns through (e.g. family values
        gathered onto each person row, see `without_family_join`)."""
        if self.person_base.count(_BASE_HEAD) != 1:
            raise EvaluationError("internal: unexpected person_base shape")
        carried = "".join(f", p.{c} AS {c}" for c in columns)
        return self.person_base.replace(_BASE_HEAD, _BASE_HEAD + carried)

    def without_family_join(self, person_result: str) -> str:
        """A person result query (`person_result`, `person_result_with`) reading the family
        values from `pb` itself instead of joining `fr`."""
        if not self.family_reads:
            return person_result
        join = _family_join(self.family_reads)
        if person_result.count(join) != 1:
            raise EvaluationError("internal: unexpected person_result shape")
        return person_result.replace(join, "SELECT * FROM pb")

    @staticmethod
    def narrow_amounts(sql: str) -> str:
        """A stage with its amounts in 64-bit decimals (int64 rather than 128-bit arithmetic,
        ~0.2 s of one core for the person results of 3.3 M persons). DuckDB's decimal
        arithmetic is checked, so an amount that does not fit raises (ConversionException,
        OutOfRangeException) instead of changing: rerun the stage as compiled then."""
        return sql.replace(f" AS {_AMOUNT_DECIMAL}), 0)", f" AS {_NARROW_DECIMAL}), 0)")

    def person_result_inner(self) -> str:
        """The query `person_result` selects from: every person base column, the family
        values person rules read, late variables and outputs (see `person_result_with`)."""
        head = f"SELECT {', '.join(self.person_columns)} FROM ("
        if self.person_result is None or not self.person_result.startswith(head):
            raise EvaluationError("internal: unexpected person_result shape")
        return self.person_result[len(head) : -1]

    def person_result_with(self, extra: Sequence[str]) -> str | None:
        """`person_result` also keeping `extra` columns of its inner query, so a consumer
        needs no join with `person_view` (which recomputes the person base)."""
        if self.person_result is None or not extra:
            return self.person_result
        columns = [*self.person_columns, *(c for c in extra if c not in self.person_columns)]
        return f"SELECT {', '.join(columns)} FROM ({self.person_result_inner()})"

    def person_view(self, pr: str, fr: str, *, pb_raw: str = "", pb: str = "") -> str:
        """Person results with their base variables and the family values rules read.

        The base variables come from the view over `pb_raw`, or from an existing `pb`.
        """
        family = "".join(f", zfr.{c}" for c in self.family_reads)
        base = pb or "(" + self.person_base.replace("zzstage_pbraw", pb_raw) + ")"
        join = f" LEFT JOIN {fr} AS zfr ON zfr.fkey = zpr.fkey" if family else ""
        return (
            f"SELECT zpb.*, zpr.* EXCLUDE (person_id, fkey, is_member){family}"
            f" FROM {pr} AS zpr JOIN {base} AS zpb ON zpb.person_id = zpr.person_id{join}"
        )


_AMOUNT_DECIMAL = "DECIMAL(38,4)"  # an amount before rounding: exact, 4 decimals of a tiyn
_NARROW_DECIMAL = "DECIMAL(18,4)"  # the same in 64 bits: below 10**14 tiyn
_BASE_HEAD = "SELECT p.person_id AS person_id, p.fkey AS fkey"  # the person base's select


def _family_join(reads: Sequence[str]) -> str:
    """How the person result takes the family values person rules read."""
    columns = ", ".join(f"fr.{c}" for c in reads)
    return f"SELECT pb.*, {columns} FROM pb LEFT JOIN fr ON fr.fkey = pb.fkey"


def _literal(value: Scalar) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return f"CAST({value} AS BIGINT)"
    if isinstance(value, Decimal):
        text = format(value, "f")
        return f"({text})" if text.startswith("-") else text
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def _layers(plans: list[VarPlan]) -> list[list[VarPlan]]:
    """Group variables so each layer only reads columns of earlier layers."""
    by_key = {p.symbol.key: p for p in plans}
    level: dict[str, int] = {}

    def depth(key: str, seen: frozenset[str]) -> int:
        if key in level:
            return level[key]
        plan = by_key[key]
        deps = [s.key for s in plan.compiled.refs if s.key in by_key and s.key not in seen]
        d = 1 + max((depth(k, seen | {key}) for k in deps), default=0)
        level[key] = d
        return d

    for plan in plans:
        depth(plan.symbol.key, frozenset())
    out: dict[int, list[VarPlan]] = {}
    for plan in plans:
        out.setdefault(level[plan.symbol.key], []).append(plan)
    return [out[k] for k in sorted(out)]


def _var_layers(plans: list[VarPlan]) -> list[Layer]:
    ordered = _layers(sorted(plans, key=lambda p: p.symbol.key))
    return [[(p.symbol.column, p.compiled.sql) for p in layer] for layer in ordered]


def _wrap_all(sql: str, layers: list[Layer]) -> str:
    for layer in layers:
        sql = _wrap(sql, layer)
    return sql


def _wrap(sql: str, columns: Iterable[tuple[str, str]]) -> str:
    cols = ", ".join(f"{expr} AS {name}" for name, expr in columns)
    return f"SELECT *, {cols} FROM ({sql})" if cols else sql


def _round_sql(raw: str, mode: str, unit: int) -> str:
    func = {"half_up": "round", "ceil": "ceil", "floor": "floor"}[mode]
    if unit == 1:
        return f"{func}({raw})"
    factor = format(Decimal(1) / Decimal(unit), "f")
    return f"({func}({raw} * {factor}) * {unit})"


class CompiledPack:
    """A pack checked and translated once; `stages(period)` assembles its SQL."""

    def __init__(self, pack: Pack) -> None:
        self.pack = pack
        self.problems: list[Problem] = []
        self.aggregates: dict[str, AggSpec] = {}  # column -> aggregate over members
        self._agg_by_spec: dict[AggSpec, str] = {}
        self.params: dict[str, Parameter] = {}  # symbol key -> parameter
        self.params_by_owner: dict[str, dict[str, Symbol]] = {}  # pack/program id -> name
        self.period_symbols = {
            "period_start": Symbol(
                "period:start", "period_start", "period", "zzper_ps", T.DATE, "date"
            ),
            "period_end": Symbol("period:end", "period_end", "period", "zzper_pe", T.DATE, "date"),
        }
        self.retirement = retirement_sql(pack.retirement) if pack.retirement else None
        self.person_builtins = {
            name: Symbol(f"b:{name}", name, "person", name, b.type, b.unit, b.title)
            for name, b in PERSON_BUILTINS.items()
            if not (b.retirement and self.retirement is None)
        }
        self.family_builtins: dict[str, VarPlan] = {}
        self.pack_vars: dict[str, VarPlan] = {}
        self.pack_params: dict[str, Symbol] = {}
        self.programs: list[ProgramPlan] = []
        self._stage_cache: dict[tuple[str, tuple[tuple[str, int], ...]], Stages] = {}
        self._compile()

    # --- compile ---------------------------------------------------------------------------
    def _err(self, source: Source | None, program: str, reason: str, line: int = 0) -> None:
        file = source.loc.file if source else str(Path(self.pack.path) / "pack.yaml")
        self.problems.append(
            Problem(file, line or (source.loc.line if source else 0), program, reason)
        )

    def _lift(self, spec: AggSpec) -> str:
        column = self._agg_by_spec.get(spec)
        if column is None:
            column = f"agg_{len(self._agg_by_spec) + 1}"
            self._agg_by_spec[spec] = column
            self.aggregates[column] = spec
        return column

    def _param_symbols(
        self, params: Mapping[str, Parameter], prefix: str, owner: str
    ) -> dict[str, Symbol]:
        out: dict[str, Symbol] = {}
        self.params_by_owner[owner] = out
        for name, param in params.items():
            key = f"{prefix}_{name}"
            symbol = Symbol(
                f"prm:{key}",
                name,
                "param",
                f"zzprm_{key}",
                param.type,
                param.unit,
                param.title,
                param.keys,
            )
            self.params[symbol.key] = param
            out[name] = symbol
        return out

    def _compile(self) -> None:
        pack = self.pack
        family_builtin_symbols: dict[str, Symbol] = {}
        builtin_names = Names(
            dict(self.person_builtins), family_builtin_symbols, {}, self.period_symbols
        )
        for name, (text, t, unit, title) in FAMILY_BUILTINS.items():
            compiled = ex.compile_expr(text, builtin_names, "family", self._lift)
            symbol = Symbol(f"fb:{name}", name, "family", f"f_{name}", t, unit, title)
            family_builtin_symbols[name] = symbol
            self.family_builtins[name] = VarPlan(symbol, compiled)

        self.pack_params = self._param_symbols(pack.parameters, "pk", pack.id)
        for name in pack.parameters:
            if name in self.person_builtins or name in FAMILY_BUILTINS:
                self._err(
                    None,
                    "",
                    f"parameter {name!r} has the name of a built-in variable",
                    pack.parameters[name].loc.line,
                )
        for var in pack.variables.values():
            if var.name in self.person_builtins or var.name in FAMILY_BUILTINS:
                self._err(var.expr, "", f"variable {var.name!r} has the name of a built-in")
            elif var.name in pack.parameters:
                self._err(var.expr, "", f"variable {var.name!r} has the name of a parameter")
        names = Names(
            dict(self.person_builtins),
            dict(family_builtin_symbols),
            dict(self.pack_params),
            self.period_symbols,
        )
        pack_defs = {
            v.name: v
            for v in pack.variables.values()
            if v.name not in self.person_builtins and v.name not in FAMILY_BUILTINS
        }
        self.pack_vars = self._compile_vars(pack_defs, names, "", "pk")
        names = self._extend(names, self.pack_vars)
        for program in pack.programs:
            self.programs.append(self._compile_program(program, names))

    def _extend(self, names: Names, plans: Mapping[str, VarPlan]) -> Names:
        person = dict(names.person)
        family = dict(names.family)
        for plan in plans.values():
            (person if plan.symbol.level == "person" else family)[plan.symbol.name] = plan.symbol
        return Names(person, family, dict(names.params), names.period)

    def _compile_vars(
        self, defs: Mapping[str, Variable], names: Names, program: str, prefix: str
    ) -> dict[str, VarPlan]:
        """Compile variables in dependency order; report cycles and bad expressions."""
        trees: dict[str, set[str]] = {}
        for name, var in defs.items():
            try:
                refs = ex.references(ex.parse(var.expr.text))
            except ExprError as exc:
                self._err(var.expr, program, f"variable {name!r}: {exc}")
                continue
            deps: set[str] = set()
            for qualifier, ref in refs:
                if ref in defs and (
                    (qualifier in ex.RANGES and defs[ref].level == "person")
                    or (qualifier == "family" and defs[ref].level == "family")
                    or (qualifier == "" and defs[ref].level == var.level)
                ):
                    deps.add(ref)
            trees[name] = deps
        cyclic = self._cycles(trees, defs, program)
        order = self._topo(trees, cyclic)
        out: dict[str, VarPlan] = {}
        # Typed symbols appear as soon as their variable is compiled; cyclic ones stay ANY.
        person = dict(names.person)
        family = dict(names.family)
        for name in list(cyclic) + order:
            var = defs[name]
            column = f"{prefix}_{name}" if var.level == "person" else f"f_{prefix}_{name}"
            symbol = Symbol(
                f"{prefix}v:{name}", name, var.level, column, T.ANY, var.unit or "number", var.title
            )
            (person if var.level == "person" else family)[name] = symbol
        for name in order:
            var = defs[name]
            current = Names(person, family, names.params, names.period)
            try:
                compiled = ex.compile_expr(var.expr.text, current, var.level, self._lift)
            except ExprError as exc:
                self._err(var.expr, program, f"variable {name!r}: {exc}")
                continue
            old = (person if var.level == "person" else family)[name]
            symbol = Symbol(
                old.key,
                name,
                var.level,
                old.column,
                compiled.type,
                var.unit or compiled.unit,
                var.title,
            )
            (person if var.level == "person" else family)[name] = symbol
            late = var.level == "person" and any(
                s.level == "family" or (s.key in {p.symbol.key for p in out.values() if p.late})
                for s in compiled.refs
            )
            if var.level == "family":
                late_member = [
                    s.name
                    for s in compiled.member_refs
                    if any(p.late and p.symbol.key == s.key for p in out.values())
                ]
                if late_member:
                    self._err(
                        var.expr,
                        program,
                        f"variable {name!r} aggregates {late_member[0]!r}, which reads"
                        " family values: a cycle between levels",
                    )
                    continue
            out[name] = VarPlan(symbol, compiled, late)
        for plan in out.values():  # refresh symbols referenced before their type was known
            plan.compiled.refs = {self._fresh(s, person, family) for s in plan.compiled.refs}
            plan.compiled.member_refs = {
                self._fresh(s, person, family) for s in plan.compiled.member_refs
            }
        return out

    @staticmethod
    def _fresh(symbol: Symbol, person: dict[str, Symbol], family: dict[str, Symbol]) -> Symbol:
        pool = person if symbol.level == "person" else family
        current = pool.get(symbol.name)
        return current if current is not None and current.key == symbol.key else symbol

    def _cycles(
        self, deps: dict[str, set[str]], defs: Mapping[str, Variable], program: str
    ) -> set[str]:
        cyclic: set[str] = set()
        state: dict[str, int] = {}
        stack: list[str] = []
        reported: set[frozenset[str]] = set()

        def visit(node: str) -> None:
            state[node] = 1
            stack.append(node)
            for nxt in sorted(deps.get(node, ())):
                if nxt not in deps:
                    continue
                if state.get(nxt) == 1:
                    cycle = [*stack[stack.index(nxt) :], nxt]
                    cyclic.update(cycle)
                    members = frozenset(cycle)
                    if members not in reported:
                        reported.add(members)
                        self._err(
                            defs[nxt].expr,
                            program,
                            f"cycle between variables: {' -> '.join(cycle)}",
                        )
                elif nxt not in state:
                    visit(nxt)
            stack.pop()
            state[node] = 2

        for node in sorted(deps):
            if node not in state:
                visit(node)
        return cyclic

    @staticmethod
    def _topo(deps: dict[str, set[str]], skip: set[str]) -> list[str]:
        order: list[str] = []
        done: set[str] = set()

        def visit(node: str) -> None:
            if node in done or node in skip:
                return
            done.add(node)
            for nxt in sorted(deps.get(node, ())):
                if nxt in deps:
                    visit(nxt)
            order.append(node)

        for node in sorted(deps):
            visit(node)
        return order

    def _compile_program(self, program: Program, base: Names) -> ProgramPlan:
        pid = program.id
        params = self._param_symbols(program.parameters, f"p{program.index}", program.id)
        for name, param in program.parameters.items():
            if name in base.params or name in base.person or name in base.family:
                self.problems.append(
                    Problem(
                        param.loc.file,
                        param.loc.line,
                        pid,
                        f"parameter {name!r} hides a pack-level name",
                    )
                )
        names = Names(base.person, base.family, {**base.params, **params}, base.period)
        plan = ProgramPlan(program, [])
        for version in program.versions:
            for var in version.variables.values():
                if var.name in base.person or var.name in base.family or var.name in names.params:
                    self._err(var.expr, pid, f"variable {var.name!r} hides a pack-level name")
            defs = {
                n: v
                for n, v in version.variables.items()
                if n not in base.person and n not in base.family and n not in names.params
            }
            vplans = self._compile_vars(defs, names, pid, f"p{program.index}")
            vnames = self._extend(names, vplans)
            level: Literal["person", "family"] = program.entity
            conditions: list[CondPlan] = []
            for cond in version.conditions.values():
                try:
                    compiled = ex.compile_expr(cond.expr.text, vnames, level, self._lift)
                except ExprError as exc:
                    self._err(cond.expr, pid, f"condition {cond.name!r}: {exc}")
                    continue
                if compiled.type not in (T.BOOL, T.ANY, T.NULL):
                    self._err(
                        cond.expr,
                        pid,
                        f"condition {cond.name!r} must be true/false, not {compiled.type}",
                    )
                    continue
                shows = self._template_names(cond.explain, vnames, level, cond.expr, pid, cond.name)
                conditions.append(
                    CondPlan(
                        cond.name, compiled, cond.explain, shows, f"p{program.index}__{cond.name}"
                    )
                )
            amount: Compiled | None = None
            if version.amount is not None:
                try:
                    amount = ex.compile_expr(version.amount.text, vnames, level, self._lift)
                except ExprError as exc:
                    self._err(version.amount, pid, f"amount: {exc}")
                else:
                    if not amount.type.numeric:
                        self._err(
                            version.amount, pid, f"amount must be a number, not {amount.type}"
                        )
                        amount = None
            vp = VersionPlan(version, vplans, conditions, amount)
            for name in version.report:
                symbol = self._resolve_template(name, vnames, level)
                if symbol is None or symbol.level not in ("person", "family"):
                    self.problems.append(
                        Problem(
                            version.loc.file,
                            version.loc.line,
                            pid,
                            f"report: unknown variable {name!r}",
                        )
                    )
                else:
                    vp.reported.append(symbol)
            self._used(vp)
            self._check_params(vp, program)
            plan.versions.append(vp)
        return plan

    def _template_names(
        self, texts: dict[str, str], names: Names, level: str, source: Source, pid: str, cond: str
    ) -> list[Symbol]:
        shows: list[Symbol] = []
        for lang in LANGUAGES:
            for ref in _TEMPLATE.findall(texts.get(lang, "")):
                symbol = self._resolve_template(ref, names, level)
                if symbol is None:
                    self._err(
                        source,
                        pid,
                        f"condition {cond!r}: unknown name {{{ref}}} in the {lang} explanation",
                    )
                elif symbol not in shows:
                    shows.append(symbol)
        return shows

    @staticmethod
    def _resolve_template(ref: str, names: Names, level: str) -> Symbol | None:
        if ref.startswith("family."):
            return names.family.get(ref[7:]) if level == "person" else None
        for pool in (
            names.params,
            names.period,
            names.person if level == "person" else names.family,
        ):
            if ref in pool:
                return pool[ref]
        return None

    def _closure(
        self, vp: VersionPlan | None, roots: Iterable[Compiled]
    ) -> tuple[set[Symbol], set[Symbol], set[str]]:
        """Everything a set of expressions reads, through variables: (values, member, aggs)."""
        plans = self._var_plans(vp)
        values: set[Symbol] = set()
        member: set[Symbol] = set()
        aggs: set[str] = set()
        todo: list[tuple[Compiled, bool]] = [(c, False) for c in roots]
        seen: set[tuple[int, bool]] = set()
        while todo:
            compiled, as_member = todo.pop()
            if (id(compiled), as_member) in seen:
                continue
            seen.add((id(compiled), as_member))
            aggs |= compiled.aggregates
            for symbol in compiled.refs:
                (member if as_member else values).add(symbol)
                if symbol.key in plans:
                    todo.append((plans[symbol.key].compiled, as_member))
            for symbol in compiled.member_refs:
                member.add(symbol)
                if symbol.key in plans:
                    todo.append((plans[symbol.key].compiled, True))
        return values, member, aggs

    def _var_plans(self, vp: VersionPlan | None) -> dict[str, VarPlan]:
        plans = {p.symbol.key: p for p in self.family_builtins.values()}
        plans.update({p.symbol.key: p for p in self.pack_vars.values()})
        if vp is not None:
            plans.update({p.symbol.key: p for p in vp.variables.values()})
        return plans

    def _used(self, vp: VersionPlan) -> None:
        roots = [c.compiled for c in vp.conditions] + ([vp.amount] if vp.amount else [])
        plans = self._var_plans(vp)
        roots += [plans[s.key].compiled for s in vp.reported if s.key in plans]
        values, member, _ = self._closure(vp, roots)
        shown = [s for c in vp.conditions for s in c.shows] + vp.reported
        ordered: list[Symbol] = []
        for symbol in [*shown, *sorted(values, key=lambda s: s.key)]:
            if symbol.level in ("person", "family") and symbol not in ordered:
                ordered.append(symbol)
        # A decision that reads a family's well-being keeps the scoring run it came from.
        for symbol in list(ordered):
            run = RUN_OF.get(symbol.name)
            if run is None or symbol.key not in (f"b:{symbol.name}", f"fb:{symbol.name}"):
                continue
            companion = (
                self.person_builtins[run]
                if symbol.level == "person"
                else self.family_builtins[run].symbol
            )
            if companion not in ordered:
                ordered.append(companion)
        vp.used = ordered
        vp.params = sorted(
            {s for s in values | member | set(shown) if s.level == "param"}, key=lambda s: s.key
        )

    def _check_params(self, vp: VersionPlan, program: Program) -> None:
        """Every parameter a version reads must have a value when the version starts."""
        day = vp.version.effective_from
        for symbol in vp.params:
            param = self.params[symbol.key]
            if param.value_on(day) is None:
                self.problems.append(
                    Problem(
                        vp.version.loc.file,
                        vp.version.loc.line,
                        program.id,
                        f"parameter {param.name!r} has no value on {day}, when version"
                        f" {vp.version.label} takes effect",
                    )
                )

    def reads(self, names: Iterable[str]) -> bool:
        """Whether any version of any program reads one of these built-ins (directly, through
        variables or inside aggregates)."""
        wanted = set(names)
        for plan in self.programs:
            for vp in plan.versions:
                roots = [c.compiled for c in vp.conditions] + ([vp.amount] if vp.amount else [])
                values, member, _ = self._closure(vp, roots)
                if any(s.name in wanted for s in values | member):
                    return True
        return False

    # --- assemble --------------------------------------------------------------------------
    def program_plan(self, program_id: str) -> ProgramPlan:
        for plan in self.programs:
            if plan.program.id == program_id:
                return plan
        raise EvaluationError(f"unknown program {program_id!r} in pack {self.pack.id!r}")

    def active(self, period: Period) -> dict[str, VersionPlan | None]:
        """Programs evaluated for a period (same period kind) and their version in force."""
        return {
            p.program.id: p.version_plan(period.start)
            for p in self.programs
            if p.program.period == period.kind
        }

    def stages(self, period: Period) -> Stages:
        """Assemble (and cache) the SQL for the versions in force in `period`."""
        active = self.active(period)
        key = (
            period.kind,
            tuple(sorted((k, v.version.index if v else 0) for k, v in active.items())),
        )
        cached = self._stage_cache.get(key)
        if cached is None:
            cached = self._assemble(active)
            self._stage_cache[key] = cached
        return cached

    def _assemble(self, active: dict[str, VersionPlan | None]) -> Stages:
        in_force = {pid: vp for pid, vp in active.items() if vp is not None}
        plans_by_program = {p.program.id: p for p in self.programs}
        # 1. Everything the programs in force read.
        values: set[Symbol] = set()
        member: set[Symbol] = set()
        aggs: set[str] = set()
        var_plans: dict[str, VarPlan] = self._var_plans(None)
        for pid, vp in in_force.items():
            roots = [c.compiled for c in vp.conditions] + ([vp.amount] if vp.amount else [])
            v, m, a = self._closure(vp, roots)
            values |= v | set(vp.used)
            member |= m
            aggs |= a
            var_plans.update(self._var_plans(vp))
            del pid
        for name in ALWAYS_FAMILY:
            plan = self.family_builtins[name]
            values.add(plan.symbol)
            v, m, a = self._closure(None, [plan.compiled])
            values |= v
            member |= m
            aggs |= a
        # Person variables read by person programs or aggregates; family variables likewise.
        needed = values | member
        for _ in range(len(var_plans) + 1):  # dependencies of dependencies
            grown = set(needed)
            for symbol in needed:
                found = var_plans.get(symbol.key)
                if found is not None:
                    grown |= found.compiled.refs | found.compiled.member_refs
                    aggs |= found.compiled.aggregates
            if grown == needed:
                break
            needed = grown
        params = {s for s in needed if s.level == "param"}
        for vp in in_force.values():
            params |= set(vp.params)
        person_vars = [
            var_plans[s.key] for s in needed if s.key in var_plans and s.level == "person"
        ]
        family_vars = [
            var_plans[s.key] for s in needed if s.key in var_plans and s.level == "family"
        ]
        builtins = {s.name for s in needed if s.key.startswith("b:")} | set(ALWAYS_PERSON)

        # 2. Person base.
        person_raw, person_base, raw_person, raw_facts, person_steps = self._person_base(
            builtins, [p for p in person_vars if not p.late]
        )

        # 3. Family results.
        family_programs = [
            (plans_by_program[pid], vp)
            for pid, vp in active.items()
            if plans_by_program[pid].program.entity == "family"
        ]
        person_programs = [
            (plans_by_program[pid], vp)
            for pid, vp in active.items()
            if plans_by_program[pid].program.entity == "person"
        ]
        family_steps = _var_layers(family_vars)
        family_steps += self._output_layers(family_programs, "f_family_size > 0")
        sql = _wrap_all(self._family_aggregation(sorted(aggs)), family_steps)
        family_columns = ["fkey", "family_id", "first_person_id", "f_family_region AS region"]
        keep = sorted({p.symbol.column for p in family_vars} | {"f_family_size"})
        family_columns += keep
        family_columns += self._output_columns(family_programs)
        family_result = f"SELECT {', '.join(family_columns)} FROM ({sql})"

        # 4. Person results: only what person programs add (late variables and outputs); the
        # variables already in the person base stay there.
        person_result: str | None = None
        person_result_steps: list[Layer] = []
        person_columns: list[str] = []
        family_reads: list[str] = []
        late = [p for p in person_vars if p.late]
        if person_programs:
            # Only the family values person rules read (directly or through variables).
            reads: set[str] = set()
            for _, person_vp in person_programs:
                if person_vp is None:
                    continue
                roots = [c.compiled for c in person_vp.conditions]
                roots += [person_vp.amount] if person_vp.amount else []
                shown, _, _ = self._closure(person_vp, roots)
                reads |= {s.column for s in shown | set(person_vp.used) if s.level == "family"}
            family_reads = sorted(reads)
            sql = _family_join(family_reads) if family_reads else "SELECT * FROM pb"
            person_result_steps = _var_layers(late)
            person_result_steps += self._output_layers(person_programs, "is_member")
            sql = _wrap_all(sql, person_result_steps)
            person_columns = ["person_id", "fkey", "is_member"]
            person_columns += sorted(p.symbol.column for p in late)
            person_columns += self._output_columns(person_programs)
            person_result = f"SELECT {', '.join(person_columns)} FROM ({sql})"
        return Stages(
            person_raw=person_raw,
            person_base=person_base,
            family_result=family_result,
            person_result=person_result,
            active=dict(in_force),
            params=params,
            family_columns=family_columns,
            person_columns=person_columns,
            family_reads=family_reads,
            raw_person=raw_person,
            raw_facts=raw_facts,
            person_steps=person_steps,
            family_aggs=sorted(aggs),
            family_steps=family_steps,
            person_result_steps=person_result_steps,
        )

    def _family_aggregation(self, columns: list[str]) -> str:
        """One GROUP BY over the person base for every aggregate the programs need.

        Counts and any/all share integer sums: each is a 0/1 term in its own 20-bit lane of a
        BIGINT (three lanes each; a family has far fewer than 2**20 members), which costs one
        aggregate instead of three.
        """
        plain = [c for c in columns if not self.aggregates[c].packable]
        packed = [c for c in columns if self.aggregates[c].packable]
        cols = ["max(family_id) AS family_id", "min(person_id) AS first_person_id"]
        cols += [f"{self.aggregates[c].sql()} AS {c}" for c in plain]
        decode: list[tuple[str, str]] = []
        for i in range(0, len(packed), 3):
            group = packed[i : i + 3]
            name = f"pack_{i // 3 + 1}"
            terms = " + ".join(
                f"({self.aggregates[c].term()}) * {1 << (20 * j)}" for j, c in enumerate(group)
            )
            cols.append(f"sum({terms}) AS {name}")
            for j, c in enumerate(group):
                lane = f"CAST(({name} >> {20 * j}) & 1048575 AS BIGINT)"
                decode.append((c, self.aggregates[c].decode(lane)))
        sql = f"SELECT fkey, {', '.join(cols)} FROM pb GROUP BY fkey"
        return _wrap(sql, decode)

    def _person_base(
        self, builtins: set[str], early: list[VarPlan]
    ) -> tuple[str, str, list[str], list[str], list[Layer]]:
        """The raw person stage to materialize, and the view of built-ins and variables.

        Only the raw stage (person columns the built-ins read, and the fact aggregates) is
        stored; built-ins and person variables are a projection each consumer computes for
        the columns it reads. Also returns the raw stage's person columns and fact aggregates.
        """
        specs = [PERSON_BUILTINS[n] for n in sorted(builtins) if n in self.person_builtins]
        fact_aggs = sorted({a for b in specs for a in b.aggs})
        exprs = [(b.name, b.sql.replace("fa.", "p.")) for b in specs if b.name != "person_id"]
        # Helpers the built-ins read (and helpers read by helpers), layer by layer.
        wanted = {h for _, e in exprs for h in re.findall(r"\bp\.(h_[a-z_0-9]+)", e)}
        for layer in reversed(HELPERS):
            for name in list(wanted):
                if name in layer:
                    wanted |= set(re.findall(r"\bp\.(h_[a-z_0-9]+)", layer[name]))
        helper_layers = [[(n, e) for n, e in layer.items() if n in wanted] for layer in HELPERS]
        every = [e for _, e in exprs] + [e for layer in helper_layers for _, e in layer]
        person_cols = sorted(
            {c for e in every for c in re.findall(r"\bp\.([a-z][a-z_0-9]*)", e)}
            - set(fact_aggs)
            - {h for layer in HELPERS for h in layer}
            | {"family_id"}
        )
        raw_cols = ["p.person_id AS person_id", "p.fkey AS fkey"]
        raw_cols += [f"p.{c} AS {c}" for c in person_cols if c not in ("person_id", "fkey")]
        raw_cols += [f"fa.{a} AS {a}" for a in fact_aggs]
        raw = f"SELECT {', '.join(raw_cols)} FROM zztable_person AS p"
        if fact_aggs:
            fa = self._fact_sql(fact_aggs)
            raw += f" LEFT JOIN ({fa}) AS fa ON fa.person_id = p.person_id"
        source = "zzstage_pbraw"
        for helpers in helper_layers:
            if helpers:
                listed = ", ".join(f"{e} AS {n}" for n, e in helpers)
                source = f"(SELECT p.*, {listed} FROM {source} AS p)"
        view_cols = ["p.person_id AS person_id", "p.fkey AS fkey"]
        view_cols += [f"{e} AS {n}" for n, e in exprs]
        view = f"SELECT {', '.join(view_cols)} FROM {source} AS p"
        var_layers = _var_layers(early)
        view = _wrap_all(view, var_layers)
        kept = ["person_id", "fkey", *(c for c in person_cols if c not in ("person_id", "fkey"))]
        steps = [layer for layer in helper_layers if layer] + [exprs, *var_layers]
        return raw, view, kept, fact_aggs, steps

    @staticmethod
    def _fact_sql(aggs: list[str]) -> str:
        """Per-person fact aggregates for a period. (Filtering the scan by the fact codes
        the aggregates read was measured: the IN test costs more than the rows it skips.)"""
        live = "f.vt >= zzper_ps_d"
        if any(a in INCOME_AGGS for a in aggs):
            live = f"(f.vt >= zzper_ps_d OR ({LOOKBACK_CODES_SQL} AND f.vt >= zzper_lookback))"
        cols = ", ".join(f"{FACT_AGGS[a]} AS {a}" for a in aggs)
        return (
            f"SELECT f.person_id, {cols} FROM zztable_fact AS f"
            f" WHERE f.vf <= zzper_pe_d AND {live} GROUP BY f.person_id"
        )

    @staticmethod
    def _output_layers(
        programs: list[tuple[ProgramPlan, VersionPlan | None]], guard: str
    ) -> list[Layer]:
        """Conditions, then eligibility, then amounts of the programs, as three layers."""
        conds: Layer = []
        for _, vp in programs:
            if vp is not None:
                conds += [(c.column, c.compiled.sql) for c in vp.conditions]
        eligible: Layer = []
        for plan, vp in programs:
            terms = (
                ["FALSE"]
                if vp is None
                else [*(f"coalesce({c.column}, FALSE)" for c in vp.conditions), guard]
            )
            eligible.append((plan.eligible_column, "(" + " AND ".join(terms) + ")"))
        amounts: Layer = []
        for plan, vp in programs:
            if vp is None or vp.amount is None:
                amounts.append((plan.amount_column, "CAST(0 AS BIGINT)"))
                continue
            # Fixed to 4 decimals of a minor unit first, so float noise from a division never
            # flips a rounding; never negative.
            raw = f"greatest(CAST(({vp.amount.sql}) AS {_AMOUNT_DECIMAL}), 0)"
            r = vp.version.rounding
            rounded = _round_sql(raw, r.mode, r.unit)
            amounts.append(
                (
                    plan.amount_column,
                    f"CASE WHEN {plan.eligible_column} THEN CAST({rounded} AS BIGINT)"
                    " ELSE CAST(0 AS BIGINT) END",
                )
            )
        return [conds, eligible, amounts]

    @staticmethod
    def _output_columns(programs: list[tuple[ProgramPlan, VersionPlan | None]]) -> list[str]:
        cols: list[str] = []
        for plan, vp in programs:
            if vp is not None:
                cols += [c.column for c in vp.conditions]
            cols += [plan.eligible_column, plan.amount_column]
        return cols

    # --- bind ------------------------------------------------------------------------------
    def param_key(self, dotted: str) -> tuple[Symbol, int | None]:
        """Resolve `pack.param`, `program.id.param` or `...param.KEY` to a parameter symbol."""
        for owner, symbols in sorted(self.params_by_owner.items(), key=lambda c: -len(c[0])):
            if not dotted.startswith(owner + "."):
                continue
            rest = dotted[len(owner) + 1 :]
            name, _, key = rest.partition(".")
            if name in symbols:
                symbol = symbols[name]
                if key:
                    if not key.lstrip("-").isdigit() or int(key) not in symbol.keys:
                        raise EvaluationError(f"{dotted}: {name!r} has no key {key!r}")
                    return symbol, int(key)
                if symbol.keys:
                    raise EvaluationError(f"{dotted} is a table: name one key, e.g. {dotted}.4")
                return symbol, None
        raise EvaluationError(f"unknown parameter {dotted!r}")

    def check_override(self, dotted: str, value: Scalar | float) -> Scalar:
        """`value` as a what-if of parameter `dotted`: EvaluationError unless it has the
        parameter's type and is a finite number in its declared (or its unit's) range."""
        symbol, _ = self.param_key(dotted)
        if isinstance(value, float):
            value = Decimal(repr(value))
        try:
            return check_override(self.params[symbol.key], value)
        except ValueError as exc:
            raise EvaluationError(f"{dotted}: {exc}") from None

    def param_values(
        self, period: Period, overrides: Mapping[str, Scalar] | None = None
    ) -> dict[str, ParamValue]:
        """Every parameter's value on the period start, with overrides applied."""
        values: dict[str, ParamValue] = {}
        for key, param in self.params.items():
            value = param.value_on(period.start)
            if value is not None:
                values[key] = dict(value) if isinstance(value, dict) else value
        for dotted, new in (overrides or {}).items():
            symbol, table_key = self.param_key(dotted)
            new = self.check_override(dotted, new)
            if table_key is None:
                values[symbol.key] = new
            else:
                table = values.get(symbol.key)
                if not isinstance(table, dict):
                    raise EvaluationError(f"{dotted}: no table value on {period.start}")
                table[table_key] = new
        return values

    def bind(self, period: Period, overrides: Mapping[str, Scalar] | None = None) -> Bound:
        """Stages for `period` with every placeholder replaced by its literal."""
        stages = self.stages(period)
        values = self.param_values(period, overrides)
        literals = period_constants(period)
        income_aggs = {a for a in INCOME_AGGS if f" AS {a}" in stages.person_raw}
        literals["zzper_lookback"] = str(income_lookback_start(period, income_aggs))
        missing: list[str] = []
        for symbol in stages.params:
            value = values.get(symbol.key)
            if value is None:
                param = self.params[symbol.key]
                missing.append(f"{param.owner}.{param.name}")
                continue
            if isinstance(value, dict):
                for k, v in value.items():
                    literals[f"{symbol.column}_{k}"] = _literal(v)
                for k in symbol.keys:
                    literals.setdefault(f"{symbol.column}_{k}", "NULL")
            else:
                literals[symbol.column] = _literal(value)
        if missing:
            raise EvaluationError(
                f"no value on {period.start} for parameter(s): {', '.join(sorted(missing))}"
            )

        def sub(sql: str) -> str:
            def repl(match: re.Match[str]) -> str:
                name = match.group(0)
                if name not in literals:
                    raise EvaluationError(f"internal: no value for {name}")
                return literals[name]

            return _PLACEHOLDER.sub(repl, sql)

        used = {s.key: values[s.key] for s in stages.params if s.key in values}

        def sub_layers(layers: list[Layer]) -> list[Layer]:
            return [[(c, sub(e)) for c, e in layer] for layer in layers]

        aggs = [self.aggregates[c] for c in stages.family_aggs]
        return Bound(
            period=period,
            person_raw=sub(stages.person_raw),
            person_base=sub(stages.person_base),
            family_result=sub(stages.family_result),
            person_result=sub(stages.person_result) if stages.person_result else None,
            active=stages.active,
            param_values=used,
            family_reads=stages.family_reads,
            raw_person=stages.raw_person,
            raw_facts=stages.raw_facts,
            literals=literals,
            person_steps=sub_layers(stages.person_steps),
            family_aggs=[
                BoundAgg(c, a.kind, sub(a.arg) if a.arg else None, sub(a.guard), a.type)
                for c, a in zip(stages.family_aggs, aggs, strict=True)
            ],
            family_steps=sub_layers(stages.family_steps),
            person_result_steps=(
                sub_layers(stages.person_result_steps) if stages.person_result else None
            ),
            person_columns=stages.person_columns,
            family_columns=stages.family_columns,
        )


def compile_pack(pack: Pack) -> CompiledPack:
    """Check and translate every expression of a parsed pack; raises PackError on problems."""
    compiled = CompiledPack(pack)
    if compiled.problems:
        raise PackError(compiled.problems)
    return compiled


def load_pack(path: str | Path) -> CompiledPack:
    """Read, check and compile a pack directory; every problem is reported at once."""
    pack, problems = parse_pack(path)
    if pack is None:
        raise PackError(problems)
    compiled = CompiledPack(pack)
    problems += compiled.problems
    if problems:
        raise PackError(problems)
    return compiled


__all__ = ["RESERVED", "CompiledPack", "compile_pack", "load_pack"]
