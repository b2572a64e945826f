"""Outreach errors."""

from __future__ import annotations

from socialcard.core.errors import Conflict, NotFound


class SegmentNotFound(NotFound):
    code = "segment_not_found"


class CaseNotFound(NotFound):
    code = "outreach_case_not_found"


class SegmentExists(Conflict):
    code = "segment_exists"
