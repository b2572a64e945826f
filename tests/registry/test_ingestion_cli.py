"""`socialcard import`: summary, one line per rejected row, exit codes, no tracebacks."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from socialcard.cli.main import app
from socialcard.registry.ingestion.cli import EXIT_QUARANTINED, EXIT_REFUSED
from socialcard.registry.models import Batch, Person
from tests.registry.factories_ingestion import (
    bad_check_digit,
    many_person_rows,
    person_row,
    write_csv,
    write_parquet,
)

runner = CliRunner()


def _persons(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(Person)) or 0)


@pytest.fixture
def store(committed_engine: Engine) -> Engine:
    return committed_engine


class TestImportCommand:
    def test_clean_file_exits_0_with_a_summary(self, store: Engine, tmp_path: Path):
        path = write_csv(tmp_path / "p.csv", [person_row(), person_row()])

        result = runner.invoke(app, ["import", "persons", str(path)])

        assert result.exit_code == 0, result.output
        assert "2 rows, 2 accepted, 0 rejected" in result.stdout
        assert _persons(store) == 2

    def test_rejected_rows_are_listed_and_exit_is_3(self, store: Engine, tmp_path: Path):
        bad = person_row()
        bad["national_id"] = bad_check_digit(bad["national_id"])
        path = write_csv(tmp_path / "p.csv", [person_row(), bad, person_row()])

        result = runner.invoke(app, ["import", "persons", str(path)])

        assert result.exit_code == EXIT_QUARANTINED, result.output
        assert "1 rejected" in result.stdout
        assert "row 3: national_id: check digit does not match" in result.stdout
        assert _persons(store) == 2

    def test_many_rejects_are_capped_with_a_pointer_to_the_quarantine(
        self, store: Engine, tmp_path: Path
    ):
        rows = many_person_rows(80)
        for row in rows[:60]:
            row["sex"] = "?"
        path = write_csv(tmp_path / "p.csv", rows)

        result = runner.invoke(app, ["import", "persons", str(path)])

        assert result.exit_code == EXIT_QUARANTINED
        assert result.stdout.count("\nrow ") == 50
        with Session(store) as session:
            batch_id = session.scalars(select(Batch.id)).one()
        assert f"… and 10 more, see quarantine of batch {batch_id}" in result.stdout

    def test_resend_says_nothing_changed(self, store: Engine, tmp_path: Path):
        path = write_csv(tmp_path / "p.csv", [person_row()])
        runner.invoke(app, ["import", "persons", str(path)])

        result = runner.invoke(app, ["import", "persons", str(path)])

        assert result.exit_code == 0
        assert "already loaded" in result.stdout
        assert _persons(store) == 1

    def test_same_key_other_content_exits_1(self, store: Engine, tmp_path: Path):
        first = write_csv(tmp_path / "a.csv", [person_row()])
        second = write_csv(tmp_path / "b.csv", [person_row()])
        runner.invoke(app, ["import", "persons", str(first), "--batch-key", "k1"])

        result = runner.invoke(app, ["import", "persons", str(second), "--batch-key", "k1"])

        assert result.exit_code == EXIT_REFUSED
        assert "error: batch key 'k1'" in result.stderr

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (b"", "is empty"),
            (b"national_id,last_name\n", "missing required columns"),
            (
                b"national_id,first_name,last_name,birth_on,sex,region_kato,shoe\n1,a,b,c,d,e,f\n",
                "unknown columns: 'shoe'",
            ),
        ],
    )
    def test_refused_files_exit_1_with_one_line_and_no_traceback(
        self, store: Engine, tmp_path: Path, content: bytes, message: str
    ):
        path = tmp_path / "p.csv"
        path.write_bytes(content)

        result = runner.invoke(app, ["import", "persons", str(path)])

        assert result.exit_code == EXIT_REFUSED
        assert message in result.stderr
        assert result.stderr.strip().count("\n") == 0
        assert "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)

    def test_missing_file_unknown_source_and_bad_format_exit_1(self, store: Engine, tmp_path: Path):
        path = write_csv(tmp_path / "p.csv", [person_row()])
        cases = [
            (["import", "persons", str(tmp_path / "nope.csv")], "no such file"),
            (["import", "horoscopes", str(path)], "unknown source"),
            (["import", "persons", str(path), "--format", "xlsx"], "unknown format"),
        ]
        for args, message in cases:
            result = runner.invoke(app, args)
            assert result.exit_code == EXIT_REFUSED, args
            assert message in result.stderr

    def test_truncated_parquet_exits_1(self, store: Engine, tmp_path: Path):
        path = write_parquet(tmp_path / "p.parquet", [person_row() for _ in range(20)])
        path.write_bytes(path.read_bytes()[:300])

        result = runner.invoke(app, ["import", "persons", str(path)])

        assert result.exit_code == EXIT_REFUSED
        assert "not a readable Parquet file" in result.stderr

    def test_a_break_part_way_commits_earlier_chunks_and_exits_1(
        self, store: Engine, tmp_path: Path
    ):
        path = write_csv(tmp_path / "p.csv", many_person_rows(3_000))
        data = path.read_bytes()
        path.write_bytes(data[:-150] + b"\xff" + data[-150:])

        result = runner.invoke(app, ["import", "persons", str(path), "--chunk-rows", "500"])

        assert result.exit_code == EXIT_REFUSED
        assert "marked failed" in result.stderr
        assert 0 < _persons(store) < 3_000
        with Session(store) as session:
            assert session.scalars(select(Batch.status)).one() == "failed"

    def test_agency_option_is_recorded(self, store: Engine, tmp_path: Path):
        path = write_csv(tmp_path / "p.csv", [person_row()])

        result = runner.invoke(app, ["import", "persons", str(path), "--agency", "cr_almaty"])

        assert result.exit_code == 0
        assert "(persons/cr_almaty, loaded)" in result.stdout
