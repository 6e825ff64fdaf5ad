"""The upstream of the gateway benchmark: a small, fast OpenAI-compatible server in its own
process. ``python -m benchmarks.gateway.upstream [--port P]`` prints ``PORT <n>`` when ready.

``POST /<profile>/v1/chat/completions`` (and ``/v1/chat/completions``, the default profile).
The profile, in the path so that one config file can name several upstreams by model, is
``n<chunks>-g<gap ms>-t<ms before the first event>`` (any part may be left out; defaults
``n10-g0-t0``), or ``hold``:

* non-streaming: one JSON ``chat.completion`` whose text is the N pieces, after ``t`` ms;
* streaming (``"stream": true``): after ``t`` ms, a role chunk, N content chunks, a finish
  chunk, a ``usage`` chunk when ``stream_options.include_usage`` is true, and ``data: [DONE]``;
  every event is written (and so sent: aiohttp sets TCP_NODELAY) on its own, with ``g`` ms
  between two events;
* ``hold``: a role chunk and one content chunk at once, then one content chunk a second until
  ``POST /hold/release`` (then the finish, usage and ``[DONE]``), for at most ``HOLD_MAX_S``
  seconds. ``POST /hold/reset`` arms it again. The open-streams memory benchmark holds its
  streams open this way for as long as it measures.

Every body is encoded once and cached; nothing is recorded on the hot path.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import re
import time

from aiohttp import web

from ..server import WORDS, text_of

HOLD_GAP_S = 1.0
HOLD_MAX_S = 600.0

_HEAD = (
    '{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1727346168,'
    '"model":"bench","choices":'
)
ROLE = _HEAD + '[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}'
CONTENT = _HEAD + '[{"index":0,"delta":{"content":%s},"finish_reason":null}]}'
FINISH = _HEAD + '[{"index":0,"delta":{},"finish_reason":"stop"}]}'
USAGE = _HEAD + '[],"usage":{"prompt_tokens":14,"completion_tokens":%d,"total_tokens":%d}}'

_STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')
_INCLUDE_USAGE = re.compile(rb'"include_usage"\s*:\s*true')
_SETTING = re.compile(r"([a-z])(\d+)")

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


def _event(data: str) -> bytes:
    return f"data: {data}\n\n".encode()


@functools.lru_cache(maxsize=64)
def stream_events(n: int) -> tuple[bytes, tuple[bytes, ...], bytes, bytes]:
    """(role event, N content events, finish event, usage event); ``[DONE]`` follows."""
    content = tuple(_event(CONTENT % json.dumps(WORDS[i % len(WORDS)])) for i in range(n))
    return _event(ROLE), content, _event(FINISH), _event(USAGE % (n, n + 14))


@functools.lru_cache(maxsize=64)
def response(n: int) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1727346168,
            "model": "bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text_of(n)},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 14, "completion_tokens": n, "total_tokens": n + 14},
        },
        separators=(",", ":"),
    ).encode()


DONE = b"data: [DONE]\n\n"


@functools.lru_cache(maxsize=64)
def profile(name: str) -> tuple[int, float, float]:
    """(N, gap in seconds, seconds before the first event) of a profile name."""
    values = dict(_SETTING.findall(name))
    return int(values.get("n", 10)), int(values.get("g", 0)) / 1000, int(values.get("t", 0)) / 1000


class Upstream:
    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        name = request.match_info.get("profile", "")
        if name == "hold":
            return await self.hold(request, body)
        n, gap, first = profile(name)
        if first:
            await asyncio.sleep(first)
        if not _STREAM_TRUE.search(body):
            return web.Response(body=response(n), content_type="application/json")
        role, content, finish, usage = stream_events(n)
        resp = web.StreamResponse(headers=SSE_HEADERS)
        await resp.prepare(request)
        events = [role, *content, finish]
        if _INCLUDE_USAGE.search(body):
            events.append(usage)
        events.append(DONE)
        for i, event in enumerate(events):
            if gap and i:
                await asyncio.sleep(gap)
            await resp.write(event)
        await resp.write_eof()
        return resp

    async def hold(self, request: web.Request, body: bytes) -> web.StreamResponse:
        role, content, finish, _usage = stream_events(len(WORDS))
        resp = web.StreamResponse(headers=SSE_HEADERS)
        await resp.prepare(request)
        await resp.write(role)
        await resp.write(content[0])
        sent = 1
        deadline = time.monotonic() + HOLD_MAX_S
        while not self.release.is_set() and time.monotonic() < deadline:
            try:
                await asyncio.wait_for(self.release.wait(), HOLD_GAP_S)
            except asyncio.TimeoutError:
                await resp.write(content[sent % len(content)])
                sent += 1
        await resp.write(finish)
        if _INCLUDE_USAGE.search(body):
            await resp.write(_event(USAGE % (sent, sent + 14)))
        await resp.write(DONE)
        await resp.write_eof()
        return resp

    async def hold_release(self, request: web.Request) -> web.Response:
        self.release.set()
        return web.json_response({"released": True})

    async def hold_reset(self, request: web.Request) -> web.Response:
        self.release.clear()
        return web.json_response({"released": False})


def app() -> web.Application:
    upstream = Upstream()
    application = web.Application()
    application.router.add_post("/hold/release", upstream.hold_release)
    application.router.add_post("/hold/reset", upstream.hold_reset)
    application.router.add_post("/v1/chat/completions", upstream.chat)
    application.router.add_post("/{profile}/v1/chat/completions", upstream.chat)
    return application


async def main(port: int) -> None:
    runner = web.AppRunner(app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    sockets = site._server.sockets  # type: ignore[union-attr]
    print("PORT", sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    port = parser.parse_args().port
    try:
        import uvloop
    except ImportError:
        asyncio.run(main(port))
    else:
        uvloop.run(main(port))


if __name__ == "__main__":
    run()
