"""Errors of the population generator."""

from __future__ import annotations

from socialcard.core.errors import AppError, Conflict


class GenerationError(AppError):
    """The generator was asked for something it cannot do, or produced a row that fails."""

    code = "generation_failed"
    status_code = 422
    title = "Population generation failed"


class SeedAlreadyGenerated(Conflict):
    """The store already holds families generated from this seed."""

    code = "seed_already_generated"
