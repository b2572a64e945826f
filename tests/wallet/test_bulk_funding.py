"""The bulk funding path (funding_service.fund_orders) against funding one order at a time.

A batch must leave exactly what funding its orders one by one (each in its own transaction)
leaves: the same outcomes, vouchers, postings and budget balances; a re-run changes nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from socialcard.core.db import run_before_commit, session_scope
from socialcard.core.errors import AppError
from socialcard.wallet import service as wallet_service
from socialcard.wallet.funding import service as funding_service
from socialcard.wallet.funding.schemas import FundingOrder
from socialcard.wallet.ledger.models import Entry, Posting
from socialcard.wallet.vouchers.models import Voucher
from tests.factories import make_person
from tests.wallet.factories import NOW, PERIOD, REGION, allocate

_world = itertools.count(1)
BUDGET = 10_000

# One order: (key number, amount, person number (2 = unknown), benefit type).
order_specs = st.lists(
    st.tuples(
        st.integers(0, 5),
        st.sampled_from([1_000, 2_500, 4_000]),
        st.integers(0, 2),
        st.sampled_from(["food", "cash"]),
    ),
    min_size=1,
    max_size=12,
)


def _orders(
    world: str, specs: list[tuple[int, int, int, str]], persons: list[int]
) -> list[FundingOrder]:
    return [
        FundingOrder(
            idempotency_key=f"{world}-{key}",
            person_id=persons[who],
            program_id=f"kz.bulk_{world}",
            region_kato=REGION,
            amount_minor=amount,
            benefit_type=benefit,
            period=PERIOD,
        )
        for key, amount, who, benefit in specs
    ]


def _one_by_one(session: Session, orders: list[FundingOrder]) -> list[tuple[str, Any]]:
    """Each order in its own (nested) transaction, rolled back when refused."""
    outcomes: list[tuple[str, Any]] = []
    for order in orders:
        savepoint = session.begin_nested()
        try:
            result = funding_service.fund_order(
                session, idempotency_key=order.idempotency_key, request=order, now=NOW
            )
        except AppError as exc:
            savepoint.rollback()
            outcomes.append(("error", exc.code))
        else:
            savepoint.commit()
            outcomes.append(("ok", result))
    return outcomes


def _bulk(session: Session, orders: list[FundingOrder]) -> list[tuple[str, Any]]:
    done = funding_service.fund_orders(session, [(o.idempotency_key, o) for o in orders], now=NOW)
    return [("ok", o.result) if o.error is None else ("error", o.error.code) for o in done]


def _comparable(outcomes: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Outcomes without the ids (two worlds number their rows differently)."""
    return [
        (kind, (value.amount_minor, value.benefit_type, value.status) if kind == "ok" else value)
        for kind, value in outcomes
    ]


def _ledger_of(session: Session, program: str) -> dict[str, Any]:
    """The world's vouchers and postings, as content (ids and tokens left out)."""
    vouchers = session.execute(
        select(
            Voucher.person_id,
            Voucher.type,
            Voucher.status,
            Voucher.nominal_minor,
            Voucher.valid_from,
            Voucher.valid_until,
        )
        .where(Voucher.program_id == program)
        .order_by(Voucher.id)
    ).all()
    postings = session.execute(
        select(Posting.kind, Posting.memo, Entry.amount_minor)
        .join(Entry, Entry.posting_id == Posting.id)
        .join(Voucher, Voucher.id == Posting.voucher_id)
        .where(Voucher.program_id == program)
        .order_by(Posting.id, Entry.id)
    ).all()
    budget = funding_service.budget_balance(session, program_id=program, region_kato=REGION)
    return {
        "vouchers": sorted(tuple(v) for v in vouchers),
        "postings": sorted((kind, memo.split()[1], amount) for kind, memo, amount in postings),
        "budget": budget.balance_minor,
    }


class TestBulkFunding:
    @given(specs=order_specs)
    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    def test_a_batch_equals_one_by_one(
        self, session: Session, specs: list[tuple[int, int, int, str]]
    ) -> None:
        persons = [make_person(session).id, make_person(session).id, 2**40]
        n = next(_world)
        single, bulk = f"s{n}", f"b{n}"
        for world in (single, bulk):
            allocate(session, BUDGET, program=f"kz.bulk_{world}")

        by_one = _one_by_one(session, _orders(single, specs, persons))
        batch = _bulk(session, _orders(bulk, specs, persons))

        assert _comparable(batch) == _comparable(by_one)
        assert _ledger_of(session, f"kz.bulk_{bulk}") == _ledger_of(session, f"kz.bulk_{single}")
        # A re-run funds nothing twice and answers the same (refused orders are tried afresh
        # and refused again for the same reason).
        before = _ledger_of(session, f"kz.bulk_{bulk}")
        assert _bulk(session, _orders(bulk, specs, persons)) == _last_answers(batch, specs)
        assert _ledger_of(session, f"kz.bulk_{bulk}") == before
        assert wallet_service.check(session).ok

    def test_an_overdrawing_order_is_refused_and_the_rest_go_through(
        self, session: Session
    ) -> None:
        person = make_person(session).id
        allocate(session, 5_000, program="kz.bulk_over")
        orders = [
            FundingOrder(
                idempotency_key=f"over-{i}",
                person_id=person,
                program_id="kz.bulk_over",
                region_kato=REGION,
                amount_minor=amount,
                benefit_type="food",
                period=PERIOD,
            )
            for i, amount in enumerate([2_000, 4_000, 3_000])
        ]
        done = funding_service.fund_orders(
            session, [(o.idempotency_key, o) for o in orders], now=NOW
        )
        assert [o.error.code if o.error else "ok" for o in done] == [
            "ok",
            "budget_exhausted",
            "ok",
        ]
        assert done[1].error is not None
        assert "3000 tiyn, 4000 needed" in done[1].error.message
        budget = funding_service.budget_balance(
            session, program_id="kz.bulk_over", region_kato=REGION
        )
        assert budget.balance_minor == 0
        assert wallet_service.check(session).ok


def _last_answers(
    batch: list[tuple[str, Any]], specs: list[tuple[int, int, int, str]]
) -> list[tuple[str, Any]]:
    """What a re-run answers: each key's first funded result (a replay), else a conflict
    where the key was funded with another order, else the same refusal."""
    funded: dict[int, tuple[tuple[int, int, str], Any]] = {}
    for (key, amount, who, benefit), (kind, value) in zip(specs, batch, strict=True):
        if kind == "ok" and key not in funded:
            funded[key] = ((amount, who, benefit), value)
    answers: list[tuple[str, Any]] = []
    for (key, amount, who, benefit), (kind, value) in zip(specs, batch, strict=True):
        if key in funded:
            same = funded[key][0] == (amount, who, benefit)
            answers.append(("ok", funded[key][1]) if same else ("error", "idempotency_key_reused"))
        else:
            answers.append((kind, value))
    return answers


class TestConcurrentBatches:
    def test_two_batches_of_the_same_orders_at_once_fund_each_once(
        self, committed_engine: Engine
    ) -> None:
        """Two payers run the same 20 orders at once: each key is funded once, both get the
        same answers, the budget (15 of the 20 orders) never goes negative."""
        with Session(committed_engine) as session:
            person = make_person(session).id
            allocate(session, 15_000, program="kz.bulk_race")
            run_before_commit(session)
            session.commit()
        orders = [
            FundingOrder(
                idempotency_key=f"race-{i:02d}",
                person_id=person,
                program_id="kz.bulk_race",
                region_kato=REGION,
                amount_minor=1_000,
                benefit_type="food",
                period=PERIOD,
            )
            for i in range(20)
        ]
        factory = sessionmaker(bind=committed_engine, expire_on_commit=False)

        @contextmanager
        def new_session() -> Iterator[Session]:
            with factory() as session, session_scope(session):
                yield session

        def pay(reverse: bool) -> list[funding_service.FundingOutcome]:
            batch = orders[::-1] if reverse else orders
            done = funding_service.fund_in_chunks(
                batch, now=NOW, chunk_size=7, new_session=new_session
            )
            return done[::-1] if reverse else done

        with ThreadPoolExecutor(max_workers=2) as pool:
            first, second = pool.map(pay, (False, True))

        funded = {o.key: o.result for o in first + second if o.result is not None}
        assert len(funded) == 15
        for a, b in zip(first, second, strict=True):
            if a.result is not None and b.result is not None:
                assert a.result == b.result  # the later one replays the first answer
        with Session(committed_engine) as session:
            budget = funding_service.budget_balance(
                session, program_id="kz.bulk_race", region_kato=REGION
            )
            assert budget.balance_minor == 0
            vouchers = session.scalars(
                select(Voucher.id).where(Voucher.program_id == "kz.bulk_race")
            ).all()
            assert len(vouchers) == 15
            assert wallet_service.check(session).ok
