"""Structured JSON logging; personal data is never logged, only internal ids."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

MAX_TRACEBACK_LINES = 60  # the innermost frames of an error's traceback, no more


def bounded_traceback(
    logger: Any, method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Render `exc_info` as a plain traceback (no local variables: they may hold personal
    data) cut to its last MAX_TRACEBACK_LINES lines."""
    event = structlog.processors.format_exc_info(logger, method, event)
    text = event.get("exception")
    if isinstance(text, str):
        lines = text.splitlines()
        if len(lines) > MAX_TRACEBACK_LINES:
            cut = len(lines) - MAX_TRACEBACK_LINES
            lines = [f"... {cut} lines cut ...", *lines[-MAX_TRACEBACK_LINES:]]
        event["exception"] = "\n".join(lines)
    return event


class _StandardError:
    """sys.stderr as it is when a line is written, not when logging was configured (a test
    runner or a daemon may replace it, and close the one it replaced)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    """Configure structlog and stdlib logging once per process."""
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            bounded_traceback,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=_StandardError()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    """A bound logger for a module."""
    return structlog.get_logger(name)
