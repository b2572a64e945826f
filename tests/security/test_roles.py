"""Every route's guard, reviewed: the roles DESIGN.md lists, each seeing only its own.

A new route fails the first test until it is added to the matrix below (a deliberate review);
the second asks each route with a key of every role it does not admit and expects 403.
"""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from socialcard.core import ratelimit
from socialcard.security import service
from socialcard.security.enums import Role
from socialcard.wallet.merchants import service as merchant_service
from socialcard.wallet.merchants.schemas import MerchantCreate
from tests.factories import make_person
from tests.fixtures.api import citizen_headers_for

A, P, OP, AU = Role.ADMIN, Role.POLICY_OWNER, Role.OPERATOR, Role.AUDITOR
M, AG, PP, C = Role.MERCHANT, Role.AGENCY, Role.PAYMENT_PROVIDER, Role.CITIZEN
K = Role.KIOSK
# Not a key's role: who else may call a route.
PUBLIC = "public"  # no personal data: health, docs, the region list
TERMINAL = "terminal key"  # a merchant's till (X-Terminal-Key), the business API
SIGNED = "provider signature"  # the SMS provider's callbacks (X-Signature)
LINK = "signed link"  # the citizen's consent page
# Pages: a server-side session, not a key; each page's roles are tested in tests/web.
SIGN_IN = "sign-in page"
STAFF_PAGE = "staff session"
CITIZEN_PAGE = "citizen session"
MERCHANT_PAGE = "merchant staff session"
KIOSK_PAGE = "kiosk device key (cookie), then card + PIN"

MATRIX: dict[tuple[str, str], frozenset[str] | str] = {
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/health"): PUBLIC,
    ("GET", "/api/v1/regions"): PUBLIC,
    # registry: the regional office's reads, each audited with a purpose
    ("GET", "/api/v1/persons"): frozenset({OP}),
    ("GET", "/api/v1/persons/{person_id}"): frozenset({OP}),
    ("GET", "/api/v1/persons/{person_id}/facts"): frozenset({OP}),
    ("GET", "/api/v1/families/{family_id}"): frozenset({OP}),
    # ingestion: an agency pushes its own sources; an operator reviews (audited)
    ("GET", "/api/v1/sources"): frozenset({AG, OP}),
    ("POST", "/api/v1/sources/{source}/batches"): frozenset({AG}),
    ("GET", "/api/v1/sources/{source}/batches/{batch_id}"): frozenset({AG, OP}),
    ("GET", "/api/v1/sources/{source}/batches/{batch_id}/quarantine"): frozenset({AG, OP}),
    # keys: the admin; the audit trail: the auditor; one's own access log: the citizen
    ("POST", "/api/v1/api-keys"): frozenset({A}),
    ("GET", "/api/v1/api-keys"): frozenset({A}),
    ("POST", "/api/v1/api-keys/{key_id}/revoke"): frozenset({A}),
    ("GET", "/api/v1/audit/events"): frozenset({AU}),
    ("GET", "/api/v1/audit/verify"): frozenset({AU}),
    ("GET", "/api/v1/me/access-log"): frozenset({C}),
    # maker–checker (each kind narrows who makes and who checks)
    ("GET", "/api/v1/approvals"): frozenset({A, P, OP, AU}),
    ("GET", "/api/v1/approvals/{approval_id}"): frozenset({A, P, OP, AU}),
    ("POST", "/api/v1/approvals/{approval_id}/approve"): frozenset({A, P, OP}),
    ("POST", "/api/v1/approvals/{approval_id}/reject"): frozenset({A, P, OP}),
    # jobs: starting, cancelling and resuming narrow per kind (jobs.kinds: a rules run OP or P,
    # the rest OP); progress holds no person's data
    ("POST", "/api/v1/jobs"): frozenset({OP, P}),
    ("GET", "/api/v1/jobs"): frozenset({OP, P, AU}),
    ("GET", "/api/v1/jobs/{job_id}"): frozenset({OP, P, AU}),
    ("POST", "/api/v1/jobs/{job_id}/cancel"): frozenset({OP, P}),
    ("POST", "/api/v1/jobs/{job_id}/resume"): frozenset({OP, P}),
    # rules: runs and their counts for all three; persons' decisions with a purpose
    ("POST", "/api/v1/rules/runs"): frozenset({OP, P}),
    ("GET", "/api/v1/rules/runs"): frozenset({OP, P, AU}),
    ("GET", "/api/v1/rules/runs/{run_id}"): frozenset({OP, P, AU}),
    ("GET", "/api/v1/rules/runs/{run_id}/decisions"): frozenset({OP, AU}),
    (
        "GET",
        "/api/v1/rules/runs/{run_id}/families/{family_key}/decisions/{program_id}",
    ): frozenset({OP, AU}),
    ("GET", "/api/v1/families/{family_id}/eligibility"): frozenset({OP}),
    ("POST", "/api/v1/rules/simulations"): frozenset({P}),
    # well-being: counts for policy owners; families for operators (audited)
    ("GET", "/api/v1/wellbeing/methodologies"): frozenset({OP, P}),
    ("POST", "/api/v1/wellbeing/comparisons"): frozenset({OP, P}),
    ("GET", "/api/v1/wellbeing/runs"): frozenset({OP, P}),
    ("GET", "/api/v1/wellbeing/runs/{run_id}"): frozenset({OP, P}),
    ("GET", "/api/v1/wellbeing/runs/{run_id}/regions"): frozenset({OP, P}),
    ("GET", "/api/v1/wellbeing/runs/{run_id}/families"): frozenset({OP}),
    ("GET", "/api/v1/wellbeing/runs/{run_id}/families.csv"): frozenset({OP}),
    ("GET", "/api/v1/wellbeing/runs/{run_id}/changes"): frozenset({OP}),
    ("GET", "/api/v1/wellbeing/families/{family_id}"): frozenset({OP}),
    ("GET", "/api/v1/outreach/segments"): frozenset({OP}),
    ("POST", "/api/v1/outreach/segments"): frozenset({OP}),
    ("GET", "/api/v1/outreach/segments/{code}"): frozenset({OP}),
    ("POST", "/api/v1/outreach/segments/{code}/campaigns"): frozenset({OP}),
    ("GET", "/api/v1/outreach/segments/{code}/funnel"): frozenset({OP}),
    ("GET", "/api/v1/outreach/cases"): frozenset({OP}),
    ("GET", "/api/v1/outreach/cases/{case_id}"): frozenset({OP}),
    ("PATCH", "/api/v1/outreach/cases/{case_id}"): frozenset({OP}),
    # proactive: the regional office; the paying bank only its bank transfers
    ("POST", "/api/v1/proactive/campaigns/{program_id}/run"): frozenset({OP}),
    ("GET", "/api/v1/proactive/campaigns"): frozenset({OP}),
    ("GET", "/api/v1/proactive/campaigns/{campaign_id}"): frozenset({OP}),
    ("GET", "/api/v1/proactive/funnel"): frozenset({OP}),
    ("GET", "/api/v1/proactive/offers"): frozenset({OP}),
    ("GET", "/api/v1/proactive/offers/{offer_id}"): frozenset({OP}),
    ("POST", "/api/v1/proactive/offers/{offer_id}/override"): frozenset({OP}),
    ("GET", "/api/v1/proactive/templates"): frozenset({OP}),
    ("PUT", "/api/v1/proactive/templates/{kind}/{language}"): frozenset({OP}),
    ("POST", "/api/v1/proactive/jobs/deadlines"): frozenset({OP}),
    ("POST", "/api/v1/proactive/jobs/events"): frozenset({OP}),
    ("POST", "/api/v1/proactive/jobs/accrue"): frozenset({OP}),
    ("GET", "/api/v1/proactive/payment-orders"): frozenset({PP}),
    ("POST", "/api/v1/proactive/payment-orders/{order_id}/paid"): frozenset({PP}),
    ("POST", "/api/v1/proactive/sms/inbound"): SIGNED,
    ("POST", "/api/v1/proactive/sms/receipts"): SIGNED,
    ("GET", "/consent/{token}"): LINK,
    ("POST", "/consent/{token}"): LINK,
    # wallet: operators request money and merchants (approved by another role)
    ("POST", "/api/v1/wallet/merchants"): frozenset({OP}),
    ("GET", "/api/v1/wallet/merchants"): frozenset({OP, AU}),
    ("POST", "/api/v1/wallet/merchants/{merchant_id}/terminals"): frozenset({OP}),
    ("GET", "/api/v1/wallet/merchants/{merchant_id}/terminals"): frozenset({OP, AU}),
    ("POST", "/api/v1/wallet/terminals/{terminal_id}/revoke"): frozenset({OP, A}),
    ("POST", "/api/v1/wallet/budgets"): frozenset({OP}),
    ("POST", "/api/v1/wallet/fundings"): frozenset({OP}),
    ("POST", "/api/v1/wallet/citizen-keys"): frozenset({OP}),
    ("GET", "/api/v1/wallet/statistics"): frozenset({OP, AU}),
    ("GET", "/api/v1/wallet/statistics/by-region"): frozenset({OP, AU}),
    ("GET", "/api/v1/wallet/check"): frozenset({OP, AU}),
    ("POST", "/api/v1/wallet/expiry"): frozenset({OP}),
    ("GET", "/api/v1/business/me/terminals"): frozenset({M}),
    ("POST", "/api/v1/business/me/terminals/{terminal_id}/revoke"): frozenset({M}),
    ("POST", "/api/v1/business/authorizations"): TERMINAL,
    ("POST", "/api/v1/business/authorizations/{hold_id}/capture"): TERMINAL,
    ("POST", "/api/v1/business/authorizations/{hold_id}/void"): TERMINAL,
    ("POST", "/api/v1/business/authorizations/{hold_id}/refunds"): TERMINAL,
    ("POST", "/api/v1/business/balance-inquiry"): TERMINAL,
    ("GET", "/api/v1/business/settlements/{day_on}.csv"): TERMINAL,
    ("GET", "/api/v1/wallet/me"): frozenset({C}),
    ("GET", "/api/v1/wallet/me/history"): frozenset({C}),
    ("POST", "/api/v1/wallet/me/vouchers/{voucher_id}/activate"): frozenset({C}),
    # card: operators manage cards; a citizen asks passes and links; businesses verify (yes/no)
    ("POST", "/api/v1/card/sync"): frozenset({OP}),
    ("GET", "/api/v1/card/cards/{card_id}"): frozenset({OP}),
    ("GET", "/api/v1/card/persons/{person_id}/card"): frozenset({OP}),
    ("POST", "/api/v1/card/cards/{card_id}/passes"): frozenset({OP, C}),
    ("POST", "/api/v1/card/cards/{card_id}/suspend"): frozenset({OP}),
    ("POST", "/api/v1/card/cards/{card_id}/resume"): frozenset({OP}),
    ("POST", "/api/v1/card/cards/{card_id}/revoke"): frozenset({OP}),
    ("POST", "/api/v1/card/verify"): frozenset({M}),
    ("POST", "/api/v1/card/lists/publish"): frozenset({OP}),
    ("POST", "/api/v1/card/events/process"): frozenset({OP}),
    ("POST", "/api/v1/card/cards/{card_id}/bank-links"): frozenset({OP, C}),
    ("GET", "/api/v1/card/cards/{card_id}/bank-links"): frozenset({OP, C}),
    ("DELETE", "/api/v1/card/bank-links/{link_id}"): frozenset({OP}),
    ("POST", "/api/v1/card/bank-check"): frozenset({M, PP}),
    ("POST", "/api/v1/card/cards/{card_id}/chip"): frozenset({OP}),
    ("PUT", "/api/v1/card/cards/{card_id}/pin"): frozenset({OP}),
    ("POST", "/api/v1/card/kiosk/sessions"): frozenset({K}),
    ("GET", "/api/v1/card/kiosk/session"): frozenset({K}),
    ("DELETE", "/api/v1/card/kiosk/session"): frozenset({K}),
    ("GET", "/status"): PUBLIC,
    ("GET", "/status/{list_id}"): PUBLIC,
    ("GET", "/.well-known/jwks.json"): PUBLIC,
    ("GET", "/.well-known/jwt-vc-issuer"): PUBLIC,
    # pages
    ("GET", "/login"): SIGN_IN,
    ("POST", "/login"): SIGN_IN,
    ("GET", "/merchant/login"): SIGN_IN,
    ("POST", "/merchant/login"): SIGN_IN,
    ("GET", "/citizen/login"): SIGN_IN,
    ("POST", "/citizen/login"): SIGN_IN,
    ("POST", "/citizen/login/code"): SIGN_IN,
    ("POST", "/logout"): SIGN_IN,
    ("GET", "/"): STAFF_PAGE,
    ("GET", "/registry"): STAFF_PAGE,
    ("GET", "/registry/persons/{person_id}"): STAFF_PAGE,
    ("GET", "/registry/families/{family_id}"): STAFF_PAGE,
    ("GET", "/programs"): STAFF_PAGE,
    ("POST", "/programs/runs"): STAFF_PAGE,
    ("GET", "/programs/runs/{run_id}"): STAFF_PAGE,
    ("GET", "/programs/runs/{run_id}/decisions"): STAFF_PAGE,
    ("GET", "/programs/runs/{run_id}/decisions/{family_key}/{program_id}"): STAFF_PAGE,
    ("GET", "/programs/simulate"): STAFF_PAGE,
    ("POST", "/programs/simulate"): STAFF_PAGE,
    ("GET", "/campaigns"): STAFF_PAGE,
    ("POST", "/campaigns"): STAFF_PAGE,
    ("GET", "/campaigns/offers"): STAFF_PAGE,
    ("GET", "/jobs/{job_id}"): STAFF_PAGE,
    ("GET", "/wellbeing"): STAFF_PAGE,
    ("POST", "/wellbeing"): STAFF_PAGE,
    ("GET", "/wellbeing/{run_id}/families"): STAFF_PAGE,
    ("GET", "/wellbeing/{run_id}/changes"): STAFF_PAGE,
    ("GET", "/outreach"): STAFF_PAGE,
    ("POST", "/outreach"): STAFF_PAGE,
    ("POST", "/outreach/{code}/campaigns"): STAFF_PAGE,
    ("GET", "/outreach/cases"): STAFF_PAGE,
    ("GET", "/outreach/cases/{case_id}"): STAFF_PAGE,
    ("POST", "/outreach/cases/{case_id}"): STAFF_PAGE,
    ("GET", "/wallet"): STAFF_PAGE,
    ("POST", "/wallet/check"): STAFF_PAGE,
    ("GET", "/audit"): STAFF_PAGE,
    ("GET", "/reports"): STAFF_PAGE,
    ("GET", "/reports/monthly.pdf"): STAFF_PAGE,
    ("GET", "/reports/{name}.{ext}"): STAFF_PAGE,
    ("GET", "/admin/staff"): STAFF_PAGE,
    ("POST", "/admin/staff"): STAFF_PAGE,
    ("POST", "/admin/staff/{staff_id}/disable"): STAFF_PAGE,
    ("GET", "/citizen"): CITIZEN_PAGE,
    ("POST", "/citizen/offers/{offer_id}"): CITIZEN_PAGE,
    ("GET", "/citizen/wallet"): CITIZEN_PAGE,
    ("POST", "/citizen/vouchers/{voucher_id}/activate"): CITIZEN_PAGE,
    ("GET", "/citizen/access"): CITIZEN_PAGE,
    ("GET", "/citizen/card"): CITIZEN_PAGE,
    ("POST", "/citizen/card/qr"): CITIZEN_PAGE,
    ("GET", "/kiosk"): KIOSK_PAGE,
    ("POST", "/kiosk/setup"): KIOSK_PAGE,
    ("POST", "/kiosk/start"): KIOSK_PAGE,
    ("GET", "/kiosk/view"): KIOSK_PAGE,
    ("POST", "/kiosk/touch"): KIOSK_PAGE,
    ("POST", "/kiosk/end"): KIOSK_PAGE,
    ("GET", "/merchant"): MERCHANT_PAGE,
    ("POST", "/merchant/redeem"): MERCHANT_PAGE,
    ("GET", "/merchant/statement"): MERCHANT_PAGE,
    ("GET", "/merchant/statement.csv"): MERCHANT_PAGE,
    ("POST", "/merchant/refunds"): MERCHANT_PAGE,
}


def _routes(app: FastAPI) -> list[APIRoute]:
    found: list[APIRoute] = []

    def walk(routes: list[object]) -> None:
        for route in routes:
            if isinstance(route, APIRoute):
                found.append(route)
            elif hasattr(route, "original_router"):
                walk(route.original_router.routes)

    walk(list(app.router.routes))
    return found


def _roles(route: APIRoute) -> frozenset[str] | None:
    stack, found = [route.dependant], []
    while stack:
        dependant = stack.pop()
        roles = getattr(dependant.call, "roles", None)
        if roles is not None:
            found.append(frozenset(str(r) for r in roles))
        stack.extend(dependant.dependencies)
    assert len(found) <= 1, route.path
    return found[0] if found else None


def test_every_route_is_in_the_reviewed_matrix(client: TestClient) -> None:
    actual = {
        (method, route.path): _roles(route)
        for route in _routes(client.app)  # type: ignore[arg-type]
        for method in route.methods
    }
    assert set(actual) == set(MATRIX)
    for key, guard in MATRIX.items():
        if isinstance(guard, frozenset):
            assert actual[key] == guard, key
        else:
            assert actual[key] is None, key  # guarded by a terminal key, a signature or a link


@pytest.fixture
def keys(session: Session) -> dict[str, dict[str, str]]:
    """A key of every role, each bound as its role requires."""
    merchant = merchant_service.create_merchant(
        session,
        data=MerchantCreate(
            bin=merchant_service.make_bin("05034009901"), name="Shop", category="grocery"
        ),
    )
    binding: dict[str, dict[str, object]] = {
        AG: {"agency": "msek", "sources": ["disability"]},
        M: {"merchant_id": merchant.id},
    }
    out = {
        role.value: {
            "X-API-Key": service.create_api_key(
                session, name=f"t-{role.value}", role=role.value, **binding.get(role, {})
            ).key
        }
        for role in Role
        if role is not C
    }
    out[C] = citizen_headers_for(session, make_person(session).id)
    return out


def test_each_role_is_refused_everywhere_else(
    client: TestClient, keys: dict[str, dict[str, str]]
) -> None:
    checked = 0
    for (method, path), guard in MATRIX.items():
        if not isinstance(guard, frozenset):
            continue
        url = re.sub(r"\{[^}]+\}", "1", path).replace("1.csv", "2026-01-01.csv")
        # Each refusal is charged to the test client's address; start every route afresh.
        ratelimit.reset_limiters()
        for role in Role:
            if role in guard:
                continue
            response = client.request(
                method, url, headers=keys[role.value], json={} if method != "GET" else None
            )
            assert response.status_code == 403, (method, path, role.value, response.text)
            assert response.json()["code"] == "role_not_allowed"
            checked += 1
    assert checked > 400
