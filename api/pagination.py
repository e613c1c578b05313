"""Mastodon paging: ``max_id``/``since_id``/``min_id``/``limit`` in, a ``Link`` header out."""

from __future__ import annotations

from fastapi import Request
from pydantic import BaseModel, Field, field_validator

from api.params import Id


class PageParams(BaseModel):
    max_id: Id | None = Field(default=None, description="Items older than this id")
    since_id: Id | None = Field(default=None, description="Items newer than this id (the newest first)")
    min_id: Id | None = Field(default=None, description="Items just newer than this id (the oldest of them first)")
    limit: int = Field(default=20, ge=1, description="At most 40; more is read as 40")

    @field_validator("max_id", "since_id", "min_id", mode="before")
    @classmethod
    def empty_is_none(cls, value: object) -> object:
        return None if value in ("", None) else value

    @field_validator("limit", mode="after")
    @classmethod
    def clamp(cls, value: int) -> int:
        return min(value, 40)  # Mastodon clamps rather than refusing


def link_header(request: Request, newest: int | None, oldest: int | None, *, prev: bool = True) -> dict[str, str]:
    """``next`` pages to older items (max_id), ``prev`` to newer ones (min_id).

    Lists that cannot page forward from a cursor pass ``prev=False`` rather than advertise a link that
    would return their first page again.
    """
    if newest is None or oldest is None:
        return {}
    base = str(request.url.remove_query_params(["max_id", "since_id", "min_id"]))
    separator = "&" if "?" in base else "?"
    links = [f'<{base}{separator}max_id={oldest}>; rel="next"']
    if prev:
        links.append(f'<{base}{separator}min_id={newest}>; rel="prev"')
    return {"Link": ", ".join(links)}
