"""Request parameters the way Mastodon reads them.

Mastodon accepts parameters from the query string, a form-encoded or
multipart body, or a JSON body, interchangeably, and writes arrays as
``key[]``. Clients rely on all of these (Mastodon.py sends forms; web
clients send JSON), so every route reads its parameters through
``read_params`` and validates them with a pydantic model (``api.openapi``
declares the same model in the OpenAPI document).

Ids are decimal snowflakes below 2**63 written in ASCII digits; ``str.isdigit``
alone would let "²" through to ``int()``. A bad id in a parameter is a 422
(``Id``); in a path, the ``{name:id}`` convertor only matches ids, so anything
else is the router's 404, as Mastodon answers for a record that cannot exist.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Path, Request
from pydantic import BaseModel, BeforeValidator, ValidationError, WithJsonSchema
from starlette.convertors import Convertor, register_url_convertor
from starlette.datastructures import UploadFile

from services.errors import BadRequest, NotFound, PayloadTooLarge, Unprocessable

M = TypeVar("M", bound=BaseModel)
MAX_BODY_BYTES = 1_000_000
ID_LIMIT = 2**63
ID_PATTERN = "^[0-9]{1,19}$"
ID_SCHEMA = {"type": "string", "pattern": ID_PATTERN, "description": "A decimal id below 2**63"}


def is_id(raw: str) -> bool:
    """ASCII decimal digits, below 2**63."""
    return 0 < len(raw) <= 19 and raw.isascii() and raw.isdigit() and int(raw) < ID_LIMIT


def parse_id(raw: str) -> int:
    """A path id; anything that is not an id cannot name a record."""
    if not is_id(raw):
        raise NotFound("Record not found")
    return int(raw)


def _as_id(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < ID_LIMIT:
        return value  # JSON bodies may send ids as numbers
    if isinstance(value, str) and is_id(value):
        return int(value)
    raise ValueError("must be an id (decimal digits, below 2**63)")


Id = Annotated[int, BeforeValidator(_as_id), WithJsonSchema(ID_SCHEMA)]
"""An id parameter: a string (or JSON number) of ASCII digits below 2**63, else a 422."""


class IdConvertor(Convertor[str]):
    """``{name:id}`` in a route path matches ASCII digits only; ``parse_id`` then checks the range."""

    regex = "[0-9]{1,19}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return str(value)


register_url_convertor("id", IdConvertor())
IdPath = Annotated[str, Path(json_schema_extra={"pattern": ID_PATTERN}, description="A decimal id below 2**63")]


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
            raise PayloadTooLarge(f"Request body too large: at most {MAX_BODY_BYTES} bytes")
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
