"""The OpenAI wire format on the gateway's side: requests in, responses and streams out.

A chat request's body is decoded once by msgspec into :class:`ChatRequest` (the fields the
gateway itself reads) plus the rest as request parameters for the router, which checks them as
``rxllm.completion`` does (an unsupported one is a 400 naming it). Responses are rxllm's own
structs, already OpenAI-shaped; streams go through :class:`rxllm._sse_frames.SSEFrames`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from .._sse_frames import SSEFrames
from ..types import ChatChunk, ChatResponse, EmbeddingResponse, Usage
from ._errors import GatewayError, WireError, openai_error_body

__all__ = [
    "ChatRequest",
    "EmbeddingRequest",
    "OpenAIFrames",
    "models_body",
    "parse_chat",
    "parse_embeddings",
    "render_chat",
    "render_embeddings",
]

_encode = msgspec.json.Encoder().encode


class StreamOptions(msgspec.Struct, kw_only=True):
    include_usage: bool = False
    include_obfuscation: bool | None = None


class ChatRequest(msgspec.Struct, kw_only=True):
    """What the gateway reads of ``POST /v1/chat/completions``; the rest are ``params``."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
    stream_options: StreamOptions | None = None
    params: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class EmbeddingRequest(msgspec.Struct, kw_only=True):
    model: str
    input: str | list[Any]
    params: dict[str, Any] = msgspec.field(default_factory=dict)


_CHAT_FIELDS = frozenset(ChatRequest.__struct_fields__) - {"params"}
_EMBEDDING_FIELDS = frozenset(EmbeddingRequest.__struct_fields__) - {"params"}
_decode_object = msgspec.json.Decoder(dict[str, Any]).decode


def _body_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise GatewayError(400, "the request body is empty: send a JSON object")
    try:
        return _decode_object(body)
    except msgspec.ValidationError:
        raise GatewayError(400, "the request body must be a JSON object") from None
    except msgspec.DecodeError as exc:
        raise GatewayError(400, f"the request body is not valid JSON: {exc}") from None


def _convert(data: dict[str, Any], cls: type[Any]) -> Any:
    """``msgspec.convert`` with its error as a 400 naming the field (OpenAI's ``param``)."""
    try:
        return msgspec.convert(data, cls)
    except msgspec.ValidationError as exc:
        message = str(exc)
        param = None
        if " - at `$." in message:
            message, _, path = message.partition(" - at `$.")
            param = path.rstrip("`")
            message = f"{param}: {message}"
        elif message.startswith("Object missing required field"):
            param = message.rsplit("`", 2)[-2] if "`" in message else None
            message = f"missing required parameter: '{param}'" if param else message
        raise GatewayError(400, message, param=param) from None


def parse_chat(body: bytes) -> ChatRequest:
    """A chat completions request; a malformed one is a 400 naming the field."""
    data = _body_object(body)
    known = {k: v for k, v in data.items() if k in _CHAT_FIELDS}
    request: ChatRequest = _convert(known, ChatRequest)
    if not request.model:
        raise GatewayError(400, "model must not be empty", param="model")
    if not request.messages:
        raise GatewayError(400, "messages must not be empty", param="messages")
    request.params = {k: v for k, v in data.items() if k not in _CHAT_FIELDS and v is not None}
    return request


def parse_embeddings(body: bytes) -> EmbeddingRequest:
    """An embeddings request; a malformed one is a 400 naming the field."""
    data = _body_object(body)
    known = {k: v for k, v in data.items() if k in _EMBEDDING_FIELDS}
    request: EmbeddingRequest = _convert(known, EmbeddingRequest)
    if not request.model:
        raise GatewayError(400, "model must not be empty", param="model")
    request.params = {k: v for k, v in data.items() if k not in _EMBEDDING_FIELDS and v is not None}
    return request


def render_chat(response: ChatResponse) -> bytes:
    """A ``chat.completion`` body (rxllm's response is already that shape)."""
    return _encode(response)


def render_embeddings(response: EmbeddingResponse) -> bytes:
    return _encode(response)


def models_body(names: list[str], created: int) -> bytes:
    """``GET /v1/models``: OpenAI's list of model objects."""
    return _encode(
        {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": created, "owned_by": "rxllm"}
                for name in names
            ],
        }
    )


class OpenAIFrames:
    """A stream as OpenAI's SSE for one client: chunks, then usage (if the client asked for it)
    and ``[DONE]``, or an ``error`` event with OpenAI's error object."""

    __slots__ = ("_frames",)

    def __init__(self, *, include_usage: bool) -> None:
        self._frames = SSEFrames(include_usage=include_usage)

    @property
    def usage(self) -> Usage | None:
        return self._frames.usage

    def start(self) -> bytes:
        return b""

    def chunk(self, chunk: ChatChunk) -> bytes:
        return self._frames.chunk(chunk)

    def end(self) -> bytes:
        return b"".join(self._frames.end())

    def error(self, error: WireError) -> bytes:
        failure = Exception(error.message)
        return b"".join(self._frames.error(failure, openai_error_body(error)))
