"""The pages over HTTP (TestClient, both stores): sign-in, sessions, CSRF, roles, headers,
HTML errors in the user's language, audited reads behind a purpose, citizens' one-time codes,
the catalogues, exports and the PDF report."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from socialcard.app import create_app
from socialcard.core import clock
from socialcard.core.db import run_before_commit
from socialcard.core.deps import get_session
from socialcard.proactive.config import ProactiveSettings
from socialcard.proactive.models import Message
from socialcard.proactive.schemas import FunnelRow
from socialcard.reports import charts, exports
from socialcard.reports import service as reports_service
from socialcard.security.accounts import service as accounts
from socialcard.security.models import AuditEvent
from socialcard.web.i18n import LANGUAGES, Translator, catalogue
from tests.factories import make_family, make_person

PASSWORD = "a-long-test-password-1"
TEMPLATES = Path(__file__).resolve().parents[2] / "src" / "socialcard" / "web" / "templates"


@pytest.fixture
def web(session: Session) -> Iterator[TestClient]:
    """The app over https (the session cookie is Secure), on the test's rolled-back session."""
    app = create_app()
    reports_service.clear_cache()  # figures cached by another test's (rolled back) data

    def override() -> Iterator[Session]:
        nested = session.begin_nested()
        try:
            yield session
            run_before_commit(session)
            if nested.is_active:
                nested.commit()
        except BaseException:
            if nested.is_active:
                nested.rollback()
            raise

    app.dependency_overrides[get_session] = override
    with TestClient(
        app, base_url="https://testserver", raise_server_exceptions=False, follow_redirects=False
    ) as client:
        yield client


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def sign_in(web: TestClient, session: Session, role: str = "operator", **extra: object) -> str:
    username = f"{role.replace('_', '')}1"
    accounts.create_staff(
        session, username=username, display_name="T", role=role, password=PASSWORD, **extra
    )  # type: ignore[arg-type]
    page = web.get("/login")
    answer = web.post(
        "/login",
        data={"csrf": _csrf(page.text), "username": username, "password": PASSWORD, "next": "/"},
    )
    assert answer.status_code == 303
    return _csrf(web.get("/audit" if role == "auditor" else "/").text)


class TestSignIn:
    def test_the_root_url_asks_to_sign_in(self, web: TestClient) -> None:
        answer = web.get("/")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/login?next=/"

    def test_a_wrong_password_is_a_page_not_json(self, web: TestClient, session: Session) -> None:
        accounts.create_staff(
            session, username="op", display_name="Op", role="operator", password=PASSWORD
        )
        page = web.get("/login?lang=ru")
        answer = web.post(
            "/login", data={"csrf": _csrf(page.text), "username": "op", "password": "wrong-pass-1"}
        )
        assert answer.status_code == 401
        assert answer.headers["content-type"].startswith("text/html")
        assert "Неверное имя пользователя или пароль." in answer.text

    def test_five_wrong_passwords_lock_the_account(self, web: TestClient, session: Session) -> None:
        accounts.create_staff(
            session, username="op", display_name="Op", role="operator", password=PASSWORD
        )
        token = _csrf(web.get("/login").text)
        for _ in range(5):
            web.post("/login", data={"csrf": token, "username": "op", "password": "nope-nope-1"})
        answer = web.post("/login", data={"csrf": token, "username": "op", "password": PASSWORD})
        assert answer.status_code == 401
        assert "15" in answer.text

    def test_a_form_without_its_csrf_token_is_refused(
        self, web: TestClient, session: Session
    ) -> None:
        sign_in(web, session, "policy_owner")
        answer = web.post("/programs/simulate", data={"parameter": "x", "value": "1"})
        assert answer.status_code == 403
        assert answer.headers["content-type"].startswith("text/html")
        assert "csrf_mismatch" in answer.text

    def test_an_idle_session_ends(self, web: TestClient, session: Session) -> None:
        sign_in(web, session)
        assert web.get("/").status_code == 200
        with clock.travel_to(clock.utcnow() + timedelta(minutes=21)):
            answer = web.get("/")
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/login")

    def test_a_role_sees_only_its_pages(self, web: TestClient, session: Session) -> None:
        sign_in(web, session, "auditor")
        answer = web.get("/registry?lang=en")
        assert answer.status_code == 403
        assert "You are not allowed to open this page." in answer.text


class TestPages:
    def test_pages_carry_the_security_headers(self, web: TestClient) -> None:
        answer = web.get("/login")
        csp = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp
        assert "default-src 'self'" in csp
        assert "http" not in csp  # no external host anywhere
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["referrer-policy"] == "no-referrer"

    def test_an_unknown_page_is_a_translated_html_404(self, web: TestClient) -> None:
        answer = web.get("/nowhere?lang=kk")
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("text/html")
        assert "Мұндай бет жоқ." in answer.text
        assert answer.cookies.get("sc_lang") == "kk"

    def test_the_api_keeps_problem_json(self, web: TestClient) -> None:
        answer = web.get("/api/v1/nowhere")
        assert answer.status_code == 404
        assert answer.headers["content-type"] == "application/problem+json"

    def test_bad_ids_in_a_page_path_are_a_page_too(self, web: TestClient, session: Session) -> None:
        sign_in(web, session)
        answer = web.get(f"/registry/families/{2**63}?purpose=case_review")
        assert answer.status_code == 422
        assert answer.headers["content-type"].startswith("text/html")

    def test_a_family_asks_a_purpose_then_the_read_is_audited(
        self, web: TestClient, session: Session
    ) -> None:
        family = make_family(session, [(make_person(session), "head")])
        sign_in(web, session)
        prompt = web.get(f"/registry/families/{family.id}?lang=en")
        assert prompt.status_code == 200
        assert "Why are you opening this data?" in prompt.text
        before = session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))
        answer = web.get(f"/registry/families/{family.id}?purpose=case_review&lang=en")
        assert answer.status_code == 200
        rows = session.scalars(select(AuditEvent).where(AuditEvent.id > (before or 0))).all()
        assert rows
        assert {r.purpose for r in rows} == {"case_review"}
        assert {r.actor_name for r in rows} == {"staff:operator1"}


class TestCitizenCode:
    def test_a_code_goes_to_the_outbox_and_opens_a_session(
        self, web: TestClient, session: Session
    ) -> None:
        person = make_person(session)
        make_family(session, [(person, "head")])
        page = web.get("/citizen/login")
        answer = web.post(
            "/citizen/login", data={"csrf": _csrf(page.text), "national_id": person.national_id}
        )
        assert answer.status_code == 200
        message = session.scalars(select(Message).where(Message.kind == "sign_in")).one()
        assert message.phone == person.phone
        code = re.findall(r"\b\d{6}\b", message.body)[0]
        done = web.post(
            "/citizen/login/code",
            data={"csrf": _csrf(answer.text), "national_id": person.national_id, "code": code},
        )
        assert done.status_code == 303
        assert web.get("/citizen").status_code == 200

    def test_an_unknown_id_gets_the_same_answer(self, web: TestClient) -> None:
        page = web.get("/citizen/login?lang=en")
        answer = web.post(
            "/citizen/login", data={"csrf": _csrf(page.text), "national_id": "000000000000"}
        )
        assert answer.status_code == 200
        assert "If this ИИН is registered" in answer.text


class TestCatalogues:
    def test_every_language_has_the_same_keys(self) -> None:
        keys = {lang: set(catalogue(lang)) for lang in LANGUAGES}
        assert keys["kk"] == keys["ru"] == keys["en"]

    def test_no_key_is_written_twice(self) -> None:
        # A catalogue reader keeps the last of two entries silently: one would be dead text.
        for lang in LANGUAGES:
            path = TEMPLATES.parent / "locale" / lang / "LC_MESSAGES" / "messages.po"
            ids = re.findall(r'^msgid "(.+)"$', path.read_text(), re.MULTILINE)
            assert sorted({k for k in ids if ids.count(k) > 1}) == [], lang

    def test_every_key_named_in_a_template_is_translated(self) -> None:
        named = set()
        for path in TEMPLATES.rglob("*.html"):
            named |= set(
                re.findall(r"""_\(["']([a-z][a-z_0-9]*\.[a-z_0-9.]+)["']""", path.read_text())
            )
        # A key built in the template ("role." ~ code) ends with a dot or an underscore here.
        missing = {k for k in named if k not in catalogue("kk") and not k.endswith(("_", "."))}
        assert not missing

    def test_every_role_and_purpose_is_translated(self) -> None:
        # Pages show these by key ("role." ~ code, "purpose." ~ code): a new enum value needs
        # its words in every language.
        from socialcard.security.enums import Purpose, Role

        wanted = {f"role.{r.value}" for r in Role} | {f"purpose.{p.value}" for p in Purpose}
        for lang in LANGUAGES:
            assert wanted <= set(catalogue(lang)), lang

    def test_money_and_dates_follow_the_locale(self) -> None:
        assert Translator("ru").money(123456) == "1\u00a0234,56\u00a0₸"
        assert Translator("en").money(123456) == "1,234.56\u00a0₸"


class TestExports:
    def test_small_counts_are_suppressed_with_their_sums(self) -> None:
        columns = [
            exports.Column("region", "col.region"),
            exports.Column("n", "col.families", "count"),
            exports.Column("sum", "col.amount", "money"),
        ]
        table = exports.Table(
            "t",
            columns,
            [{"region": "75", "n": 3, "sum": 100}, {"region": "71", "n": 12, "sum": 5000}],
            suppress=True,
        )
        lines = list(exports.csv_lines(table, Translator("en")))
        assert lines[1].strip() == "75,<5,<5"
        assert lines[2].strip() == "71,12,50.00"

    def test_a_share_is_hidden_with_the_small_count_it_is_made_of(self) -> None:
        columns = [
            exports.Column("offered", "funnel.offered", "count"),
            exports.Column("share", "campaigns.take_up_percent", "share"),
        ]
        rows = [{"offered": 3, "share": 66.7}, {"offered": 30, "share": 50.0}]
        table = exports.Table("t", columns, rows, suppress=True)
        lines = list(exports.csv_lines(table, Translator("en")))
        assert [line.strip() for line in lines[1:]] == ["<5,<5", "30,50.0"]

    def test_a_chart_is_self_contained_svg(self) -> None:
        svg = charts.bars(title="t", categories=["a", "b"], series=[charts.Series("s", [1, 2])])
        assert svg.startswith("<svg")
        assert "<script" not in svg
        assert "http" not in svg.replace("http://www.w3.org/2000/svg", "")


def test_the_monthly_report_is_a_pdf(session: Session) -> None:
    from socialcard.reports import pdf

    data = pdf.monthly_data(session, period="2026-03")
    body = pdf.render_monthly(data, Translator("kk"))
    assert body.startswith(b"%PDF")


def test_the_openapi_document_declares_keys_and_resolves_every_ref(web: TestClient) -> None:
    doc = web.get("/openapi.json").json()
    assert {"ApiKey", "TerminalKey"} <= set(doc["components"]["securitySchemes"])
    text = json.dumps(doc)
    assert "$defs" not in text
    for ref in set(re.findall(r'"\$ref": "([^"]+)"', text)):
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in doc["components"]["schemas"]
    authorize = doc["paths"]["/api/v1/business/authorizations"]["post"]
    assert {"TerminalKey": []} in authorize["security"]


class TestTakeUp:
    @staticmethod
    def _row(program: str, region: str, offered: int, assigned: int) -> FunnelRow:
        counts = dict.fromkeys(
            (
                "eligible",
                "delivered",
                "pending",
                "agreed",
                "refused",
                "lapsed",
                "cancelled",
                "paid",
            ),
            0,
        )
        return FunnelRow(
            campaign_id=1,
            program_id=program,
            period="2026-03",
            region_kato=region,
            offered=offered,
            assigned=assigned,
            **counts,
        )

    def test_offers_against_assignments_per_program_region_and_overall(self) -> None:
        rows = [
            self._row("kz.asp", "751110000", 10, 6),
            self._row("kz.asp", "711110000", 30, 12),
            self._row("kz.disability", "751110000", 0, 0),
        ]
        cells = {(t.program_id, t.region_kato): t for t in reports_service.take_up(rows)}
        assert cells[("kz.asp", "751110000")].share == 0.6
        assert (cells[("kz.asp", None)].offered, cells[("kz.asp", None)].assigned) == (40, 18)
        assert cells[("kz.disability", None)].share is None  # no offer yet: no share
        assert (cells[(None, None)].offered, cells[(None, None)].assigned) == (40, 18)

    def test_the_published_figure_is_about_52_percent(self) -> None:
        published = reports_service.published_take_up()
        assert (published.offered, published.assigned, published.year) == (529_600, 276_200, 2025)
        assert published.share is not None
        assert round(published.share, 2) == 0.52


class TestDemoShares:
    def test_the_default_shares_give_the_published_take_up(self) -> None:
        shares = dict(ProactiveSettings().demo_answer_shares())
        # An unclear reply is followed by "yes" half of the time.
        assert round(shares["agree"] + shares["unclear"] / 2, 2) == 0.52
        assert round(sum(shares.values()), 9) == 1

    def test_shares_over_one_are_refused(self) -> None:
        with pytest.raises(ValueError, match="demo_agree_share"):
            ProactiveSettings(demo_agree_share=0.9, demo_refuse_share=0.2)
