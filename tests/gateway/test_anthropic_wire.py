"""The gateway's Anthropic wire format, with real transcripts and the official SDK as the oracle.

Streams: a recorded Anthropic transcript is read by rxllm's own Anthropic stream parser, the
ChatChunks go through :class:`AnthropicStream`, and the official ``anthropic`` SDK reads the
result (``messages.stream()`` over an ``httpx2.MockTransport``); its final message must equal
the one the SDK makes of the recorded transcript itself (a few transcripts are hand-written in
the recorded ones' shape, for what no recording here shows). OpenAI and DeepSeek transcripts
read by their parsers must make valid Anthropic streams too. Requests: real and documented bodies are
translated, and rxllm's Anthropic provider must turn the result back into the same body.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types import Message as SDKMessage
from anthropic.types import MessageParam

from rxllm._api import prepare
from rxllm._assemble import assemble
from rxllm.errors import RateLimitError
from rxllm.gateway._anthropic import (
    AnthropicCall,
    AnthropicStream,
    parse_request,
    render_message,
)
from rxllm.gateway._errors import GatewayError, WireError, describe
from rxllm.types import (
    ChatChunk,
    ChatResponse,
    Choice,
    CompletionTokensDetails,
    Delta,
    FunctionCall,
    FunctionCallDelta,
    Message,
    PromptTokensDetails,
    StreamChoice,
    ToolCall,
    ToolCallDelta,
    Usage,
)

from ..conftest import fixture_bytes
from ..test_anthropic import SIGNATURE, THINKING

MODEL = "claude-gateway-alias"
MESSAGE_ID = "msg_gateway_0001"
USER = [{"role": "user", "content": "hi"}]
SDK_USER: list[MessageParam] = [{"role": "user", "content": "hi"}]


# --- helpers ------------------------------------------------------------------------------------


def upstream_chunks(provider: str, body: bytes) -> list[ChatChunk]:
    """A recorded stream body read by rxllm's own parser for ``provider``."""
    call, spec, _ = prepare(provider, "model", messages=USER, stream=True, api_key="k")
    chunks, error = spec.stream_parser(call).parse(spec.decoder().feed(body))
    assert error is None
    return chunks


def gateway_stream(chunks: Iterable[ChatChunk]) -> tuple[bytes, AnthropicStream]:
    stream = AnthropicStream(model=MODEL, message_id=MESSAGE_ID)
    body = stream.start() + b"".join(stream.chunk(c) for c in chunks) + stream.end()
    return body, stream


def sdk_client(body: bytes, content_type: str = "text/event-stream") -> anthropic.Anthropic:
    """An SDK client whose every request is answered with ``body``."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": content_type}, content=body)

    transport = httpx2.MockTransport(answer)
    return anthropic.Anthropic(
        api_key="k",
        base_url="http://gateway.test",
        max_retries=0,
        http_client=httpx2.Client(transport=transport),
    )


def sdk_final(body: bytes) -> SDKMessage:
    """The SDK's accumulated message of an SSE body (``messages.stream().get_final_message``)."""
    client = sdk_client(body)
    with client.messages.stream(model=MODEL, max_tokens=64, messages=SDK_USER) as stream:
        return stream.get_final_message()


def events(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """(event name, data) of each SSE frame; every frame must be ``event:`` + one ``data:``."""
    frames = body.split(b"\n\n")
    assert frames[-1] == b""
    result = []
    for frame in frames[:-1]:
        name, data = frame.split(b"\n")
        assert name.startswith(b"event: ") and data.startswith(b"data: ")
        result.append((name[7:].decode(), json.loads(data[6:])))
    return result


def assert_well_formed(body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """The event grammar of Anthropic's streams: message_start, ping, blocks opened and closed
    one after another with indexes 0, 1, ..., deltas only to the open block, then
    message_delta and message_stop."""
    seen = events(body)
    assert [name for name, _ in seen[:2]] == ["message_start", "ping"]
    assert [name for name, _ in seen[-2:]] == ["message_delta", "message_stop"]
    open_index: int | None = None
    next_index = 0
    for name, data in seen:
        assert data["type"] == name
        if name == "content_block_start":
            assert open_index is None and data["index"] == next_index
            open_index, next_index = data["index"], next_index + 1
        elif name == "content_block_delta":
            assert data["index"] == open_index
        elif name == "content_block_stop":
            assert data["index"] == open_index
            open_index = None
    assert open_index is None
    return seen


def blocks(message: SDKMessage) -> list[dict[str, Any]]:
    return [block.model_dump(exclude_none=True) for block in message.content]


def chunk(delta: Delta, finish: str | None = None, native: str | None = None) -> ChatChunk:
    choice = StreamChoice(delta=delta, finish_reason=finish, native_finish_reason=native)
    return ChatChunk(id="c", choices=[choice])


def tool_delta(index: int, **fields: Any) -> Delta:
    arguments, name = fields.pop("arguments", None), fields.pop("name", None)
    function = FunctionCallDelta(name=name, arguments=arguments)
    return Delta(tool_calls=[ToolCallDelta(index=index, function=function, **fields)])


# --- streams: Anthropic transcripts round trip --------------------------------------------------


def sse(*payloads: dict[str, Any]) -> bytes:
    """An Anthropic SSE body: each payload under an ``event:`` line naming its type."""
    return b"".join(f"event: {p['type']}\ndata: {json.dumps(p)}\n\n".encode() for p in payloads)


def hand_written(usage: dict[str, int], stop: str, *blocks: dict[str, Any]) -> bytes:
    """A transcript in the shape of the recorded ones, for what no recording here shows
    (redacted thinking, a refusal, prompt caching): each block arrives whole at its start."""
    start: dict[str, Any] = {
        "type": "message",
        "id": "msg_hand",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": 1},
    }
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}, {"type": "ping"}]
    for index, block in enumerate(blocks):
        events.append({"type": "content_block_start", "index": index, "content_block": block})
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": 9},
        }
    )
    events.append({"type": "message_stop"})
    return sse(*events)


CACHE = {"input_tokens": 4, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 1165}
NO_CACHE = {"input_tokens": 30, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
REDACTED = [
    {"type": "redacted_thinking", "data": "EqkECkYIBxgCKkA8AZ4noDfV5V"},
    {"type": "redacted_thinking", "data": "EtgBCkYIBxgCKkDQfGkwzflEJP"},
    {"type": "text", "text": "I notice that you've sent what appears to be a test string."},
]
STREAMS: dict[str, bytes] = {
    "text": fixture_bytes("anthropic/stream_text.sse"),
    "tool_use": fixture_bytes("anthropic/stream_tool_use.sse"),
    "thinking": fixture_bytes("anthropic/stream_thinking.sse"),
    "cache_creation": fixture_bytes("anthropic/stream_cache_creation.sse"),
    "cache_read": fixture_bytes("anthropic/stream_cache_read.sse"),
    "hand_redacted_thinking": hand_written(NO_CACHE, "end_turn", *REDACTED),
    "hand_refusal": hand_written(NO_CACHE, "refusal"),
    "hand_cache_read": hand_written(CACHE, "max_tokens", {"type": "text", "text": "Here"}),
    "hand_stop_sequence": hand_written(NO_CACHE, "stop_sequence", {"type": "text", "text": "1, 2"}),
}


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_anthropic_transcript_survives_the_round_trip(name: str) -> None:
    original = sdk_final(STREAMS[name])
    assert original.content or original.stop_reason == "refusal"
    body, stream = gateway_stream(upstream_chunks("anthropic", STREAMS[name]))
    assert_well_formed(body)
    ours = sdk_final(body)
    assert (ours.id, ours.model, ours.role) == (MESSAGE_ID, MODEL, "assistant")
    assert blocks(ours) == blocks(original)
    assert ours.stop_reason == original.stop_reason
    assert ours.stop_sequence is None
    theirs = original.usage
    assert ours.usage.output_tokens == theirs.output_tokens
    assert ours.usage.cache_read_input_tokens == (theirs.cache_read_input_tokens or 0)
    # Cache writes and reads each keep a field of their own, as Anthropic reports them.
    assert ours.usage.input_tokens == theirs.input_tokens
    written = theirs.cache_creation_input_tokens or 0
    assert ours.usage.cache_creation_input_tokens == written
    assert stream.usage is not None and stream.usage.completion_tokens == theirs.output_tokens


def test_thinking_keeps_its_text_and_signature() -> None:
    body, _ = gateway_stream(upstream_chunks("anthropic", STREAMS["thinking"]))
    seen = assert_well_formed(body)
    thinking, text = sdk_final(body).content
    assert thinking.type == "thinking" and text.type == "text"
    assert (thinking.thinking, thinking.signature) == (THINKING, SIGNATURE)
    assert text.text.startswith("Here are the basic steps for safely crossing the street")
    deltas = [data["delta"]["type"] for name, data in seen if name == "content_block_delta"]
    assert deltas[:13] == ["thinking_delta"] * 13  # the empty recorded delta is not repeated
    assert deltas[13] == "signature_delta" and set(deltas[14:]) == {"text_delta"}


def test_two_tool_use_blocks_with_their_inputs() -> None:
    body, _ = gateway_stream(upstream_chunks("anthropic", STREAMS["tool_use"]))
    message = sdk_final(body)
    text, weather, time = message.content
    assert text.type == "text" and text.text.startswith("Certainly! I can help you")
    assert weather.type == "tool_use" and time.type == "tool_use"
    assert (weather.name, weather.input) == (
        "get_weather",
        {"location": "San Francisco, CA", "unit": "celsius"},
    )
    assert (time.name, time.input) == ("get_time", {"timezone": "America/Los_Angeles"})
    assert weather.id.startswith("toolu_") and weather.id != time.id
    assert message.stop_reason == "tool_use"


def test_redacted_thinking_blocks_arrive_whole() -> None:
    body, _ = gateway_stream(upstream_chunks("anthropic", STREAMS["hand_redacted_thinking"]))
    seen = assert_well_formed(body)
    assert blocks(sdk_final(body)) == REDACTED
    starts = [data["content_block"] for name, data in seen if name == "content_block_start"]
    assert starts[:2] == REDACTED[:2]  # whole in content_block_start, no delta


def test_refusal_without_any_content_block() -> None:
    body, _ = gateway_stream(upstream_chunks("anthropic", STREAMS["hand_refusal"]))
    names = [name for name, _ in assert_well_formed(body)]
    assert names == ["message_start", "ping", "message_delta", "message_stop"]
    message = sdk_final(body)
    assert message.content == [] and message.stop_reason == "refusal"


def test_cache_reads_leave_input_tokens() -> None:
    body, _ = gateway_stream(upstream_chunks("anthropic", STREAMS["hand_cache_read"]))
    message = sdk_final(body)
    usage = message.usage
    assert (usage.input_tokens, usage.cache_read_input_tokens, usage.output_tokens) == (4, 1165, 9)
    assert usage.cache_creation_input_tokens == 0
    assert message.stop_reason == "max_tokens"


# --- streams: other providers' transcripts ------------------------------------------------------


def test_openai_tool_call_becomes_a_tool_use_block() -> None:
    chunks = upstream_chunks("openai", fixture_bytes("openai/stream_tool_call_usage.sse"))
    body, stream = gateway_stream(chunks)
    seen = assert_well_formed(body)
    message = sdk_final(body)
    (call,) = message.content
    assert call.type == "tool_use"
    assert (call.id, call.name) == ("call_4XzlGBLtUe9dy3GVNV4jhq7h", "get_weather")
    assert call.input == {"city": "New York City"}
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (44, 16)
    assert stream.usage == assemble(chunks).usage
    # the opening fragment's empty arguments make no delta
    fragments = [
        data["delta"]["partial_json"] for name, data in seen if name == "content_block_delta"
    ]
    assert "".join(fragments) == '{"city":"New York City"}' and "" not in fragments


def test_openai_parallel_tool_calls_become_two_blocks() -> None:
    chunks = upstream_chunks("openai", fixture_bytes("openai/stream_parallel_tool_calls.sse"))
    body, _ = gateway_stream(chunks)
    assert_well_formed(body)
    message = sdk_final(body)
    first, second = message.content
    assert first.type == "tool_use" and second.type == "tool_use"
    assert (first.id, first.name) == ("call_JMW1whyEaYG438VE1OIflxA2", "GetWeatherArgs")
    assert first.input == {"city": "Edinburgh", "country": "GB", "units": "c"}
    assert (second.id, second.name) == ("call_DNYTawLBoN8fj3KN6qU9N1Ou", "get_stock_price")
    assert second.input == {"ticker": "AAPL", "exchange": "NASDAQ"}
    assert (message.stop_reason, message.usage.input_tokens, message.usage.output_tokens) == (
        "tool_use",
        149,
        60,
    )


def test_openai_text_becomes_one_text_block() -> None:
    chunks = upstream_chunks("openai", fixture_bytes("openai/stream_text_usage.sse"))
    body, _ = gateway_stream(chunks)
    assert_well_formed(body)
    message = sdk_final(body)
    (text,) = message.content
    assert text.type == "text" and text.text == assemble(chunks).text
    assert text.text.startswith("I'm unable to provide real-time weather updates.")
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (14, 30)


def test_deepseek_reasoning_becomes_an_unsigned_thinking_block() -> None:
    chunks = upstream_chunks("deepseek", fixture_bytes("deepseek/stream_reasoning_usage.sse"))
    body, _ = gateway_stream(chunks)
    assert_well_formed(body)
    message = sdk_final(body)
    thinking, text = message.content
    assembled = assemble(chunks)
    assert thinking.type == "thinking" and text.type == "text"
    assert thinking.thinking == assembled.reasoning_content and thinking.signature == ""
    assert thinking.thinking.startswith('Hmm, the user just said "Hello".')
    assert text.text == "Hello there! 😊 How can I help you today?"
    usage = message.usage
    assert (usage.input_tokens, usage.output_tokens, usage.cache_read_input_tokens) == (6, 212, 0)
    assert usage.output_tokens_details is not None
    assert usage.output_tokens_details.thinking_tokens == 198


# --- streams: the state machine on hand-made chunks ---------------------------------------------


def test_a_tool_block_opens_once_the_name_is_known() -> None:
    stream = AnthropicStream(model=MODEL, message_id=MESSAGE_ID)
    body = stream.start()
    assert stream.chunk(chunk(tool_delta(0, id="call_1"))) == b""
    assert stream.chunk(chunk(tool_delta(0, arguments='{"a"'))) == b""
    opened = stream.chunk(chunk(tool_delta(0, name="lookup")))
    (start, start_data), (delta, delta_data) = events(opened)
    assert (start, delta) == ("content_block_start", "content_block_delta")
    assert start_data["content_block"] == {
        "type": "tool_use",
        "id": "call_1",
        "name": "lookup",
        "input": {},
    }
    assert delta_data["delta"] == {"type": "input_json_delta", "partial_json": '{"a"'}
    body += opened + stream.chunk(chunk(tool_delta(0, arguments=": 1}"), finish="tool_calls"))
    (call,) = sdk_final(body + stream.end()).content
    assert call.type == "tool_use" and call.input == {"a": 1}


def test_a_tool_call_without_id_gets_one_and_a_nameless_one_is_flushed_at_the_end() -> None:
    chunks = [
        chunk(tool_delta(0, name="first", arguments="{}")),
        chunk(tool_delta(1, id="call_2", arguments='{"x": 2}')),
        chunk(Delta(), finish="tool_calls"),
    ]
    body, _ = gateway_stream(chunks)
    assert_well_formed(body)
    first, second = sdk_final(body).content
    assert first.type == "tool_use" and second.type == "tool_use"
    assert (first.id, first.name, first.input) == (f"toolu_{MESSAGE_ID}_0", "first", {})
    assert (second.id, second.name, second.input) == ("call_2", "", {"x": 2})


def test_interleaved_tool_fragments_still_reach_their_block() -> None:
    chunks = [
        chunk(tool_delta(0, id="call_a", name="a", arguments='{"p": ')),
        chunk(tool_delta(1, id="call_b", name="b", arguments='{"q": 2}')),
        chunk(tool_delta(0, arguments="1}")),
        chunk(Delta(), finish="tool_calls"),
    ]
    body, _ = gateway_stream(chunks)
    late = events(body)[-4]
    assert late[0] == "content_block_delta" and late[1]["index"] == 0
    first, second = sdk_final(body).content
    assert first.type == "tool_use" and second.type == "tool_use"
    assert (first.input, second.input) == ({"p": 1}, {"q": 2})


def test_text_thinking_and_tools_take_turns_in_order() -> None:
    signed = {"thinking_blocks": [{"type": "thinking", "thinking": "plan", "signature": "sig"}]}
    chunks = [
        chunk(Delta(role="assistant")),
        chunk(Delta(reasoning_content="pl")),
        chunk(Delta(reasoning_content="an")),
        chunk(Delta(provider_fields=signed)),
        chunk(
            Delta(provider_fields={"thinking_blocks": [{"type": "redacted_thinking", "data": "x"}]})
        ),
        chunk(Delta(content="Let me look.")),
        chunk(tool_delta(0, id="call_1", name="look", arguments="{}")),
        chunk(Delta(content="Done")),
        chunk(Delta(), finish="tool_calls"),
    ]
    body, _ = gateway_stream(chunks)
    assert_well_formed(body)
    content = blocks(sdk_final(body))
    assert content == [
        {"type": "thinking", "thinking": "plan", "signature": "sig"},
        {"type": "redacted_thinking", "data": "x"},
        {"type": "text", "text": "Let me look."},
        {"type": "tool_use", "id": "call_1", "name": "look", "input": {}},
        {"type": "text", "text": "Done"},
    ]


def test_a_signed_block_that_was_not_streamed_is_sent_with_its_text() -> None:
    signed = {"thinking_blocks": [{"type": "thinking", "thinking": "quiet", "signature": "s1"}]}
    other = {"thought_signature": "gemini-only"}  # another provider's field: ignored
    body, _ = gateway_stream(
        [chunk(Delta(provider_fields=other)), chunk(Delta(provider_fields=signed))]
    )
    assert_well_formed(body)
    assert blocks(sdk_final(body)) == [{"type": "thinking", "thinking": "quiet", "signature": "s1"}]


@pytest.mark.parametrize(
    ("finish", "native", "tools", "expected"),
    [
        ("stop", None, False, "end_turn"),
        ("stop", "stop_sequence", False, "stop_sequence"),  # Anthropic upstream: kept
        ("stop", "pause_turn", False, "pause_turn"),
        ("length", "model_context_window_exceeded", False, "model_context_window_exceeded"),
        ("stop", "STOP", False, "end_turn"),  # Gemini's own words: not Anthropic's
        ("length", "length", False, "max_tokens"),
        ("content_filter", "SAFETY", False, "refusal"),
        ("tool_calls", "tool_calls", True, "tool_use"),
        ("stop", "stop", True, "tool_use"),  # tools were called: the client must run them
        (None, None, False, "end_turn"),
    ],
)
def test_stop_reasons(finish: str | None, native: str | None, tools: bool, expected: str) -> None:
    chunks = [chunk(Delta(content="x"))]
    if tools:
        chunks.append(chunk(tool_delta(0, id="call_1", name="f", arguments="{}")))
    chunks.append(chunk(Delta(), finish=finish, native=native))
    body, _ = gateway_stream(chunks)
    delta = events(body)[-2][1]
    assert delta["delta"] == {"stop_reason": expected, "stop_sequence": None}
    assert sdk_final(body).stop_reason == expected


def test_usage_is_the_last_seen_and_cache_reads_are_split_out() -> None:
    early = Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2)
    final = Usage(
        prompt_tokens=100,
        completion_tokens=20,
        total_tokens=120,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=40),
        completion_tokens_details=CompletionTokensDetails(reasoning_tokens=7),
    )
    stream = AnthropicStream(model=MODEL, message_id=MESSAGE_ID)
    assert stream.usage is None
    assert stream.chunk(ChatChunk(id="c", usage=early)) == b""
    assert stream.chunk(ChatChunk(id="c", choices=[], usage=final)) == b""
    assert stream.usage is final
    delta = events(stream.end())[0][1]
    assert delta["usage"] == {
        "input_tokens": 60,
        "output_tokens": 20,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 40,
        "output_tokens_details": {"thinking_tokens": 7},
    }


def test_start_and_an_empty_stream() -> None:
    stream = AnthropicStream(model=MODEL, message_id=MESSAGE_ID)
    start = events(stream.start())
    assert start == [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "type": "message",
                    "id": MESSAGE_ID,
                    "model": MODEL,
                    "content": [],
                    "stop_reason": None,
                    "usage": {"input_tokens": 0, "output_tokens": 0},
                    "role": "assistant",
                    "stop_sequence": None,
                },
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    other_choice = ChatChunk(id="c", choices=[StreamChoice(index=1, delta=Delta(content="no"))])
    assert stream.chunk(other_choice) == b""
    assert stream.chunk(chunk(Delta(role="assistant", content=""))) == b""
    message = sdk_final(stream.start() + stream.end())
    assert message.content == [] and message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (0, 0)


def test_error_event_after_partial_text() -> None:
    stream = AnthropicStream(model=MODEL, message_id=MESSAGE_ID)
    body = stream.start() + stream.chunk(chunk(Delta(content="Hel")))
    wire = WireError(
        status=529,
        message="Overloaded",
        openai_type="server_error",
        anthropic_type="overloaded_error",
    )
    error = stream.error(wire)
    (recorded_error,) = events(fixture_bytes("anthropic/stream_error_overloaded.sse"))
    assert events(error) == [recorded_error]
    texts: list[str] = []
    client = sdk_client(body + error)
    sdk_stream = client.messages.stream(model=MODEL, max_tokens=64, messages=SDK_USER)
    with pytest.raises(anthropic.APIStatusError) as raised, sdk_stream as events_read:
        texts.extend(events_read.text_stream)
    assert texts == ["Hel"]
    assert raised.value.body == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }


def test_error_event_from_a_typed_error() -> None:
    wire = describe(RateLimitError("slow down", provider="openai", model="gpt"))
    (event,) = events(AnthropicStream(model=MODEL, message_id=MESSAGE_ID).error(wire))
    assert event == (
        "error",
        {
            "type": "error",
            "error": {"type": "rate_limit_error", "message": "openai/gpt: slow down"},
        },
    )


# --- whole messages -----------------------------------------------------------------------------


def parsed(provider: str, name: str) -> ChatResponse:
    call, spec, _ = prepare(provider, "model", messages=USER, stream=False, api_key="k")
    return spec.parse_response(fixture_bytes(name), call)


def sdk_create(body: bytes) -> SDKMessage:
    """What ``messages.create()`` returns for a JSON body."""
    client = sdk_client(body, "application/json")
    return client.messages.create(model=MODEL, max_tokens=64, messages=SDK_USER)


@pytest.mark.parametrize(
    "name", ["anthropic/response_tool_use.json", "anthropic/response_text.json"]
)
def test_anthropic_response_round_trip(name: str) -> None:
    original = SDKMessage.model_validate_json(fixture_bytes(name))
    body = render_message(parsed("anthropic", name), model=MODEL, message_id=MESSAGE_ID)
    for ours in (SDKMessage.model_validate_json(body), sdk_create(body)):
        assert (ours.id, ours.model, ours.type, ours.role) == (
            MESSAGE_ID,
            MODEL,
            "message",
            "assistant",
        )
        assert blocks(ours) == blocks(original)
        assert ours.stop_reason == original.stop_reason and ours.stop_sequence is None
        assert (ours.usage.input_tokens, ours.usage.output_tokens) == (
            original.usage.input_tokens,
            original.usage.output_tokens,
        )
        assert ours.usage.cache_read_input_tokens == 0


def test_openai_tool_call_response_becomes_tool_use() -> None:
    body = render_message(
        parsed("openai", "openai/response_tool_calls.json"), model=MODEL, message_id=MESSAGE_ID
    )
    message = SDKMessage.model_validate_json(body)
    assert blocks(message) == [
        {
            "type": "tool_use",
            "id": "call_TTY8UFNo7rNCaOBUNtlRSvMG",
            "name": "lookup_population",
            "input": {"country": "Crumpet"},
        }
    ]
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (92, 17)


def test_deepseek_reasoning_response_becomes_thinking_then_text() -> None:
    response = parsed("deepseek", "deepseek/response_reasoning.json")
    message = SDKMessage.model_validate_json(
        render_message(response, model=MODEL, message_id=MESSAGE_ID)
    )
    thinking, text = message.content
    assert thinking.type == "thinking" and text.type == "text"
    assert (thinking.thinking, thinking.signature) == (response.reasoning_content, "")
    assert text.text == response.text and text.text
    assert message.stop_reason == "end_turn"


@pytest.mark.parametrize("name", ["thinking", "hand_redacted_thinking"])
def test_an_assembled_thinking_answer_renders_like_the_stream(name: str) -> None:
    response = assemble(upstream_chunks("anthropic", STREAMS[name]))
    message = SDKMessage.model_validate_json(
        render_message(response, model=MODEL, message_id=MESSAGE_ID)
    )
    assert blocks(message) == blocks(sdk_final(STREAMS[name]))


def test_arguments_that_are_not_an_object_are_kept_as_text() -> None:
    calls = [
        ToolCall(id="call_1", function=FunctionCall(name="f", arguments='{"a": [1')),
        ToolCall(id="call_2", function=FunctionCall(name="g", arguments="")),
        ToolCall(id="call_3", function=FunctionCall(name="h", arguments="[1, 2]")),
    ]
    message = Message(role="assistant", content="", tool_calls=calls, refusal=None)
    response = ChatResponse(id="r", choices=[Choice(message=message, finish_reason="stop")])
    rendered = SDKMessage.model_validate_json(
        render_message(response, model=MODEL, message_id=MESSAGE_ID)
    )
    assert [b.input for b in rendered.content if b.type == "tool_use"] == [
        {"_raw_arguments": '{"a": [1'},
        {},
        {"_raw_arguments": "[1, 2]"},
    ]
    assert rendered.stop_reason == "tool_use"


def test_a_refusal_and_an_empty_response() -> None:
    refused = Message(role="assistant", refusal="I can't help with that.")
    response = ChatResponse(
        id="r",
        choices=[Choice(message=refused, finish_reason="content_filter")],
        usage=Usage(prompt_tokens=5, completion_tokens=3, total_tokens=8),
    )
    message = SDKMessage.model_validate_json(
        render_message(response, model=MODEL, message_id=MESSAGE_ID)
    )
    assert blocks(message) == [{"type": "text", "text": "I can't help with that."}]
    assert (message.stop_reason, message.usage.input_tokens, message.usage.output_tokens) == (
        "refusal",
        5,
        3,
    )
    empty = SDKMessage.model_validate_json(
        render_message(ChatResponse(id="r"), model=MODEL, message_id=MESSAGE_ID)
    )
    assert empty.content == [] and empty.stop_reason == "end_turn"


# --- requests -----------------------------------------------------------------------------------


def anthropic_body(call: AnthropicCall) -> dict[str, Any]:
    """The body rxllm's Anthropic provider builds from a translated call (built, not sent)."""
    _, _, request = prepare(
        "anthropic",
        call.model,
        messages=call.messages,
        stream=call.stream,
        api_key="k",
        params=call.params,
    )
    assert request.body is not None
    body: dict[str, Any] = json.loads(request.body)
    return body


def test_recorded_text_request() -> None:
    call = parse_request(fixture_bytes("anthropic/request_stream_text.json"))
    assert call == AnthropicCall(
        model="claude-haiku-4-5-20251001",
        stream=True,
        messages=[{"role": "user", "content": "Say just hello"}],
        params={"max_tokens": 8192, "temperature": 1.0},
    )


def test_recorded_tools_request_comes_back_the_same() -> None:
    original = json.loads(fixture_bytes("anthropic/request_tools.json"))
    call = parse_request(fixture_bytes("anthropic/request_tools.json"))
    assert [tool["function"]["name"] for tool in call.params["tools"]] == [
        "get_weather",
        "get_time",
    ]
    assert call.params["tools"][0]["function"]["parameters"] == original["tools"][0]["input_schema"]
    assert anthropic_body(call) == original


#: The tool-use exchange of Anthropic's API reference (the ``tools`` parameter of
#: ``POST /v1/messages``, also the docstring of ``MessageCreateParamsBase.tools`` in the SDK).
DOCUMENTED_REQUEST: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "tools": [
        {
            "name": "get_stock_price",
            "description": "Get the current stock price for a given ticker symbol.",
            "input_schema": {
                "type": "object",
                "properties": {
                    "ticker": {
                        "type": "string",
                        "description": "The stock ticker symbol, e.g. AAPL for Apple Inc.",
                    }
                },
                "required": ["ticker"],
            },
        }
    ],
    "messages": [
        {"role": "user", "content": "What's the S&P 500 at today?"},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV",
                    "name": "get_stock_price",
                    "input": {"ticker": "^GSPC"},
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV",
                    "content": "259.75 USD",
                }
            ],
        },
    ],
}


def test_documented_tool_exchange() -> None:
    call = parse_request(json.dumps(DOCUMENTED_REQUEST).encode())
    assert call.stream is False
    assert call.messages == [
        {"role": "user", "content": "What's the S&P 500 at today?"},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV",
                    "type": "function",
                    "function": {"name": "get_stock_price", "arguments": '{"ticker":"^GSPC"}'},
                }
            ],
        },
        {"role": "tool", "content": "259.75 USD", "tool_call_id": "toolu_01D7FLrfh4GYq7yT1ULFeyMV"},
    ]
    body = anthropic_body(call)
    assert body["messages"] == DOCUMENTED_REQUEST["messages"]
    assert body["tools"] == DOCUMENTED_REQUEST["tools"]
    _, _, openai_request = prepare(
        "openai", "gpt-4o", messages=call.messages, stream=False, api_key="k", params=call.params
    )
    assert openai_request.body is not None
    sent = json.loads(openai_request.body)
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "tool"]
    assert sent["tools"][0]["function"]["name"] == "get_stock_price"


PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="

EVERYTHING: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 4000,
    "stream": True,
    "system": [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Use tools.", "cache_control": {"type": "ephemeral"}},
    ],
    "temperature": 0.5,
    "top_p": 0.9,
    "top_k": 40,
    "stop_sequences": ["END"],
    "metadata": {"user_id": "user-42"},
    "thinking": {"type": "enabled", "budget_tokens": 2000},
    "tool_choice": {"type": "tool", "name": "weather", "disable_parallel_tool_use": True},
    "service_tier": "auto",
    "tools": [
        {
            "name": "weather",
            "description": "Weather for a place",
            "input_schema": {"type": "object", "properties": {"place": {"type": "string"}}},
            "strict": True,
        }
    ],
    "messages": [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these pictures?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Two images.", "signature": "sig-1"},
                {"type": "redacted_thinking", "data": "opaque-1"},
                {"type": "text", "text": "Checking the weather "},
                {"type": "text", "text": "first."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "weather",
                    "input": {"place": "Paris"},
                },
                {"type": "tool_use", "id": "toolu_2", "name": "weather", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": [{"type": "text", "text": "rain"}, {"type": "text", "text": "12C"}],
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": "no place given",
                    "is_error": True,
                },
                {"type": "text", "text": "And now?"},
            ],
        },
        {"role": "system", "content": "Answer in French."},
        {"role": "assistant", "content": "Il"},
    ],
}


def test_every_block_type() -> None:
    call = parse_request(json.dumps(EVERYTHING).encode())
    assert (call.model, call.stream) == ("claude-sonnet-4-5", True)
    assert call.messages == [
        {"role": "system", "content": "You are terse."},
        {
            "role": "system",
            "content": [
                {"type": "text", "text": "Use tools.", "cache_control": {"type": "ephemeral"}}
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these pictures?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking the weather first.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"place":"Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "weather", "arguments": "{}"},
                },
            ],
            "reasoning_content": "Two images.",
            "provider_fields": {
                "thinking_blocks": [
                    {"type": "thinking", "thinking": "Two images.", "signature": "sig-1"},
                    {"type": "redacted_thinking", "data": "opaque-1"},
                ]
            },
        },
        {
            "role": "tool",
            "content": [{"type": "text", "text": "rain"}, {"type": "text", "text": "12C"}],
            "tool_call_id": "toolu_1",
        },
        {"role": "tool", "content": "Error: no place given", "tool_call_id": "toolu_2"},
        {"role": "user", "content": "And now?"},
        {"role": "system", "content": "Answer in French."},
        {"role": "assistant", "content": "Il"},
    ]
    assert call.params == {
        "max_tokens": 4000,
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
        "stop": ["END"],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "weather",
                    "description": "Weather for a place",
                    "parameters": {"type": "object", "properties": {"place": {"type": "string"}}},
                    "strict": True,
                },
            }
        ],
        "tool_choice": {"type": "function", "function": {"name": "weather"}},
        "parallel_tool_calls": False,
        "user": "user-42",
        "thinking": {"type": "enabled", "budget_tokens": 2000},
    }


def test_every_block_type_reaches_an_anthropic_upstream_intact() -> None:
    body = anthropic_body(parse_request(json.dumps(EVERYTHING).encode()))
    assert body["system"] == [
        {"type": "text", "text": "You are terse."},
        {"type": "text", "text": "Use tools.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Answer in French."},
    ]
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "What is in these pictures?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]
    assistant = body["messages"][1]["content"]
    assert assistant[:2] == EVERYTHING["messages"][1]["content"][:2]  # signatures intact
    assert assistant[3:] == EVERYTHING["messages"][1]["content"][4:]
    results = body["messages"][2]["content"]
    assert [block["type"] for block in results] == ["tool_result", "tool_result", "text"]
    assert results[1] == {
        "type": "tool_result",
        "tool_use_id": "toolu_2",
        "content": "Error: no place given",
    }
    assert body["thinking"] == EVERYTHING["thinking"]
    assert body["tool_choice"] == EVERYTHING["tool_choice"]
    assert body["stop_sequences"] == ["END"] and body["metadata"] == {"user_id": "user-42"}
    assert (body["top_k"], body["max_tokens"]) == (40, 4000)


def test_other_thinking_configs_and_output_format_pass() -> None:
    request = {
        "model": "m",
        "max_tokens": 10,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
            }
        ],
        "thinking": {"type": "adaptive"},
        "tool_choice": {"type": "any"},
        "output_config": {
            "format": {"type": "json_schema", "schema": {"type": "array"}},
            "effort": "high",
        },
    }
    call = parse_request(json.dumps(request).encode())
    assert call.messages == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]
    assert call.params == {
        "max_tokens": 10,
        "tool_choice": "required",
        "thinking": {"type": "adaptive"},
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": {"type": "array"}},
        },
    }
    request["thinking"] = {"type": "disabled"}
    request["tool_choice"] = {"type": "none"}
    del request["output_config"]
    call = parse_request(json.dumps(request).encode())
    assert call.params == {
        "max_tokens": 10,
        "tool_choice": "none",
        "thinking": {"type": "disabled"},
    }
    request["tool_choice"] = {"type": "auto"}
    assert parse_request(json.dumps(request).encode()).params["tool_choice"] == "auto"


def body_with(**changes: Any) -> bytes:
    request: dict[str, Any] = {
        "model": "m",
        "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
    }
    for name, value in changes.items():
        if value is None:
            request.pop(name, None)
        else:
            request[name] = value
    return json.dumps(request).encode()


def user_blocks(*blocks: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(blocks)}]


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        (body_with(max_tokens=None), "max_tokens", "max_tokens: Field required"),
        (body_with(model=None), "model", "model: Field required"),
        (body_with(foo=1), "foo", "foo: Extra inputs are not permitted"),
        (body_with(max_tokens="10"), "max_tokens", "max_tokens: Expected `int`, got `str`"),
        (body_with(max_tokens=-1), "max_tokens", "max_tokens: Expected `int` >= 0"),
        (body_with(messages=[]), "messages", "messages: at least one message is required"),
        (body_with(messages="hi"), "messages", "messages: Expected `array`, got `str`"),
        (
            body_with(messages=[{"role": "bot", "content": "hi"}]),
            "messages.0.role",
            "messages.0.role: unknown role 'bot'",
        ),
        (
            body_with(messages=[{"role": "user", "content": 5}]),
            "messages.0.content",
            "messages.0.content: Expected `str | array`, got `int`",
        ),
        (
            body_with(messages=[{"role": "user"}]),
            "messages.0.content",
            "messages.0.content: Field required",
        ),
        (
            body_with(messages=user_blocks({"type": "text", "text": "a"}, {"type": "sticker"})),
            "messages.0.content.1.type",
            "messages.0.content.1.type: unknown type 'sticker'",
        ),
        (
            body_with(messages=user_blocks({"text": "no type"})),
            "messages.0.content.0.type",
            "messages.0.content.0.type: Field required",
        ),
        (
            body_with(messages=user_blocks({"type": "text"})),
            "messages.0.content.0.text",
            "messages.0.content.0.text: Field required",
        ),
        (
            body_with(messages=user_blocks({"type": "text", "text": 3})),
            "messages.0.content.0.text",
            "messages.0.content.0.text: Expected `str`, got `int`",
        ),
        (
            body_with(messages=user_blocks({"type": "document", "source": {}})),
            "messages.0.content.0.type",
            "messages.0.content.0.type: 'document' is not supported by this gateway",
        ),
        (
            body_with(
                messages=user_blocks({"type": "image", "source": {"type": "file", "file_id": "f"}})
            ),
            "messages.0.content.0.source.type",
            "'file' is not supported by this gateway",
        ),
        (
            body_with(
                messages=user_blocks({"type": "tool_use", "id": "t", "name": "f", "input": {}})
            ),
            "messages.0.content.0",
            "messages.0.content.0: a user message cannot hold a 'tool_use' block",
        ),
        (
            body_with(
                messages=[
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": [{"type": "tool_result", "tool_use_id": "t"}]},
                ]
            ),
            "messages.1.content.0",
            "messages.1.content.0: an assistant message cannot hold a 'tool_result' block",
        ),
        (
            body_with(
                messages=user_blocks({"type": "tool_use", "id": "t", "name": "f", "input": [1]})
            ),
            "messages.0.content.0.input",
            "messages.0.content.0.input: Expected `object`, got `array`",
        ),
        (
            body_with(tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]),
            "tools.0.type",
            "server tool 'web_search_20250305' is not supported by this gateway",
        ),
        (
            body_with(tools=[{"name": "f"}]),
            "tools.0.input_schema",
            "tools.0.input_schema: Field required",
        ),
        (
            body_with(tool_choice={"type": "sometimes"}),
            "tool_choice.type",
            "unknown type 'sometimes'",
        ),
        (
            body_with(tool_choice={"type": "tool"}),
            "tool_choice.name",
            "tool_choice.name: Field required",
        ),
        (
            body_with(thinking={"type": "enabled"}),
            "thinking.budget_tokens",
            "thinking.budget_tokens: Field required",
        ),
        (
            body_with(system=[{"type": "image"}]),
            "system.0.type",
            "system.0.type: unknown type 'image'",
        ),
        (
            body_with(mcp_servers=[{"type": "url"}]),
            "mcp_servers",
            "mcp_servers: this Anthropic-hosted",
        ),
        (body_with(container="c_1"), "container", "container: this Anthropic-hosted feature"),
        (b'{"model": "m", "max_tokens": ', None, "the request body is not valid JSON"),
        (b"", None, "the request body is not valid JSON"),
        (b"[1]", None, "Expected `object`, got `array`"),
    ],
)
def test_malformed_requests_are_refused_naming_the_field(
    body: bytes, param: str | None, message: str
) -> None:
    with pytest.raises(GatewayError) as raised:
        parse_request(body)
    wire = describe(raised.value)
    assert (wire.status, wire.anthropic_type, wire.param) == (400, "invalid_request_error", param)
    assert message in wire.message


def test_accepted_but_dropped_fields_change_nothing() -> None:
    plain = parse_request(body_with())
    hinted = parse_request(
        body_with(
            service_tier="standard_only",
            inference_geo="us",
            speed="fast",
            cache_control={"type": "ephemeral"},
            user_profile_id="p",
            workspace_id="w",
            context_management={"edits": [{"type": "clear_tool_uses_20250919"}]},
        )
    )
    assert hinted == plain
    # A block's cache breakpoint is not dropped: an Anthropic upstream caches by it.
    marked = parse_request(
        body_with(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}
                    ],
                }
            ],
        )
    )
    assert marked.messages == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
        }
    ]
