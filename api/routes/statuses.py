"""Statuses (posts): create, read, delete, an account's posts."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import ORJSONResponse
from pydantic import BaseModel, Field, field_validator

from api.auth import context, optional_principal, scoped
from api.entities import status_entities, status_entity
from api.openapi import OPTIONAL, doc
from api.pagination import PageParams, link_header
from api.params import Id, IdPath, parse, parse_id
from api.schemas import Status
from services.auth import Principal
from services.statuses import VISIBILITIES

router = APIRouter()


class StatusForm(BaseModel):
    status: str = Field(default="", max_length=100_000, description="The caption; may be empty with media")
    media_ids: list[Id] = Field(default_factory=list, max_length=100, description="Uploads to attach, in order")
    in_reply_to_id: Id | None = Field(default=None, description="Makes the post a comment on this one")
    sensitive: bool = False
    spoiler_text: str = Field(default="", max_length=500)
    visibility: str = Field(default="public", json_schema_extra={"enum": list(VISIBILITIES)})
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


IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "A retry with the same key within an hour answers the first post instead of posting again",
}


@router.post(
    "/api/v1/statuses",
    **doc(Status, body=StatusForm, auth="write:statuses", errors=[404, 429], extra={"parameters": [IDEMPOTENCY_KEY]}),
)
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


@router.get("/api/v1/statuses/{status_id:id}", **doc(Status, auth=OPTIONAL, errors=[404]))
async def get_status(
    status_id: IdPath, request: Request, principal: Principal | None = Depends(optional_principal)
) -> ORJSONResponse:
    ctx = context(request)
    post = await ctx.statuses.get(parse_id(status_id), principal.account_id if principal else None)
    return ORJSONResponse(status_entity(post, ctx.settings))


@router.delete("/api/v1/statuses/{status_id:id}", **doc(Status, auth="write:statuses", errors=[404]))
async def delete_status(
    status_id: IdPath, request: Request, principal: Principal = Depends(scoped("write:statuses"))
) -> ORJSONResponse:
    ctx = context(request)
    post = await ctx.statuses.delete(parse_id(status_id), principal.account_id)  # type: ignore[arg-type]
    return ORJSONResponse(status_entity(post, ctx.settings))


@router.get(
    "/api/v1/accounts/{account_id:id}/statuses",
    **doc(list[Status], query=AccountStatusesQuery, auth=OPTIONAL, paged=True, errors=[404]),
)
async def account_statuses(
    account_id: IdPath, request: Request, principal: Principal | None = Depends(optional_principal)
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
