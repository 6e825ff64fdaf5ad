"""OpenAI Chat Completions (``POST {api_base}/chat/completions``), streamed and not.

The wire format is already rxllm's own shape, so a stream chunk is decoded by msgspec straight
into ``ChatChunk``: no intermediate dicts, unknown fields (``obfuscation``, ``logprobs``)
skipped by the decoder. A JSON object without ``id`` (``{"error": {...}}``) fails validation
and is read as an error instead. Compatible servers reuse this module: ``OpenAIProvider`` takes
their name, parameter sets and renames, and has hooks (``auth_headers``, ``url``,
``wire_messages``, ``decode_response``, ``stream_parser``) for the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import msgspec

from .. import errors
from .._events import DataEvents, SSEEvent, StreamEvents
from .._provider import Call, ChatCall, EmbeddingCall, EventParser
from .._sse import SSEDecoder
from .._wire import HttpRequest
from ..errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    ContentPolicyViolationError,
    InternalServerError,
    LLMError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ServiceUnavailableError,
    StreamTruncatedError,
    UnsupportedParamsError,
    error_for_status,
    refine_class,
    status_from_code,
)
from ..types import ChatChunk, ChatResponse, EmbeddingResponse, Message
from ._common import (
    body_snippet,
    check_known_params,
    frame_error,
    request_id_from,
    retry_after_from,
)

__all__ = [
    "CHAT_PARAMS",
    "EMBEDDING_PARAMS",
    "PROVIDER",
    "OpenAIProvider",
    "OpenAIStreamParser",
    "error_from_body",
    "normalise_finish",
    "strip_message",
]

#: Request parameters of the Chat Completions API.
CHAT_PARAMS = frozenset(
    {
        "audio",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "modalities",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_cache_key",
        "reasoning_effort",
        "response_format",
        "safety_identifier",
        "seed",
        "service_tier",
        "stop",
        "store",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "user",
        "verbosity",
        "web_search_options",
    }
)

#: Request parameters of the Embeddings API (vectors are always asked for as floats).
EMBEDDING_PARAMS = frozenset({"dimensions", "user"})

_FINISH = {"function_call": "tool_calls"}

#: SSE event types the stream may use (no type means "message"); others are ignored.
_ACCEPTED_EVENTS = frozenset({"message", "error"})

_decode_chunk = msgspec.json.Decoder(ChatChunk).decode
_decode_chunks = msgspec.json.Decoder(list[ChatChunk]).decode
_decode_response = msgspec.json.Decoder(ChatResponse).decode
_decode_embeddings = msgspec.json.Decoder(EmbeddingResponse).decode
_encode = msgspec.json.Encoder().encode


class _ErrorDetail(msgspec.Struct):
    message: str = ""
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


class _ErrorEnvelope(msgspec.Struct):
    error: _ErrorDetail | str


_decode_error = msgspec.json.Decoder(_ErrorEnvelope).decode
_replace = msgspec.structs.replace

#: Error classes by the body's ``type`` (else ``code``) for errors that come without an error
#: status - a ``200`` carrying an error object, an error frame mid-stream - so that, say, a
#: ``server_error`` is still an InternalServerError (recoverable) there.
_TYPE_CLASSES: dict[str, type[APIStatusError]] = {
    "server_error": InternalServerError,
    "service_unavailable": ServiceUnavailableError,
    "rate_limit_exceeded": RateLimitError,
    "requests": RateLimitError,
    "tokens": RateLimitError,
    "invalid_request_error": BadRequestError,
    "authentication_error": AuthenticationError,
    "invalid_api_key": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "not_found_error": NotFoundError,
    "model_not_found": NotFoundError,
}


class _TopLevelError(msgspec.Struct):
    """The error body of vLLM and servers modelled on it, not wrapped in ``{"error": ...}``:
    ``{"object": "error", "message": ..., "type": "BadRequestError", "param": null,
    "code": 400}``."""

    object: str
    message: str
    type: str | None = None
    param: str | None = None
    code: str | int | None = None


_decode_top_level = msgspec.json.Decoder(_TopLevelError).decode


def _error_detail(body: bytes) -> _ErrorDetail | str | None:
    """The error object of a body in either shape, or None when it is neither."""
    try:
        return _decode_error(body).error
    except (msgspec.DecodeError, RecursionError):
        pass
    try:
        top = _decode_top_level(body)
    except (msgspec.DecodeError, RecursionError):
        return None
    if top.object != "error":
        return None
    return _ErrorDetail(message=top.message, type=top.type, param=top.param, code=top.code)


def _class_for(
    status: int | None, numeric: int | None, code: str | None, error_type: str | None
) -> type[LLMError]:
    """The class from the HTTP status; for an error without an error status (a 200 carrying
    an error object, an error frame mid-stream) from the status the body names in its
    ``code``, else its ``type`` or ``code`` word."""
    if status is not None and status >= 400:
        return error_for_status(status)
    if numeric is not None:
        return error_for_status(numeric)
    named = _TYPE_CLASSES.get(error_type or "") or _TYPE_CLASSES.get(code or "")
    if named is None and error_type in errors.__all__:  # vLLM's type: "BadRequestError"
        candidate = getattr(errors, error_type)
        if isinstance(candidate, type) and issubclass(candidate, APIStatusError):
            named = candidate
    return named or error_for_status(status)


def error_from_body(
    status: int | None,
    body: bytes,
    headers: Mapping[str, str],
    *,
    provider: str,
    model: str | None,
) -> LLMError:
    """An OpenAI-style error body (``{"error": {message, type, param, code}}``, or vLLM's
    top-level ``{"object": "error", ...}``) -> typed error.

    ``status`` is None for an error object that arrived inside a 200 stream; a numeric ``code``
    (``500``, ``"429"``: gateways such as LiteLLM's proxy and OpenRouter put the upstream's
    status there) then chooses the class as a status would, and becomes ``status_code``."""
    message, code, error_type, param = "", None, None, None
    numeric: int | None = None
    detail = _error_detail(body)
    if detail is None:
        message = body_snippet(body) or f"HTTP {status} with an empty body"
    elif isinstance(detail, str):
        message = detail
    else:
        message = detail.message
        code = None if detail.code is None else str(detail.code)
        error_type, param = detail.type, detail.param
        numeric = status_from_code(detail.code)
    cls = _class_for(status, numeric, code, error_type)
    markers = f"{code or ''} {error_type or ''}"
    if "insufficient_quota" in markers or status == 402:
        cls = QuotaExceededError
    elif "content_policy_violation" in markers or code == "content_filter":
        cls = ContentPolicyViolationError
    elif code == "unsupported_parameter":
        cls = UnsupportedParamsError
    else:
        cls = refine_class(cls, message, code, error_type)
    if numeric is not None and (status is None or status < 400):
        status = numeric
    return cls(
        message,
        provider=provider,
        model=model,
        status_code=status,
        code=code,
        error_type=error_type,
        param=param,
        request_id=request_id_from(headers),
        retry_after=retry_after_from(headers),
    )


def normalise_finish(choices: Any) -> None:
    """Keep the provider's finish reason in ``native_finish_reason`` (unless the wire already
    carried one, as OpenRouter's upstream value); map legacy values."""
    for choice in choices:
        reason = choice.finish_reason
        if reason is not None:
            if choice.native_finish_reason is None:
                choice.native_finish_reason = reason
            choice.finish_reason = _FINISH.get(reason, reason)


def strip_message(message: Message) -> Message:
    """The message without what the Chat Completions API does not take: rxllm's opaque
    ``provider_fields``, ``reasoning_content`` and Anthropic-style ``cache_control``
    breakpoints (on the message or its parts)."""
    content = message.content
    if isinstance(content, list) and any(p.cache_control is not None for p in content):
        content = [_replace(p, cache_control=None) for p in content]
    elif (
        message.provider_fields is None
        and message.reasoning_content is None
        and message.cache_control is None
    ):
        return message
    return _replace(
        message,
        content=content,
        provider_fields=None,
        reasoning_content=None,
        cache_control=None,
    )


class OpenAIStreamParser(EventParser):
    """``data: {chunk}`` events until ``data: [DONE]``; events of other types than the
    default (and ``error``) are ignored.

    A read's events are decoded in one call, as a JSON array of their payloads: msgspec then
    loops in C. Should that fail (the ``[DONE]`` marker, an error object, a bad frame) the
    events are parsed one by one, which finds and reports the exact frame. A subclass that
    reads fields ``ChatChunk`` lacks lists byte ``markers``: a read containing one skips the
    bulk decode and goes to :meth:`each`.
    """

    __slots__ = ("_model", "_name", "done")

    #: Byte strings whose presence sends a read to the one-by-one path (none for OpenAI).
    markers: tuple[bytes, ...] = ()

    def __init__(self, name: str, model: str) -> None:
        self._name = name
        self._model = model
        self.done = False

    def parse(self, events: StreamEvents) -> tuple[list[ChatChunk], LLMError | None]:
        if type(events) is DataEvents:
            payload, ends = events.json_array(b"[DONE]")
            if payload is None:
                self.done = ends
                return [], None
        else:  # reads of other shapes (an event with an id or a name, a comment line)
            sse = cast("list[SSEEvent]", events)
            ends = bool(sse) and sse[-1].data == b"[DONE]"
            body = sse[:-1] if ends else sse
            if len(body) < 2:
                return self.each(events)
            payloads = [event.data for event in body if event.event == "message"]
            if len(payloads) != len(body):  # an event of another type: skipped one by one
                return self.each(events)
            payload = b"[" + b",".join(payloads) + b"]"
        for marker in self.markers:
            if marker in payload:
                return self.each(events)
        try:
            chunks = _decode_chunks(payload)
        except (msgspec.DecodeError, RecursionError):
            return self.each(events)
        name = self._name
        for chunk in chunks:
            chunk.provider = name
            for choice in chunk.choices:
                reason = choice.finish_reason
                if reason is not None:
                    if choice.native_finish_reason is None:
                        choice.native_finish_reason = reason
                    choice.finish_reason = _FINISH.get(reason, reason)
        self.done = ends
        return chunks, None

    def each(self, events: StreamEvents) -> tuple[list[ChatChunk], LLMError | None]:
        """The events one by one (through :meth:`feed`)."""
        return EventParser.parse(self, events)

    def feed(self, event: SSEEvent) -> ChatChunk | None:
        if event.event not in _ACCEPTED_EVENTS:
            return None  # an event type the protocol does not define: ignored, like its SDK
        data = event.data
        try:
            chunk = _decode_chunk(data)
        except (msgspec.DecodeError, RecursionError):  # also ValidationError and [DONE] once
            stripped = data.strip()
            if stripped == b"[DONE]":
                self.done = True
                return None
            if not stripped:
                return None
            raise self.not_a_chunk(data) from None
        chunk.provider = self._name
        normalise_finish(chunk.choices)
        return chunk

    def finish(self) -> ChatChunk | None:
        if not self.done:
            raise StreamTruncatedError(
                "the connection closed before the end of the stream ([DONE])",
                provider=self._name,
                model=self._model,
            )
        return None

    def not_a_chunk(self, data: bytes) -> LLMError:
        """An ``{"error": ...}`` frame is the provider's error; anything else is malformed."""
        return frame_error(
            data, _decode_error, error_from_body, provider=self._name, model=self._model
        )


def _rename(params: dict[str, Any], renames: Mapping[str, str]) -> dict[str, Any]:
    if not renames or not any(k in renames for k in params):
        return params
    return {renames.get(k, k): v for k, v in params.items()}


class OpenAIProvider:
    """The Chat Completions protocol; ``name`` and the hooks below let compatible servers reuse
    it (their modules subclass it or build one with other parameter sets).

    ``renames`` translate OpenAI parameter names to the server's own (``seed`` ->
    ``random_seed``); ``stream_usage`` says whether to ask for the usage chunk with
    ``stream_options`` (servers that reject unknown fields must not get it);
    ``base_required`` refuses a call without ``api_base`` (no public default endpoint).
    """

    def __init__(
        self,
        name: str = "openai",
        *,
        params: frozenset[str] = CHAT_PARAMS,
        embedding_params: frozenset[str] = EMBEDDING_PARAMS,
        option_names: frozenset[str] = frozenset({"organization", "project"}),
        renames: Mapping[str, str] | None = None,
        embedding_renames: Mapping[str, str] | None = None,
        stream_usage: bool = True,
        base_required: bool = False,
    ) -> None:
        self.name = name
        self.renames = dict(renames or {})
        self.embedding_renames = dict(embedding_renames or {})
        self.params = params | frozenset(self.renames)
        self.embedding_params = embedding_params | frozenset(self.embedding_renames)
        self.option_names = option_names
        self.stream_usage = stream_usage
        self.base_required = base_required

    def check_params(self, params: dict[str, Any], drop: bool) -> dict[str, Any]:
        return self.translate_params(check_known_params(self.name, params, self.params, drop))

    def translate_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Accepted OpenAI-style parameters -> the server's own names and shapes."""
        return _rename(params, self.renames)

    def auth_headers(self, call: Call) -> dict[str, str]:
        return {"Authorization": f"Bearer {call.api_key}"} if call.api_key else {}

    def headers(self, call: Call, *, stream: bool = False) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if stream:
            headers["Accept"] = "text/event-stream"
        headers.update(self.auth_headers(call))
        if call.options.get("organization"):
            headers["OpenAI-Organization"] = str(call.options["organization"])
        if call.options.get("project"):
            headers["OpenAI-Project"] = str(call.options["project"])
        headers.update(call.extra_headers)
        return headers

    def base(self, call: Call) -> str:
        """``api_base`` without a trailing slash; refused when empty and required."""
        if not call.api_base and self.base_required:
            raise ConfigurationError(
                f"{self.name} has no default endpoint: pass api_base='https://...'",
                provider=self.name,
            )
        return call.api_base.rstrip("/")

    def url(self, call: ChatCall) -> str:
        return self.base(call) + "/chat/completions"

    def wire_messages(self, messages: list[Message]) -> list[Any]:
        """The messages as this server takes them (default: :func:`strip_message`)."""
        return [strip_message(m) for m in messages]

    def body(self, call: ChatCall) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": call.model,
            "messages": self.wire_messages(call.messages),
            **call.params,
        }
        if call.stream:
            body["stream"] = True
            if self.stream_usage:
                options = body.get("stream_options") or {}
                body["stream_options"] = {**options, "include_usage": True}
        body.update(call.extra_body)
        return body

    def build_request(self, call: ChatCall) -> HttpRequest:
        headers = self.headers(call, stream=call.stream)
        return HttpRequest("POST", self.url(call), headers, _encode(self.body(call)))

    def decode_response(self, body: bytes, call: ChatCall) -> ChatResponse:
        """The body -> ``ChatResponse``; raises ``msgspec.DecodeError`` when it is not one."""
        return _decode_response(body)

    def _not_a(self, what: str, body: bytes, call: Call, exc: Exception) -> LLMError:
        """The typed error for a 2xx body that is not ``what``: the provider's own error when
        the body is an error object, else a malformed response showing what came instead
        (JSON nested deeper than the decoder follows, ``RecursionError``, is one too)."""
        if isinstance(exc, msgspec.ValidationError):
            if b'"error"' in body:  # read as the provider reads its errors, as a stream does
                return self.map_error(200, body, {}, call)
            problem = f"response is not {what}"
        elif isinstance(exc, RecursionError):
            problem = "response is JSON nested too deeply to read"
        else:
            problem = "response is not JSON"
        return MalformedResponseError(
            f"{problem}: {body_snippet(body, 200)!r}", provider=self.name, model=call.model
        )

    def parse_response(self, body: bytes, call: ChatCall) -> ChatResponse:
        try:
            response = self.decode_response(body, call)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise self._not_a("a chat.completion", body, call, exc) from None
        response.provider = self.name
        normalise_finish(response.choices)
        return response

    def decoder(self) -> SSEDecoder:
        return SSEDecoder()

    def stream_parser(self, call: ChatCall) -> OpenAIStreamParser:
        return OpenAIStreamParser(self.name, call.model)

    def map_error(
        self, status: int, body: bytes, headers: Mapping[str, str], call: Call
    ) -> LLMError:
        return error_from_body(status, body, headers, provider=self.name, model=call.model)

    # --- embeddings --------------------------------------------------------------------

    def check_embedding_params(self, params: dict[str, Any], drop: bool) -> dict[str, Any]:
        checked = check_known_params(self.name, params, self.embedding_params, drop)
        return _rename(checked, self.embedding_renames)

    def embedding_url(self, call: EmbeddingCall) -> str:
        return self.base(call) + "/embeddings"

    def build_embedding_request(self, call: EmbeddingCall) -> HttpRequest:
        body = {"model": call.model, "input": call.input, **call.params, **call.extra_body}
        return HttpRequest("POST", self.embedding_url(call), self.headers(call), _encode(body))

    def parse_embedding_response(self, body: bytes, call: EmbeddingCall) -> EmbeddingResponse:
        try:
            response = _decode_embeddings(body)
        except (msgspec.DecodeError, RecursionError) as exc:
            raise self._not_a("an embedding list", body, call, exc) from None
        response.provider = self.name
        return response


PROVIDER = OpenAIProvider()
