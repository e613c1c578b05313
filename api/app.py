"""The FastAPI application: routers, error handlers and the per-process context."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import ORJSONResponse

from api.availability import install_availability
from api.context import AppContext
from api.errors import install_error_handlers
from api.openapi import install_openapi
from api.routes import (
    accounts,
    bookmarks,
    conversations,
    discovery,
    follows,
    instance,
    interactions,
    media,
    notifications,
    oauth,
    safety,
    search,
    statuses,
    stories,
    streaming,
    suggestions,
    tags,
    timelines,
)
from config import get_settings


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.ctx = await AppContext.create(get_settings())
    try:
        yield
    finally:
        await app.state.ctx.close()


def create_app() -> FastAPI:
    app = FastAPI(
        title="raygram",
        description="Instagram-style photo and video sharing, Mastodon-compatible API.",
        version="0.1.0",
        default_response_class=ORJSONResponse,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    install_availability(app)
    install_openapi(app)
    for module in (
        oauth,
        follows,
        safety,
        accounts,
        statuses,
        interactions,
        bookmarks,
        timelines,
        conversations,
        tags,
        discovery,
        notifications,
        streaming,
        instance,
        media,
        stories,
        search,
        suggestions,
    ):
        app.include_router(module.router)
    return app
