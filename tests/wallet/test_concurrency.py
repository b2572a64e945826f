"""Concurrent redemptions through the service, one session per request, on committed data."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from socialcard.core.db import run_before_commit
from socialcard.wallet import service as wallet_service
from socialcard.wallet.ledger import repository as ledger_repository
from socialcard.wallet.merchants import service as merchant_service
from socialcard.wallet.merchants.service import TerminalContext
from socialcard.wallet.redemption import service as redemption_service
from socialcard.wallet.redemption.schemas import AuthorizationRead, AuthorizeRequest
from tests.wallet.factories import NOW, activate, food_items, fund, make_merchant, token_of

T = TypeVar("T")
WORKERS = 24  # below the engine's pool (10 + 20 overflow)


def _in_transaction(factory: sessionmaker[Session], work: Callable[[Session], T]) -> T:
    session = factory()
    try:
        result = work(session)
        run_before_commit(session)
        session.commit()
        return result
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _setup(engine: Engine, balance: int) -> tuple[TerminalContext, str, int]:
    factory = sessionmaker(bind=engine, expire_on_commit=False)

    def build(session: Session) -> tuple[TerminalContext, str, int]:
        _, terminal, _ = make_merchant(session)
        funded = fund(session, amount_minor=balance)
        activate(session, funded.voucher_id)
        return terminal, token_of(session, funded.voucher_id), funded.account_id

    return _in_transaction(factory, build)


def _run_at_once(count: int, call: Callable[[int], T]) -> list[T | BaseException]:
    barrier = threading.Barrier(min(count, WORKERS))

    def guarded(i: int) -> T | BaseException:
        if i < WORKERS:
            barrier.wait()
        try:
            return call(i)
        except BaseException as exc:  # collected: every failure is asserted on below
            return exc

    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        return list(pool.map(guarded, range(count)))


def _authorize(
    factory: sessionmaker[Session], terminal: TerminalContext, token: str, amount: int, key: str
) -> AuthorizationRead:
    request = AuthorizeRequest(
        token=token, items=food_items(amount), capture=True, allow_partial=False
    )
    return _in_transaction(
        factory,
        lambda s: redemption_service.authorize(
            s, terminal=terminal, idempotency_key=key, request=request, now=NOW
        ),
    )


def _check(engine: Engine) -> Any:
    with Session(engine) as session:
        return wallet_service.check(session)


class TestConcurrentRedemptions:
    def test_200_at_once_approve_exactly_balance_over_amount(
        self, committed_engine: Engine
    ) -> None:
        merchant_service.clear_terminal_cache()
        terminal, token, account_id = _setup(committed_engine, 73 * 1_000)
        factory = sessionmaker(bind=committed_engine, expire_on_commit=False)
        results = _run_at_once(200, lambda i: _authorize(factory, terminal, token, 1_000, f"r{i}"))
        errors = [r for r in results if isinstance(r, BaseException)]
        assert errors == []
        decisions = Counter(r.decision for r in results if isinstance(r, AuthorizationRead))
        assert decisions == {"approved": 73, "declined": 127}
        with Session(committed_engine) as session:
            account = ledger_repository.account_by_id(session, account_id)
            assert (account.balance_minor, account.held_minor) == (0, 0)
        assert _check(committed_engine).ok


class TestSameKeyAtOnce:
    def test_50_at_once_then_50_in_a_row_one_effect_identical_answers(
        self, committed_engine: Engine
    ) -> None:
        merchant_service.clear_terminal_cache()
        terminal, token, account_id = _setup(committed_engine, 10_000)
        factory = sessionmaker(bind=committed_engine, expire_on_commit=False)
        at_once = _run_at_once(50, lambda _: _authorize(factory, terminal, token, 1_500, "same"))
        in_a_row = [_authorize(factory, terminal, token, 1_500, "same") for _ in range(50)]
        answers = at_once + in_a_row
        assert not [a for a in answers if isinstance(a, BaseException)]
        assert len({a.model_dump_json() for a in answers if isinstance(a, AuthorizationRead)}) == 1
        with Session(committed_engine) as session:
            assert ledger_repository.account_by_id(session, account_id).balance_minor == 8_500
            assert ledger_repository.counts(session)["holds"] == 1
        changed = _run_at_once(10, lambda _: _authorize(factory, terminal, token, 1_600, "same"))
        assert {getattr(c, "code", None) for c in changed} == {"idempotency_key_reused"}
        assert _check(committed_engine).ok


class TestWriteMutex:
    def test_released_after_commit_and_after_an_error(self, committed_engine: Engine) -> None:
        from socialcard.wallet.ledger import repository

        merchant_service.clear_terminal_cache()
        terminal, token, _ = _setup(committed_engine, 10_000)
        factory = sessionmaker(bind=committed_engine, expire_on_commit=False)
        _authorize(factory, terminal, token, 1_000, "m1")
        assert not repository._WRITE_MUTEX.locked()
        results = _run_at_once(1, lambda _: _authorize(factory, terminal, token, 1_001, "m1"))
        assert getattr(results[0], "code", None) == "idempotency_key_reused"
        assert not repository._WRITE_MUTEX.locked()
        assert _authorize(factory, terminal, token, 1_000, "m2").decision == "approved"
