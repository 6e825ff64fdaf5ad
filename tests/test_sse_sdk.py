"""The SSE bridge read by the official ``openai`` SDK, with the SDK itself as the oracle.

A real provider transcript is replayed twice: once straight to the SDK (what the provider's
own stream gives it), once through rxllm and ``sse_response`` on a loopback aiohttp server
(what rxllm's bridge gives it). The SDK's own accumulated objects - ``get_final_completion()``
of the ``chat.completions.stream()`` helper, ``ChatCompletionStreamState`` over
``create(stream=True)`` - must be the same: text, role, tool calls, reasoning, usage, finish
reason, ids. A failed stream must make the SDK raise an ``APIError`` with rxllm's message.
Sync clients run in the test's thread against servers on their own threads; async clients on
the test's loop.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest
import reactivex
from aiohttp import web
from openai.lib.streaming.chat import ChatCompletionStreamState

import rxllm
from rxllm.streaming import sse_response
from rxllm.types import (
    ChatChunk,
    Delta,
    FunctionCallDelta,
    StreamChoice,
    ToolCallDelta,
    Usage,
)

from .conftest import API_KEY, fixture_bytes
from .server import ReplayServer, Reply

QUESTION = [{"role": "user", "content": "What's the weather in Edinburgh?"}]
TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
#: Fields rxllm adds to OpenAI's chunk schema (extras the SDK keeps as they are).
RXLLM_EXTRAS = {"provider", "source", "native_finish_reason", "provider_fields"}


class BridgeServer:
    """An OpenAI-compatible endpoint on its own thread and loop that answers every request by
    relaying an rxllm stream with ``sse_response``; ``upstream`` says which provider module
    reads which replay server."""

    def __init__(self) -> None:
        self.upstream: tuple[str, str] = ("openai", "")
        #: Serve these chunks instead (a provider module's output made by hand), if set.
        self.chunks: list[ChatChunk] | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def start(self) -> BridgeServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host="127.0.0.1", port=0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if self.chunks is not None:
            return await sse_response(request, reactivex.from_iterable(self.chunks))
        provider, base = self.upstream
        stream = await rxllm.acompletion(
            provider,
            body["model"],
            messages=body["messages"],
            stream=True,
            api_key=API_KEY,
            api_base=base,
        )
        return await sse_response(request, stream)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        # rxllm's HTTP session on this loop (it would be closed by the loop's shutdown)
        asyncio.run_coroutine_threadsafe(rxllm.aclose(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@pytest.fixture(scope="module")
def _bridge() -> Iterator[BridgeServer]:
    server = BridgeServer().start()
    yield server
    server.stop()


@pytest.fixture
def bridge(_bridge: BridgeServer) -> Iterator[BridgeServer]:
    yield _bridge
    _bridge.chunks = None


@dataclass
class Case:
    """A transcript, the rxllm provider module that reads it, and the model it names."""

    fixture: str
    provider: str
    model: str


TEXT = Case("openai/stream_text_usage.sse", "openai", "gpt-4o")
TOOL_CALL = Case("openai/stream_tool_call_usage.sse", "openai", "gpt-4o")
PARALLEL_TOOL_CALLS = Case("openai/stream_parallel_tool_calls.sse", "openai", "gpt-4o")
REASONING = Case("deepseek/stream_reasoning_usage.sse", "deepseek", "deepseek-reasoner")
#: OpenRouter reports a failure mid-stream as a chunk with a top-level ``error``.
MIDSTREAM_ERROR = Case("openrouter/stream_midstream_error.sse", "openrouter", "minimax/m2")


# --- driving the SDK -------------------------------------------------------------------------


def sync_client(base: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base, api_key="sk-bridge", max_retries=0, timeout=20)


def async_client(base: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base, api_key="sk-bridge", max_retries=0, timeout=20)


def helper_sync(base: str, model: str) -> Any:
    """``chat.completions.stream()``'s final completion, sync client."""
    with (
        sync_client(base) as client,
        client.chat.completions.stream(model=model, messages=QUESTION, tools=TOOLS) as stream,
    ):
        return stream.get_final_completion()


async def helper_async(base: str, model: str) -> Any:
    """``chat.completions.stream()``'s final completion, async client."""
    async with (
        async_client(base) as client,
        client.chat.completions.stream(model=model, messages=QUESTION, tools=TOOLS) as stream,
    ):
        return await stream.get_final_completion()


def create_sync(base: str, model: str) -> tuple[list[Any], Any]:
    """``create(stream=True)``: the chunks, and the SDK's accumulation of them."""
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState(input_tools=TOOLS)
    with sync_client(base) as client:
        stream = client.chat.completions.create(
            model=model, messages=QUESTION, tools=TOOLS, stream=True
        )
        chunks = [chunk for chunk in stream]
    for chunk in chunks:
        state.handle_chunk(chunk)
    return chunks, state.get_final_completion()


async def create_async(base: str, model: str) -> tuple[list[Any], Any]:
    state: ChatCompletionStreamState[None] = ChatCompletionStreamState(input_tools=TOOLS)
    async with async_client(base) as client:
        stream = await client.chat.completions.create(
            model=model, messages=QUESTION, tools=TOOLS, stream=True
        )
        chunks = [chunk async for chunk in stream]
    for chunk in chunks:
        state.handle_chunk(chunk)
    return chunks, state.get_final_completion()


def direct(server: ReplayServer, case: Case) -> str:
    """Queue the raw transcript for the SDK to read straight from the replay server."""
    server.queue(Reply(body=fixture_bytes(case.fixture), piece=97))
    return server.base + "/v1"


def bridged(server: ReplayServer, bridge: BridgeServer, case: Case) -> str:
    """Queue the transcript for rxllm to read, behind the bridge."""
    server.queue(Reply(body=fixture_bytes(case.fixture), piece=97))
    bridge.upstream = (case.provider, server.base + "/v1")
    return bridge.base


# --- what is compared ------------------------------------------------------------------------


def completion_view(completion: Any) -> dict[str, Any]:
    """The SDK's final completion as a plain dict, rxllm's extra fields left out."""
    view = completion.model_dump(mode="json")
    for choice in view["choices"]:
        for key in RXLLM_EXTRAS:
            choice.pop(key, None)
            choice["message"].pop(key, None)
        for call in choice["message"].get("tool_calls") or []:
            call.pop("provider_fields", None)
    for key in RXLLM_EXTRAS:
        view.pop(key, None)
    view["usage"] = usage_view(view["usage"])
    return view


def usage_view(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """The token counts rxllm keeps (it drops providers' own extra counters)."""
    if usage is None:
        return None
    keep = ("prompt_tokens", "completion_tokens", "total_tokens")
    view = {key: usage[key] for key in keep}
    details = usage.get("completion_tokens_details") or {}
    view["reasoning_tokens"] = details.get("reasoning_tokens")
    return view


def chunk_view(chunk: Any) -> dict[str, Any]:
    """One chunk as the SDK typed it, rxllm's extras and OpenAI's ``logprobs: null`` left out."""
    view = chunk.model_dump(mode="json", exclude_none=True)
    for key in RXLLM_EXTRAS:
        view.pop(key, None)
    for choice in view["choices"]:
        choice.pop("native_finish_reason", None)
        choice.pop("logprobs", None)
        choice["delta"].pop("provider_fields", None)
    view["usage"] = usage_view(view.get("usage"))
    return view


# --- the helper ------------------------------------------------------------------------------

CASES = [TEXT, TOOL_CALL, PARALLEL_TOOL_CALLS, REASONING]
IDS = ["text", "tool_call", "parallel_tool_calls", "reasoning"]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_stream_helper_sync_final_completion_is_the_providers(
    server: ReplayServer, bridge: BridgeServer, case: Case
) -> None:
    expected = helper_sync(direct(server, case), case.model)
    got = helper_sync(bridged(server, bridge, case), case.model)
    assert completion_view(got) == completion_view(expected)


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_stream_helper_async_final_completion_is_the_providers(
    server: ReplayServer, bridge: BridgeServer, case: Case
) -> None:
    expected = await helper_async(direct(server, case), case.model)
    got = await helper_async(bridged(server, bridge, case), case.model)
    assert completion_view(got) == completion_view(expected)


def test_stream_helper_text(server: ReplayServer, bridge: BridgeServer) -> None:
    final = helper_sync(bridged(server, bridge, TEXT), TEXT.model)
    (choice,) = final.choices
    assert choice.message.role == "assistant" and choice.finish_reason == "stop"
    assert choice.message.content.startswith("I'm unable to provide real-time weather updates.")
    assert final.model == "gpt-4o-2024-08-06" and final.id.startswith("chatcmpl-")
    assert final.usage.total_tokens == 44 and final.usage.prompt_tokens == 14


def test_stream_helper_one_tool_call(server: ReplayServer, bridge: BridgeServer) -> None:
    final = helper_sync(bridged(server, bridge, TOOL_CALL), TOOL_CALL.model)
    (choice,) = final.choices
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert (call.id, call.type, call.function.name) == (
        "call_4XzlGBLtUe9dy3GVNV4jhq7h",
        "function",
        "get_weather",
    )
    assert json.loads(call.function.arguments) == {"city": "New York City"}
    assert final.usage.total_tokens == 60


async def test_stream_helper_parallel_tool_calls(
    server: ReplayServer, bridge: BridgeServer
) -> None:
    final = await helper_async(bridged(server, bridge, PARALLEL_TOOL_CALLS), "gpt-4o")
    calls = final.choices[0].message.tool_calls
    assert [c.function.name for c in calls] == ["GetWeatherArgs", "get_stock_price"]
    assert [json.loads(c.function.arguments) for c in calls] == [
        {"city": "Edinburgh", "country": "GB", "units": "c"},
        {"ticker": "AAPL", "exchange": "NASDAQ"},
    ]
    assert all(c.type == "function" and c.id.startswith("call_") for c in calls)
    assert len({c.id for c in calls}) == 2


async def test_stream_helper_reasoning(server: ReplayServer, bridge: BridgeServer) -> None:
    final = await helper_async(bridged(server, bridge, REASONING), REASONING.model)
    message = final.choices[0].message
    assert message.model_extra["reasoning_content"].startswith("Hmm")
    assert message.content and final.choices[0].finish_reason == "stop"
    assert final.usage.completion_tokens_details.reasoning_tokens == 198


# --- create(stream=True) ---------------------------------------------------------------------


@pytest.mark.parametrize("case", [TEXT, TOOL_CALL, PARALLEL_TOOL_CALLS], ids=IDS[:3])
def test_create_sync_chunks_are_openais(
    server: ReplayServer, bridge: BridgeServer, case: Case
) -> None:
    """OpenAI's own transcripts: chunk for chunk the same, as the SDK types them."""
    expected, expected_final = create_sync(direct(server, case), case.model)
    got, final = create_sync(bridged(server, bridge, case), case.model)
    assert [chunk_view(c) for c in got] == [chunk_view(c) for c in expected]
    assert completion_view(final) == completion_view(expected_final)


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_create_async_accumulates_to_the_providers(
    server: ReplayServer, bridge: BridgeServer, case: Case
) -> None:
    _, expected = await create_async(direct(server, case), case.model)
    got, final = await create_async(bridged(server, bridge, case), case.model)
    assert completion_view(final) == completion_view(expected)
    assert all(c.object == "chat.completion.chunk" for c in got)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_create_usage_comes_alone_in_a_last_chunk_without_choices(
    server: ReplayServer, bridge: BridgeServer, case: Case
) -> None:
    """As OpenAI sends it with ``stream_options.include_usage``: even DeepSeek's usage, which
    arrives on its finish chunk."""
    chunks, _ = create_sync(bridged(server, bridge, case), case.model)
    *body, last = chunks
    assert last.choices == [] and last.usage is not None and last.usage.total_tokens > 0
    assert all(c.usage is None and c.choices for c in body)
    assert body[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in body].count(None) == len(body) - 1


# --- errors ----------------------------------------------------------------------------------


def test_error_mid_stream_sync(server: ReplayServer, bridge: BridgeServer) -> None:
    """The provider's own error chunk makes the SDK raise; through rxllm it raises too, with
    the same message (and rxllm's typed error in its body)."""
    with pytest.raises(openai.APIError, match="Token limit reached"):
        helper_sync(direct(server, MIDSTREAM_ERROR), MIDSTREAM_ERROR.model)
    with pytest.raises(openai.APIError, match="Token limit reached") as caught:
        helper_sync(bridged(server, bridge, MIDSTREAM_ERROR), MIDSTREAM_ERROR.model)
    assert caught.value.body["type"] == "BadRequestError"  # type: ignore[index]
    assert caught.value.body["provider"] == "openrouter"  # type: ignore[index]
    with pytest.raises(openai.APIError, match="Token limit reached"):
        create_sync(bridged(server, bridge, MIDSTREAM_ERROR), MIDSTREAM_ERROR.model)


async def test_error_mid_stream_async(server: ReplayServer, bridge: BridgeServer) -> None:
    with pytest.raises(openai.APIError, match="Token limit reached"):
        await helper_async(bridged(server, bridge, MIDSTREAM_ERROR), MIDSTREAM_ERROR.model)
    with pytest.raises(openai.APIError, match="Token limit reached"):
        await create_async(bridged(server, bridge, MIDSTREAM_ERROR), MIDSTREAM_ERROR.model)


def test_connection_lost_upstream_mid_tool_call(server: ReplayServer, bridge: BridgeServer) -> None:
    """The upstream connection drops half-way through the arguments: the SDK raises rxllm's
    StreamTruncatedError message instead of returning a cut-off tool call."""
    body = fixture_bytes(TOOL_CALL.fixture)
    cut = [i for i in range(len(body)) if body.startswith(b'"arguments"', i)][3]
    server.queue(Reply(body=body, drop_after=cut, piece=97))
    bridge.upstream = ("openai", server.base + "/v1")
    with pytest.raises(openai.APIError, match="the connection broke mid-response") as caught:
        helper_sync(bridge.base, "gpt-4o")
    assert caught.value.body["type"] == "StreamTruncatedError"  # type: ignore[index]


# --- other providers: the SDK reads what rxllm read ------------------------------------------

NATIVE = [
    Case("anthropic/stream_tool_use.sse", "anthropic", "claude-sonnet-4-5"),
    Case("anthropic/stream_thinking.sse", "anthropic", "claude-sonnet-4-5"),
    Case("gemini/stream_thinking.sse", "gemini", "gemini-2.5-pro"),
    Case("gemini/stream_function_call_thought_signature.sse", "gemini", "gemini-2.5-pro"),
]


@pytest.mark.parametrize("case", NATIVE, ids=lambda case: case.fixture)
def test_other_providers_reach_the_sdk_as_rxllm_assembles_them(
    server: ReplayServer, bridge: BridgeServer, case: Case
) -> None:
    """Streams OpenAI never wrote - Anthropic's usage on ``message_delta``, Gemini's usage on
    every event, thinking blocks, several tool calls - accumulate in the SDK to rxllm's own
    answer: nothing lost or doubled on the way."""
    server.queue(Reply(body=fixture_bytes(case.fixture), piece=97))
    expected = rxllm.streaming.collect_sync(
        rxllm.completion(
            case.provider,
            case.model,
            messages=QUESTION,
            stream=True,
            api_key=API_KEY,
            api_base=server.base,
        ),
        timeout=10,
    )
    bridge.upstream = (case.provider, server.base)
    server.queue(Reply(body=fixture_bytes(case.fixture), piece=97))
    final = helper_sync(bridge.base, case.model)
    (choice,) = final.choices
    message = choice.message
    assert message.role == "assistant" and choice.finish_reason == expected.finish_reason
    assert (message.content or "") == expected.text
    assert (message.model_extra or {}).get("reasoning_content") == expected.reasoning_content
    calls = [
        (c.id, c.type, c.function.name, c.function.arguments) for c in message.tool_calls or []
    ]
    assert calls == [
        (c.id, "function", c.function.name, c.function.arguments) for c in expected.tool_calls
    ]
    assert expected.usage is not None and final.usage is not None
    assert final.usage.total_tokens == expected.usage.total_tokens
    assert final.usage.completion_tokens == expected.usage.completion_tokens


def chunk(delta: Delta, finish: str | None = None, usage: Usage | None = None) -> ChatChunk:
    choice = StreamChoice(delta=delta, finish_reason=finish)
    return ChatChunk(id="c1", created=7, model="m", provider="p", choices=[choice], usage=usage)


def test_what_a_provider_module_leaves_out_is_written(bridge: BridgeServer) -> None:
    """No ``role`` on the first delta, no ``type`` on the fragment that opens a call, usage on
    a chunk before the last: the bridge writes them as OpenAI does, and the SDK's final
    completion has the role, the call and the usage."""
    opening = ToolCallDelta(index=0, id="t1", function=FunctionCallDelta(name="f", arguments=""))
    rest = ToolCallDelta(index=0, function=FunctionCallDelta(arguments='{"a": 1}'))
    shared = chunk(Delta(content="hi "))
    bridge.chunks = [
        shared,
        chunk(Delta(tool_calls=[opening])),
        chunk(Delta(tool_calls=[rest]), usage=Usage(prompt_tokens=3, completion_tokens=4)),
        chunk(Delta(), finish="tool_calls"),
    ]
    final = helper_sync(bridge.base, "m")
    (choice,) = final.choices
    assert choice.message.role == "assistant" and choice.message.content == "hi "
    (call,) = choice.message.tool_calls
    assert (call.id, call.type, call.function.name, call.function.arguments) == (
        "t1",
        "function",
        "f",
        '{"a": 1}',
    )
    assert choice.finish_reason == "tool_calls"
    assert final.usage is not None and final.usage.completion_tokens == 4
    assert shared.choices[0].delta.role is None  # the chunks themselves are left as they were
    assert opening.type is None


def thinking(text: str) -> dict[str, Any]:
    return {"thinking_blocks": [{"type": "thinking", "thinking": text, "signature": "sig"}]}


def test_provider_fields_of_several_chunks_reach_the_sdk_once(bridge: BridgeServer) -> None:
    """Two signed thinking blocks (Anthropic, interleaved thinking) come as two chunks with
    ``provider_fields``: the SDK, which accumulates every delta key, raised on the second
    list without ``index``. They arrive merged on the finish chunk, as rxllm merges them."""
    bridge.chunks = [
        chunk(Delta(role="assistant", reasoning_content="a")),
        chunk(Delta(provider_fields=thinking("a"))),
        chunk(Delta(reasoning_content="b")),
        chunk(Delta(provider_fields=thinking("b"))),
        chunk(Delta(content="answer")),
        chunk(Delta(), finish="stop", usage=Usage(prompt_tokens=1, completion_tokens=2)),
    ]
    final = helper_sync(bridge.base, "m")
    message = final.choices[0].message
    assert message.content == "answer" and message.model_extra["reasoning_content"] == "ab"
    blocks = message.model_extra["provider_fields"]["thinking_blocks"]
    assert [block["thinking"] for block in blocks] == ["a", "b"]
    expected = rxllm.streaming.collect_sync(reactivex.from_iterable(bridge.chunks), timeout=10)
    assert expected.message is not None
    assert message.model_extra["provider_fields"] == expected.message.provider_fields


async def test_rxllm_reads_the_bridge_back_as_it_was(
    server: ReplayServer, bridge: BridgeServer
) -> None:
    """rxllm's OpenAI module reading the bridge assembles the answer rxllm assembled from the
    provider: thinking blocks, signature, text, usage."""
    case = Case("anthropic/stream_thinking.sse", "anthropic", "claude-sonnet-4-5")
    server.queue(Reply(body=fixture_bytes(case.fixture), piece=97))
    original = await rxllm.streaming.collect(
        await rxllm.acompletion(
            case.provider,
            case.model,
            messages=QUESTION,
            stream=True,
            api_key=API_KEY,
            api_base=server.base,
        )
    )
    bridge.upstream = (case.provider, server.base)
    server.queue(Reply(body=fixture_bytes(case.fixture), piece=97))
    relayed = await rxllm.streaming.collect(
        await rxllm.acompletion(
            "openai",
            case.model,
            messages=QUESTION,
            stream=True,
            api_key="sk-bridge",
            api_base=bridge.base,
        )
    )
    assert relayed.message == original.message and relayed.usage == original.usage
    assert original.message is not None and original.message.provider_fields
