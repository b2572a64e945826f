"""Case-folded names for search: one rule (Unicode casefold) for every write path and query.

SQLite's `lower()` folds only ASCII and a PostgreSQL `lower()` depends on the database's
locale, so the registry stores each person's last and first name folded by Python
(`str.casefold`: Ә→ә, Ғ→ғ, Қ→қ, Ң→ң, Ө→ө, Ұ→ұ, Ү→ү, Һ→һ, І→і, Ё→ё, as well as Latin and
Russian letters) in `last_name_folded` / `first_name_folded`, indexed, and a name search folds
its prefix the same way and compares bytes (`prefix_bounds`). Every write of a name fills the
columns: the ORM (`Person`'s validators), the importers (`fold_table` on their Arrow chunks)
and the generator's bulk loader (`fold_array`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Pairs of (name column, folded column) of registry_person.
FOLDED_COLUMNS = (("last_name", "last_name_folded"), ("first_name", "first_name_folded"))
# Above every character: a folded prefix p bounds its matches to [p, p + _TOP) in byte order
# (UTF-8 byte order is code point order, which is what SQLite's BINARY collation and
# PostgreSQL's "C" collation compare).
_TOP = "\U0010ffff"


def fold_name(name: str) -> str:
    """A name as the search compares it."""
    return name.casefold()


def prefix_bounds(prefix: str) -> tuple[str, str]:
    """The half-open range [low, high) of folded names that start with `prefix`, folded."""
    low = fold_name(prefix)
    return low, low + _TOP


def fold_array(values: Any) -> Any:
    """Fold a column of names: a numpy object array (the generator's) or an Arrow array
    (the importers'; each distinct name folded once, names repeat)."""
    if isinstance(values, np.ndarray):
        folded = np.empty(len(values), dtype=object)
        folded[:] = [fold_name(v) for v in values.tolist()]
        return folded
    array = values if isinstance(values, pa.ChunkedArray | pa.Array) else pa.array(values)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    encoded = pc.dictionary_encode(array)
    dictionary = pa.array([fold_name(v) for v in encoded.dictionary.to_pylist()], type=array.type)
    return dictionary.take(encoded.indices)


def fold_table(table: Any) -> Any:
    """An Arrow table of persons with the folded columns set from its names."""
    for name, folded in FOLDED_COLUMNS:
        column = fold_array(table.column(name))
        index = table.schema.get_field_index(folded)
        if index >= 0:
            table = table.set_column(index, folded, column)
        else:
            table = table.append_column(folded, column)
    return table
