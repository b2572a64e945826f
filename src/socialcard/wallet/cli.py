"""`socialcard wallet ...`: check, fund, budgets, merchants, expiry, settlement, statistics."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import typer
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from socialcard.core.db import session_scope
from socialcard.core.errors import AppError
from socialcard.security import service as security_service
from socialcard.security.cli import API_KEY_OPTION, key_actor
from socialcard.wallet import approvals as wallet_approvals
from socialcard.wallet import service
from socialcard.wallet.funding.schemas import BudgetAllocation, FundingOrder
from socialcard.wallet.merchants import service as merchant_service
from socialcard.wallet.merchants.schemas import MerchantCreate
from socialcard.wallet.redemption import service as redemption_service
from socialcard.wallet.vouchers import service as voucher_service

console = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    console.print(f"error: {message}")
    return typer.Exit(2)


def _read_orders(path: Path) -> list[dict[str, object]]:
    if _is_csv(path):
        with path.open(newline="", encoding="utf-8") as handle:
            return [
                {k: v for k, v in row.items() if v not in ("", None)}
                for row in csv.DictReader(handle)
            ]
    data = json.loads(path.read_text(encoding="utf-8"))
    return list(data if isinstance(data, list) else data["orders"])


def _is_csv(path: Path) -> bool:
    return path.suffix.lower() == ".csv"


def register(app: typer.Typer) -> None:
    """Add `wallet` to the root app."""
    wallet = typer.Typer(
        help="The social wallet: ledger, vouchers, merchants.", no_args_is_help=True
    )
    app.add_typer(wallet, name="wallet")

    @wallet.command("check")
    def check() -> None:
        """Verify the ledger's invariants; exit 1 and list each problem when one fails."""
        with session_scope() as session:
            result = service.check(session)
        counts = ", ".join(f"{v:,} {k}" for k, v in result.counts.items())
        if result.ok:
            typer.echo(f"wallet check: clean ({counts})")
            return
        for problem in result.problems:
            typer.echo(problem)
        raise typer.Exit(1)

    @wallet.command("allocate")
    def allocate(
        program: str = typer.Option(..., help="Program id, e.g. kz.asp"),
        region: str = typer.Option(..., help="KATO code of the region"),
        amount_minor: int = typer.Option(..., min=1, help="Amount in tiyn"),
        key: str = typer.Option(..., help="Idempotency key of this allocation"),
        api_key: str = API_KEY_OPTION,
    ) -> None:
        """Request a top-up of a program's budget in a region (an operator's key); a policy
        owner approves it with `socialcard approvals approve ID`."""
        try:
            allocation = BudgetAllocation(
                program_id=program, region_kato=region, amount_minor=amount_minor
            )
            with session_scope() as session:
                request = wallet_approvals.request_allocation(
                    session,
                    actor=key_actor(session, api_key),
                    allocation=allocation,
                    idempotency_key=key,
                )
        except ValidationError as exc:
            raise _fail(str(exc)) from None
        except AppError as exc:
            raise _fail(exc.message) from None
        typer.echo(f"request {request.id}: {request.summary} (awaiting approval)")

    @wallet.command("fund")
    def fund(
        file: Path = typer.Option(
            ..., exists=True, dir_okay=False, help="JSON list or CSV of orders"
        ),
        api_key: str = API_KEY_OPTION,
    ) -> None:
        """Request manual funding orders (an operator's key): one request for the file, paid
        when a policy owner approves it; a bad order is reported and nothing is requested."""
        rows = _read_orders(file)
        valid: list[FundingOrder] = []
        failed = 0
        for number, row in enumerate(rows, start=1):
            try:
                # CSV cells are text (read as numbers); JSON orders keep their exact types.
                order = FundingOrder.model_validate(row, strict=False if _is_csv(file) else None)
                valid.append(order)
            except ValidationError as exc:
                failed += 1
                for err in exc.errors():
                    field = ".".join(str(p) for p in err["loc"])
                    console.print(f"order {number}: {field}: {err['msg']}")
        if failed or not valid:
            typer.echo(f"{failed} invalid orders; nothing requested")
            raise typer.Exit(1)
        try:
            with session_scope() as session:
                request = wallet_approvals.request_fundings(
                    session, actor=key_actor(session, api_key), orders=valid
                )
        except AppError as exc:
            raise _fail(exc.message) from None
        typer.echo(f"request {request.id}: {request.summary} (awaiting approval)")

    @wallet.command("pay-orders")
    def pay_orders(limit: int = typer.Option(1000, min=1)) -> None:
        """Pay the campaigns' pending payment orders into citizens' social wallets."""
        from socialcard.wallet.funding import orders

        result = orders.pay_pending_orders(limit=limit)
        for order_id, reason in result.failed:
            console.print(f"order {order_id}: {reason}")
        typer.echo(f"paid {result.paid}, failed {len(result.failed)}")

    @wallet.command("merchant-add")
    def merchant_add(
        bin_: str = typer.Option(..., "--bin", help="БИН, 12 digits"),
        name: str = typer.Option(...),
        category: str = typer.Option(
            ..., help="school_canteen, pharmacy, gas_utility, grocery, transit"
        ),
        licensed: bool = typer.Option(False, help="Holds a pharmacy licence"),
        api_key: str = API_KEY_OPTION,
    ) -> None:
        """Request a merchant's onboarding (an operator's key); it is registered when a policy
        owner or an admin approves it. Then add its terminals with `terminal-add`."""
        try:
            data = MerchantCreate(bin=bin_, name=name, category=category, licensed=licensed)
            with session_scope() as session:
                request = wallet_approvals.request_merchant(
                    session, actor=key_actor(session, api_key), data=data
                )
        except ValidationError as exc:
            raise _fail(str(exc)) from None
        except AppError as exc:
            raise _fail(exc.message) from None
        typer.echo(f"request {request.id}: {request.summary} (awaiting approval)")

    @wallet.command("terminal-add")
    def terminal_add(
        merchant_id: int = typer.Option(..., min=1),
        code: str = typer.Option("T1", help="The terminal's code at the merchant"),
        expires_in_days: int = typer.Option(None, min=1, help="Expire after this many days."),
    ) -> None:
        """Add a terminal to an onboarded merchant (audited); prints its key once."""
        try:
            with session_scope() as session:
                created = merchant_service.create_terminal(
                    session, merchant_id=merchant_id, code=code, expires_in_days=expires_in_days
                )
        except AppError as exc:
            raise _fail(exc.message) from None
        console.print(f"merchant {merchant_id}, terminal {created.id}")
        typer.echo(created.key)

    @wallet.command("terminal-revoke")
    def terminal_revoke(terminal_id: int = typer.Argument(..., min=1)) -> None:
        """Revoke a terminal's key now (audited); every server refuses it within the cache
        time."""
        try:
            with session_scope() as session:
                terminal = merchant_service.revoke_terminal(
                    session, terminal_id=terminal_id, actor=security_service.system_actor()
                )
        except AppError as exc:
            raise _fail(exc.message) from None
        typer.echo(
            f"revoked terminal {terminal.id} ({terminal.code}) of merchant {terminal.merchant_id}"
        )

    @wallet.command("citizen-key")
    def citizen_key(
        person_id: int = typer.Option(..., min=1), api_key: str = API_KEY_OPTION
    ) -> None:
        """Request a citizen key for a person at an office (an operator's key); an admin
        approves it and receives the key once to hand over."""
        try:
            with session_scope() as session:
                request = wallet_approvals.request_citizen_key(
                    session, actor=key_actor(session, api_key), person_id=person_id
                )
        except AppError as exc:
            raise _fail(exc.message) from None
        typer.echo(f"request {request.id}: {request.summary} (awaiting approval)")

    @wallet.command("expire")
    def expire() -> None:
        """Expire lapsed holds and vouchers; unspent value returns to its program."""
        with session_scope() as session:
            result = voucher_service.expire_due(session)
        typer.echo(
            f"expired {result.holds_expired} holds and {result.vouchers_expired} vouchers; "
            f"{result.returned_minor} tiyn returned"
        )

    @wallet.command("settlement")
    def settlement(
        merchant_id: int = typer.Option(..., min=1),
        day: str = typer.Option(..., help="YYYY-MM-DD, a business day (wallet.business_timezone)"),
    ) -> None:
        """Issue a merchant's daily statement and print it as CSV."""
        try:
            day_on = date.fromisoformat(day)
        except ValueError:
            raise _fail("--day must be YYYY-MM-DD") from None
        with session_scope() as session:
            _, text = redemption_service.issue_settlement(
                session, merchant_id=merchant_id, day_on=day_on
            )
        typer.echo(text, nl=False)

    @wallet.command("stats")
    def stats(
        region_digits: int = typer.Option(
            2, min=1, max=9, help="Group regions by this many KATO digits (2 oblasts, 4 districts)"
        ),
    ) -> None:
        """Voucher statistics by type and region: issued, activated, redeemed, expired."""
        with session_scope() as session:
            print_statistics(session, Console(), region_digits=region_digits)


def print_statistics(
    session: Session, out: Console, *, region_digits: int = 2, thousands: bool = False
) -> None:
    """Render voucher statistics by type and region (counts, then tenge or thousand tenge);
    regions are KATO codes cut to `region_digits` (2: oblasts and republican cities)."""
    table = Table(
        title=f"Vouchers by type and region (counts; then {'thousand ₸' if thousands else '₸'})",
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
        pad_edge=False,
    )
    counts = ("issued", "activated", "redeemed", "expired")
    money = ("issued_minor", "redeemed_minor", "expired_minor")
    table.add_column("type", no_wrap=True)
    table.add_column("KATO", no_wrap=True)
    for header in ("issued", "activ.", "redeem.", "expired", "issued", "redeem.", "expired"):
        table.add_column(header, justify="right", no_wrap=True)
    rows = voucher_service.summary(session, region_digits=region_digits)

    def tenge(minor: int) -> str:
        return f"{minor / 100_000:,.0f}" if thousands else f"{minor / 100:,.2f}"

    for row in rows:
        table.add_row(
            row.type,
            row.region_kato[:region_digits],
            *(f"{getattr(row, name):,}" for name in counts),
            *(tenge(getattr(row, name)) for name in money),
        )
    table.add_row(
        "total",
        "",
        *(f"{sum(getattr(r, name) for r in rows):,}" for name in counts),
        *(tenge(sum(getattr(r, name) for r in rows)) for name in money),
        style="bold",
    )
    out.print(table)
