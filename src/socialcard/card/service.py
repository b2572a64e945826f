"""Card service: cards from the rules' stored decisions, passes, revocation, verification,
linked bank cards, chip cards with a PIN, and kiosk sessions.

The interface other domains and the web pages use:

- `sync_cards(session, *, period=None)`: a card for every person holding a status in the
  latest stored rules run of the period (statuses from `card/tariffs.yaml`); statuses lost
  revoke the card's passes.
- `issue_passes(session, *, card_id, holder_keys)`: a batch of single-use SD-JWT VC passes.
- `process_events(session)`: the revocation job's step over the registry's event outbox.
- `publish_lists(session)`: re-sign the changed (or ageing) status lists.
- `verify_online(presentation, tariff)`: the merchants' answer, from memory only.
- `offline_verify(cache_dir, presentation, tariff)`: the same from cached files.
- `card_for_person`, `card_view`, bank links, PINs and kiosk sessions below.

Services never commit, except where a commit is the point: `verify_pin` takes a `commit`
callable and uses it to persist the spent try before it checks the PIN.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from joserfc.jwk import ECKey
from sqlalchemy.orm import Session

from socialcard.card import catalog as card_catalog
from socialcard.card import qr, repository, sdjwt, statuslist, tokens
from socialcard.card.enums import BatchState, CardState, Verdict
from socialcard.card.errors import (
    CardNotActive,
    CardNotFound,
    ChipKeyWrong,
    ConsentMissing,
    InvalidHolderKey,
    KioskSessionNotFound,
    LinkExists,
    LinkNotFound,
    NoStatus,
    PinLocked,
    PinNotSet,
    PinWrong,
)
from socialcard.card.keys import FileKeyStore, IssuerKeys, jwks
from socialcard.card.models import BankLink, Card, CardPin, KioskSession, PassBatch, StatusListRow
from socialcard.card.schemas import (
    BankLinkRead,
    CardRead,
    ChipIssued,
    DecisionView,
    EventsProcessed,
    HolderCard,
    KioskSessionStarted,
    KioskView,
    ListPublished,
    PassBatchRead,
    PassShown,
    StatusView,
    SyncResult,
    TariffView,
)
from socialcard.card.verifier import VCT, Outcome, ReplayCache, Verifier
from socialcard.core import ratelimit
from socialcard.core.clock import today, utcnow
from socialcard.core.config import get_settings
from socialcard.core.errors import InvalidInput, NotFound, field_error
from socialcard.core.logging import get_logger
from socialcard.proactive.crash import crashpoint
from socialcard.registry import service as registry_service
from socialcard.rules import service as rules_service
from socialcard.rules.schemas import RunRead
from socialcard.security import keyring
from socialcard.security import service as security_service
from socialcard.security.enums import Purpose
from socialcard.security.schemas import Actor

log = get_logger(__name__)
CONSUMER = "card"
_STATE_VALUE = {
    BatchState.VALID: statuslist.VALID,
    BatchState.SUSPENDED: statuslist.SUSPENDED,
    BatchState.REVOKED: statuslist.INVALID,
}


# --- keys and catalogue ------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _key_store(directory: str, secret: str) -> FileKeyStore:
    return FileKeyStore(Path(directory), secret=secret.encode())


def issuer_keys() -> IssuerKeys:
    """The issuer's key store (the one interface to swap for the shared keyring)."""
    settings = get_settings()
    return _key_store(settings.card.key_dir, keyring.keyset("card_issuer").current.secret.hex())


def published_jwks(now: datetime | None = None) -> dict[str, Any]:
    """The JWKS verifiers trust: the active key and retired keys whose passes may be valid."""
    now = now or utcnow()
    store = issuer_keys()
    store.signing_key(now=now)  # the first start makes the first key
    return jwks(store.public_keys(now=now))


def issuer_metadata() -> dict[str, Any]:
    """SD-JWT VC issuer metadata (`/.well-known/jwt-vc-issuer`): the issuer and its JWKS."""
    return {"issuer": get_settings().card.issuer, "jwks": published_jwks()}


def rotate_keys(*, now: datetime | None = None) -> str:
    """A new signing key; the old one verifies until its last pass (and list) has expired."""
    settings = get_settings().card
    keep = timedelta(days=settings.pass_days, seconds=settings.list_exp_seconds + 60)
    kid = issuer_keys().rotate(now=now or utcnow(), retired_keys_verify_for=keep)
    log.info("card_key_rotated", kid=kid)
    return kid


def the_catalog() -> card_catalog.Catalog:
    """The tariff catalogue with the configured regional files."""
    return card_catalog.catalog(tuple(get_settings().card.tariff_files))


def list_uri(list_id: int) -> str:
    """Where a status list is published."""
    return f"{get_settings().card.issuer}/status/{list_id}"


# --- cards from the rules' stored decisions ---------------------------------------------------


def _holders_by_status(session: Session, *, run_id: int, period: str) -> dict[int, set[str]]:
    """person id -> statuses, from the run's eligible decisions of the catalogue's programs
    (a family-wide status to every living current member of the decision's family)."""
    cat = the_catalog()
    holders: dict[int, set[str]] = defaultdict(set)
    family_grants: dict[int, set[str]] = defaultdict(set)
    detail = rules_service.get_run(session, run_id=run_id)
    in_run = {p.program_id for p in detail.by_program if p.period == period}
    for program_id in cat.programs():
        if program_id not in in_run:
            continue
        grants = cat.sources_of(program_id)
        for decision in rules_service.eligible_decisions(
            session, run_id=run_id, program_id=program_id, period=period
        ):
            for status, scope in grants:
                if scope == "family" and decision.family_id is not None:
                    family_grants[decision.family_id].add(status)
                elif decision.person_id is not None:
                    holders[decision.person_id].add(status)
    family_ids = sorted(family_grants)
    for start in range(0, len(family_ids), 5000):
        members = registry_service.current_members(session, family_ids[start : start + 5000])
        for family_id, people in members.items():
            for member in people:
                if member.death_on is None:
                    holders[member.person_id] |= family_grants[family_id]
    return holders


def _sync_run(session: Session, period: str | None) -> tuple[str, RunRead]:
    period = str(rules_service.parse_period(period)) if period else f"{today():%Y-%m}"
    run = rules_service.latest_run(session, period=period)
    if run is None:
        raise NotFound(
            f"no stored rules run for {period}; run `socialcard rules run --period {period}`",
            details=[field_error("period", "no stored rules run")],
        )
    return period, run


def sync_period(session: Session, period: str | None) -> str:
    """The month a sync of the cards would take (default: this month), checked: InvalidInput
    or NotFound (no stored rules run) naming `period`."""
    return _sync_run(session, period)[0]


def sync_cards(
    session: Session,
    *,
    period: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SyncResult:
    """Cards for every person with a status in the latest rules run of the period; statuses
    updated; a card whose statuses shrank has its passes revoked (they carry old tariffs)."""
    period, run = _sync_run(session, period)
    now = utcnow()
    holders = _holders_by_status(session, run_id=run.id, period=period)
    existing = repository.all_card_statuses(session)
    person_ids = sorted(holders)
    dates = {}
    for start in range(0, len(person_ids), 20_000):
        dates.update(registry_service.life_dates(session, person_ids[start : start + 20_000]))
    new_rows: list[dict[str, Any]] = []
    changes: list[tuple[int, str, str]] = []
    shrunk: list[int] = []
    for done, person_id in enumerate(person_ids, 1):
        life = dates.get(person_id)
        if life is None or life.death_on is not None:
            continue
        statuses = json.dumps(sorted(holders[person_id]))
        current = existing.get(person_id)
        if current is None:
            new_rows.append(
                {
                    "person_id": person_id,
                    "region_kato": life.region_kato,
                    "state": CardState.ACTIVE.value,
                    "statuses": statuses,
                    "statuses_period": period,
                    "chip_id": None,
                    "chip_key_hash": None,
                    "issued_at": now,
                    "updated_at": now,
                }
            )
        else:
            card_id, old, _state = current
            changes.append((card_id, statuses, period))
            if set(json.loads(old)) - holders[person_id]:
                shrunk.append(card_id)
        if progress is not None and done % 10_000 == 0:
            progress(done, len(person_ids))
    for person_id, (card_id, old, _state) in existing.items():
        if person_id not in holders and old != "[]":
            changes.append((card_id, "[]", period))
            shrunk.append(card_id)
    for start in range(0, len(new_rows), 20_000):
        repository.insert_cards(session, new_rows[start : start + 20_000])
    repository.update_card_statuses(session, changes, now=now)
    revoked = set_batches_state(
        session, card_ids=shrunk, state=BatchState.REVOKED, reason="status_lost", now=now
    )
    if progress is not None:
        progress(len(person_ids), len(person_ids))
    session.flush()
    return SyncResult(
        period=period,
        run_id=run.id,
        persons_with_status=len(person_ids),
        created=len(new_rows),
        updated=len(changes),
        lost_status=len(shrunk),
        batches_revoked=revoked,
    )


def _card_read(card: Card) -> CardRead:
    statuses = json.loads(card.statuses)
    return CardRead(
        id=card.id,
        person_id=card.person_id,
        region_kato=card.region_kato,
        state=card.state,
        statuses=statuses,
        statuses_period=card.statuses_period,
        tariffs=the_catalog().tariffs_for(statuses, card.region_kato),
        chip=card.chip_id is not None,
        issued_at=card.issued_at,
    )


def _card(session: Session, card_id: int) -> Card:
    card = repository.card_by_id(session, card_id)
    if card is None:
        raise CardNotFound(
            f"no card with id {card_id}", details=[field_error("card_id", "no such card")]
        )
    return card


def card_view(session: Session, *, card_id: int, actor: Actor, purpose: Purpose) -> CardRead:
    """One card with its statuses and tariffs (an audited read of the holder's data)."""
    card = _card(session, card_id)
    security_service.record_access(
        session,
        actor=actor,
        action="card.read",
        subject_type="person",
        subject_ids=[card.person_id],
        purpose=purpose,
    )
    return _card_read(card)


def card_view_unaudited(session: Session, *, card_id: int) -> CardRead:
    """A card for an access check (no personal data is shown, so no audit row)."""
    return _card_read(_card(session, card_id))


def list_ttl() -> int:
    """How long a status list may be cached (seconds)."""
    return get_settings().card.list_ttl_seconds


def card_for_person(
    session: Session, *, person_id: int, actor: Actor, purpose: Purpose
) -> CardRead:
    """A person's card (audited); the citizen QR page uses this."""
    card = repository.card_by_person(session, person_id)
    if card is None:
        raise CardNotFound(
            f"person {person_id} has no card",
            details=[field_error("person_id", "no card; the person holds no status")],
        )
    return card_view(session, card_id=card.id, actor=actor, purpose=purpose)


def _language(lang: str) -> str:
    return lang if lang in ("kk", "ru", "en") else "kk"


def holder_card(
    session: Session, *, person_id: int, actor: Actor, purpose: Purpose, lang: str = "kk"
) -> HolderCard:
    """A person's card with its statuses and tariffs titled in their language (audited)."""
    card = card_for_person(session, person_id=person_id, actor=actor, purpose=purpose)
    cat = the_catalog()
    language = _language(lang)
    return HolderCard(
        card=card,
        statuses=[
            StatusView(code=s, title=cat.statuses[s].title[language])
            for s in card.statuses
            if s in cat.statuses
        ],
        tariffs=[
            TariffView(code=t, title=cat.tariffs[t].title[language])
            for t in card.tariffs
            if t in cat.tariffs
        ],
    )


def present_pass(
    session: Session, *, person_id: int, tariff: str, actor: Actor, lang: str = "kk"
) -> PassShown:
    """What the phone shows at a till: one fresh single-use copy of the holder's pass,
    presented with the one tariff asked and bound to now, as a QR code. The copy's holder key
    exists only in this call (as it would only on the phone) and is dropped with it, so the
    code cannot be presented again; a merchant accepts it within the binding's minute."""
    shown = holder_card(
        session, person_id=person_id, actor=actor, purpose=Purpose.SELF_SERVICE, lang=lang
    )
    titled = {t.code: t for t in shown.tariffs}
    if tariff not in titled:
        raise InvalidInput(
            f"tariff: {tariff!r} is not one of this card's tariffs",
            details=[field_error("tariff", "not one of the card's tariffs")],
        )
    keys, public = holder_keys_generated(1)
    batch = issue_passes(session, card_id=shown.card.id, holder_keys=public)
    presentation = present_for_demo(batch.passes[0], keys[0], tariff=tariff)
    code = qr.make_qr(presentation)
    return PassShown(
        holder=shown,
        tariff=titled[tariff],
        presentation=presentation,
        qr_svg=qr.svg(presentation),
        qr_version=int(code.version),
        presentation_bytes=len(qr.pack(presentation)),
        pass_expires_at=batch.expires_at,
        binding_valid_seconds=sdjwt.KB_MAX_AGE_SECONDS,
    )


# --- status lists -----------------------------------------------------------------------------

_permutations: dict[tuple[int, str], np.ndarray] = {}
_permutation_lock = threading.Lock()


def _permutation(list_id: int, seed: str, size: int) -> np.ndarray:
    """The list's index order: a permutation of 0..size-1 from its secret seed (cached)."""
    key = (list_id, seed)
    with _permutation_lock:
        cached = _permutations.get(key)
        if cached is None:
            rng = np.random.Generator(np.random.PCG64(int(seed, 16)))
            cached = rng.permutation(size).astype(np.int32)
            if len(_permutations) > 8:
                _permutations.clear()
            _permutations[key] = cached
        return cached


def _new_list(session: Session, size: int) -> StatusListRow:
    row = StatusListRow(
        size=size,
        seed=secrets.token_hex(16),
        next_position=0,
        data=bytes(size // 4),
        version=1,
        signed_version=-1,
    )
    session.add(row)
    session.flush()
    return row


def allocate_indexes(session: Session, count: int) -> list[tuple[int, np.ndarray]]:
    """`count` fresh status indexes, as (list id, indexes) runs: positions of each list's
    random permutation, taken under the list's lock; a new list when one fills up."""
    repository.begin_write(session)
    size = get_settings().card.list_size
    out: list[tuple[int, np.ndarray]] = []
    while count > 0:
        row = repository.open_list_for_update(session) or _new_list(session, size)
        take = min(count, row.size - row.next_position)
        order = _permutation(row.id, row.seed, row.size)
        out.append((row.id, order[row.next_position : row.next_position + take].copy()))
        row.next_position += take
        count -= take
    session.flush()
    return out


def _apply_entries(
    session: Session, entries: dict[int, list[int]], value: int, *, now: datetime
) -> None:
    """Set status entries (list id -> indexes) to one value and bump the lists' versions."""
    if not entries:
        return
    repository.begin_write(session)
    rows = repository.lists_for_update(session, sorted(entries))
    for list_id, indexes in entries.items():
        row = rows[list_id]
        current = statuslist.StatusList(row.size, row.data)
        current.set_many(np.asarray(indexes, dtype=np.int64), value)
        row.data = current.to_bytes()
        row.version += 1
    session.flush()


def set_batches_state(
    session: Session,
    *,
    card_ids: Sequence[int],
    state: BatchState,
    reason: str,
    now: datetime | None = None,
    from_states: Sequence[BatchState] = (BatchState.VALID, BatchState.SUSPENDED),
) -> int:
    """Move the unexpired batches of cards to a state and mark their status entries."""
    if not card_ids:
        return 0
    now = now or utcnow()
    batches = repository.batches_of_cards(
        session, list(card_ids), states=[s.value for s in from_states], now=now
    )
    batches = [b for b in batches if b.state != state.value]
    entries: dict[int, list[int]] = defaultdict(list)
    for batch in batches:
        batch.state = state.value
        batch.reason = reason
        batch.changed_at = now
        entries[batch.list_id].extend(json.loads(batch.indexes))
    _apply_entries(session, entries, _STATE_VALUE[state], now=now)
    if batches:
        log.info("card_batches_changed", state=state.value, reason=reason, batches=len(batches))
    return len(batches)


def publish_lists(
    session: Session, *, now: datetime | None = None, force: bool = False
) -> ListPublished:
    """Re-sign every list whose entries changed since it was signed, or whose token is older
    than the republish interval (so verifiers keep a fresh copy)."""
    now = now or utcnow()
    settings = get_settings().card
    kid, key = issuer_keys().signing_key(now=now)
    signed = 0
    rows = repository.all_lists(session)
    for row in rows:
        stale = row.signed_at is None or (now - row.signed_at).total_seconds() >= (
            settings.list_republish_seconds
        )
        if not force and row.signed_version == row.version and not stale:
            continue
        iat = int(now.timestamp())
        row.token = statuslist.build_token(
            statuslist.StatusList(row.size, row.data),
            uri=list_uri(row.id),
            issuer=settings.issuer,
            key=key,
            kid=kid,
            iat=iat,
            exp=iat + settings.list_exp_seconds,
            ttl=settings.list_ttl_seconds,
        )
        row.signed_version = row.version
        row.signed_at = now
        signed += 1
    session.flush()
    return ListPublished(signed=signed, lists=len(rows))


def status_list_token(session: Session, *, list_id: int) -> str:
    """The published Status List Token of a list."""
    token = repository.list_token(session, list_id)
    if token is None:
        raise NotFound(f"no published status list {list_id}")
    return token


# --- passes -----------------------------------------------------------------------------------


def _holder_keys(raw: Sequence[dict[str, Any]]) -> list[dict[str, str]]:
    out = []
    for i, jwk in enumerate(raw):
        try:
            key = sdjwt.holder_key(jwk)
        except sdjwt.SdJwtError:
            raise InvalidHolderKey(
                f"holder_keys[{i}]: not a public P-256 JWK",
                details=[
                    field_error(f"holder_keys[{i}]", "a public EC P-256 JWK (kty, crv, x, y)")
                ],
            ) from None
        out.append(sdjwt.public_jwk(key))
    thumbprints = {json.dumps(k, sort_keys=True) for k in out}
    if len(thumbprints) != len(out):
        raise InvalidHolderKey(
            "holder_keys: every copy needs its own key",
            details=[field_error("holder_keys", "repeated key")],
        )
    return out


@dataclass(frozen=True, slots=True)
class _Signer:
    kid: str
    key: ECKey
    issuer: str
    iat: int
    exp: int
    digests_at_least: int

    def sign(
        self, *, tariffs: Sequence[str], holder: dict[str, str], list_id: int, idx: int
    ) -> str:
        claims = {
            "iss": self.issuer,
            "vct": VCT,
            "iat": self.iat,
            "exp": self.exp,
            "cnf": {"jwk": holder},
            "status": {"status_list": {"idx": idx, "uri": list_uri(list_id)}},
        }
        token, _ = sdjwt.issue(
            claims=claims,
            disclosable=("tariffs", dict.fromkeys(tariffs, True)),
            key=self.key,
            kid=self.kid,
            digests_at_least=self.digests_at_least,
        )
        return token


def _signer(now: datetime) -> _Signer:
    settings = get_settings().card
    kid, key = issuer_keys().signing_key(now=now)
    # iat is the hour, not the second: copies issued in one hour share it with everyone
    # else's, so it does not link two presentations.
    iat = int(now.timestamp()) // 3600 * 3600
    return _Signer(
        kid=kid,
        key=key,
        issuer=settings.issuer,
        iat=iat,
        exp=iat + settings.pass_days * 86_400,
        digests_at_least=settings.digests_at_least,
    )


def issue_passes(
    session: Session,
    *,
    card_id: int,
    holder_keys: Sequence[dict[str, Any]],
    actor: Actor | None = None,
) -> PassBatchRead:
    """A batch of single-use passes for an active card: one copy per holder key, each with its
    own status index; only the card's tariffs are in them, each selectively disclosable."""
    settings = get_settings().card
    if len(holder_keys) > settings.batch_size:
        raise InvalidInput(
            f"holder_keys: at most {settings.batch_size} copies per batch",
            details=[field_error("holder_keys", f"at most {settings.batch_size}")],
        )
    holders = _holder_keys(holder_keys)
    card = _card(session, card_id)
    if card.state != CardState.ACTIVE:
        raise CardNotActive(f"card {card_id} is {card.state}")
    tariffs = the_catalog().tariffs_for(json.loads(card.statuses), card.region_kato)
    if not tariffs:
        raise NoStatus(f"card {card_id} holds no status with a tariff")
    if actor is not None:
        # The answer shows the holder's tariffs: an operator's read of personal data.
        _audit(session, actor, "card.passes_issue", card.person_id, Purpose.CARD_SERVICE)
    now = utcnow()
    signer = _signer(now)
    passes: list[str] = []
    batch_ids = []
    for list_id, indexes in allocate_indexes(session, len(holders)):
        chunk = holders[len(passes) : len(passes) + len(indexes)]
        for holder, idx in zip(chunk, indexes.tolist(), strict=True):
            passes.append(signer.sign(tariffs=tariffs, holder=holder, list_id=list_id, idx=idx))
        batch = PassBatch(
            card_id=card.id,
            list_id=list_id,
            indexes=json.dumps(indexes.tolist()),
            tariffs=json.dumps(tariffs),
            kid=signer.kid,
            state=BatchState.VALID.value,
            issued_at=now,
            expires_at=datetime.fromtimestamp(signer.exp, UTC),
        )
        session.add(batch)
        session.flush()
        batch_ids.append(batch.id)
    # A list opened for these copies is signed now, so its passes verify at once.
    publish_lists(session, now=now)
    return PassBatchRead(
        batch_id=batch_ids[0],
        tariffs=tariffs,
        expires_at=datetime.fromtimestamp(signer.exp, UTC),
        passes=passes,
    )


# What a bulk-issue worker signs with: set before the pool forks, so the key reaches the
# workers as inherited memory, never through a pipe or a file.
_BULK_SIGNER: _Signer | None = None
_Job = tuple[list[str], list[dict[str, str]], list[tuple[int, int]]]


def _sign_jobs(jobs: list[_Job]) -> list[list[str]]:
    """Sign the copies of many cards (in a worker process of the bulk job)."""
    signer = _BULK_SIGNER
    if signer is None:
        raise RuntimeError("the bulk signer is not set")
    return [
        [
            signer.sign(tariffs=tariffs, holder=holder, list_id=list_id, idx=idx)
            for holder, (list_id, idx) in zip(keys, slots, strict=True)
        ]
        for tariffs, keys, slots in jobs
    ]


def _finish_pending(pending: tuple[Any, list[_Job], Any], finish: Callable[..., int]) -> int:
    plan, jobs, futures = pending
    return finish(plan, jobs, [p for future in futures for p in future.result()])


def _signing_pool(workers: int) -> Any:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    if workers <= 1:
        return None
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))


def issue_passes_bulk(
    session: Session,
    *,
    card_ids: Sequence[int],
    holder_keys: Callable[[int, int], list[dict[str, str]]],
    deliver: Callable[[int, list[str]], None],
    chunk: int = 4_000,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Issue one batch for each of many cards (a bulk refresh): indexes allocated per chunk,
    batch rows written in bulk, the signing spread over `workers` processes; `holder_keys(
    card_id, n)` gives the copies' public keys and `deliver(card_id, passes)` takes the passes.
    Returns how many passes were signed."""
    global _BULK_SIGNER
    settings = get_settings().card
    now = utcnow()
    signer = _signer(now)
    expires = datetime.fromtimestamp(signer.exp, UTC)
    cat = the_catalog()
    signed = 0
    _BULK_SIGNER = signer
    pool = _signing_pool(workers)

    def finish(
        plan: list[tuple[int, list[str], list[dict[str, str]]]],
        jobs: list[_Job],
        signed_jobs: list[list[str]],
    ) -> int:
        batch_rows = []
        count = 0
        for (card_id, tariffs, _keys), (_t, _k, slots), passes in zip(
            plan, jobs, signed_jobs, strict=True
        ):
            deliver(card_id, passes)
            count += len(passes)
            by_list: dict[int, list[int]] = defaultdict(list)
            for list_id, idx in slots:
                by_list[list_id].append(idx)
            for list_id, indexes in by_list.items():
                batch_rows.append(
                    {
                        "card_id": card_id,
                        "list_id": list_id,
                        "indexes": json.dumps(indexes),
                        "tariffs": json.dumps(tariffs),
                        "kid": signer.kid,
                        "state": BatchState.VALID.value,
                        "reason": None,
                        "issued_at": now,
                        "expires_at": expires,
                        "changed_at": None,
                    }
                )
        if batch_rows:
            repository.insert_batches(session, batch_rows)
        return count

    # A pipeline: while the workers sign one chunk, this process delivers and writes the last.
    pending: tuple[Any, list[_Job], Any] | None = None
    try:
        for start in range(0, len(card_ids), chunk):
            rows = repository.cards_for_issue(session, card_ids[start : start + chunk])
            plan = []
            for card_id, region, statuses, state in rows:
                tariffs = cat.tariffs_for(json.loads(statuses), region) if state == "active" else []
                if tariffs:
                    plan.append((card_id, tariffs, holder_keys(card_id, settings.batch_size)))
            runs = allocate_indexes(session, sum(len(keys) for _, _, keys in plan))
            flat = [(list_id, int(i)) for list_id, idx in runs for i in idx.tolist()]
            jobs: list[_Job] = []
            pos = 0
            for _card_id, tariffs, keys in plan:
                jobs.append((tariffs, keys, flat[pos : pos + len(keys)]))
                pos += len(keys)
            if pool is None:
                signed += finish(plan, jobs, _sign_jobs(jobs))
            else:
                step = -(-len(jobs) // (workers * 4)) or 1
                futures = [
                    pool.submit(_sign_jobs, jobs[i : i + step]) for i in range(0, len(jobs), step)
                ]
                if pending is not None:
                    signed += _finish_pending(pending, finish)
                pending = (plan, jobs, futures)
            if progress is not None:
                progress(min(start + chunk, len(card_ids)))
        if pending is not None:
            signed += _finish_pending(pending, finish)
    finally:
        if pool is not None:
            pool.shutdown()
        _BULK_SIGNER = None
    publish_lists(session, now=now)
    return signed


def suspend_card(session: Session, *, card_id: int, actor: Actor, reason: str) -> CardRead:
    """Suspend a card (a lost phone or chip): its passes answer invalid until resumed."""
    card = _card(session, card_id)
    card.state = CardState.SUSPENDED.value
    set_batches_state(session, card_ids=[card_id], state=BatchState.SUSPENDED, reason=reason)
    _audit(session, actor, "card.suspend", card.person_id, Purpose.CARD_SERVICE)
    return _card_read(card)


def resume_card(session: Session, *, card_id: int, actor: Actor) -> CardRead:
    """Lift a suspension: the suspended passes are valid again."""
    card = _card(session, card_id)
    if card.state == CardState.CLOSED:
        raise CardNotActive(f"card {card_id} is closed")
    card.state = CardState.ACTIVE.value
    set_batches_state(
        session,
        card_ids=[card_id],
        state=BatchState.VALID,
        reason="resumed",
        from_states=(BatchState.SUSPENDED,),
    )
    _audit(session, actor, "card.resume", card.person_id, Purpose.CARD_SERVICE)
    return _card_read(card)


def revoke_card(session: Session, *, card_id: int, actor: Actor | None, reason: str) -> int:
    """Revoke every unexpired pass of a card (for good); returns how many batches."""
    card = _card(session, card_id)
    count = set_batches_state(session, card_ids=[card_id], state=BatchState.REVOKED, reason=reason)
    if actor is not None:
        _audit(session, actor, "card.revoke", card.person_id, Purpose.CARD_SERVICE)
    return count


def _audit(session: Session, actor: Actor, action: str, person_id: int, purpose: Purpose) -> None:
    security_service.record_access(
        session,
        actor=actor,
        action=action,
        subject_type="person",
        subject_ids=[person_id],
        purpose=purpose,
    )


# --- revocation through the registry's event outbox --------------------------------------------


def _statuses_now(session: Session, family_id: int, period: str) -> dict[int, set[str]]:
    """Statuses of a family's current members evaluated now with the rule pack."""
    cat = the_catalog()
    try:
        evaluation = rules_service.evaluate_family(session, family_id=family_id, period=period)
    except NotFound:
        return {}
    out: dict[int, set[str]] = {pid: set() for pid in evaluation.members}
    family_wide: set[str] = set()
    for decision in evaluation.decisions:
        if not decision.eligible:
            continue
        for status, scope in cat.sources_of(decision.program_id):
            if scope == "family":
                family_wide.add(status)
            elif decision.person_id is not None and decision.person_id in out:
                out[decision.person_id].add(status)
    for statuses in out.values():
        statuses |= family_wide
    return out


def process_events(session: Session, *, limit: int = 1000) -> EventsProcessed:
    """Read the registry's life events from our cursor: a death closes the person's card and
    revokes its passes; any other event re-evaluates the family now, and a status lost revokes
    the passes of the cards that held it. Moves the cursor (caller's transaction)."""
    from socialcard.registry import events as registry_events

    events = registry_events.read_events(session, consumer=CONSUMER, limit=limit)
    if not events:
        return EventsProcessed(events=0, cards_changed=0, batches_revoked=0)
    now = utcnow()
    period = f"{today():%Y-%m}"
    families: set[int] = set()
    changed = revoked = 0
    for event in events:
        if event.kind == "death" and event.person_id is not None:
            card = repository.card_by_person(session, event.person_id)
            if card is not None and card.state != CardState.CLOSED:
                card.state = CardState.CLOSED.value
                card.statuses = "[]"
                card.updated_at = now
                changed += 1
                revoked += set_batches_state(
                    session, card_ids=[card.id], state=BatchState.REVOKED, reason="death", now=now
                )
        family_id = event.family_id
        if family_id is None and event.person_id is not None:
            family_id = registry_service.current_family_id(session, person_id=event.person_id)
        if family_id is not None:
            families.add(family_id)
    for family_id in sorted(families):
        statuses = _statuses_now(session, family_id, period)
        cards = repository.cards_by_person(session, sorted(statuses))
        for person_id, card in cards.items():
            if card.state == CardState.CLOSED:
                continue
            held = set(json.loads(card.statuses))
            now_held = statuses.get(person_id, set())
            if held == now_held:
                continue
            card.statuses = json.dumps(sorted(now_held))
            card.updated_at = now
            changed += 1
            if held - now_held:
                revoked += set_batches_state(
                    session, card_ids=[card.id], state=BatchState.REVOKED, reason="status_lost"
                )
    registry_events.acknowledge(session, consumer=CONSUMER, position=events[-1].id)
    session.flush()
    return EventsProcessed(events=len(events), cards_changed=changed, batches_revoked=revoked)


def watch_step(session: Session, *, synced_runs: dict[str, int]) -> dict[str, int]:
    """One step of the revocation job: life events from the outbox; a new stored rules run of
    this month re-syncs the cards (a decision ended is a status lost); idle kiosk sessions
    swept; changed lists re-signed. `synced_runs` (period -> run id) is the job's memory."""
    # A burst (a registry import of many deaths) is drained before the lists are signed, so
    # the step's latency stays bounded by the work, not by the poll interval.
    done = process_events(session)
    events, changed, revoked = done.events, done.cards_changed, done.batches_revoked
    for _ in range(50):
        if done.events < 1000:
            break
        done = process_events(session)
        events, changed, revoked = (
            events + done.events,
            changed + done.cards_changed,
            revoked + done.batches_revoked,
        )
    period = f"{today():%Y-%m}"
    run = rules_service.latest_run(session, period=period)
    resynced = 0
    if run is not None and synced_runs.get(period) != run.id:
        if period in synced_runs:  # the first step only remembers the run it found
            resynced = sync_cards(session, period=period).batches_revoked
        synced_runs[period] = run.id
    swept = sweep_kiosk_sessions(session)
    published = publish_lists(session)
    return {
        "events": events,
        "cards_changed": changed,
        "batches_revoked": revoked + resynced,
        "kiosk_sessions_swept": swept,
        "lists_signed": published.signed,
    }


# --- verification -----------------------------------------------------------------------------


class OnlineVerifier:
    """The server's verifier: keys and lists refreshed in the background, checks in memory."""

    def __init__(self) -> None:
        settings = get_settings().card
        self.verifier = Verifier(
            issuer=settings.issuer,
            audience=settings.audience,
            max_list_age=settings.online_max_age_seconds,
            replay_file=Path(settings.replay_file) if settings.replay_file else None,
        )
        self._versions: dict[int, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.refreshed_at = 0.0

    def refresh(self, session: Session) -> int:
        """Reload the JWKS and every list whose signed version changed; returns lists loaded."""
        with self._lock:
            self.verifier.set_keys(published_jwks())
            loaded = 0
            # Only the lists signed since the last refresh are read and parsed.
            for list_id, version, signed_at in repository.list_versions(session):
                mark = f"{version}:{signed_at}"
                if signed_at is None or self._versions.get(list_id) == mark:
                    continue
                token = repository.list_token(session, list_id)
                if token is None:
                    continue
                try:
                    self.verifier.load_list(token, uri=list_uri(list_id))
                except statuslist.StatusListError as exc:
                    log.warning("card_list_rejected", list_id=list_id, reason=exc.reason)
                    continue
                self._versions[list_id] = mark
                loaded += 1
            self.refreshed_at = time.monotonic()
            return loaded

    def start(self, session_factory: Callable[[], Any]) -> None:
        """Refresh every `refresh_seconds` in a daemon thread."""
        interval = get_settings().card.refresh_seconds

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    with session_factory() as session:
                        self.refresh(session)
                except Exception as exc:
                    log.warning("card_refresh_failed", error=type(exc).__name__)
                self._stop.wait(interval)

        self._thread = threading.Thread(target=loop, name="card-verifier", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def check(self, presentation: str, tariff: str) -> Outcome:
        return self.verifier.check(presentation, tariff=tariff, now=utcnow().timestamp())


_online: OnlineVerifier | None = None


def online_verifier() -> OnlineVerifier:
    """The process's online verifier (created on first use)."""
    global _online
    if _online is None:
        _online = OnlineVerifier()
    return _online


def reset_online_verifier() -> None:
    """Forget the process's verifier (tests, settings changes)."""
    global _online
    if _online is not None:
        _online.stop()
    _online = None


def verify_online(presentation: str, tariff: str) -> tuple[str, int | None]:
    """(result, valid_until epoch) for a merchant: no database, nothing else revealed."""
    outcome = online_verifier().check(presentation, tariff)
    if outcome.result != Verdict.VALID:
        log.info("card_verify_refused", result=outcome.result.value, reason=outcome.reason)
    return outcome.result.value, outcome.valid_until


def export_cache(session: Session, directory: Path) -> int:
    """Write what an offline verifier needs: `jwks.json` and every list's token."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "jwks.json").write_text(json.dumps(published_jwks()), encoding="utf-8")
    lists = directory / "lists"
    lists.mkdir(exist_ok=True)
    count = 0
    for list_id, _version, token in repository.list_tokens(session):
        if token is not None:
            (lists / f"{list_id}.jwt").write_text(token, encoding="ascii")
            count += 1
    return count


def published_list_uris(session: Session) -> list[str]:
    """The URIs of every published status list."""
    return [list_uri(i) for i, _v, token in repository.list_tokens(session) if token is not None]


def fetch_cache(base_url: str, directory: Path) -> int:
    """Fill an offline cache from a server: its JWKS and every published list."""
    import httpx

    base = base_url.rstrip("/")
    directory.mkdir(parents=True, exist_ok=True)
    lists = directory / "lists"
    lists.mkdir(exist_ok=True)
    with httpx.Client(timeout=30) as client:
        keys = client.get(f"{base}/.well-known/jwks.json")
        keys.raise_for_status()
        (directory / "jwks.json").write_text(keys.text, encoding="utf-8")
        uris = client.get(f"{base}/status").json()
        for n, uri in enumerate(uris):
            token = client.get(uri)
            if token.status_code == 200:
                (lists / f"{n + 1}.jwt").write_text(token.text, encoding="ascii")
    return len(uris)


def offline_verifier(directory: Path) -> Verifier:
    """A verifier from cached files only (JWKS and list tokens); a bad file is skipped, so its
    passes answer "cannot verify"."""
    settings = get_settings().card
    verifier = Verifier(
        issuer=settings.issuer,
        audience=settings.audience,
        max_list_age=settings.offline_max_age_seconds,
    )
    try:
        verifier.set_keys(json.loads((directory / "jwks.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        log.warning("card_offline_jwks_unreadable")
    for path in sorted((directory / "lists").glob("*.jwt")):
        try:
            if path.stat().st_size > statuslist.MAX_TOKEN:
                raise statuslist.StatusListError("list_size")
            verifier.load_list(path.read_text(encoding="ascii"))
        except (OSError, UnicodeDecodeError, statuslist.StatusListError):
            log.warning("card_offline_list_rejected", file=path.name)
    return verifier


_SEEN_FILE = "seen-nonces.json"


def offline_verify(
    directory: Path, presentation: str, tariff: str, *, now: float | None = None
) -> Outcome:
    """Verify offline with the cache in `directory`; the replay cache is kept there too."""
    verifier = offline_verifier(directory)
    now = utcnow().timestamp() if now is None else now
    seen_path = directory / _SEEN_FILE
    try:
        seen = json.loads(seen_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        seen = {}
    replay = ReplayCache(window=verifier.replay.window)
    verifier.replay = replay
    for nonce, expiry in seen.items() if isinstance(seen, dict) else []:
        if isinstance(nonce, str) and isinstance(expiry, int | float) and expiry > now:
            replay.first_use(nonce, now - replay.window + (expiry - now))
    outcome = verifier.check(presentation, tariff=tariff, now=now)
    kept = {n: e for n, e in replay.seen().items() if e > now}
    temporary = seen_path.with_suffix(".tmp")
    temporary.write_text(json.dumps(kept), encoding="utf-8")
    os.replace(temporary, seen_path)
    return outcome


def present_for_demo(sd_jwt: str, holder: ECKey, *, tariff: str, nonce: str | None = None) -> str:
    """What a wallet app does at the till: disclose one tariff and bind it to now."""
    settings = get_settings().card
    return sdjwt.present(
        sd_jwt,
        disclose=[tariff],
        holder=holder,
        audience=settings.audience,
        nonce=nonce or secrets.token_urlsafe(16),
        iat=int(utcnow().timestamp()),
    )


# --- linked bank cards ------------------------------------------------------------------------


def link_bank_card(
    session: Session,
    *,
    card_id: int,
    par: str | None,
    pan: str | None,
    notice_version: str | None,
    channel: str | None,
    actor: Actor,
) -> BankLinkRead:
    """Link a bank card by a keyed token of its PAR or PAN, with the holder's consent."""
    if not notice_version or not channel:
        raise ConsentMissing(
            "consent: linking a bank card needs the holder's consent (notice version, channel)",
            details=[field_error("consent", "required")],
        )
    expected = get_settings().card.consent_notice_version
    if notice_version != expected:
        raise ConsentMissing(
            f"consent.notice_version: the current notice is {expected}",
            details=[field_error("consent.notice_version", f"must be {expected}")],
        )
    kind, token = tokens.bank_token(par=par, pan=pan)
    card = _card(session, card_id)
    if card.state != CardState.ACTIVE:
        raise CardNotActive(f"card {card_id} is {card.state}")
    if repository.active_link_by_token(session, token) is not None:
        raise LinkExists("this bank card is already linked")
    now = utcnow()
    link = BankLink(
        card_id=card.id,
        kind=kind,
        token=token,
        active=True,
        consent_notice_version=notice_version,
        consent_at=now,
        consent_channel=channel,
        linked_at=now,
    )
    session.add(link)
    session.flush()
    _audit(session, actor, "card.bank_link", card.person_id, Purpose.CARD_SERVICE)
    return BankLinkRead.model_validate(link)


def unlink_bank_card(session: Session, *, link_id: int, actor: Actor) -> BankLinkRead:
    """Unlink at once: the next check of that card answers no."""
    link = repository.link_by_id(session, link_id)
    if link is None or not link.active:
        raise LinkNotFound(f"no active bank card link {link_id}")
    link.active = False
    link.unlinked_at = utcnow()
    card = _card(session, link.card_id)
    _audit(session, actor, "card.bank_unlink", card.person_id, Purpose.CARD_SERVICE)
    session.flush()
    return BankLinkRead.model_validate(link)


def bank_links(session: Session, *, card_id: int, actor: Actor | None = None) -> list[BankLinkRead]:
    """A card's bank links, current and past (no token, no number); an operator's read is
    audited."""
    if actor is not None:
        _audit(
            session,
            actor,
            "card.bank_links",
            _card(session, card_id).person_id,
            Purpose.CARD_SERVICE,
        )
    return [
        BankLinkRead.model_validate(link) for link in repository.links_of_card(session, card_id)
    ]


def check_bank_card(session: Session, *, par: str | None, pan: str | None, tariff: str) -> bool:
    """An acquirer's question: does the card behind this token have tariff X now? Yes/no."""
    _kind, token = tokens.bank_token(par=par, pan=pan)
    link = repository.active_link_by_token(session, token)
    if link is None:
        return False
    card = repository.card_by_id(session, link.card_id)
    if card is None or card.state != CardState.ACTIVE:
        return False
    return tariff in the_catalog().tariffs_for(json.loads(card.statuses), card.region_kato)


# --- chip cards and PINs ----------------------------------------------------------------------


def issue_chip(session: Session, *, card_id: int, actor: Actor) -> ChipIssued:
    """A chip identity for a card: an identifier and a key for the chip (the key is returned
    once and only its keyed hash kept). The chip holds nothing else."""
    card = _card(session, card_id)
    chip_id = secrets.token_hex(8)
    chip_key = tokens.new_secret_token()
    card.chip_id = chip_id
    card.chip_key_hash = tokens.keyed_hash(chip_key, label="chip")
    _audit(session, actor, "card.chip_issue", card.person_id, Purpose.CARD_SERVICE)
    session.flush()
    return ChipIssued(card_id=card.id, chip_id=chip_id, chip_key=chip_key)


def set_pin(session: Session, *, card_id: int, pin: str, actor: Actor) -> None:
    """Set (or, by an operator, reset) a card's PIN; the tries are restored, the block lifted.
    Audited: an unblock is an operator's act on a person's card."""
    tokens.check_pin_format(pin)
    card = _card(session, card_id)
    repository.begin_write(session)
    row = repository.pin_for_update(session, card_id)
    tries = get_settings().card.pin_tries
    if row is None:
        session.add(CardPin(card_id=card.id, pin_hash=tokens.hash_pin(pin), tries_left=tries))
    else:
        row.pin_hash = tokens.hash_pin(pin)
        row.tries_left = tries
        row.blocked_at = None
        row.set_at = utcnow()
    _audit(session, actor, "card.pin_set", card.person_id, Purpose.CARD_SERVICE)
    session.flush()


def pin_tries_left(session: Session, *, card_id: int) -> int | None:
    row = repository.pin_of(session, card_id)
    return None if row is None else row.tries_left


def verify_pin(session: Session, *, card_id: int, pin: str, commit: Callable[[], None]) -> None:
    """Check a PIN: the try is spent and committed before the check, so a crash in between
    still counts it; the third wrong PIN blocks the card until an operator resets it."""
    repository.begin_write(session)
    row = repository.pin_for_update(session, card_id)
    if row is None:
        raise PinNotSet(f"card {card_id} has no PIN")
    if row.tries_left <= 0:
        raise PinLocked("the PIN is blocked; an operator must reset it")
    row.tries_left -= 1
    if row.tries_left == 0:
        row.blocked_at = utcnow()
    stored = row.pin_hash
    session.flush()
    commit()
    crashpoint("pin_after_decrement")
    if not tokens.pin_matches(stored, pin):
        left = row.tries_left
        if left <= 0:
            raise PinLocked("wrong PIN; the PIN is now blocked; an operator must reset it")
        raise PinWrong(f"wrong PIN; {left} tries left", tries_left=left)
    repository.begin_write(session)
    row = repository.pin_for_update(session, card_id)
    if row is not None:
        row.tries_left = get_settings().card.pin_tries
        row.blocked_at = None
    session.flush()


# --- kiosk sessions ---------------------------------------------------------------------------


def start_kiosk_session(
    session: Session,
    *,
    chip_id: str,
    chip_key: str,
    pin: str,
    kiosk: Actor,
    address: str,
    commit: Callable[[], None],
) -> KioskSessionStarted:
    """Card + PIN at a kiosk: rate limits per card, kiosk and address (429), the chip's key,
    then the PIN (a spent try is committed first). Audited."""
    settings = get_settings().card
    _kiosk_limit("kiosk", str(kiosk.key_id), settings.rate_per_kiosk)
    _kiosk_limit("address", address, settings.rate_per_address)
    _kiosk_limit("card", chip_id, settings.rate_per_card)
    card = repository.card_by_chip(session, chip_id)
    if (
        card is None
        or card.chip_key_hash is None
        or not secrets.compare_digest(card.chip_key_hash, tokens.keyed_hash(chip_key, label="chip"))
    ):
        raise ChipKeyWrong("the card was not recognised")
    if card.state != CardState.ACTIVE:
        raise CardNotActive("this card is not active")
    verify_pin(session, card_id=card.id, pin=pin, commit=commit)
    token = tokens.new_secret_token()
    now = utcnow()
    session.add(
        KioskSession(
            token_hash=tokens.keyed_hash(token, label="kiosk"),
            card_id=card.id,
            kiosk_key_id=kiosk.key_id,
            started_at=now,
            last_seen_at=now,
        )
    )
    _audit(session, kiosk, "card.kiosk_start", card.person_id, Purpose.KIOSK_SESSION)
    session.flush()
    return KioskSessionStarted(token=token, idle_timeout_seconds=settings.kiosk_idle_seconds)


def _open_kiosk_session(session: Session, token: str, now: datetime) -> KioskSession:
    row = repository.kiosk_session_by_hash(session, tokens.keyed_hash(token, label="kiosk"))
    if row is None:
        raise KioskSessionNotFound("no such kiosk session (ended or timed out)")
    idle = get_settings().card.kiosk_idle_seconds
    if (now - row.last_seen_at).total_seconds() > idle:
        repository.delete_kiosk_session(session, row.id)
        session.flush()
        raise KioskSessionNotFound("the kiosk session timed out")
    return row


def _kiosk_limit(kind: str, key: str, per_minute: int) -> None:
    # The shared token buckets, one limiter per kind: a burst of a minute's allowance,
    # refilled at the same rate per second.
    ratelimit.limiter(f"kiosk_{kind}", rate=per_minute / 60, burst=per_minute)
    ratelimit.enforce(f"kiosk_{kind}", key, what=f"{kind} at kiosks")


def kiosk_view(session: Session, *, token: str, kiosk: Actor, lang: str = "kk") -> KioskView:
    """The citizen's view, assembled now from the domains' services (statuses and tariffs,
    benefits and decisions with explanations, offers, wallet); every read audited."""
    now = utcnow()
    _kiosk_limit("kiosk", str(kiosk.key_id), get_settings().card.rate_per_kiosk)
    row = _open_kiosk_session(session, token, now)
    repository.touch_kiosk_session(session, row.id, now)
    card = _card(session, row.card_id)
    cat = the_catalog()
    statuses = json.loads(card.statuses)
    language = lang if lang in ("kk", "ru", "en") else "kk"
    decisions: list[DecisionView] = []
    family_id = registry_service.current_family_id(session, person_id=card.person_id)
    if family_id is not None:
        try:
            evaluation = rules_service.evaluate_family(
                session, family_id=family_id, period=f"{today():%Y-%m}", lang=language
            )
        except (NotFound, InvalidInput):
            evaluation = None
        for d in evaluation.decisions if evaluation is not None else []:
            if d.eligible and (d.person_id == card.person_id or d.entity_type == "family"):
                decisions.append(
                    DecisionView(
                        program_id=d.program_id,
                        title=d.title,
                        eligible=d.eligible,
                        amount_minor=d.amount_minor,
                        explanation=d.explanation.conditions,
                    )
                )
    from socialcard.proactive import service as proactive_service
    from socialcard.wallet.vouchers import service as voucher_service

    offers = proactive_service.search_offers(
        session, actor=kiosk, purpose=Purpose.KIOSK_SESSION, person_id=card.person_id, size=20
    )
    wallet = voucher_service.citizen_wallet(session, person_id=card.person_id)
    _audit(session, kiosk, "card.kiosk_view", card.person_id, Purpose.KIOSK_SESSION)
    session.flush()
    return KioskView(
        card_id=card.id,
        statuses=[
            StatusView(code=s, title=cat.statuses[s].title[language])
            for s in statuses
            if s in cat.statuses
        ],
        tariffs=[
            TariffView(code=t, title=cat.tariffs[t].title[language])
            for t in cat.tariffs_for(statuses, card.region_kato)
        ],
        decisions=decisions,
        offers=[o.model_dump(mode="json") for o in offers.items],
        wallet=wallet.model_dump(mode="json"),
    )


def touch_kiosk_session(session: Session, *, token: str, kiosk: Actor) -> None:
    """The citizen is still at the kiosk (a key press, a touch): the idle clock restarts.
    Nothing is read, so nothing is audited; an ended or timed-out session is not found."""
    now = utcnow()
    _kiosk_limit("kiosk", str(kiosk.key_id), get_settings().card.rate_per_kiosk)
    row = _open_kiosk_session(session, token, now)
    repository.touch_kiosk_session(session, row.id, now)
    session.flush()


def end_kiosk_session(session: Session, *, token: str, kiosk: Actor) -> None:
    """Logout: the session row goes; only the audit record stays."""
    row = repository.kiosk_session_by_hash(session, tokens.keyed_hash(token, label="kiosk"))
    if row is None:
        raise KioskSessionNotFound("no such kiosk session (ended or timed out)")
    card = _card(session, row.card_id)
    repository.delete_kiosk_session(session, row.id)
    _audit(session, kiosk, "card.kiosk_end", card.person_id, Purpose.KIOSK_SESSION)
    session.flush()


def sweep_kiosk_sessions(session: Session, *, now: datetime | None = None) -> int:
    """Delete sessions idle past the timeout (a kiosk that lost power never logs out)."""
    now = now or utcnow()
    idle = timedelta(seconds=get_settings().card.kiosk_idle_seconds)
    return repository.delete_idle_kiosk_sessions(session, idle_before=now - idle)


def counts(session: Session) -> dict[str, Any]:
    """Cards by state and pass batches by state."""
    return {
        "cards": repository.count_cards(session),
        "batches": repository.batch_counts(session),
    }


def holder_keys_generated(count: int) -> tuple[list[ECKey], list[dict[str, str]]]:
    """Fresh holder key pairs, as a wallet app makes them (demo, benchmarks, tests)."""
    keys = [ECKey.generate_key("P-256", private=True) for _ in range(count)]
    return keys, [sdjwt.public_jwk(k) for k in keys]


def iter_active_card_ids(session: Session, limit: int | None = None) -> list[int]:
    """Ids of active cards that hold a status."""
    return repository.card_ids(session, active_only=True, limit=limit)


def chunked(values: Sequence[int], size: int) -> Iterable[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
