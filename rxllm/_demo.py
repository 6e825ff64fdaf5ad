"""``rxllm demo``: a real stream, offline.

A loopback aiohttp server replays a recorded OpenAI stream (captured from the live API by
openai-python's own tests), paced like a real model. The demo streams it through
``rxllm.completion(..., stream=True)`` and the library's operators, exactly as an application
would talk to api.openai.com: one hot stream, two subscribers, one HTTP request.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from importlib import resources
from typing import TextIO

from aiohttp import web

import rxllm
from rxllm import ops
from rxllm.streaming import collect_sync

QUESTION = "What's the weather like in San Francisco?"


def _transcript(name: str) -> bytes:
    return resources.files("rxllm").joinpath("_data").joinpath(name).read_bytes()


class _ReplayServer:
    """Serves the transcripts on 127.0.0.1 from a thread of its own, one event per ``pace``."""

    def __init__(self, pace: float) -> None:
        self.pace = pace
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    def __enter__(self) -> _ReplayServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *_: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        body = await request.json()
        name = (
            "openai_stream_tool_call_usage.sse"
            if body.get("tools")
            else ("openai_stream_text_usage.sse")
        )
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "x-request-id": "req_demo"}
        )
        await response.prepare(request)
        for event in _transcript(name).split(b"\n\n"):
            if event:
                await response.write(event + b"\n\n")
                await asyncio.sleep(self.pace)
        await response.write_eof()
        return response


def run(pace: float = 0.03, out: TextIO = sys.stdout) -> int:
    """Run the demo; returns the process exit code."""

    def say(text: str = "", end: str = "\n") -> None:
        out.write(text + end)
        out.flush()

    with _ReplayServer(pace) as server:
        base = f"http://127.0.0.1:{server.port}/v1"
        say(f"rxllm demo: a recorded OpenAI stream replayed by a loopback server at {base}\n")
        say(f"User: {QUESTION}")
        say("Assistant: ", end="")

        stream = rxllm.completion(
            "openai",
            "gpt-4o",
            messages=[{"role": "user", "content": QUESTION}],
            stream=True,
            api_key="sk-demo-not-a-real-key",
            api_base=base,
        )
        started = time.perf_counter()
        first_token: list[float] = []

        def show(text: str) -> None:
            if not first_token:
                first_token.append(time.perf_counter() - started)
            say(text, end="")

        # Subscriber 1 prints tokens live; subscriber 2 assembles the whole response.
        # Both share the one HTTP request the first subscription started.
        stream.pipe(ops.extract_content()).subscribe(show)
        response = collect_sync(stream, timeout=60)
        elapsed = time.perf_counter() - started
        say("\n")
        usage = response.usage
        say(f"finish reason : {response.finish_reason}")
        if usage is not None:
            say(
                f"usage         : {usage.prompt_tokens} prompt + {usage.completion_tokens} "
                f"completion = {usage.total_tokens} tokens"
            )
        if first_token:
            say(f"first token   : {first_token[0] * 1000:.0f} ms, whole answer {elapsed:.2f} s")
        say(f"HTTP requests : {server.requests} (two subscribers, one hot stream)")

        say("\nNow with a tool: the same pipeline assembles streamed tool-call arguments.")
        tool_stream = rxllm.completion(
            "openai",
            "gpt-4o",
            messages=[{"role": "user", "content": "Weather in New York City?"}],
            tools=[
                {
                    "type": "function",
                    "function": {
                        "name": "get_weather",
                        "parameters": {
                            "type": "object",
                            "properties": {"city": {"type": "string"}},
                        },
                    },
                }
            ],
            stream=True,
            api_key="sk-demo-not-a-real-key",
            api_base=base,
        )
        tool_response = collect_sync(tool_stream, timeout=60)
        for call in tool_response.tool_calls:
            say(f"tool call     : {call.function.name}({call.function.arguments})")
        say(f"finish reason : {tool_response.finish_reason}")
    ok = response.text.endswith("weather app.") and bool(tool_response.tool_calls)
    return 0 if ok else 1
