"""`socialcard jobs ...`: start, list, show, cancel and resume stored jobs."""

from __future__ import annotations

from typing import Annotated

import typer

from socialcard.core.errors import AppError
from socialcard.jobs import service, worker
from socialcard.jobs.schemas import JobRead
from socialcard.security import service as security_service


def _fail(exc: AppError) -> typer.Exit:
    typer.echo(f"error: {exc.message}", err=True)
    return typer.Exit(2)


def _print(job: JobRead) -> None:
    typer.echo(job.model_dump_json())


def _ended(job: JobRead) -> None:
    _print(job)
    if job.status != "succeeded":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the `jobs` command group."""
    jobs = typer.Typer(
        help="Long work as stored jobs: rules runs, campaigns, scoring, the ledger check.",
        no_args_is_help=True,
    )
    app.add_typer(jobs, name="jobs")

    @jobs.command("start")
    def start(
        kind: Annotated[str, typer.Argument(help="rules_run | campaign | scoring | check")],
        period: Annotated[str | None, typer.Option("--period", help="YYYY-MM")] = None,
        months: Annotated[int, typer.Option("--months", min=1, max=24)] = 1,
        program: Annotated[
            list[str] | None, typer.Option("--program", help="A campaign's program; a rules run's")
        ] = None,
        methodology: Annotated[str | None, typer.Option("--methodology", "-m")] = None,
    ) -> None:
        """Start a job and run it here to its end (its final state printed as JSON; exit 1
        unless it succeeded). Another process reads its progress with `jobs show`."""
        params: dict[str, object] = {}
        if kind == "rules_run":
            params = {"period": period, "months": months, "programs": program or None}
        elif kind == "campaign":
            params = {"program_id": (program or [""])[0], "period": period}
        elif kind == "scoring":
            params = {"period": period, "methodology": methodology}
        if kind != "check" and period is None:
            typer.echo("error: --period is required", err=True)
            raise typer.Exit(2)
        actor = security_service.system_actor()
        try:
            job = worker.start(kind, params, actor=None, started_by=actor.name, background=False)
        except AppError as exc:
            raise _fail(exc) from None
        _ended(job)

    @jobs.command("list")
    def list_(
        kind: Annotated[str | None, typer.Option("--kind")] = None,
        status: Annotated[str | None, typer.Option("--status")] = None,
        limit: Annotated[int, typer.Option("--limit", min=1, max=200)] = 20,
    ) -> None:
        """Jobs newest first, one JSON line each (interrupted jobs are marked failed first)."""
        service.recover()
        for job in service.list_jobs(kind=kind, status=status, size=limit).items:
            _print(job)

    @jobs.command("show")
    def show(job_id: int) -> None:
        """One job's state as JSON."""
        service.recover()
        try:
            _print(service.get(job_id=job_id))
        except AppError as exc:
            raise _fail(exc) from None

    @jobs.command("cancel")
    def cancel(job_id: int) -> None:
        """Ask a job to stop (a running one stops at its next chunk)."""
        try:
            _print(service.cancel(job_id=job_id, actor=None))
        except AppError as exc:
            raise _fail(exc) from None

    @jobs.command("resume")
    def resume(job_id: int) -> None:
        """Run a failed or cancelled job again here, to its end (exit 1 unless it succeeded)."""
        try:
            job = worker.resume(job_id, actor=None, background=False)
        except AppError as exc:
            raise _fail(exc) from None
        _ended(job)
