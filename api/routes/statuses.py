"""Statuses (posts): create, read, delete, an account's posts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import ORJSONResponse
from pydantic import BaseModel, Field, field_validator

from api.auth import context, optional_principal, scoped
from api.entities import status_entities, status_entity
from api.pagination import PageParams, link_header
from api.params import parse
from api.routes.accounts import parse_id
from services.auth import Principal

router = APIRouter()


class StatusForm(BaseModel):
    status: str = Field(default="", max_length=100_000)
    media_ids: list[Annotated[int, Field(ge=0, lt=2**63)]] = Field(default_factory=list, max_length=100)
    in_reply_to_id: int | None = Field(default=None, ge=0, lt=2**63)
    sensitive: bool = False
    spoiler_text: str = Field(default="", max_length=500)
    visibility: str = "public"
    language: str | None = Field(default=None, max_length=16)

    @field_validator("in_reply_to_id", mode="before")
    @classmethod
    def empty_is_none(cls, value: object) -> object:
        return None if value in ("", None) else value

    @field_validator("media_ids", mode="before")
    @classmethod
    def single_id(cls, value: object) -> object:
        return [value] if isinstance(value, str | int) else value


class AccountStatusesQuery(PageParams):
    exclude_replies: bool = False


@router.post("/api/v1/statuses")
async def create_status(request: Request, principal: Principal = Depends(scoped("write:statuses"))) -> ORJSONResponse:
    ctx = context(request)
    form = await parse(request, StatusForm)
    post = await ctx.statuses.create(
        principal.account_id,  # type: ignore[arg-type]
        text=form.status,
        visibility=form.visibility,
        media_ids=form.media_ids,
        in_reply_to_id=form.in_reply_to_id,
        sensitive=form.sensitive,
        spoiler_text=form.spoiler_text,
        language=form.language,
        idempotency_key=(request.headers.get("idempotency-key") or None),
    )
    return ORJSONResponse(status_entity(post, ctx.settings))


@router.get("/api/v1/statuses/{status_id}")
async def get_status(
    status_id: str, request: Request, principal: Principal | None = Depends(optional_principal)
) -> ORJSONResponse:
    ctx = context(request)
    post = await ctx.statuses.get(parse_id(status_id), principal.account_id if principal else None)
    return ORJSONResponse(status_entity(post, ctx.settings))


@router.delete("/api/v1/statuses/{status_id}")
async def delete_status(
    status_id: str, request: Request, principal: Principal = Depends(scoped("write:statuses"))
) -> ORJSONResponse:
    ctx = context(request)
    post = await ctx.statuses.delete(parse_id(status_id), principal.account_id)  # type: ignore[arg-type]
    return ORJSONResponse(status_entity(post, ctx.settings))


@router.get("/api/v1/accounts/{account_id}/statuses")
async def account_statuses(
    account_id: str, request: Request, principal: Principal | None = Depends(optional_principal)
) -> ORJSONResponse:
    ctx = context(request)
    query = await parse(request, AccountStatusesQuery)
    author = await ctx.accounts.get(parse_id(account_id))
    posts = await ctx.statuses.by_account(
        author["id"],
        principal.account_id if principal else None,
        query.max_id,
        query.since_id,
        query.min_id,
        query.limit,
        query.exclude_replies,
    )
    headers = link_header(request, posts[0].status["id"], posts[-1].status["id"]) if posts else {}
    return ORJSONResponse(status_entities(posts, ctx.settings), headers=headers)
