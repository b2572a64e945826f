"""Each role's main flow in a real headless Chromium (Debian's chromium driven by Playwright),
against a real server on a generated region. Every request of every page must go to the
server itself; a screenshot of each step is saved under test-artifacts/.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from sqlalchemy import Engine, func, select

from tests.fixtures.db import wipe
from tests.wallet.server import free_port, start_server, stop_server

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
# The demo is played in a fixed month (its clock runs on from the 10th, 09:00 Almaty), so the
# flows do not depend on the machine's date: gas activation is open from the 7th to the 29th.
MONTH = "2026-03"
CLOCK = "2026-03-10T04:00:00+00:00"
PASSWORD = "browser-test-password-7"
KIOSK_IDLE = 6
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KEY_LIKE = re.compile(r"^[a-z][a-z_0-9]*\.[a-z_0-9.]+$")

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.slow,
    # One worker runs the whole module, in order, on one generated region and one server.
    pytest.mark.xdist_group("browser"),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed at /usr/bin"
    ),
]


def _cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "socialcard.cli.main", *args],
        env=env,
        cwd=env["SOCIALCARD_TEST_CWD"],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def site(
    engine: Engine, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The demo's region in the worker's store, staff accounts, and a server on it."""
    wipe(engine)
    work = tmp_path_factory.mktemp("site")
    if database_url.startswith("sqlite:///") and not database_url.startswith("sqlite:////"):
        # The commands run in their own folder: name the worker's file absolutely.
        database_url = "sqlite:///" + str(Path(database_url[len("sqlite:///") :]).resolve())
    env = {
        **os.environ,
        "SOCIALCARD_DATABASE_URL": database_url,
        "SOCIALCARD_RULES__PACK_PATH": str(REPO / "packs" / "kz"),
        "SOCIALCARD_PROACTIVE__PACK_PATH": str(REPO / "packs" / "kz"),
        "SOCIALCARD_PROACTIVE__OUTBOX_FILE": str(work / "sms.jsonl"),
        "SOCIALCARD_WEB__COOKIE_SECURE": "false",
        # A kiosk session ends after this many idle seconds (120 in service; short here).
        "SOCIALCARD_CARD__KIOSK_IDLE_SECONDS": str(KIOSK_IDLE),
        "SOCIALCARD_TEST_CWD": str(work),
    }
    env.pop("SOCIALCARD_CLOCK", None)
    _cli(env, "demo", "--families", "800", "--seed", "5", "--no-serve", "--month", MONTH)
    env["SOCIALCARD_CLOCK"] = CLOCK
    # Offers still waiting for an answer, whatever order the tests run in.
    _cli(env, "campaign", "run", "kz.awarded_mothers", "--period", MONTH)
    for username, role in (("op", "operator"), ("policy", "policy_owner"), ("aud", "auditor")):
        _cli(env, "staff", "create", "--username", username, "--role", role,
             "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    from socialcard.core.db import session_scope
    from socialcard.wallet.merchants import service as merchant_service
    from socialcard.wallet.merchants.schemas import MerchantCreate

    with session_scope() as session:
        grocery = (
            next(
                (m.id for m in merchant_service.list_merchants(session) if m.category == "grocery"),
                None,
            )
            or merchant_service.create_merchant(
                session,
                data=MerchantCreate(
                    bin=merchant_service.make_bin("05034000004"), name="Magnum", category="grocery"
                ),
            ).id
        )
    _cli(env, "staff", "create", "--username", "cashier", "--role", "merchant",
         "--merchant-id", str(grocery), "--password-stdin", stdin=PASSWORD + "\n")  # fmt: skip
    port = free_port()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        server = start_server(database_url, port)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield {"base": f"http://127.0.0.1:{port}", "outbox": work / "sms.jsonl", "engine": engine}
    finally:
        stop_server(server)
        wipe(engine)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield instance
        instance.close()


class Visit:
    """A browser context on the site that records every request's host."""

    def __init__(self, browser: Any, base: str, name: str) -> None:
        self.base = base
        self.name = name
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.hosts: set[str] = set()
        self.page.on("request", lambda r: self.hosts.add(urlparse(r.url).netloc))
        self.step = 0

    def go(self, path: str) -> Any:
        response = self.page.goto(self.base + path)
        assert response is not None, path
        assert response.status < 500, path
        return response

    def shot(self, label: str) -> None:
        self.step += 1
        self.page.screenshot(
            path=str(ARTIFACTS / f"{self.name}-{self.step:02d}-{label}.png"), full_page=True
        )

    def sign_in(self, username: str, path: str = "/login") -> None:
        self.go(f"{path}?lang=en")
        self.page.fill("#username", username)
        self.page.fill("#password", PASSWORD)
        self.submit("main button[type=submit]")
        assert "/login" not in self.page.url, self.page.locator("main").inner_text()

    def submit(self, selector: str) -> None:
        """Click a form's button and wait for the page it leads to."""
        with self.page.expect_navigation():
            self.page.click(selector)

    def close(self) -> None:
        server = urlparse(self.base).netloc
        self.context.close()
        # No page loaded anything from anywhere but the server (no CDN, no font, no script).
        assert self.hosts <= {server}, f"requests to other hosts: {self.hosts - {server}}"


def _visible_texts(page: Any) -> list[str]:
    return list(
        page.evaluate(
            """() => {
              const out = [];
              const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
              while (walker.nextNode()) {
                const node = walker.currentNode;
                const text = node.textContent.trim();
                const el = node.parentElement;
                if (!text || !el || el.closest('script,style,title,code,[translate=no]')) continue;
                // Content declared in another language (rule-pack notes written in English).
                const tagged = el.closest('[lang]');
                const page = document.documentElement;
                if (tagged && tagged !== page && tagged.lang !== page.lang) continue;
                const style = getComputedStyle(el);
                if (style.display === 'none' || style.visibility === 'hidden') continue;
                out.push(text);
              }
              for (const el of document.querySelectorAll('[aria-label],[placeholder]')) {
                out.push(el.getAttribute('aria-label') || el.getAttribute('placeholder'));
              }
              return out;
            }"""
        )
    )


def _sign_in_code(outbox: Path, after: int) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if outbox.exists():
            lines = outbox.read_text(encoding="utf-8").splitlines()[after:]
            for line in reversed(lines):
                record = json.loads(line)
                if record["key"].startswith("sign-in:"):
                    return str(re.findall(r"\b\d{6}\b", record["text"])[0])
        time.sleep(0.1)
    raise AssertionError("no sign-in code reached the SMS outbox")


def _outbox_lines(outbox: Path) -> int:
    return len(outbox.read_text(encoding="utf-8").splitlines()) if outbox.exists() else 0


def _citizen_sign_in(visit: Visit, outbox: Path, national_id: str) -> None:
    before = _outbox_lines(outbox)
    visit.go("/citizen/login?lang=ru")
    visit.page.fill("#national_id", national_id)
    visit.submit("main button[type=submit]")
    visit.shot("code-asked")
    visit.page.fill("#code", _sign_in_code(outbox, before))
    visit.submit("main form[action='/citizen/login/code'] button")
    assert visit.page.url.endswith("/citizen")


def _national_id(engine: Engine, person_id: int) -> str:
    from socialcard.registry.models import Person

    with engine.connect() as conn:
        value = conn.execute(select(Person.national_id).where(Person.id == person_id)).scalar()
    assert value is not None
    return str(value)


def test_operator_finds_a_family_and_reads_an_explanation(
    site: dict[str, Any], browser: Any
) -> None:
    visit = Visit(browser, site["base"], "operator-family")
    visit.sign_in("op")
    assert visit.page.locator("h1").inner_text().startswith("Key figures")
    visit.shot("home")
    visit.go("/registry?lang=en")
    visit.page.fill("#name", "А")
    visit.page.fill("#name", "Ах")
    visit.page.select_option("#purpose", "case_review")
    visit.submit("main form[action='/registry'] button")
    visit.shot("search")
    rows = visit.page.locator("main table tbody tr a")
    if rows.count() == 0:  # no name starting so: search the whole region instead
        visit.page.fill("#name", "")
        visit.page.select_option("#region", index=1)
        visit.submit("main form[action='/registry'] button")
    links = [a.get_attribute("href") for a in visit.page.locator("main table tbody tr a").all()]
    for href in links:
        visit.go(str(href))
        if visit.page.locator("a[href^='/registry/families/']").count():
            break
    visit.shot("person")
    visit.submit("a[href^='/registry/families/']")
    assert "Family card" in visit.page.locator("h1").inner_text()
    decision = visit.page.locator("#decisions ~ details").first
    decision.locator("summary").click()
    assert decision.locator("ul li").count() > 0  # the conditions, explained
    visit.shot("family")
    # The read was written to the audit log with its purpose.
    auditor = Visit(browser, site["base"], "auditor")
    auditor.sign_in("aud")
    auditor.go("/audit?lang=en")
    assert "staff:op" in auditor.page.locator("main table").inner_text()
    assert "case review" in auditor.page.locator("main table").inner_text()
    auditor.shot("audit")
    auditor.close()
    visit.close()


def test_policy_owner_runs_a_simulation_and_sees_the_chart(
    site: dict[str, Any], browser: Any
) -> None:
    visit = Visit(browser, site["base"], "policy-simulation")
    visit.sign_in("policy")
    visit.go("/programs/simulate?lang=en")
    visit.page.select_option("#parameter", "kz.asp.poverty_line_share")
    visit.page.fill("#value", "0.9")
    visit.page.fill("#sim-period", MONTH)
    visit.submit("main form[action='/programs/simulate'] button")
    charts = visit.page.locator("figure svg[role=img]")
    assert charts.count() == 2
    assert "Baseline" in charts.first.inner_html()
    assert "Reform" in charts.first.inner_html()
    assert visit.page.locator("text=Who gains").count() == 1
    visit.shot("result")
    visit.close()


def test_operator_starts_a_campaign_and_watches_its_funnel(
    site: dict[str, Any], browser: Any
) -> None:
    visit = Visit(browser, site["base"], "operator-campaign")
    visit.sign_in("op")
    visit.go("/campaigns?lang=en")
    visit.page.select_option("#start-program", "kz.disabled_child_care")
    visit.page.fill("#start-period", MONTH)
    visit.submit("main form[action='/campaigns'] button")
    assert "/jobs/" in visit.page.url  # the page did not wait for the job
    visit.shot("progress")
    visit.page.wait_for_selector("text=Open the funnel", timeout=120_000)
    visit.shot("finished")
    visit.submit("text=Open the funnel")
    chart = visit.page.locator("figure svg[role=img]")
    assert "Offered" in chart.inner_html()
    visit.shot("funnel")
    visit.close()


def test_citizen_accepts_an_offer_and_activates_a_voucher(
    site: dict[str, Any], browser: Any
) -> None:
    from socialcard.proactive.models import Offer
    from socialcard.wallet.vouchers.models import Voucher

    engine = site["engine"]
    with engine.connect() as conn:
        person_id = conn.execute(
            select(Offer.person_id).where(Offer.status == "pending").order_by(Offer.id).limit(1)
        ).scalar()
        holder = conn.execute(
            select(Voucher.person_id)
            .where(Voucher.type.in_(("food", "gas")), Voucher.status == "created")
            .order_by(Voucher.id)
            .limit(1)
        ).scalar()
    if person_id is None:
        with engine.connect() as conn:
            statuses = conn.execute(select(Offer.status, func.count()).group_by(Offer.status)).all()
        pytest.fail(f"no pending offer (the campaign test makes some); offers: {statuses}")
    visit = Visit(browser, site["base"], "citizen")
    _citizen_sign_in(visit, site["outbox"], _national_id(engine, person_id))
    visit.shot("offers")
    with visit.page.expect_navigation():
        visit.page.locator(
            "main form[action^='/citizen/offers/'] button[value=agree]"
        ).first.click()
    assert visit.page.locator(".notice.ok").count() == 1
    visit.shot("agreed")
    visit.close()

    assert holder is not None
    visit = Visit(browser, site["base"], "citizen-voucher")
    _citizen_sign_in(visit, site["outbox"], _national_id(engine, holder))
    visit.go("/citizen/wallet")
    form = visit.page.locator("form[data-activate]").first
    if form.locator("input[name=utility_account]").count():
        form.locator("input[name=utility_account]").fill("12345678")
    with visit.page.expect_navigation():
        form.locator("button").click()
    assert visit.page.locator(".notice.ok").count() == 1
    visit.shot("activated")
    visit.go("/citizen/access")
    visit.shot("who-read")
    visit.close()


def test_merchant_redeems_a_voucher_and_sees_it_on_the_statement(
    site: dict[str, Any], browser: Any
) -> None:
    from socialcard.core import clock
    from socialcard.core.db import session_scope
    from socialcard.wallet.vouchers import service as voucher_service
    from socialcard.wallet.vouchers.models import Voucher

    engine = site["engine"]
    with engine.connect() as conn:
        voucher = conn.execute(
            select(Voucher.id, Voucher.person_id, Voucher.token, Voucher.status)
            .where(Voucher.type == "food", Voucher.status.in_(("created", "activated")))
            .order_by(Voucher.status.desc(), Voucher.id)
            .limit(1)
        ).one()
    token = voucher.token
    if voucher.status == "created":  # the citizen's test may not have run first
        with clock.travel_to(clock.parse_instant(CLOCK)), session_scope() as session:
            voucher_service.activate(
                session, person_id=voucher.person_id, voucher_id=voucher.id, utility_account=None
            )
    assert token is not None
    visit = Visit(browser, site["base"], "merchant")
    visit.sign_in("cashier", "/merchant/login")
    assert visit.page.url.endswith("/merchant")
    visit.page.fill("#code", token)
    visit.page.fill("#amount", "500")
    visit.page.select_option("#category", "food.socially_significant")
    visit.submit("main form[action='/merchant/redeem'] button")
    result = visit.page.locator("#result").inner_text()
    assert "Approved" in result
    assert "500.00" in result
    visit.shot("redeemed")
    visit.go("/merchant/statement")
    visit.shot("statement")
    shown = visit.page.locator("[data-total=net]").inner_text()
    # The statement's totals are the ledger's.
    from datetime import date

    from socialcard.wallet.merchants.models import Merchant
    from socialcard.wallet.redemption import service as redemption_service

    day = date.fromisoformat(visit.page.locator("#day").input_value())
    with engine.connect() as conn:
        grocery = conn.execute(select(Merchant.id).where(Merchant.category == "grocery")).scalar()
    with session_scope() as session:
        totals = redemption_service.settlement(session, merchant_id=grocery, day_on=day)
    assert totals.captured_minor >= 500_00
    assert re.sub(r"\D", "", shown) == str(totals.net_minor)
    visit.close()


def _assert_translated(visit: Visit, path: str) -> None:
    """The page in kk and en: no key left untranslated, no English word on the Kazakh page."""
    texts: dict[str, list[str]] = {}
    for lang in ("kk", "en"):
        visit.go(f"{path}?lang={lang}")
        texts[lang] = _visible_texts(visit.page)
        untranslated = [t for t in texts[lang] if KEY_LIKE.match(t)]
        assert not untranslated, f"{path} {lang}: untranslated keys {untranslated}"
    words = re.compile(r"[^\W\d_]{4,}")
    english = {w for t in texts["en"] for w in words.findall(t)}
    kazakh = {w for t in texts["kk"] for w in words.findall(t)}
    same = {w for w in english & kazakh if w.isascii() and w.islower()}
    assert not same, f"{path}: English words left on the Kazakh page: {sorted(same)[:20]}"


def _card_holder(engine: Engine) -> tuple[int, int]:
    """(card id, person id) of an active card that has a tariff, from the demo's cards."""
    from socialcard.card.models import Card

    with engine.connect() as conn:
        row = conn.execute(
            select(Card.id, Card.person_id)
            .where(Card.state == "active", Card.statuses.like('%"pensioner"%'))
            .order_by(Card.id)
            .limit(1)
        ).first()
    assert row is not None, "the demo issued no pensioner's card"
    return int(row[0]), int(row[1])


def test_a_kiosk_session_shows_the_citizens_view_then_ends_and_leaves_nothing(
    site: dict[str, Any], browser: Any
) -> None:
    from socialcard.card import service as card_service
    from socialcard.card.models import KioskSession
    from socialcard.core.db import session_scope
    from socialcard.security import service as security_service
    from socialcard.security.schemas import Actor

    engine = site["engine"]
    card_id, _person_id = _card_holder(engine)
    installer = Actor(key_id=None, name="browser-test", role="operator")
    with session_scope() as session:
        kiosk_key = security_service.create_api_key(session, name="kiosk-hall", role="kiosk").key
        chip = card_service.issue_chip(session, card_id=card_id, actor=installer)
        card_service.set_pin(session, card_id=card_id, pin="2468", actor=installer)
    visit = Visit(browser, site["base"], "kiosk")
    visit.go("/kiosk?lang=en")
    visit.page.fill("#kiosk_key", kiosk_key)
    visit.submit("main form[action='/kiosk/setup'] button")
    visit.shot("ready")
    _assert_translated(visit, "/kiosk")
    # A wrong PIN first: the page says how many tries are left.
    visit.page.fill("#chip_id", chip.chip_id)
    visit.page.fill("#chip_key", chip.chip_key)
    visit.page.fill("#pin", "0000")
    visit.submit("main form[action='/kiosk/start'] button")
    assert "Tries left: 2" in visit.page.locator("#kiosk-error").inner_text()
    visit.shot("wrong-pin")
    visit.page.fill("#chip_id", chip.chip_id)
    visit.page.fill("#chip_key", chip.chip_key)
    visit.page.fill("#pin", "2468")
    visit.submit("main form[action='/kiosk/start'] button")
    assert visit.page.url.endswith("/kiosk/view")
    assert "Pensioner" in visit.page.locator("main").inner_text()
    assert visit.page.locator("#kiosk-session[data-idle-seconds]").count() == 1
    visit.shot("citizen-view")
    # Left alone, the page ends the session and replaces itself: nothing personal remains.
    visit.page.wait_for_url("**/kiosk?ended=timeout", timeout=(KIOSK_IDLE + 15) * 1000)
    assert visit.page.locator("#kiosk-ended").count() == 1
    assert "Pensioner" not in visit.page.content()
    visit.shot("ended")
    storage = visit.page.evaluate("() => [localStorage.length, sessionStorage.length]")
    assert storage == [0, 0]
    names = {c["name"] for c in visit.context.cookies()}
    assert "sc_kiosk_session" not in names
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(KioskSession)).scalar() == 0
    visit.page.go_back()
    visit.page.wait_for_load_state()
    assert "/kiosk/view" not in visit.page.url
    assert "Pensioner" not in visit.page.content()
    assert visit.page.locator("#kiosk-session").count() == 0
    visit.shot("back")
    # Asking for the view again gets the start page, not the citizen's data.
    visit.go("/kiosk/view")
    assert "ended=timeout" in visit.page.url
    assert "Pensioner" not in visit.page.content()
    visit.close()


def test_a_citizen_sees_their_card_and_its_qr(site: dict[str, Any], browser: Any) -> None:
    engine = site["engine"]
    _card_id, person_id = _card_holder(engine)
    visit = Visit(browser, site["base"], "citizen-card")
    _citizen_sign_in(visit, site["outbox"], _national_id(engine, person_id))
    visit.go("/citizen/card?lang=en")
    assert "Pensioner" in visit.page.locator("main").inner_text()
    _assert_translated(visit, "/citizen/card")
    visit.go("/citizen/card?lang=en")
    visit.shot("card")
    visit.page.select_option("#tariff", index=0)
    visit.submit("main form[action='/citizen/card/qr'] button")
    qr = visit.page.locator("figure.qr[role=img] svg")
    assert qr.count() == 1
    assert qr.bounding_box()["width"] >= 100
    visit.shot("qr")
    visit.close()


PAGES = ["/", "/registry", "/programs", "/campaigns", "/wellbeing", "/wallet", "/reports"]


def test_the_language_switch_changes_every_visible_string(
    site: dict[str, Any], browser: Any
) -> None:
    visit = Visit(browser, site["base"], "languages")
    visit.sign_in("op")
    for path in PAGES:
        texts: dict[str, list[str]] = {}
        for lang in ("kk", "ru", "en"):
            visit.go(f"{path}?lang={lang}")
            # the switcher is a link on the page; follow the one for this language too
            assert visit.page.locator("html").get_attribute("lang") == lang
            texts[lang] = _visible_texts(visit.page)
            untranslated = [t for t in texts[lang] if KEY_LIKE.match(t)]
            assert not untranslated, f"{path} {lang}: untranslated keys {untranslated}"
            visit.shot(f"{path.strip('/') or 'home'}-{lang}")
        # Every word of the page's own text differs between Kazakh and English, except names
        # that are the same in both (language names, codes, numbers, the people's data).
        words = re.compile(r"[^\W\d_]{4,}")
        english = {w for t in texts["en"] for w in words.findall(t)}
        kazakh = {w for t in texts["kk"] for w in words.findall(t)}
        same = {w for w in english & kazakh if w.isascii() and w.islower()}
        assert not same, f"{path}: English words left on the Kazakh page: {sorted(same)[:20]}"
    visit.close()


def test_pages_never_reach_another_host(site: dict[str, Any], browser: Any) -> None:
    visit = Visit(browser, site["base"], "hosts")
    visit.sign_in("op")
    for path in [*PAGES, "/registry/families/1?purpose=case_review", "/nope"]:
        visit.go(path)
    visit.go("/citizen/login")
    visit.go("/merchant/login")
    assert visit.hosts  # requests were seen
    visit.close()  # asserts that every request went to the server
