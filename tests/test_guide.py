"""The README's "Streaming guide" section, executed.

Each ```python block of that section is one example of the guide. It runs here as a user would
run it - with ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` set, the latter pointing at a loopback
server replaying recorded OpenAI streams - and its output is checked against what a person
reads in the transcript. The server answers by the question asked: "long essay" gets a slow,
endless-looking stream, "fail" a 429, anything else the recorded weather answer.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from rxllm.streaming import extract_content

from .conftest import API_KEY, fixture_bytes
from .server import Recorded, ReplayServer, Reply, sse
from .test_sse_bridge import serve, serve_starlette

README = Path(__file__).parent.parent / "README.md"
TEXT = (
    "I'm unable to provide real-time weather updates. To get the current weather in San "
    "Francisco, I recommend checking a reliable weather website or a weather app."
)


def guide_blocks() -> list[tuple[str, str]]:
    """(heading, code) of every python block of the README's "Streaming guide" section."""
    text = README.read_text()
    section = text[text.index("\n## Streaming guide") :]
    section = section[: section.index("\n## ", 1)]
    blocks: list[tuple[str, str]] = []
    heading = ""
    for part in re.split(r"(```python\n.*?```)", section, flags=re.S):
        if part.startswith("```python"):
            blocks.append((heading, part[len("```python\n") : -3]))
        else:
            headings = re.findall(r"^#+ (.+)$", part, flags=re.M)
            if headings:
                heading = headings[-1]
    return blocks


def slow_essay() -> bytes:
    return sse(
        *[
            f'{{"id":"c","choices":[{{"index":0,"delta":{{"content":"w{i} "}}}}]}}'
            for i in range(400)
        ]
    )


def respond(request: Recorded) -> Reply:
    question = request.json()["messages"][-1]["content"]
    if "long essay" in question:
        return Reply(body=slow_essay(), piece=60, delay=0.02)
    if "fail" in question:
        return Reply(
            status=429,
            body=b'{"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}}',
        )
    return Reply(body=fixture_bytes("openai/stream_text_usage.sse"), piece=200, delay=0.002)


@pytest.fixture
def guide_env(server: ReplayServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[ReplayServer]:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base + "/v1")
    monkeypatch.setenv("RXLLM_TOKENIZER", "heuristic")
    server.responder = respond
    yield server


def run_block(code: str, capsys: pytest.CaptureFixture[str]) -> tuple[str, dict[str, Any]]:
    namespace: dict[str, Any] = {"__name__": "__guide__"}
    exec(compile(code, "README.md", "exec"), namespace)
    return capsys.readouterr().out, namespace


# --- what each example must show ------------------------------------------------------------


def basic_streaming(out: str, ns: dict[str, Any], server: ReplayServer) -> None:
    assert out == TEXT + "\n"
    assert len(server.requests) == 1


def asyncio_streaming(out: str, ns: dict[str, Any], server: ReplayServer) -> None:
    assert out == TEXT + "\n"


def utilities(out: str, ns: dict[str, Any], server: ReplayServer) -> None:
    assert out == TEXT + "\nStream complete!\nTrue 44\nstop\n"
    assert len(server.requests) == 1  # consume, collect_sync and ops.collect shared one request


def cli(out: str, ns: dict[str, Any], server: ReplayServer) -> None:
    assert out == "Assistant:\n" + TEXT + "\n\n"
    assert server.requests[0].json()["messages"] == [
        {"role": "user", "content": "Explain machine learning"}
    ]


async def read_sse(url: str) -> bytes:
    async with aiohttp.ClientSession() as client, client.get(url) as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        return b"".join([data async for data in response.content.iter_any()])


def sse_text(raw: bytes) -> str:
    from rxllm.providers.openai import OpenAIStreamParser
    from rxllm.transport import SSEDecoder

    decoder = SSEDecoder()
    parser = OpenAIStreamParser("bridge", "gpt-4o")
    chunks, error = parser.parse(decoder.feed(raw) + decoder.close())
    assert error is None and parser.done
    return "".join(extract_content(c) or "" for c in chunks)


def web_aiohttp(out: str, ns: dict[str, Any], server: ReplayServer) -> None:
    async def exercise() -> bytes:
        async with serve(ns["app"]) as base:
            return await read_sse(f"{base}/stream?question=Weather%3F")

    raw = asyncio.run(exercise())
    assert raw.endswith(b"data: [DONE]\n\n")
    assert sse_text(raw) == TEXT
    assert server.requests[0].json()["messages"][0]["content"] == "Weather?"


def web_starlette(out: str, ns: dict[str, Any], server: ReplayServer) -> None:
    async def exercise() -> bytes:
        async with serve_starlette(ns["app"]) as base:
            return await read_sse(f"{base}/stream?question=Weather%3F")

    raw = asyncio.run(exercise())
    assert raw.endswith(b"data: [DONE]\n\n") and sse_text(raw) == TEXT


def progressive(out: str, ns: dict[str, Any], server: ReplayServer) -> None:
    assert out == TEXT + "\nTrue True\n"
    assert ns["joke"].redraws == 30  # one per text delta of the transcript
    assert len(server.requests) == 1


def complete_response(out: str, ns: dict[str, Any], server: ReplayServer) -> None:
    assert out == TEXT + "\nstop 14 30\n"


def token_counting(out: str, ns: dict[str, Any], server: ReplayServer) -> None:
    lines = out.split("\n")
    assert lines[0] == TEXT and lines[1] == ""
    # the heuristic (RXLLM_TOKENIZER=heuristic here) counts each of the 30 deltas: 1 token per 4 bytes, rounded up: 49 in all
    assert re.fullmatch(r"Tokens: 49 \| Time: \d+ms \| Tokens/sec: [\d.]+", lines[2]), lines[2]
    assert lines[3] == "reported: 14 prompt + 30 completion tokens, 33 chunks, cost $0.000335"
    assert lines[4] == "0.0075"  # 1,000 * $2.50/M + 500 * $10/M


def cancelling(out: str, ns: dict[str, Any], server: ReplayServer) -> None:
    lines = out.split("\n")
    assert lines[0] == TEXT and lines[1] == "Complete!"
    assert lines[2].startswith("w0 w1 w2 ") and lines[3] == "Timeout!"
    assert lines[4] == (
        "APITimeoutError: the stream took longer than 0.5 s | partial: w0 w1 w2 w3 "
    )
    assert server.disconnected.wait(10)
    assert len(server.requests) == 3


def several_providers(out: str, ns: dict[str, Any], server: ReplayServer) -> None:
    assert out == (
        f"=== fast ===\n{TEXT}\n=== smart ===\n{TEXT}\n"
        f"\n=== fast ===\n{TEXT}\n\n=== smart ===\n{TEXT}\n"
    )
    assert sorted(r.json()["model"] for r in server.requests) == [
        "gpt-4o",
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4o-mini",
    ]


def error_handling(out: str, ns: dict[str, Any], server: ReplayServer) -> None:
    assert out == (
        f"{TEXT}\nSuccess!\n"
        "LLM error: RateLimitError 429 rate_limit_exceeded\n"
        "Setup error: unknown provider 'no-such-provider'\n"
        "['[unavailable: RateLimitError]']\n"
    )
    assert API_KEY not in out


def best_practices(out: str, ns: dict[str, Any], server: ReplayServer) -> None:
    assert out == f"{TEXT}\ndone: stop\nw0 w1 w2 \n"
    assert server.disconnected.wait(10), "leaving the loop did not close the connection"


def performance(out: str, ns: dict[str, Any], server: ReplayServer) -> None:
    text, summary = out.rsplit("\n", 2)[:2]
    assert text == TEXT
    assert re.fullmatch(r"30 tokens, first after \d\.\d{3}s, \$0\.000335", summary), summary
    assert server.requests[0].json()["messages"][0]["content"] == "Write a story"


def troubleshooting(out: str, ns: dict[str, Any], server: ReplayServer) -> None:
    assert out == "pending\ncompleted\n[None, \"I'm\", ' unable']\n"


EXPECTED: list[tuple[str, Callable[[str, dict[str, Any], ReplayServer], None]]] = [
    ("Quick start: basic streaming", basic_streaming),
    ("Quick start: basic streaming", asyncio_streaming),
    ("Streaming utilities", utilities),
    ("CLI application with streaming", cli),
    ("Web application with Server-Sent Events", web_aiohttp),
    ("Web application with Server-Sent Events", web_starlette),
    ("React-style progressive rendering", progressive),
    ("Building the complete response", complete_response),
    ("Streaming with token counting", token_counting),
    ("Cancelling streams", cancelling),
    ("Streaming from several providers", several_providers),
    ("Error handling", error_handling),
    ("Best practices", best_practices),
    ("Performance tips", performance),
    ("Troubleshooting", troubleshooting),
]


def test_every_guide_section_has_its_example() -> None:
    assert [heading for heading, _ in guide_blocks()] == [heading for heading, _ in EXPECTED]


@pytest.mark.parametrize(
    "index",
    range(len(EXPECTED)),
    ids=[f"{i:02d}-{check.__name__}" for i, (_, check) in enumerate(EXPECTED)],
)
def test_guide_example(
    index: int, guide_env: ReplayServer, capsys: pytest.CaptureFixture[str]
) -> None:
    heading, code = guide_blocks()[index]
    assert heading == EXPECTED[index][0]
    out, namespace = run_block(code, capsys)
    EXPECTED[index][1](out, namespace, guide_env)
