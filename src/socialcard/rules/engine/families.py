"""Which family each person row belongs to, known once the registry is loaded.

A whole-registry run's person result reads a few family values (`Bound.family_reads`). In SQL
that is a hash join of every person (3.3 M at 1 M families) to their family's result row;
with each person's family number fixed at load, it is one `take` per value instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

from socialcard.rules.engine.problems import EvaluationError


@dataclass
class FamilyIndex:
    """Each person row's family number, over the persons sorted by person_id."""

    index: NDArray[np.int64]  # person row -> family number
    keys: NDArray[np.int64]  # family number -> fkey (ascending)

    @classmethod
    def build(cls, persons: pa.Table) -> FamilyIndex:
        """From the prepared persons (sorted by person_id, each with an fkey)."""
        fkey = persons["fkey"].to_numpy().astype(np.int64)
        keys, index = np.unique(fkey, return_inverse=True)
        return cls(index.astype(np.int64), keys)

    def gather(self, family_rows: pa.Table, columns: list[str]) -> dict[str, pa.ChunkedArray]:
        """`columns` of `family_rows` (one row per fkey, any order) on every person's row."""
        fkey = family_rows["fkey"].to_numpy()
        sorter = np.argsort(fkey, kind="stable")
        at = np.searchsorted(fkey, self.keys, sorter=sorter)
        found = at < len(fkey)
        if len(fkey) != len(self.keys) or not (
            bool(found.all()) and np.array_equal(fkey[sorter[at]], self.keys)
        ):
            raise EvaluationError("internal: the family rows are not the loaded families")
        rows = sorter[at][self.index]
        return {c: family_rows[c].take(rows) for c in columns}
