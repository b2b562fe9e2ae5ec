"""The OpenAPI document of the web API, made to say what the server really answers.

FastAPI's default lists a 422 the server never sends (validation errors are 400 here) and none of
the statuses it does send. This adds the JSON error body ``{"detail": str}`` for 400 / 401 / 403 /
408 / 413 / 415 / 422 / 503, the ``Retry-After`` header of 503, and a bearer ``securitySchemes`` entry so that
``/docs`` can send the token (required when the server has one, optional otherwise).
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "required": ["detail"],
    "properties": {"detail": {"type": "string", "description": "what went wrong, for a person"}},
}
_ERROR_REF = {"$ref": "#/components/schemas/Error"}
COMMON_ERRORS = {
    "400": "Malformed request (bad query parameter, wrong Host header)",
    "401": "Missing or wrong bearer token (only when the server has one)",
    "403": "Cross-origin request from a browser page on another site",
    "503": "Server busy (inference queue or connection limit full); retry after `Retry-After` seconds",
}
PREDICT_ERRORS = {
    "400": "Malformed request or damaged image (the message names the file and the reason)",
    "408": "Upload slower than its deadline (10 s plus 1 s per 16 KiB received)",
    "413": "Upload larger than the server's limit (--max-mb)",
    "415": "Not multipart/form-data, or the file is not an image format the server reads",
    "422": "The model gave non-finite probabilities for this image (no label is given)",
}


def _error(description: str, status: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ERROR_REF}},
    }
    if status == "503":
        out["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
    if status == "401":
        out["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
    return out


def build_openapi(app: Any, token_required: bool) -> dict[str, Any]:
    """The app's OpenAPI document with the real error responses and the bearer scheme (cached on the app)."""
    from fastapi.openapi.utils import get_openapi

    if app.openapi_schema:
        return app.openapi_schema
    spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = spec.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for unused in ("HTTPValidationError", "ValidationError"):
        components["schemas"].pop(unused, None)
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <token>"}
    }
    security = [{"bearer": []}] if token_required else [{"bearer": []}, {}]
    for path, ops in spec.get("paths", {}).items():
        for method, op in ops.items():
            responses = op.setdefault("responses", {})
            responses.pop("422", None)
            errors = dict(COMMON_ERRORS)
            if path.endswith("/predict") and method == "post":
                errors.update(PREDICT_ERRORS)
            for status, text in errors.items():
                responses[status] = _error(text, status)
            op["security"] = security
    app.openapi_schema = spec
    return spec
