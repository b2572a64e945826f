"""Read the whole registry in a child process (SQLite) and hand it back as Arrow IPC files.

The ADBC SQLite driver links its own copy of SQLite. Two copies of SQLite in one process
break SQLite's POSIX file locks: when the driver closes the file it releases the locks of the
application's own connections and may delete the WAL under them ("locking protocol",
"disk I/O error"). In a child process the locks are the child's own.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
from sqlalchemy.engine import make_url

from socialcard.registry import snapshot as registry_snapshot


def read_registry(database_url: str) -> tuple[pa.Table, pa.Table]:
    """The whole registry as (person, fact): over ADBC in this process on PostgreSQL, in a
    child process on SQLite (memory-mapped back, no copy)."""
    if make_url(database_url).get_backend_name() != "sqlite":
        return registry_snapshot.registry_snapshot(database_url)
    with tempfile.TemporaryDirectory(prefix="socialcard-snapshot-") as folder:
        person_path = Path(folder) / "person.arrow"
        fact_path = Path(folder) / "fact.arrow"
        completed = subprocess.run(  # noqa: S603 (our own interpreter and module)
            [sys.executable, "-m", __name__, database_url, str(person_path), str(fact_path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(f"reading the registry failed: {completed.stderr.strip()[-2000:]}")
        return _read(person_path), _read(fact_path)


def _read(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        return ipc.open_file(source).read_all()


def _write(table: pa.Table, path: str) -> None:
    with pa.OSFile(path, "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def main(argv: list[str]) -> int:
    database_url, person_path, fact_path = argv
    person, fact = registry_snapshot.registry_snapshot(database_url)
    _write(person, person_path)
    _write(fact, fact_path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
