"""Ollama's native API (``POST {api_base}/api/chat``, NDJSON stream; ``POST /api/embed``).

No key is needed (``OLLAMA_API_KEY`` is sent as a bearer token when set, for ollama.com);
the base URL defaults to ``http://localhost:11434`` and may come from ``OLLAMA_API_BASE`` or
``OLLAMA_HOST`` (a bare ``host:port`` gets ``http://``).

The stream is one JSON object per line: ``message.content`` / ``message.thinking``
(-> ``reasoning_content``) / ``message.tool_calls`` deltas with ``"done": false``, then a final
``"done": true`` line with ``done_reason`` and the counts ``prompt_eval_count`` /
``eval_count`` (-> usage). That final line is the end marker; a body that ends before it is a
truncation. A line ``{"error": "..."}`` is an error that happened mid-stream (HTTP 200).
Lines shaped like ``/api/generate``'s (``response`` instead of ``message``) are read as text
too: Ollama's documented mid-stream error example is written that way.

Tool calls come whole, with their arguments as a JSON *object* and no id: each gets an index,
an id (``call_`` + 24 hex digits, unless the server sent one) and its arguments as JSON text,
so they look like OpenAI's; finish reason ``stop`` after a tool call becomes ``tool_calls``
(the native value is kept). Sending them back, arguments are decoded again and the tool
result names its tool (``tool_name``) from the call's id.

OpenAI-style parameters are translated: ``temperature``, ``top_p``, ``seed``, ``stop``,
``presence_penalty``, ``frequency_penalty`` go into ``options``, ``max_tokens`` /
``max_completion_tokens`` become ``options.num_predict``, ``response_format`` becomes
``format``, ``reasoning_effort`` becomes ``think``; Ollama's own ``format``, ``options``,
``keep_alive``, ``think`` and model options (``top_k``, ``min_p``, ``num_ctx``,
``repeat_penalty``, ``num_predict``) pass through. ``tool_choice`` may only be ``"auto"``
(the default) or ``"none"`` (tools are then not sent). Image parts must be ``data:`` URLs:
Ollama takes images as base64 in the message's ``images`` list.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Mapping
from typing import Any, cast

import msgspec

from .._assemble import assemble
from .._events import StreamEvents
from .._ndjson import NDJSONDecoder
from .._provider import Call, ChatCall, EmbeddingCall
from .._wire import HttpRequest
from ..errors import (
    BadRequestError,
    InternalServerError,
    LLMError,
    MalformedResponseError,
    StreamTruncatedError,
    UnsupportedParamsError,
    error_for_status,
    refine_class,
)
from ..types import (
    ChatChunk,
    ChatResponse,
    Delta,
    Embedding,
    EmbeddingResponse,
    FunctionCallDelta,
    ImagePart,
    Message,
    StreamChoice,
    TextPart,
    ToolCallDelta,
    Usage,
)
from ._common import (
    body_snippet,
    check_known_params,
    data_url,
    request_id_from,
    retry_after_from,
    tool_arguments,
)

__all__ = ["PROVIDER", "OllamaProvider", "OllamaStreamParser"]

#: OpenAI-style parameters that become model ``options`` under the same name.
_OPTIONS = frozenset(
    {"temperature", "top_p", "seed", "stop", "presence_penalty", "frequency_penalty"}
)
#: Ollama's model options accepted as top-level parameters.
_MODEL_OPTIONS = frozenset({"top_k", "min_p", "num_ctx", "repeat_penalty", "num_predict"})
#: Ollama's own request fields.
_NATIVE = frozenset({"format", "options", "keep_alive", "think"})

CHAT_PARAMS = (
    _OPTIONS
    | _MODEL_OPTIONS
    | _NATIVE
    | {
        "max_tokens",
        "max_completion_tokens",
        "tools",
        "tool_choice",
        "response_format",
        "reasoning_effort",
    }
)
EMBEDDING_PARAMS = frozenset({"dimensions", "truncate", "keep_alive", "options"})

_THINK = {"none": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high"}
_FINISH = {"load": "stop", "unload": "stop"}

_encode = msgspec.json.Encoder().encode


# --- the wire -------------------------------------------------------------------------------


class _Function(msgspec.Struct, gc=False):
    name: str = ""
    arguments: Any = None


class _ToolCall(msgspec.Struct, gc=False):
    function: _Function
    id: str | None = None


class _Message(msgspec.Struct, gc=False):
    role: str = "assistant"
    content: str = ""
    thinking: str | None = None
    tool_calls: list[_ToolCall] | None = None


class _Line(msgspec.Struct, gc=False):
    model: str = ""
    created_at: str = ""
    message: _Message | None = None
    response: str | None = None
    thinking: str | None = None
    done: bool = False
    done_reason: str | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    error: Any = None


class _Error(msgspec.Struct):
    error: Any = None


class _Embeddings(msgspec.Struct):
    embeddings: list[list[float]]
    model: str = ""
    prompt_eval_count: int | None = None


_decode_line = msgspec.json.Decoder(_Line).decode
_decode_lines = msgspec.json.Decoder(list[_Line]).decode
_decode_error = msgspec.json.Decoder(_Error).decode
_decode_embeddings = msgspec.json.Decoder(_Embeddings).decode

_TIMESTAMP = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)?")


def _epoch(created_at: str) -> int:
    """``2025-08-20T13:48:24.316155Z`` (nanosecond fractions too) -> Unix seconds."""
    match = _TIMESTAMP.match(created_at)
    if match is None:
        return 0
    *parts, zone = match.groups()
    offset = datetime.timedelta()
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        offset = sign * datetime.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    year, month, day, hour, minute, second = map(int, parts)
    zone_info = datetime.timezone(offset)
    moment = datetime.datetime(year, month, day, hour, minute, second, tzinfo=zone_info)
    return int(moment.timestamp())


def _call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


# --- stream ---------------------------------------------------------------------------------


class OllamaStreamParser:
    """NDJSON lines -> ``ChatChunk`` s, until the ``"done": true`` line.

    A read's lines are decoded in one msgspec call as a JSON array; should that fail the
    lines are decoded one by one to find the bad one."""

    __slots__ = ("_calls", "_created", "_id", "_model", "done")

    def __init__(self, model: str) -> None:
        self._model = model
        self._id = "chatcmpl-" + uuid.uuid4().hex
        self._created = 0
        self._calls = 0
        self.done = False

    def parse(self, events: StreamEvents) -> tuple[list[ChatChunk], LLMError | None]:
        if not events:
            return [], None
        raw = cast("list[bytes]", events)  # NDJSONDecoder's lines
        try:
            lines = _decode_lines(b"[" + b",".join(raw) + b"]")
        except (msgspec.DecodeError, RecursionError):
            return self._one_by_one(raw)
        return self._convert(lines)

    def _one_by_one(self, events: list[bytes]) -> tuple[list[ChatChunk], LLMError | None]:
        lines: list[_Line] = []
        for raw in events:
            try:
                lines.append(_decode_line(raw))
            except (msgspec.DecodeError, RecursionError):
                chunks, error = self._convert(lines)
                return chunks, error or MalformedResponseError(
                    f"unparseable NDJSON line: {body_snippet(raw, 120)!r}",
                    provider="ollama",
                    model=self._model,
                )
        return self._convert(lines)

    def _convert(self, lines: list[_Line]) -> tuple[list[ChatChunk], LLMError | None]:
        chunks: list[ChatChunk] = []
        for line in lines:
            if line.error is not None:
                return chunks, self._error(line.error)
            chunks.append(self.chunk(line))
            if line.done:
                self.done = True
                break
        return chunks, None

    def _error(self, error: Any) -> LLMError:
        message = error if isinstance(error, str) else _encode(error).decode()
        return InternalServerError(message, provider="ollama", model=self._model)

    def chunk(self, line: _Line) -> ChatChunk:
        if not self._created and line.created_at:
            self._created = _epoch(line.created_at)
        message = line.message
        if message is not None:
            role: str | None = message.role
            text: str | None = message.content
            thinking = message.thinking
        else:
            role, text, thinking = None, line.response, line.thinking
        tool_calls = None
        if message is not None and message.tool_calls:
            tool_calls = []
            for call in message.tool_calls:
                arguments = call.function.arguments
                tool_calls.append(
                    ToolCallDelta(
                        index=self._calls,
                        id=call.id or _call_id(),
                        type="function",
                        function=FunctionCallDelta(
                            name=call.function.name,
                            arguments=arguments
                            if isinstance(arguments, str)
                            else _encode({} if arguments is None else arguments).decode(),
                        ),
                    )
                )
                self._calls += 1
        finish = native = None
        usage = None
        if line.done:
            native = line.done_reason or "stop"
            finish = (
                "tool_calls" if self._calls and native == "stop" else _FINISH.get(native, native)
            )
            prompt, completion = line.prompt_eval_count or 0, line.eval_count or 0
            usage = Usage(
                prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
            )
        delta = Delta(
            role=role,
            content=text or None,
            reasoning_content=thinking or None,
            tool_calls=tool_calls,
        )
        return ChatChunk(
            id=self._id,
            created=self._created,
            model=line.model or self._model,
            choices=[StreamChoice(delta=delta, finish_reason=finish, native_finish_reason=native)],
            usage=usage,
            provider="ollama",
        )

    def finish(self) -> ChatChunk | None:
        if not self.done:
            raise StreamTruncatedError(
                'the connection closed before the final "done": true line',
                provider="ollama",
                model=self._model,
            )
        return None


# --- requests -------------------------------------------------------------------------------


def _image(part: ImagePart) -> str:
    inline = data_url(part.image_url.url)
    if inline is None:
        raise BadRequestError(
            "Ollama takes images as base64: pass image_url as a data: URL "
            "(data:image/png;base64,...)",
            provider="ollama",
        )
    return inline[1]


def wire_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """rxllm messages -> ``/api/chat`` messages."""
    names: dict[str, str] = {}
    wire = []
    for message in messages:
        content = message.content
        images: list[str] = []
        if isinstance(content, list):
            texts = []
            for part in content:
                if isinstance(part, TextPart):
                    texts.append(part.text)
                else:
                    images.append(_image(part))
            content = "".join(texts)
        entry: dict[str, Any] = {
            "role": "system" if message.role == "developer" else message.role,
            "content": content or "",
        }
        if images:
            entry["images"] = images
        if message.reasoning_content and message.role == "assistant":
            entry["thinking"] = message.reasoning_content
        if message.tool_calls:
            calls = []
            for call in message.tool_calls:
                names[call.id] = call.function.name
                function = {"name": call.function.name, "arguments": tool_arguments(call)}
                calls.append({"function": function})
            entry["tool_calls"] = calls
        if message.role == "tool":
            name = message.name or names.get(message.tool_call_id or "")
            if name:
                entry["tool_name"] = name
        wire.append(entry)
    return wire


def _format(response_format: Any) -> Any:
    """OpenAI's ``response_format`` -> Ollama's ``format`` ("json" or a JSON schema)."""
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
        if kind == "json_object":
            return "json"
        if kind == "json_schema":
            schema = response_format.get("json_schema") or {}
            return schema.get("schema", schema)
        if kind == "text":
            return None
    raise BadRequestError(
        f"unsupported response_format {response_format!r} for Ollama", provider="ollama"
    )


def _error_from_body(
    status: int | None, body: bytes, headers: Mapping[str, str], model: str | None
) -> LLMError:
    """``{"error": "..."}`` -> the error class of its HTTP status (Ollama sends no codes)."""
    try:
        error = _decode_error(body).error
    except (msgspec.DecodeError, RecursionError):
        error = None
    if isinstance(error, str) and error:
        message = error
    elif error is not None:
        message = _encode(error).decode()
    else:
        message = body_snippet(body) or f"HTTP {status} with an empty body"
    return refine_class(error_for_status(status), message)(
        message,
        provider="ollama",
        model=model,
        status_code=status,
        request_id=request_id_from(headers),
        retry_after=retry_after_from(headers),
    )


class OllamaProvider:
    name = "ollama"
    option_names: frozenset[str] = frozenset()

    def check_params(self, params: dict[str, Any], drop: bool) -> dict[str, Any]:
        params = check_known_params(self.name, params, CHAT_PARAMS, drop)
        choice = params.get("tool_choice")
        if choice not in (None, "auto", "none"):
            if not drop:
                raise UnsupportedParamsError(
                    f"Ollama cannot force a tool (tool_choice={choice!r}); only 'auto' and "
                    "'none' are possible; pass drop_params=True to leave it out",
                    provider=self.name,
                    param="tool_choice",
                )
            params = {k: v for k, v in params.items() if k != "tool_choice"}
        if "response_format" in params:
            _format(params["response_format"])  # refuse an unknown shape before any I/O
        return params

    def base(self, call: Call) -> str:
        base = call.api_base.rstrip("/")
        return base if "://" in base else "http://" + base

    def headers(self, call: Call, *, stream: bool = False) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/x-ndjson" if stream else "application/json",
        }
        if call.api_key:
            headers["Authorization"] = f"Bearer {call.api_key}"
        headers.update(call.extra_headers)
        return headers

    def body(self, call: ChatCall) -> dict[str, Any]:
        params = dict(call.params)
        options: dict[str, Any] = {}
        for name in _OPTIONS | _MODEL_OPTIONS:
            if name in params:
                options[name] = params.pop(name)
        for name in ("max_tokens", "max_completion_tokens"):
            if name in params:
                options["num_predict"] = params.pop(name)
        options.update(params.pop("options", None) or {})
        body: dict[str, Any] = {
            "model": call.model,
            "messages": wire_messages(call.messages),
            "stream": call.stream,
        }
        tools = params.pop("tools", None)
        if tools and params.pop("tool_choice", None) != "none":
            body["tools"] = tools
        params.pop("tool_choice", None)
        if "response_format" in params:
            response_format = _format(params.pop("response_format"))
            if response_format is not None:
                body["format"] = response_format
        if "reasoning_effort" in params:
            effort = params.pop("reasoning_effort")
            body["think"] = _THINK.get(effort, effort)
        body.update(params)  # format, keep_alive, think
        if options:
            body["options"] = options
        body.update(call.extra_body)
        return body

    def build_request(self, call: ChatCall) -> HttpRequest:
        return HttpRequest(
            "POST",
            self.base(call) + "/api/chat",
            self.headers(call, stream=call.stream),
            _encode(self.body(call)),
        )

    def parse_response(self, body: bytes, call: ChatCall) -> ChatResponse:
        parser = OllamaStreamParser(call.model)
        chunks, error = parser.parse([body])
        if error is not None:
            error.status_code = 200
            raise error
        if not chunks:
            raise MalformedResponseError(
                f"response is not an /api/chat answer: {body_snippet(body, 200)!r}",
                provider=self.name,
                model=call.model,
            )
        return assemble(chunks)

    def decoder(self) -> NDJSONDecoder:
        return NDJSONDecoder()

    def stream_parser(self, call: ChatCall) -> OllamaStreamParser:
        return OllamaStreamParser(call.model)

    def map_error(
        self, status: int, body: bytes, headers: Mapping[str, str], call: Call
    ) -> LLMError:
        return _error_from_body(status, body, headers, call.model)

    # --- embeddings --------------------------------------------------------------------

    def check_embedding_params(self, params: dict[str, Any], drop: bool) -> dict[str, Any]:
        return check_known_params(self.name, params, EMBEDDING_PARAMS, drop)

    def build_embedding_request(self, call: EmbeddingCall) -> HttpRequest:
        body = {"model": call.model, "input": call.input, **call.params, **call.extra_body}
        return HttpRequest(
            "POST", self.base(call) + "/api/embed", self.headers(call), _encode(body)
        )

    def parse_embedding_response(self, body: bytes, call: EmbeddingCall) -> EmbeddingResponse:
        try:
            wire = _decode_embeddings(body)
        except (msgspec.DecodeError, RecursionError):
            if b'"error"' in body:
                raise _error_from_body(200, body, {}, call.model) from None
            raise MalformedResponseError(
                f"response is not an /api/embed answer: {body_snippet(body, 200)!r}",
                provider=self.name,
                model=call.model,
            ) from None
        tokens = wire.prompt_eval_count or 0
        return EmbeddingResponse(
            data=[Embedding(index=i, embedding=v) for i, v in enumerate(wire.embeddings)],
            model=wire.model or call.model,
            usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
            provider=self.name,
        )


PROVIDER = OllamaProvider()
