"""The mock provider: scripted answers over real HTTP, for testing code that uses rxllm.

``completion("mock", "any-model", messages=..., stream=True, mock_response="Hello there")``
streams "Hello there" as word-sized deltas in OpenAI's chunk format; ``mock_transcript=`` replays
a recorded OpenAI-format SSE body (a file path, or the bytes) instead. Without either, the mock
echoes the last user message. Options:

* ``mock_delay`` - seconds before each chunk; a pair ``(first, between)`` sets the time to the
  first chunk apart from the gaps after it;
* ``mock_error`` - an HTTP status (400-599) or an ``rxllm.errors`` class to fail with, and
  ``mock_error_after`` - how many chunks arrive first (default 0: the request itself fails).

This module only translates, like every provider: the request it builds is a
:class:`~rxllm._wire.ScriptedReply` addressed to rxllm's loopback server
(:mod:`rxllm.transport.loopback`), which plays it back over a real TCP connection. So the answer
goes through the same decoder, parser and stream as a real provider's - hot, shared, lazy,
replaying, cancellable - and its failures are real too: ``StreamTruncatedError`` cuts the
connection, ``MalformedResponseError`` sends an unparseable frame, ``APIConnectionError`` (before
any chunk) refuses the connection; any other error is the provider's error response (before any
chunk) or error event (mid-stream), read back as the class or status asked for.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from .. import errors
from .._assemble import assemble
from .._events import SSEEvent
from .._provider import Call, ChatCall
from .._wire import HttpRequest, ScriptedReply
from ..errors import (
    APIConnectionError,
    APIStatusError,
    BadRequestError,
    FanOutError,
    LLMError,
    MalformedResponseError,
    StreamTruncatedError,
    error_for_status,
)
from ..types import ChatChunk, ChatResponse
from ._common import request_id_from, retry_after_from
from .openai import CHAT_PARAMS, OpenAIProvider, OpenAIStreamParser, error_from_body

__all__ = ["PROVIDER", "MockProvider"]

NAME = "mock"
MOCK_OPTIONS = frozenset(
    {"mock_response", "mock_transcript", "mock_delay", "mock_error", "mock_error_after"}
)

#: Word-sized deltas: each run of non-space with the spaces before it (trailing space kept).
_WORDS = re.compile(r"\s*\S+|\s+")
_UNPARSEABLE = b'data: {"id": "chatcmpl-mock", "choices": [\n\n'
_encode = msgspec.json.Encoder().encode
_decode_chunk = msgspec.json.Decoder(ChatChunk).decode
_SSE_HEADERS = {"Content-Type": "text/event-stream", "x-request-id": "req_mock"}
_JSON_HEADERS = {"Content-Type": "application/json", "x-request-id": "req_mock"}

#: The HTTP status an error class is sent with (the most specific match in its MRO).
_STATUS_OF: dict[type[LLMError], int] = {
    errors.BadRequestError: 400,
    errors.AuthenticationError: 401,
    errors.PermissionDeniedError: 403,
    errors.NotFoundError: 404,
    errors.UnprocessableEntityError: 422,
    errors.RateLimitError: 429,
    errors.InternalServerError: 500,
    errors.ServiceUnavailableError: 503,
    errors.APIStatusError: 500,
}


class _MockErrorDetail(msgspec.Struct, omit_defaults=True):
    message: str = ""
    type: str | None = None
    code: str | None = None
    #: The HTTP status the error stands for (in an error event, where there is no status line).
    status: int | None = None
    #: The ``rxllm.errors`` class asked for.
    rxllm_class: str | None = None


class _MockErrorEnvelope(msgspec.Struct):
    error: _MockErrorDetail


_decode_mock_error = msgspec.json.Decoder(_MockErrorEnvelope).decode


# --- reading the options (at call time: a bad option raises before any request) --------------


def _bad(message: str, call: Call) -> BadRequestError:
    return BadRequestError(message, provider=NAME, model=call.model)


def _delays(value: Any, call: Call) -> tuple[float, float]:
    if value is None:
        return 0.0, 0.0
    pair = (value, value) if isinstance(value, (int, float)) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, (int, float)) and v >= 0 for v in pair):
        raise _bad(
            f"mock_delay must be seconds >= 0 or a (first, between) pair, not {value!r}", call
        )
    return float(pair[0]), float(pair[1])


def _error_kind(value: Any, call: Call) -> int | type[LLMError] | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
        return value
    if isinstance(value, type) and issubclass(value, LLMError) and value is not FanOutError:
        return value
    raise _bad(
        f"mock_error must be an HTTP status (400-599) or an rxllm error class, not {value!r}", call
    )


def _transcript(value: Any, call: Call) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (str, os.PathLike)):
        try:
            return Path(value).read_bytes()
        except OSError as exc:
            raise _bad(f"cannot read mock_transcript {str(value)!r}: {exc}", call) from None
    raise _bad("mock_transcript must be a file path or the bytes of a recorded body", call)


def _last_user_text(call: ChatCall) -> str:
    for message in reversed(call.messages):
        if message.role == "user":
            return message.text
    return ""


# --- the answer as wire bytes ----------------------------------------------------------------


def _chunk(call: ChatCall, created: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    body = {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": created,
        "model": call.model,
        "choices": [choice],
    }
    return b"data: " + _encode(body) + b"\n\n"


def _usage(call: ChatCall, completion_tokens: int) -> dict[str, int]:
    """Usage as a provider would report it: the prompt estimated at 4 bytes a token, plus
    OpenAI's 3 per message; one token per word-sized delta of the answer."""
    prompt = sum(3 + (len(m.text.encode()) + 3) // 4 for m in call.messages) + 3
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }


def _text_events(call: ChatCall, text: str) -> tuple[list[bytes], list[bytes]]:
    """(content events, closing events) of a streamed text answer."""
    created = int(time.time())
    words = _WORDS.findall(text) or [""]
    content = [
        _chunk(
            call, created, {"role": "assistant", "content": word} if i == 0 else {"content": word}
        )
        for i, word in enumerate(words)
    ]
    usage = {
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": created,
        "model": call.model,
        "choices": [],
        "usage": _usage(call, len(words) if text else 0),
    }
    closing = [
        _chunk(call, created, {}, "stop"),
        b"data: " + _encode(usage) + b"\n\n",
        b"data: [DONE]\n\n",
    ]
    return content, closing


def _sse_events(body: bytes) -> list[bytes]:
    """A recorded SSE body split into its events (each with its blank line)."""
    normalised = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return [event + b"\n\n" for event in normalised.split(b"\n\n") if event.strip()]


def _event_data(event: bytes) -> bytes:
    lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines)


def _transcript_events(body: bytes) -> tuple[list[bytes], list[bytes]]:
    """(chunk events, closing events) of a recorded stream: the closing ones are ``[DONE]``
    and whatever follows it."""
    events = _sse_events(body)
    for i, event in enumerate(events):
        if _event_data(event).strip() == b"[DONE]":
            return events[:i], events[i:]
    return events, []


def _response_body(call: ChatCall, text: str) -> bytes:
    response = {
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": call.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": _usage(call, len(_WORDS.findall(text))),
    }
    return _encode(response)


def _assembled(call: ChatCall, transcript: bytes) -> bytes:
    """A recorded stream as the ``chat.completion`` body a non-streaming call gets."""
    chunks = []
    for event in _transcript_events(transcript)[0]:
        try:
            chunks.append(_decode_chunk(_event_data(event)))
        except (msgspec.DecodeError, RecursionError):
            raise _bad(
                "mock_transcript holds a frame that is not a chat.completion.chunk", call
            ) from None
    return _encode(assemble(chunks))


# --- injected errors -------------------------------------------------------------------------


def _error_body(kind: int | type[LLMError], status: int | None) -> bytes:
    name = f"HTTP {kind}" if isinstance(kind, int) else kind.__name__
    detail = _MockErrorDetail(
        message=f"mock error: {name}",
        type="mock_error",
        code="mock_error",
        status=status,
        rxllm_class=None if isinstance(kind, int) else kind.__name__,
    )
    return _encode(_MockErrorEnvelope(detail))


def _status_of(kind: int | type[LLMError]) -> int | None:
    if isinstance(kind, int):
        return kind
    for cls in kind.__mro__:
        status = _STATUS_OF.get(cls)
        if status is not None:
            return status
    return None


def _error_reply(
    kind: int | type[LLMError], before: list[bytes], stream: bool, headers: dict[str, str]
) -> ScriptedReply:
    """The reply that fails the way ``kind`` asks, after the pieces ``before``."""
    if kind is StreamTruncatedError:
        return ScriptedReply(headers=headers, pieces=[*before, b""], abort_after=len(before))
    if kind is MalformedResponseError:
        garbage = _UNPARSEABLE if stream else _UNPARSEABLE[6:]
        return ScriptedReply(headers=headers, pieces=[*before, garbage])
    if kind is APIConnectionError and not before:
        return ScriptedReply(refuse=True)
    status = _status_of(kind)
    if before or (stream and status is None):
        # Mid-stream: an error event, as OpenAI sends one (its status in the body).
        event = b"data: " + _error_body(kind, status) + b"\n\n"
        return ScriptedReply(headers=headers, pieces=[*before, event])
    return ScriptedReply(
        status=status or 200, headers=_JSON_HEADERS, pieces=[_error_body(kind, None)]
    )


def _whole_reply(
    call: ChatCall, transcript: bytes | None, text: str, kind: int | type[LLMError] | None
) -> ScriptedReply:
    """The reply to a non-streaming call: one ``chat.completion`` body, or the error."""
    if transcript is not None and transcript.lstrip().startswith(b"{"):
        body = transcript  # a recorded chat.completion body: served as it is
    elif transcript is not None:
        body = _assembled(call, transcript)
    else:
        body = _response_body(call, text)
    if kind is None:
        return ScriptedReply(headers=_JSON_HEADERS, pieces=[body])
    before = [body[: len(body) // 2]] if kind is StreamTruncatedError else []
    return _error_reply(kind, before, False, _JSON_HEADERS)


def _stream_reply(
    call: ChatCall,
    transcript: bytes | None,
    text: str,
    kind: int | type[LLMError] | None,
    after: int,
) -> ScriptedReply:
    """The reply to a streaming call: the events, or the first ``after`` and the error."""
    if transcript is None:
        content, closing = _text_events(call, text)
    elif transcript.lstrip().startswith(b"{"):
        raise _bad("mock_transcript is a JSON response; a stream needs a recorded SSE body", call)
    else:
        content, closing = _transcript_events(transcript)
    if kind is None:
        return ScriptedReply(headers=_SSE_HEADERS, pieces=content + closing)
    return _error_reply(kind, content[: min(after, len(content))], True, _SSE_HEADERS)


def _typed_error(
    status: int | None, body: bytes, headers: Mapping[str, str], model: str
) -> LLMError:
    """An error body the mock sent -> the class (or the status's class) it asked for."""
    try:
        detail = _decode_mock_error(body).error
    except (msgspec.DecodeError, RecursionError):
        return error_from_body(status, body, headers, provider=NAME, model=model)
    status = detail.status or status
    cls: type[LLMError] = error_for_status(status)
    named = getattr(errors, detail.rxllm_class or "", None)
    if isinstance(named, type) and issubclass(named, LLMError) and named is not FanOutError:
        cls = named
    return cls(
        detail.message,
        provider=NAME,
        model=model,
        status_code=status if issubclass(cls, APIStatusError) else None,
        code=detail.code,
        error_type=detail.type,
        request_id=request_id_from(headers),
        retry_after=retry_after_from(headers),
    )


# --- the provider ----------------------------------------------------------------------------


class MockStreamParser(OpenAIStreamParser):
    """OpenAI's chunk format; an error event becomes the error class the mock was asked for."""

    __slots__ = ("_mock_model",)

    def __init__(self, name: str, model: str) -> None:
        super().__init__(name, model)
        self._mock_model = model

    def feed(self, event: SSEEvent) -> ChatChunk | None:
        try:
            return super().feed(event)
        except MalformedResponseError:
            raise
        except LLMError:  # an error event: read it the mock's way
            raise _typed_error(None, event.data, {}, self._mock_model) from None


class MockProvider(OpenAIProvider):
    """Answers scripted by the ``mock_*`` options, served by rxllm's loopback server."""

    def __init__(self) -> None:
        super().__init__(NAME, params=CHAT_PARAMS, option_names=MOCK_OPTIONS)

    def build_request(self, call: ChatCall) -> HttpRequest:
        options = call.options
        first_delay, delay = _delays(options.get("mock_delay"), call)
        kind = _error_kind(options.get("mock_error"), call)
        after = options.get("mock_error_after") or 0
        if not isinstance(after, int) or after < 0:
            raise _bad(f"mock_error_after must be a count of chunks >= 0, not {after!r}", call)
        response, recorded = options.get("mock_response"), options.get("mock_transcript")
        if response is not None and recorded is not None:
            raise _bad("pass mock_response= or mock_transcript=, not both", call)
        transcript = _transcript(recorded, call) if recorded is not None else None
        text = _last_user_text(call) if response is None else str(response)
        if call.stream:
            reply = _stream_reply(call, transcript, text, kind, after)
        else:
            reply = _whole_reply(call, transcript, text, kind)
        reply.first_delay, reply.delay = first_delay, delay
        headers = {"Content-Type": "application/msgpack", **call.extra_headers}
        url = call.api_base.rstrip("/") + "/chat/completions"
        return HttpRequest("POST", url, headers, msgspec.msgpack.encode(reply))

    def parse_response(self, body: bytes, call: ChatCall) -> ChatResponse:
        if body.startswith(b'{"error"'):
            raise _typed_error(200, body, {}, call.model)
        return super().parse_response(body, call)

    def stream_parser(self, call: ChatCall) -> MockStreamParser:
        return MockStreamParser(self.name, call.model)

    def map_error(
        self, status: int, body: bytes, headers: Mapping[str, str], call: Call
    ) -> LLMError:
        return _typed_error(status, body, headers, call.model)


PROVIDER = MockProvider()
