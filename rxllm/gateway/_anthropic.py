"""Anthropic's Messages API (``POST /v1/messages``) on the gateway: pure translation, no I/O.

Requests: :func:`parse_request` decodes the body into typed structs (content blocks and
messages are tagged unions, unknown top-level fields are refused like the real API refuses
them) and turns it into the OpenAI-style messages and parameters rxllm takes. Thinking blocks of
an earlier answer go into the assistant message's ``provider_fields["thinking_blocks"]``, the
form rxllm's Anthropic provider sends back with their signatures intact.

Answers: :class:`AnthropicStream` turns rxllm's ``ChatChunk`` s, from any provider, into
Anthropic's typed SSE events (``message_start``, ``content_block_start/delta/stop``,
``message_delta``, ``message_stop``); :func:`render_message` turns a ``ChatResponse`` into a
``message`` body. Anthropic's own stop reason is kept when the upstream gave one.

Usage: rxllm's ``prompt_tokens`` counts cache reads and writes; Anthropic's ``input_tokens``
does not. Both are taken back out: cache reads (``cached_tokens``) become
``cache_read_input_tokens``, cache writes (``cache_creation_tokens``) become
``cache_creation_input_tokens``, with their 5-minute / 1-hour split in ``cache_creation`` when
the upstream told it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec

from ..types import (
    ChatChunk,
    ChatResponse,
    ContentPart,
    FunctionCall,
    ImagePart,
    ImageURL,
    Message,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ._errors import GatewayError, WireError, anthropic_error_body

__all__ = ["AnthropicCall", "AnthropicStream", "parse_request", "render_message"]

_encode = msgspec.json.Encoder().encode
_decode_json = msgspec.json.Decoder().decode
_to_builtins = msgspec.to_builtins


class _Wire(msgspec.Struct, gc=False):
    """Base of the wire structs: they never form reference cycles."""


# --- content blocks (request and answer side) ----------------------------------------------------


class _Text(_Wire, tag="text", tag_field="type"):
    text: str
    #: A prompt-caching breakpoint: kept, so an Anthropic upstream caches what the client
    #: asked it to (other providers' modules leave it out).
    cache_control: dict[str, Any] | None = None


class _Base64Source(_Wire, tag="base64", tag_field="type"):
    media_type: str
    data: str


class _URLSource(_Wire, tag="url", tag_field="type"):
    url: str


class _Image(_Wire, tag="image", tag_field="type"):
    source: _Base64Source | _URLSource
    cache_control: dict[str, Any] | None = None


class _ToolUse(_Wire, tag="tool_use", tag_field="type"):
    id: str
    name: str
    input: dict[str, Any]


class _ToolResult(_Wire, tag="tool_result", tag_field="type"):
    tool_use_id: str
    content: str | list[_Text | _Image] = ""
    is_error: bool = False


class _Thinking(_Wire, tag="thinking", tag_field="type"):
    thinking: str
    signature: str


class _RedactedThinking(_Wire, tag="redacted_thinking", tag_field="type"):
    data: str


_Block = _Text | _Image | _ToolUse | _ToolResult | _Thinking | _RedactedThinking
_Signed = _Thinking | _RedactedThinking

# --- the request --------------------------------------------------------------------------------


class _UserTurn(_Wire, tag="user", tag_field="role"):
    content: str | list[_Block]


class _AssistantTurn(_Wire, tag="assistant", tag_field="role"):
    content: str | list[_Block]


class _SystemTurn(_Wire, tag="system", tag_field="role"):
    """A system message among the turns (newer API versions take them mid-conversation)."""

    content: str | list[_Text]


class _Tool(_Wire):
    """A tool definition. ``type`` is absent or ``custom`` for client tools; anything else is
    one of Anthropic's server tools (web search, code execution...), which run on Anthropic's
    side and so cannot be offered through an arbitrary upstream."""

    name: str
    input_schema: dict[str, Any] | None = None
    description: str | None = None
    type: str | None = None
    strict: bool | None = None


class _ChoiceAuto(_Wire, tag="auto", tag_field="type"):
    disable_parallel_tool_use: bool = False


class _ChoiceAny(_Wire, tag="any", tag_field="type"):
    disable_parallel_tool_use: bool = False


class _ChoiceTool(_Wire, tag="tool", tag_field="type"):
    name: str
    disable_parallel_tool_use: bool = False


class _ChoiceNone(_Wire, tag="none", tag_field="type"):
    pass


class _ThinkingEnabled(_Wire, tag="enabled", tag_field="type", omit_defaults=True):
    budget_tokens: int
    display: str | None = None


class _ThinkingAdaptive(_Wire, tag="adaptive", tag_field="type", omit_defaults=True):
    display: str | None = None


class _ThinkingDisabled(_Wire, tag="disabled", tag_field="type"):
    pass


class _ThinkingBetweenTools(_Wire, tag="between_tools", tag_field="type"):
    pass


class _Metadata(_Wire):
    user_id: str | None = None


class _JSONFormat(_Wire, tag="json_schema", tag_field="type"):
    schema: dict[str, Any]


class _OutputConfig(_Wire):
    format: _JSONFormat | None = None
    #: Anthropic's effort knob: no rxllm parameter means the same, so it is not passed on.
    effort: str | None = None


class _Request(_Wire, forbid_unknown_fields=True):
    """A ``POST /v1/messages`` body. Fields the gateway cannot honour but that change nothing
    in the answer (service tier, region, cache hints...) are accepted and dropped; features
    that only Anthropic's servers provide (containers, MCP servers) are refused by
    :func:`_refuse_hosted`."""

    model: str
    messages: list[_UserTurn | _AssistantTurn | _SystemTurn]
    max_tokens: Annotated[int, msgspec.Meta(ge=0)]
    system: str | list[_Text] | None = None
    stream: bool = False
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop_sequences: list[str] | None = None
    tools: list[_Tool] | None = None
    tool_choice: _ChoiceAuto | _ChoiceAny | _ChoiceTool | _ChoiceNone | None = None
    metadata: _Metadata | None = None
    thinking: (
        _ThinkingEnabled | _ThinkingAdaptive | _ThinkingDisabled | _ThinkingBetweenTools | None
    ) = None
    output_config: _OutputConfig | None = None
    # Accepted and dropped: they say how or where to run, not what to answer.
    service_tier: str | None = None
    inference_geo: str | None = None
    speed: str | None = None
    cache_control: Any = None
    diagnostics: Any = None
    user_profile_id: str | None = None
    workspace_id: str | None = None
    #: Server-side clearing of old context: without it the model sees all of it, which is
    #: what any other upstream does anyway.
    context_management: Any = None
    # Refused when set: tools and sandboxes that only Anthropic's servers provide.
    container: Any = None
    mcp_servers: Any = None


_decode_request = msgspec.json.Decoder(_Request).decode

#: Block types (and image sources) Anthropic's API knows but this gateway cannot translate.
_UNSUPPORTED_TYPES = frozenset(
    {
        "document",
        "search_result",
        "server_tool_use",
        "web_search_tool_result",
        "web_fetch_tool_result",
        "code_execution_tool_result",
        "bash_code_execution_tool_result",
        "text_editor_code_execution_tool_result",
        "tool_search_tool_result",
        "container_upload",
        "mcp_tool_use",
        "mcp_tool_result",
        "tool_reference",
        "browser_state",
        "file",
    }
)
_HOSTED_FIELDS = ("container", "mcp_servers")


class AnthropicCall(msgspec.Struct, frozen=True):
    """A Messages request translated for rxllm: ``messages`` and ``params`` are what
    ``rxllm.completion`` / ``router.acompletion`` take."""

    model: str
    stream: bool
    messages: list[dict[str, Any]]
    params: dict[str, Any]


# --- request errors -----------------------------------------------------------------------------

_AT = re.compile(r"^(?P<what>.*?)(?: - at `\$(?P<at>[^`]*)`)?$", re.DOTALL)
_FIELD = re.compile(r"^Object (?P<kind>missing required|contains unknown) field `(?P<name>[^`]*)`$")
_INVALID = re.compile(r"^Invalid value (?P<value>.*)$")


def _dotted(at: str) -> str:
    """msgspec's ``.messages[0].content`` -> Anthropic's ``messages.0.content``."""
    return re.sub(r"\[(\d+)\]", r".\1", at).lstrip(".")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _bad(param: str | None, message: str) -> GatewayError:
    """A 400 ``invalid_request_error`` that names the field first, as Anthropic's API does."""
    return GatewayError(400, f"{param}: {message}" if param else message, param=param)


def _refusal(error: msgspec.ValidationError) -> GatewayError:
    """msgspec's words for a body that does not fit -> Anthropic's, with the field's path."""
    parts = _AT.match(str(error))
    assert parts is not None  # the pattern matches any text
    what, path = parts["what"], _dotted(parts["at"] or "")
    field = _FIELD.match(what)
    if field is not None:
        missing = field["kind"] == "missing required"
        text = "Field required" if missing else "Extra inputs are not permitted"
        return _bad(_join(path, field["name"]), text)
    invalid = _INVALID.match(what)
    if invalid is not None:
        value = invalid["value"]
        if value.strip("'") in _UNSUPPORTED_TYPES:
            return _bad(path, f"{value} is not supported by this gateway")
        if path.endswith(".role"):
            return _bad(path, f"unknown role {value}: expected 'user', 'assistant' or 'system'")
        if path.endswith(".type"):
            return _bad(path, f"unknown type {value}")
        return _bad(path or None, f"invalid value {value}")
    return _bad(path or None, what)


def _misplaced(block: _Block, role: str, at: str) -> GatewayError:
    kind = type(block).__struct_config__.tag
    article = "an" if role == "assistant" else "a"
    return _bad(at, f"{article} {role} message cannot hold a {kind!r} block")


# --- request translation ------------------------------------------------------------------------


def parse_request(body: bytes) -> AnthropicCall:
    """Decode a ``POST /v1/messages`` body and translate it; a malformed body is a
    ``GatewayError`` 400 naming the field (``messages.0.content.1.type``)."""
    try:
        request = _decode_request(body)
    except msgspec.ValidationError as exc:
        raise _refusal(exc) from None
    except (msgspec.DecodeError, RecursionError):
        raise _bad(None, "the request body is not valid JSON") from None
    _refuse_hosted(request)
    if not request.messages:
        raise _bad("messages", "at least one message is required")
    messages = _system(request.system)
    for i, turn in enumerate(request.messages):
        messages.extend(_turn(turn, f"messages.{i}"))
    return AnthropicCall(
        model=request.model,
        stream=request.stream,
        messages=_to_builtins(messages),
        params=_params(request),
    )


def _refuse_hosted(request: _Request) -> None:
    for name in _HOSTED_FIELDS:
        if getattr(request, name) is not None:
            raise _bad(name, "this Anthropic-hosted feature is not supported by this gateway")


def _system(system: str | list[_Text] | None) -> list[Message]:
    """``system`` -> system messages: one per text block, so an Anthropic upstream gets the
    same blocks back (rxllm's provider lifts each system message into a block of its own)."""
    if system is None:
        return []
    if isinstance(system, str):
        return [Message(role="system", content=system)]
    return [Message(role="system", content=_simplest([_text_part(block)])) for block in system]


def _turn(turn: _UserTurn | _AssistantTurn | _SystemTurn, at: str) -> list[Message]:
    if isinstance(turn, _UserTurn):
        return _user(turn.content, at)
    if isinstance(turn, _AssistantTurn):
        return [_assistant(turn.content, at)]
    return _system(turn.content)


def _user(content: str | list[_Block], at: str) -> list[Message]:
    """A user turn -> one ``tool`` message per ``tool_result`` (first, as OpenAI wants them
    right after the calls), then a user message with the rest, if there is any."""
    if isinstance(content, str):
        return [Message(role="user", content=content)]
    messages: list[Message] = []
    parts: list[ContentPart] = []
    for j, block in enumerate(content):
        if isinstance(block, _Text):
            parts.append(_text_part(block))
        elif isinstance(block, _Image):
            parts.append(_image_part(block))
        elif isinstance(block, _ToolResult):
            messages.append(_tool_message(block))
        else:
            raise _misplaced(block, "user", f"{at}.content.{j}")
    if parts or not messages:
        messages.append(Message(role="user", content=_simplest(parts)))
    return messages


def _text_part(block: _Text) -> TextPart:
    return TextPart(text=block.text, cache_control=block.cache_control)


def _simplest(parts: list[ContentPart]) -> str | list[ContentPart]:
    """One text part is plain text (which every provider takes), unless it carries a cache
    breakpoint; anything else stays parts."""
    if len(parts) == 1 and isinstance(parts[0], TextPart) and parts[0].cache_control is None:
        return parts[0].text
    return parts


def _image_part(block: _Image) -> ImagePart:
    """A base64 source becomes a ``data:`` URL, a URL source stays a URL."""
    source = block.source
    if isinstance(source, _Base64Source):
        url = f"data:{source.media_type};base64,{source.data}"
    else:
        url = source.url
    return ImagePart(image_url=ImageURL(url=url), cache_control=block.cache_control)


def _tool_message(block: _ToolResult) -> Message:
    """A ``tool_result`` -> a ``tool`` message. OpenAI's has no error flag, so ``is_error``
    is said in the text itself."""
    content: str | list[ContentPart]
    if isinstance(block.content, str):
        content = block.content
    else:
        content = _simplest(
            [
                _text_part(part) if isinstance(part, _Text) else _image_part(part)
                for part in block.content
            ]
        )
    if block.is_error:
        content = _as_error(content)
    return Message(role="tool", tool_call_id=block.tool_use_id, content=content)


def _as_error(content: str | list[ContentPart]) -> str | list[ContentPart]:
    if isinstance(content, str):
        return f"Error: {content}" if content else "Error"
    return [TextPart(text="Error:"), *content]


def _assistant(content: str | list[_Block], at: str) -> Message:
    """An assistant turn: text, ``tool_use`` -> ``tool_calls``, and signed thinking blocks
    kept whole in ``provider_fields`` (their text also in ``reasoning_content``)."""
    if isinstance(content, str):
        return Message(role="assistant", content=content)
    text: list[str] = []
    calls: list[ToolCall] = []
    signed: list[_Signed] = []
    reasoning: list[str] = []
    for j, block in enumerate(content):
        if isinstance(block, _Text):
            text.append(block.text)
        elif isinstance(block, _ToolUse):
            arguments = _encode(block.input).decode()
            calls.append(
                ToolCall(id=block.id, function=FunctionCall(name=block.name, arguments=arguments))
            )
        elif isinstance(block, _Thinking):
            signed.append(block)
            if block.thinking:
                reasoning.append(block.thinking)
        elif isinstance(block, _RedactedThinking):
            signed.append(block)
        else:
            raise _misplaced(block, "assistant", f"{at}.content.{j}")
    return Message(
        role="assistant",
        content="".join(text) if text else None,
        tool_calls=calls or None,
        reasoning_content="".join(reasoning) if reasoning else None,
        provider_fields={"thinking_blocks": _to_builtins(signed)} if signed else None,
    )


def _params(request: _Request) -> dict[str, Any]:
    """The OpenAI-style parameters; only those the client set."""
    params: dict[str, Any] = {"max_tokens": request.max_tokens}
    for name in ("temperature", "top_p", "top_k"):
        value = getattr(request, name)
        if value is not None:
            params[name] = value
    if request.stop_sequences:
        params["stop"] = list(request.stop_sequences)
    if request.tools:
        params["tools"] = [_tool(tool, f"tools.{i}") for i, tool in enumerate(request.tools)]
    if request.tool_choice is not None:
        params.update(_tool_choice(request.tool_choice))
    if request.metadata is not None and request.metadata.user_id:
        params["user"] = request.metadata.user_id
    if request.thinking is not None:
        params["thinking"] = _to_builtins(request.thinking)
    output = request.output_config
    if output is not None and output.format is not None:
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": output.format.schema},
        }
    return params


def _tool(tool: _Tool, at: str) -> dict[str, Any]:
    """``{name, description, input_schema}`` -> an OpenAI function tool."""
    if tool.type not in (None, "custom"):
        raise _bad(f"{at}.type", f"server tool {tool.type!r} is not supported by this gateway")
    if tool.input_schema is None:
        raise _bad(f"{at}.input_schema", "Field required")
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    function["parameters"] = tool.input_schema
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def _tool_choice(choice: _ChoiceAuto | _ChoiceAny | _ChoiceTool | _ChoiceNone) -> dict[str, Any]:
    """auto/any/tool/none -> OpenAI's auto/required/named function/none;
    ``disable_parallel_tool_use`` -> ``parallel_tool_calls: false``."""
    params: dict[str, Any]
    if isinstance(choice, _ChoiceNone):
        return {"tool_choice": "none"}
    if isinstance(choice, _ChoiceAuto):
        params = {"tool_choice": "auto"}
    elif isinstance(choice, _ChoiceAny):
        params = {"tool_choice": "required"}
    else:
        params = {"tool_choice": {"type": "function", "function": {"name": choice.name}}}
    if choice.disable_parallel_tool_use:
        params["parallel_tool_calls"] = False
    return params


# --- answers: shared pieces ---------------------------------------------------------------------


class _ToolUseOut(_Wire, tag="tool_use", tag_field="type"):
    id: str
    name: str
    input: msgspec.Raw


class _OutputTokensDetails(_Wire):
    thinking_tokens: int


class _CacheCreationOut(_Wire):
    ephemeral_5m_input_tokens: int
    ephemeral_1h_input_tokens: int


class _UsageOut(_Wire, omit_defaults=True):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_creation: _CacheCreationOut | None = None
    output_tokens_details: _OutputTokensDetails | None = None


_BlockOut = _Text | _Thinking | _RedactedThinking | _ToolUseOut


class _MessageOut(_Wire, tag="message", tag_field="type"):
    id: str
    model: str
    content: list[_BlockOut]
    stop_reason: str | None
    usage: _UsageOut
    role: Literal["assistant"] = "assistant"
    stop_sequence: str | None = None


#: rxllm's finish reason -> Anthropic's stop reason.
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
#: Anthropic's own stop reasons: a ``native_finish_reason`` among them is kept as it is.
_NATIVE_STOP_REASONS = frozenset(
    {
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "refusal",
        "model_context_window_exceeded",
    }
)
_EMPTY_INPUT = msgspec.Raw(b"{}")


def _stop_reason(finish: str | None, native: str | None, used_tools: bool) -> str:
    """Anthropic's stop reason: the upstream's own when it was Anthropic's, else the mapped
    finish reason. An answer that called tools ends in ``tool_use`` even if the upstream
    said "stop", since Anthropic clients run tools only on ``tool_use``."""
    if native in _NATIVE_STOP_REASONS:
        return native
    reason = _STOP_REASONS.get(finish or "stop", "end_turn")
    return "tool_use" if used_tools and reason == "end_turn" else reason


def _usage_out(usage: Usage | None) -> _UsageOut:
    """rxllm's usage -> Anthropic's: cache reads and cache writes leave ``input_tokens`` for
    fields of their own (``input_tokens`` is the uncached rest, as Anthropic counts it)."""
    if usage is None:
        return _UsageOut(
            input_tokens=0,
            output_tokens=0,
            cache_creation_input_tokens=0,
            cache_read_input_tokens=0,
        )
    cached, written = usage.cache_read_tokens, usage.cache_write_tokens
    prompt = usage.prompt_tokens_details
    split = None
    if written:
        reported_1h = (prompt.cache_creation_1h_tokens or 0) if prompt is not None else 0
        written_1h = min(reported_1h, written)
        split = _CacheCreationOut(written - written_1h, written_1h)
    completion = usage.completion_tokens_details
    reasoning = completion.reasoning_tokens if completion is not None else None
    return _UsageOut(
        input_tokens=usage.uncached_prompt_tokens,
        output_tokens=usage.completion_tokens,
        cache_creation_input_tokens=written,
        cache_read_input_tokens=cached,
        cache_creation=split,
        output_tokens_details=None if reasoning is None else _OutputTokensDetails(reasoning),
    )


def _tool_input(arguments: str) -> msgspec.Raw:
    """A tool call's JSON arguments as ``input``, which Anthropic requires to be an object:
    anything else the model wrote is kept, as text, under ``_raw_arguments``."""
    if not arguments.strip():
        return _EMPTY_INPUT
    try:
        value = _decode_json(arguments)
    except (msgspec.DecodeError, RecursionError):
        value = None
    if isinstance(value, dict):
        return msgspec.Raw(arguments.encode())
    return msgspec.Raw(_encode({"_raw_arguments": arguments}))


def _signed_blocks(fields: dict[str, Any] | None) -> list[_Signed]:
    """The signed thinking blocks rxllm's Anthropic provider keeps in ``provider_fields``
    (other providers' fields, and blocks of unknown shape, are skipped)."""
    blocks = fields.get("thinking_blocks") if fields else None
    if not blocks:
        return []
    signed: list[_Signed] = []
    for block in blocks:
        try:
            signed.append(msgspec.convert(block, _Signed, from_attributes=True))
        except msgspec.ValidationError:
            continue
    return signed


# --- answers: whole messages --------------------------------------------------------------------


def render_message(response: ChatResponse, *, model: str, message_id: str) -> bytes:
    """A non-streaming Anthropic ``message`` body: thinking blocks (signed when the upstream
    signed them), text, ``tool_use`` blocks with their parsed input, stop reason and usage."""
    choice = next((c for c in response.choices if c.index == 0), None)
    content: list[_BlockOut] = []
    finish = native = None
    if choice is not None:
        message = choice.message
        finish, native = choice.finish_reason, choice.native_finish_reason
        signed = _signed_blocks(message.provider_fields)
        if signed:
            content.extend(signed)
        elif message.reasoning_content:
            content.append(_Thinking(thinking=message.reasoning_content, signature=""))
        text = message.text + (message.refusal or "")
        if text:
            content.append(_Text(text=text))
        for call in message.tool_calls or ():
            tool_input = _tool_input(call.function.arguments)
            content.append(_ToolUseOut(id=call.id, name=call.function.name, input=tool_input))
    used_tools = any(isinstance(block, _ToolUseOut) for block in content)
    return _encode(
        _MessageOut(
            id=message_id,
            model=model,
            content=content,
            stop_reason=_stop_reason(finish, native, used_tools),
            usage=_usage_out(response.usage),
        )
    )


# --- answers: the stream ------------------------------------------------------------------------


class _TextDelta(_Wire, tag="text_delta", tag_field="type"):
    text: str


class _ThinkingDelta(_Wire, tag="thinking_delta", tag_field="type"):
    thinking: str


class _SignatureDelta(_Wire, tag="signature_delta", tag_field="type"):
    signature: str


class _JSONDelta(_Wire, tag="input_json_delta", tag_field="type"):
    partial_json: str


class _BlockStart(_Wire, tag="content_block_start", tag_field="type"):
    index: int
    content_block: _BlockOut


class _BlockDelta(_Wire, tag="content_block_delta", tag_field="type"):
    index: int
    delta: _TextDelta | _ThinkingDelta | _SignatureDelta | _JSONDelta


class _BlockStop(_Wire, tag="content_block_stop", tag_field="type"):
    index: int


class _MessageStart(_Wire, tag="message_start", tag_field="type"):
    message: _MessageOut


class _StopDelta(_Wire):
    stop_reason: str
    stop_sequence: str | None = None


class _MessageDelta(_Wire, tag="message_delta", tag_field="type"):
    delta: _StopDelta
    usage: _UsageOut


def _frame(name: bytes, data: bytes) -> bytes:
    return b"event: " + name + b"\ndata: " + data + b"\n\n"


_PING = _frame(b"ping", b'{"type":"ping"}')
_MESSAGE_STOP = _frame(b"message_stop", b'{"type":"message_stop"}')


class _PendingTool:
    """A tool call seen before its name: held until the block can be opened."""

    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.arguments: list[str] = []


class AnthropicStream:
    """ChatChunks -> Anthropic SSE bytes (``event: <type>\\ndata: <json>\\n\\n``).

    Content blocks open and close one after another, as Anthropic sends them: text, thinking
    (``reasoning_content``; its signature, from ``provider_fields``, closes it), redacted
    thinking (whole, from ``provider_fields``) and one ``tool_use`` block per tool call, opened
    once its name is known. Only the first choice is rendered. A fragment that arrives for a
    tool call whose block was already closed goes out under that block's index.
    """

    __slots__ = (
        "_finish",
        "_id",
        "_kind",
        "_model",
        "_native",
        "_next",
        "_open",
        "_pending",
        "_tools",
        "usage",
    )

    def __init__(self, *, model: str, message_id: str) -> None:
        self._model = model
        self._id = message_id
        self._next = 0  # index of the next content block
        self._open: int | None = None  # index of the open block
        self._kind = ""  # "text", "thinking" or "tool_use" while a block is open
        self._tools: dict[int, int] = {}  # tool-call index -> its block's index
        self._pending: dict[int, _PendingTool] = {}
        self._finish: str | None = None
        self._native: str | None = None
        #: The last usage the upstream reported (what the gateway bills).
        self.usage: Usage | None = None

    def start(self) -> bytes:
        """``message_start`` with an empty message, then a ``ping``, as the real API does."""
        message = _MessageOut(
            id=self._id,
            model=self._model,
            content=[],
            stop_reason=None,
            usage=_UsageOut(input_tokens=0, output_tokens=0),
        )
        return _frame(b"message_start", _encode(_MessageStart(message=message))) + _PING

    def chunk(self, chunk: ChatChunk) -> bytes:
        """The events one chunk makes (``b""`` if none)."""
        if chunk.usage is not None:
            self.usage = chunk.usage
        for choice in chunk.choices:
            if choice.index == 0:
                break
        else:
            return b""
        if choice.finish_reason is not None:
            self._finish = choice.finish_reason
            self._native = choice.native_finish_reason
        delta = choice.delta
        out: list[bytes] = []
        if delta.reasoning_content:
            self._enter("thinking", out)
            out.append(self._delta(_ThinkingDelta(thinking=delta.reasoning_content)))
        if delta.provider_fields:
            for block in _signed_blocks(delta.provider_fields):
                self._signed(block, out)
        if delta.content:
            self._enter("text", out)
            out.append(self._delta(_TextDelta(text=delta.content)))
        if delta.refusal:
            self._enter("text", out)
            out.append(self._delta(_TextDelta(text=delta.refusal)))
        if delta.tool_calls:
            for call in delta.tool_calls:
                self._tool(call, out)
        return b"".join(out)

    def end(self) -> bytes:
        """Close the open block; ``message_delta`` with the stop reason and the stream's usage;
        ``message_stop``."""
        out: list[bytes] = []
        for index in list(self._pending):  # tool calls whose name never came
            self._open_tool(index, self._pending.pop(index), out)
        self._close(out)
        message_delta = _MessageDelta(
            delta=_StopDelta(
                stop_reason=_stop_reason(self._finish, self._native, bool(self._tools))
            ),
            usage=_usage_out(self.usage),
        )
        out.append(_frame(b"message_delta", _encode(message_delta)))
        out.append(_MESSAGE_STOP)
        return b"".join(out)

    def error(self, error: WireError) -> bytes:
        """An ``error`` event with Anthropic's error body, after whatever was already sent."""
        return _frame(b"error", _encode(anthropic_error_body(error)))

    # --- blocks ---

    def _delta(self, delta: _TextDelta | _ThinkingDelta | _SignatureDelta | _JSONDelta) -> bytes:
        assert self._open is not None
        return _frame(b"content_block_delta", _encode(_BlockDelta(index=self._open, delta=delta)))

    def _start(self, kind: str, block: _BlockOut, out: list[bytes]) -> int:
        """Close the open block and open ``block``; its index."""
        self._close(out)
        index = self._open = self._next
        self._next += 1
        self._kind = kind
        out.append(_frame(b"content_block_start", _encode(_BlockStart(index, block))))
        return index

    def _enter(self, kind: str, out: list[bytes]) -> None:
        """Make sure a text or thinking block is the open one."""
        if self._kind != kind:
            block: _BlockOut = (
                _Text(text="") if kind == "text" else _Thinking(thinking="", signature="")
            )
            self._start(kind, block, out)

    def _close(self, out: list[bytes]) -> None:
        if self._open is not None:
            out.append(_frame(b"content_block_stop", _encode(_BlockStop(self._open))))
            self._open = None
            self._kind = ""

    def _signed(self, block: _Signed, out: list[bytes]) -> None:
        """A finished thinking block from ``provider_fields``: its signature closes the
        thinking block streamed so far (one is opened with the block's text if none is);
        a redacted block is sent whole."""
        if isinstance(block, _RedactedThinking):
            self._start("redacted_thinking", block, out)
        else:
            if self._kind != "thinking":
                self._enter("thinking", out)
                if block.thinking:
                    out.append(self._delta(_ThinkingDelta(thinking=block.thinking)))
            if block.signature:
                out.append(self._delta(_SignatureDelta(signature=block.signature)))
        self._close(out)

    def _tool(self, call: ToolCallDelta, out: list[bytes]) -> None:
        """A tool-call fragment: its block opens when the call's name is known, argument
        fragments follow as ``input_json_delta``."""
        function = call.function
        arguments = function.arguments if function is not None else None
        index = self._tools.get(call.index)
        if index is not None:
            if arguments:
                delta = _BlockDelta(index=index, delta=_JSONDelta(partial_json=arguments))
                out.append(_frame(b"content_block_delta", _encode(delta)))
            return
        pending = self._pending.get(call.index)
        if pending is None:
            pending = self._pending[call.index] = _PendingTool()
        if call.id:
            pending.id = call.id
        if function is not None and function.name:
            pending.name = function.name
        if arguments:
            pending.arguments.append(arguments)
        if pending.name:
            del self._pending[call.index]
            self._open_tool(call.index, pending, out)

    def _open_tool(self, call_index: int, pending: _PendingTool, out: list[bytes]) -> None:
        call_id = pending.id or f"toolu_{self._id}_{call_index}"
        block = _ToolUseOut(id=call_id, name=pending.name, input=_EMPTY_INPUT)
        index = self._tools[call_index] = self._start("tool_use", block, out)
        if pending.arguments:
            delta = _JSONDelta(partial_json="".join(pending.arguments))
            out.append(_frame(b"content_block_delta", _encode(_BlockDelta(index, delta))))
