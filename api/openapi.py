"""The OpenAPI document: what each operation takes, answers and requires.

Routes read their parameters through ``api.params.read_params`` (query string,
form, multipart or JSON, interchangeably, as Mastodon does), so FastAPI cannot
see them. ``doc(...)`` gives a route decorator the declarations instead, from
the same pydantic models the route validates with:

* ``query=Model``: one query parameter per field (a list field is ``name[]``);
* ``body=Model``: a request body in JSON and in form encoding (lists as
  ``name[]``), both from the model;
* ``ok=Model``: the 200 body, a model from ``api.schemas``; declared with
  ``responses=`` rather than ``response_model`` so nothing is validated at run
  time (the feed path stays as fast as it was);
* ``auth``: the bearer token the operation needs (an OAuth scope, any app or
  user token, or an optional one) as a per-operation ``security`` requirement;
* ``errors``: the statuses the route can answer with ``{"error": ...}``. The
  ones that follow from the rest are added here: reading parameters can fail
  with 400 (malformed body), 413 (too large) or 422 (invalid); a token with 401
  and, for a user scope, 403; anything that reaches the stores with 503.

Declarations cost nothing per request; ``tests/test_openapi.py`` and the
schemathesis run in ``tests/test_openapi_fuzz.py`` keep them true.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from api.schemas import Error

OPTIONAL = "optional"  # a token is used when given (private posts), never required
ANY_TOKEN = "any"  # an app's own token or a user's, any scope

SCOPES = {
    "read": "Read everything the account can see",
    "write": "Change everything the account can change",
    "follow": "Legacy: follow, unfollow and read follows",
    "push": "Web push subscriptions",
    "profile": "Read the account's own profile only",
    **{
        f"read:{s}": f"Read {s}"
        for s in (
            "accounts",
            "blocks",
            "bookmarks",
            "favourites",
            "follows",
            "mutes",
            "notifications",
            "search",
            "statuses",
        )
    },
    **{
        f"write:{s}": f"Change {s}"
        for s in (
            "accounts",
            "blocks",
            "bookmarks",
            "conversations",
            "favourites",
            "follows",
            "media",
            "mutes",
            "notifications",
        )
    },
    "write:statuses": "Post, reblog, delete posts; set markers",
}
SECURITY_SCHEMES = {
    "BearerToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "An access token from /oauth/token or sign-up, as `Authorization: Bearer …` "
        "(or the `access_token` query parameter).",
    },
    "OAuth2": {
        "type": "oauth2",
        "description": "Mastodon's OAuth 2: register an app at /api/v1/apps, then get a token.",
        "flows": {
            "authorizationCode": {
                "authorizationUrl": "/oauth/authorize",
                "tokenUrl": "/oauth/token",
                "scopes": SCOPES,
            },
            "password": {"tokenUrl": "/oauth/token", "scopes": SCOPES},
            "clientCredentials": {"tokenUrl": "/oauth/token", "scopes": SCOPES},
        },
    },
}
ERRORS = {
    400: "Malformed request (body not parseable; OAuth: `invalid_request`, `invalid_grant`, …)",
    401: "Missing, invalid or revoked access token (OAuth: client authentication failed)",
    403: "The token cannot do this: an app token where a user is needed, a scope it lacks, or not the owner",
    404: "Record not found (also for ids that are not ids)",
    409: "Busy: a concurrent request holds the same resource; retry",
    413: "Request body or file too large",
    415: "Unsupported file type",
    422: "Validation failed; the message names each bad field",
    429: "Rate limited; `Retry-After` says when to retry",
    503: "A store is unavailable; `Retry-After` says when to retry",
}
RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}}
LINK = {
    "Link": {
        "description": 'Paging: `<…max_id=…>; rel="next"` (older), `<…min_id=…>; rel="prev"` (newer)',
        "schema": {"type": "string"},
    }
}
PARAMS_ERRORS = (400, 413, 422)

# Models the document refers to by ``$ref`` without FastAPI knowing them: request bodies, and the error body.
_component_models: dict[str, type[BaseModel]] = {"Error": Error}
ERROR_BODY = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def error_responses(statuses: Iterable[int]) -> dict[int | str, dict[str, Any]]:
    """Error bodies are JSON whatever the operation's success type (HTML sign-in form, media bytes)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        responses[status] = {"content": ERROR_BODY, "description": ERRORS[status]}
        if status in (429, 503):
            responses[status]["headers"] = RETRY_AFTER
    return responses


def security(auth: str) -> list[dict[str, list[str]]]:
    if auth == OPTIONAL:
        return [{}, {"BearerToken": []}, {"OAuth2": []}]
    scopes = [] if auth == ANY_TOKEN else [auth]
    return [{"BearerToken": scopes}, {"OAuth2": scopes}]


def _is_array(schema: dict[str, Any]) -> dict[str, Any] | None:
    """The array form of a field that accepts a list (``list[str] | str`` accepts one value too)."""
    if schema.get("type") == "array":
        return schema
    return next((s for s in schema.get("anyOf", ()) if s.get("type") == "array"), None)


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """Query strings and forms cannot say null: an absent field is the null."""
    options = [s for s in schema.get("anyOf", ()) if s.get("type") != "null"]
    if len(options) == 1 and len(schema["anyOf"]) == 2:
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        return {**options[0], **rest}
    return schema


def _flat_fields(model: type[BaseModel]) -> list[tuple[str, dict[str, Any], bool]]:
    """(wire name, schema, required) per field as a query string or form carries it."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    required = set(schema.get("required", ()))
    fields = []
    for name, prop in schema.get("properties", {}).items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        array = _is_array(prop)
        if array is not None:
            wire = dict(array)
            if "description" in prop:
                wire["description"] = prop["description"]
            fields.append((f"{name}[]", wire, name in required))
        else:
            fields.append((name, _not_null(prop), name in required))
    return fields


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    params = []
    for name, schema, required in _flat_fields(model):
        param: dict[str, Any] = {"name": name, "in": "query", "required": required, "schema": schema}
        if "description" in schema:
            param["description"] = schema["description"]
        if name.endswith("[]"):
            param.update(style="form", explode=True)
        params.append(param)
    return params


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """The same fields as JSON (a component schema) and as a form (lists as ``name[]``)."""
    _component_models[model.__name__] = model
    fields = _flat_fields(model)
    form: dict[str, Any] = {"type": "object", "properties": {name: schema for name, schema, _ in fields}}
    required = [name for name, _, req in fields if req]
    if required:
        form["required"] = required
    return {
        "required": bool(required),
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}},
            "application/x-www-form-urlencoded": {"schema": form},
        },
    }


def doc(
    ok: Any = None,
    *,
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    auth: str | None = None,
    errors: Iterable[int] = (),
    paged: bool = False,
    responses: dict[int | str, dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    stores: bool = True,
) -> dict[str, Any]:
    """Keyword arguments for a route decorator that declare the operation (see the module docstring).

    ``stores=False`` for the few operations that never touch Redis or the graph (no 503).
    """
    statuses = set(errors)
    openapi_extra: dict[str, Any] = {}
    if query is not None or body is not None:
        statuses.update(PARAMS_ERRORS)
    if query is not None:
        openapi_extra["parameters"] = query_parameters(query)
    if body is not None:
        openapi_extra["requestBody"] = request_body(body)
    if auth is not None:
        openapi_extra["security"] = security(auth)
        statuses.add(401)
        if auth not in (OPTIONAL, ANY_TOKEN):
            statuses.add(403)
    if stores:
        statuses.add(503)
    declared: dict[int | str, dict[str, Any]] = {}
    if ok is not None:
        declared[200] = {"model": ok}
        if paged:
            declared[200]["headers"] = LINK
    declared.update(error_responses(statuses))
    declared.update(responses or {})
    if extra:
        for key, value in extra.items():
            if isinstance(value, list) and isinstance(openapi_extra.get(key), list):
                openapi_extra[key] = openapi_extra[key] + value
            else:
                openapi_extra[key] = value
    return {"responses": declared, "openapi_extra": openapi_extra or None}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the request-body models and security schemes the declarations refer to."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name, model in _component_models.items():
        body = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for def_name, definition in body.pop("$defs", {}).items():
            schemas.setdefault(def_name, definition)
        if name in schemas and schemas[name] != body:
            raise RuntimeError(f"two OpenAPI schemas are named {name}")
        schemas[name] = body
    # Path ids are plain strings to FastAPI, so it adds a 422 that no request can get (a non-id is a 404).
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            response = operation.get("responses", {}).get("422", {})
            if "HTTPValidationError" in str(response.get("content", "")):
                del operation["responses"]["422"]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    components["securitySchemes"] = SECURITY_SCHEMES
    app.openapi_schema = schema
    return schema


def install_openapi(app: FastAPI) -> None:
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]


MEDIA_UPLOAD = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "An image or a video"},
                    "description": {"type": "string", "description": "Alt text"},
                    "focus": {"type": "string", "description": 'Focal point "x,y", each within -1.0 and 1.0'},
                },
            }
        }
    },
}
STORY_UPLOAD = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "A JPEG or PNG photo or a short MP4"}
                },
            }
        }
    },
}
MEDIA_BYTES = {
    kind: {"schema": {"type": "string", "format": "binary"}} for kind in ("image/jpeg", "image/webp", "video/mp4")
}
SSE_DOC = doc(
    errors=[401, 429],
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}, "description": "Events"}},
    extra={"security": security("read:statuses")},
)
