"""Errors in the client's language: each rxllm error as the HTTP status and body that OpenAI's
API (or Anthropic's, on ``/v1/messages``) sends in that situation.

:func:`describe` maps an exception to a :class:`WireError` once; the OpenAI and Anthropic
renderers only choose the body's shape. A gateway's own refusal (a bad body, an unknown model,
a bad key, a budget) is a :class:`GatewayError`, which carries its status and codes itself.
Nothing from outside rxllm's typed errors is shown to a client: any other exception is a 500
"internal error" whose details stay in the gateway's log.
"""

from __future__ import annotations

from typing import Any, ClassVar

import msgspec

from .. import errors
from ..errors import LLMError

__all__ = ["GatewayError", "WireError", "anthropic_error_body", "describe", "openai_error_body"]

_encode = msgspec.json.encode


class GatewayError(LLMError):
    """The gateway refused a request itself (its words, status and codes are final)."""

    category: ClassVar[errors.Category] = "client"

    def __init__(
        self,
        status: int,
        message: str,
        *,
        openai_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        anthropic_type: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message, status_code=status, code=code, param=param, retry_after=retry_after
        )
        self.openai_type = openai_type
        self.anthropic_type = anthropic_type or _ANTHROPIC_TYPE.get(status, "api_error")


class WireError(msgspec.Struct, frozen=True, kw_only=True):
    """What a client is told about a failure."""

    status: int
    message: str
    openai_type: str
    anthropic_type: str
    code: str | None = None
    param: str | None = None
    retry_after: float | None = None


#: Anthropic's ``error.type`` for a status (https://docs.anthropic.com/en/api/errors).
_ANTHROPIC_TYPE = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

#: rxllm class -> (status, OpenAI ``error.type``, OpenAI ``error.code`` when the upstream gave
#: none). The most specific class in an error's MRO wins.
_BY_CLASS: dict[type[BaseException], tuple[int, str, str | None]] = {
    errors.ContextWindowExceededError: (400, "invalid_request_error", "context_length_exceeded"),
    errors.ContentPolicyViolationError: (400, "invalid_request_error", "content_policy_violation"),
    errors.UnsupportedParamsError: (400, "invalid_request_error", "unsupported_parameter"),
    errors.BadRequestError: (400, "invalid_request_error", None),
    errors.ConfigurationError: (400, "invalid_request_error", None),
    errors.AuthenticationError: (401, "authentication_error", "invalid_api_key"),
    errors.PermissionDeniedError: (403, "permission_error", None),
    errors.NotFoundError: (404, "invalid_request_error", "model_not_found"),
    errors.UnprocessableEntityError: (422, "invalid_request_error", None),
    errors.QuotaExceededError: (429, "insufficient_quota", "insufficient_quota"),
    errors.RateLimitError: (429, "rate_limit_error", "rate_limit_exceeded"),
    errors.ServiceUnavailableError: (503, "service_unavailable", None),
    errors.InternalServerError: (500, "server_error", None),
    errors.RedirectError: (502, "server_error", "upstream_redirect"),
    errors.APIStatusError: (502, "server_error", None),
    errors.APITimeoutError: (504, "timeout", "upstream_timeout"),
    errors.StreamCancelledError: (499, "server_error", "cancelled"),
    errors.APIConnectionError: (502, "server_error", "upstream_unreachable"),
    errors.ResponseError: (502, "server_error", "bad_upstream_response"),
    errors.LLMError: (500, "server_error", None),
}


def describe(error: BaseException) -> WireError:
    """The status, words and codes a client gets for ``error``."""
    if isinstance(error, GatewayError):
        return WireError(
            status=error.status_code or 400,
            message=error.message,
            openai_type=error.openai_type,
            anthropic_type=error.anthropic_type,
            code=error.code,
            param=error.param,
            retry_after=error.retry_after,
        )
    if not isinstance(error, LLMError):
        return WireError(
            status=500,
            message="internal error in the gateway (see its log)",
            openai_type="server_error",
            anthropic_type="api_error",
        )
    status, openai_type, default_code = next(
        _BY_CLASS[cls] for cls in type(error).__mro__ if cls in _BY_CLASS
    )
    code = error.code if isinstance(error.code, str) and error.code else default_code
    return WireError(
        status=status,
        message=str(error),
        openai_type=openai_type,
        anthropic_type=_ANTHROPIC_TYPE.get(status, "api_error"),
        code=code,
        param=error.param,
        retry_after=error.retry_after,
    )


def openai_error_body(error: WireError) -> dict[str, Any]:
    """OpenAI's error object: ``{"error": {"message", "type", "param", "code"}}``."""
    return {
        "error": {
            "message": error.message,
            "type": error.openai_type,
            "param": error.param,
            "code": error.code,
        }
    }


def anthropic_error_body(error: WireError, request_id: str | None = None) -> dict[str, Any]:
    """Anthropic's error object: ``{"type": "error", "error": {"type", "message"}}``."""
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": error.anthropic_type, "message": error.message},
    }
    if request_id:
        body["request_id"] = request_id
    return body


def encode(body: dict[str, Any]) -> bytes:
    return _encode(body)
