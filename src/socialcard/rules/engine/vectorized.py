"""Run a whole-registry batch's family and person stages in numpy, column at a time.

The bound stages (`Bound.person_steps`, `family_aggs`, `family_steps`, `person_result_steps`)
are SQL expressions over the previous columns. DuckDB runs them as SQL; this module runs the
same expressions as whole-column numpy operations, which over a loaded registry avoids what
DuckDB spends on them (person base values computed again in each stage, hash grouping of
3.3 M persons, and converting its results to Arrow). Each expression is parsed once with
sqlglot and turned into a closure over columns, following DuckDB's semantics for the
constructs the engine emits, as `interpret.py` does for one row at a time:

- a column is its values and a validity mask; NULL propagates through arithmetic and
  comparisons, AND/OR/NOT are three-valued, CASE falls through on NULL, greatest/least and
  coalesce skip NULLs;
- integers are int64; a DECIMAL is an int64 of units of 10**-scale, so decimal arithmetic is
  exact integer arithmetic. Every integer and decimal column carries an upper bound of its
  absolute value, and an operation whose result could pass 64 bits raises `Unsupported`;
- `/` gives DOUBLE, `//` truncates toward zero, round halves away from zero, a DOUBLE cast to
  an integer rounds half to even, a DECIMAL cast rounds half away from zero.

Every expression is computed over every row (a CASE branch too), so a value that would have
raised an error in DuckDB (log of zero, a non-finite number cast to an integer, division by
zero) is only marked; if a marked value reaches a result, or anything here is not supported,
`Unsupported` is raised and the engine runs the stage in DuckDB instead, which is exact and
raises what it raises. The agreement tests compare both on random registries.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray
from sqlglot import exp

from socialcard.rules.engine.compiler import BoundAgg, Layer
from socialcard.rules.engine.interpret import parse_sql
from socialcard.rules.engine.problems import EvaluationError

LIMIT = 2**63 - 1  # |int64| bound
_EPOCH = date(1970, 1, 1)

Mask = NDArray[np.bool_]


class Unsupported(Exception):
    """This stage cannot be computed here exactly: run it in DuckDB."""


@contextlib.contextmanager
def small_pages() -> Iterator[None]:
    """Numpy's arrays without the transparent huge page hint while the stages run.

    Every operation here writes a fresh array of millions of rows; with the hint, the kernel
    may compact memory to find a huge page at each first touch, which was measured at 25 %
    more CPU for a whole 1 M-family batch on this machine (and single operations 10x slower).
    """
    multiarray = getattr(getattr(np, "_core", None), "multiarray", None)
    setter = getattr(multiarray, "_set_madvise_hugepage", None)
    if setter is None:  # pragma: no cover - another numpy
        try:
            yield
        finally:
            _DATE_PARTS.clear()
        return
    previous = setter(False)
    try:
        yield
    finally:
        setter(previous)
        _DATE_PARTS.clear()


@dataclass(frozen=True)
class Col:
    """A column (or a constant, as a 0-d array) with SQL semantics.

    kind: bool, int, dec (int64 units of 10**-scale), float, date (int64 days since
    1970-01-01), str (int codes into `cats`), null (a NULL of no type yet).
    """

    kind: str
    v: Any  # ndarray, or a 0-d array for a constant
    ok: Any = None  # validity (bool ndarray or 0-d), None: all valid
    scale: int = 0
    cats: tuple[str, ...] = ()
    bound: int = 0  # upper bound of |v| (int, dec)
    err: Any = None  # rows whose value would have been an error in DuckDB


NULL = Col("null", np.int64(0), np.bool_(False))


def _and(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def _or(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return a | b


def _err(*cols: Col) -> Any:
    out = None
    for c in cols:
        out = _or(out, c.err)
    return out


def _ok(*cols: Col) -> Any:
    out = None
    for c in cols:
        out = _and(out, c.ok)
    return out


def _tight(col: Col) -> Col:
    """The same column with its bound measured rather than inferred."""
    v = np.asarray(col.v)
    if v.size == 0:
        return replace(col, bound=0)
    if col.ok is not None and np.ndim(col.ok):
        v = np.where(col.ok, v, 0)
    high = int(np.max(v)) if v.size else 0
    low = int(np.min(v)) if v.size else 0
    return replace(col, bound=max(abs(high), abs(low)))


def _checked(bound: int) -> None:
    if bound >= LIMIT:
        raise Unsupported("an integer or decimal value could pass 64 bits")


# --- making operands alike ------------------------------------------------------------------
def _rescale(col: Col, scale: int) -> Col:
    """An int or dec column as dec at a larger scale."""
    if col.kind == "int":
        col = replace(col, kind="dec", scale=0)
    if col.scale == scale:
        return col
    if col.scale > scale:
        raise Unsupported("internal: rescale down")
    factor = 10 ** (scale - col.scale)
    bound = col.bound * factor
    if bound >= LIMIT:
        col = _tight(col)
        bound = col.bound * factor
        _checked(bound)
    return replace(col, v=col.v * np.int64(factor), scale=scale, bound=bound)


def _as_float(col: Col) -> Col:
    if col.kind == "float":
        return col
    if col.kind == "int":
        return replace(col, kind="float", v=np.asarray(col.v).astype(np.float64), bound=0)
    if col.kind == "dec":
        # As DuckDB casts a DECIMAL to DOUBLE: the integer value divided by 10**scale.
        values = np.asarray(col.v).astype(np.float64) / float(10**col.scale)
        return replace(col, kind="float", v=values, scale=0, bound=0)
    raise Unsupported(f"{col.kind} as a number")


def _str_to(col: Col, cats: tuple[str, ...]) -> Col:
    """A str column with its codes into `cats` (a superset of its own)."""
    if col.cats == cats:
        return col
    index = {c: i for i, c in enumerate(cats)}
    lut = np.array([index[c] for c in col.cats] or [0], dtype=np.int32)
    return replace(col, v=lut[np.asarray(col.v)], cats=cats)


def _alike(cols: Sequence[Col]) -> list[Col]:
    """Operands in one kind, as DuckDB unifies CASE branches, coalesce and comparisons."""
    kinds = {c.kind for c in cols} - {"null"}
    if not kinds:
        return list(cols)
    if kinds <= {"int", "dec", "float"}:
        if "float" in kinds:
            target = "float"
        elif "dec" in kinds:
            target = "dec"
        else:
            target = "int"
    elif len(kinds) == 1:
        target = next(iter(kinds))
    else:
        raise Unsupported(f"mixed kinds {sorted(kinds)}")
    out: list[Col] = []
    scale = max((c.scale for c in cols if c.kind == "dec"), default=0)
    cats: tuple[str, ...] = ()
    if target == "str":
        cats = tuple(sorted({s for c in cols if c.kind == "str" for s in c.cats}))
    for c in cols:
        if c.kind == "null":
            fill: Any = {"float": np.float64(0.0), "bool": np.bool_(False)}.get(target, np.int64(0))
            c = Col(target, fill, np.bool_(False), scale if target == "dec" else 0, cats)
        elif target == "float":
            c = _as_float(c)
        elif target == "dec":
            c = _rescale(c, scale)
        elif target == "str":
            c = _str_to(c, cats)
        out.append(c)
    return out


def _sorted_cats(a: Col, b: Col) -> tuple[Col, Col]:
    """Two str columns with codes into one sorted list, so codes compare as strings do."""
    cats = tuple(sorted(set(a.cats) | set(b.cats)))
    return _str_to(a, cats), _str_to(b, cats)


def _widen(a: Col, b: Col, bound: int) -> tuple[Col, Col]:
    """The operands of an integer operation whose result could pass their common type (two
    int32 columns, say) with the first one as int64, so that numpy computes in 64 bits."""
    common = np.result_type(np.asarray(a.v).dtype, np.asarray(b.v).dtype)
    if common.kind == "i" and common.itemsize < 8 and bound >= np.iinfo(common).max:
        a = replace(a, v=np.asarray(a.v).astype(np.int64))
    return a, b


# --- operations -----------------------------------------------------------------------------
def _arith(op: str, a: Col, b: Col) -> Col:
    if a.kind == "null" or b.kind == "null":
        kind = "float" if "float" in (a.kind, b.kind) else "int"
        return Col(kind, np.int64(0), np.bool_(False))
    if a.kind == "date" or b.kind == "date":
        return _date_arith(op, a, b)
    if a.kind == "bool" or b.kind == "bool" or a.kind == "str" or b.kind == "str":
        raise Unsupported(f"{op} of {a.kind} and {b.kind}")
    ok, err = _ok(a, b), _err(a, b)
    if a.kind == "float" or b.kind == "float":
        x, y = _as_float(a).v, _as_float(b).v
        v = x + y if op == "+" else x - y if op == "-" else x * y
        return Col("float", v, ok, err=err)
    if op == "*":
        scale = a.scale + b.scale
        bound = a.bound * b.bound
        if bound >= LIMIT:
            a, b = _tight(a), _tight(b)
            bound = a.bound * b.bound
            _checked(bound)
        kind = "dec" if "dec" in (a.kind, b.kind) else "int"
        a, b = _widen(a, b, bound)
        return Col(kind, a.v * b.v, ok, scale, bound=bound, err=err)
    kind = "dec" if "dec" in (a.kind, b.kind) else "int"
    if kind == "dec":
        scale = max(a.scale, b.scale)
        a, b = _rescale(a, scale), _rescale(b, scale)
    else:
        scale = 0
    bound = a.bound + b.bound
    if bound >= LIMIT:
        a, b = _tight(a), _tight(b)
        bound = a.bound + b.bound
        _checked(bound)
    a, b = _widen(a, b, bound)
    v = a.v + b.v if op == "+" else a.v - b.v
    return Col(kind, v, ok, scale, bound=bound, err=err)


def _date_arith(op: str, a: Col, b: Col) -> Col:
    ok, err = _ok(a, b), _err(a, b)
    if a.kind == "date" and b.kind == "int" and op in "+-":
        v = a.v + b.v if op == "+" else a.v - b.v
        return Col("date", v, ok, err=err)
    if a.kind == "int" and b.kind == "date" and op == "+":
        return Col("date", a.v + b.v, ok, err=err)
    if a.kind == "date" and b.kind == "date" and op == "-":
        return Col("int", a.v - b.v, ok, bound=2 * 10**7, err=err)
    raise Unsupported(f"{op} of {a.kind} and {b.kind}")


def _divide(a: Col, b: Col) -> Col:
    if a.kind == "null" or b.kind == "null":
        return Col("float", np.float64(0.0), np.bool_(False))
    x, y = _as_float(a).v, _as_float(b).v
    with np.errstate(divide="ignore", invalid="ignore"):
        v = np.true_divide(x, y)
    return Col("float", v, _ok(a, b), err=_err(a, b))


def _intdiv_mod(op: str, a: Col, b: Col) -> Col:
    if a.kind == "null" or b.kind == "null":
        return Col("int", np.int64(0), np.bool_(False))
    if a.kind != "int" or b.kind != "int":
        raise Unsupported(f"{op} of {a.kind} and {b.kind}")
    ok = _ok(a, b)
    a = replace(a, v=np.asarray(a.v, dtype=np.int64))
    b = replace(b, v=np.asarray(b.v, dtype=np.int64))
    zero = np.asarray(b.v) == 0
    if ok is not None:
        zero = zero & ok
    err = _or(_err(a, b), zero if bool(np.any(zero)) else None)
    if op == "//" and np.ndim(b.v) == 0 and int(b.v) > 0:
        # By a positive constant: floor division, then one up where a negative dividend
        # left a remainder (DuckDB truncates toward zero).
        x = np.asarray(a.v)
        q = x // b.v
        q += (x < 0) & (q * b.v != x)
        return Col("int", q, ok, bound=a.bound, err=err)
    y = np.where(np.asarray(b.v) == 0, 1, b.v)
    if op == "//":
        q = np.abs(a.v) // np.abs(y)
        v = np.where((np.asarray(a.v) >= 0) == (y >= 0), q, -q)
        return Col("int", v, ok, bound=a.bound, err=err)
    return Col("int", np.fmod(a.v, y), ok, bound=b.bound, err=err)


def _bitwise(op: str, a: Col, b: Col) -> Col:
    if a.kind == "null" or b.kind == "null":
        return Col("int", np.int64(0), np.bool_(False))
    if a.kind != "int" or b.kind != "int":
        raise Unsupported(f"{op} of {a.kind} and {b.kind}")
    ok, err = _ok(a, b), _err(a, b)
    x, y = np.asarray(a.v, dtype=np.int64), np.asarray(b.v, dtype=np.int64)
    if op == "&":
        v = x & y
        nonneg = [c.bound for c, z in ((a, x), (b, y)) if z.ndim == 0 and z >= 0]
        if not nonneg:
            nonneg = [c.bound for c, z in ((a, x), (b, y)) if bool(np.all(z >= 0))]
        bound = min(nonneg) if nonneg else 2 * max(a.bound, b.bound) + 1
    elif op in ("|", "^"):
        v = x | y if op == "|" else x ^ y
        bound = 2 * max(a.bound, b.bound) + 1
    elif op == ">>":
        if bool(np.any((y < 0) | (y > 62))):
            raise Unsupported("shift out of range")
        v, bound = x >> y, a.bound
    else:  # <<
        if bool(np.any((y < 0) | (y > 62))):
            raise Unsupported("shift out of range")
        bound = a.bound << int(np.max(y))
        _checked(bound)
        v = x << y
    return Col("int", v, ok, bound=min(bound, LIMIT - 1), err=err)


_CMP: dict[str, Callable[[Any, Any], Any]] = {
    "=": np.equal,
    "<>": np.not_equal,
    ">": np.greater,
    ">=": np.greater_equal,
    "<": np.less,
    "<=": np.less_equal,
}


def _compare(op: str, a: Col, b: Col) -> Col:
    if a.kind == "null" or b.kind == "null":
        return Col("bool", np.bool_(False), np.bool_(False))
    if a.kind == "str" and b.kind == "str":
        if op in ("=", "<>") and len(b.cats) == 1 and not np.ndim(b.v):
            # A column against one literal: compare codes with the literal's code.
            if b.cats[0] in a.cats:
                code = a.cats.index(b.cats[0])
                return Col("bool", _CMP[op](a.v, code), _ok(a, b), err=_err(a, b))
            return Col("bool", np.bool_(op == "<>"), _ok(a, b), err=_err(a, b))
        a, b = _sorted_cats(a, b)
    elif a.kind != b.kind or a.kind == "dec":
        a, b = _alike([a, b])
    return Col("bool", _CMP[op](a.v, b.v), _ok(a, b), err=_err(a, b))


def _truth(col: Col) -> Col:
    if col.kind == "null":
        return Col("bool", np.bool_(False), np.bool_(False))
    if col.kind == "int":  # DuckDB casts an integer condition implicitly: nonzero
        return Col("bool", np.asarray(col.v) != 0, col.ok, err=col.err)
    if col.kind != "bool":
        raise Unsupported(f"{col.kind} as a condition")
    return col


def _is_true(col: Col) -> Any:
    """Rows where a condition is TRUE (not FALSE, not NULL)."""
    col = _truth(col)
    return col.v if col.ok is None else (col.v & col.ok)


def _logic_and(a: Col, b: Col) -> Col:
    a, b = _truth(a), _truth(b)
    err = _err(a, b)
    if a.ok is None and b.ok is None:
        return Col("bool", a.v & b.v, None, err=err)
    false = _or(_false(a), _false(b))
    ok = _or(false, _ok(a, b))
    return Col("bool", a.v & b.v & ok, ok, err=err)


def _logic_or(a: Col, b: Col) -> Col:
    a, b = _truth(a), _truth(b)
    err = _err(a, b)
    if a.ok is None and b.ok is None:
        return Col("bool", a.v | b.v, None, err=err)
    true = _or(_is_true(a), _is_true(b))
    ok = _or(true, _ok(a, b))
    return Col("bool", true, ok, err=err)


def _false(col: Col) -> Any:
    return ~col.v if col.ok is None else (~col.v & col.ok)


def _logic_not(a: Col) -> Col:
    a = _truth(a)
    return Col("bool", ~a.v, a.ok, err=a.err)


SPARSE = 8  # a branch taken by fewer than 1/SPARSE of the rows is computed on those rows only


def _choose(f: Frame, takes: Sequence[Any], values: Sequence[Fn], default: Fn) -> Col:
    """CASE: for each row the value of the first branch whose condition is TRUE, else the
    default. Like DuckDB, a branch is computed only for its rows when they are few (over a
    subset frame); the other branches are computed whole and masked."""
    n = f.n
    taken = np.zeros(n, dtype=bool)
    parts: list[tuple[Any, Col, bool]] = []  # (rows: mask or index, value, dense)
    for take, value in [*zip(takes, values, strict=True), (None, default)]:
        if take is None:
            rows = ~taken
        else:
            rows = np.broadcast_to(np.asarray(take, dtype=bool), (n,)) & ~taken
            taken |= rows
        count = int(np.count_nonzero(rows))
        if count == 0:
            continue
        if count == n:
            parts.append((None, value(f), True))
        elif count * SPARSE < n:
            index = np.flatnonzero(rows)
            parts.append((index, value(f.subset(index)), False))
        else:
            parts.append((rows, value(f), True))
    if not parts:
        return default(f)
    cols = _alike([col for _, col, _ in parts])
    if len(parts) == 1 and parts[0][0] is None:
        return cols[0]
    first = cols[0]
    dtype = np.result_type(*(np.asarray(c.v).dtype for c in cols))
    # The widest dense part is the base; the others are written over it.
    order = sorted(range(len(parts)), key=lambda i: not parts[i][2])
    base = cols[order[0]]
    if parts[order[0]][2]:
        v: NDArray[Any] = np.array(np.broadcast_to(base.v, (n,)), dtype=dtype)
        ok = None if base.ok is None else np.array(np.broadcast_to(base.ok, (n,)))
        err = None if base.err is None else np.array(np.broadcast_to(base.err, (n,)))
        order = order[1:]
    else:
        v, ok, err = np.zeros(n, dtype=dtype), None, None
    for i in order:
        rows, _, dense = parts[i]
        col = cols[i]
        v = _put(v, col.v, rows, dense)
        ok = _put_mask(ok, col.ok, True, rows, dense, n)  # validity: None is all valid
        err = _put_mask(err, col.err, False, rows, dense, n)  # errors: None is none
    bound = max((c.bound for c in cols), default=0)
    return Col(first.kind, v, ok, first.scale, first.cats, bound, err)


def _put(target: NDArray[Any], source: Any, rows: Any, dense: bool) -> NDArray[Any]:
    """`target` with `source` written on `rows` (a mask when dense, else an index)."""
    src = np.asarray(source)
    if rows is None:
        return np.broadcast_to(src, target.shape).astype(target.dtype)
    if dense:
        return np.where(rows, src, target).astype(target.dtype, copy=False)
    target[rows] = src
    return target


def _put_mask(target: Any, source: Any, absent: bool, rows: Any, dense: bool, n: int) -> Any:
    """`_put` for a mask where None stands for `absent` on every row."""
    if source is None and target is None:
        return None
    full = np.full(n, absent) if target is None else target
    return _put(full, absent if source is None else source, rows, dense)


def _coalesce(args: Sequence[Col]) -> Col:
    cols = _alike(args)
    out = cols[-1]
    v, ok, err = out.v, out.ok, out.err
    for col in reversed(cols[:-1]):
        if col.ok is None:
            v, ok, err = col.v, None, col.err
            continue
        v = np.where(col.ok, col.v, v)
        ok = None if ok is None else (col.ok | ok)
        if err is not None or col.err is not None:
            err = np.where(
                col.ok, False if col.err is None else col.err, False if err is None else err
            )
    bound = max((c.bound for c in cols), default=0)
    return Col(out.kind, v, ok, out.scale, out.cats, bound, err)


def _extreme(args: Sequence[Col], greatest: bool) -> Col:
    cols = [c for c in args if c.kind != "null"]
    if not cols:
        return NULL
    if any(c.kind == "str" for c in cols):
        first, *rest = cols
        for c in rest:
            first, c = _sorted_cats(first, c)
        cols = _alike(cols)
    else:
        cols = _alike(cols)
    pick = np.maximum if greatest else np.minimum
    out = cols[0]
    v, ok, err = out.v, out.ok, out.err
    for col in cols[1:]:
        if ok is None and col.ok is None:
            v = pick(v, col.v)
        elif col.ok is None:  # NULLs only so far: this argument where they are
            v = np.where(ok, pick(v, col.v), col.v)
            ok = None
        elif ok is None:
            v = np.where(col.ok, pick(v, col.v), v)
        else:
            v = np.where(ok & col.ok, pick(v, col.v), np.where(ok, v, col.v))
            ok = ok | col.ok
        err = _or(err, col.err)
    bound = max(c.bound for c in cols)
    return Col(out.kind, v, ok, out.scale, out.cats, bound, err)


def _round_half_away_int(v: Any, step: int) -> Any:
    """Integer units rounded half away from zero to a multiple of `step`, divided by it."""
    a = np.abs(v)
    q = (a + step // 2) // step
    return np.where(np.asarray(v) < 0, -q, q)


def _c_round(x: Any) -> Any:
    """C's round(): half away from zero, exactly (rint rounds ties to even: move them)."""
    r = np.rint(x)
    tie = np.abs(x - r) == 0.5
    if bool(np.any(tie)):
        r = np.where(tie, x + np.copysign(0.5, x), r)
    return r


def _round(col: Col, digits: int) -> Col:
    if col.kind in ("null", "int"):
        if digits < 0 and col.kind == "int":
            raise Unsupported("round to a negative number of digits")
        return col
    if col.kind == "dec":
        if digits < 0:
            raise Unsupported("round to a negative number of digits")
        if digits >= col.scale:
            return col
        step = 10 ** (col.scale - digits)
        return replace(col, v=_round_half_away_int(col.v, step), scale=digits)
    if col.kind == "float" and digits == 0:
        return replace(col, v=_c_round(col.v))
    raise Unsupported(f"round of {col.kind} to {digits} digits")


def _floor_ceil(col: Col, up: bool) -> Col:
    if col.kind in ("null", "int"):
        return col
    if col.kind == "dec":
        step = np.int64(10**col.scale)
        v = -((-np.asarray(col.v)) // step) if up else np.asarray(col.v) // step
        return replace(col, v=v, scale=0, bound=col.bound // int(step) + 1)
    if col.kind == "float":
        return replace(col, v=np.ceil(col.v) if up else np.floor(col.v))
    raise Unsupported(f"floor/ceil of {col.kind}")


_INTEGERS = frozenset({"BIGINT", "INT", "SMALLINT", "TINYINT", "UBIGINT", "UINT"})


def _to_int(col: Col) -> Col:
    if col.kind in ("int", "null"):
        return replace(col, kind="int") if col.kind == "null" else col
    if col.kind == "bool":
        return Col("int", np.asarray(col.v).astype(np.int64), col.ok, bound=1, err=col.err)
    if col.kind == "dec":
        v = _round_half_away_int(col.v, 10**col.scale)
        return Col("int", v, col.ok, bound=col.bound // 10**col.scale + 1, err=col.err)
    if col.kind == "float":
        x = np.asarray(col.v)
        bad = ~np.isfinite(x) | (np.abs(x) >= 2.0**63)
        if col.ok is not None:
            bad = bad & col.ok
        safe = np.where(bad, 0.0, x)
        v = np.rint(safe).astype(np.int64)  # half to even, as DuckDB casts a DOUBLE
        return Col("int", v, col.ok, bound=_measure(v, col.ok), err=_or(col.err, _some(bad)))
    raise Unsupported(f"cast of {col.kind} to an integer")


def _some(mask: Any) -> Any:
    return mask if bool(np.any(mask)) else None


def _measure(v: Any, ok: Any) -> int:
    arr = np.asarray(v)
    if arr.size == 0:
        return 0
    if ok is not None and np.ndim(ok):
        arr = np.where(ok, arr, 0)
    return max(abs(int(np.max(arr))), abs(int(np.min(arr))))


def _to_decimal(col: Col, precision: int, scale: int) -> Col:
    if col.kind == "null":
        return Col("dec", np.int64(0), np.bool_(False), scale)
    if col.kind not in ("int", "dec"):
        raise Unsupported(f"cast of {col.kind} to a decimal")
    if col.kind == "dec" and col.scale > scale:
        step = 10 ** (col.scale - scale)
        v = _round_half_away_int(col.v, step)
        col = Col("dec", v, col.ok, scale, bound=col.bound // step + 1, err=col.err)
    else:
        col = _rescale(col, scale)
    if col.bound >= 10**precision:
        col = _tight(col)
        if col.bound >= 10**precision:
            raise Unsupported("a value does not fit its decimal type")
    return col


def _cast(col: Col, to: exp.DataType) -> Col:
    kind = to.this.name if hasattr(to.this, "name") else str(to.this)
    if kind in _INTEGERS or kind == "INTEGER":
        return _to_int(col)
    if kind in ("DOUBLE", "FLOAT"):
        if col.kind == "null":
            return Col("float", np.float64(0.0), np.bool_(False))
        if col.kind == "bool":
            return Col("float", np.asarray(col.v).astype(np.float64), col.ok, err=col.err)
        return _as_float(col)
    if kind == "DECIMAL":
        params = to.expressions
        precision = int(params[0].this.this) if params else 18
        scale = int(params[1].this.this) if len(params) > 1 else 3
        return _to_decimal(col, precision, scale)
    if kind == "DATE":
        if col.kind in ("date", "null"):
            return replace(col, kind="date")
        if col.kind == "str" and not np.ndim(col.v) and len(col.cats) == 1:
            day = date.fromisoformat(col.cats[0][:10])
            return Col("date", np.int64((day - _EPOCH).days), col.ok)
        raise Unsupported(f"cast of {col.kind} to a date")
    if kind in ("VARCHAR", "TEXT"):
        if col.kind in ("str", "null"):
            return replace(col, kind="str")
        if col.kind == "bool":
            codes = np.asarray(col.v).astype(np.int32)
            return Col("str", codes, col.ok, cats=("false", "true"), err=col.err)
        raise Unsupported(f"cast of {col.kind} to text")
    if kind == "BOOLEAN":
        if col.kind in ("bool", "null"):
            return replace(col, kind="bool")
        if col.kind == "int":
            return Col("bool", np.asarray(col.v) != 0, col.ok, err=col.err)
    raise Unsupported(f"cast to {to.sql('duckdb')}")


# id(values) -> (values, their year, month and day): a column's parts are split once (cleared
# when the stages end, `small_pages`, so it holds no arrays past a run).
_DATE_PARTS: dict[int, tuple[Any, dict[str, Any]]] = {}


def _civil(days: NDArray[Any]) -> dict[str, NDArray[np.int64]]:
    as_days = days.astype("datetime64[D]")
    months = as_days.astype("datetime64[M]")
    month_no = months.astype(np.int64)
    return {
        "year": month_no // 12 + 1970,
        "month": month_no % 12 + 1,
        "day": (as_days - months).astype(np.int64) + 1,
    }


def _date_part(col: Col, part: str) -> Col:
    if col.kind == "null":
        return Col("int", np.int64(0), np.bool_(False))
    if col.kind != "date":
        raise Unsupported(f"{part} of {col.kind}")
    values = np.asarray(col.v)
    cached = _DATE_PARTS.get(id(values))
    if cached is None or cached[0] is not values:
        ok = col.ok
        sparse = ok is not None and np.ndim(ok) and np.count_nonzero(ok) * SPARSE < len(values)
        if values.ndim and sparse:
            # Mostly NULL (e.g. the start of unemployment): split only the known dates.
            index = np.flatnonzero(ok)
            parts = {}
            for name, known in _civil(values[index]).items():
                full = np.zeros(len(values), dtype=np.int64)
                full[index] = known
                parts[name] = full
        else:
            parts = _civil(values)
        if len(_DATE_PARTS) > 16:
            _DATE_PARTS.clear()
        cached = _DATE_PARTS[id(values)] = (values, parts)
    return Col("int", cached[1][part], col.ok, bound=10**4, err=col.err)


def _log(base: Col, x: Col) -> Col:
    if not (base.kind == "int" and not np.ndim(base.v)):
        raise Unsupported("log with a column base")
    if x.kind == "null":
        return Col("float", np.float64(0.0), np.bool_(False))
    values = _as_float(x).v
    bad = np.asarray(values) <= 0
    if x.ok is not None:
        bad = bad & x.ok
    safe = np.where(np.asarray(values) <= 0, 1.0, values)
    k = int(base.v)
    v = np.log2(safe) if k == 2 else np.log(safe) / np.log(k)
    return Col("float", v, x.ok, err=_or(x.err, _some(bad)))


def _in(subject: Col, items: Sequence[Col]) -> Col:
    if subject.kind == "null":
        return Col("bool", np.bool_(False), np.bool_(False))
    result: Col | None = None
    for item in items:
        eq = _compare("=", subject, item)
        result = eq if result is None else _logic_or(result, eq)
    assert result is not None  # noqa: S101 - IN has at least one item
    return result


# --- SQL -> closures over a frame -------------------------------------------------------------
Fn = Callable[["Frame"], Col]


def _literal(node: exp.Literal) -> Col:
    if node.is_string:
        return Col("str", np.int32(0), None, cats=(node.this,))
    text = node.this
    if text.lstrip("-").isdigit():
        return Col("int", np.int64(int(text)), bound=abs(int(text)))
    if "e" in text.lower():
        return Col("float", np.float64(float(text)))
    value = Decimal(text)
    scale = max(0, -int(value.as_tuple().exponent))
    units = int(value.scaleb(scale))
    return Col("dec", np.int64(units), scale=scale, bound=abs(units))


_ARITH: dict[type[exp.Expression], str] = {exp.Add: "+", exp.Sub: "-", exp.Mul: "*"}
_COMPARE: dict[type[exp.Expression], str] = {
    exp.EQ: "=",
    exp.NEQ: "<>",
    exp.GT: ">",
    exp.GTE: ">=",
    exp.LT: "<",
    exp.LTE: "<=",
}
_BITS: dict[type[exp.Expression], str] = {
    exp.BitwiseAnd: "&",
    exp.BitwiseOr: "|",
    exp.BitwiseXor: "^",
    exp.BitwiseLeftShift: "<<",
    exp.BitwiseRightShift: ">>",
}


@functools.lru_cache(maxsize=4096)
def compile_sql(sql: str) -> Fn:
    """A closure computing one SQL expression over a frame of columns."""
    try:
        tree = parse_sql(sql)
    except EvaluationError as exc:  # pragma: no cover - the compiler wrote it
        raise Unsupported(str(exc)) from exc
    return _build(tree)


def _build(node: exp.Expression) -> Fn:
    b = _build
    if isinstance(node, exp.Paren):
        return b(node.this)
    if isinstance(node, exp.Column):
        name = node.name
        return lambda f: f[name]
    if isinstance(node, exp.Literal):
        const = _literal(node)
        return lambda f: const
    if isinstance(node, exp.Boolean):
        flag = Col("bool", np.bool_(bool(node.this)))
        return lambda f: flag
    if isinstance(node, exp.Null):
        return lambda f: NULL
    arith = _ARITH.get(type(node))
    if arith is not None:
        left, right = b(node.this), b(node.expression)
        return lambda f: _arith(arith, left(f), right(f))
    if isinstance(node, exp.Div):
        left, right = b(node.this), b(node.expression)
        return lambda f: _divide(left(f), right(f))
    if isinstance(node, exp.IntDiv | exp.Mod):
        left, right = b(node.this), b(node.expression)
        op = "//" if isinstance(node, exp.IntDiv) else "%"
        return lambda f: _intdiv_mod(op, left(f), right(f))
    cmp = _COMPARE.get(type(node))
    if cmp is not None:
        left, right = b(node.this), b(node.expression)
        return lambda f: _compare(cmp, left(f), right(f))
    bits = _BITS.get(type(node))
    if bits is not None:
        left, right = b(node.this), b(node.expression)
        return lambda f: _bitwise(bits, left(f), right(f))
    if isinstance(node, exp.And | exp.Or):
        left, right = b(node.this), b(node.expression)
        logic = _logic_and if isinstance(node, exp.And) else _logic_or
        return lambda f: logic(left(f), right(f))
    if isinstance(node, exp.Not):
        inner = b(node.this)
        return lambda f: _logic_not(inner(f))
    if isinstance(node, exp.Neg):
        inner = b(node.this)
        zero = Col("int", np.int64(0))
        return lambda f: _arith("-", zero, inner(f))
    if isinstance(node, exp.Is):
        if not isinstance(node.expression, exp.Null):
            raise Unsupported(f"IS {node.expression.sql()}")
        inner = b(node.this)

        def is_null(f: Frame) -> Col:
            col = inner(f)
            if col.ok is None:
                return Col("bool", np.bool_(False), err=col.err)
            return Col("bool", ~np.asarray(col.ok), err=col.err)

        return is_null
    if isinstance(node, exp.In):
        if node.args.get("query") is not None:
            raise Unsupported("IN (subquery)")
        subject = b(node.this)
        items = [b(i) for i in node.expressions]
        return lambda f: _in(subject(f), [i(f) for i in items])
    if isinstance(node, exp.Between):
        subject, low, high = b(node.this), b(node.args["low"]), b(node.args["high"])

        def between(f: Frame) -> Col:
            x = subject(f)
            return _logic_and(_compare(">=", x, low(f)), _compare("<=", x, high(f)))

        return between
    if isinstance(node, exp.Case):
        return _case(node)
    if isinstance(node, exp.If):
        cond, then = b(node.this), b(node.args["true"])
        other = b(node.args["false"]) if node.args.get("false") is not None else (lambda f: NULL)
        return lambda f: _choose(f, [_is_true(cond(f))], [then], other)
    if isinstance(node, exp.Cast):
        inner, to = b(node.this), node.args["to"]
        return lambda f: _cast(inner(f), to)
    if isinstance(node, exp.Coalesce):
        args = [b(a) for a in [node.this, *node.expressions]]
        return lambda f: _coalesce([a(f) for a in args])
    if isinstance(node, exp.Greatest | exp.Least):
        args = [b(a) for a in [node.this, *node.expressions]]
        greatest = isinstance(node, exp.Greatest)
        return lambda f: _extreme([a(f) for a in args], greatest)
    if isinstance(node, exp.Nullif):
        left, right = b(node.this), b(node.expression)

        def nullif(f: Frame) -> Col:
            x = left(f)
            same = _is_true(_compare("=", x, right(f)))
            return replace(x, ok=_and(x.ok, ~np.asarray(same)))

        return nullif
    if isinstance(node, exp.Round):
        inner = b(node.this)
        places = node.args.get("decimals")
        if places is None:
            return lambda f: _round(inner(f), 0)
        digits = b(places)

        def round_(f: Frame) -> Col:
            d = digits(f)
            if d.kind != "int" or np.ndim(d.v):
                raise Unsupported("round to a column of digits")
            return _round(inner(f), int(d.v))

        return round_
    if isinstance(node, exp.Floor | exp.Ceil):
        inner, up = b(node.this), isinstance(node, exp.Ceil)
        if node.args.get("decimals") is not None:
            raise Unsupported("floor/ceil to digits")
        return lambda f: _floor_ceil(inner(f), up)
    if isinstance(node, exp.Abs):
        inner = b(node.this)

        def abs_(f: Frame) -> Col:
            x = inner(f)
            if x.kind not in ("int", "dec", "float", "null"):
                raise Unsupported(f"abs of {x.kind}")
            v = np.asarray(x.v)
            if v.dtype.kind == "i" and v.dtype.itemsize < 8:  # abs of the narrow minimum
                v = v.astype(np.int64)
            return replace(x, v=np.abs(v))

        return abs_
    if isinstance(node, exp.Year | exp.Month | exp.Day):
        inner = b(node.this)
        part = {exp.Year: "year", exp.Month: "month", exp.Day: "day"}[type(node)]
        return lambda f: _date_part(inner(f), part)
    if isinstance(node, exp.Log):
        base, inner = b(node.this), b(node.expression)
        return lambda f: _log(base(f), inner(f))
    raise Unsupported(f"cannot vectorize {node.sql('duckdb')!r}")


def _case(node: exp.Case) -> Fn:
    subject = _build(node.this) if node.args.get("this") is not None else None
    branches = [(_build(i.this), _build(i.args["true"])) for i in node.args.get("ifs") or []]
    default = node.args.get("default")
    other = _build(default) if default is not None else (lambda f: NULL)

    def case(f: Frame) -> Col:
        x = subject(f) if subject is not None else None
        takes = []
        for cond, _ in branches:
            c = cond(f)
            takes.append(_is_true(c if x is None else _compare("=", x, c)))
        return _choose(f, takes, [value for _, value in branches], other)

    return case


# --- frames from and to Arrow ---------------------------------------------------------------
def _values(array: pa.Array, fill: Any) -> NDArray[Any]:
    """An array's values as numpy (NULL rows hold `fill`); no copy when there is no NULL."""
    if array.null_count:
        array = array.fill_null(fill)
    values: NDArray[Any] = array.to_numpy(zero_copy_only=False)
    return values


def _narrow(values: NDArray[Any]) -> NDArray[Any]:
    """Integers as they come when signed (no copy: an int32 input stays int32; arithmetic
    widens to int64 where a result could pass the narrow type, see `_widen`), else int64."""
    if values.dtype.kind == "i":
        return values
    return values.astype(np.int64)


def from_arrow(array: pa.Array | pa.ChunkedArray) -> Col:
    """A column of an Arrow array, in the representation above."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    t = array.type
    ok = None
    if array.null_count:
        ok = array.is_valid().to_numpy(zero_copy_only=False)
    if pa.types.is_dictionary(t):
        codes = _values(array.indices, 0).astype(np.int32)
        cats = tuple(str(c) for c in array.dictionary.to_pylist())
        return Col("str", codes, ok, cats=cats)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return from_arrow(array.dictionary_encode())
    if pa.types.is_boolean(t):
        return Col("bool", _values(array, False), ok)
    if pa.types.is_integer(t):
        v = _narrow(_values(array, 0))
        return Col("int", v, ok, bound=_measure(v, None))
    if pa.types.is_floating(t):
        return Col("float", _values(array, 0.0).astype(np.float64, copy=False), ok)
    if pa.types.is_date32(t):
        days = _values(array.view(pa.int32()), 0)
        return Col("date", days.astype(np.int64), ok)
    if pa.types.is_decimal(t) and t.bit_width == 128:
        words = np.frombuffer(array.buffers()[1], dtype=np.int64)
        words = words.reshape(-1, 2)[array.offset : array.offset + len(array)]
        low, high = words[:, 0].copy(), words[:, 1]
        if ok is not None:
            low[~ok] = 0
            high = np.where(ok, high, 0)
        if not np.array_equal(high, low >> 63):
            raise Unsupported("a decimal input passes 64 bits")
        return Col("dec", low, ok, t.scale, bound=_measure(low, None))
    raise Unsupported(f"an input of type {t}")


def from_numpy(values: NDArray[Any], null: NDArray[np.bool_]) -> Col:
    """A column of int or float values with a mask of the NULL rows."""
    ok = None if not bool(null.any()) else ~null
    if values.dtype.kind == "f":
        return Col("float", values, ok)
    if values.dtype.kind not in "iu":
        raise Unsupported(f"an input of dtype {values.dtype}")
    values = _narrow(values)
    return Col("int", values, ok, bound=_measure(values, None))


def _full(col: Col, n: int) -> tuple[NDArray[Any], Any]:
    v = np.asarray(col.v)
    if v.ndim == 0:
        v = np.full(n, v)
    ok = col.ok
    if ok is not None and np.ndim(ok) == 0:
        ok = None if bool(ok) else np.zeros(n, dtype=bool)
    return v, ok


def to_arrow(col: Col, t: pa.DataType, n: int) -> pa.Array:
    """An Arrow array of type `t` (as DuckDB would give the column)."""
    if col.err is not None and bool(np.any(col.err if col.ok is None else col.err & col.ok)):
        raise Unsupported("a result would have been an error")
    if col.kind == "null":
        return pa.nulls(n, type=t)
    v, ok = _full(col, n)
    mask = None if ok is None else ~ok
    if pa.types.is_boolean(t) and col.kind == "bool":
        return pa.array(v, type=t, mask=mask)
    if pa.types.is_integer(t) and col.kind in ("int", "bool"):
        return pa.array(v.astype(np.int64, copy=False), mask=mask).cast(t)
    if pa.types.is_floating(t) and col.kind in ("float", "int"):
        return pa.array(v.astype(np.float64, copy=False), mask=mask).cast(t)
    if pa.types.is_decimal(t) and col.kind in ("dec", "int"):
        if col.scale > t.scale:
            raise Unsupported("internal: a decimal result with more digits than its type")
        col = _rescale(col, t.scale)
        v, ok = _full(col, n)
        if col.bound >= 10**t.precision and _measure(v, ok) >= 10**t.precision:
            raise Unsupported("a decimal result does not fit its type")
        words = np.empty((n, 2), dtype=np.int64)
        words[:, 0] = v
        words[:, 1] = v >> 63
        validity = None if ok is None else pa.array(ok).buffers()[1]
        return pa.Array.from_buffers(
            t, n, [validity, pa.py_buffer(words)], null_count=-1 if ok is not None else 0
        )
    if pa.types.is_date32(t) and col.kind == "date":
        return pa.array(v.astype(np.int32), mask=mask).view(pa.date32())
    if col.kind == "str" and (pa.types.is_string(t) or pa.types.is_dictionary(t)):
        codes = pa.array(v.astype(np.int32, copy=False), mask=mask)
        array = pa.DictionaryArray.from_arrays(codes, pa.array(list(col.cats), pa.string()))
        return array if array.type == t else array.cast(t)
    raise Unsupported(f"a {col.kind} result as {t}")


# --- stages ---------------------------------------------------------------------------------
class Frame(dict[str, Col]):
    """Columns by name over `n` rows. A column is computed when first read: converted from
    the Arrow table, or from its definition (a step not computed yet), so a step read only
    inside a sparse CASE branch is computed only for that branch's rows (`subset`)."""

    def __init__(
        self,
        n: int,
        table: pa.Table | None = None,
        *,
        parent: Frame | None = None,
        rows: NDArray[np.intp] | None = None,
    ) -> None:
        super().__init__()
        self.n = n
        self.table = table
        self.parent = parent
        self.rows = rows  # a subset's rows in its parent
        self.defs: dict[str, Fn] = {} if parent is None else parent.defs

    def subset(self, rows: NDArray[np.intp]) -> Frame:
        return Frame(len(rows), parent=self, rows=rows)

    def __missing__(self, name: str) -> Col:
        parent = self.parent
        if parent is not None and self.rows is not None:
            if dict.__contains__(parent, name) or name not in self.defs:
                col = gather(parent[name], self.rows)
            else:
                col = self.defs[name](self)
        elif name in self.defs:
            col = self.defs[name](self)
        elif self.table is not None and name in self.table.column_names:
            col = from_arrow(self.table[name])
        else:
            raise Unsupported(f"internal: no column {name!r}")
        self[name] = col
        return col

    def has(self, name: str) -> bool:
        if dict.__contains__(self, name) or name in self.defs:
            return True
        return self.table is not None and name in self.table.column_names

    def define(self, layers: Iterable[Layer]) -> None:
        """Add the layers' columns as definitions, computed when first read. A column that
        replaces one of the same name is computed at once from the earlier value (after
        every pending definition that could read the earlier value)."""
        for layer in layers:
            replacing: dict[str, Col] = {}
            for column, sql in layer:
                fn = compile_sql(sql)
                if self.has(column):
                    new = fn(self)
                    if new is not self[column]:
                        replacing[column] = new
                else:
                    self.defs[column] = fn
            if replacing:
                for pending in list(self.defs):
                    if not dict.__contains__(self, pending):
                        self[pending]
                for column, col in replacing.items():
                    self.defs.pop(column, None)
                    self[column] = col


@dataclass
class Segments:
    """Persons sorted by family: where each family's rows start, and each row's family."""

    starts: NDArray[np.intp]
    family_of_row: NDArray[np.intp]
    sizes: NDArray[np.int64]

    @classmethod
    def of(cls, family_index: NDArray[np.int64]) -> Segments | None:
        """From each person row's family number; None unless families are contiguous."""
        n = len(family_index)
        if n == 0:
            return None
        if not bool(np.all(family_index[1:] >= family_index[:-1])):
            return None
        starts = np.flatnonzero(np.concatenate(([True], family_index[1:] != family_index[:-1])))
        sizes = np.diff(np.append(starts, n)).astype(np.int64)
        return cls(starts, family_index.astype(np.intp), sizes)

    def reduce(self, ufunc: np.ufunc, values: NDArray[Any]) -> NDArray[Any]:
        reduced: NDArray[Any] = ufunc.reduceat(values, self.starts)
        return reduced

    def total(self, values: NDArray[Any]) -> NDArray[np.int64]:
        """Per family sum of integers whose running total fits 64 bits (a cumulative sum
        and a difference at each family's end: cheaper than a reduction per family)."""
        running = np.cumsum(values, dtype=np.int64)
        at_end = running[self.starts + self.sizes - 1]
        totals: NDArray[np.int64] = np.diff(at_end, prepend=np.int64(0))
        return totals

    def count(self, rows: Any) -> NDArray[np.int64]:
        return self.total(np.asarray(rows))


def aggregate(spec: BoundAgg, frame: Frame, seg: Segments, n: int) -> Col:
    """One family aggregate (as `AggSpec.sql()` computes it) over the person frame."""
    guard = compile_sql(spec.guard)(frame)
    take = np.broadcast_to(_is_true(guard), (n,))
    if guard.err is not None and bool(np.any(guard.err)):
        raise Unsupported("an aggregate's filter would have been an error")
    if spec.kind == "count_star":
        counts = seg.count(take)
        return Col("int", counts, bound=int(seg.sizes.max(initial=0)))
    assert spec.arg is not None  # noqa: S101 - every other kind has an argument
    arg = compile_sql(spec.arg)(frame)
    if arg.err is not None and bool(np.any(np.asarray(arg.err) & take)):
        raise Unsupported("an aggregated value would have been an error")
    v, ok = _full(arg, n)
    present = take if ok is None else (take & ok)
    if spec.kind == "count":
        return Col("int", seg.count(present), bound=int(seg.sizes.max(initial=0)))
    if spec.kind in ("bool_or", "bool_and"):
        if arg.kind != "bool":
            raise Unsupported(f"{spec.kind} of {arg.kind}")
        hits = present & (v if spec.kind == "bool_or" else ~v)
        any_hit = seg.count(hits) > 0
        return Col("bool", any_hit if spec.kind == "bool_or" else ~any_hit)
    counts = seg.count(present)
    if spec.kind == "sum":
        if arg.kind in ("int", "dec"):
            bound = arg.bound * int(seg.sizes.max(initial=0))
            if bound >= LIMIT:
                raise Unsupported("a sum could pass 64 bits")
            terms = np.where(present, v, 0).astype(np.int64, copy=False)
            # The running total of `total` must fit too; else one reduction per family.
            sums = seg.total(terms) if arg.bound * n < LIMIT else seg.reduce(np.add, terms)
            if arg.kind == "int" and bool(np.any(np.abs(sums) > 2**53)):
                raise Unsupported("an integer sum past 2**53 (DuckDB sums it as DOUBLE)")
            return Col(arg.kind, sums, None, arg.scale, bound=bound)
        if arg.kind == "float":
            return Col("float", seg.reduce(np.add, np.where(present, v, 0.0)))
        raise Unsupported(f"sum of {arg.kind}")
    if spec.kind == "avg":
        if arg.kind not in ("int", "float", "dec"):
            raise Unsupported(f"avg of {arg.kind}")
        values = _as_float(replace(arg, v=v, ok=None)).v
        sums = seg.reduce(np.add, np.where(present, values, 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = sums / np.maximum(counts, 1)
        return Col("float", mean, counts > 0)
    if spec.kind in ("min", "max"):
        if arg.kind not in ("int", "dec", "float", "date", "str"):
            raise Unsupported(f"{spec.kind} of {arg.kind}")
        if arg.kind == "str":
            ordered = tuple(sorted(arg.cats))
            arg = _str_to(replace(arg, v=v), ordered)
            v = np.asarray(arg.v)
        if arg.kind == "float":
            fill = np.inf if spec.kind == "min" else -np.inf
            source = np.where(present, v, fill)
        else:
            info = np.iinfo(np.int64)
            fill = info.max if spec.kind == "min" else info.min
            source = np.where(present, v.astype(np.int64, copy=False), fill)
        ufunc = np.minimum if spec.kind == "min" else np.maximum
        values = seg.reduce(ufunc, source)
        has = counts > 0
        values = np.where(has, values, 0)
        if arg.kind == "str":
            values = values.astype(np.int32)
        return Col(arg.kind, values, has, arg.scale, arg.cats, arg.bound)
    raise Unsupported(f"aggregate {spec.kind}")


def aggregate_max(col: Col, seg: Segments) -> Col:
    """max() of an int column per family (NULL where every member's is NULL)."""
    v, ok = _full(col, len(seg.family_of_row))
    low = np.iinfo(np.int64).min
    source = v if ok is None else np.where(ok, v, low)
    top = seg.reduce(np.maximum, source.astype(np.int64, copy=False))
    has = top != low
    return Col("int", np.where(has, top, 0), None if bool(has.all()) else has, bound=col.bound)


def select_sources(columns: Iterable[str]) -> dict[str, str]:
    """Output name -> frame column of a select list ("f_family_region AS region")."""
    out: dict[str, str] = {}
    for column in columns:
        source, _, name = column.partition(" AS ")
        out[name or source] = source
    return out


def gather(col: Col, rows: NDArray[np.intp]) -> Col:
    """A family column on each person row (`rows`: each person's family number)."""
    v = np.asarray(col.v)
    if v.ndim == 0:
        return col
    ok = col.ok
    if ok is not None and np.ndim(ok):
        ok = np.asarray(ok)[rows]
    err = None if col.err is None else np.asarray(col.err)[rows]
    return replace(col, v=v[rows], ok=ok, err=err)


def table(frame: Frame, schema: pa.Schema, sources: Mapping[str, str], n: int) -> pa.Table:
    """The frame's columns as an Arrow table of `schema` (`sources`: output -> frame name)."""
    try:
        arrays = [to_arrow(frame[sources.get(f.name, f.name)], f.type, n) for f in schema]
        return pa.Table.from_arrays(arrays, schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        # A value that does not fit its column's type (e.g. past a 32-bit integer).
        raise Unsupported(f"a result does not convert to its type: {exc}") from exc
