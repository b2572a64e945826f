"""The audit log is a hash chain: `socialcard audit verify` finds every changed, inserted or
deleted row; concurrent writers keep one line; rows written before the chain are chained by
the migration."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, insert, select, text, update
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from socialcard.cli.main import app
from socialcard.core.db import session_scope
from socialcard.core.migrate import upgrade
from socialcard.security import service
from socialcard.security.enums import Purpose
from socialcard.security.models import AuditEvent, AuditHead
from socialcard.security.schemas import Actor
from tests.fixtures.db import store_at_revision

runner = CliRunner()
ACTOR = Actor(key_id=None, name="chain-test", role="operator", request_id="r")


def _write(rows: int, *, start: int = 1) -> None:
    with session_scope() as session:
        service.record_access(
            session,
            actor=ACTOR,
            action="person.read",
            subject_type="person",
            subject_ids=range(start, start + rows),
            purpose=Purpose.CASE_REVIEW,
        )


def _verify() -> tuple[int, str]:
    result = runner.invoke(app, ["audit", "verify"])
    return result.exit_code, result.stdout


@pytest.fixture
def chained(committed_engine: Engine) -> Engine:
    """Ten audit rows in three transactions, verified clean."""
    _write(3)
    _write(4, start=10)
    _write(3, start=20)
    assert _verify() == (0, "audit verify: clean (10 rows chained)\n")
    return committed_engine


def _tamper(engine: Engine, statement: object) -> None:
    with engine.begin() as conn:
        conn.execute(statement)  # type: ignore[call-overload]


class TestVerify:
    def test_a_changed_row_is_found(self, chained: Engine) -> None:
        _tamper(chained, update(AuditEvent).where(AuditEvent.seq == 5).values(purpose="audit"))
        code, out = _verify()
        assert code == 1
        assert "seq 5 (id" in out
        assert "changed after it was written" in out

    def test_a_changed_time_or_actor_is_found(self, chained: Engine) -> None:
        _tamper(
            chained,
            update(AuditEvent)
            .where(AuditEvent.seq == 2)
            .values(actor_key_id=None, actor_name="someone else"),
        )
        when = datetime(2020, 1, 1, tzinfo=UTC)
        _tamper(chained, update(AuditEvent).where(AuditEvent.seq == 7).values(at=when))
        code, out = _verify()
        assert code == 1
        assert "seq 2 (id" in out
        assert "seq 7 (id" in out

    def test_a_deleted_row_is_found(self, chained: Engine) -> None:
        _tamper(chained, AuditEvent.__table__.delete().where(AuditEvent.seq == 4))
        code, out = _verify()
        assert code == 1
        assert "seq 4..4: missing (rows deleted)" in out

    def test_rows_cut_off_the_end_are_found(self, chained: Engine) -> None:
        _tamper(chained, AuditEvent.__table__.delete().where(AuditEvent.seq >= 9))
        code, out = _verify()
        assert code == 1
        assert "seq 9..10: missing at the end (rows deleted)" in out

    def test_an_inserted_row_is_found(self, chained: Engine) -> None:
        with Session(chained) as session:
            last = session.scalars(select(AuditEvent).where(AuditEvent.seq == 10)).one()
            forged = {
                c.name: getattr(last, c.key) for c in AuditEvent.__table__.columns if c.name != "id"
            }
        forged |= {"seq": 11, "prev_hash": last.row_hash, "subject_id": 999, "row_hash": "f" * 64}
        _tamper(chained, insert(AuditEvent).values(**forged))
        code, out = _verify()
        assert code == 1
        assert "seq 11 (id" in out
        assert "seq 11..11: not recorded by the chain (rows inserted)" in out

    def test_renumbered_rows_are_found(self, chained: Engine) -> None:
        # Delete row 3 and shift the later rows down to hide the gap.
        _tamper(chained, AuditEvent.__table__.delete().where(AuditEvent.seq == 3))
        with chained.begin() as conn:
            for seq in range(4, 11):
                conn.execute(update(AuditEvent).where(AuditEvent.seq == seq).values(seq=seq - 1))
            conn.execute(update(AuditHead).values(seq=9))
        code, out = _verify()
        assert code == 1
        assert "not the row that was chained here" in out

    def test_auditors_verify_over_the_api(
        self, client: TestClient, auditor_headers: dict[str, str], operator_headers: dict[str, str]
    ) -> None:
        response = client.get("/api/v1/audit/verify", headers=auditor_headers)
        assert response.status_code == 200
        assert response.json()["ok"] is True
        assert client.get("/api/v1/audit/verify", headers=operator_headers).status_code == 403


class TestConcurrentWriters:
    def test_the_chain_stays_one_line(self, committed_engine: Engine) -> None:
        errors: list[BaseException] = []

        def writer(n: int) -> None:
            try:
                for i in range(15):
                    _write(2, start=n * 1000 + i * 2)
            except BaseException as exc:  # reported below
                errors.append(exc)

        def sealer() -> None:
            try:
                while any(t.is_alive() for t in threads[:6]):
                    with session_scope() as session:
                        service.seal_audit(session)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
        threads += [threading.Thread(target=sealer) for _ in range(2)]  # sealers at once
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        with session_scope() as session:
            service.seal_audit(session)
        with Session(committed_engine) as session:
            seqs = list(session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)))
            head = session.get(AuditHead, 1)
        assert seqs == list(range(1, 181))
        assert head is not None
        assert head.seq == 180
        assert _verify() == (0, "audit verify: clean (180 rows chained)\n")


@pytest.fixture
def old_store(backend: str, tmp_path: Path) -> Iterator[Engine]:
    """A store of its own at the revision before the chain."""
    with store_at_revision(backend, tmp_path, "chain_migration", "0008") as engine:
        yield engine


def test_the_migration_chains_the_rows_written_before_it(old_store: Engine) -> None:
    with old_store.begin() as conn:
        for subject in (7, 8, 9):
            conn.execute(
                text(
                    "INSERT INTO security_audit_event (at, actor_name, actor_role, action, "
                    "subject_type, subject_id, purpose, request_id) VALUES "
                    "(:at, 'op', 'operator', 'person.read', 'person', :s, 'audit', 'client-id')"
                ),
                {"at": datetime(2026, 11, 30, 12, 0, tzinfo=UTC), "s": subject},
            )
    upgrade(old_store)
    with Session(old_store) as session:
        session.info.clear()
        service.record_access(
            session, actor=ACTOR, action="x", subject_type="person", subject_ids=[1],
            purpose=Purpose.AUDIT,
        )  # fmt: skip
        service.flush_audit(session)
        session.commit()
        service.seal_audit(session)
        session.commit()
        check = service.verify_audit_chain(session)
        seqs = list(session.scalars(select(AuditEvent.seq).order_by(AuditEvent.id)))
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 4
    assert (check.ok, check.rows, check.problems) == (True, 4, [])
    assert seqs == [1, 2, 3, 4]


def test_rows_not_sealed_yet_are_protected_by_their_mac(chained: Engine) -> None:
    with Session(chained) as session:
        last = session.scalars(select(AuditEvent).where(AuditEvent.seq == 10)).one()
        row = {c.name: getattr(last, c.key) for c in AuditEvent.__table__.columns if c.name != "id"}
    forged = row | {"seq": None, "prev_hash": None, "row_hash": None, "chain_key_id": None}
    _tamper(chained, insert(AuditEvent).values(**(forged | {"subject_id": 4242})))
    with Session(chained) as session:
        result = service.verify_audit_chain(session)  # what GET /api/v1/audit/verify answers
    assert (result.ok, result.pending) == (False, 1)
    assert any(p.startswith("unsealed row id") and "changed" in p for p in result.problems)


@pytest.mark.usefixtures("postgres_only")
def test_a_running_server_seals_what_it_writes(committed_engine: Engine, database_url: str) -> None:
    import httpx

    from tests.factories import make_person
    from tests.wallet.server import free_port, start_server, stop_server

    with session_scope() as session:
        person_id = make_person(session).id
        key = service.create_api_key(session, name="op", role="operator").key
    port = free_port()
    server = start_server(
        database_url, port, env={"SOCIALCARD_SECURITY__AUDIT_SEAL_SECONDS": "0.2"}
    )
    try:
        url = f"http://127.0.0.1:{port}/api/v1/persons/{person_id}?purpose=audit"
        assert httpx.get(url, headers={"X-API-Key": key}).status_code == 200
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with Session(committed_engine) as session:
                unsealed = session.scalar(
                    select(func.count()).where(AuditEvent.seq.is_(None)).select_from(AuditEvent)
                )
            if unsealed == 0:
                break
            time.sleep(0.2)
        assert unsealed == 0
    finally:
        stop_server(server)
    with Session(committed_engine) as session:
        check = service.verify_audit_chain(session)
    assert (check.ok, check.pending) == (True, 0)
    assert check.rows >= 2  # the key's creation and the read
