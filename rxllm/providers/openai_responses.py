"""OpenAI Responses API (``POST {api_base}/responses``), streamed and not.

Any server speaking the Responses wire (OpenAI, or an Open Responses server at another
``api_base``) works the same way.

Requests: chat messages become ``input`` items. System and developer messages stay in place as
input messages of their role (``instructions=`` may be passed as well); user text and images
become ``input_text`` / ``input_image`` parts; an assistant turn becomes an assistant message
of ``output_text`` parts, one ``function_call`` item per tool call (its ``call_id`` is the tool
call's id) and, before them, the opaque output items it carried (below); a ``role: tool``
result becomes a ``function_call_output`` item. OpenAI-style ``tools`` become Responses' flat
function tools, ``tool_choice`` follows, ``max_tokens`` / ``max_completion_tokens`` become
``max_output_tokens``, ``reasoning_effort`` / ``reasoning_summary`` become ``reasoning``,
``response_format`` / ``verbosity`` become ``text``.

``store`` defaults to False: rxllm sends the whole conversation every turn, so nothing needs to
stay on OpenAI's servers (pass ``store=True`` to keep responses there). With ``store`` off, the
reasoning of a reasoning model can only travel to the next turn encrypted: the request then
asks for ``include: ["reasoning.encrypted_content"]`` when reasoning is asked for
(``reasoning_effort``, ``reasoning_summary``, ``reasoning``) or the model is an OpenAI
reasoning model (``gpt-5*``, ``o1``/``o3``/``o4``), unless the caller passes ``include``.
Reasoning summaries are off unless asked for (``reasoning_summary="auto"``): OpenAI refuses
them to organisations it has not verified.

Output items the Chat shape has no field for - reasoning items (with their encrypted content,
or, with ``store=True``, by id), web, file, code and MCP calls the server ran itself - are kept
verbatim in ``provider_fields["output_items"]``: of the tool call they came before, so each
reasoning item goes back right before the function call it led to, else of the message. A
reasoning item that can go back neither way (no encrypted content, ``store`` off) is dropped.

Streams are named SSE events (``response.created``, ``response.output_item.added``,
``response.output_text.delta``, ``response.function_call_arguments.delta``,
``response.reasoning_summary_text.delta``, ...), each payload naming its own ``type``; a read
of them is decoded in one msgspec call into loose structs. There is no ``[DONE]``: the stream
ends with ``response.completed``, ``response.incomplete`` or ``response.failed``, and usage
comes only there. Event types this module does not read are skipped, whatever their shape.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from .._events import DataEvents, SSEEvent, StreamEvents
from .._provider import Call, ChatCall, EventParser
from .._sse import SSEDecoder
from .._wire import HttpRequest
from ..errors import (
    AuthenticationError,
    BadRequestError,
    ContentPolicyViolationError,
    ContextWindowExceededError,
    InternalServerError,
    LLMError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitError,
    ServiceUnavailableError,
    StreamTruncatedError,
    refine_class,
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
    Message,
    PromptTokensDetails,
    StreamChoice,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ._common import body_snippet, check_known_params, frame_error
from .openai import error_from_body

__all__ = [
    "CHAT_PARAMS",
    "KEPT_ITEMS",
    "PROVIDER",
    "ResponsesProvider",
    "ResponsesStreamParser",
    "build_body",
    "failure_error",
    "translate_messages",
]

#: Parameters this module translates (OpenAI Chat names) or passes on (the Responses API's own).
CHAT_PARAMS = frozenset(
    {
        "include",
        "instructions",
        "max_completion_tokens",
        "max_output_tokens",
        "max_tokens",
        "max_tool_calls",
        "metadata",
        "parallel_tool_calls",
        "previous_response_id",
        "prompt_cache_key",
        "prompt_cache_retention",
        "reasoning",
        "reasoning_effort",
        "reasoning_summary",
        "response_format",
        "safety_identifier",
        "service_tier",
        "store",
        "stream_options",
        "temperature",
        "text",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
        "truncation",
        "user",
        "verbosity",
    }
)

#: Parameters sent as they are, under the same name.
_PASSED = (
    "instructions",
    "max_tool_calls",
    "metadata",
    "parallel_tool_calls",
    "previous_response_id",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
    "service_tier",
    "temperature",
    "top_logprobs",
    "top_p",
    "truncation",
    "user",
)

#: Models that reason, whose reasoning goes back encrypted when ``store`` is off.
REASONING_MODELS = ("gpt-5*", "o[134]", "o[134]-*")
ENCRYPTED_REASONING = "reasoning.encrypted_content"

#: Output items that go back to the next turn as they came (``provider_fields["output_items"]``):
#: reasoning, and the calls the server ran itself. Calls the client must answer (computer,
#: shell, custom tools...) have no place in a chat message and are left out.
KEPT_ITEMS = frozenset(
    {
        "reasoning",
        "web_search_call",
        "file_search_call",
        "code_interpreter_call",
        "image_generation_call",
        "mcp_call",
        "mcp_list_tools",
    }
)

#: Event types this module reads: a frame of one of them that does not decode is malformed.
#: Any other event type is skipped, whatever its shape.
_READ_EVENTS = frozenset(
    {
        "response.output_text.delta",
        "response.function_call_arguments.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_text.delta",
        "response.refusal.delta",
        "response.output_item.added",
        "response.output_item.done",
        "response.created",
        "response.in_progress",
        "response.queued",
        "response.completed",
        "response.incomplete",
        "response.failed",
        "error",
    }
)

#: Error classes by the ``code`` (else ``type``) of a failed response or an ``error`` event,
#: which come without an HTTP status.
_FAILURES: dict[str, type[LLMError]] = {
    "server_error": InternalServerError,
    "vector_store_timeout": InternalServerError,
    "service_unavailable": ServiceUnavailableError,
    "rate_limit_exceeded": RateLimitError,
    "insufficient_quota": QuotaExceededError,
    "invalid_prompt": BadRequestError,
    "invalid_request_error": BadRequestError,
    "data_residency_mismatch": BadRequestError,
    "context_length_exceeded": ContextWindowExceededError,
    "bio_policy": ContentPolicyViolationError,
    "image_content_policy_violation": ContentPolicyViolationError,
    "content_policy_violation": ContentPolicyViolationError,
    "authentication_error": AuthenticationError,
    "invalid_api_key": AuthenticationError,
    "permission_error": PermissionDeniedError,
    "model_not_found": NotFoundError,
}

#: What separates two reasoning parts (summary parts, reasoning texts) in ``reasoning_content``.
PART_SEPARATOR = "\n\n"

_encode = msgspec.json.Encoder().encode


# --- wire structs ------------------------------------------------------------------------------


class _InputDetails(msgspec.Struct, gc=False):
    cached_tokens: int | None = None


class _OutputDetails(msgspec.Struct, gc=False):
    reasoning_tokens: int | None = None


class _Usage(msgspec.Struct, gc=False):
    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int | None = None
    input_tokens_details: _InputDetails | None = None
    output_tokens_details: _OutputDetails | None = None


class _Incomplete(msgspec.Struct, gc=False):
    reason: str | None = None


class _Failure(msgspec.Struct, gc=False):
    """A failed response's ``error``, an ``error`` event's nested ``error``, or an error body's."""

    message: str = ""
    code: str | int | None = None
    type: str | None = None
    param: str | None = None


class _Response(msgspec.Struct, gc=False):
    """The Response object (a whole answer, or the one a stream's terminal event carries);
    its output items stay raw until they are read."""

    id: str = ""
    model: str = ""
    created_at: int | float = 0
    status: str | None = None
    output: list[msgspec.Raw] = []
    usage: _Usage | None = None
    incomplete_details: _Incomplete | None = None
    error: _Failure | None = None


class _Part(msgspec.Struct, gc=False):
    """A content part of a message (``output_text``, ``refusal``) or a reasoning item
    (``summary_text``, ``reasoning_text``)."""

    type: str = ""
    text: str | None = None
    refusal: str | None = None


class _Item(msgspec.Struct, gc=False):
    """An output item, loosely: only the fields of the types this module reads."""

    type: str = ""
    id: str | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    encrypted_content: str | None = None
    summary: list[_Part] = []
    content: list[_Part] = []


class _Kind(msgspec.Struct, gc=False):
    type: str = ""


class _Event(msgspec.Struct, gc=False):
    """Every stream event in one loose shape: only the fields its ``type`` uses are set."""

    type: str = ""
    delta: str | None = None
    output_index: int | None = None
    item_id: str | None = None
    summary_index: int = 0
    content_index: int = 0
    item: msgspec.Raw = msgspec.Raw(b"")  # empty when the event has none
    response: _Response | None = None
    #: An ``error`` event: nested as ``{"error": {...}}`` (what the API sends) or flat (what
    #: its reference describes); a gateway's bare ``{"error": {...}}`` frame has no type.
    error: _Failure | None = None
    code: str | int | None = None
    message: str | None = None
    param: str | None = None


class _Envelope(msgspec.Struct, gc=False):
    error: _Failure | str


_decode_event = msgspec.json.Decoder(_Event).decode
_decode_events = msgspec.json.Decoder(list[_Event]).decode
_decode_kind = msgspec.json.Decoder(_Kind).decode
_decode_item = msgspec.json.Decoder(_Item).decode
_decode_response = msgspec.json.Decoder(_Response).decode
_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_decode_any = msgspec.json.Decoder().decode


# --- errors ------------------------------------------------------------------------------------


def failure_error(failure: _Failure | None, *, provider: str, model: str | None) -> LLMError:
    """A failed response's (or an ``error`` event's) error -> the typed error. Its ``code``
    (else ``type``) decides the class, there being no HTTP status; a code of no known kind is
    read as an OpenAI error body would be (a gateway's numeric status, say)."""
    if failure is None:
        failure = _Failure(message="the response failed without saying why")
    code = None if failure.code is None else str(failure.code)
    cls = _FAILURES.get(code or "") or _FAILURES.get(failure.type or "")
    if cls is None and code and "image" in code:  # invalid_image_url, image_too_large, ...
        cls = BadRequestError
    if cls is None:
        envelope = {
            "error": {
                "message": failure.message,
                "type": failure.type,
                "code": failure.code,
                "param": failure.param,
            }
        }
        return error_from_body(None, _encode(envelope), {}, provider=provider, model=model)
    cls = refine_class(cls, failure.message, code, failure.type)
    return cls(
        failure.message,
        provider=provider,
        model=model,
        code=code,
        error_type=failure.type,
        param=failure.param,
    )


# --- responses ---------------------------------------------------------------------------------


def _usage(usage: _Usage | None) -> Usage | None:
    """Responses usage -> OpenAI Chat's (cached input and reasoning tokens in their details)."""
    if usage is None:
        return None
    prompt, completion = usage.input_tokens, usage.output_tokens
    cached = usage.input_tokens_details
    reasoning = usage.output_tokens_details
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=prompt + completion if usage.total_tokens is None else usage.total_tokens,
        prompt_tokens_details=(
            PromptTokensDetails(cached_tokens=cached.cached_tokens)
            if cached is not None and cached.cached_tokens is not None
            else None
        ),
        completion_tokens_details=(
            CompletionTokensDetails(reasoning_tokens=reasoning.reasoning_tokens)
            if reasoning is not None and reasoning.reasoning_tokens is not None
            else None
        ),
    )


def _finish(response: _Response, calls: bool, incomplete: bool = False) -> tuple[str, str]:
    """(finish reason, the provider's own value) of a finished response."""
    if incomplete or response.status == "incomplete":
        details = response.incomplete_details
        reason = details.reason if details is not None else None
        return ("content_filter" if reason == "content_filter" else "length"), (
            reason or "incomplete"
        )
    return ("tool_calls" if calls else "stop"), (response.status or "completed")


def _kind_of(raw: msgspec.Raw | bytes) -> str:
    """The ``type`` of a JSON object ("" when it has none, or is no object)."""
    try:
        return _decode_kind(raw).type
    except (msgspec.DecodeError, RecursionError):
        return ""


def _has_calls(response: _Response) -> bool:
    return any(_kind_of(raw) == "function_call" for raw in response.output)


def _read_item(raw: msgspec.Raw, *, provider: str, model: str) -> _Item | None:
    """An output item, or None for one of a type this module does not read that comes in a
    shape of its own (it is skipped, never an error)."""
    try:
        return _decode_item(raw)
    except (msgspec.DecodeError, RecursionError):
        kind = _kind_of(raw)
        if kind in ("message", "function_call", "reasoning"):
            raise MalformedResponseError(
                f"unparseable {kind} item: {body_snippet(bytes(raw), 120)!r}",
                provider=provider,
                model=model,
            ) from None
        return None


def _keeps(item: _Item, stored: bool) -> bool:
    """Whether an output item goes back next turn: a reasoning item only if it can (encrypted,
    or kept on the server)."""
    if item.type not in KEPT_ITEMS:
        return False
    return item.type != "reasoning" or bool(item.encrypted_content) or stored


def _reasoning_parts(item: _Item) -> list[str]:
    texts = [part.text for part in item.summary if part.text]
    texts += [part.text for part in item.content if part.text and part.type == "reasoning_text"]
    return texts


def _stored(call: ChatCall) -> bool:
    return call.params.get("store") is True


# --- the stream --------------------------------------------------------------------------------


class _Call:
    """A streamed function call: its tool-call index and whether arguments arrived for it."""

    __slots__ = ("arguments", "index")

    def __init__(self, index: int) -> None:
        self.index = index
        self.arguments = False


class ResponsesStreamParser(EventParser):
    """Responses stream events -> ``ChatChunk`` s; ``response.completed`` (or ``.incomplete``)
    ends the stream, ``response.failed`` and ``error`` events fail it.

    Function calls get a tool-call ``index`` of their own (0, 1, ... in output order), their
    ``call_id`` as the id, and their argument fragments by output index. Reasoning summary and
    reasoning text fragments stream as ``reasoning_content``, parts separated by a blank line.
    Output items kept for the next turn (see the module) are emitted whole once done, in the
    ``provider_fields`` of the next tool call's first fragment or of the message."""

    __slots__ = (
        "_calls",
        "_count",
        "_created",
        "_id",
        "_model",
        "_name",
        "_part",
        "_pending",
        "_requested",
        "_started",
        "_stored",
        "done",
    )

    def __init__(self, name: str, model: str, *, stored: bool = False) -> None:
        self._name = name
        self._requested = model  # errors name the model asked for
        self._model = model  # chunks name the one that answered
        self._id = ""
        self._created = 0
        self._stored = stored
        self._started = False
        self._calls: dict[int | str, _Call] = {}  # output index and item id -> the call
        self._count = 0
        self._part: tuple[str | None, int, int] | None = None  # the reasoning part streaming
        self._pending: list[Any] = []  # output items kept, waiting for the item they precede
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
        """A read of SSE events (named or not) is decoded in one msgspec call; a read holding a
        frame that does not decode as an event (a ``[DONE]``, an event of a shape of its own,
        a broken frame) goes event by event through :meth:`feed`, where it fails alone."""
        if not isinstance(events, DataEvents):  # NamedDataEvents is one too
            return EventParser.parse(self, events)
        try:
            decoded = _decode_events(b"[" + events.payloads + b"]")
        except (msgspec.DecodeError, RecursionError):
            return EventParser.parse(self, events)
        chunks: list[ChatChunk] = []
        append, on_event = chunks.append, self._on_event
        try:
            for ev in decoded:
                chunk = on_event(ev)
                if chunk is not None:
                    append(chunk)
                if self.done:
                    break
        except LLMError as error:
            return chunks, error
        return chunks, None

    def feed(self, event: SSEEvent) -> ChatChunk | None:
        data = event.data
        try:
            ev = _decode_event(data)
        except (msgspec.DecodeError, RecursionError):
            self._odd_frame(data)
            return None
        return self._on_event(ev)

    def _odd_frame(self, data: bytes) -> None:
        """A frame that is no event of this module's shape: skipped when it is ``[DONE]`` (some
        servers add one) or an event type this module does not read; else an error."""
        stripped = data.strip()
        if not stripped or stripped == b"[DONE]":
            return
        kind = _kind_of(data)
        if not kind:  # no event: a gateway's error object, or not JSON at all
            raise frame_error(
                data,
                _decode_envelope,
                error_from_body,
                provider=self._name,
                model=self._requested,
            )
        if kind in _READ_EVENTS:
            raise MalformedResponseError(
                f"unparseable {kind} event: {body_snippet(data, 120)!r}",
                provider=self._name,
                model=self._requested,
            )

    def _on_event(self, ev: _Event) -> ChatChunk | None:
        kind = ev.type
        if kind == "response.output_text.delta":
            return self._chunk(Delta(content=ev.delta)) if ev.delta else None
        if kind == "response.function_call_arguments.delta":
            call = self._call_of(ev.output_index, ev.item_id)
            if call is None or not ev.delta:
                return None  # a call never announced: its done event brings it whole
            call.arguments = True
            fragment = FunctionCallDelta(arguments=ev.delta)
            return self._chunk(
                Delta(tool_calls=[ToolCallDelta(index=call.index, function=fragment)])
            )
        if kind == "response.reasoning_summary_text.delta":
            return self._reasoning(ev, 0, ev.summary_index)
        if kind == "response.reasoning_text.delta":
            return self._reasoning(ev, 1, ev.content_index)
        if kind == "response.refusal.delta":
            return self._chunk(Delta(refusal=ev.delta)) if ev.delta else None
        if kind == "response.output_item.added":
            return self._item_added(ev)
        if kind == "response.output_item.done":
            return self._item_done(ev)
        if kind in ("response.created", "response.in_progress", "response.queued"):
            return self._start(ev.response)
        if kind in ("response.completed", "response.incomplete"):
            return self._end(ev.response, kind == "response.incomplete")
        if kind == "response.failed":
            response = ev.response
            raise failure_error(
                response.error if response is not None else None,
                provider=self._name,
                model=self._requested,
            )
        if kind == "error" or (not kind and ev.error is not None):
            failure = ev.error
            if failure is None:
                failure = _Failure(message=ev.message or "", code=ev.code, param=ev.param)
            raise failure_error(failure, provider=self._name, model=self._requested)
        return None  # content parts, *.done, tool progress, and types added after this

    def _start(self, response: _Response | None) -> ChatChunk | None:
        if response is not None:
            self._id = self._id or response.id
            self._model = response.model or self._model
            self._created = self._created or int(response.created_at)
        if self._started:
            return None
        self._started = True
        return self._chunk(Delta(role="assistant"))

    def _reasoning(self, ev: _Event, kind: int, index: int) -> ChatChunk | None:
        text = ev.delta
        if not text:
            return None
        part = (ev.item_id, kind, index)
        if part != self._part:
            if self._part is not None:
                text = PART_SEPARATOR + text
            self._part = part
        return self._chunk(Delta(reasoning_content=text))

    def _call_of(self, output_index: int | None, item_id: str | None) -> _Call | None:
        calls = self._calls
        call = calls.get(output_index) if output_index is not None else None
        if call is None and item_id is not None:
            call = calls.get(item_id)
        return call

    def _item(self, ev: _Event) -> _Item | None:
        raw = ev.item
        if not raw:
            return None
        return _read_item(raw, provider=self._name, model=self._requested)

    def _kept_fields(self) -> dict[str, Any] | None:
        """The output items waiting for the item they precede, handed over once."""
        if not self._pending:
            return None
        fields = {"output_items": self._pending}
        self._pending = []
        return fields

    def _open_call(self, ev: _Event, item: _Item, arguments: str) -> ChatChunk:
        call = _Call(self._count)
        self._count += 1
        if ev.output_index is not None:
            self._calls[ev.output_index] = call
        if item.id:
            self._calls[item.id] = call
        call.arguments = bool(arguments)
        fragment = ToolCallDelta(
            index=call.index,
            id=item.call_id or item.id,
            type="function",
            function=FunctionCallDelta(name=item.name, arguments=arguments),
            provider_fields=self._kept_fields(),
        )
        return self._chunk(Delta(tool_calls=[fragment]))

    def _item_added(self, ev: _Event) -> ChatChunk | None:
        item = self._item(ev)
        if item is None:
            return None
        if item.type == "function_call":
            return self._open_call(ev, item, item.arguments or "")
        if item.type == "message":
            fields = self._kept_fields()
            return self._chunk(Delta(provider_fields=fields)) if fields else None
        return None

    def _item_done(self, ev: _Event) -> ChatChunk | None:
        item = self._item(ev)
        if item is None:
            return None
        if item.type == "function_call":
            call = self._call_of(ev.output_index, item.id)
            if call is None:  # never announced: the whole call at once
                return self._open_call(ev, item, item.arguments or "")
            if call.arguments or not item.arguments:
                return None
            call.arguments = True  # no fragments came: the arguments whole
            fragment = FunctionCallDelta(arguments=item.arguments)
            return self._chunk(
                Delta(tool_calls=[ToolCallDelta(index=call.index, function=fragment)])
            )
        if _keeps(item, self._stored):
            # The done event's copy: while in progress, encrypted content may be incomplete.
            self._pending.append(_decode_any(ev.item))
        return None

    def _end(self, response: _Response | None, incomplete: bool) -> ChatChunk:
        self.done = True
        if response is None:
            response = _Response()
        self._start(response)
        calls = self._count > 0 or _has_calls(response)
        finish, native = _finish(response, calls, incomplete)
        chunk = self._chunk(Delta(provider_fields=self._kept_fields()), finish, native)
        chunk.usage = _usage(response.usage)
        return chunk

    def finish(self) -> ChatChunk | None:
        if not self.done:
            raise StreamTruncatedError(
                "the connection closed before the end of the stream (response.completed)",
                provider=self._name,
                model=self._requested,
            )
        return None


# --- requests ----------------------------------------------------------------------------------


def _input_part(part: Any) -> dict[str, Any]:
    if isinstance(part, TextPart):
        return {"type": "input_text", "text": part.text}
    if isinstance(part, ImagePart):
        image = part.image_url
        return {"type": "input_image", "image_url": image.url, "detail": image.detail or "auto"}
    raise BadRequestError(f"a content part of type {type(part).__name__} cannot be sent")


def _input_content(content: str | list[Any] | None) -> str | list[dict[str, Any]]:
    """Text stays a string (as the API's own examples send it); parts become input parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return [_input_part(part) for part in content]


def _kept(fields: Mapping[str, Any] | None) -> list[Any]:
    return list((fields or {}).get("output_items") or ())


def _assistant_items(message: Message) -> list[Any]:
    """An assistant turn -> its kept output items, its message, then each function call after
    the items that came before it."""
    items = _kept(message.provider_fields)
    content: list[dict[str, Any]] = []
    if message.text:
        content.append({"type": "output_text", "text": message.text})
    if message.refusal:
        content.append({"type": "refusal", "refusal": message.refusal})
    if content:
        items.append({"role": "assistant", "content": content})
    for call in message.tool_calls or ():
        items += _kept(call.provider_fields)
        items.append(
            {
                "type": "function_call",
                "call_id": call.id,
                "name": call.function.name,
                "arguments": call.function.arguments,
            }
        )
    return items


def _tool_output(message: Message) -> dict[str, Any]:
    if not message.tool_call_id:
        raise BadRequestError("a role 'tool' message needs the tool_call_id it answers")
    return {
        "type": "function_call_output",
        "call_id": message.tool_call_id,
        "output": _input_content(message.content),
    }


def translate_messages(messages: list[Message]) -> list[Any]:
    """OpenAI-style messages -> the ``input`` items of a Responses request, in order."""
    items: list[Any] = []
    for message in messages:
        role = message.role
        if role == "assistant":
            items += _assistant_items(message)
        elif role == "tool":
            items.append(_tool_output(message))
        else:  # user, system, developer
            items.append({"role": role, "content": _input_content(message.content)})
    return items


def _tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """An OpenAI Chat function tool -> a flat Responses function tool; any other tool (the
    Responses API's own: flat functions, web search, file search, MCP...) passes as is."""
    if tool.get("type") != "function" or not isinstance(tool.get("function"), Mapping):
        return dict(tool)
    function = tool["function"]
    translated: dict[str, Any] = {"type": "function", "name": function["name"]}
    if function.get("description"):
        translated["description"] = function["description"]
    translated["parameters"] = function.get("parameters") or {"type": "object", "properties": {}}
    if function.get("strict") is not None:
        translated["strict"] = function["strict"]
    return translated


def _tool_choice(choice: Any) -> Any:
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise BadRequestError(
                f"tool_choice {choice!r} is not auto, none, required or a named function"
            )
        return choice
    function = choice.get("function") if isinstance(choice, Mapping) else None
    if choice.get("type") == "function" and isinstance(function, Mapping):
        return {"type": "function", "name": function["name"]}
    return dict(choice)  # already the Responses API's shape


def _text_format(response_format: Mapping[str, Any]) -> dict[str, Any]:
    """Chat's ``response_format`` -> ``text.format`` (a JSON schema's fields move up a level)."""
    schema = response_format.get("json_schema")
    if response_format.get("type") == "json_schema" and isinstance(schema, Mapping):
        return {"type": "json_schema", **schema}
    return dict(response_format)


def _reasoning(params: Mapping[str, Any]) -> dict[str, Any]:
    reasoning = dict(params.get("reasoning") or {})
    if params.get("reasoning_effort") is not None:
        reasoning.setdefault("effort", params["reasoning_effort"])
    if params.get("reasoning_summary") is not None:
        reasoning.setdefault("summary", params["reasoning_summary"])
    return reasoning


def _reasons(model: str, params: Mapping[str, Any]) -> bool:
    """Whether the answer may hold reasoning items (reasoning asked for, or a reasoning model)."""
    if any(params.get(name) for name in ("reasoning", "reasoning_effort", "reasoning_summary")):
        return True
    name = model.lower()
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in REASONING_MODELS)


def build_body(call: ChatCall) -> dict[str, Any]:
    """The JSON body of a Responses request."""
    params = call.params
    body: dict[str, Any] = {"model": call.model, "input": translate_messages(call.messages)}
    for name in _PASSED:
        if params.get(name) is not None:
            body[name] = params[name]
    store = bool(params.get("store", False))
    body["store"] = store
    if "include" in params:
        include = params["include"] or ()
        body["include"] = [include] if isinstance(include, str) else list(include)
    elif not store and _reasons(call.model, params):
        body["include"] = [ENCRYPTED_REASONING]
    limit = params.get("max_output_tokens")
    for name in ("max_completion_tokens", "max_tokens"):
        if limit is None:
            limit = params.get(name)
    if limit is not None:
        body["max_output_tokens"] = limit
    reasoning = _reasoning(params)
    if reasoning:
        body["reasoning"] = reasoning
    text = dict(params.get("text") or {})
    if params.get("response_format") is not None:
        text["format"] = _text_format(params["response_format"])
    if params.get("verbosity") is not None:
        text["verbosity"] = params["verbosity"]
    if text:
        body["text"] = text
    if params.get("tools"):
        body["tools"] = [_tool(tool) for tool in params["tools"]]
    if params.get("tool_choice") is not None:
        body["tool_choice"] = _tool_choice(params["tool_choice"])
    if call.stream:
        body["stream"] = True
        options = params.get("stream_options") or {}
        if "include_obfuscation" in options:  # Chat's include_usage has no meaning here
            body["stream_options"] = {"include_obfuscation": options["include_obfuscation"]}
    body.update(call.extra_body)
    return body


# --- the provider ------------------------------------------------------------------------------


class ResponsesProvider:
    """The Responses API, at ``{api_base}/responses``."""

    def __init__(self, name: str = "openai_responses") -> None:
        self.name = name
        self.option_names: frozenset[str] = frozenset({"organization", "project"})

    def check_params(self, params: dict[str, Any], drop: bool) -> dict[str, Any]:
        return check_known_params(self.name, params, CHAT_PARAMS, drop)

    def headers(self, call: Call, *, stream: bool) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "Accept": "text/event-stream" if stream else "application/json",
        }
        if call.api_key:
            headers["Authorization"] = f"Bearer {call.api_key}"
        if call.options.get("organization"):
            headers["OpenAI-Organization"] = str(call.options["organization"])
        if call.options.get("project"):
            headers["OpenAI-Project"] = str(call.options["project"])
        headers.update(call.extra_headers)
        return headers

    def build_request(self, call: ChatCall) -> HttpRequest:
        url = call.api_base.rstrip("/") + "/responses"
        try:
            body = build_body(call)
        except BadRequestError as exc:
            raise exc._with_context(provider=self.name, model=call.model, secret=None) from None
        return HttpRequest("POST", url, self.headers(call, stream=call.stream), _encode(body))

    def parse_response(self, body: bytes, call: ChatCall) -> ChatResponse:
        try:
            response = _decode_response(body)
        except (msgspec.DecodeError, RecursionError):
            if b'"error"' in body:
                raise self.map_error(200, body, {}, call) from None
            raise MalformedResponseError(
                f"response is not a Response: {body_snippet(body, 200)!r}",
                provider=self.name,
                model=call.model,
            ) from None
        if not response.id:
            if response.error is not None:
                raise self.map_error(200, body, {}, call)
            raise MalformedResponseError(
                f"response is not a Response: {body_snippet(body, 200)!r}",
                provider=self.name,
                model=call.model,
            )
        if response.status == "failed":
            raise failure_error(response.error, provider=self.name, model=call.model)
        return self._response(response, call)

    def _response(self, response: _Response, call: ChatCall) -> ChatResponse:
        stored = _stored(call)
        text: list[str] = []
        refusal: list[str] = []
        reasoning: list[str] = []
        kept: list[Any] = []  # of the message
        pending: list[Any] = []  # waiting for the item they precede
        tool_calls: list[ToolCall] = []
        for raw in response.output:
            item = _read_item(raw, provider=self.name, model=call.model)
            if item is None:
                continue
            kind = item.type
            if kind == "message":
                for part in item.content:
                    if part.type == "output_text":
                        text.append(part.text or "")
                    elif part.type == "refusal":
                        refusal.append(part.refusal or "")
                kept += pending
                pending = []
            elif kind == "function_call":
                tool_calls.append(
                    ToolCall(
                        id=item.call_id or item.id or "",
                        function=FunctionCall(name=item.name or "", arguments=item.arguments or ""),
                        provider_fields={"output_items": pending} if pending else None,
                    )
                )
                pending = []
            else:
                if kind == "reasoning":
                    reasoning += _reasoning_parts(item)
                if _keeps(item, stored):
                    pending.append(_decode_any(raw))
        kept += pending
        message = Message(
            role="assistant",
            content="".join(text) if text or not tool_calls else None,
            tool_calls=tool_calls or None,
            reasoning_content=PART_SEPARATOR.join(reasoning) if reasoning else None,
            refusal="".join(refusal) if refusal else None,
            provider_fields={"output_items": kept} if kept else None,
        )
        finish, native = _finish(response, bool(tool_calls))
        return ChatResponse(
            id=response.id,
            created=int(response.created_at) or int(time.time()),
            model=response.model or call.model,
            choices=[Choice(message=message, finish_reason=finish, native_finish_reason=native)],
            usage=_usage(response.usage),
            provider=self.name,
        )

    def decoder(self) -> SSEDecoder:
        return SSEDecoder()

    def stream_parser(self, call: ChatCall) -> ResponsesStreamParser:
        return ResponsesStreamParser(self.name, call.model, stored=_stored(call))

    def map_error(
        self, status: int, body: bytes, headers: Mapping[str, str], call: Call
    ) -> LLMError:
        """Error bodies are shaped as Chat Completions' (``{"error": {message, type, param,
        code}}``)."""
        return error_from_body(status, body, headers, provider=self.name, model=call.model)


PROVIDER = ResponsesProvider()
