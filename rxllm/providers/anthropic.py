"""Anthropic Messages API (``POST {api_base}/v1/messages``), streamed and not.

Requests: system messages are lifted into ``system``; ``max_tokens`` (required by Anthropic)
defaults to :data:`DEFAULT_MAX_TOKENS`; OpenAI-style ``tools``/``tool_choice``, assistant
``tool_calls`` and ``role: tool`` results become ``tool_use``/``tool_result`` blocks;
``reasoning_effort`` becomes a ``thinking`` budget. Signed thinking blocks of an earlier answer
travel back in the assistant message's ``provider_fields["thinking_blocks"]``; an answer with
blocks rxllm has no field for (server tools and their results, compaction, cited text) travels
back whole, in order, from ``provider_fields["content_blocks"]``; citations are also listed in
``provider_fields["citations"]``. ``cache_control`` on a content part, a message (its last
block) or a tool is sent where Anthropic reads a prompt-caching breakpoint.

Usage: ``prompt_tokens`` is ``input_tokens`` + cache writes + cache reads, the writes and reads
kept apart in ``prompt_tokens_details`` (see :class:`rxllm.types.Usage`).

Structured output (``response_format`` of type ``json_schema``, which a msgspec Struct type
becomes): a tool whose ``input_schema`` is the schema, named as the schema, forced with
``tool_choice: {"type": "tool"}`` (every Claude model takes it). Its input streams as the
answer's text - ``content`` deltas, finish reason ``stop`` - so the answer reads as on every
other provider, and a later turn sends it back as text. With thinking on (a forced tool is then
refused), with the caller's own tools or ``tool_choice`` (a forced tool would shut them out),
or for a schema whose root is not an object, the schema goes in ``output_config.format``
instead (structured outputs: Claude 4.5 models and later).

Streams are typed SSE events (``message_start``, ``content_block_start/delta/stop``,
``message_delta``, ``message_stop``, ``ping``, ``error``), each decoded by msgspec into one
loose struct and dispatched on its ``type`` (the real API pads its JSON with spaces; msgspec
does not mind). ``message_stop`` is the end marker.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import msgspec

from .._events import NamedDataEvents, SSEEvent, StreamEvents
from .._provider import Call, ChatCall, EventParser
from .._sse import SSEDecoder
from .._wire import HttpRequest
from ..errors import (
    AuthenticationError,
    BadRequestError,
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
from ..types import (
    ChatChunk,
    ChatResponse,
    Choice,
    CompletionTokensDetails,
    Delta,
    FunctionCall,
    FunctionCallDelta,
    ImagePart,
    Index,
    Message,
    PromptTokensDetails,
    StreamChoice,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ._common import (
    body_snippet,
    check_known_params,
    data_url,
    frame_error,
    request_id_from,
    retry_after_from,
    tool_arguments,
)

__all__ = [
    "ANSWER_TOOL_DESCRIPTION",
    "DEFAULT_MAX_TOKENS",
    "PROVIDER",
    "AnthropicProvider",
    "AnthropicStreamParser",
    "answer_tool",
]

API_VERSION = "2023-06-01"

#: ``max_tokens`` sent when the caller gives none (Anthropic requires the field). With thinking
#: on, the thinking budget is added so the answer itself still has this much room.
DEFAULT_MAX_TOKENS = 4096

#: ``reasoning_effort`` -> thinking ``budget_tokens`` (1024 is the API's minimum).
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 2048, "high": 4096}

#: OpenAI-style parameters this module translates, plus Anthropic's own ``top_k``,
#: ``thinking`` and ``metadata``. ``stream_options`` is accepted and ignored: usage always comes.
CHAT_PARAMS = frozenset(
    {
        "max_completion_tokens",
        "max_tokens",
        "metadata",
        "parallel_tool_calls",
        "reasoning_effort",
        "response_format",
        "stop",
        "stream_options",
        "temperature",
        "thinking",
        "tool_choice",
        "tools",
        "top_k",
        "top_p",
        "user",
    }
)

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_ERROR_CLASSES: dict[str, type[LLMError]] = {
    "invalid_request_error": BadRequestError,
    "authentication_error": AuthenticationError,
    "billing_error": QuotaExceededError,
    "permission_error": PermissionDeniedError,
    "not_found_error": NotFoundError,
    "request_too_large": BadRequestError,
    "rate_limit_error": RateLimitError,
    "api_error": InternalServerError,
    "timeout_error": InternalServerError,
    "overloaded_error": ServiceUnavailableError,
}

_encode = msgspec.json.Encoder().encode


# --- wire structs ------------------------------------------------------------------------------


class _CacheCreation(msgspec.Struct, gc=False):
    ephemeral_5m_input_tokens: int = 0
    ephemeral_1h_input_tokens: int = 0


class _Iteration(msgspec.Struct, gc=False):
    """One sampling step of a request (a server-side compaction, then the message)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation: _CacheCreation | None = None


class _OutputDetails(msgspec.Struct, gc=False):
    thinking_tokens: int | None = None


class _Usage(msgspec.Struct, gc=False):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation: _CacheCreation | None = None
    iterations: list[_Iteration] | None = None
    output_tokens_details: _OutputDetails | None = None


class _Block(msgspec.Struct, gc=False):
    type: str = ""
    text: str | None = None
    id: str | None = None
    name: str | None = None
    input: msgspec.Raw = msgspec.Raw(b"{}")
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None
    citations: list[Any] | None = None


class _Message(msgspec.Struct, gc=False):
    id: str = ""
    model: str = ""
    content: list[_Block] = []
    stop_reason: str | None = None
    usage: _Usage | None = None


class _Delta(msgspec.Struct, gc=False):
    type: str = ""
    text: str | None = None
    partial_json: str | None = None
    thinking: str | None = None
    signature: str | None = None
    stop_reason: str | None = None
    citation: Any = None
    #: A ``compaction_delta``'s text.
    content: str | None = None


class _ErrorDetail(msgspec.Struct, gc=False):
    type: str | None = None
    message: str = ""
    #: Not Anthropic's: a gateway in front of it (LiteLLM's proxy) puts a status here.
    code: str | int | None = None


class _Event(msgspec.Struct, gc=False):
    """Every stream event in one loose shape: only the fields its ``type`` uses are set."""

    type: str
    index: Index = 0
    delta: _Delta | None = None
    #: Decoded when the block starts (rare): typed, and as a dict when rxllm keeps it whole.
    content_block: msgspec.Raw = msgspec.Raw(b"")
    message: _Message | None = None
    usage: _Usage | None = None
    error: _ErrorDetail | None = None


class _ErrorBody(msgspec.Struct, gc=False):
    error: _ErrorDetail
    request_id: str | None = None


class _RawContent(msgspec.Struct, gc=False):
    content: list[dict[str, Any]] = []


_decode_event = msgspec.json.Decoder(_Event).decode
_decode_block = msgspec.json.Decoder(_Block).decode
_decode_dict = msgspec.json.Decoder(dict[str, Any]).decode
_decode_raw_content = msgspec.json.Decoder(_RawContent).decode
_decode_events = msgspec.json.Decoder(list[_Event]).decode
_decode_message = msgspec.json.Decoder(_Message).decode
_decode_error = msgspec.json.Decoder(_ErrorBody).decode


# --- errors ------------------------------------------------------------------------------------


def error_from_body(
    status: int | None,
    body: bytes,
    headers: Mapping[str, str],
    *,
    provider: str,
    model: str | None,
) -> LLMError:
    """``{"type":"error","error":{"type","message"},"request_id"}`` -> the typed error.

    The error ``type`` decides the class (it is the same mid-stream, where there is no HTTP
    status); the status is the fallback for bodies that are not Anthropic's (a proxy's page)."""
    error_type, message, body_request_id, code = None, "", None, None
    try:
        envelope = _decode_error(body)
    except (msgspec.DecodeError, RecursionError):
        message = body_snippet(body) or f"HTTP {status} with an empty body"
    else:
        error_type, message = envelope.error.type, envelope.error.message
        body_request_id = envelope.request_id
        code = error_type or (None if envelope.error.code is None else str(envelope.error.code))
        numeric = status_from_code(envelope.error.code)
        if numeric is not None and (status is None or status < 400):
            status = numeric  # an error event from a gateway: the upstream's status
    cls: type[LLMError] = _ERROR_CLASSES.get(error_type or "") or error_for_status(status)
    cls = refine_class(cls, message, error_type)
    return cls(
        message,
        provider=provider,
        model=model,
        status_code=status,
        code=code,
        error_type=error_type,
        request_id=request_id_from(headers) or body_request_id,
        retry_after=retry_after_from(headers),
    )


# --- responses ---------------------------------------------------------------------------------


def _usage(usage: _Usage | None, start: _Usage | None = None) -> Usage:
    """Anthropic usage -> OpenAI's: cache reads and writes count as prompt tokens too, and stay
    apart in the details (``cached_tokens``, ``cache_creation_tokens``).

    In a stream ``message_delta`` carries the final counts, but older API versions send only
    ``output_tokens`` there: the rest then comes from ``message_start`` (each count is taken
    from one event, never added up across them). When server-side compaction ran, the
    top-level counts are those of the final step only: the call's usage is then the sum of its
    ``iterations``, as Anthropic bills it."""
    iterations = usage.iterations if usage is not None else None
    if iterations:
        fresh = sum(step.input_tokens for step in iterations)
        completion = sum(step.output_tokens for step in iterations)
        written = sum(step.cache_creation_input_tokens for step in iterations)
        cache_read = sum(step.cache_read_input_tokens for step in iterations)
        written_1h = sum(
            step.cache_creation.ephemeral_1h_input_tokens
            for step in iterations
            if step.cache_creation is not None
        )
    else:

        def pick(name: str) -> int:
            for source in (usage, start):
                value = getattr(source, name, None) if source is not None else None
                if value is not None:
                    return int(value)
            return 0

        fresh, completion = pick("input_tokens"), pick("output_tokens")
        written, cache_read = pick("cache_creation_input_tokens"), pick("cache_read_input_tokens")
        split = next(
            (s.cache_creation for s in (usage, start) if s is not None and s.cache_creation),
            None,
        )
        written_1h = split.ephemeral_1h_input_tokens if split is not None else 0
    prompt = fresh + written + cache_read
    details = None
    if cache_read or written:
        details = PromptTokensDetails(
            cached_tokens=cache_read or None,
            cache_creation_tokens=written or None,
            cache_creation_1h_tokens=min(written_1h, written) or None,
        )
    thinking = next(
        (
            s.output_tokens_details.thinking_tokens
            for s in (usage, start)
            if s is not None
            and s.output_tokens_details is not None
            and s.output_tokens_details.thinking_tokens is not None
        ),
        None,
    )
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion,
        prompt_tokens_details=details,
        completion_tokens_details=(
            None if thinking is None else CompletionTokensDetails(reasoning_tokens=thinking)
        ),
    )


def _thinking_block(block: _Block) -> dict[str, Any]:
    """A thinking block as it must be sent back next turn (the signature proves it unedited)."""
    if block.type == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.data or ""}
    return {
        "type": "thinking",
        "thinking": block.thinking or "",
        "signature": block.signature or "",
    }


def _finish(stop_reason: str | None) -> str | None:
    return None if stop_reason is None else FINISH_REASONS.get(stop_reason, "stop")


#: Block types rxllm's own fields carry: text (without citations), tool_use and thinking.
#: An answer with any other block (server tools and their results, compaction...) or a cited
#: text block keeps its whole content in ``provider_fields["content_blocks"]``.
_PLAIN_BLOCKS = frozenset({"text", "tool_use", "thinking", "redacted_thinking"})


def _is_special(block: Mapping[str, Any]) -> bool:
    kind = block.get("type")
    return kind not in _PLAIN_BLOCKS or (kind == "text" and bool(block.get("citations")))


class _Kept:
    """One content block of a streamed answer, gathered as it arrives, so that the whole
    content can be rebuilt in order when the answer has blocks rxllm has no field for."""

    __slots__ = ("block", "parts")

    def __init__(self, block: dict[str, Any]) -> None:
        self.block = block
        self.parts: list[str] = []  # text, partial JSON, thinking or compaction text

    def build(self) -> dict[str, Any] | None:
        """The block as it must go back; None for an empty text block (which Anthropic
        refuses in a request, and which says nothing)."""
        block = dict(self.block)
        kind = block.get("type")
        joined = "".join(self.parts)
        if kind == "text":
            block["text"] = (block.get("text") or "") + joined
            if not block.get("citations"):
                block.pop("citations", None)
                if not block["text"]:
                    return None
        elif kind == "thinking":
            block["thinking"] = (block.get("thinking") or "") + joined
        elif kind == "compaction":
            if self.parts:
                block["content"] = (block.get("content") or "") + joined
        elif "input" in block and self.parts:
            try:
                block["input"] = _decode_dict(joined.encode())
            except (msgspec.DecodeError, RecursionError):
                block["input"] = {}
        return block


# --- the stream --------------------------------------------------------------------------------


class AnthropicStreamParser(EventParser):
    """Typed SSE events -> ``ChatChunk`` s; ``message_stop`` ends the stream.

    Tool-use blocks get a tool-call ``index`` of their own (0, 1, ... in block order), so their
    ``input_json_delta`` fragments assemble like OpenAI's. A thinking block's text streams as
    ``reasoning_content``; when the block stops, the whole signed block is emitted once in
    ``provider_fields["thinking_blocks"]`` so the next request can send it back. Each citation
    of a ``citations_delta`` is emitted in ``provider_fields["citations"]``. An answer with
    blocks rxllm has no field for (server tools and their results, compaction) or with cited
    text gets its whole content, in order, in ``provider_fields["content_blocks"]`` of the
    finish chunk: the next request sends it back as it came.
    """

    __slots__ = (
        "_answer",
        "_answer_block",
        "_blocks",
        "_created",
        "_id",
        "_model",
        "_name",
        "_requested",
        "_special",
        "_start_usage",
        "_thinking",
        "_tools",
    )

    def __init__(self, name: str, model: str, answer_tool: str | None = None) -> None:
        #: The tool forced to carry a structured answer: its input streams as text.
        self._answer = answer_tool
        self._answer_block: int | None = None  # its content block
        self._name = name
        self._requested = model  # errors name the model asked for
        self._model = model  # chunks name the one that answered (from message_start)
        self._id = ""
        self._created = 0
        self._start_usage: _Usage | None = None
        self._tools: dict[int, int] = {}  # content block index -> tool-call index
        self._thinking: dict[int, list[Any]] = {}  # block index -> [block, text parts...]
        self._blocks: dict[int, _Kept] = {}  # every block of the answer, by index
        self._special = False  # a block rxllm has no field for was seen
        self.done = False

    def _chunk(
        self, delta: Delta, finish: str | None = None, native: str | None = None
    ) -> ChatChunk:
        return ChatChunk(
            id=self._id,
            created=self._created,
            model=self._model,
            provider=self._name,
            choices=[StreamChoice(delta=delta, finish_reason=finish, native_finish_reason=native)],
        )

    def parse(self, events: StreamEvents) -> tuple[list[ChatChunk], LLMError | None]:
        """A read of named events (the usual case) is decoded in one msgspec call; anything
        unusual in it - an ``error`` event, a frame that does not decode - is left to
        :meth:`feed`, event by event, so chunks before it still arrive and it fails alone."""
        if type(events) is not NamedDataEvents:
            return EventParser.parse(self, events)
        payload = events.array
        try:
            decoded = _decode_events(payload) if b'"error"' not in payload else None
        except (msgspec.DecodeError, RecursionError):
            decoded = None
        if decoded is None:
            return EventParser.parse(self, events)
        chunks: list[ChatChunk] = []
        append, on_event = chunks.append, self._on_event
        for ev in decoded:
            chunk = on_event(ev)
            if chunk is not None:
                append(chunk)
            if self.done:
                break
        return chunks, None

    def feed(self, event: SSEEvent) -> ChatChunk | None:
        try:
            ev = _decode_event(event.data)
        except (msgspec.DecodeError, RecursionError):
            raise self._not_an_event(event.data) from None
        if ev.type == "error":
            raise error_from_body(None, event.data, {}, provider=self._name, model=self._requested)
        return self._on_event(ev)

    def _not_an_event(self, data: bytes) -> LLMError:
        """A frame that is no Anthropic event: a gateway's ``{"error": {...}}`` (LiteLLM's
        proxy ends a ``/v1/messages`` stream so when its upstream fails) is that error; anything
        else is malformed."""
        return frame_error(
            data, _decode_error, error_from_body, provider=self._name, model=self._requested
        )

    def _on_event(self, ev: _Event) -> ChatChunk | None:
        kind = ev.type
        if kind == "content_block_delta":
            delta = ev.delta
            if delta is None:
                return None
            dtype = delta.type
            kept = self._blocks.get(ev.index)
            if dtype == "text_delta":
                if not delta.text:
                    return None
                if kept is not None:
                    kept.parts.append(delta.text)
                return self._chunk(Delta(content=delta.text))
            if dtype == "input_json_delta":
                if not delta.partial_json:
                    return None
                if kept is not None:
                    kept.parts.append(delta.partial_json)
                if ev.index == self._answer_block:  # the structured answer: its text
                    return self._chunk(Delta(content=delta.partial_json))
                tool = self._tools.get(ev.index)
                if tool is None:
                    return None  # a server tool's input: kept for content_blocks only
                fragment = FunctionCallDelta(arguments=delta.partial_json)
                return self._chunk(Delta(tool_calls=[ToolCallDelta(index=tool, function=fragment)]))
            if dtype == "thinking_delta":
                if not delta.thinking:
                    return None
                parts = self._thinking.get(ev.index)
                if parts is not None:
                    parts.append(delta.thinking)
                return self._chunk(Delta(reasoning_content=delta.thinking))
            if dtype == "signature_delta":
                parts = self._thinking.get(ev.index)
                if parts is not None:
                    block = parts[0]
                    block.signature = (block.signature or "") + (delta.signature or "")
                return None
            if dtype == "citations_delta":
                if delta.citation is None:
                    return None
                if kept is not None:
                    kept.block.setdefault("citations", []).append(delta.citation)
                self._special = True
                return self._chunk(Delta(provider_fields={"citations": [delta.citation]}))
            if dtype == "compaction_delta" and kept is not None and delta.content:
                kept.parts.append(delta.content)
            return None  # future delta types carry no chat text
        if kind == "content_block_start":
            return self._block_start(ev)
        if kind == "content_block_stop":
            parts = self._thinking.pop(ev.index, None)
            if parts is None:
                return None
            block = parts[0]
            if block.type == "thinking":
                block.thinking = (block.thinking or "") + "".join(parts[1:])
            signed = _thinking_block(block)
            kept = self._blocks.get(ev.index)
            if kept is not None:
                kept.block, kept.parts = signed, []
            return self._chunk(Delta(provider_fields={"thinking_blocks": [signed]}))
        if kind == "message_start":
            message = ev.message or _Message()
            self._id = message.id
            self._model = message.model or self._model
            self._created = int(time.time())
            self._start_usage = message.usage
            return self._chunk(Delta(role="assistant"))
        if kind == "message_delta":
            stop_reason = ev.delta.stop_reason if ev.delta is not None else None
            finish = _finish(stop_reason)
            if finish == "tool_calls" and self._answer_block is not None and not self._tools:
                finish = "stop"  # the forced answer tool: an answer, not a call
            fields = None
            if self._special:
                built = (self._blocks[i].build() for i in sorted(self._blocks))
                fields = {"content_blocks": [block for block in built if block is not None]}
            chunk = self._chunk(Delta(provider_fields=fields), finish, stop_reason)
            chunk.usage = _usage(ev.usage, self._start_usage)
            return chunk
        if kind == "message_stop":
            self.done = True
            return None
        return None  # ping, and event types added after this was written

    def _block_start(self, ev: _Event) -> ChatChunk | None:
        raw = ev.content_block
        if not raw:
            return None
        try:
            block = _decode_block(raw)
            whole = _decode_dict(raw)
        except (msgspec.DecodeError, RecursionError):
            raise MalformedResponseError(
                f"a content block that does not decode: {body_snippet(bytes(raw), 120)!r}",
                provider=self._name,
                model=self._requested,
            ) from None
        self._blocks[ev.index] = _Kept(whole)
        if _is_special(whole):
            self._special = True
        if block.type == "tool_use":
            if self._answer is not None and block.name == self._answer:
                self._answer_block = ev.index
                return None
            index = self._tools[ev.index] = len(self._tools)
            call = ToolCallDelta(
                index=index,
                id=block.id,
                type="function",
                function=FunctionCallDelta(name=block.name, arguments=""),
            )
            return self._chunk(Delta(tool_calls=[call]))
        if block.type in ("thinking", "redacted_thinking"):
            self._thinking[ev.index] = [block]
            if block.thinking:
                return self._chunk(Delta(reasoning_content=block.thinking))
            return None
        if block.type == "text" and block.text:
            return self._chunk(Delta(content=block.text))
        return None

    def finish(self) -> ChatChunk | None:
        if not self.done:
            raise StreamTruncatedError(
                "the connection closed before the end of the stream (message_stop)",
                provider=self._name,
                model=self._requested,
            )
        return None


# --- requests ----------------------------------------------------------------------------------


def _image_block(url: str) -> dict[str, Any]:
    """An ``image_url`` part: a ``data:`` URL becomes a base64 source, anything else a URL one."""
    inline = data_url(url)
    if inline is None:
        return {"type": "image", "source": {"type": "url", "url": url}}
    media_type, data = inline
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _blocks(content: str | list[Any] | None) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for part in content:
        block: dict[str, Any]
        if isinstance(part, TextPart):
            block = {"type": "text", "text": part.text}
        elif isinstance(part, ImagePart):
            block = _image_block(part.image_url.url)
        else:
            continue
        if part.cache_control is not None:
            block["cache_control"] = dict(part.cache_control)
        blocks.append(block)
    return blocks


def _cached(
    content: str | list[dict[str, Any]], cache_control: dict[str, Any] | None
) -> str | list[dict[str, Any]]:
    """A message's content with its message-level ``cache_control`` on its last block (where
    Anthropic takes a breakpoint), unless that block has one of its own."""
    if cache_control is None or not content:
        return content
    blocks = _as_blocks(content)
    last = blocks[-1]
    if "cache_control" not in last:
        blocks = [*blocks[:-1], {**last, "cache_control": dict(cache_control)}]
    return blocks


def _content(content: str | list[Any] | None) -> str | list[dict[str, Any]]:
    """Plain text stays a string (as Anthropic's own examples send it); parts become blocks."""
    if isinstance(content, str):
        return content
    return _blocks(content)


def _kept_content(message: Message) -> list[dict[str, Any]] | None:
    """The answer's own content blocks (``provider_fields["content_blocks"]``), if it still
    says what the message says: the same text and the same tool calls (a message edited since
    is rebuilt from its fields instead)."""
    fields = message.provider_fields
    kept = fields.get("content_blocks") if fields else None
    if not kept:
        return None
    text = "".join(b.get("text") or "" for b in kept if b.get("type") == "text")
    ids = [b.get("id") for b in kept if b.get("type") == "tool_use"]
    if text != message.text or ids != [call.id for call in message.tool_calls or ()]:
        return None
    return [dict(block) for block in kept]


def _assistant_content(message: Message) -> list[dict[str, Any]]:
    """An assistant turn's blocks: as the answer came when rxllm kept them (server tools and
    their results, cited text, compaction: Anthropic wants them back as they were), else its
    signed thinking blocks, then its text, then its tool calls."""
    kept = _kept_content(message)
    if kept is not None:
        return kept
    blocks: list[dict[str, Any]] = []
    fields = message.provider_fields
    if fields and fields.get("thinking_blocks"):
        blocks.extend(fields["thinking_blocks"])
    blocks.extend(_blocks(message.content))
    for call in message.tool_calls or ():
        arguments = tool_arguments(call)
        blocks.append(
            {"type": "tool_use", "id": call.id, "name": call.function.name, "input": arguments}
        )
    return blocks


def _tool_result(message: Message) -> dict[str, Any]:
    if not message.tool_call_id:
        raise BadRequestError("a role 'tool' message needs the tool_call_id it answers")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
    content = _content(message.content)
    if content:
        result["content"] = content
    return result


def translate_messages(
    messages: list[Message],
) -> tuple[str | list[dict[str, Any]] | None, list[dict[str, Any]]]:
    """OpenAI-style messages -> Anthropic's ``system`` and ``messages``.

    System (and developer) messages are lifted out; tool results go into a user turn; turns of
    the same role that follow each other are merged (Anthropic wants them alternating), so
    consecutive tool results land in one user message as the API expects."""
    system: list[str] = []
    system_blocks: list[dict[str, Any]] = []  # the same, as blocks (cache_control kept)
    turns: list[dict[str, Any]] = []
    for message in messages:
        role = message.role
        if role in ("system", "developer"):
            system.append(message.text)
            blocks = [b for b in _blocks(message.content) if b["type"] == "text"]
            system_blocks.extend(_as_blocks(_cached(blocks, message.cache_control)))
            continue
        content: str | list[dict[str, Any]]
        if role == "tool":
            role, content = "user", [_tool_result(message)]
        elif role == "assistant":
            blocks = _assistant_content(message)
            if not blocks:
                continue  # nothing Anthropic would accept; an empty turn is an error there
            only_text = len(blocks) == 1 and blocks[0].keys() == {"type", "text"}
            content = blocks[0]["text"] if only_text else blocks
        else:
            content = _content(message.content)
        content = _cached(content, message.cache_control)
        if turns and turns[-1]["role"] == role:
            previous = turns[-1]
            previous["content"] = _as_blocks(previous["content"]) + _as_blocks(content)
        else:
            turns.append({"role": role, "content": content})
    if not system:
        return None, turns
    if any("cache_control" in block for block in system_blocks):
        return system_blocks, turns
    if len(system) == 1:
        return system[0], turns
    return [{"type": "text", "text": text} for text in system], turns


def _as_blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI function tool -> ``{name, description, input_schema}``; Anthropic's own tool
    definitions (``input_schema`` given, or a server tool with its own ``type``) pass as is."""
    if tool.get("type") != "function" or "function" not in tool:
        return dict(tool)
    function = tool["function"]
    translated: dict[str, Any] = {"name": function["name"]}
    if function.get("description"):
        translated["description"] = function["description"]
    translated["input_schema"] = function.get("parameters") or {"type": "object", "properties": {}}
    if tool.get("cache_control") is not None:
        translated["cache_control"] = dict(tool["cache_control"])  # a breakpoint after the tools
    return translated


def _tool_choice(choice: Any, parallel: bool | None) -> dict[str, Any] | None:
    if choice is None:
        translated: dict[str, Any] | None = {"type": "auto"} if parallel is False else None
    elif choice == "auto":
        translated = {"type": "auto"}
    elif choice == "none":
        translated = {"type": "none"}
    elif choice in ("required", "any"):
        translated = {"type": "any"}
    elif isinstance(choice, Mapping) and choice.get("type") == "function":
        translated = {"type": "tool", "name": choice["function"]["name"]}
    elif isinstance(choice, Mapping):
        translated = dict(choice)  # already Anthropic's shape
    else:
        raise BadRequestError(
            f"tool_choice {choice!r} is not auto, none, required or a named function"
        )
    if translated is not None and parallel is False and translated["type"] != "none":
        translated["disable_parallel_tool_use"] = True
    return translated


#: The description of the tool that carries a structured answer.
ANSWER_TOOL_DESCRIPTION = "Give your answer by calling this tool: its input is the answer."


def _json_schema(params: Mapping[str, Any]) -> tuple[str, Any, str | None] | None:
    """(name, schema, description) of a ``json_schema`` response format, else None."""
    response_format = params.get("response_format")
    if not isinstance(response_format, Mapping) or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema")
    if not isinstance(spec, Mapping) or not isinstance(spec.get("schema"), Mapping):
        raise BadRequestError(
            "response_format json_schema needs json_schema={'name': ..., 'schema': {...}}",
            param="response_format",
        )
    return str(spec.get("name") or "answer"), dict(spec["schema"]), spec.get("description")


def _native_format(params: Mapping[str, Any], schema: Mapping[str, Any]) -> bool:
    """Whether a structured answer must use ``output_config.format`` rather than a forced tool:
    thinking on (Anthropic refuses a forced tool then), the caller's own tools or tool choice
    (a forced tool would shut them out), or a root that is not an object (a tool's input is)."""
    thinking = _thinking(params)
    return (
        (thinking is not None and thinking.get("type") != "disabled")
        or bool(params.get("tools"))
        or params.get("tool_choice") is not None
        or schema.get("type") != "object"
    )


def answer_tool(params: Mapping[str, Any]) -> str | None:
    """The name of the tool forced to carry a structured answer, None when there is none."""
    spec = _json_schema(params)
    if spec is None or _native_format(params, spec[1]):
        return None
    return spec[0]


def _thinking(params: Mapping[str, Any]) -> dict[str, Any] | None:
    if "thinking" in params:
        return dict(params["thinking"])
    effort = params.get("reasoning_effort")
    if effort is None:
        return None
    if effort in ("none", "disable", "disabled"):
        return {"type": "disabled"}
    budget = THINKING_BUDGETS.get(effort)
    if budget is None:
        raise BadRequestError(
            f"reasoning_effort {effort!r} is not one of {', '.join(THINKING_BUDGETS)}"
        )
    return {"type": "enabled", "budget_tokens": budget}


def build_body(call: ChatCall) -> dict[str, Any]:
    """The JSON body of a Messages request."""
    params = call.params
    system, messages = translate_messages(call.messages)
    thinking = _thinking(params)
    max_tokens = params.get("max_tokens", params.get("max_completion_tokens"))
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
        if thinking is not None and thinking.get("type") == "enabled":
            max_tokens += int(thinking.get("budget_tokens", 0))
    body: dict[str, Any] = {"model": call.model, "max_tokens": max_tokens, "messages": messages}
    if system is not None:
        body["system"] = system
    for name in ("temperature", "top_p", "top_k"):
        if params.get(name) is not None:
            body[name] = params[name]
    stop = params.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if params.get("tools"):
        body["tools"] = [_tool(tool) for tool in params["tools"]]
    tool_choice = _tool_choice(params.get("tool_choice"), params.get("parallel_tool_calls"))
    if tool_choice is not None:
        body["tool_choice"] = tool_choice
    if thinking is not None:
        body["thinking"] = thinking
    structured = _json_schema(params)
    if structured is not None:
        name, schema, description = structured
        if _native_format(params, schema):
            body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        else:
            tool = {
                "name": name,
                "description": description or ANSWER_TOOL_DESCRIPTION,
                "input_schema": schema,
            }
            body["tools"] = [tool]
            body["tool_choice"] = {"type": "tool", "name": name, "disable_parallel_tool_use": True}
    metadata = dict(params.get("metadata") or {})
    if params.get("user") and "user_id" not in metadata:
        metadata["user_id"] = params["user"]
    if metadata:
        body["metadata"] = metadata
    if call.stream:
        body["stream"] = True
    body.update(call.extra_body)
    return body


class AnthropicProvider:
    """The Messages API."""

    name = "anthropic"
    option_names: frozenset[str] = frozenset()

    def check_params(self, params: dict[str, Any], drop: bool) -> dict[str, Any]:
        params = check_known_params(self.name, params, CHAT_PARAMS, drop)
        response_format = params.get("response_format")
        kind = response_format.get("type") if isinstance(response_format, Mapping) else None
        if response_format is None or kind == "json_schema":
            return params
        if kind != "text" and not drop:  # json_object: no schema to force
            raise UnsupportedParamsError(
                f"Anthropic takes response_format of type json_schema (or a msgspec Struct "
                f"type), not {response_format!r}; pass drop_params=True to leave it out",
                provider=self.name,
                param="response_format",
            )
        return {k: v for k, v in params.items() if k != "response_format"}

    def build_request(self, call: ChatCall) -> HttpRequest:
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if call.stream else "application/json",
            "anthropic-version": API_VERSION,
        }
        if call.api_key:
            headers["x-api-key"] = call.api_key
        headers.update(call.extra_headers)
        url = call.api_base.rstrip("/") + "/v1/messages"
        try:
            body = build_body(call)
        except BadRequestError as exc:
            raise exc._with_context(provider=self.name, model=call.model, secret=None) from None
        return HttpRequest("POST", url, headers, _encode(body))

    def parse_response(self, body: bytes, call: ChatCall) -> ChatResponse:
        try:
            message = _decode_message(body)
        except (msgspec.DecodeError, RecursionError):
            raise MalformedResponseError(
                f"response is not a message: {body_snippet(body, 200)!r}",
                provider=self.name,
                model=call.model,
            ) from None
        if not message.id and b'"error"' in body:
            raise error_from_body(200, body, {}, provider=self.name, model=call.model)
        text: list[str] = []
        reasoning: list[str] = []
        thinking_blocks: list[dict[str, Any]] = []
        tool_calls: list[ToolCall] = []
        citations: list[Any] = []
        special = False
        answer = answer_tool(call.params)
        answered = False
        for block in message.content:
            if block.type not in _PLAIN_BLOCKS:
                special = True
            if block.type == "text":
                text.append(block.text or "")
                if block.citations:
                    citations.extend(block.citations)
                    special = True
            elif block.type == "tool_use" and answer is not None and block.name == answer:
                text.append(bytes(block.input).decode())  # the structured answer, as text
                answered = True
            elif block.type == "tool_use":
                arguments = bytes(block.input).decode()
                tool_calls.append(
                    ToolCall(
                        id=block.id or "",
                        function=FunctionCall(name=block.name or "", arguments=arguments),
                    )
                )
            elif block.type in ("thinking", "redacted_thinking"):
                if block.thinking:
                    reasoning.append(block.thinking)
                thinking_blocks.append(_thinking_block(block))
        fields: dict[str, Any] = {}
        if thinking_blocks:
            fields["thinking_blocks"] = thinking_blocks
        if citations:
            fields["citations"] = citations
        if special:
            fields["content_blocks"] = [
                block
                for block in _decode_raw_content(body).content
                if block.get("type") != "text" or block.get("text") or block.get("citations")
            ]
        result = Message(
            role="assistant",
            content="".join(text) if text or not tool_calls else None,
            tool_calls=tool_calls or None,
            reasoning_content="".join(reasoning) if reasoning else None,
            provider_fields=fields or None,
        )
        finish = _finish(message.stop_reason)
        if finish == "tool_calls" and answered and not tool_calls:
            finish = "stop"  # the forced answer tool: an answer, not a call
        choice = Choice(
            message=result, finish_reason=finish, native_finish_reason=message.stop_reason
        )
        return ChatResponse(
            id=message.id,
            created=int(time.time()),
            model=message.model or call.model,
            choices=[choice],
            usage=_usage(message.usage),
            provider=self.name,
        )

    def decoder(self) -> SSEDecoder:
        return SSEDecoder()

    def stream_parser(self, call: ChatCall) -> AnthropicStreamParser:
        return AnthropicStreamParser(self.name, call.model, answer_tool(call.params))

    def map_error(
        self, status: int, body: bytes, headers: Mapping[str, str], call: Call
    ) -> LLMError:
        return error_from_body(status, body, headers, provider=self.name, model=call.model)


PROVIDER = AnthropicProvider()
