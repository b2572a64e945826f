"""Errors of the ingestion of agency data."""

from __future__ import annotations

from socialcard.core.errors import AppError, Conflict, InvalidInput, NotFound, PayloadTooLarge


class UnknownSource(NotFound):
    code = "unknown_source"


class BatchNotFound(NotFound):
    code = "batch_not_found"


class BatchKeyConflict(Conflict):
    """The batch key was already used for different content."""

    code = "batch_key_conflict"


class BatchInProgress(Conflict):
    """Another request is loading the same batch right now."""

    code = "batch_in_progress"


class FileRefused(InvalidInput):
    """The whole file cannot be imported (empty, unreadable, wrong columns); nothing was loaded."""

    code = "file_refused"
    title = "File refused"


class BatchFailed(AppError):
    """The file broke part-way; the chunks before the break stayed loaded, the batch is failed."""

    code = "batch_failed"
    status_code = 422
    title = "Batch failed"


class InvalidBatch(InvalidInput):
    """The batch request itself is wrong (no rows, no key, a bad agency name)."""

    code = "invalid_batch"


class TooManyRows(PayloadTooLarge):
    code = "too_many_rows"
