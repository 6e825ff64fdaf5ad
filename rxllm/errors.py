"""Typed errors: every failure reaches the user as one of these, never as a raw aiohttp error.

Each error carries provider, model, HTTP status, the provider's error code, request id,
``retry_after`` (seconds), whether retrying may help (``recoverable``) and a category:

* ``client``   - the request or the account is wrong; retrying the same call will not help
* ``provider`` - the provider is overloaded, rate-limiting or failing; retrying later may help
* ``response`` - the answer was cut short or could not be parsed
* ``system``   - the network, a timeout or a cancellation on our side

Class names follow openai-python and LiteLLM so ``except RateLimitError`` reads the same.

Secrets never appear in an error (docs/contracts.md, 8): whoever raises or passes on an error
for a call hands it the call's secrets (``_with_context``), and from then on every text field -
message, code, param, type, request id, redirect location, and the text of chained causes - is
masked by one :class:`Redactor`, including fields set later.
"""

from __future__ import annotations

import base64
import re
import urllib.parse
from collections.abc import Iterable
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
    "OutputTruncatedError",
    "PLACEHOLDER_KEYS",
    "NotFoundError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RateLimitError",
    "RedactedError",
    "RedirectError",
    "Redactor",
    "ReplayUnavailableError",
    "ResponseError",
    "ServiceUnavailableError",
    "StreamCancelledError",
    "StreamTruncatedError",
    "StructuredOutputError",
    "UnprocessableEntityError",
    "UnsupportedParamsError",
    "WouldBlockError",
    "context_window_exceeded",
    "error_for_status",
    "error_summary",
    "is_llm_error",
    "refine_class",
    "status_from_code",
]

# --- masking secrets ----------------------------------------------------------------------

#: Keys people give servers that need none (rxllm's README suggests ``api_key="none"`` for local
#: servers): not secrets, and masking them would garble ordinary words. Compared lower-cased.
PLACEHOLDER_KEYS = frozenset(
    {
        "",
        "-",
        "anything",
        "dummy",
        "empty",
        "fake",
        "key",
        "lm-studio",
        "n/a",
        "na",
        "no-key",
        "none",
        "not-needed",
        "null",
        "ollama",
        "placeholder",
        "sk-no-key-required",
        "test",
        "token",
        "x",
    }
)
#: Secrets this long are masked wherever they occur (a long key glued to other text is still
#: the key); shorter ones only as a whole token, never inside a word.
_LONG_SECRET = 16
#: Shorter strings are not hunted at all: they protect nothing and would match anywhere.
_SHORT_SECRET = 4
_WORD = "A-Za-z0-9_"
_MASK = "***"
#: How deep a chain of ``__cause__`` / ``__context__`` is scrubbed.
_CHAIN_DEPTH = 16


def _forms(secret: str) -> set[str]:
    """The ways a secret shows up when a server echoes it: as is, percent-encoded (a URL's
    query), and base64-encoded (an echoed ``Authorization: Basic`` header, whose credential is
    ``user:password``, or a key used as the user name or the password)."""
    forms = {secret, urllib.parse.quote(secret, safe="")}
    for raw in (secret, f"{secret}:", f":{secret}"):
        forms.add(base64.b64encode(raw.encode()).decode().rstrip("="))
    return forms


class Redactor:
    """Replaces whole secrets in text with ``***``: one compiled pattern for every form of
    every secret it was given. Never shows or pickles them (a copy made by ``pickle`` masks
    nothing more: what it guarded was masked before)."""

    __slots__ = ("_pattern", "_secrets")

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None
        self.add(secrets)

    def add(self, secrets: Iterable[str | None]) -> bool:
        """Learn more secrets (placeholders and very short strings are ignored); True when
        there was anything new."""
        new = {
            s
            for s in secrets
            if s and len(s) >= _SHORT_SECRET and s.lower() not in PLACEHOLDER_KEYS
        } - self._secrets
        if not new:
            return False
        self._secrets |= new
        forms = sorted({f for s in self._secrets for f in _forms(s)}, key=len, reverse=True)
        self._pattern = re.compile("|".join(_alternative(f) for f in forms if f))
        return True

    def __bool__(self) -> bool:
        return self._pattern is not None

    def __call__(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        pattern = self._pattern
        return text if pattern is None else pattern.sub(_MASK, text)

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secret(s))"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Redactor, ())


def _alternative(form: str) -> str:
    escaped = re.escape(form)
    if len(form) >= _LONG_SECRET:
        return escaped
    return f"(?<![{_WORD}]){escaped}(?![{_WORD}])"


def _as_secrets(secret: str | Iterable[str | None] | None) -> Iterable[str | None]:
    if secret is None:
        return ()
    return (secret,) if isinstance(secret, str) else secret


class LLMError(Exception):
    """Base of every rxllm error."""

    category: ClassVar[Category] = "system"
    default_recoverable: ClassVar[bool] = False
    #: The attributes that hold text from outside (a server's words): masked once the error
    #: knows the call's secrets, whenever they are set.
    _TEXT_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"message", "code", "error_type", "param", "request_id", "location"}
    )

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

    def __setattr__(self, name: str, value: Any) -> None:
        """Text fields set after the error learnt its secrets are masked too (the stream fills
        in ``request_id`` last); ``message`` keeps ``args`` in step, as ``str`` shows it."""
        if isinstance(value, str) and name in self._TEXT_FIELDS:
            redactor = self.__dict__.get("_redactor")
            if redactor is not None:
                value = redactor(value)
            if name == "message":
                self.args = (value,)
        super().__setattr__(name, value)

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep every attribute across pickling (multiprocessing, caches).
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))

    def _with_context(
        self,
        *,
        provider: str | None,
        model: str | None,
        secret: str | Iterable[str | None] | None,
    ) -> LLMError:
        """Fill in what the raiser did not know, and mask the call's secrets (its API key, or
        every credential it carries) in every text field and in the chained causes."""
        if self.provider is None:
            self.provider = provider
        if self.model is None:
            self.model = model
        self._redact(_as_secrets(secret))
        return self

    def _redact(self, secrets: Iterable[str | None]) -> None:
        """Mask ``secrets`` in this error, its causes, and any text field set from now on."""
        redactor: Redactor | None = self.__dict__.get("_redactor")
        if redactor is None:
            redactor = Redactor()
            object.__setattr__(self, "_redactor", redactor)
        if not redactor.add(secrets):
            return
        for name in self._TEXT_FIELDS:
            value = self.__dict__.get(name)
            if isinstance(value, str):
                setattr(self, name, value)  # __setattr__ masks it
        _scrub_chain(self, redactor)


def _rebuild(cls: type[LLMError], message: str, state: dict[str, Any]) -> LLMError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class RedactedError(Exception):
    """Stands in a chain of causes for an exception whose text held a secret and could not be
    masked in place (its ``__str__`` does not come from ``args``)."""


def _scrub_chain(error: BaseException, redactor: Redactor) -> None:
    """Mask the text of every exception chained to ``error`` (``__cause__``, ``__context__``):
    their arguments in place, or the whole link replaced by a :class:`RedactedError`."""
    seen = {id(error)}
    current: BaseException = error
    for _ in range(_CHAIN_DEPTH):
        for attr in ("__cause__", "__context__"):
            linked = getattr(current, attr)
            if linked is None or id(linked) in seen:
                continue
            seen.add(id(linked))
            setattr(current, attr, _scrubbed(linked, redactor))
        following = current.__cause__ or current.__context__
        if following is None or following is current:
            return
        current = following


def _scrubbed(exc: BaseException, redactor: Redactor) -> BaseException:
    """``exc`` with its arguments masked, or a :class:`RedactedError` in its place when its
    ``str`` or ``repr`` still shows a secret (aiohttp's ``ClientResponseError`` repr holds the
    request's headers)."""
    if isinstance(exc, LLMError):
        exc._redact(redactor._secrets)
        return exc
    if _shows_secret(exc, redactor):
        exc.args = tuple(redactor(a) if isinstance(a, str) else a for a in exc.args)
    if not _shows_secret(exc, redactor):
        return exc
    stand_in = RedactedError(f"{type(exc).__qualname__}: {redactor(_text(exc, str))}")
    stand_in.__cause__, stand_in.__context__ = exc.__cause__, exc.__context__
    stand_in.__suppress_context__ = exc.__suppress_context__
    stand_in.__traceback__ = exc.__traceback__
    return stand_in


def _shows_secret(exc: BaseException, redactor: Redactor) -> bool:
    return any(redactor(text) != text for text in (_text(exc, str), _text(exc, repr)))


def _text(exc: BaseException, show: Any) -> str:
    try:
        return str(show(exc))
    except Exception:
        return ""


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


class StructuredOutputError(ResponseError):
    """The answer is not the structured value asked for (``ops.partial_object``,
    ``ops.partial_tool_calls``): its text is not JSON (found as soon as the text shows it), or
    the JSON does not decode to the type asked for (the ``msgspec.ValidationError`` is the
    ``__cause__``), or there is no JSON at all (``refusal`` holds the model's refusal, if it
    gave one). ``text`` is the JSON text as received (``partial_text`` too); ``tool`` names the
    tool call whose arguments failed, None for the answer's text."""

    def __init__(
        self,
        message: str,
        *,
        text: str = "",
        refusal: str | None = None,
        tool: str | None = None,
        **context: Any,
    ) -> None:
        super().__init__(message, **context)
        #: The JSON text as received ("" when none came).
        self.text = text
        #: The model's refusal (OpenAI's ``delta.refusal``), when it refused instead of answering.
        self.refusal = refusal
        #: The tool whose arguments failed (``ops.partial_tool_calls``), else None.
        self.tool = tool

    @property
    def partial_text(self) -> str:
        """The JSON text as received (the partial response's text when there is one)."""
        return self.partial_response.text if self.partial_response is not None else self.text


class OutputTruncatedError(StructuredOutputError):
    """The answer stopped at its token limit (``finish_reason="length"``) before its JSON was
    complete: truncated, not a bad object. Retrying the same call will stop there again; raise
    ``max_tokens`` (or ask for less)."""

    default_recoverable = False


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


#: How providers, gateways (LiteLLM's proxy, OpenRouter) and inference servers (vLLM, TGI,
#: llama.cpp)
#: word a prompt that does not fit the model's context window, in a code or a message.
_CONTEXT_WINDOW = re.compile(
    r"context_length_exceeded|contextwindowexceeded|maximum context length"
    r"|context length is only|prompt is too long|input is too long|prompt too long"
    r"|exceeds? (?:the )?(?:model'?s? )?(?:context window|context limit|context length"
    r"|maximum context)|context window (?:is )?exceeded|too large for model"
    r"|maximum number of tokens allowed|input token count .{0,40}exceeds",
    re.IGNORECASE,
)


def context_window_exceeded(*texts: str | None) -> bool:
    """Whether an error's message, code or type says the prompt is too long for the model."""
    return any(text and _CONTEXT_WINDOW.search(text) for text in texts)


def refine_class(cls: type[LLMError], message: str, *markers: str | None) -> type[LLMError]:
    """The class an error body's words make more precise than its status did: a bad request
    (or one without a status) that says the context window overflowed is a
    :class:`ContextWindowExceededError`, however the server or gateway in front phrased it.
    Every provider module passes its errors through this, so the rule holds on every route."""
    if cls in (APIStatusError, BadRequestError, UnprocessableEntityError) and (
        context_window_exceeded(message, *markers)
    ):
        return ContextWindowExceededError
    return cls


def status_from_code(code: str | int | None) -> int | None:
    """An HTTP status carried as an error ``code`` (``500``, ``"429"``): gateways such as
    LiteLLM's proxy and OpenRouter put the upstream's status there, mid-stream too. None for
    anything else (``"invalid_api_key"``, ``1``)."""
    if isinstance(code, bool) or code is None:
        return None
    if isinstance(code, str):
        code = code.strip()
        if not (code.isascii() and code.isdigit() and len(code) == 3):
            return None
        code = int(code)
    return code if 100 <= code <= 599 else None


def is_llm_error(error: BaseException) -> bool:
    """True for any error raised by rxllm (``litellm-error?``: docs/contracts.md, API table)."""
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
    if isinstance(error, StructuredOutputError):
        summary["partial_text"] = error.partial_text
        if error.refusal is not None:
            summary["refusal"] = error.refusal
        if error.tool is not None:
            summary["tool"] = error.tool
    if isinstance(error, FanOutError):
        summary["errors"] = {name: error_summary(e) for name, e in error.errors.items()}
        summary["completed"] = list(error.completed)
    return summary
