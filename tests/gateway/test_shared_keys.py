"""Several `rxllm serve` processes on one Redis (each with its own SQLite file, as on separate
hosts): keys, limits, budgets and spend are one truth; Redis going away leaves them serving."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis

from ..redis_server import RedisServer
from ..server import ReplayServer
from .conftest import MASTER, Gateway, config_for, write_config

pytestmark = pytest.mark.timeout(120)

USER = [{"role": "user", "content": "hello"}]
ADMIN = {"Authorization": f"Bearer {MASTER}"}


def start(tmp: Path, name: str, upstream: ReplayServer, redis_url: str) -> Gateway:
    home = tmp / name
    home.mkdir()
    config = config_for(upstream, master_key=MASTER, database_path=str(home / "keys.db"))
    config["router_settings"]["redis_url"] = redis_url
    return Gateway(["--config", str(write_config(home / "config.yaml", config))], cwd=home)


@pytest.fixture
def pair(
    tmp_path: Path, upstream: ReplayServer, redis_server: RedisServer
) -> Iterator[tuple[Gateway, Gateway]]:
    first = start(tmp_path, "a", upstream, redis_server.url)
    second = start(tmp_path, "b", upstream, redis_server.url)
    yield first, second
    assert first.stop() == 0, first.stderr
    assert second.stop() == 0, second.stderr


async def call(session: aiohttp.ClientSession, gateway: Gateway, key: str) -> int:
    async with session.post(
        gateway.url("/v1/chat/completions"),
        json={"model": "gpt-4o", "messages": USER},
        headers={"Authorization": f"Bearer {key}"},
    ) as response:
        await response.read()
        return response.status


async def generate(session: aiohttp.ClientSession, gateway: Gateway, **settings: Any) -> str:
    async with session.post(gateway.url("/key/generate"), json=settings, headers=ADMIN) as r:
        assert r.status == 200, await r.text()
        return str((await r.json())["key"])


async def info(session: aiohttp.ClientSession, gateway: Gateway, key: str) -> dict[str, Any]:
    async with session.get(gateway.url("/key/info"), params={"key": key}, headers=ADMIN) as r:
        assert r.status == 200, await r.text()
        found: dict[str, Any] = (await r.json())["info"]
        return found


async def test_a_key_made_on_one_works_on_the_other_and_its_rpm_is_shared(
    pair: tuple[Gateway, Gateway],
) -> None:
    a, b = pair
    async with aiohttp.ClientSession() as session:
        key = await generate(session, a, rpm_limit=5)
        statuses = [await call(session, gateway, key) for gateway in (a, b) * 4]
    # 5 admitted in all, whichever instance; every later one refused.
    assert statuses == [200] * 5 + [429] * 3


async def test_a_budget_spent_through_one_refuses_on_the_other(
    pair: tuple[Gateway, Gateway],
) -> None:
    a, b = pair
    async with aiohttp.ClientSession() as session:
        key = await generate(session, a, max_budget=1e-9)
        assert await call(session, a, key) == 200
        for _ in range(100):  # the spend is recorded just after the answer
            if (await info(session, b, key))["spend"] > 0:
                break
            await asyncio.sleep(0.02)
        assert await call(session, b, key) == 400  # budget_exceeded


async def test_a_key_deleted_on_one_is_refused_by_the_other(
    pair: tuple[Gateway, Gateway],
) -> None:
    a, b = pair
    async with aiohttp.ClientSession() as session:
        key = await generate(session, a)
        assert await call(session, b, key) == 200  # b imported it
        async with session.post(a.url("/key/delete"), json={"keys": [key]}, headers=ADMIN) as r:
            assert r.status == 200
        assert await call(session, b, key) == 401


async def test_spend_adds_up_across_instances(
    pair: tuple[Gateway, Gateway], redis_server: RedisServer
) -> None:
    a, b = pair
    async with aiohttp.ClientSession() as session:
        key = await generate(session, a, max_budget=100)
        await asyncio.gather(*[call(session, gateway, key) for gateway in (a, b) * 5])
        total: dict[str, Any] = {}
        for _ in range(100):
            total = await info(session, b, key)
            if total["requests"] == 10:
                break
            await asyncio.sleep(0.02)
        async with session.get(a.url("/metrics")) as response:
            metrics = await response.text()
    assert total["requests"] == 10
    # At most two round trips to Redis on each request's path: the key's check and the
    # router's admission (the first request of an instance also loads the scripts).
    trips = next(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("rxllm_redis_path_round_trips_total")
    )
    assert 2 * 5 <= trips <= 2 * 5 + 2
    client = redis.Redis.from_url(redis_server.url)
    records = [fields for _, fields in client.xrange("rxllm:spend")]
    client.close()
    mine = [r for r in records if r[b"token"].decode() == total["token"]]
    assert len(mine) == 10  # each request recorded once
    assert len({r[b"request_id"] for r in mine}) == 10
    assert {r[b"instance"] for r in mine} and len({r[b"instance"] for r in mine}) == 2
    assert sum(float(r[b"cost"]) for r in mine) == pytest.approx(total["spend"], rel=1e-12)
    assert sum(int(r[b"completion_tokens"]) for r in mine) == total["completion_tokens"]


async def test_redis_going_away_leaves_the_gateways_serving(
    pair: tuple[Gateway, Gateway], redis_server: RedisServer
) -> None:
    a, b = pair
    async with aiohttp.ClientSession() as session:
        key = await generate(session, a, max_budget=100)
        assert await call(session, b, key) == 200  # known on both
        before = 0.0
        for _ in range(100):  # the spend is recorded just after the answer
            before = (await info(session, a, key))["spend"]
            if before > 0:
                break
            await asyncio.sleep(0.02)
        redis_server.stop()
        for gateway in (a, b, a, b):
            assert await call(session, gateway, key) == 200  # served on local state
        assert "unreachable" in a.stderr + b.stderr
        async with session.get(a.url("/metrics")) as response:
            text = await response.text()
        assert "rxllm_redis_outages_total 1.0" in text
        assert any(
            line.startswith("rxllm_redis_up{") and line.endswith(" 0.0")
            for line in text.splitlines()
        )
        redis_server.start()  # empty: a fresh Redis, as after a failover without persistence
        # Sharing resumes (after the circuit's retry second): the key is published again,
        # and the spend made meanwhile reaches Redis, each record once.
        client = redis.Redis.from_url(redis_server.url)
        token = (await info(session, a, key))["token"]
        for _ in range(200):
            for gateway in (a, b):
                assert await call(session, gateway, key) == 200
            usage = client.hgetall(f"rxllm:usage:{token}")
            if int(usage.get(b"requests", 0)) >= 4 + 2:
                break
            await asyncio.sleep(0.05)
        with client.pipeline(transaction=True) as pipe:  # one consistent reading of both
            pipe.xrange("rxllm:spend")
            pipe.hgetall(f"rxllm:usage:{token}")
            stream, usage = pipe.execute()
        records = [fields for _, fields in stream if fields[b"token"].decode() == token]
        client.close()
    assert before > 0
    # The 4 requests served during the outage reached the new Redis, and those after it;
    # none twice (every record is a distinct request, and the totals are their sum).
    assert int(usage[b"requests"]) >= 6
    ids = [r[b"request_id"] for r in records]
    assert len(ids) == len(set(ids)) == int(usage[b"requests"])


async def test_redis_down_at_start(tmp_path: Path, upstream: ReplayServer) -> None:
    gateway = start(tmp_path, "alone", upstream, "redis://127.0.0.1:9/0")
    try:
        async with aiohttp.ClientSession() as session:
            key = await generate(session, gateway, rpm_limit=2)
            statuses = [await call(session, gateway, key) for _ in range(3)]
        assert statuses == [200, 200, 429]  # limits enforced per instance meanwhile
    finally:
        assert gateway.stop() == 0
    assert "unreachable" in gateway.stderr
