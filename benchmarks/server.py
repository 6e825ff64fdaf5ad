"""A loopback OpenAI-format SSE server for benchmarks, run in its own process.

``POST /v1/chat/completions`` with ``{"n_chunks": N}`` in the JSON body (default 200) answers
with N pre-encoded ``chat.completion.chunk`` events, a usage chunk and ``data: [DONE]``,
written in 64 KiB blocks as fast as the socket takes them. ``"stream": false`` answers a
pre-encoded ``chat.completion`` instead. Prints ``PORT <n>`` when ready.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json

from aiohttp import web

CHUNK = (
    '{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1727346168,'
    '"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_5050236cbd","choices":[{"index":0,'
    '"delta":{"content":%s},"logprobs":null,"finish_reason":null}]}'
)
FIRST = (
    '{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1727346168,'
    '"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_5050236cbd","choices":[{"index":0,'
    '"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,'
    '"finish_reason":null}]}'
)
LAST = (
    '{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1727346168,'
    '"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_5050236cbd","choices":[{"index":0,'
    '"delta":{},"logprobs":null,"finish_reason":"stop"}]}'
)
USAGE = (
    '{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1727346168,'
    '"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_5050236cbd","choices":[],'
    '"usage":{"prompt_tokens":14,"completion_tokens":%d,"total_tokens":%d}}'
)
WORDS = ["Hello", " world", ",", " this", " is", " a", " streamed", " token", " é", " 🙂"]
RESPONSE = json.dumps(
    {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": 1727346168,
        "model": "gpt-4o-2024-08-06",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello world", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 14, "completion_tokens": 2, "total_tokens": 16},
    }
).encode()


@functools.lru_cache(maxsize=16)
def stream_body(n: int) -> bytes:
    events = [FIRST]
    events += [CHUNK % json.dumps(WORDS[i % len(WORDS)]) for i in range(n)]
    events += [LAST, USAGE % (n, n + 14)]
    return "".join(f"data: {e}\n\n" for e in events).encode() + b"data: [DONE]\n\n"


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    if not body.get("stream"):
        return web.Response(body=RESPONSE, content_type="application/json")
    data = stream_body(int(body.get("n_chunks", 200)))
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    for start in range(0, len(data), 65536):
        await resp.write(data[start : start + 65536])
    await resp.write_eof()
    return resp


async def main(port: int) -> None:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=2048)
    await site.start()
    sockets = site._server.sockets  # type: ignore[union-attr]
    print("PORT", sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(main(parser.parse_args().port))
