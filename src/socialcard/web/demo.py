"""The demo's sign-in step: staff accounts with generated passwords (printed once) and how a
citizen and a merchant sign in to the generated region's pages."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from sqlalchemy.orm import Session

from socialcard.proactive.config import get_proactive_settings
from socialcard.registry import service as registry_service
from socialcard.security.accounts import service as accounts
from socialcard.wallet.merchants import service as merchant_service
from socialcard.wallet.vouchers import service as voucher_service


@dataclass
class DemoSignIn:
    """What the demo prints so that a new user can sign in to every kind of page."""

    admin_password: str
    merchant_username: str | None
    merchant_password: str | None
    citizen_national_id: str | None


def demo_accounts(session: Session) -> DemoSignIn:
    """An admin (sees the whole console) and a merchant's cashier, with new passwords."""
    admin_password = accounts.ensure_staff(
        session, username="demo", role="admin", display_name="Demo administrator"
    )
    merchant_username = merchant_password = None
    for merchant in merchant_service.list_merchants(session):
        if "food" in merchant.accepts:
            merchant_username = "demo-cashier"
            merchant_password = accounts.ensure_staff(
                session,
                username=merchant_username,
                role="merchant",
                display_name=merchant.name,
                merchant_id=merchant.id,
            )
            break
    holder = voucher_service.sample_holder(session, voucher_type="food")
    national_id = registry_service.national_id_of(session, holder) if holder else None
    return DemoSignIn(admin_password, merchant_username, merchant_password, national_id)


def print_sign_in(console: Console, base: str, sign_in: DemoSignIn) -> None:
    """Print the console's address and the generated credentials (shown once)."""
    console.print(f"Operator console: {base}/  — sign in as [bold]demo[/bold] with password:")
    console.print(f"  {sign_in.admin_password}", highlight=False, soft_wrap=True)
    if sign_in.merchant_username:
        console.print(
            f"Merchant pages: {base}/merchant/login  — {sign_in.merchant_username} / "
            f"{sign_in.merchant_password}",
            highlight=False,
            soft_wrap=True,
        )
    if sign_in.citizen_national_id:
        outbox = get_proactive_settings().outbox_file
        console.print(
            f"Citizen pages: {base}/citizen/login  — ИИН {sign_in.citizen_national_id}; "
            f"the one-time code arrives in {outbox}",
            highlight=False,
            soft_wrap=True,
        )
    console.print("(passwords are generated on each run and shown only here)")
