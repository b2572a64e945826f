"""Per-person fact aggregates of a period in numpy, over facts prepared once at load time.

The batch's first stage is one row per person: the person columns and the period's fact
aggregates (`FACT_AGGS`). In SQL that is a GROUP BY over the facts and a hash join to the
persons; here the facts are kept sorted by the person's row number in the (sorted) person
table, so each aggregate is one masked vector expression and one segment reduction, and the
result lines up with the person rows without any join. The semantics are those of the SQL in
`builtins.FACT_AGGS`, NULLs included (an aggregate over no row is NULL), and the agreement
test checks the two against each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from socialcard.rules.engine.builtins import (
    CARER_CONTRIBUTION_CODE,
    CONTRIBUTION_CODE,
    FACT_AGGS,
    INCOME_AGGS,
    RAISED8_CODE,
)

_I64_MIN = np.iinfo(np.int64).min


class _Spec(NamedTuple):
    op: str  # "sum", "max" or "or"
    value: str  # "amt", "qty", "vf", "bit" or "one" (days)
    low: int  # codes low..high
    high: int
    window: tuple[str, str] | None  # placeholders of a window weighting by days; None: live


_PERIOD = ("zzper_ps_d", "zzper_pe_d")
_FIXED = {
    "flags": _Spec("or", "bit", 0, 127, None),
    "unemp_since": _Spec("max", "vf", 5, 5, None),
    "pens_years": _Spec("max", "qty", 18, 18, None),
    "re_cnt": _Spec("max", "qty", 19, 19, None),
    "veh_cnt": _Spec("max", "qty", 20, 20, None),
    "cons_amt": _Spec("max", "amt", 21, 21, None),
    "r8_cnt": _Spec("max", "qty", RAISED8_CODE, RAISED8_CODE, None),
    "wb_lvl": _Spec("max", "qty", 28, 28, None),
    "wb_lvl_run": _Spec("max", "amt", 28, 28, None),
    "wb_cat": _Spec("max", "qty", 29, 29, None),
    "wb_cat_run": _Spec("max", "amt", 29, 29, None),
    "inc_m": _Spec("sum", "amt", 1, 4, _PERIOD),
    "wag_m": _Spec("sum", "amt", 1, 1, _PERIOD),
    "inc_q": _Spec("sum", "amt", 1, 4, ("zzper_qs_d", "zzper_qe_d")),
}


def fact_spec(name: str) -> _Spec:
    """What a `FACT_AGGS` aggregate computes (the windowed ones follow their name)."""
    if name in _FIXED:
        return _FIXED[name]
    kind, _, span = name.partition("_")
    months = span.removesuffix("m")
    window = (f"zzper_w{months}s_d", "zzper_we_d")
    if kind in ("idays", "cdays"):
        code = CONTRIBUTION_CODE if kind == "idays" else CARER_CONTRIBUTION_CODE
        return _Spec("sum", "one", code, code, window)
    high = 4 if kind == "inc" else 1
    value = "one" if kind == "wdays" else "amt"
    return _Spec("sum", value, 1, high, window)


def person_rows(
    person_ids: NDArray[np.int64], pid: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
    """Each id of `pid`'s row in `person_ids` (0 where absent) and whether it is there."""
    pos = np.zeros(len(pid), dtype=np.int64)
    known = np.zeros(len(pid), dtype=bool)
    if not len(person_ids):
        return pos, known
    low, high = int(person_ids.min()), int(person_ids.max())
    if low >= 0 and high <= 4 * len(person_ids) + 1024:
        # Dense ids (a registry's keys): a direct table, one gather instead of a search.
        row_of = np.full(high + 2, -1, dtype=np.int64)
        # Written last to first: a repeated id keeps its first row, as the search below does.
        row_of[person_ids[::-1]] = np.arange(len(person_ids) - 1, -1, -1, dtype=np.int64)
        found = row_of[np.clip(pid, -1, high + 1)]  # -1 and ids past the end: row -1
        known = found >= 0
        pos[known] = found[known]
        return pos, known
    sorter = np.argsort(person_ids, kind="stable")
    at = np.searchsorted(person_ids, pid, sorter=sorter)
    inside = at < len(person_ids)
    pos[inside] = sorter[at[inside]]
    known[inside] = person_ids[pos[inside]] == pid[inside]
    return pos, known


def _runs(pidx: NDArray[np.int64]) -> NDArray[np.intp]:
    """Where each person's run of facts starts (the facts sorted by person row)."""
    if not len(pidx):
        return np.zeros(0, dtype=np.intp)
    return np.flatnonzero(np.concatenate(([True], pidx[1:] != pidx[:-1])))


@dataclass
class _Facts:
    """Facts (all, or those of a range of codes) sorted by their person's row."""

    rows: int  # persons
    pidx: NDArray[np.int64]
    code: NDArray[np.int8]
    vf: NDArray[np.int32]
    vt: NDArray[np.int32]
    amt: NDArray[np.float64]
    amt_int: NDArray[np.int64]
    amt_ok: NDArray[np.bool_]
    qty: NDArray[np.int64]
    qty_ok: NDArray[np.bool_]
    bit: NDArray[np.int64]
    starts: NDArray[np.intp]  # first fact of each person that has facts here
    owners: NDArray[np.int64]  # that person's row

    def subset(self, rows: NDArray[np.intp]) -> _Facts:
        pidx = self.pidx[rows]
        starts = _runs(pidx)
        return _Facts(
            self.rows,
            pidx,
            self.code[rows],
            self.vf[rows],
            self.vt[rows],
            self.amt[rows],
            self.amt_int[rows],
            self.amt_ok[rows],
            self.qty[rows],
            self.qty_ok[rows],
            self.bit[rows],
            starts,
            pidx[starts],
        )

    def spread(self, per_owner: NDArray, fill: object) -> NDArray:  # type: ignore[type-arg]
        """Values per person with facts here, as a column over every person."""
        out = np.full(self.rows, fill, dtype=per_owner.dtype)
        out[self.owners] = per_owner
        return out

    def reduce(self, ufunc: np.ufunc, values: NDArray) -> NDArray:  # type: ignore[type-arg]
        if not len(values):
            return values
        return ufunc.reduceat(values, self.starts)


class FactArrays:
    """The prepared facts as arrays, sorted by the row of their person in the person table."""

    def __init__(self, person_ids: NDArray[np.int64], fact: pa.Table) -> None:
        """`person_ids` the person table's ids in its row order; `fact` the prepared facts."""
        pid = fact["person_id"].fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        pos, known = person_rows(person_ids, pid)
        # A fact without a start date matches no period (the SQL's `vf <= end` is NULL).
        known &= fact["vf"].is_valid().to_numpy(zero_copy_only=False)
        order = np.flatnonzero(known)
        keys = pos[order]
        if len(keys) > 1 and not bool(np.all(keys[1:] >= keys[:-1])):
            order = order[np.argsort(keys, kind="stable")]

        def col(name: str, dtype: type) -> tuple[NDArray, NDArray[np.bool_]]:  # type: ignore[type-arg]
            chunked = fact[name]
            valid = chunked.is_valid().to_numpy(zero_copy_only=False)[order]
            values = chunked.fill_null(0).to_numpy(zero_copy_only=False)[order]
            values = values.astype(dtype, copy=False)
            return values, valid

        amt_int, amt_ok = col("amt", np.int64)
        qty, qty_ok = col("qty", np.int64)
        pidx = pos[order].astype(np.int64)
        starts = _runs(pidx)
        self.all = _Facts(
            len(person_ids),
            pidx,
            col("code", np.int8)[0],
            col("vf", np.int32)[0],
            col("vt", np.int32)[0],
            amt_int.astype(np.float64),
            amt_int,
            amt_ok,
            qty,
            qty_ok,
            col("bit", np.int64)[0],
            starts,
            pidx[starts],
        )
        self._by_codes: dict[tuple[int, int], _Facts] = {}
        for name in FACT_AGGS:
            spec = fact_spec(name)
            if spec.op != "or":
                self.codes(spec.low, spec.high)

    def codes(self, low: int, high: int) -> _Facts:
        """The facts whose code is in [low, high] (cached: the split is period-independent)."""
        found = self._by_codes.get((low, high))
        if found is None:
            code = self.all.code
            rows = np.flatnonzero((code >= low) & (code <= high))
            found = self._by_codes[(low, high)] = self.all.subset(rows)
        return found

    def aggregate(self, names: list[str], literals: Mapping[str, str]) -> dict[str, pa.Array]:
        """The named aggregates of `FACT_AGGS` for the period whose literals are given."""
        return {
            name: pa.array(values, mask=empty)
            for name, (values, empty) in self.aggregate_arrays(names, literals).items()
        }

    def aggregate_arrays(
        self, names: list[str], literals: Mapping[str, str]
    ) -> dict[str, tuple[NDArray[Any], NDArray[np.bool_]]]:
        """`aggregate` as numpy: per name the values and where they are NULL."""
        ps, pe = int(literals["zzper_ps_d"]), int(literals["zzper_pe_d"])
        lookback = int(literals.get("zzper_lookback", ps))
        # The SQL's WHERE: an income fact counts back to the lookback, others when live.
        incomes = any(n in INCOME_AGGS for n in names)
        out: dict[str, tuple[NDArray[Any], NDArray[np.bool_]]] = {}
        for name in names:
            op, value, low, high, window = fact_spec(name)
            facts = self.all if op == "or" else self.codes(low, high)
            vf, vt = facts.vf, facts.vt
            if window is None or not incomes:
                mask = (vf <= pe) & (vt >= ps)
            else:
                back = (facts.code <= 4) | (
                    (facts.code >= CONTRIBUTION_CODE) & (facts.code <= CARER_CONTRIBUTION_CODE)
                )
                mask = (vf <= pe) & ((vt >= ps) | (back & (vt >= lookback)))
            if value == "amt":
                mask &= facts.amt_ok
            elif value == "qty":
                mask &= facts.qty_ok
            empty = facts.spread(~facts.reduce(np.logical_or, mask), True)
            if window is not None:
                start, end = int(literals[window[0]]), int(literals[window[1]])
                days = np.minimum(vt, end) - np.maximum(vf, start) + 1
                np.maximum(days, 0, out=days)
                days[~mask] = 0
                weighted = days * facts.amt if value == "amt" else days.astype(np.float64)
                sums = facts.spread(facts.reduce(np.add, weighted), 0.0)
                out[name] = (sums.astype(np.float64, copy=False), empty)
            elif op == "or":
                bits = facts.spread(facts.reduce(np.bitwise_or, np.where(mask, facts.bit, 0)), 0)
                out[name] = (bits.astype(np.int64, copy=False), empty)
            else:
                sources: dict[str, NDArray[np.int64] | NDArray[np.int32]] = {
                    "vf": vf,
                    "qty": facts.qty,
                    "amt": facts.amt_int,
                }
                source = sources[value]
                top = facts.reduce(np.maximum, np.where(mask, source, _I64_MIN))
                kind = np.int64 if value == "amt" else np.int32
                spread = facts.spread(np.where(top == _I64_MIN, 0, top).astype(kind), 0)
                out[name] = (spread, empty)
        return out
