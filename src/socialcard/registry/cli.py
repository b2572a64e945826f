"""Registry commands: compose the population generator and the importers."""

from __future__ import annotations

import typer

from socialcard.registry.ingestion import cli as ingestion_cli
from socialcard.registry.population import cli as population_cli


def register(app: typer.Typer) -> None:
    """Add `generate` and `import` to the root app."""
    population_cli.register(app)
    ingestion_cli.register(app)
