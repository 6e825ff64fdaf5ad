"""`rxllm serve` as a server: heartbeats, disconnects, draining, keys and budgets, metrics,
limits, config errors, `--mock` and `--workers`, over real HTTP to a real subprocess."""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from ..server import ReplayServer
from .conftest import MASTER, ROOT, Gateway, config_for, decoded, sse_events, write_config

pytestmark = pytest.mark.timeout(90)

USER = [{"role": "user", "content": "hello"}]


async def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers=headers) as response,
    ):
        return response.status, await response.read()


# --- streams -----------------------------------------------------------------------------------


async def test_heartbeats_flow_while_the_upstream_is_silent(
    gateway: Gateway, upstream: ReplayServer
) -> None:
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "stall"}]}
    async with (
        aiohttp.ClientSession() as session,
        session.post(gateway.url("/v1/chat/completions"), json=body) as response,
    ):
        assert response.status == 200  # committed at the first heartbeat (0.5 s here)
        seen = b""
        async with asyncio.timeout(10) if sys.version_info >= (3, 11) else _nothing():
            while seen.count(b": keep-alive\n\n") < 3:
                seen += await response.content.readany()
    assert b"data:" not in seen  # nothing but heartbeats: the upstream sent no chunk
    assert upstream.disconnected.wait(10)  # leaving cancelled the upstream request


class _nothing:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *_: object) -> None:
        return None


async def test_a_client_that_leaves_cancels_the_upstream(
    gateway: Gateway, upstream: ReplayServer
) -> None:
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "slow"}]}
    async with (
        aiohttp.ClientSession() as session,
        session.post(gateway.url("/v1/chat/completions"), json=body) as response,
    ):
        first = await response.content.readline()
        assert first.startswith(b"data: ")
    assert upstream.disconnected.wait(10)
    assert not upstream.completed.is_set()


async def test_chunks_are_not_held_back(gateway: Gateway, upstream: ReplayServer) -> None:
    """Each upstream chunk reaches the client before the next one is sent (no buffering):
    the slow upstream paces 60-byte pieces 50 ms apart; the client sees events arrive apart."""
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "slow"}]}
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []
    async with (
        aiohttp.ClientSession() as session,
        session.post(gateway.url("/v1/chat/completions"), json=body) as response,
    ):
        while len(arrivals) < 12:
            line = await response.content.readline()
            if line.startswith(b"data: {"):
                arrivals.append(loop.time())
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert sum(1 for gap in gaps if gap > 0.02) >= 6, gaps


async def test_a_slow_client_holds_the_upstream_back(
    gateway: Gateway, upstream: ReplayServer
) -> None:
    """A client that stops reading stops the upstream's writes (TCP flow control all the way
    back), instead of the gateway reading the whole answer into memory (docs/contracts.md, 6)."""
    from .conftest import flood

    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "flood"}]}
    async with (
        aiohttp.ClientSession() as session,
        session.post(gateway.url("/v1/chat/completions"), json=body) as response,
    ):
        assert (await response.content.readline()).startswith(b"data: ")
        # Read in full at the gateway's pace, the answer would be sent within a second; held
        # back, the upstream never gets to its end while this client does not read.
        assert not await asyncio.to_thread(upstream.completed.wait, 4)
        assert upstream.write_blocked.is_set()
        assert upstream.written < len(flood()) / 2
    assert await asyncio.to_thread(upstream.disconnected.wait, 10)


async def test_malformed_bodies_are_400s(gateway: Gateway, upstream: ReplayServer) -> None:
    url = gateway.url("/v1/chat/completions")
    async with aiohttp.ClientSession() as session:
        for data in (b"not json", b"[1, 2]", b"", b'{"model": 3, "messages": []}'):
            async with session.post(url, data=data) as response:
                assert response.status == 400, data
                error = (await response.json())["error"]
                assert error["type"] == "invalid_request_error"
    status, raw = await post(url, {"messages": USER})
    assert status == 400
    assert json.loads(raw)["error"]["param"] == "model"
    status, raw = await post(gateway.url("/v1/messages"), {"model": "claude", "messages": USER})
    assert status == 400
    assert json.loads(raw)["type"] == "error"
    assert "max_tokens" in json.loads(raw)["error"]["message"]


async def test_request_size_limit(tmp_path: Path, upstream: ReplayServer) -> None:
    config = write_config(tmp_path / "c.yaml", config_for(upstream, max_request_size_mb=0.01))
    process = Gateway(["--config", str(config)], cwd=tmp_path)
    try:
        big = [{"role": "user", "content": "x" * 20_000}]
        status, raw = await post(
            process.url("/v1/chat/completions"), {"model": "gpt-4o", "messages": big}
        )
        assert status == 413
        assert json.loads(raw)["error"]["code"] == "request_too_large"
    finally:
        assert process.stop() == 0


# --- health and metrics ---------------------------------------------------------------------


async def test_health_and_metrics(gateway: Gateway, upstream: ReplayServer) -> None:
    client = openai.OpenAI(base_url=gateway.url("/v1"), api_key="x", max_retries=0)
    list(client.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    async with aiohttp.ClientSession() as session:
        async with session.get(gateway.url("/health/liveliness")) as response:
            assert response.status == 200
        async with session.get(gateway.url("/health/readiness")) as response:
            assert response.status == 200
            assert (await response.json())["status"] == "healthy"
        async with session.get(gateway.url("/metrics")) as response:
            text = await response.text()
    assert (
        'rxllm_requests_total{endpoint="/v1/chat/completions",model="gpt-4o",status="200"}' in text
    )
    assert 'rxllm_time_to_first_token_seconds_count{model="gpt-4o"}' in text
    assert "rxllm_chunk_interval_seconds_bucket" in text
    assert 'rxllm_tokens_total{kind="completion",model="gpt-4o"}' in text
    assert "rxllm_open_streams" in text


# --- keys and spend -----------------------------------------------------------------------------


async def test_keys_budgets_and_limits(keyed_gateway: Gateway, upstream: ReplayServer) -> None:
    gateway = keyed_gateway
    master = {"Authorization": f"Bearer {MASTER}"}
    # No key, a wrong key: 401 in OpenAI's words.
    denied = openai.OpenAI(base_url=gateway.url("/v1"), api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        denied.chat.completions.create(model="gpt-4o", messages=USER)
    status, _ = await post(
        gateway.url("/v1/chat/completions"), {"model": "gpt-4o", "messages": USER}
    )
    assert status == 401
    # A key with a tiny budget: the first request spends it, the next is refused.
    status, raw = await post(
        gateway.url("/key/generate"), {"models": ["gpt-4o"], "max_budget": 1e-9}, master
    )
    assert status == 200, raw
    key = json.loads(raw)["key"]
    client = openai.OpenAI(base_url=gateway.url("/v1"), api_key=key, max_retries=0)
    list(client.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    async with (
        aiohttp.ClientSession() as session,
        session.get(gateway.url("/key/info"), params={"key": key}, headers=master) as response,
    ):
        info = await response.json()
    assert info["info"]["spend"] > 0
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=USER)
    assert "budget" in caught.value.message.lower()
    # A model the key may not use.
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(model="claude", messages=USER)
    assert refused.value.status_code in (401, 403)
    # rpm_limit 1: the second request within the minute is a 429.
    status, raw = await post(gateway.url("/key/generate"), {"rpm_limit": 1}, master)
    limited = openai.OpenAI(
        base_url=gateway.url("/v1"), api_key=json.loads(raw)["key"], max_retries=0
    )
    limited.chat.completions.create(model="gpt-4o", messages=USER)
    with pytest.raises(openai.RateLimitError):
        limited.chat.completions.create(model="gpt-4o", messages=USER)
    # Deleted: refused.
    status, raw = await post(gateway.url("/key/delete"), {"keys": [key]}, master)
    assert status == 200
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gpt-4o", messages=USER)
    # The master key itself works, and only the master key manages keys.
    boss = openai.OpenAI(base_url=gateway.url("/v1"), api_key=MASTER, max_retries=0)
    assert boss.chat.completions.create(model="gpt-4o", messages=USER).choices
    status, _ = await post(gateway.url("/key/generate"), {}, {"Authorization": "Bearer sk-x"})
    assert status == 401


async def test_streamed_spend_is_counted(keyed_gateway: Gateway, upstream: ReplayServer) -> None:
    master = {"x-api-key": MASTER}
    _status, raw = await post(keyed_gateway.url("/key/generate"), {"max_budget": 100}, master)
    key = json.loads(raw)["key"]
    client = openai.OpenAI(base_url=keyed_gateway.url("/v1"), api_key=key, max_retries=0)
    list(client.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    client.chat.completions.create(model="gpt-4o", messages=USER)
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            keyed_gateway.url("/key/info"), params={"key": key}, headers=master
        ) as response,
    ):
        spend = (await response.json())["info"]["spend"]
    # Each answer at the price table's rates for the model the upstream says answered.
    from rxllm.pricing import calculate_cost

    events = decoded(_fixture("openai/stream_text_usage.sse"))
    streamed = next(e for e in reversed(events) if e.get("usage"))
    whole = json.loads(_fixture("openai/response_text.json"))
    expected = sum(
        calculate_cost(
            "openai", r["model"], r["usage"]["prompt_tokens"], r["usage"]["completion_tokens"]
        )
        or 0
        for r in (streamed, whole)
    )
    assert expected > 0
    assert spend == pytest.approx(expected, rel=1e-9)


async def test_a_stream_cut_short_is_billed_an_estimate(
    keyed_gateway: Gateway, upstream: ReplayServer
) -> None:
    """The client leaves before the upstream's usage came: the key is billed the prompt's
    estimated tokens and a token per 4 characters streamed, not nothing."""
    master = {"x-api-key": MASTER}
    _, raw = await post(keyed_gateway.url("/key/generate"), {}, master)
    key = json.loads(raw)["key"]
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "slow"}]}
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            keyed_gateway.url("/v1/chat/completions"), json=body, headers=headers
        ) as response:
            lines = 0
            while lines < 3:
                lines += (await response.content.readline()).startswith(b"data: ")
        assert await asyncio.to_thread(upstream.disconnected.wait, 10)
        info: dict[str, Any] = {}
        for _ in range(100):  # the gateway records the spend as it unwinds the handler
            async with session.get(
                keyed_gateway.url("/key/info"), params={"key": key}, headers=master
            ) as answer:
                info = (await answer.json())["info"]
            if info["spend"] > 0:
                break
            await asyncio.sleep(0.05)
    assert info["spend"] > 0
    assert info["completion_tokens"] >= 1
    assert info["prompt_tokens"] >= 1


def _fixture(name: str) -> bytes:
    from ..conftest import fixture_bytes

    return fixture_bytes(name)


# --- draining --------------------------------------------------------------------------------


async def test_sigterm_lets_open_streams_finish(tmp_path: Path, upstream: ReplayServer) -> None:
    config = write_config(tmp_path / "c.yaml", config_for(upstream, drain_seconds=30))
    process = Gateway(["--config", str(config)], cwd=tmp_path)
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "paced"}]}
    async with (
        aiohttp.ClientSession() as session,
        session.post(process.url("/v1/chat/completions"), json=body) as response,
    ):
        assert (await response.content.readline()).startswith(b"data: ")
        process.terminate()
        rest = await response.read()
    events = sse_events(rest)
    assert events[-1] == (None, "[DONE]")
    assert len(events) == 40  # the 39 chunks after the first, and [DONE]
    assert await asyncio.to_thread(process.stop) == 0


async def test_sigterm_cancels_streams_after_the_grace_period(
    tmp_path: Path, upstream: ReplayServer
) -> None:
    config = write_config(tmp_path / "c.yaml", config_for(upstream, drain_seconds=3))
    process = Gateway(["--config", str(config)], cwd=tmp_path)
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "stall"}]}
    async with (
        aiohttp.ClientSession() as session,
        session.post(process.url("/v1/chat/completions"), json=body) as response,
    ):
        assert await response.content.readline()  # a heartbeat: the stream is open
        process.terminate()
        # Draining: new connections are refused while the open stream goes on.
        refused = False
        for _ in range(100):
            try:
                async with (
                    aiohttp.ClientSession() as other,
                    other.get(process.url("/health/liveliness")),
                ):
                    pass
            except aiohttp.ClientConnectionError:
                refused = True
                break
            await asyncio.sleep(0.02)  # until the signal is handled
        assert refused
        rest = await response.read()
    events = sse_events(rest)
    assert events[-1][0] == "error"
    assert json.loads(events[-1][1])["error"]["code"] == "shutdown"
    assert upstream.disconnected.wait(10)
    assert await asyncio.to_thread(process.stop) == 0


# --- config errors, --mock, --workers -----------------------------------------------------------


def run_serve(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rxllm", "serve", "--port", "0", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )


def test_config_mistakes_stop_the_start(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "model_list:\n  - model_name: x\n    litellm_params:\n      model: openai/gpt-4o\n"
        "      rpm: ten\n      api_key: sk-secret-value\n"
    )
    result = run_serve("--config", str(bad), cwd=tmp_path)
    assert result.returncode == 2
    assert "rpm" in result.stderr
    assert "sk-secret-value" not in result.stderr
    assert "listening" not in result.stderr
    missing = run_serve("--config", str(tmp_path / "none.yaml"), cwd=tmp_path)
    assert missing.returncode == 2


async def test_mock_needs_no_config(tmp_path: Path) -> None:
    process = Gateway(["--mock"], cwd=tmp_path)
    try:
        client = openai.AsyncOpenAI(base_url=process.url("/v1"), api_key="x", max_retries=0)
        stream = await client.chat.completions.create(
            model="mock/anything",
            messages=[{"role": "user", "content": "echo me back"}],
            stream=True,
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "echo me back"
        reply = await client.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "any name works"}],
            extra_body={"mock_response": "Scripted."},
        )
        assert reply.choices[0].message.content == "Scripted."
        await client.close()
        # Anthropic's client, thinking on: the mock takes no `thinking`, so it gets the
        # budget as a reasoning_effort, and the answer streams in Anthropic's events.
        claude = anthropic.AsyncAnthropic(base_url=process.url(""), api_key="x", max_retries=0)
        async with claude.messages.stream(
            model="mock/claude",
            max_tokens=2000,
            messages=[{"role": "user", "content": "think twice"}],
            thinking={"type": "enabled", "budget_tokens": 1024},
        ) as stream:
            text = "".join([piece async for piece in stream.text_stream])
        assert text == "think twice"
        await claude.close()
        assert "open to anyone" in process.stderr
    finally:
        assert process.stop() == 0


async def test_two_workers_serve_one_port(tmp_path: Path, upstream: ReplayServer) -> None:
    config = write_config(tmp_path / "c.yaml", config_for(upstream))
    process = Gateway(["--config", str(config), "--workers", "2"], cwd=tmp_path)
    try:
        client = openai.AsyncOpenAI(base_url=process.url("/v1"), api_key="x", max_retries=0)
        replies = await asyncio.gather(
            *[client.chat.completions.create(model="gpt-4o", messages=USER) for _ in range(20)]
        )
        assert all(r.choices[0].message.content for r in replies)
        await client.close()
        async with (
            aiohttp.ClientSession() as session,
            session.get(process.url("/metrics")) as response,
        ):
            text = await response.text()
        # Both workers' counts, whichever answered the scrape.
        line = next(
            x
            for x in text.splitlines()
            if x.startswith(
                'rxllm_requests_total{endpoint="/v1/chat/completions",model="gpt-4o",status="200"}'
            )
        )
        assert float(line.split()[-1]) == 20
    finally:
        assert process.stop() == 0


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_either_event_loop_serves(tmp_path: Path, loop: str) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    process = Gateway(["--mock", "--loop", loop], cwd=tmp_path)
    try:
        client = openai.AsyncOpenAI(base_url=process.url("/v1"), api_key="x", max_retries=0)
        stream = await client.chat.completions.create(
            model="mock/m", messages=[{"role": "user", "content": "one two three"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        await client.close()
    finally:
        assert process.stop() == 0
    assert text == "one two three"
