"""The audit log's hash chain.

Each row carries `row_mac`, an HMAC of its fields under the keyring's `audit_chain` key (kept
outside the database: a row cannot be changed or forged without it). Sealing puts the rows in
one line: in `seq` order, `row_hash` = HMAC(previous row's hash, seq, row_mac), and the chain's
head row records the last seq and hash, so a changed, inserted, deleted or renumbered row, or
rows cut off the end, break it (`verify`).

Who seals, and when, is the one choice that depends on the store:

- SQLite has one writer at a time: a transaction seals its own rows as it commits (it already
  holds the write lock), so every committed row is sealed.
- PostgreSQL has many: sealing at commit would serialise every audited request on the head row
  until its commit's flush to disk (measured: the audited family read's p50 went from 7 ms to
  4.5 s at 200/s). Requests write sealed-to-be rows (`row_mac` only, no lock), and one sealer at
  a time (an advisory lock) chains the committed rows in id order (`seal_pending`): a thread of
  each server process every `security.audit_seal_seconds`, and `socialcard audit verify`. Until
  sealed (about a second with a server running), a row is protected by its MAC against change
  and forgery, not against deletion.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from socialcard.core.db import is_sqlite
from socialcard.core.logging import get_logger
from socialcard.security import keyring, repository
from socialcard.security.keyring import Key
from socialcard.security.schemas import ChainCheck

log = get_logger(__name__)

GENESIS = "0" * 64
# The fields a row's MAC covers (its place in the chain is covered by the link).
FIELDS = (
    "at",
    "actor_key_id",
    "actor_name",
    "actor_role",
    "action",
    "subject_type",
    "subject_id",
    "purpose",
    "request_id",
    "client_request_id",
    "detail",
)
MAX_PROBLEMS = 200
SEAL_BATCH = 20_000


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(row: Mapping[Any, Any]) -> bytes:
    """The row's fields as one unambiguous byte string."""
    values = [_instant(row[f]) if f == "at" else row[f] for f in FIELDS]
    return json.dumps(values, ensure_ascii=False, separators=(",", ":")).encode()


def row_mac(key: Key, row: Mapping[Any, Any]) -> str:
    """The row's own MAC."""
    return key.mac(canonical(row)).hex()


def link(key: Key, prev_hash: str, seq: int, mac: str) -> str:
    """The row's place in the chain: HMAC over the previous hash, its seq and its MAC."""
    return key.mac(f"{prev_hash}\n{seq}\n{mac}".encode()).hex()


def append(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert audit rows (the caller commits right after): MAC'd, and on SQLite sealed."""
    if not rows:
        return
    key = keyring.keyset("audit_chain").current
    for row in rows:
        row["row_mac"] = row_mac(key, row)
        row["key_id"] = key.id
        row["seq"] = row["prev_hash"] = row["row_hash"] = row["chain_key_id"] = None
    if is_sqlite(session):
        # The head's UPDATE takes the write lock, held to the commit: one writer, one line.
        last, prev = repository.advance_audit_head(session, len(rows))
        for offset, row in enumerate(rows):
            seq = last - len(rows) + 1 + offset
            row["seq"], row["prev_hash"], row["chain_key_id"] = seq, prev, key.id
            prev = row["row_hash"] = link(key, prev, seq, row["row_mac"])
        repository.set_audit_head_hash(session, prev)
    repository.insert_audit_events(session, rows)


def seal_pending(session: Session, *, limit: int = SEAL_BATCH) -> int:
    """Chain committed rows not chained yet, in id order; returns how many. One sealer at a
    time: another one holding the chain's lock makes this a no-op."""
    if not repository.try_chain_lock(session):
        return 0
    pending = repository.unsealed_audit_rows(session, limit)
    if not pending:
        return 0
    key = keyring.keyset("audit_chain").current
    last, prev = repository.advance_audit_head(session, len(pending))
    updates = []
    for offset, (row_id, mac) in enumerate(pending):
        seq = last - len(pending) + 1 + offset
        row_hash = link(key, prev, seq, mac)
        updates.append(
            {"b_id": row_id, "seq": seq, "prev_hash": prev, "row_hash": row_hash, "ck": key.id}
        )
        prev = row_hash
    repository.seal_audit_rows(session, updates)
    repository.set_audit_head_hash(session, prev)
    return len(pending)


def verify(session: Session) -> ChainCheck:
    """Recompute the chain and every row's MAC: report each changed, inserted or deleted
    row; rows not sealed yet are counted and their MACs checked."""
    keys = keyring.keyset("audit_chain")
    problems: list[str] = []
    expected, prev, count = 1, GENESIS, 0
    for chunk in repository.audit_chain_rows(session):
        for row in chunk:
            count += 1
            where = f"seq {row.seq} (id {row.id})"
            if row.seq > expected:
                problems.append(f"seq {expected}..{row.seq - 1}: missing (rows deleted)")
            elif row.seq < expected:
                problems.append(f"{where}: out of order or repeated")
            elif row.prev_hash != prev:
                problems.append(
                    f"{where}: does not follow the row before it "
                    "(a row was inserted, changed or deleted before it)"
                )
            problems.extend(_row_problems(keys, row, where))
            chain_key = keys.key(row.chain_key_id or "")
            if chain_key is None:
                problems.append(f"{where}: unknown chain key {row.chain_key_id}")
            elif link(chain_key, row.prev_hash or "", row.seq, row.row_mac) != row.row_hash:
                problems.append(f"{where}: not the row that was chained here")
            prev, expected = row.row_hash, max(expected, row.seq + 1)
    head = repository.audit_head(session)
    last = expected - 1
    if head is None:
        if count:
            problems.append("the chain's head row is missing")
    elif head.seq > last:
        problems.append(f"seq {last + 1}..{head.seq}: missing at the end (rows deleted)")
    elif head.seq < last:
        problems.append(f"seq {head.seq + 1}..{last}: not recorded by the chain (rows inserted)")
    elif head.row_hash != prev:
        problems.append(f"seq {last}: the last row is not the one the chain recorded")
    pending = 0
    for chunk in repository.unsealed_rows_full(session):
        for row in chunk:
            pending += 1
            problems.extend(_row_problems(keys, row, f"unsealed row id {row.id}"))
    if len(problems) > MAX_PROBLEMS:
        problems = [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more"]
    return ChainCheck(ok=not problems, rows=count, pending=pending, problems=problems)


def _row_problems(keys: keyring.KeySet, row: Any, where: str) -> list[str]:
    key = keys.key(row.key_id)
    if key is None:
        return [f"{where}: unknown key {row.key_id}"]
    if row_mac(key, row._mapping) != row.row_mac:
        return [f"{where}: changed after it was written"]
    return []


class Sealer:
    """A thread that seals committed audit rows every `interval` seconds (PostgreSQL)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="audit-sealer", daemon=True)

    def start(self) -> Sealer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)

    def _run(self) -> None:
        from socialcard.core.db import session_scope

        while not self.stopped.is_set():
            sealed = 0
            try:
                with session_scope() as session:
                    sealed = seal_pending(session)
            except Exception:  # the next round tries again; a request never waits on this
                log.exception("audit_seal_failed")
            if sealed < SEAL_BATCH:
                self.stopped.wait(self.interval)
