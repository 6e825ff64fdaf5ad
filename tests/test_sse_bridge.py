"""The SSE bridge (``to_sse``, docs/contracts.md, API table): a stream served as
``text/event-stream`` by a real aiohttp server and a real Starlette (uvicorn) server, read back by real SSE clients - rxllm's own
decoder and the official ``openai`` SDK."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web

import rxllm
from rxllm import errors
from rxllm._assemble import assemble
from rxllm.providers.openai import OpenAIStreamParser
from rxllm.streaming import sse_response, sse_streaming_response, to_sse
from rxllm.transport import SSEDecoder
from rxllm.types import ChatChunk

from .conftest import API_KEY, fixture_bytes
from .server import ReplayServer, Reply, sse

TEXT = (
    "I'm unable to provide real-time weather updates. To get the current weather in San "
    "Francisco, I recommend checking a reliable weather website or a weather app."
)


async def upstream(base: str, question: str = "What's the weather?") -> rxllm.ChatStream:
    return await rxllm.acompletion(
        "openai",
        "gpt-4o",
        messages=[{"role": "user", "content": question}],
        stream=True,
        api_key=API_KEY,
        api_base=base,
    )


def bridge_app(upstream_base: str) -> web.Application:
    """An OpenAI-compatible endpoint that relays rxllm streams: the guide's web example."""

    async def chat_completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        stream = await upstream(upstream_base, body["messages"][-1]["content"])
        return await sse_response(request, stream)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat_completions)
    return app


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def parse_sse(raw: bytes) -> tuple[list[ChatChunk], list[Any]]:
    """rxllm's own decoder and OpenAI parser over what the bridge sent."""
    decoder = SSEDecoder()
    events = decoder.feed(raw) + decoder.close()
    errors_seen = [json.loads(e.data) for e in events if e.event == "error"]
    parser = OpenAIStreamParser("bridge", "gpt-4o")
    chunks, error = parser.parse([e for e in events if e.event == "message"])
    assert error is None and parser.done == (not errors_seen)
    return chunks, errors_seen


async def test_to_sse_frames_are_openai_chunks_ending_with_done(
    server: ReplayServer, openai_base: str
) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse"), piece=300))
    frames = [frame async for frame in to_sse(await upstream(openai_base))]
    assert frames[-1] == b"data: [DONE]\n\n"
    assert all(f.startswith(b"data: {") and f.endswith(b"\n\n") for f in frames[:-1])
    first = json.loads(frames[0][6:])
    assert first["object"] == "chat.completion.chunk" and first["model"] == "gpt-4o-2024-08-06"
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    chunks, _ = parse_sse(b"".join(frames))
    response = assemble(chunks)
    assert response.text == TEXT and response.usage is not None
    assert response.usage.total_tokens == 44 and response.finish_reason == "stop"


async def test_to_sse_error_frame_carries_the_summary_never_the_key(
    server: ReplayServer, openai_base: str
) -> None:
    body = fixture_bytes("openai/stream_text_usage.sse")
    server.queue(Reply(body=body, drop_after=body.index(b" weather"), piece=100))
    raw = b"".join([frame async for frame in to_sse(await upstream(openai_base))])
    assert raw.endswith(b"\n\n") and b"[DONE]" not in raw and API_KEY.encode() not in raw
    chunks, (error,) = parse_sse(raw)
    assert assemble(chunks).text == "I'm unable to provide real-time"
    assert error["error"]["type"] == "StreamTruncatedError"
    assert error["error"]["provider"] == "openai" and error["error"]["category"] == "response"
    assert error["error"]["partial_text"] == "I'm unable to provide real-time"


async def test_aiohttp_endpoint_read_by_an_sse_client(
    server: ReplayServer, openai_base: str
) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse"), piece=64, delay=0.001))
    async with serve(bridge_app(openai_base)) as bridge, aiohttp.ClientSession() as client:
        request = {"model": "any", "messages": [{"role": "user", "content": "weather?"}]}
        async with client.post(f"{bridge}/v1/chat/completions", json=request) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/event-stream"
            assert response.headers["Cache-Control"] == "no-cache"
            raw = b"".join([data async for data in response.content.iter_any()])
    chunks, errors_seen = parse_sse(raw)
    assert errors_seen == [] and assemble(chunks).text == TEXT
    assert server.requests[0].json()["messages"] == [{"role": "user", "content": "weather?"}]


async def test_openai_sdk_reads_the_bridge(server: ReplayServer, openai_base: str) -> None:

    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse"), piece=128))
    async with serve(bridge_app(openai_base)) as bridge, openai_client(bridge) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "weather?"}], stream=True
        )
        chunks = [chunk async for chunk in stream]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 44
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


async def test_openai_sdk_raises_the_bridged_error(server: ReplayServer, openai_base: str) -> None:
    import openai

    server.queue(
        Reply(status=429, body=b'{"error":{"message":"slow down","code":"rate_limit_exceeded"}}')
    )
    async with serve(bridge_app(openai_base)) as bridge, openai_client(bridge) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with pytest.raises(openai.APIError, match="slow down") as caught:
            async for _ in stream:
                pass
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "RateLimitError"
    assert caught.value.body["code"] == "rate_limit_exceeded"


def slow_words() -> bytes:
    return sse(
        *[
            f'{{"id":"c","choices":[{{"index":0,"delta":{{"content":"w{i} "}}}}]}}'
            for i in range(400)
        ]
    )


async def read_a_little_then_leave(url: str) -> bytes:
    async with aiohttp.ClientSession() as client:
        request = {"model": "any", "messages": [{"role": "user", "content": "hi"}]}
        async with client.post(url, json=request) as response:
            return await response.content.readuntil(b"\n\n")  # one event, then hang up


async def test_client_leaving_the_aiohttp_bridge_closes_the_upstream(
    server: ReplayServer, openai_base: str
) -> None:
    server.queue(Reply(body=slow_words(), piece=60, delay=0.01))
    async with serve(bridge_app(openai_base)) as bridge:
        first = await read_a_little_then_leave(f"{bridge}/v1/chat/completions")
        assert first.startswith(b"data: {")
        assert await asyncio.to_thread(server.disconnected.wait, 10)
    assert not server.completed.is_set()


@contextlib.asynccontextmanager
async def serve_starlette(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a loopback port, on the running loop."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)  # uvicorn offers no startup event to wait on
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


def starlette_app(upstream_base: str) -> Any:
    from starlette.applications import Starlette
    from starlette.routing import Route

    async def chat_completions(request: Any) -> Any:
        body = await request.json()
        stream = await upstream(upstream_base, body["messages"][-1]["content"])
        return sse_streaming_response(stream)

    return Starlette(routes=[Route("/v1/chat/completions", chat_completions, methods=["POST"])])


@contextlib.asynccontextmanager
async def openai_client(bridge: str) -> AsyncIterator[Any]:
    import openai

    client = openai.AsyncOpenAI(base_url=f"{bridge}/v1", api_key="sk-bridge", max_retries=0)
    try:
        yield client
    finally:
        await client.close()


async def test_starlette_endpoint_read_by_the_openai_sdk(
    server: ReplayServer, openai_base: str
) -> None:

    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse"), piece=128))
    async with (
        serve_starlette(starlette_app(openai_base)) as bridge,
        openai_client(bridge) as client,
    ):
        stream = await client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == TEXT


async def test_client_leaving_the_starlette_bridge_closes_the_upstream(
    server: ReplayServer, openai_base: str
) -> None:
    server.queue(Reply(body=slow_words(), piece=60, delay=0.01))
    async with serve_starlette(starlette_app(openai_base)) as bridge:
        first = await read_a_little_then_leave(f"{bridge}/v1/chat/completions")
        assert msgspec.json.decode(first[6:].strip())["choices"][0]["delta"]["content"] == "w0 "
        assert await asyncio.to_thread(server.disconnected.wait, 10)
    assert not server.completed.is_set()


def test_fan_out_error_summary_in_an_sse_error_frame() -> None:
    error = errors.FanOutError({"fast": errors.RateLimitError("slow down", code="rl")}, ["smart"])
    summary = errors.error_summary(error)
    assert summary["type"] == "FanOutError" and summary["completed"] == ["smart"]
    assert summary["errors"]["fast"]["code"] == "rl"
    assert summary["message"] == "1 of 2 streams failed (fast: RateLimitError: [rl]: slow down)"
