"""Any OpenAI-compatible server (vLLM, llama.cpp server, LM Studio, Groq, Together, ...), and
the tolerant reader the OpenAI-shaped family (Mistral, OpenRouter, DeepSeek, Azure) shares.

Compatible servers speak Chat Completions with dialects:

* reasoning as ``delta.reasoning_content`` or ``delta.reasoning``;
* ``content`` as a list of parts, ``{"type": "thinking", "thinking": [...]}`` among them;
* tool-call fragments without ``index`` (a complete call per fragment);
* an ``"error"`` object inside an otherwise normal chunk of a 200 stream;
* cache hits as ``usage.prompt_cache_hit_tokens``;
* choices without a ``message`` (a completion cut by a content filter).

A read without any of these decodes straight into ``ChatChunk`` as OpenAI's does (one msgspec
call); a read that has one (a byte marker says so) goes through the wire structs below, which
accept every dialect and are converted to the one ``ChatChunk`` shape.

``provider="openai_compatible"`` needs ``api_base``; an API key is optional. Every parameter
is forwarded: rxllm cannot know what an arbitrary server takes, so the server's own validation
answers (its 400 becomes a typed ``BadRequestError``), and ``drop_params`` has nothing to drop.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import msgspec

from .._events import SSEEvent, StreamEvents
from .._provider import Call, ChatCall
from ..errors import LLMError
from ..types import (
    ChatChunk,
    ChatResponse,
    Choice,
    CompletionTokensDetails,
    Delta,
    FunctionCall,
    FunctionCallDelta,
    Index,
    Message,
    PromptTokensDetails,
    StreamChoice,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from .openai import (
    CHAT_PARAMS,
    OpenAIProvider,
    OpenAIStreamParser,
    error_from_body,
    normalise_finish,
)

if TYPE_CHECKING:
    from . import ProviderInfo

__all__ = [
    "PROVIDER",
    "TOOL_PARAMS",
    "CompatibleProvider",
    "CompatibleStreamParser",
    "GenericProvider",
    "WireChoice",
    "WireReader",
    "compatible_error",
    "compatible_provider",
    "markers_for",
    "split_content",
]

# --- the wire, as tolerant structs ----------------------------------------------------------


class _Part(msgspec.Struct, gc=False):
    """A content part: ``text``, or ``thinking`` whose value is text or a list of parts."""

    type: str = "text"
    text: str | None = None
    thinking: str | list[_Part] | None = None


class _Function(msgspec.Struct, gc=False):
    name: str | None = None
    arguments: Any = None


class _ToolCall(msgspec.Struct, gc=False):
    index: Index | None = None
    id: str | None = None
    type: str | None = None
    function: _Function | None = None


class _Usage(msgspec.Struct, gc=False):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None
    prompt_cache_hit_tokens: int | None = None
    prompt_cache_miss_tokens: int | None = None


class _Message(msgspec.Struct, gc=False):
    """A stream ``delta`` or a response ``message``."""

    role: str | None = None
    content: str | list[_Part] | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[_ToolCall] | None = None
    refusal: str | None = None
    reasoning_details: list[Any] | None = None


class WireChoice(msgspec.Struct, gc=False):
    """A choice of the wire (for :meth:`WireReader.choice_fields`)."""

    index: Index = 0
    delta: _Message | None = None
    message: _Message | None = None
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    content_filter_results: dict[str, Any] | None = None


class _Chunk(msgspec.Struct, gc=False):
    """A stream chunk or a whole response (their envelopes are the same)."""

    object: str = ""
    id: str = ""
    created: int = 0
    model: str = ""
    choices: list[WireChoice] = []
    usage: _Usage | None = None
    system_fingerprint: str | None = None
    error: Any = None


class _TopLevelError(msgspec.Struct):
    """vLLM-style error bodies: ``{"object": "error", "message": ..., "code": 400}``."""

    object: str = ""
    message: Any = None
    type: str | None = None
    param: str | None = None
    code: str | int | None = None
    error: Any = None


_decode_wire = msgspec.json.Decoder(_Chunk).decode
_decode_top_level = msgspec.json.Decoder(_TopLevelError).decode
_encode = msgspec.json.Encoder().encode


def compatible_error(
    status: int | None,
    body: bytes,
    headers: Mapping[str, str],
    *,
    provider: str,
    model: str | None,
) -> LLMError:
    """OpenAI's ``{"error": {...}}`` envelope, or the top-level ``{"object": "error",
    "message": ...}`` that vLLM-style servers send, -> typed error."""
    try:
        top = _decode_top_level(body)
    except (msgspec.DecodeError, RecursionError):
        top = _TopLevelError()
    if top.error is None and isinstance(top.message, str):
        detail = {"message": top.message, "type": top.type, "param": top.param, "code": top.code}
        body = _encode({"error": detail})
    return error_from_body(status, body, headers, provider=provider, model=model)


#: Markers of a dialect ``ChatChunk`` would silently lose (see the module docstring). Quoted
#: keys cannot occur inside JSON string values (their quotes would be escaped there).
MARKERS: tuple[bytes, ...] = (b'"reasoning"', b'"error"', b'"tool_calls"', b'_cache_hit_tokens"')


def markers_for(
    keep: frozenset[str] = frozenset(), keep_when: tuple[tuple[str, object], ...] = ()
) -> tuple[bytes, ...]:
    """:data:`MARKERS`, the quoted name of every field kept, and every member that makes data
    kept as JSON writes it, with and without a space after the colon."""
    found = [*MARKERS, *(b'"%s"' % name.encode() for name in sorted(keep))]
    for name, value in keep_when:
        member, encoded = b'"%s":' % name.encode(), _encode(value)
        found += [member + encoded, member + b" " + encoded]
    return tuple(dict.fromkeys(found))


def _text_of(value: str | list[_Part] | None) -> str:
    if value is None or isinstance(value, str):
        return value or ""
    return "".join(part.text or "" for part in value)


def split_content(content: str | list[_Part] | None) -> tuple[str | None, str | None]:
    """``content`` (text or parts) -> (text, thinking text); None where there is none."""
    if content is None or isinstance(content, str):
        return content, None
    text: list[str] = []
    thinking: list[str] = []
    for part in content:
        if part.type == "thinking":
            thinking.append(_text_of(part.thinking))
        elif part.text is not None:
            text.append(part.text)
    return ("".join(text) if text else None), ("".join(thinking) if thinking else None)


def _usage(wire: _Usage | None) -> Usage | None:
    """The wire's usage as OpenAI's. DeepSeek's ``prompt_cache_hit_tokens`` (what it bills at
    the cache price) is the ``cached_tokens``, whatever ``prompt_tokens_details`` says; its
    hits and misses make up the prompt when ``prompt_tokens`` is missing."""
    if wire is None:
        return None
    prompt_details = wire.prompt_tokens_details
    hits, misses = wire.prompt_cache_hit_tokens, wire.prompt_cache_miss_tokens
    if hits is not None:
        if prompt_details is None:
            prompt_details = PromptTokensDetails(cached_tokens=hits)
        elif prompt_details.cached_tokens != hits:
            prompt_details = msgspec.structs.replace(prompt_details, cached_tokens=hits)
    prompt = wire.prompt_tokens
    if not prompt and hits is not None and misses is not None:
        prompt = hits + misses
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=wire.completion_tokens,
        total_tokens=wire.total_tokens or prompt + wire.completion_tokens,
        prompt_tokens_details=prompt_details,
        completion_tokens_details=wire.completion_tokens_details,
    )


def _arguments(value: Any) -> str | None:
    """Arguments as JSON text (a few servers send the object itself)."""
    if value is None or isinstance(value, str):
        return value
    return _encode(value).decode()


class WireReader:
    """Converts wire structs to rxllm's shapes, for one request.

    It numbers index-less tool calls: a fragment with an ``id`` starts the next call, one
    without continues the last. ``keep`` names opaque fields kept in ``provider_fields``
    (``reasoning_details``); :meth:`choice_fields` lets a provider keep choice-level data.
    """

    __slots__ = ("_last", "_next", "keep", "name")

    def __init__(self, name: str, keep: frozenset[str] = frozenset()) -> None:
        self.name = name
        self.keep = keep
        self._last: dict[int, int] = {}
        self._next: dict[int, int] = {}

    def choice_fields(self, choice: WireChoice) -> dict[str, Any] | None:
        """Opaque data of a choice to keep in ``provider_fields`` (none by default)."""
        return None

    def _fields(self, message: _Message, choice: WireChoice) -> dict[str, Any] | None:
        fields = self.choice_fields(choice)
        if "reasoning_details" in self.keep and message.reasoning_details:
            fields = {**(fields or {}), "reasoning_details": message.reasoning_details}
        return fields

    def _index(self, choice: int, call: _ToolCall) -> int:
        if call.index is not None:
            index = call.index
        elif call.id or choice not in self._last:
            index = self._next.get(choice, 0)
        else:
            index = self._last[choice]
        self._last[choice] = index
        self._next[choice] = max(self._next.get(choice, 0), index + 1)
        return index

    def delta(self, message: _Message, choice: WireChoice) -> Delta:
        text, thinking = split_content(message.content)
        reasoning = message.reasoning_content
        if reasoning is None:
            reasoning = message.reasoning
        if thinking is not None:
            reasoning = thinking if reasoning is None else reasoning + thinking
        tool_calls = None
        if message.tool_calls:
            tool_calls = []
            for call in message.tool_calls:
                function = call.function
                tool_calls.append(
                    ToolCallDelta(
                        index=self._index(choice.index, call),
                        id=call.id or None,
                        type=call.type,
                        function=None
                        if function is None
                        else FunctionCallDelta(
                            name=function.name or None, arguments=_arguments(function.arguments)
                        ),
                    )
                )
        return Delta(
            role=message.role,
            content=text,
            reasoning_content=reasoning or None,
            tool_calls=tool_calls,
            refusal=message.refusal,
            provider_fields=self._fields(message, choice),
        )

    def chunk(self, wire: _Chunk) -> ChatChunk:
        choices = []
        for choice in wire.choices:
            message = choice.delta or choice.message or _Message()
            choices.append(
                StreamChoice(
                    index=choice.index,
                    delta=self.delta(message, choice),
                    finish_reason=choice.finish_reason,
                    native_finish_reason=choice.native_finish_reason,
                )
            )
        normalise_finish(choices)
        return ChatChunk(
            id=wire.id,
            created=wire.created,
            model=wire.model,
            choices=choices,
            usage=_usage(wire.usage),
            system_fingerprint=wire.system_fingerprint,
            provider=self.name,
        )

    def response(self, wire: _Chunk) -> ChatResponse:
        choices = []
        for choice in wire.choices:
            message = choice.message or choice.delta or _Message()
            delta = self.delta(message, choice)
            calls = [
                ToolCall(
                    id=call.id or "",
                    type=call.type or "function",
                    function=FunctionCall(
                        name=(call.function.name if call.function else None) or "",
                        arguments=(call.function.arguments if call.function else None) or "",
                    ),
                )
                for call in delta.tool_calls or ()
            ]
            choices.append(
                Choice(
                    index=choice.index,
                    message=Message(
                        role="assistant",
                        content=delta.content,
                        reasoning_content=delta.reasoning_content,
                        tool_calls=calls or None,
                        refusal=delta.refusal,
                        provider_fields=delta.provider_fields,
                    ),
                    finish_reason=choice.finish_reason,
                    native_finish_reason=choice.native_finish_reason,
                )
            )
        return ChatResponse(
            id=wire.id,
            created=wire.created,
            model=wire.model,
            choices=choices,
            usage=_usage(wire.usage),
            system_fingerprint=wire.system_fingerprint,
            provider=self.name,
        )


class CompatibleStreamParser(OpenAIStreamParser):
    """OpenAI's parser, with reads that carry a dialect marker taken through the wire structs.

    An error object inside a chunk ends the stream: the chunk itself (its text, its usage) is
    emitted first, then the typed error, so the partial response keeps both."""

    __slots__ = ("markers", "reader")

    def __init__(
        self,
        name: str,
        model: str,
        reader: WireReader | None = None,
        markers: tuple[bytes, ...] = MARKERS,
    ) -> None:
        super().__init__(name, model)
        self.reader = reader or WireReader(name)
        self.markers = markers

    def each(self, events: StreamEvents) -> tuple[list[ChatChunk], LLMError | None]:
        chunks: list[ChatChunk] = []
        for event in cast("list[SSEEvent]", events):
            data = event.data
            try:
                wire = _decode_wire(data)
            except (msgspec.DecodeError, RecursionError):
                stripped = data.strip()
                if stripped == b"[DONE]":
                    self.done = True
                    break
                if stripped:
                    return chunks, self.not_a_chunk(data)
                continue
            if wire.object == "error" or (wire.error is not None and not wire.choices):
                return chunks, self.error_frame(data)
            chunks.append(self.reader.chunk(wire))
            if wire.error is not None:
                return chunks, self.error_frame(data)
        return chunks, None

    def error_frame(self, data: bytes) -> LLMError:
        return compatible_error(None, data, {}, provider=self._name, model=self._model)


class CompatibleProvider(OpenAIProvider):
    """Chat Completions with the tolerant reader; the base of the OpenAI-shaped family."""

    #: Fields of the wire kept in ``provider_fields`` (see :class:`WireReader`).
    keep: frozenset[str] = frozenset()
    #: JSON members ``(name, value)`` whose presence makes the reader keep choice-level data
    #: (:meth:`WireReader.choice_fields`; Azure's ``"filtered": true``).
    keep_when: tuple[tuple[str, object], ...] = ()

    @functools.cached_property
    def markers(self) -> tuple[bytes, ...]:
        """Byte markers of reads that need the wire structs: :data:`MARKERS` and what
        :attr:`keep` and :attr:`keep_when` declare (derived, so they cannot drift apart)."""
        return markers_for(self.keep, self.keep_when)

    #: Forward every parameter unchecked (a generic server: it validates them itself).
    passthrough: bool = False

    def check_params(self, params: dict[str, Any], drop: bool) -> dict[str, Any]:
        if self.passthrough:
            return self.translate_params(params)
        return super().check_params(params, drop)

    def check_embedding_params(self, params: dict[str, Any], drop: bool) -> dict[str, Any]:
        if self.passthrough:
            return params
        return super().check_embedding_params(params, drop)

    def reader(self) -> WireReader:
        return WireReader(self.name, self.keep)

    def stream_parser(self, call: ChatCall) -> OpenAIStreamParser:
        return CompatibleStreamParser(self.name, call.model, self.reader(), self.markers)

    def decode_response(self, body: bytes, call: ChatCall) -> ChatResponse:
        if not any(marker in body for marker in self.markers):
            try:
                return super().decode_response(body, call)
            except msgspec.ValidationError:
                pass
        wire = _decode_wire(body)
        if wire.object == "error" or (wire.error is not None and not wire.choices):
            raise self.map_error(200, body, {}, call)  # as the provider reads its errors
        return self.reader().response(wire)

    def map_error(
        self, status: int, body: bytes, headers: Mapping[str, str], call: Call
    ) -> LLMError:
        return compatible_error(status, body, headers, provider=self.name, model=call.model)


class GenericProvider(CompatibleProvider):
    """``openai_compatible``: any server, every parameter forwarded, ``api_base`` required."""

    passthrough = True


PROVIDER = GenericProvider("openai_compatible", option_names=frozenset(), base_required=True)


#: Parameters that ask for tool calls: not taken by a server whose row does not declare tools.
TOOL_PARAMS = frozenset({"tools", "tool_choice", "parallel_tool_calls"})


def compatible_provider(info: ProviderInfo, **settings: Any) -> CompatibleProvider:
    """The provider of an OpenAI-compatible server, from its registry row: a plug-in module is
    ``ROW = ProviderInfo(...)`` and ``PROVIDER = compatible_provider(ROW)``. The row's declared
    capabilities decide what it takes (no ``tools`` unless ``info.tools``), a row with no
    ``default_api_base`` requires one per call, and ``settings`` go to
    :class:`CompatibleProvider` (``params``, ``renames``, ``option_names``...)."""
    params = settings.pop("params", CHAT_PARAMS)
    settings.setdefault("option_names", frozenset())
    settings.setdefault("base_required", not info.default_api_base)
    return CompatibleProvider(
        info.name, params=params if info.tools else params - TOOL_PARAMS, **settings
    )
