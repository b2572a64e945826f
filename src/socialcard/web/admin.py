"""Admin pages: staff accounts (create with a generated password shown once, disable)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import RedirectResponse, Response

from socialcard.core.deps import DbSession
from socialcard.core.errors import AppError
from socialcard.security.accounts import service as accounts
from socialcard.wallet.merchants import service as merchant_service
from socialcard.web.deps import AdminUser, Form
from socialcard.web.render import render

router = APIRouter(include_in_schema=False)


def _page(request: Request, session: DbSession, **extra: Any) -> Response:
    return render(
        request,
        "console/staff.html",
        section="staff",
        staff=accounts.list_staff(session),
        roles=[r.value for r in accounts.STAFF_ROLES],
        merchants=merchant_service.list_merchants(session),
        **extra,
    )


@router.get("/admin/staff")
def staff(request: Request, session: DbSession, me: AdminUser) -> Response:
    """Staff accounts and a form to add one."""
    return _page(request, session)


@router.post("/admin/staff")
def create(request: Request, session: DbSession, me: AdminUser, form: Form) -> Response:
    """Create an account; its generated password is shown once on the answer page."""
    password = accounts.generate_password()
    merchant = form.get("merchant_id") or ""
    try:
        created = accounts.create_staff(
            session,
            username=form.get("username", "")[:60],
            display_name=form.get("display_name", "")[:120],
            role=form.get("role", ""),
            password=password,
            merchant_id=int(merchant) if merchant.isdigit() and len(merchant) < 18 else None,
            language=form.get("language", "ru"),
        )
    except AppError as exc:
        return _page(request, session, error=exc.message)
    return _page(request, session, created=created, password=password)


@router.post("/admin/staff/{staff_id}/disable")
def disable(
    request: Request,
    session: DbSession,
    me: AdminUser,
    staff_id: Annotated[int, Path(ge=1, le=2**62)],
    form: Form,
) -> Response:
    """Disable (or enable) an account; its sessions end at their next request."""
    accounts.set_disabled(session, staff_id=staff_id, disabled=form.get("disabled") == "1")
    return RedirectResponse("/admin/staff", status_code=303)
