"""Typed errors: every failure reaches the user as one of these, never as a raw aiohttp error.

Each error carries provider, model, HTTP status, the provider's error code, request id,
``retry_after`` (seconds), whether retrying may help (``recoverable``) and a category:

* ``client``   - the request or the account is wrong; retrying the same call will not help
* ``provider`` - the provider is overloaded, rate-limiting or failing; retrying later may help
* ``response`` - the answer was cut short or could not be parsed
* ``system``   - the network, a timeout or a cancellation on our side

Class names follow openai-python and LiteLLM so ``except RateLimitError`` reads the same.
API keys never appear in an error: the entry layer scrubs any key it used from the message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from .types import ChatResponse

Category = Literal["client", "provider", "response", "system"]

__all__ = [
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "Category",
    "ConfigurationError",
    "ContentPolicyViolationError",
    "ContextWindowExceededError",
    "FanOutError",
    "InternalServerError",
    "LLMError",
    "MalformedResponseError",
    "NotFoundError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitError",
    "RedirectError",
    "ReplayUnavailableError",
    "ResponseError",
    "ServiceUnavailableError",
    "StreamCancelledError",
    "StreamTruncatedError",
    "UnprocessableEntityError",
    "UnsupportedParamsError",
    "WouldBlockError",
    "error_for_status",
    "error_summary",
    "is_llm_error",
]


class LLMError(Exception):
    """Base of every rxllm error."""

    category: ClassVar[Category] = "system"
    default_recoverable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status_code: int | None = None,
        code: str | None = None,
        error_type: str | None = None,
        param: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        recoverable: bool | None = None,
        partial_response: ChatResponse | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.model = model
        self.status_code = status_code
        self.code = code
        self.error_type = error_type
        self.param = param
        self.request_id = request_id
        self.retry_after = retry_after
        self.recoverable = self.default_recoverable if recoverable is None else recoverable
        self.partial_response = partial_response

    @property
    def partial_text(self) -> str:
        """Text streamed before the failure ("" when nothing arrived or not a stream)."""
        return self.partial_response.text if self.partial_response is not None else ""

    def __str__(self) -> str:
        where = "/".join(p for p in (self.provider, self.model) if p)
        bits = [where] if where else []
        if self.status_code is not None:
            bits.append(f"HTTP {self.status_code}")
        if self.code:
            bits.append(f"[{self.code}]")
        head = " ".join(bits)
        return f"{head}: {self.message}" if head else self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, provider={self.provider!r}, "
            f"model={self.model!r}, status_code={self.status_code!r}, code={self.code!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep every attribute across pickling (multiprocessing, caches).
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))

    def _with_context(
        self, *, provider: str | None, model: str | None, secret: str | None
    ) -> LLMError:
        """Fill in what the raiser did not know, and scrub the API key out of the message."""
        if self.provider is None:
            self.provider = provider
        if self.model is None:
            self.model = model
        if secret and secret in self.message:
            self.message = self.message.replace(secret, "***")
            self.args = (self.message,)
        return self


def _rebuild(cls: type[LLMError], message: str, state: dict[str, Any]) -> LLMError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


# --- configuration (raised before any I/O) ------------------------------------------------


class ConfigurationError(LLMError, ValueError):
    """Unknown provider, missing API key, or another setting that makes the call impossible."""

    category: ClassVar[Category] = "client"


# --- HTTP status errors -------------------------------------------------------------------


class APIStatusError(LLMError):
    """The provider answered with an error (an HTTP error status or an error in the body)."""

    category: ClassVar[Category] = "provider"


class BadRequestError(APIStatusError):
    category: ClassVar[Category] = "client"


class ContextWindowExceededError(BadRequestError):
    """The prompt plus ``max_tokens`` does not fit the model's context window."""


class ContentPolicyViolationError(BadRequestError):
    """The provider's safety system refused the prompt."""


class UnsupportedParamsError(BadRequestError):
    """A parameter the provider cannot take (pass ``drop_params=True`` to drop it instead)."""


class RedirectError(APIStatusError):
    """A redirect rxllm does not follow: to another origin (scheme, host, port), or a
    301/302/303 that would turn the POST into a GET. Nothing was sent to ``location``, so no
    credential or prompt reached it; point ``api_base`` at the new address if you trust it."""

    category: ClassVar[Category] = "client"

    def __init__(self, message: str, *, location: str | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        #: Where the server pointed (query string left out), or None when it named nowhere.
        self.location = location


class AuthenticationError(APIStatusError):
    category: ClassVar[Category] = "client"


class PermissionDeniedError(APIStatusError):
    category: ClassVar[Category] = "client"


class NotFoundError(APIStatusError):
    category: ClassVar[Category] = "client"


class UnprocessableEntityError(APIStatusError):
    category: ClassVar[Category] = "client"


class RateLimitError(APIStatusError):
    """Too many requests: wait ``retry_after`` seconds (when the provider said) and retry."""

    category: ClassVar[Category] = "provider"
    default_recoverable = True


class QuotaExceededError(RateLimitError):
    """The account is out of credit or quota: retrying will not help until it is topped up."""

    category: ClassVar[Category] = "client"
    default_recoverable = False


class InternalServerError(APIStatusError):
    category: ClassVar[Category] = "provider"
    default_recoverable = True


class ServiceUnavailableError(InternalServerError):
    """The provider is overloaded or down (503, Anthropic's 529 ``overloaded_error``)."""


# --- connection and response errors -------------------------------------------------------


class APIConnectionError(LLMError):
    """The request could not reach the provider, or the connection broke."""

    category: ClassVar[Category] = "system"
    default_recoverable = True


class APITimeoutError(APIConnectionError):
    """No answer (or no next chunk) within the time limit."""


class StreamCancelledError(APIConnectionError):
    """The stream was cancelled (every subscriber disposed) before it finished."""

    default_recoverable = False


class WouldBlockError(LLMError, RuntimeError):
    """A blocking helper was asked to wait for a stream that needs this very thread to run
    (its event loop is the one the helper would block); the message names what to use."""

    category: ClassVar[Category] = "client"


class ReplayUnavailableError(LLMError):
    """A stream made with ``replay=False`` was subscribed after its first chunk: the chunks
    before are gone, and a partial sequence is never passed off as the whole."""

    category: ClassVar[Category] = "client"


class FanOutError(LLMError):
    """One or more of the streams merged by ``rxllm.streaming.fan_out`` failed.

    ``errors`` maps each failed stream's name to its own typed error (with its partial
    response); ``completed`` names the streams that finished normally. Recoverable when every
    failure is."""

    category: ClassVar[Category] = "response"

    def __init__(self, errors: dict[str, Exception], completed: list[str]) -> None:
        failed = "; ".join(f"{name}: {type(e).__name__}: {e}" for name, e in errors.items())
        super().__init__(
            f"{len(errors)} of {len(errors) + len(completed)} streams failed ({failed})",
            recoverable=all(getattr(e, "recoverable", False) for e in errors.values()),
        )
        self.errors = errors
        self.completed = completed


class ResponseError(LLMError):
    """The provider's answer was incomplete or could not be understood."""

    category: ClassVar[Category] = "response"
    default_recoverable = True


class StreamTruncatedError(ResponseError):
    """The connection ended before the provider's end-of-stream marker."""


class MalformedResponseError(ResponseError):
    """A frame or body that is not what the provider's format promises."""


_STATUS_CLASSES: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    413: BadRequestError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    503: ServiceUnavailableError,
    529: ServiceUnavailableError,
}


def error_for_status(status: int | None) -> type[APIStatusError]:
    """The error class for an HTTP status (a provider module may refine it)."""
    if status is None:
        return APIStatusError
    cls = _STATUS_CLASSES.get(status)
    if cls is not None:
        return cls
    if status >= 500:
        return InternalServerError
    if status >= 400:
        return BadRequestError
    return APIStatusError


def is_llm_error(error: BaseException) -> bool:
    """True for any error raised by rxllm (the seed's ``litellm-error?``)."""
    return isinstance(error, LLMError)


def error_summary(error: BaseException) -> dict[str, Any]:
    """A plain dict describing the error, safe to log or show (it never holds an API key)."""
    if not isinstance(error, LLMError):
        return {"type": type(error).__name__, "message": str(error), "category": "unknown"}
    summary: dict[str, Any] = {
        "type": type(error).__name__,
        "category": error.category,
        "message": error.message,
        "provider": error.provider,
        "model": error.model,
        "status_code": error.status_code,
        "code": error.code,
        "request_id": error.request_id,
        "retry_after": error.retry_after,
        "recoverable": error.recoverable,
    }
    if error.partial_response is not None:
        summary["partial_text"] = error.partial_text
    if isinstance(error, FanOutError):
        summary["errors"] = {name: error_summary(e) for name, e in error.errors.items()}
        summary["completed"] = list(error.completed)
    return summary
