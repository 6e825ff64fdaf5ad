"""The Redis the tests use is a real server: it answers, and an outage is real."""

from __future__ import annotations

import pytest
import redis

from .redis_server import RedisServer


def test_a_real_redis_answers_and_can_go_down(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=2)
    assert client.ping()
    client.set("k", "v")
    redis_server.stop()
    with pytest.raises(redis.ConnectionError):
        client.get("k")
    redis_server.start()
    assert client.get("k") is None  # no persistence: a restart starts empty
    client.close()
