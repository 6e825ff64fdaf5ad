"""The response cache through `rxllm serve`, configured as LiteLLM's is: a streamed answer is
replayed chunk for chunk, by this instance or another one on the same Redis, and costs nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ..redis_server import RedisServer
from ..server import ReplayServer
from .conftest import MASTER, Gateway, config_for, sse_events, write_config

pytestmark = pytest.mark.timeout(120)

QUESTION = [{"role": "user", "content": "What's the weather like in San Francisco?"}]


def cached_config(upstream: ReplayServer, home: Path, cache_params: dict[str, Any]) -> Path:
    config = config_for(upstream, master_key=MASTER, database_path=str(home / "keys.db"))
    config["litellm_settings"] = {"cache": True, "cache_params": cache_params}
    return write_config(home / "config.yaml", config)


async def stream(
    session: aiohttp.ClientSession, gateway: Gateway, key: str = MASTER
) -> tuple[str, list[str]]:
    """(the x-rxllm-cache header, the data of every event) of one streamed request."""
    async with session.post(
        gateway.url("/v1/chat/completions"),
        json={"model": "gpt-4o", "stream": True, "messages": QUESTION},
        headers={"Authorization": f"Bearer {key}"},
    ) as response:
        assert response.status == 200
        raw = await response.read()
        return response.headers.get("x-rxllm-cache", ""), [d for _, d in sse_events(raw)]


async def test_a_streamed_answer_is_replayed_chunk_for_chunk_and_costs_nothing(
    tmp_path: Path, upstream: ReplayServer
) -> None:
    config = cached_config(upstream, tmp_path, {"type": "local", "ttl": 600})
    gateway = Gateway(["--config", str(config)], cwd=tmp_path)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(
                gateway.url("/key/generate"),
                json={},
                headers={"Authorization": f"Bearer {MASTER}"},
            ) as made:
                key = (await made.json())["key"]
            first_header, first = await stream(session, gateway, key)
            spent = await spend(session, gateway, key)
            second_header, second = await stream(session, gateway, key)
            assert await spend(session, gateway, key) == spent > 0  # the hit cost nothing
            async with session.get(gateway.url("/metrics")) as response:
                metrics = await response.text()
    finally:
        assert gateway.stop() == 0
    assert (first_header, second_header) == ("miss", "hit")
    assert second == first  # every chunk, the same boundaries, then [DONE]
    assert len([r for r in upstream.requests if r.path.endswith("/chat/completions")]) == 1
    assert 'rxllm_cache_requests_total{result="hit"} 1.0' in metrics


async def spend(session: aiohttp.ClientSession, gateway: Gateway, key: str) -> float:
    async with session.get(
        gateway.url("/key/info"), params={"key": key}, headers={"x-api-key": MASTER}
    ) as response:
        return float((await response.json())["info"]["spend"])


async def test_an_answer_computed_through_one_instance_is_replayed_through_another(
    tmp_path: Path, upstream: ReplayServer, redis_server: RedisServer
) -> None:
    homes = [tmp_path / "a", tmp_path / "b"]
    gateways = []
    for home in homes:
        home.mkdir()
        config = cached_config(upstream, home, {"type": "redis", "url": redis_server.url})
        gateways.append(Gateway(["--config", str(config)], cwd=home))
    try:
        async with aiohttp.ClientSession() as session:
            miss, computed = await stream(session, gateways[0])
            hit, replayed = await stream(session, gateways[1])
            async with session.post(
                gateways[1].url("/v1/chat/completions"),
                json={"model": "gpt-4o", "messages": QUESTION},
                headers={"Authorization": f"Bearer {MASTER}"},
            ) as response:
                whole = await response.json()
                whole_header = response.headers["x-rxllm-cache"]
    finally:
        for gateway in gateways:
            assert gateway.stop() == 0
    assert (miss, hit, whole_header) == ("miss", "hit", "hit")
    assert replayed == computed
    text = "".join(
        c["choices"][0]["delta"].get("content") or ""
        for c in (json.loads(d) for d in computed if d != "[DONE]")
        if c["choices"]
    )
    assert whole["choices"][0]["message"]["content"] == text
    assert len([r for r in upstream.requests if r.path.endswith("/chat/completions")]) == 1
