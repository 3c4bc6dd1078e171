"""Errors the workflow's services raise, each with a code the API documents and a status."""

from __future__ import annotations


class ServiceError(Exception):
    """A refusal a caller can act on. `code` is stable; `detail` is for people."""

    status = 400
    code = "invalid"

    def __init__(self, detail: str, *, code: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code


class InvalidInput(ServiceError):
    status, code = 400, "invalid"


class NotFound(ServiceError):
    status, code = 404, "not_found"


class Conflict(ServiceError):
    """The request is not in a state that allows this action."""

    status, code = 409, "conflict"


class Locked(ServiceError):
    status, code = 429, "locked"


class TooSoon(ServiceError):
    status, code = 429, "too_soon"


class Unavailable(ServiceError):
    status, code = 503, "unavailable"
