"""Errors the services raise; the API layer turns each into a JSON 4xx."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status: int = 400

    def __init__(self, message: str, *, details: dict[str, Any] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}


class BadRequest(ServiceError):
    status = 400


class Unauthorized(ServiceError):
    status = 401


class Forbidden(ServiceError):
    status = 403


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class Unprocessable(ServiceError):
    status = 422


class PayloadTooLarge(ServiceError):
    status = 413


class UnsupportedMediaType(ServiceError):
    status = 415


class RateLimited(ServiceError):
    status = 429


class OAuthError(ServiceError):
    """An RFC 6749 error: ``error`` is the code, ``error_description`` the message."""

    def __init__(self, code: str, description: str, status: int = 400):
        super().__init__(description)
        self.code = code
        self.status = status
