"""CLI root. Domains add their commands; this file only composes them."""

from __future__ import annotations

import typer

from socialcard.cli import ops
from socialcard.registry import cli as registry_cli
from socialcard.security import cli as security_cli

app = typer.Typer(
    name="socialcard",
    help="Proactive social benefits: registry, rules, campaigns, wallet and card.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
ops.register(app)
registry_cli.register(app)
security_cli.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
