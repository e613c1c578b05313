"""Every error leaves as JSON ``{"error": "..."}`` with the right status; never a stack trace."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from ids import IdsUnavailable
from media.store import StoreUnavailable
from redis_store.locks import LockBusy
from services.errors import OAuthError, ServiceError

log = logging.getLogger("raygram.api")
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path. Starlette's 405 names only the first route whose path
    matches, but a path is often served by several (GET and DELETE /statuses/:id are two routes). Routes
    are walked the way FastAPI's own OpenAPI generator walks them (included routers are not flattened)."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        if route.methods and route.matches(request.scope)[0] is not Match.NONE:
            methods |= route.methods
    return ", ".join(sorted(methods, key=lambda m: METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER)))


def describe_validation_errors(errors: list[dict]) -> str:
    parts = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    return "Validation failed: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(OAuthError)
    async def oauth_error(_: Request, exc: OAuthError) -> ORJSONResponse:
        return ORJSONResponse({"error": exc.code, "error_description": exc.message}, status_code=exc.status)

    @app.exception_handler(ServiceError)
    async def service_error(_: Request, exc: ServiceError) -> ORJSONResponse:
        body: dict = {"error": exc.message}
        if exc.details:
            body["details"] = exc.details
        return ORJSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(LockBusy)
    async def lock_busy(_: Request, exc: LockBusy) -> ORJSONResponse:
        return ORJSONResponse({"error": "The resource is busy; retry"}, status_code=409, headers={"Retry-After": "1"})

    @app.exception_handler(IdsUnavailable)
    async def ids_unavailable(_: Request, exc: IdsUnavailable) -> ORJSONResponse:
        # The replica's snowflake worker id lease lapsed (Redis unreachable): no write can get an id until renewed.
        return ORJSONResponse({"error": "Service unavailable; retry"}, status_code=503, headers={"Retry-After": "2"})

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(_: Request, exc: StoreUnavailable) -> ORJSONResponse:
        log.warning("%s", exc)  # a remote media store is down: nothing was acknowledged, the client may retry
        body = {"error": "Media store unavailable; retry"}
        return ORJSONResponse(body, status_code=503, headers={"Retry-After": "2"})

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> ORJSONResponse:
        return ORJSONResponse({"error": describe_validation_errors(list(exc.errors()))}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> ORJSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "Request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = "Record not found"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        return ORJSONResponse({"error": message}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> ORJSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return ORJSONResponse({"error": "Internal server error"}, status_code=500)
