"""HTTP plumbing: request ids and security headers, the request guard (rate limit per address,
authentication before the body, body size, strict JSON), problem+json errors, the OpenAPI
document's completion."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from socialcard.core import ratelimit
from socialcard.core.config import get_settings
from socialcard.core.errors import (
    AppError,
    InvalidInput,
    PayloadTooLarge,
    ServiceUnavailable,
    TooManyRequests,
    field_error,
)
from socialcard.core.logging import get_logger

log = get_logger(__name__)
PROBLEM_JSON = "application/problem+json"
# Where RequestGuard leaves a JSON body it parsed, for a handler that reads the raw request.
PARSED_JSON = "socialcard.parsed_json"


# --- request ids and security headers ----------------------------------------------------------

# Pages of the application (the citizen's consent page, later the web pages): nothing from
# elsewhere, never framed, the link's token never sent on as a referrer, never cached.
APP_PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# The API docs (Swagger UI, ReDoc) start with an inline script and style and ReDoc runs a
# web worker from a blob; their assets are served by this server (fastapi-offline).
DOCS_PAGE_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
_EVERY_RESPONSE = [(b"x-content-type-options", b"nosniff")]
_NO_STORE = (b"cache-control", b"no-store")
_PAGE_HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (b"pragma", b"no-cache"),
]


class RequestIdMiddleware:
    """Gives every request an id of the server's own (echoed in X-Request-ID; a caller's
    X-Request-ID is kept beside it as `client_request_id`, never used as the id: a client must
    not choose, repeat or forge the id the audit log records), and sets the security headers:
    nosniff everywhere; on HTML a content security policy with frame-ancestors 'none', no
    referrer and no caching; no caching of the API's answers (personal data and money)."""

    def __init__(self, app: ASGIApp, *, docs_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.docs_paths = frozenset(docs_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client_id = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                # Printable ASCII only, bounded: it is stored and shown as given.
                text = value.decode("latin-1")[:64]
                client_id = "".join(ch for ch in text if " " < ch < "\x7f") or None
                break
        request_id = uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["client_request_id"] = client_id
        path: str = scope["path"]
        api = path.startswith("/api/")
        docs = path in self.docs_paths

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.setdefault("headers", [])
                headers.append((b"x-request-id", request_id.encode()))
                headers.extend(_EVERY_RESPONSE)
                if api:
                    _set_no_store(headers)
                elif _is_html(headers):
                    csp = DOCS_PAGE_CSP if docs else APP_PAGE_CSP
                    headers.append((b"content-security-policy", csp.encode()))
                    headers.extend(_PAGE_HEADERS)
                    _set_no_store(headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _set_no_store(headers: list[tuple[bytes, bytes]]) -> None:
    # Personal data and money: no cache keeps the answer, whatever a route set.
    headers[:] = [(n, v) for n, v in headers if n.lower() != b"cache-control"]
    headers.append(_NO_STORE)


def _is_html(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name.lower() == b"content-type":
            return value.lower().startswith(b"text/html")
    return False


# --- strict JSON -------------------------------------------------------------------------------


def parse_json(body: bytes, *, max_depth: int | None = None) -> Any:
    """A request body's JSON, or InvalidInput (422, field `body`) saying why not.

    Stricter than the standard parser, the same for every route: no NaN or Infinity, no number
    past a double (1e999), no lone surrogate (it cannot be stored or answered as UTF-8), no
    nesting deeper than `server.max_json_depth` (the standard parser recurses and fails with
    a RecursionError). Integers past 64 bits are read as floats here, so a field declared as
    an integer refuses them by name.
    """
    depth = max_depth if max_depth is not None else get_settings().server.max_json_depth
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth" in exc.msg:
            raise _too_deep(depth) from None
        reason = f"not valid JSON: {exc.msg} (at byte {exc.pos})"
        raise InvalidInput(f"body: {reason}", details=[field_error("body", reason)]) from None
    # Nesting cannot pass the depth with fewer opening brackets than that: skip the walk.
    if body.count(b"[") + body.count(b"{") > depth and _deeper_than(value, depth):
        raise _too_deep(depth)
    return value


def _too_deep(depth: int) -> InvalidInput:
    reason = f"JSON nested deeper than {depth} levels"
    return InvalidInput(f"body: {reason}", details=[field_error("body", reason)])


def _deeper_than(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, level = stack.pop()
        if level > limit:
            return True
        if isinstance(node, dict):
            stack.extend((child, level + 1) for child in node.values() if _container(child))
        elif isinstance(node, list):
            stack.extend((child, level + 1) for child in node if _container(child))
    return False


def _container(value: Any) -> bool:
    return isinstance(value, dict | list)


def _is_json(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


# --- the request guard -------------------------------------------------------------------------

# Checks a request's credentials before its body is read: None when they are good, else the
# problem to answer (401). Domains register one per authentication dependency (app.py).
Authenticator = Callable[[Scope], Awaitable[AppError | None]]
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_RULES_CACHED = 10_000


@dataclass(frozen=True, slots=True)
class _RouteRule:
    authenticate: Authenticator | None
    max_body: int


class RequestGuard:
    """What every request passes before a route (or the redemption hot path) sees it.

    1. Its client address's rate limit (`limits.address_*`): requests without credentials and
       failed authentications (401/403) spend from it; while it is empty, 429 with Retry-After.
    2. For a request with a body: the declared size (413 from Content-Length, unread), then
       the route's credentials (401, unread; the route's authentication dependency names the
       check, see `authenticators`), then the body read up to the route's limit (413), then,
       for JSON, `parse_json` (422 naming the problem).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        authenticators: Mapping[Callable[..., Any], Authenticator] | None = None,
        credential_headers: Iterable[str] = (),
        exempt_paths: Iterable[str] = ("/health",),
    ) -> None:
        self.app = app
        self.authenticators = dict(authenticators or {})
        self.credential_headers = frozenset(h.lower().encode() for h in credential_headers)
        self.exempt_paths = frozenset(exempt_paths)
        settings = get_settings().server
        self.max_body, self.max_depth = settings.max_body_bytes, settings.max_json_depth
        self._rules: dict[tuple[str, str], _RouteRule] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt_paths:
            await self.app(scope, receive, send)
            return
        addresses = ratelimit.limiter("address")
        address = _client_address(scope)
        headers = scope["headers"]
        credentialed = any(name in self.credential_headers for name, _ in headers)
        wait = addresses.wait(address) if credentialed else addresses.take(address)
        if wait > 0:
            limited = TooManyRequests(
                "too many requests without valid credentials from this address",
                retry_after=wait,
            )
            await send_problem(send, limited, scope["path"])
            return

        async def send_counting_failures(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (401, 403):
                addresses.charge(address)
            await send(message)

        if scope["method"] in _BODY_METHODS:
            body_receive = await self._admit_body(scope, receive, send_counting_failures)
            if body_receive is None:
                return
            receive = body_receive
        await self.app(scope, receive, send_counting_failures)

    async def _admit_body(self, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """The body checked and buffered (a receive that replays it), or None once refused."""
        rule = self._rule(scope)
        headers = scope["headers"]
        declared = _content_length(headers)
        if declared is not None and declared > rule.max_body:
            await send_problem(send, _too_large(rule.max_body), scope["path"])
            return None
        if rule.authenticate is not None:
            refused = await rule.authenticate(scope)
            if refused is not None:
                await send_problem(send, refused, scope["path"])
                return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _replay(b"", receive, message)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > rule.max_body:
                await send_problem(send, _too_large(rule.max_body), scope["path"])
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and _is_json(headers):
            try:
                scope[PARSED_JSON] = parse_json(body, max_depth=self.max_depth)
            except InvalidInput as exc:
                await send_problem(send, exc, scope["path"])
                return None
        return _replay(body, receive)

    def _rule(self, scope: Scope) -> _RouteRule:
        key = (scope["method"], scope["path"])
        found = self._rules.get(key)
        if found is None:
            found = self._match(scope)
            if len(self._rules) < _RULES_CACHED:
                self._rules[key] = found
        return found

    def _match(self, scope: Scope) -> _RouteRule:
        # The routes as the router sees them (included routers' prefixes, dependencies and
        # body limits applied).
        for route in iter_route_contexts(getattr(scope.get("app"), "routes", ())):
            if not isinstance(route.original_route, APIRoute):
                continue
            if route.matches(scope)[0] == Match.FULL:
                calls = {dep.call for dep in _dependencies(route.dependant)}
                check = next((c for f, c in self.authenticators.items() if f in calls), None)
                limit = route.max_body_size if route.max_body_size is not None else self.max_body
                return _RouteRule(check, limit)
        return _RouteRule(None, self.max_body)


def _dependencies(dependant: Any) -> Iterator[Any]:
    for dep in dependant.dependencies:
        yield dep
        yield from _dependencies(dep)


def _replay(body: bytes, receive: Receive, first: Message | None = None) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return first or {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _content_length(headers: Sequence[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _too_large(limit: int) -> PayloadTooLarge:
    reason = f"the body is larger than {limit:,} bytes"
    return PayloadTooLarge(reason, code="body_too_large", details=[field_error("body", reason)])


async def send_problem(send: Send, exc: AppError, path: str) -> None:
    """Answer an AppError from ASGI code (middleware, the hot path) as problem+json."""
    body = orjson.dumps(exc.to_problem(path))
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().encode(), v.encode()) for k, v in exc.headers.items()),
    ]
    await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --- errors ------------------------------------------------------------------------------------


def problem_response(
    status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or ".".join(str(p) for p in loc)


def install_error_handlers(app: FastAPI) -> None:
    """Render every error as RFC 9457 problem+json; unexpected ones as a generic 500."""

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> JSONResponse:
        return problem_response(exc.status_code, exc.to_problem(request.url.path), exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problem = invalid_input(exc.errors()).to_problem(request.url.path)
        return problem_response(422, problem)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            exc.status_code, "http_error"
        )
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Every method of the path: Starlette names only the first route's (a path with
            # a GET and a POST route answered "Allow: GET, HEAD").
            headers["Allow"] = ", ".join(_allowed_methods(request.app, request.scope))
        return problem_response(
            exc.status_code,
            {
                "type": f"https://socialcard.example/problems/{code}",
                "title": str(exc.detail),
                "status": exc.status_code,
                "detail": str(exc.detail),
                "code": code,
                "instance": request.url.path,
            },
            headers,
        )

    async def store_error(request: Request, exc: Exception) -> JSONResponse:
        # Inside the middleware (request id and headers kept); anything else goes on to the
        # generic 500 below.
        known = expected_problem(exc)
        if known is None:
            raise exc
        return problem_response(
            known.status_code, known.to_problem(request.url.path), known.headers
        )

    app.add_exception_handler(SQLAlchemyError, store_error)
    app.add_exception_handler(OverflowError, store_error)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        known = expected_problem(exc)
        if known is not None:
            return problem_response(
                known.status_code, known.to_problem(request.url.path), known.headers
            )
        request_id = getattr(request.state, "request_id", None)
        log.exception("unexpected_error", path=request.url.path, request_id=request_id)
        return problem_response(500, internal_problem(request_id))


def _allowed_methods(app: Any, scope: Scope) -> list[str]:
    probe = {**scope, "method": "\x00"}  # a method no route has: every path match is partial
    methods: set[str] = set()
    for route in iter_route_contexts(getattr(app, "routes", ())):
        found = getattr(route, "methods", None)
        if found and route.matches(probe)[0] != Match.NONE:
            methods.update(found)
    return sorted(methods)


_STRICT_REASONS = {
    "int_type": "must be a JSON integer (not a string, a fraction or a boolean)",
    "int_from_float": "must be a JSON integer (not a fraction)",
    "bool_type": "must be true or false",
    "float_type": "must be a JSON number",
    "string_type": "must be a JSON string",
    "finite_number": "must be a finite number",
}


def invalid_input(errors: Sequence[Any]) -> InvalidInput:
    """A 422 naming each field of pydantic's `errors` (a request body that failed its model)."""
    named = [
        field_error(
            _location(err.get("loc", ())),
            _STRICT_REASONS.get(err.get("type", ""), err.get("msg", "invalid")),
        )
        for err in errors
    ]
    return InvalidInput("; ".join(f"{e['field']}: {e['reason']}" for e in named[:5]), details=named)


# What the drivers say when a request's value cannot be stored: a NUL character in text
# (PostgreSQL text cannot hold U+0000) or an integer past the column's range.
_NUL_MESSAGES = ("cannot contain NUL (0x00)", 'for encoding "UTF8": 0x00')
_RANGE_MESSAGES = (
    "bigint out of range",
    "integer out of range",
    "smallint out of range",
    "too large to convert to SQLite INTEGER",
    "out of int64 range",
)
# The store is saturated or unreachable for a moment: worth a retry, not a 500.
_BUSY_MESSAGES = (
    "database is locked",
    "too many clients",
    "connection refused",
    "could not connect",
    "the database system is starting up",
    "the database system is shutting down",
)


def expected_problem(exc: BaseException) -> AppError | None:
    """The 4xx/503 for a failure that input or load explains (whatever the route), else None.

    Checked where a request fails, for every route at once: any string of any body, query or
    path can carry a NUL; any integer an id past BIGINT; any request can find the pool empty.
    """
    message = str(getattr(exc, "orig", None) or exc)
    if any(text in message for text in _NUL_MESSAGES):
        reason = "text must not contain the NUL character (U+0000)"
        return InvalidInput(reason, details=[field_error("body", reason)])
    if any(text in message for text in _RANGE_MESSAGES):
        reason = "a number is out of range (integers and ids are at most 2^63-1)"
        return InvalidInput(reason, code="out_of_range", details=[field_error("request", reason)])
    if isinstance(exc, PoolTimeout) or (
        isinstance(exc, OperationalError) and any(t in message for t in _BUSY_MESSAGES)
    ):
        return ServiceUnavailable(
            "the service is busy; retry shortly",
            retry_after=get_settings().db.retry_after_seconds,
        )
    return None


def internal_problem(request_id: str | None) -> dict[str, Any]:
    """The generic 500 body: nothing internal, only the request id to quote."""
    return {
        "type": "https://socialcard.example/problems/internal",
        "title": "Internal error",
        "status": 500,
        "detail": f"An unexpected error happened; quote request id {request_id}.",
        "code": "internal",
    }


# --- the OpenAPI document ----------------------------------------------------------------------


class FieldProblem(BaseModel):
    """One field of a 422 and why it was refused."""

    model_config = ConfigDict(extra="allow")

    field: str
    reason: str


class Problem(BaseModel):
    """An error (RFC 9457) with a stable `code`; `errors` names each refused field."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    errors: list[FieldProblem] | None = None


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {}}}


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _problem("Missing or invalid credentials"),
    403: _problem("Role not allowed"),
    404: _problem("Not found"),
    422: _problem("Invalid input, each field named"),
}
_ANY_REQUEST: dict[int | str, dict[str, Any]] = {
    429: _problem("Rate limit reached; see Retry-After"),
    503: _problem("The service is busy; see Retry-After"),
}
_WITH_BODY: dict[int | str, dict[str, Any]] = {
    413: _problem("The body is too large"),
    422: _problem("Invalid input, each field named"),
}
_WITH_PARAMETERS: dict[int | str, dict[str, Any]] = {
    422: _problem("Invalid input, each field named")
}
_SECURED: dict[int | str, dict[str, Any]] = {401: _problem("Missing or invalid credentials")}
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


def install_openapi(app: FastAPI, *, unguarded: Iterable[str] = ("/health",)) -> None:
    """Serve an OpenAPI document that tells every answer: on top of what routes declare, the
    429 and 503 any request can get, the 413/422 of a body, the 401 of a secured route; every
    problem with the Problem schema; pydantic's nested `$defs` moved into the components so
    every `$ref` resolves (ReDoc renders; schemathesis checks)."""
    plain = frozenset(unguarded)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = complete_openapi(schema, unguarded=plain)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete_openapi(schema: dict[str, Any], *, unguarded: frozenset[str]) -> dict[str, Any]:
    """The document with the answers every route gives and every `$ref` resolvable."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.setdefault("Problem", Problem.model_json_schema(ref_template=_REF))
    _hoist_defs(schema, schemas)
    for path, item in schema.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            extra: dict[int | str, dict[str, Any]] = {}
            if path not in unguarded:
                extra.update(_ANY_REQUEST)
            if "requestBody" in operation:
                extra.update(_WITH_BODY)
            if operation.get("parameters"):
                extra.update(_WITH_PARAMETERS)
            if operation.get("security"):
                extra.update(_SECURED)
            for status, response in extra.items():
                responses.setdefault(str(status), dict(response))
            for response in responses.values():
                content = response.get("content", {})
                if PROBLEM_JSON in content and not content[PROBLEM_JSON].get("schema"):
                    content[PROBLEM_JSON] = {"schema": dict(_PROBLEM_REF)}
    return schema


_REF = "#/components/schemas/{model}"


def _hoist_defs(node: Any, schemas: dict[str, Any]) -> None:
    """Move every nested `$defs` (pydantic's, in hand-written schemas) into the components and
    point its references there."""
    if isinstance(node, dict):
        defs = node.pop("$defs", None)
        if isinstance(defs, dict):
            for name, definition in defs.items():
                _hoist_defs(definition, schemas)
                schemas.setdefault(name, definition)
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            node["$ref"] = "#/components/schemas/" + ref.removeprefix("#/$defs/")
        for value in list(node.values()):
            _hoist_defs(value, schemas)
    elif isinstance(node, list):
        for value in node:
            _hoist_defs(value, schemas)
