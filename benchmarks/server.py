"""A loopback LLM server for the benchmarks, in its own process: ``python benchmarks/server.py``.

It serves two wire formats, streaming and not, from bytes encoded once and cached:

* ``POST .../v1/chat/completions`` - OpenAI Chat Completions. Streaming: a role chunk, N
  ``chat.completion.chunk`` content events, a finish chunk, a usage chunk and ``data: [DONE]``.
* ``POST .../v1/messages`` - Anthropic Messages. Streaming: ``message_start``,
  ``content_block_start``, ``ping``, N ``content_block_delta`` (``text_delta``),
  ``content_block_stop``, ``message_delta`` (stop reason and usage), ``message_stop``.

A non-streaming request (no ``"stream": true`` in the body) gets one JSON response whose text
is the same as the stream's. The body is written in 64 KiB blocks as fast as the socket takes
them. Both formats carry the same N text pieces, so every client must produce the same text.

Settings come from an optional path prefix, so that any client that takes a base URL can be
pointed at them: ``/n20000/v1/chat/completions`` streams 20,000 pieces (default 200);
``/n20-g2/v1/messages`` writes the first content event at once, waits 2 ms, then writes the
rest (for time-to-first-token). A JSON body field ``"n_chunks"`` also sets N. Prints
``PORT <n>`` when ready.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import re

from aiohttp import web

WORDS = ["Hello", " world", ",", " this", " is", " a", " streamed", " token", " é", " 🙂"]
BLOCK = 65536
DEFAULT_CHUNKS = 200

# --- OpenAI Chat Completions ----------------------------------------------------------------

_OPENAI_HEAD = (
    '{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1727346168,'
    '"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_5050236cbd","choices":'
)
OPENAI_FIRST = (
    _OPENAI_HEAD + '[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
    '"logprobs":null,"finish_reason":null}]}'
)
OPENAI_CHUNK = (
    _OPENAI_HEAD + '[{"index":0,"delta":{"content":%s},"logprobs":null,"finish_reason":null}]}'
)
OPENAI_LAST = _OPENAI_HEAD + '[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}'
OPENAI_USAGE = (
    _OPENAI_HEAD + '[],"usage":{"prompt_tokens":14,"completion_tokens":%d,"total_tokens":%d}}'
)

# --- Anthropic Messages (event sequence of a recorded stream, fixtures/anthropic) -----------

ANTHROPIC_START = (
    '{"type":"message_start","message":{"model":"claude-haiku-4-5-20251001",'
    '"id":"msg_01T8kTq7cYyYJeQ5DxcVUc6D","type":"message","role":"assistant","content":[],'
    '"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,'
    '"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":2,'
    '"service_tier":"standard"}}}'
)
ANTHROPIC_BLOCK_START = (
    '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}'
)
ANTHROPIC_PING = '{"type": "ping"}'
ANTHROPIC_DELTA = '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":%s}}'
ANTHROPIC_BLOCK_STOP = '{"type":"content_block_stop","index":0}'
ANTHROPIC_MESSAGE_DELTA = (
    '{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
    '"usage":{"input_tokens":10,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,'
    '"output_tokens":%d}}'
)
ANTHROPIC_STOP = '{"type":"message_stop"}'


def text_of(n: int) -> str:
    """The text every client must assemble from an N-piece answer."""
    return "".join(WORDS[i % len(WORDS)] for i in range(n))


def _pieces(n: int) -> list[str]:
    return [json.dumps(WORDS[i % len(WORDS)]) for i in range(n)]


@functools.lru_cache(maxsize=32)
def openai_stream(n: int) -> tuple[bytes, bytes]:
    """(everything up to and including the first content event, the rest)."""
    events = [OPENAI_FIRST] + [OPENAI_CHUNK % p for p in _pieces(n)]
    events += [OPENAI_LAST, OPENAI_USAGE % (n, n + 14)]
    encoded = [f"data: {e}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]
    return b"".join(encoded[:2]), b"".join(encoded[2:])


@functools.lru_cache(maxsize=32)
def anthropic_stream(n: int) -> tuple[bytes, bytes]:
    """(everything up to and including the first content event, the rest)."""
    events = [
        ("message_start", ANTHROPIC_START),
        ("content_block_start", ANTHROPIC_BLOCK_START),
        ("ping", ANTHROPIC_PING),
    ]
    events += [("content_block_delta", ANTHROPIC_DELTA % p) for p in _pieces(n)]
    events += [
        ("content_block_stop", ANTHROPIC_BLOCK_STOP),
        ("message_delta", ANTHROPIC_MESSAGE_DELTA % n),
        ("message_stop", ANTHROPIC_STOP),
    ]
    encoded = [f"event: {name}\ndata: {data}\n\n".encode() for name, data in events]
    return b"".join(encoded[:4]), b"".join(encoded[4:])


@functools.lru_cache(maxsize=32)
def openai_response(n: int) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1727346168,
            "model": "gpt-4o-2024-08-06",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text_of(n), "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 14, "completion_tokens": n, "total_tokens": n + 14},
            "system_fingerprint": "fp_5050236cbd",
        },
        separators=(",", ":"),
    ).encode()


@functools.lru_cache(maxsize=32)
def anthropic_response(n: int) -> bytes:
    return json.dumps(
        {
            "id": "msg_014pVpaDLxzAdWjwpuN7rQQX",
            "type": "message",
            "role": "assistant",
            "model": "claude-haiku-4-5-20251001",
            "content": [{"type": "text", "text": text_of(n)}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": 13,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": n,
                "service_tier": "standard",
            },
        },
        separators=(",", ":"),
    ).encode()


_STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')
_N_CHUNKS = re.compile(rb'"n_chunks"\s*:\s*(\d+)')
_SETTING = re.compile(r"([a-z])(\d+)")


def settings(request: web.Request, body: bytes) -> tuple[int, float]:
    """(N, seconds to wait after the first content event) from the path prefix or the body."""
    values = dict(_SETTING.findall(request.match_info.get("cfg", "")))
    found = _N_CHUNKS.search(body)
    n = int(values.get("n") or (found.group(1) if found else DEFAULT_CHUNKS))
    return n, int(values.get("g", 0)) / 1000


async def _write_stream(
    request: web.Request, head: bytes, rest: bytes, gap: float
) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)
    if gap:
        await resp.write(head)
        await asyncio.sleep(gap)
        data = rest
    else:
        data = head + rest
    for start in range(0, len(data), BLOCK):
        await resp.write(data[start : start + BLOCK])
    await resp.write_eof()
    return resp


async def chat_completions(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    n, gap = settings(request, body)
    if not _STREAM_TRUE.search(body):
        return web.Response(body=openai_response(n), content_type="application/json")
    return await _write_stream(request, *openai_stream(n), gap)


async def messages(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    n, gap = settings(request, body)
    if not _STREAM_TRUE.search(body):
        return web.Response(
            body=anthropic_response(n),
            content_type="application/json",
            headers={"request-id": "req_bench"},
        )
    return await _write_stream(request, *anthropic_stream(n), gap)


def app() -> web.Application:
    application = web.Application()
    for prefix in ("", "/{cfg}"):
        application.router.add_post(prefix + "/v1/chat/completions", chat_completions)
        application.router.add_post(prefix + "/v1/messages", messages)
    return application


async def main(port: int) -> None:
    runner = web.AppRunner(app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    sockets = site._server.sockets  # type: ignore[union-attr]
    print("PORT", sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="loopback benchmark server")
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
