"""Request parameters the way Mastodon reads them.

Mastodon accepts parameters from the query string, a form-encoded or
multipart body, or a JSON body, interchangeably, and writes arrays as
``key[]``. Clients rely on all of these (Mastodon.py sends forms; web
clients send JSON), so every route reads its parameters through
``read_params`` and validates them with a pydantic model.
"""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from services.errors import BadRequest, Unprocessable

M = TypeVar("M", bound=BaseModel)
MAX_BODY_BYTES = 1_000_000


def _merge(target: dict[str, Any], key: str, value: Any) -> None:
    if key.endswith("[]"):
        target.setdefault(key[:-2], []).append(value)
    else:
        target[key] = value


async def read_params(request: Request, *, files: bool = False) -> dict[str, Any]:
    """Query string plus body, as one flat dict; malformed bodies are a 400."""
    params: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        _merge(params, key, value)
    if request.method in ("GET", "HEAD", "DELETE") and not request.headers.get("content-length"):
        return params
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            raise BadRequest("Request body too large")
        if raw.strip():
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise BadRequest(f"Malformed JSON body: {exc}") from None
            if not isinstance(body, dict):
                raise BadRequest("JSON body must be an object")
            for key, value in body.items():
                _merge(params, key, value)
    elif content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.form()
        except Exception as exc:
            raise BadRequest(f"Malformed form body: {exc}") from None
        for key, value in form.multi_items():
            if isinstance(value, UploadFile) and not files:
                raise BadRequest(f"Unexpected file in field {key!r}")
            _merge(params, key, value)
    return params


def validate(model: type[M], params: dict[str, Any]) -> M:
    """``model`` from ``params``, or a 422 naming each bad field."""
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"])
            parts.append(f"{where}: {err['msg']}" if where else err["msg"])
        raise Unprocessable("Validation failed: " + "; ".join(parts)) from None


async def parse(request: Request, model: type[M]) -> M:
    return validate(model, await read_params(request))
