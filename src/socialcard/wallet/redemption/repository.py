"""Redemption statements on PostgreSQL: one to claim and lock, one to write and answer.

They are plain SQL in psycopg's `%(name)s` style so that the same text runs on a SQLAlchemy
session (`exec_driver_sql`, the service) and on the hot path's raw async connection
(`redemption/fast.py`): one copy of the SQL, whatever the caller. SQLite runs the ledger's
statement-by-statement path instead (in-process, where a statement costs no round trip).
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy.orm import Session

from socialcard.wallet.types import Record

# Claims the idempotency key, then locks the voucher and its account, and reserves the hold's
# id, in one round trip. Races prevented: two requests with one key (the second insert waits on
# the unique index until the first commits, then claims nothing and locks nothing, so it never
# holds the voucher while waiting for the key); two redemptions of one voucher each reading the
# same balance, daily use or prescription (FOR UPDATE of both rows until commit). No row: the
# key was already claimed. A row with a null `id`: no voucher has this token.
CLAIM_AND_LOCK = """
WITH claim AS (
    INSERT INTO wallet_idempotency (scope, key, request_hash, status_code, created_at)
    VALUES (%(scope)s, %(key)s, %(request_hash)s, 0, %(now)s)
    ON CONFLICT (scope, key) DO NOTHING
    RETURNING id
), locked AS (
    SELECT v.id, v.account_id, v.type, v.status, v.nominal_minor, v.valid_from, v.valid_until,
           v.bound_merchant_id, v.fare_category, v.prescription, v.last_used_on, v.uses_on_day,
           a.balance_minor, a.held_minor, a.allow_negative
    FROM wallet_voucher v JOIN wallet_account a ON a.id = v.account_id
    WHERE v.token = %(token)s AND EXISTS (SELECT FROM claim)
    FOR UPDATE OF v, a
)
SELECT claim.id AS claim_id, nextval('wallet_hold_id_seq') AS hold_id, locked.*
FROM claim LEFT JOIN locked ON true
"""

# Writes an approved authorization: the hold (born captured for a one-step purchase), and when
# captured the posting with both entries; the wallet's balance or reservation; the voucher's
# use, prescription and status when they change; and the answer under the idempotency key.
WRITE_AUTHORIZATION = """
WITH h AS (
    INSERT INTO wallet_hold (id, account_id, voucher_id, merchant_id, terminal_id, amount_minor,
                             captured_minor, refunded_minor, status, lines, created_at,
                             expires_at, resolved_at)
    VALUES (CAST(%(hold_id)s AS BIGINT), CAST(%(account_id)s AS BIGINT),
            CAST(%(voucher_id)s AS BIGINT), CAST(%(merchant_id)s AS BIGINT), %(terminal_id)s,
            %(amount)s, CAST(%(captured)s AS BIGINT), 0, %(status)s, %(lines)s,
            CAST(%(now)s AS TIMESTAMPTZ), %(expires_at)s, %(resolved_at)s)
), p AS (
    INSERT INTO wallet_posting (kind, posted_at, hold_id, voucher_id, merchant_id)
    SELECT 'capture', CAST(%(now)s AS TIMESTAMPTZ), CAST(%(hold_id)s AS BIGINT),
           CAST(%(voucher_id)s AS BIGINT), CAST(%(merchant_id)s AS BIGINT)
    WHERE CAST(%(captured)s AS BIGINT) > 0
    RETURNING id
), e AS (
    INSERT INTO wallet_entry (posting_id, account_id, amount_minor)
    SELECT p.id, x.account_id, x.amount_minor
    FROM p, (VALUES (CAST(%(account_id)s AS BIGINT), -CAST(%(captured)s AS BIGINT)),
                    (CAST(%(merchant_account_id)s AS BIGINT), CAST(%(captured)s AS BIGINT)))
         AS x(account_id, amount_minor)
), a AS (
    UPDATE wallet_account
    SET balance_minor = balance_minor - CAST(%(captured)s AS BIGINT),
        held_minor = held_minor + CAST(%(held)s AS BIGINT)
    WHERE id = CAST(%(account_id)s AS BIGINT)
), v AS (
    UPDATE wallet_voucher
    SET status = COALESCE(%(voucher_status)s, status),
        last_used_on = COALESCE(%(last_used_on)s, last_used_on),
        uses_on_day = COALESCE(%(uses_on_day)s, uses_on_day),
        prescription = COALESCE(%(prescription)s, prescription)
    WHERE id = CAST(%(voucher_id)s AS BIGINT) AND CAST(%(voucher_changes)s AS BOOLEAN)
)
UPDATE wallet_idempotency SET status_code = 200, response = %(response)s WHERE id = %(claim_id)s
"""

# A declined authorization writes nothing but its answer.
STORE_ANSWER = """
UPDATE wallet_idempotency SET status_code = 200, response = %(response)s WHERE id = %(claim_id)s
"""


_PARAM = re.compile(r"%\((\w+)\)s")


def numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """`sql` with `%(name)s` turned into `$1, $2, ...` (asyncpg), and the names in that order.

    >>> numbered("SELECT %(a)s, %(b)s, %(a)s")
    ('SELECT $1, $2, $1', ('a', 'b'))
    """
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return _PARAM.sub(number, sql), tuple(names)


def claim_and_lock(session: Session, params: dict[str, Any]) -> Record | None:
    return session.connection().exec_driver_sql(CLAIM_AND_LOCK, params).first()


def write_authorization(session: Session, params: dict[str, Any]) -> None:
    session.connection().exec_driver_sql(WRITE_AUTHORIZATION, params)


def store_answer(session: Session, params: dict[str, Any]) -> None:
    session.connection().exec_driver_sql(STORE_ANSWER, params)
