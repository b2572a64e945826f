"""The well-being methodology as data: a YAML file read, checked and compiled by the rules engine.

A methodology names the indicators of each dimension (a true/false SQL expression over the
family's data, in the rule pack's expression language, and the points it adds or subtracts)
and the levels' score cut-offs. It is compiled as one family-level program of its rule pack
(the pack's parameters and variables and the engine's built-ins are in scope), so every
expression is checked exactly as a benefit rule is, and scored in the same DuckDB pass.

This module is pure (no store, no HTTP): the service persists what it computes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, cast

from socialcard.rules.engine import CompiledPack, PackError, Problem, compile_pack, parse_pack
from socialcard.rules.engine import expressions as ex
from socialcard.rules.engine.loader import (
    PACK_FILE,
    check_fields,
    parse_parameters,
    parse_texts,
    parse_variables,
    read_yaml,
)
from socialcard.rules.engine.model import LANGUAGES, Condition, Loc, Pack, Program, Source, Version
from socialcard.rules.engine.periods import Period
from socialcard.rules.engine.yamlio import BadDate, Map, Seq, is_date

# The five dimensions of the ЦКС methodology (REFERENCE.md §3, V): stored as one score column
# each, so every scheme maps its criteria onto them.
DIMENSIONS: tuple[str, ...] = ("economic", "social", "housing", "health", "education")
MAX_INDICATORS = 200  # the width of wellbeing_result.indicators
_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
# How sure the methodology is of a statement (REFERENCE.md's V / I / U): `confirmed` by an
# official or quoted official source, `reported` by a secondary source, `unconfirmed` a working
# model. Unmarked statements are unconfirmed: nothing is shown as law without a source.
CONFIDENCES: tuple[str, ...] = ("confirmed", "reported", "unconfirmed")
_LEVEL_CODE = re.compile(r"^[A-Z0-9]{1,4}$")
_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$")
_FIELDS = (
    "id",
    "default",
    "title",
    "legal_basis",
    "effective_from",
    "period",
    "parameters",
    "variables",
    "dimensions",
    "levels",
    "description",
)


class MethodologyError(Exception):
    """A methodology that cannot load; `problems` lists every problem (file, line, reason)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(set(problems))
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"the methodology has {len(self.problems)} problem(s):\n{lines}")


@dataclass(frozen=True)
class Indicator:
    """One criterion: when its expression holds, the family gets `points` in `dimension`.
    `confidence` is how sure the source is that the methodology has this criterion,
    `points_confidence` how sure of its points."""

    code: str
    dimension: str
    points: int
    title: dict[str, str]
    expr: str
    line: int
    reads: tuple[str, ...] = ()  # the family-level names the expression mentions
    source: str = ""
    confidence: str = "unconfirmed"
    points_confidence: str = "unconfirmed"


@dataclass(frozen=True)
class Level:
    """A well-being level: a family whose total is at least `min_score` (None: any) is here.
    `name_confidence` is how sure the source is of the level's name and place in the scale,
    `cut_confidence` of its cut-off (None for the last level, which has none)."""

    code: str
    name: dict[str, str]
    min_score: int | None
    source: str = ""
    name_confidence: str = "unconfirmed"
    cut_confidence: str | None = "unconfirmed"

    @property
    def confirmed(self) -> bool:
        """Both the name and the cut-off are confirmed by a source."""
        return self.name_confidence == "confirmed" and self.cut_confidence in (None, "confirmed")


@dataclass
class Methodology:
    """A checked, compiled methodology."""

    id: str
    title: dict[str, str]
    legal_basis: dict[str, str]
    citation: str
    unverified: str
    effective_from: date
    path: str
    sha256: str
    default: bool
    dimensions: dict[str, dict[str, str]]
    indicators: list[Indicator]
    levels: list[Level]
    program: Program
    compiled: CompiledPack = field(repr=False)

    def level_of(self, score: int) -> Level:
        """The level of a total score: the first (best) level whose cut-off it reaches."""
        for level in self.levels:
            if level.min_score is None or score >= level.min_score:
                return level
        return self.levels[-1]  # pragma: no cover - the last level has no cut-off

    def check_period(self, period: Period) -> None:
        """Raise ValueError if the methodology is not in force in `period`."""
        if period.kind != self.program.period:
            raise ValueError(f"the methodology is scored per {self.program.period}")
        if period.end < self.effective_from:
            raise ValueError(f"the methodology applies from {self.effective_from.isoformat()}")

    def definition(self) -> dict[str, Any]:
        """A JSON-able snapshot kept with each run, so old results stay explainable."""
        return {
            "id": self.id,
            "sha256": self.sha256,
            "title": self.title,
            "legal_basis": self.legal_basis,
            "citation": self.citation,
            "unverified": self.unverified,
            "dimensions": self.dimensions,
            "indicators": [dataclasses.asdict(i) for i in self.indicators],
            "levels": [dataclasses.asdict(lv) for lv in self.levels],
        }

    def score_sql(self, source: str, *, prefix: str | None = None) -> str:
        """DuckDB SQL scoring every family of a family-result relation (`source`).

        One row per living family: family_id, region, one score per dimension, the total,
        the level code and the indicator flags ('1' holds, '0' does not, '-' unknown) in
        methodology order.
        """
        pre = prefix or f"p{self.program.index}"
        dims: list[str] = []
        for dim in DIMENSIONS:
            terms = [
                f"CASE WHEN {pre}__{i.code} THEN {i.points} ELSE 0 END"
                for i in self.indicators
                if i.dimension == dim
            ]
            dims.append(f"CAST({' + '.join(terms) or '0'} AS INTEGER) AS {dim}")
        flags = ", ".join(
            f"CASE WHEN {pre}__{i.code} IS NULL THEN '-' WHEN {pre}__{i.code} THEN '1' ELSE '0' END"
            for i in self.indicators
        )
        whens = " ".join(
            f"WHEN score >= {lv.min_score} THEN '{lv.code}'"
            for lv in self.levels
            if lv.min_score is not None
        )
        level = f"CASE {whens} ELSE '{self.levels[-1].code}' END" if whens else "'?'"
        total = " + ".join(DIMENSIONS)
        return (
            f"SELECT family_id, region, {', '.join(DIMENSIONS)}, score, {level} AS level,"
            f" indicators FROM (SELECT *, CAST({total} AS INTEGER) AS score FROM ("
            f"SELECT CAST(family_id AS BIGINT) AS family_id, CAST(region AS VARCHAR) AS region,"
            f" {', '.join(dims)}, concat({flags}) AS indicators FROM {source}"
            " WHERE family_id IS NOT NULL AND f_family_size > 0))"
        )


def find_pack_dir(path: Path) -> Path | None:
    """The nearest folder above a methodology file that holds a pack.yaml."""
    for folder in path.resolve().parents:
        if (folder / PACK_FILE).is_file():
            return folder
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _parse(path: Path, problems: list[Problem]) -> dict[str, Any] | None:
    """Read the YAML into plain parts, recording every structural problem."""
    file = str(path)
    node = read_yaml(path, problems)
    if node is None:
        return None
    if not isinstance(node, Map):
        problems.append(Problem(file, 1, "", "a methodology file must be a mapping"))
        return None
    required = ("id", "title", "legal_basis", "effective_from", "dimensions", "levels")
    check_fields(file, node, _FIELDS, "methodology", problems, required)
    mid = node.get("id")
    if not isinstance(mid, str) or not _ID.match(mid):
        problems.append(
            Problem(file, node.line_of("id"), "", f"id {mid!r} must look like 'kz.wellbeing.x'")
        )
        mid = "wellbeing.invalid"
    out: dict[str, Any] = {"id": mid, "file": file, "line": node.line}
    out["title"] = parse_texts(file, node.get("title"), node.line_of("title"), "title", problems)
    basis = node.get("legal_basis")
    out["basis"], out["citation"], out["unverified"] = {}, "", ""
    if isinstance(basis, Map):
        check_fields(
            file, basis, ("text", "citation", "unverified"), "legal_basis", problems, ("text",)
        )
        out["basis"] = parse_texts(
            file, basis.get("text"), basis.line_of("text"), "legal_basis text", problems
        )
        out["citation"] = str(basis.get("citation", ""))
        out["unverified"] = str(basis.get("unverified", ""))
    elif "legal_basis" in node:
        problems.append(
            Problem(file, node.line_of("legal_basis"), mid, "legal_basis needs text and citation")
        )
    start = node.get("effective_from")
    out["from"] = date(2000, 1, 1)
    if is_date(start) and not isinstance(start, BadDate):
        out["from"] = cast(date, start)
    elif "effective_from" in node:
        problems.append(
            Problem(file, node.line_of("effective_from"), mid, "effective_from must be YYYY-MM-DD")
        )
    period = node.get("period", "month")
    if period not in ("month", "year"):
        problems.append(Problem(file, node.line_of("period"), mid, "period is month or year"))
        period = "month"
    out["period"] = period
    out["default"] = node.get("default", False) is True
    out["parameters"] = parse_parameters(
        file, node.get("parameters"), node.line_of("parameters"), mid, problems
    )
    out["variables"] = parse_variables(
        file, node.get("variables"), node.line_of("variables"), mid, problems
    )
    out["dimensions"], out["indicators"] = _dimensions(file, node, mid, problems)
    out["levels"] = _levels(file, node, mid, problems)
    return out


def _dimensions(
    file: str, node: Map, mid: str, problems: list[Problem]
) -> tuple[dict[str, dict[str, str]], list[Indicator]]:
    titles: dict[str, dict[str, str]] = {}
    indicators: list[Indicator] = []
    dims = node.get("dimensions")
    if not isinstance(dims, Map):
        if "dimensions" in node:
            problems.append(
                Problem(file, node.line_of("dimensions"), mid, "dimensions map names to indicators")
            )
        return titles, indicators
    check_fields(file, dims, DIMENSIONS, "dimensions", problems, owner=mid)
    seen: dict[str, int] = {}
    for dim in DIMENSIONS:
        spec = dims.get(dim)
        if spec is None:
            continue
        where = f"dimension {dim!r}"
        if not isinstance(spec, Map):
            problems.append(
                Problem(file, dims.line_of(dim), mid, f"{where} needs title, indicators")
            )
            continue
        check_fields(file, spec, ("title", "indicators"), where, problems, ("title",), mid)
        titles[dim] = parse_texts(
            file, spec.get("title"), spec.line_of("title"), f"title of {where}", problems, mid
        )
        items = spec.get("indicators") or Map()
        if not isinstance(items, Map):
            problems.append(
                Problem(file, spec.line_of("indicators"), mid, f"{where}: indicators is a mapping")
            )
            continue
        for code, item in items.items():
            line = items.line_of(code)
            what = f"indicator {code!r}"
            if not isinstance(code, str) or not _CODE.match(code):
                problems.append(
                    Problem(file, line, mid, f"bad indicator name {code!r} (a-z, 0-9, _)")
                )
                continue
            if code in seen:
                problems.append(
                    Problem(file, line, mid, f"{what} is also defined on line {seen[code]}")
                )
                continue
            seen[code] = line
            if not isinstance(item, Map):
                problems.append(Problem(file, line, mid, f"{what} needs title, when and points"))
                continue
            check_fields(
                file,
                item,
                ("title", "when", "points", "source", "confidence", "points_confidence"),
                what,
                problems,
                ("title", "when", "points"),
            )
            confidence = _confidence(file, item, "confidence", what, mid, problems)
            points_confidence = _confidence(file, item, "points_confidence", what, mid, problems)
            title = parse_texts(
                file, item.get("title"), item.line_of("title"), f"title of {what}", problems, mid
            )
            when = item.get("when")
            if isinstance(when, bool):
                when = str(when).lower()
            points = _int(item.get("points"))
            if "points" in item and (points is None or points == 0):
                problems.append(
                    Problem(
                        file,
                        item.line_of("points"),
                        mid,
                        f"{what}: points must be a non-zero integer, got {item.get('points')!r}",
                    )
                )
            if "when" in item and not isinstance(when, str):
                problems.append(
                    Problem(file, item.line_of("when"), mid, f"{what}: 'when' is an expression")
                )
            if isinstance(when, str) and points:
                indicators.append(
                    Indicator(
                        code,
                        dim,
                        points,
                        title,
                        when,
                        item.line_of("when") or line,
                        _reads(when),
                        str(item.get("source") or ""),
                        confidence,
                        points_confidence,
                    )
                )
    if len(indicators) > MAX_INDICATORS:
        problems.append(
            Problem(
                file,
                node.line_of("dimensions"),
                mid,
                f"{len(indicators)} indicators: at most {MAX_INDICATORS} (a flag each per family)",
            )
        )
    if not indicators and not any(p.file == file for p in problems):
        problems.append(Problem(file, node.line_of("dimensions"), mid, "no indicators defined"))
    return titles, indicators


def _confidence(
    file: str, item: Map, key: str, what: str, mid: str, problems: list[Problem]
) -> str:
    """A confidence mark (`unconfirmed` when absent); a problem when it is not one of them."""
    value = item.get(key, "unconfirmed")
    if value not in CONFIDENCES:
        problems.append(
            Problem(
                file,
                item.line_of(key),
                mid,
                f"{what}: {key} is one of {', '.join(CONFIDENCES)}, got {value!r}",
            )
        )
        return "unconfirmed"
    return str(value)


def _reads(text: str) -> tuple[str, ...]:
    """The unqualified names an expression mentions (compiling reports any problem)."""
    try:
        refs = ex.references(ex.parse(text))
    except ex.ExprError:
        return ()
    return tuple(sorted(name for qualifier, name in refs if not qualifier))


def _levels(file: str, node: Map, mid: str, problems: list[Problem]) -> list[Level]:
    levels: list[Level] = []
    items = node.get("levels")
    if not isinstance(items, Seq) or len(items) < 2:
        if "levels" in node:
            problems.append(
                Problem(file, node.line_of("levels"), mid, "levels is a list of at least two")
            )
        return levels
    codes: set[str] = set()
    previous: int | None = None
    for i, item in enumerate(items):
        line = items.line_of(i)
        if not isinstance(item, Map):
            problems.append(Problem(file, line, mid, "a level is {code, name, min_score}"))
            continue
        last = i == len(items) - 1
        check_fields(
            file,
            item,
            ("code", "name", "min_score", "source", "name_confidence", "cut_confidence", "note"),
            "level",
            problems,
            ("code", "name"),
            mid,
        )
        code = item.get("code")
        if not isinstance(code, str) or not _LEVEL_CODE.match(code):
            problems.append(
                Problem(file, item.line_of("code"), mid, f"level code {code!r}: 1-4 of A-Z, 0-9")
            )
            continue
        if code in codes:
            problems.append(Problem(file, item.line_of("code"), mid, f"level {code!r} twice"))
            continue
        codes.add(code)
        name = parse_texts(
            file, item.get("name"), item.line_of("name"), f"name of level {code!r}", problems, mid
        )
        raw = item.get("min_score")
        cut = _int(raw)
        if last:
            if raw is not None:
                problems.append(
                    Problem(
                        file,
                        item.line_of("min_score"),
                        mid,
                        f"the last level {code!r} takes every lower score: drop its min_score",
                    )
                )
            cut = None
        elif cut is None:
            problems.append(
                Problem(
                    file,
                    item.line_of("min_score") or line,
                    mid,
                    f"level {code!r} needs an integer min_score, got {raw!r}",
                )
            )
            continue
        elif previous is not None and cut >= previous:
            problems.append(
                Problem(
                    file,
                    item.line_of("min_score"),
                    mid,
                    f"level {code!r}: min_score {cut} must be below the previous level's {previous}"
                    " (levels go from best to worst)",
                )
            )
            continue
        if cut is not None:
            previous = cut
        what = f"level {code!r}"
        name_confidence = _confidence(file, item, "name_confidence", what, mid, problems)
        cut_confidence = _confidence(file, item, "cut_confidence", what, mid, problems)
        if last and "cut_confidence" in item:
            problems.append(
                Problem(
                    file,
                    item.line_of("cut_confidence"),
                    mid,
                    f"the last level {code!r} has no cut-off: drop its cut_confidence",
                )
            )
        source = str(item.get("source") or "")
        levels.append(
            Level(code, name, cut, source, name_confidence, None if last else cut_confidence)
        )
    return levels


def _program(parts: dict[str, Any], index: int) -> Program:
    file = parts["file"]
    mid = parts["id"]
    conditions = {
        i.code: Condition(
            name=i.code, expr=Source(i.expr, Loc(file, i.line), mid), explain=dict(i.title)
        )
        for i in parts["indicators"]
    }
    version = Version(
        index=1,
        effective_from=parts["from"],
        loc=Loc(file, parts["line"]),
        variables=dict(parts["variables"]),
        conditions=conditions,
    )
    return Program(
        id=mid,
        index=index,
        title=parts["title"],
        legal_basis=parts["basis"],
        citation=parts["citation"],
        entity="family",
        period=parts["period"],
        loc=Loc(file, parts["line"]),
        kind="status",
        parameters=dict(parts["parameters"]),
        versions=[version],
    )


def _sha256(*paths: Path) -> str:
    digest = hashlib.sha256()
    for p in paths:
        digest.update(p.read_bytes())
    return digest.hexdigest()


def _base_pack(path: Path, problems: list[Problem]) -> tuple[Pack | None, Path | None]:
    pack_dir = find_pack_dir(path)
    if pack_dir is None:
        problems.append(
            Problem(str(path), 0, "", "a methodology lives inside a rule pack (no pack.yaml above)")
        )
        return None, None
    pack, pack_problems = parse_pack(pack_dir)
    pack_file = str(pack_dir / PACK_FILE)
    # Only pack.yaml matters here: the pack's benefit programs are not part of the score.
    problems += [p for p in pack_problems if p.file == pack_file and p.line]
    return pack, pack_dir


def _compile(pack: Pack, file: str, mid: str, problems: list[Problem]) -> CompiledPack | None:
    try:
        return compile_pack(pack)
    except PackError as exc:
        for p in exc.problems:
            reason = p.reason.replace("condition ", "indicator ", 1) if p.file == file else p.reason
            problems.append(Problem(p.file, p.line, mid if p.file == file else p.program, reason))
        return None


def load_methodology(path: str | Path, *, with_programs: bool = False) -> Methodology:
    """Read, check and compile a methodology file; raises MethodologyError with every problem.

    With `with_programs`, the rule pack's benefit programs are compiled alongside, so one
    evaluation gives every benefit decision and the well-being score.
    """
    file_path = Path(path)
    problems: list[Problem] = []
    if not file_path.is_file():
        raise MethodologyError([Problem(str(file_path), 0, "", "no such methodology file")])
    parts = _parse(file_path, problems)
    pack, pack_dir = _base_pack(file_path, problems)
    if parts is None or pack is None or pack_dir is None:
        raise MethodologyError(problems)
    if problems:  # structural problems first: compiling half a methodology says little more
        raise MethodologyError(problems)
    programs = list(pack.programs) if with_programs else []
    program = _program(parts, max((p.index for p in programs), default=0) + 1)
    for name in program.parameters:
        if name in pack.parameters:
            param = program.parameters[name]
            problems.append(
                Problem(
                    parts["file"],
                    param.loc.line,
                    parts["id"],
                    f"parameter {name!r} hides the pack's parameter of that name",
                )
            )
    combined = dataclasses.replace(pack, programs=[*programs, program])
    compiled = _compile(combined, parts["file"], parts["id"], problems)
    if compiled is None or problems:
        raise MethodologyError(problems)
    return Methodology(
        id=parts["id"],
        title=parts["title"],
        legal_basis=parts["basis"],
        citation=parts["citation"],
        unverified=parts["unverified"],
        effective_from=parts["from"],
        path=str(file_path),
        sha256=_sha256(file_path, pack_dir / PACK_FILE),
        default=parts["default"],
        dimensions={d: parts["dimensions"].get(d, dict.fromkeys(LANGUAGES, d)) for d in DIMENSIONS},
        indicators=parts["indicators"],
        levels=parts["levels"],
        program=program,
        compiled=compiled,
    )


def methodology_files(folder: str | Path) -> list[Path]:
    """The methodology files of a folder, sorted."""
    return sorted(Path(folder).glob("*.yaml"))
