"""The OpenAPI document as the docs pages need it: declared security schemes (so /docs has an
Authorize button) and every schema reachable under components (so ReDoc resolves each $ref).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

SCHEMES: dict[str, Any] = {
    "ApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "A client key with its role (`socialcard apikey create`).",
    },
    "TerminalKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-Terminal-Key",
        "description": "A merchant terminal's key (business wallet).",
    },
}
# Paths anyone may call (probes, the SMS provider's signed callbacks, the citizen's signed link).
_PUBLIC = ("/health", "/api/v1/proactive/sms/", "/consent/")


def _hoist(node: Any, components: dict[str, Any]) -> Any:
    """Move nested `$defs` into components.schemas and point their refs there."""
    if isinstance(node, dict):
        for name, schema in (node.pop("$defs", None) or {}).items():
            components.setdefault(name, _hoist(schema, components))
        for key, value in list(node.items()):
            if key == "$ref" and isinstance(value, str) and value.startswith("#/$defs/"):
                node[key] = "#/components/schemas/" + value.removeprefix("#/$defs/")
            else:
                node[key] = _hoist(value, components)
    elif isinstance(node, list):
        return [_hoist(item, components) for item in node]
    return node


def document(app: FastAPI) -> dict[str, Any]:
    """Build (once) the app's OpenAPI document with security schemes and resolvable schemas."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    _hoist(doc, schemas)
    components["securitySchemes"] = SCHEMES
    for path, operations in doc.get("paths", {}).items():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
            if path.startswith(_PUBLIC):
                operation["security"] = []
            elif path.startswith("/api/v1/business/"):
                operation["security"] = [{"TerminalKey": []}]
            else:
                operation["security"] = [{"ApiKey": []}]
    app.openapi_schema = doc
    return doc
