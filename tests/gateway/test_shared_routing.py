"""Several `rxllm serve` processes on one Redis route as one: a deployment's rpm limit holds
across them, a 429 with Retry-After seen by one sends the others elsewhere, and the round trips
to Redis on a request's path are counted (at most two)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ..conftest import fixture_bytes
from ..redis_server import RedisServer
from ..server import Recorded, ReplayServer, Reply
from .conftest import MASTER, UPSTREAM_KEY, Gateway, write_config

pytestmark = pytest.mark.timeout(120)

USER = [{"role": "user", "content": "hello"}]


def two_deployments(upstream: ReplayServer, redis_url: str, **first: Any) -> dict[str, Any]:
    """One model group, two deployments at different paths of the same upstream (/a, /b)."""
    base = upstream.base
    deployment = {"model": "openai/gpt-4o", "api_key": UPSTREAM_KEY}
    return {
        "model_list": [
            {
                "model_name": "gpt-4o",
                "litellm_params": {**deployment, "api_base": base + "/a/v1", **first},
                "model_info": {"id": "a"},
            },
            {
                "model_name": "gpt-4o",
                "litellm_params": {**deployment, "api_base": base + "/b/v1"},
                "model_info": {"id": "b"},
            },
        ],
        "router_settings": {"num_retries": 1, "timeout": 20, "redis_url": redis_url},
        "general_settings": {"master_key": MASTER},
    }


def start_pair(tmp: Path, config: dict[str, Any]) -> list[Gateway]:
    gateways = []
    for name in ("a", "b"):
        home = tmp / name
        home.mkdir()
        config["general_settings"]["database_path"] = str(home / "keys.db")
        gateways.append(Gateway(["--config", str(write_config(home / "c.yaml", config))], cwd=home))
    return gateways


@pytest.fixture
def answering(upstream: ReplayServer) -> Iterator[ReplayServer]:
    def respond(request: Recorded) -> Reply:
        return Reply(
            body=fixture_bytes("openai/response_text.json"), content_type="application/json"
        )

    upstream.responder = respond
    yield upstream


async def call(session: aiohttp.ClientSession, gateway: Gateway) -> int:
    async with session.post(
        gateway.url("/v1/chat/completions"),
        json={"model": "gpt-4o", "messages": USER},
        headers={"Authorization": f"Bearer {MASTER}"},
    ) as response:
        await response.read()
        return response.status


def sent_to(upstream: ReplayServer, deployment: str) -> int:
    return sum(1 for r in upstream.requests if r.path.startswith(f"/{deployment}/"))


async def test_a_deployment_rpm_limit_holds_across_instances(
    tmp_path: Path, answering: ReplayServer, redis_server: RedisServer
) -> None:
    gateways = start_pair(
        tmp_path, two_deployments(answering, redis_server.url, rpm=3, weight=1000)
    )
    try:
        async with aiohttp.ClientSession() as session:
            statuses = [await call(session, g) for g in gateways * 5]
            async with session.get(gateways[0].url("/metrics")) as response:
                metrics = await response.text()
    finally:
        for gateway in gateways:
            assert gateway.stop() == 0, gateway.stderr
    assert statuses == [200] * 10
    assert sent_to(answering, "a") == 3  # the limit, across both instances
    assert sent_to(answering, "b") == 7  # the rest went to the other deployment
    trips = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("rxllm_redis_path_round_trips_total")
    )
    # The master key needs no check; the router admits each request in one round trip (the
    # first one also loads its script).
    assert 5 <= trips <= 5 + 1


async def test_a_retry_after_seen_by_one_sends_the_others_elsewhere(
    tmp_path: Path, upstream: ReplayServer, redis_server: RedisServer
) -> None:
    limited = asyncio.Event()

    def respond(request: Recorded) -> Reply:
        if request.path.startswith("/a/") and not limited.is_set():
            limited.set()
            return Reply(
                status=429,
                content_type="application/json",
                headers={"retry-after": "30"},
                body=b'{"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}}',
            )
        return Reply(
            body=fixture_bytes("openai/response_text.json"), content_type="application/json"
        )

    upstream.responder = respond
    gateways = start_pair(tmp_path, two_deployments(upstream, redis_server.url, weight=1000))
    try:
        async with aiohttp.ClientSession() as session:
            assert await call(session, gateways[0]) == 200  # a: 429, retried on b
            assert limited.is_set()
            statuses = [await call(session, gateways[1]) for _ in range(6)]
    finally:
        for gateway in gateways:
            assert gateway.stop() == 0, gateway.stderr
    assert statuses == [200] * 6
    # The other instance, which never saw the 429, never sent to the paused deployment
    # (with weight 1000 it would have chosen it nearly every time).
    assert sent_to(upstream, "a") == 1
    assert sent_to(upstream, "b") == 7
