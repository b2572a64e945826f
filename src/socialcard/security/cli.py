"""`socialcard apikey|secrets|audit|approvals ...`: keys, the keyring, the audit chain and
maker–checker requests from the command line."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from sqlalchemy.orm import Session

from socialcard.core.db import session_scope
from socialcard.core.errors import AppError
from socialcard.security import approvals, keyring, service
from socialcard.security.schemas import Actor

console = Console(stderr=True)

# The acting person's key, for what needs a person (maker–checker): never the machine's user.
API_KEY_OPTION = typer.Option(
    None,
    "--api-key",
    envvar="SOCIALCARD_API_KEY",
    help="Your API key (or SOCIALCARD_API_KEY): who files or decides the request.",
    show_default=False,
)


def _fail(message: str) -> typer.Exit:
    console.print(f"error: {message}")
    return typer.Exit(2)


def key_actor(session: Session, api_key: str | None) -> Actor:
    """The person behind an API key given on the command line (maker or checker)."""
    if not api_key:
        raise _fail("give your API key with --api-key or SOCIALCARD_API_KEY")
    return service.authenticate(session, raw_key=api_key)


def register(app: typer.Typer) -> None:
    """Add `apikey`, `secrets`, `audit` and `approvals` to the root app."""
    key_app = typer.Typer(help="API keys for clients.", no_args_is_help=True)
    app.add_typer(key_app, name="apikey")

    @key_app.command("create")
    def create(
        name: str = typer.Option(..., help="Who the key is for."),
        role: str = typer.Option(
            ..., help="admin, policy_owner, operator, auditor, merchant, agency, ..."
        ),
        expires_in_days: int = typer.Option(None, min=1, help="Expire after this many days."),
        agency: str = typer.Option(None, help="Agency keys: the agency it speaks for."),
        sources: str = typer.Option(None, help="Agency keys: the sources it may push, a,b,c."),
        merchant_id: int = typer.Option(None, min=1, help="Merchant keys: the merchant."),
    ) -> None:
        """Issue a key (audited); it is printed once on stdout and stored as a keyed hash."""
        try:
            with session_scope() as session:
                created = service.create_api_key(
                    session,
                    name=name,
                    role=role,
                    expires_in_days=expires_in_days,
                    agency=agency,
                    sources=[s.strip() for s in sources.split(",")] if sources else None,
                    merchant_id=merchant_id,
                )
        except AppError as exc:
            raise _fail(exc.message) from None
        typer.echo(created.key)

    @key_app.command("list")
    def list_keys(
        role: str = typer.Option(None, help="Only this role."),
        all_: bool = typer.Option(False, "--all", help="Include revoked keys."),
    ) -> None:
        """The keys issued: id, role, name, binding, expiry (never the secrets)."""
        with session_scope() as session:
            keys, _ = service.list_api_keys(session, role=role, include_revoked=all_, limit=10_000)
        for k in keys:
            bound = (
                k.agency
                or (f"person {k.person_id}" if k.person_id else "")
                or (f"merchant {k.merchant_id}" if k.merchant_id else "")
            )
            state = (
                "revoked"
                if k.revoked_at
                else (f"expires {k.expires_at:%Y-%m-%d}" if k.expires_at else "")
            )
            typer.echo(f"{k.id}\t{k.role}\t{k.name}\t{k.key_prefix}…\t{bound}\t{state}")

    @key_app.command("revoke")
    def revoke(key_id: int = typer.Argument(..., min=1)) -> None:
        """Revoke a key now (audited); every server refuses it within the cache time."""
        try:
            with session_scope() as session:
                key = service.revoke_api_key(session, key_id=key_id, actor=service.system_actor())
        except AppError as exc:
            raise _fail(exc.message) from None
        typer.echo(f"revoked key {key.id} ({key.role} {key.name})")

    secrets_app = typer.Typer(help="The keyring of signing secrets.", no_args_is_help=True)
    app.add_typer(secrets_app, name="secrets")

    @secrets_app.command("show")
    def show() -> None:
        """Where the secrets come from and each purpose's key ids (never the secrets)."""
        try:
            ring = keyring.get_keyring()
            infos = keyring.describe(ring)
        except AppError as exc:
            raise _fail(exc.message) from None
        typer.echo(f"source: {ring.source}" + (f" ({ring.path})" if ring.path else ""))
        for info in infos:
            mark = "current" if info.current else "verifies"
            typer.echo(f"{info.purpose}\t{info.id}\t{mark}\t{info.created_at}")

    @secrets_app.command("init")
    def init(file: Path = typer.Option(..., help="Where to write the new keyring.")) -> None:
        """Write a new keyring file (owner-only) for SOCIALCARD_SECURITY__SECRETS_FILE."""
        if file.exists():
            raise _fail(f"{file} exists; rotate its keys instead")
        keyring.write_keyring_file(file, keyring.new_keyring_data())
        typer.echo(f"wrote {file}; set SOCIALCARD_SECURITY__SECRETS_FILE={file}")

    @secrets_app.command("rotate")
    def rotate(purpose: str = typer.Argument(..., help=", ".join(keyring.PURPOSES))) -> None:
        """Make a new current key for a purpose; what the older keys signed still verifies."""
        try:
            info = keyring.rotate(purpose)
        except AppError as exc:
            raise _fail(exc.message) from None
        typer.echo(f"{purpose}: new current key {info.id}")

    @secrets_app.command("retire")
    def retire(purpose: str = typer.Argument(...), key_id: str = typer.Argument(...)) -> None:
        """Remove an older key: what it signed (links, webhooks) stops verifying."""
        try:
            keyring.retire(purpose, key_id)
        except AppError as exc:
            raise _fail(exc.message) from None
        typer.echo(f"{purpose}: retired {key_id}")

    audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
    app.add_typer(audit_app, name="audit")

    @audit_app.command("verify")
    def verify() -> None:
        """Chain the rows not chained yet, then recompute the audit log's hash chain; exit 1
        and one line per problem (a changed, inserted or deleted row)."""
        with session_scope() as session:
            service.seal_audit(session)
        with session_scope() as session:
            result = service.verify_audit_chain(session)
        for problem in result.problems:
            typer.echo(problem)
        if not result.ok:
            raise typer.Exit(1)
        typer.echo(f"audit verify: clean ({result.rows:,} rows chained)")

    approvals_app = typer.Typer(help="Maker–checker requests.", no_args_is_help=True)
    app.add_typer(approvals_app, name="approvals")

    @approvals_app.command("list")
    def list_requests(
        status: str = typer.Option("pending", help="pending, approved, rejected or all"),
    ) -> None:
        """Requests: id, kind, status, maker, summary."""
        with session_scope() as session:
            rows, _ = approvals.list_approvals(
                session,
                status=None if status == "all" else status,
                kind=None,
                offset=0,
                limit=1000,
            )
        for r in rows:
            typer.echo(f"{r.id}\t{r.kind}\t{r.status}\t{r.maker_role}:{r.maker_name}\t{r.summary}")

    @approvals_app.command("approve")
    def approve(
        approval_id: int = typer.Argument(..., min=1), api_key: str = API_KEY_OPTION
    ) -> None:
        """Approve a request made by someone of another role; it takes effect now."""
        try:
            with session_scope() as session:
                result = approvals.approve(
                    session, actor=key_actor(session, api_key), approval_id=approval_id
                )
        except AppError as exc:
            raise _fail(exc.message) from None
        typer.echo(f"approved {result.id}: {result.summary}")
        outcome = result.result or {}
        if "funded" in outcome:
            typer.echo(f"funded {len(outcome['funded'])}, refused {len(outcome['refused'])}")
            for refused in outcome["refused"]:
                typer.echo(
                    f"  {refused['idempotency_key']}: {refused['code']}: {refused['message']}"
                )
        if "key" in outcome:
            typer.echo(str(outcome["key"]))  # shown once, to hand over

    @approvals_app.command("reject")
    def reject(
        approval_id: int = typer.Argument(..., min=1),
        reason: str = typer.Option(..., help="Why (kept with the request)."),
        api_key: str = API_KEY_OPTION,
    ) -> None:
        """Reject a request (or withdraw one's own)."""
        try:
            with session_scope() as session:
                result = approvals.reject(
                    session,
                    actor=key_actor(session, api_key),
                    approval_id=approval_id,
                    reason=reason,
                )
        except AppError as exc:
            raise _fail(exc.message) from None
        typer.echo(f"rejected {result.id}: {result.summary}")
