"""Follow suggestions: ``GET /api/v2/suggestions`` (Suggestion entities), ``GET /api/v1/suggestions``
(Accounts) and ``DELETE /api/v1/suggestions/:account_id`` (never suggest it again); ``services.suggestions``
says how they are chosen."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import ORJSONResponse
from pydantic import BaseModel, Field, field_validator

from api.auth import context, scoped
from api.entities import account_entity
from api.openapi import doc
from api.params import IdPath, parse, parse_id
from api.schemas import Account, Empty, Suggestion
from services.auth import Principal
from services.suggestions import suggestion_sources

router = APIRouter()


class SuggestionsQuery(BaseModel):
    limit: int = Field(default=40, ge=1, description="At most 80; more is read as 80")

    @field_validator("limit", mode="after")
    @classmethod
    def clamp(cls, value: int) -> int:
        return min(value, 80)


@router.get("/api/v2/suggestions", **doc(list[Suggestion], query=SuggestionsQuery, auth="read:accounts"))
async def suggestions_v2(request: Request, principal: Principal = Depends(scoped("read:accounts"))) -> ORJSONResponse:
    ctx = context(request)
    query = await parse(request, SuggestionsQuery)
    found = await ctx.suggestions.suggest(principal.account_id, query.limit)  # type: ignore[arg-type]
    body = []
    for suggestion in found:
        source, sources = suggestion_sources(suggestion.source)
        body.append({"source": source, "sources": sources, "account": account_entity(suggestion.account, ctx.settings)})
    return ORJSONResponse(body)


@router.get("/api/v1/suggestions", **doc(list[Account], query=SuggestionsQuery, auth="read:accounts"))
async def suggestions_v1(request: Request, principal: Principal = Depends(scoped("read:accounts"))) -> ORJSONResponse:
    ctx = context(request)
    query = await parse(request, SuggestionsQuery)
    found = await ctx.suggestions.suggest(principal.account_id, query.limit)  # type: ignore[arg-type]
    return ORJSONResponse([account_entity(s.account, ctx.settings) for s in found])


@router.delete("/api/v1/suggestions/{account_id:id}", **doc(Empty, auth="read:accounts", errors=[404]))
async def dismiss(
    account_id: IdPath, request: Request, principal: Principal = Depends(scoped("read:accounts"))
) -> ORJSONResponse:
    await context(request).suggestions.dismiss(principal.account_id, parse_id(account_id))  # type: ignore[arg-type]
    return ORJSONResponse({})
