"""The pages' HTTP client fixture, shared by the page test modules."""

from tests.web.test_pages import web  # noqa: F401
