"""CLI root. Domains add their commands; this file only composes them."""

from __future__ import annotations

import typer

from socialcard.card import cli as card_cli
from socialcard.cli import demo, ops
from socialcard.core.config import get_settings
from socialcard.core.logging import configure_logging
from socialcard.jobs import cli as jobs_cli
from socialcard.proactive import cli as proactive_cli
from socialcard.registry import cli as registry_cli
from socialcard.reports import cli as reports_cli
from socialcard.rules import cli as rules_cli
from socialcard.security import cli as security_cli
from socialcard.security.accounts import cli as staff_cli
from socialcard.wallet import cli as wallet_cli
from socialcard.wellbeing import cli as wellbeing_cli

app = typer.Typer(
    name="socialcard",
    help="Proactive social benefits: registry, rules, campaigns, wallet and card.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def main() -> None:
    """Proactive social benefits: registry, rules, campaigns, wallet and card."""
    settings = get_settings()
    # Logs go to stderr so that stdout carries only a command's result (a key, a summary).
    configure_logging(settings.log_level, json=settings.log_json)


ops.register(app)
demo.register(app)
registry_cli.register(app)
security_cli.register(app)
staff_cli.register(app)
rules_cli.register(app)
wellbeing_cli.register(app)
proactive_cli.register(app)
wallet_cli.register(app)
reports_cli.register(app)
card_cli.register(app)
jobs_cli.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
