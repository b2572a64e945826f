"""The card's step of `socialcard demo`: cards for the region, one pass as a QR code, verified
online and offline, then a life event that turns the verification to "invalid"."""

from __future__ import annotations

import getpass
import json
import time
from pathlib import Path
from typing import TextIO, cast

from rich.console import Console

from socialcard.card import qr, service
from socialcard.card.cli import present_from_wallet, save_wallet
from socialcard.core.clock import today
from socialcard.core.db import session_scope
from socialcard.core.errors import AppError
from socialcard.registry import service as registry_service
from socialcard.registry.ingestion import service as ingestion_service
from socialcard.security.enums import Purpose
from socialcard.security.schemas import Actor

DEMO_TARIFF = "transit_reduced"
SHOWN_STATUSES = {"pensioner", "large_family", "student", "awarded_mother"}


def run_demo_step(console: Console, *, period: str, var: Path = Path("var")) -> None:
    """Issue cards from the stored rules run, show and verify one pass, revoke it by a death."""
    actor = Actor(key_id=None, name=f"demo:{getpass.getuser()}", role="operator")
    started = time.perf_counter()
    with session_scope() as session:
        synced = service.sync_cards(session, period=period)
        service.publish_lists(session)
    console.print(
        f"Virtual social cards: {synced.persons_with_status:,} persons hold a status "
        f"({synced.created:,} new cards) in {time.perf_counter() - started:.1f} s"
    )
    with session_scope() as session:
        card_ids = service.iter_active_card_ids(session, limit=2000)
        chosen = None
        for card_id in card_ids:
            card = service.card_view_unaudited(session, card_id=card_id)
            # A status that is no health data is shown on the demo's screen.
            if DEMO_TARIFF in card.tariffs and set(card.statuses) <= SHOWN_STATUSES:
                chosen = card
                break
    if chosen is None:
        console.print("No card with a transit tariff in this region; the card demo stops here.")
        return
    wallet = var / "demo-wallet.json"
    keys, public = service.holder_keys_generated(4)
    with session_scope() as session:
        batch = service.issue_passes(session, card_id=chosen.id, holder_keys=public)
        service.publish_lists(session)
    save_wallet(wallet, chosen.id, batch.passes, keys)
    console.print(
        f"Card {chosen.id}: statuses {', '.join(chosen.statuses)}; tariffs "
        f"{', '.join(batch.tariffs)}; a batch of {len(batch.passes)} single-use passes until "
        f"{batch.expires_at:%Y-%m-%d}"
    )
    presentation = present_from_wallet(wallet, DEMO_TARIFF)
    measure = qr.measure(presentation)
    console.print(f"One pass presented for {DEMO_TARIFF!r} as a QR code:")
    qr.make_qr(presentation).terminal(out=cast(TextIO, console.file), compact=True)
    console.print(
        f"QR: {measure.packed_bytes} bytes, version {measure.packed_version} at error "
        f"correction L (as text {measure.text_bytes} bytes, version {measure.text_version})"
    )
    verifier = service.online_verifier()
    with session_scope() as session:
        verifier.refresh(session)
    online = verifier.check(presentation, DEMO_TARIFF)
    console.print(f"Online verification:  {_answer(online.result.value, online.valid_until)}")
    cache = var / "card-cache"
    with session_scope() as session:
        service.export_cache(session, cache)
    offline_presentation = present_from_wallet(wallet, DEMO_TARIFF)
    offline = service.offline_verify(cache, offline_presentation, DEMO_TARIFF)
    console.print(f"Offline verification: {_answer(offline.result.value, offline.valid_until)}")

    # A life event: the civil registry reports the holder's death through the ingestion API.
    with session_scope() as session:
        person = registry_service.get_person(
            session, person_id=chosen.person_id, actor=actor, purpose=Purpose.DATA_QUALITY
        )
        try:
            ingestion_service.submit_batch(
                session,
                source="deaths",
                rows=[{"national_id": person.national_id, "valid_from": f"{today():%Y-%m-%d}"}],
                batch_key=f"demo-death-{chosen.person_id}-{int(time.time())}",
            )
        except AppError as exc:
            console.print(f"The life event was refused: {exc.message}")
            return
    event_at = time.perf_counter()
    with session_scope() as session:
        done = service.process_events(session)
        service.publish_lists(session)
    with session_scope() as session:
        verifier.refresh(session)
    after = verifier.check(present_from_wallet(wallet, DEMO_TARIFF), DEMO_TARIFF)
    console.print(
        f"Life event (death registered): {done.events} event(s), {done.batches_revoked} "
        f"batch(es) revoked; online verification now: {_answer(after.result.value, None)} "
        f"({time.perf_counter() - event_at:.1f} s after the event)"
    )
    with session_scope() as session:
        service.export_cache(session, cache)
    offline_after = service.offline_verify(
        cache, present_from_wallet(wallet, DEMO_TARIFF), DEMO_TARIFF
    )
    console.print(f"Offline verification after a cache refresh: {offline_after.result.value}")
    console.print(f"Card counts: {json.dumps(_counts())}")


def _answer(result: str, valid_until: int | None) -> str:
    if valid_until is None:
        return result
    return f"{result} (valid until {time.strftime('%Y-%m-%d', time.gmtime(valid_until))})"


def _counts() -> dict[str, object]:
    with session_scope() as session:
        return service.counts(session)
