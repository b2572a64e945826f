"""`socialcard card ...`: cards, passes, revocation, verification, bank links, PINs, kiosks."""

from __future__ import annotations

import getpass
import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from joserfc.jwk import ECKey
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from socialcard.card import qr, service
from socialcard.core.db import session_scope
from socialcard.core.errors import AppError
from socialcard.security.enums import Purpose
from socialcard.security.schemas import Actor

console = Console(stderr=True)


def _actor(role: str = "operator") -> Actor:
    return Actor(key_id=None, name=f"cli:{getpass.getuser()}", role=role)


def _fail(message: str) -> typer.Exit:
    console.print(f"error: {message}")
    return typer.Exit(2)


def _secret_from_stdin(what: str) -> str:
    """A PIN or card number read from standard input (never from the command line, where
    it would land in the shell history and the process list)."""
    if sys.stdin.isatty():
        return getpass.getpass(f"{what}: ")
    return sys.stdin.readline().strip()


def _echo(value: Any) -> None:
    typer.echo(json.dumps(value, default=str, ensure_ascii=False))


def _progress(label: str) -> Progress:
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


# --- the holder's side (a wallet file stands in for the phone app) ------------------------------


def save_wallet(path: Path, card_id: int, passes: list[str], keys: list[ECKey]) -> None:
    """Write a wallet file: the passes and their holder keys (the citizen's, not the
    issuer's; readable by its owner only)."""
    data = {
        "card_id": card_id,
        "copies": [
            {"pass": p, "holder_key": k.as_dict(private=True), "used": False}
            for p, k in zip(passes, keys, strict=True)
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    path.chmod(0o600)


def present_from_wallet(path: Path, tariff: str) -> str:
    """A presentation from the next unused copy of a wallet file (then marked used)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    for copy in data["copies"]:
        if not copy["used"]:
            copy["used"] = True
            path.write_text(json.dumps(data), encoding="utf-8")
            holder = ECKey.import_key(copy["holder_key"])
            return service.present_for_demo(copy["pass"], holder, tariff=tariff)
    raise _fail("every copy in the wallet has been used; issue a new batch")


def register(app: typer.Typer) -> None:
    """Add `card` to the root app."""
    card = typer.Typer(
        help="The virtual social card: passes, revocation, verification, bank cards, kiosks.",
        no_args_is_help=True,
    )
    app.add_typer(card, name="card")
    pin = typer.Typer(help="Chip card PINs.", no_args_is_help=True)
    card.add_typer(pin, name="pin")
    kiosk = typer.Typer(help="Kiosk sessions (card + PIN).", no_args_is_help=True)
    card.add_typer(kiosk, name="kiosk")

    @card.command("sync")
    def sync(period: Annotated[str | None, typer.Option(help="YYYY-MM")] = None) -> None:
        """Cards for every person with a status in the period's latest stored rules run."""
        try:
            with _progress("cards") as bar, session_scope() as session:
                task = bar.add_task("cards", total=None)
                result = service.sync_cards(
                    session,
                    period=period,
                    progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
                service.publish_lists(session)
        except AppError as exc:
            raise _fail(exc.message) from None
        _echo(result.model_dump())

    @card.command("show")
    def show(
        card_id: Annotated[int | None, typer.Option(min=1)] = None,
        person_id: Annotated[int | None, typer.Option(min=1)] = None,
        purpose: Annotated[Purpose, typer.Option()] = Purpose.CITIZEN_INQUIRY,
    ) -> None:
        """One card with its statuses and tariffs (audited)."""
        try:
            with session_scope() as session:
                if card_id is not None:
                    read = service.card_view(
                        session, card_id=card_id, actor=_actor(), purpose=purpose
                    )
                elif person_id is not None:
                    read = service.card_for_person(
                        session, person_id=person_id, actor=_actor(), purpose=purpose
                    )
                else:
                    raise _fail("give --card-id or --person-id")
        except AppError as exc:
            raise _fail(exc.message) from None
        _echo(read.model_dump(mode="json"))

    @card.command("issue")
    def issue(
        card_id: Annotated[int, typer.Option(min=1)],
        wallet: Annotated[Path, typer.Option(help="Where the holder's passes and keys go.")],
        copies: Annotated[int, typer.Option(min=1, max=50)] = 4,
    ) -> None:
        """Issue (or refresh) a batch of passes into a wallet file (the holder's keys are made
        here, as a phone app would make them)."""
        keys, public = service.holder_keys_generated(copies)
        try:
            with session_scope() as session:
                batch = service.issue_passes(session, card_id=card_id, holder_keys=public)
        except AppError as exc:
            raise _fail(exc.message) from None
        save_wallet(wallet, card_id, batch.passes, keys)
        _echo({"batch_id": batch.batch_id, "copies": len(batch.passes), "tariffs": batch.tariffs})

    @card.command("issue-all")
    def issue_all(
        limit: Annotated[int | None, typer.Option(min=1)] = None,
        out: Annotated[Path | None, typer.Option(help="JSON Lines of the passes.")] = None,
        workers: Annotated[int, typer.Option(min=1, max=16, help="Signing processes.")] = 2,
    ) -> None:
        """Issue one batch for every active card with a tariff (bulk, with a progress bar).
        Holder keys are generated per copy, standing in for the holders' apps."""
        sink = out.open("w", encoding="utf-8") if out is not None else None

        def deliver(card_id: int, passes: list[str]) -> None:
            if sink is not None:
                sink.write(json.dumps({"card_id": card_id, "passes": passes}) + "\n")

        def keys(_card_id: int, n: int) -> list[dict[str, str]]:
            return service.holder_keys_generated(n)[1]

        started = time.perf_counter()
        try:
            with session_scope() as session:
                ids = service.iter_active_card_ids(session, limit=limit)
                with _progress("passes") as bar:
                    task = bar.add_task("cards", total=len(ids))
                    signed = service.issue_passes_bulk(
                        session,
                        card_ids=ids,
                        holder_keys=keys,
                        deliver=deliver,
                        workers=workers,
                        progress=lambda done: bar.update(task, completed=done),
                    )
                service.publish_lists(session)
        finally:
            if sink is not None:
                sink.close()
        _echo(
            {
                "cards": len(ids),
                "passes": signed,
                "seconds": round(time.perf_counter() - started, 1),
            }
        )

    @card.command("present")
    def present(
        wallet: Annotated[Path, typer.Option()],
        tariff: Annotated[str, typer.Option()],
        show_qr: Annotated[bool, typer.Option("--qr/--no-qr")] = False,
    ) -> None:
        """Make a presentation (one tariff disclosed, bound to now) from a wallet file."""
        presentation = present_from_wallet(wallet, tariff)
        if show_qr:
            qr.make_qr(presentation).terminal(compact=True)
            measure = qr.measure(presentation)
            console.print(
                f"{measure.packed_bytes} bytes, QR version {measure.packed_version} (L); "
                f"as text {measure.text_bytes} bytes, version {measure.text_version}"
            )
        typer.echo(presentation)

    @card.command("verify")
    def verify(
        presentation: Annotated[str, typer.Argument(help="The presentation, or - for stdin.")],
        tariff: Annotated[str, typer.Option()],
        offline: Annotated[
            Path | None, typer.Option(help="Verify offline with this cache.")
        ] = None,
        url: Annotated[str | None, typer.Option(help="Verify online at this server.")] = None,
        api_key: Annotated[str | None, typer.Option(envvar="SOCIALCARD_API_KEY")] = None,
    ) -> None:
        """Verify a presentation: offline from a cache (`card cache`), or online at a server."""
        text = sys.stdin.readline().strip() if presentation == "-" else presentation
        if offline is not None:
            outcome = service.offline_verify(offline, text, tariff)
            _echo({"result": outcome.result.value, "valid_until": outcome.valid_until})
            raise typer.Exit(0 if outcome.result.value == "valid" else 1)
        if url is None or api_key is None:
            raise _fail("give --offline DIR, or --url and --api-key (a merchant key)")
        import httpx

        answer = httpx.post(
            f"{url.rstrip('/')}/api/v1/card/verify",
            json={"presentation": text, "tariff": tariff},
            headers={"X-API-Key": api_key},
            timeout=10,
        )
        _echo(answer.json())
        raise typer.Exit(
            0 if answer.status_code == 200 and answer.json()["result"] == "valid" else 1
        )

    @card.command("cache")
    def cache(
        directory: Annotated[Path, typer.Option("--dir")],
        url: Annotated[str | None, typer.Option(help="Fetch from this server.")] = None,
    ) -> None:
        """Refresh an offline verifier's cache: the JWKS and every status list, from the local
        store or from a server's published URLs."""
        if url is None:
            with session_scope() as session:
                count = service.export_cache(session, directory)
        else:
            count = service.fetch_cache(url, directory)
        _echo({"lists": count, "dir": str(directory)})

    @card.command("revoke")
    def revoke(card_id: Annotated[int, typer.Option(min=1)]) -> None:
        """Revoke every pass of a card."""
        with session_scope() as session:
            n = service.revoke_card(session, card_id=card_id, actor=_actor(), reason="operator")
            service.publish_lists(session)
        _echo({"batches_revoked": n})

    @card.command("suspend")
    def suspend(card_id: Annotated[int, typer.Option(min=1)]) -> None:
        """Suspend a card's passes."""
        with session_scope() as session:
            read = service.suspend_card(
                session, card_id=card_id, actor=_actor(), reason="suspended"
            )
            service.publish_lists(session)
        _echo(read.model_dump(mode="json"))

    @card.command("resume")
    def resume(card_id: Annotated[int, typer.Option(min=1)]) -> None:
        """Lift a suspension."""
        with session_scope() as session:
            read = service.resume_card(session, card_id=card_id, actor=_actor())
            service.publish_lists(session)
        _echo(read.model_dump(mode="json"))

    @card.command("watch")
    def watch(
        once: Annotated[bool, typer.Option("--once", help="One step, then exit.")] = False,
    ) -> None:
        """The revocation job: life events and new rules runs -> status lists re-signed as they
        change; idle kiosk sessions swept."""
        from socialcard.core.config import get_settings

        interval = get_settings().card.watch_interval_seconds
        synced_runs: dict[str, int] = {}
        while True:
            with session_scope() as session:
                done = service.watch_step(session, synced_runs=synced_runs)
            if once:
                _echo(done)
                return
            if done["events"] or done["lists_signed"] or done["batches_revoked"]:
                console.print(" ".join(f"{k} {v}" for k, v in done.items()))
            time.sleep(interval)

    @card.command("publish")
    def publish(force: Annotated[bool, typer.Option("--force")] = False) -> None:
        """Re-sign the status lists that changed (or all with --force)."""
        with session_scope() as session:
            _echo(service.publish_lists(session, force=force).model_dump())

    @card.command("rotate-keys")
    def rotate_keys() -> None:
        """A new issuer signing key; the old one verifies until its passes expire."""
        _echo({"kid": service.rotate_keys()})

    @card.command("jwks")
    def show_jwks() -> None:
        """The published JWKS."""
        _echo(service.published_jwks())

    @card.command("link")
    def link(
        card_id: Annotated[int, typer.Option(min=1)],
        channel: Annotated[str, typer.Option()] = "office",
        notice_version: Annotated[str | None, typer.Option()] = None,
        par: Annotated[
            bool, typer.Option("--par", help="Read a PAR (not a PAN) from stdin.")
        ] = False,
    ) -> None:
        """Link a bank card: its PAN (or PAR with --par) is read from stdin, never stored."""
        from socialcard.core.config import get_settings

        value = _secret_from_stdin("PAR" if par else "card number")
        try:
            with session_scope() as session:
                read = service.link_bank_card(
                    session,
                    card_id=card_id,
                    par=value if par else None,
                    pan=None if par else value,
                    notice_version=notice_version or get_settings().card.consent_notice_version,
                    channel=channel,
                    actor=_actor(),
                )
        except AppError as exc:
            raise _fail(exc.message) from None
        _echo(read.model_dump(mode="json"))

    @card.command("unlink")
    def unlink(link_id: Annotated[int, typer.Option(min=1)]) -> None:
        """Unlink a bank card (at once)."""
        try:
            with session_scope() as session:
                read = service.unlink_bank_card(session, link_id=link_id, actor=_actor())
        except AppError as exc:
            raise _fail(exc.message) from None
        _echo(read.model_dump(mode="json"))

    @card.command("chip")
    def chip(card_id: Annotated[int, typer.Option(min=1)]) -> None:
        """A chip identity for a card (identifier and key, shown once)."""
        with session_scope() as session:
            _echo(service.issue_chip(session, card_id=card_id, actor=_actor()).model_dump())

    @pin.command("set")
    def pin_set(card_id: Annotated[int, typer.Option(min=1)]) -> None:
        """Set or reset (unblock) a card's PIN, read from stdin; audited."""
        value = _secret_from_stdin("PIN")
        try:
            with session_scope() as session:
                service.set_pin(session, card_id=card_id, pin=value, actor=_actor())
        except AppError as exc:
            raise _fail(exc.message) from None
        _echo({"card_id": card_id, "pin": "set"})

    @pin.command("check")
    def pin_check(card_id: Annotated[int, typer.Option(min=1)]) -> None:
        """Check a PIN read from stdin (spends a try first, as a kiosk does)."""
        value = _secret_from_stdin("PIN")
        try:
            with session_scope() as session:
                service.verify_pin(session, card_id=card_id, pin=value, commit=session.commit)
        except AppError as exc:
            raise _fail(exc.message) from None
        _echo({"card_id": card_id, "pin": "ok"})

    @kiosk.command("sweep")
    def kiosk_sweep() -> None:
        """Delete kiosk sessions idle past the timeout."""
        with session_scope() as session:
            _echo({"deleted": service.sweep_kiosk_sessions(session)})

    @kiosk.command("start")
    def kiosk_start(
        chip_id: Annotated[str, typer.Option()],
        chip_key: Annotated[str, typer.Option()],
    ) -> None:
        """Open a kiosk session with card + PIN (PIN from stdin)."""
        value = _secret_from_stdin("PIN")
        try:
            with session_scope() as session:
                started = service.start_kiosk_session(
                    session,
                    chip_id=chip_id,
                    chip_key=chip_key,
                    pin=value,
                    kiosk=_actor("kiosk"),
                    address="cli",
                    commit=session.commit,
                )
        except AppError as exc:
            raise _fail(exc.message) from None
        _echo(started.model_dump())

    @kiosk.command("read")
    def kiosk_read(token: Annotated[str, typer.Option()], lang: str = "kk") -> None:
        """The citizen's view in a kiosk session."""
        try:
            with session_scope() as session:
                view = service.kiosk_view(session, token=token, kiosk=_actor("kiosk"), lang=lang)
        except AppError as exc:
            raise _fail(exc.message) from None
        _echo(view.model_dump(mode="json"))

    @kiosk.command("end")
    def kiosk_end(token: Annotated[str, typer.Option()]) -> None:
        """End a kiosk session."""
        try:
            with session_scope() as session:
                service.end_kiosk_session(session, token=token, kiosk=_actor("kiosk"))
        except AppError as exc:
            raise _fail(exc.message) from None
        _echo({"ended": True})
