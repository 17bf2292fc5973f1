"""HTTP errors in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

The official clients turn the status into an exception class (400 → BadRequestError,
403 → PermissionDeniedError, 413/others → APIStatusError ...) and expose the body, so
every refusal the server makes goes through :class:`APIError`.
"""

from __future__ import annotations

from typing import Any

# OpenAI's error "type" for each status family.
_TYPES = {400: "invalid_request_error", 403: "permission_error", 404: "not_found_error",
          405: "invalid_request_error", 408: "invalid_request_error", 413: "invalid_request_error",
          415: "invalid_request_error", 422: "invalid_request_error", 499: "invalid_request_error",
          429: "rate_limit_error", 503: "server_error"}


class APIError(Exception):
    """A request the server refuses, with what the client needs to fix it.

    Args:
        status: HTTP status (4xx for the client's mistakes, 5xx for ours).
        message: names the offending input and what was expected.
        param: the request field at fault, e.g. ``"messages[0].content[1].image_url.url"``.
        code: a short machine-readable reason, e.g. ``"invalid_data_url"``.
        type: OpenAI's error type (default: from the status).
    """

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type or _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The body of :class:`APIError` without raising one."""
    return APIError(status, message, param=param, code=code).body()
