"""Routers sharing their deployments' health on a real Redis (``Router(redis_url=...)``).

Several routers (on rxllm's background loop, on loops of their own in other threads, and in
other processes) route to real loopback upstreams over one real ``redis-server``: rpm/tpm
limits hold for all of them together, a cooldown or a ``Retry-After`` one of them meets is
honoured by the others, failures add up, ``least-busy`` sees every router's requests in flight.
Redis stopped, frozen or missing at start: requests are still served on local state, the
status says so, and sharing resumes when Redis is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from rxllm import errors
from rxllm._loop import run_sync
from rxllm.router import Router
from rxllm.streaming import collect_sync

from .conftest import API_KEY, fixture_bytes
from .redis_server import RedisServer
from .server import ReplayServer, Reply
from .test_router import TEXT, TRANSCRIPT, Attempts, FirstChoice, error_reply
from .test_stream import Recorder

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [{"role": "user", "content": "hi"}]
RESPONSE_TEXT = "You are a dog, which is a type of mammal."


def response_reply() -> Reply:
    return Reply(body=fixture_bytes("openai/response_text.json"), content_type="application/json")


def always_500(s: ReplayServer) -> ReplayServer:
    s.default = error_reply(500, "The server had an error while processing your request.")
    return s


def dep(s: ReplayServer, id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": id,
        "provider": "openai",
        "model": "gpt-4o",
        "api_key": API_KEY,
        "api_base": s.base + "/v1",
        **extra,
    }


@pytest.fixture(scope="module")
def _upstreams() -> Iterator[list[ReplayServer]]:
    started = [ReplayServer().start() for _ in range(3)]
    yield started
    for s in started:
        s.stop()


@pytest.fixture
def upstreams(_upstreams: list[ReplayServer]) -> Iterator[list[ReplayServer]]:
    """Three loopback deployments (a, b, c) answering a chat completion, fresh for each test."""
    for s in _upstreams:
        s.reset()
        s.default = response_reply()
    yield _upstreams
    for s in _upstreams:
        s.reset()


@pytest.fixture
def make(redis_server: RedisServer) -> Iterator[Callable[..., tuple[Router, Attempts]]]:
    """Routers on the test's Redis (first of equal candidates: the declared order), closed
    at the end."""
    made: list[Router] = []

    def factory(**settings: Any) -> tuple[Router, Attempts]:
        attempts = Attempts()
        kwargs: dict[str, Any] = {
            "rng": FirstChoice(7),
            "on_attempt": attempts,
            "redis_url": redis_server.url,
            "redis_probe_delay": 0.05,
            # exact counts need every admission answered, on a loaded machine too (the
            # timeout's own test sets a short one)
            "redis_timeout": 2.0,
        }
        kwargs.update(settings)
        router = Router(**kwargs)
        made.append(router)
        return router, attempts

    yield factory
    for router in made:
        run_sync(router.aclose(), timeout=10)


def ask(router: Router, name: str = "smart", **params: Any) -> str:
    return router.completion(name, messages=MESSAGES, **params).text


def redis_client(server: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(server.url, socket_timeout=5)


def wait_until(router: Router, condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Wait until ``condition()`` holds, re-checked whenever ``router``'s shared state changes
    (a probe finding Redis, a release flushed, a request admitted): no polling."""
    shared = router._policy.shared
    assert shared is not None
    return shared.wait_for(condition, timeout)


# --- without redis_url ----------------------------------------------------------------------


def test_without_redis_url_nothing_is_shared(upstreams: list[ReplayServer]) -> None:
    a = upstreams[0]
    r = Router(rng=FirstChoice(7))
    r.register("smart", deployments=[dep(a, "a")])
    assert r._policy.shared is None
    assert ask(r) == RESPONSE_TEXT
    status = r.shared_status()
    assert status["enabled"] is False
    assert status["connected"] is False
    assert status["round_trips"] == 0
    assert r.connect() is False
    with pytest.raises(errors.ConfigurationError, match="redis_url"):
        r.on_shared_event(lambda *_: None)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"redis_url": "http://127.0.0.1:6379"}, "redis_url 'http://127.0.0.1:6379'"),
        ({"redis_url": ""}, "redis_url must be"),
        ({"redis_url": "redis://127.0.0.1:1", "redis_timeout": 0}, "timeout must be positive"),
        ({"redis_url": "redis://127.0.0.1:1", "redis_namespace": ""}, "redis_namespace"),
    ],
)
def test_bad_redis_settings_fail_when_the_router_is_made(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(errors.ConfigurationError, match=message):
        Router(**settings)


def test_the_redis_password_never_shows() -> None:
    r = Router(redis_url="redis://user:hunter2-SECRET@127.0.0.1:1/0")
    assert "hunter2-SECRET" not in str(r.shared_status())
    assert "hunter2-SECRET" not in repr(r._shared.settings if r._shared else None)


# --- rpm / tpm across routers -----------------------------------------------------------------


def test_an_rpm_limit_admits_exactly_n_across_routers_on_several_loops(
    make: Callable[..., tuple[Router, Attempts]], upstreams: list[ReplayServer]
) -> None:
    """Three routers, each on a loop of its own in its own thread, send 10 requests at once
    each: the deployment with rpm=7 takes exactly 7 of the 30, the other the rest."""
    a, b = upstreams[0], upstreams[1]
    routers = [make()[0] for _ in range(3)]
    for r in routers:
        r.register("smart", deployments=[dep(a, "a", rpm=7), dep(b, "b")])
    go = threading.Barrier(3, timeout=10)
    served: list[str] = []
    failures: list[BaseException] = []

    async def burst(r: Router) -> None:
        streams = [r.acompletion("smart", messages=MESSAGES) for _ in range(10)]
        answers = await asyncio.gather(*streams)
        assert all(x.text == RESPONSE_TEXT for x in answers)

    def run(r: Router) -> None:
        try:
            go.wait()
            asyncio.run(burst(r))
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in routers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not failures, failures
    served = ["a"] * len(a.requests) + ["b"] * len(b.requests)
    assert served.count("a") == 7
    assert served.count("b") == 23
    assert sum(r.shared_status()["admissions"] for r in routers) == 30
    assert sum(r.shared_status()["errors"] for r in routers) == 0


def test_a_full_shared_window_sends_the_request_elsewhere_without_a_retry(
    make: Callable[..., tuple[Router, Attempts]], upstreams: list[ReplayServer]
) -> None:
    a, b = upstreams[0], upstreams[1]
    (r1, _), (r2, attempts2) = make(), make(num_retries=0)
    for r in (r1, r2):
        r.register("smart", deployments=[dep(a, "a", rpm=2), dep(b, "b")])
    assert ask(r1) == ask(r1) == RESPONSE_TEXT  # r1 fills a's window
    assert len(a.requests) == 2
    assert ask(r2) == RESPONSE_TEXT  # r2's own window is empty: Redis says a is full
    assert attempts2.summary() == [("b", "success")]  # no failed attempt, no retry used
    limited = r2.status("smart")[0]["limited"]
    assert 55 < limited <= 60
    assert r2.shared_status()["path_round_trips"] == 1  # one admission (r1 loaded the script)


def test_when_no_deployment_has_room_the_request_fails_like_a_local_rpm_refusal(
    make: Callable[..., tuple[Router, Attempts]], upstreams: list[ReplayServer]
) -> None:
    a = upstreams[0]
    (r1, _), (r2, attempts2) = make(), make(max_retry_time=5.0)
    for r in (r1, r2):
        r.register("only", deployments=[dep(a, "a", rpm=2)])
    ask(r1, "only")
    ask(r1, "only")
    with pytest.raises(errors.RateLimitError, match="no deployment can take this request") as e:
        ask(r2, "only")
    assert e.value.retry_after is not None and 55 < e.value.retry_after <= 60
    assert len(a.requests) == 2
    assert attempts2.items == []  # nothing was sent: no attempt
    assert r2.shared_status()["refusals"] == 1


def test_a_tpm_limit_holds_across_routers_with_the_real_usage(
    make: Callable[..., tuple[Router, Attempts]],
    upstreams: list[ReplayServer],
    redis_server: RedisServer,
) -> None:
    a, b = upstreams[0], upstreams[1]

    def words(text: str) -> int:
        return len(text.split())

    (r1, attempts1), (r2, attempts2) = make(token_estimator=words), make(token_estimator=words)
    for r in (r1, r2):
        r.register("smart", deployments=[dep(a, "a", tpm=50), dep(b, "b")])
    short = [{"role": "user", "content": "one two three"}]
    assert r1.completion("smart", messages=short).text == RESPONSE_TEXT
    assert attempts1.summary() == [("a", "success")]
    # 3 tokens estimated, 34 really used: the correction reaches Redis after the answer
    client = redis_client(redis_server)
    key = "rxllm:{smart}:a:tpm"
    assert wait_until(r1, lambda: sum(int(v) for v in client.hvals(key)) == 34)
    assert len(client.hkeys(key)) == 1  # corrected in the bucket the script counted it in
    assert r2.completion("smart", messages=short).text == RESPONSE_TEXT  # 34 + 3 fits
    assert r2.completion("smart", messages=short, max_tokens=20).text == RESPONSE_TEXT
    assert attempts2.summary() == [("a", "success"), ("b", "success")]  # 68 + 23 > 50
    client.close()


# --- cooldowns, pauses and failures across routers ------------------------------------------------


def test_a_cooldown_one_router_starts_is_honoured_by_another_within_100_ms(
    make: Callable[..., tuple[Router, Attempts]], upstreams: list[ReplayServer]
) -> None:
    a, b = always_500(upstreams[0]), upstreams[1]
    (r1, attempts1), (r2, attempts2) = (
        make(allowed_fails=0, cooldown_time=30.0),
        make(allowed_fails=0, cooldown_time=30.0),
    )
    for r in (r1, r2):
        r.register("smart", deployments=[dep(a, "a"), dep(b, "b")])
    assert r2.connect(wait=5)  # r2 listens
    heard = threading.Event()
    heard_at: list[float] = []

    def on_event(kind: str, config: str, deployment: str, seconds: float) -> None:
        if (kind, config, deployment) == ("cool", "smart", "a"):
            heard_at.append(time.monotonic())
            heard.set()

    r2.on_shared_event(on_event)
    cooled_at: list[float] = []
    r1.on_attempt(lambda x: cooled_at.append(time.monotonic()) if x.cooled_down else None)
    assert ask(r1) == RESPONSE_TEXT
    assert attempts1.summary() == [("a", "error"), ("b", "success")]
    assert heard.wait(5)
    # the event left Redis before r1 reported the attempt; allow for scheduling
    assert heard_at[0] - cooled_at[0] < 0.1
    assert 29 < r2.status("smart")[0]["cooldown"] <= 30
    assert ask(r2) == RESPONSE_TEXT
    assert attempts2.summary() == [("b", "success")]
    assert len(a.requests) == 1


def test_a_router_that_missed_the_event_learns_the_cooldown_at_admission(
    make: Callable[..., tuple[Router, Attempts]], upstreams: list[ReplayServer]
) -> None:
    a, b = always_500(upstreams[0]), upstreams[1]
    r1, _ = make(allowed_fails=0, cooldown_time=30.0)
    r1.register("smart", deployments=[dep(a, "a"), dep(b, "b")])
    assert ask(r1) == RESPONSE_TEXT  # a cools down; nobody else was listening
    r2, attempts2 = make(allowed_fails=0, cooldown_time=30.0)
    r2.register("smart", deployments=[dep(a, "a"), dep(b, "b")])
    assert ask(r2) == RESPONSE_TEXT  # one admission: a refused (cooling), b admitted
    assert attempts2.summary() == [("b", "success")]
    assert 29 < r2.status("smart")[0]["cooldown"] <= 30
    assert len(a.requests) == 1


def test_a_429_retry_after_seen_by_one_router_sends_the_others_elsewhere(
    make: Callable[..., tuple[Router, Attempts]], upstreams: list[ReplayServer]
) -> None:
    a, b = upstreams[0], upstreams[1]
    a.queue(error_reply(429, "Rate limit reached", "rate_limit_exceeded", {"retry-after": "30"}))
    (r1, attempts1), (r2, attempts2), (r3, attempts3) = make(), make(), make()
    for r in (r1, r2, r3):
        r.register("smart", deployments=[dep(a, "a"), dep(b, "b")])
    assert r2.connect(wait=5)
    heard = threading.Event()
    r2.on_shared_event(lambda kind, *_: heard.set() if kind == "pause" else None)
    assert ask(r1) == RESPONSE_TEXT
    assert attempts1.summary() == [("a", "error"), ("b", "success")]
    assert heard.wait(5)
    assert 29 < r2.status("smart")[0]["paused"] <= 30
    assert ask(r2) == RESPONSE_TEXT
    assert ask(r3) == RESPONSE_TEXT  # r3 never listened: the admission tells it
    assert attempts2.summary() == attempts3.summary() == [("b", "success")]
    assert 29 < r3.status("smart")[0]["paused"] <= 30
    assert len(a.requests) == 1


def test_a_short_shared_pause_is_waited_for_then_the_deployment_serves(
    make: Callable[..., tuple[Router, Attempts]], upstreams: list[ReplayServer]
) -> None:
    a = upstreams[0]
    a.queue(
        error_reply(429, "Rate limit reached", "rate_limit_exceeded", {"retry-after-ms": "400"})
    )
    (r1, _), (r2, attempts2) = make(num_retries=0), make()
    for r in (r1, r2):
        r.register("only", deployments=[dep(a, "a")])
    with pytest.raises(errors.RateLimitError):
        ask(r1, "only")
    started = time.monotonic()
    assert ask(r2, "only") == RESPONSE_TEXT  # refused by Redis, then waits out the pause
    assert 0.2 < time.monotonic() - started < 3
    assert attempts2.summary() == [("a", "success")]


def test_failure_counts_add_up_across_routers(
    make: Callable[..., tuple[Router, Attempts]], upstreams: list[ReplayServer]
) -> None:
    """allowed_fails=2: the third failure within the window cools the deployment down,
    whichever router saw each; alone, none of them would."""
    a, b = always_500(upstreams[0]), upstreams[1]
    made = [make(allowed_fails=2, cooldown_time=30.0) for _ in range(3)]
    for r, _ in made:
        r.register("smart", deployments=[dep(a, "a"), dep(b, "b")])
    for r, _ in made[:2]:
        assert ask(r) == RESPONSE_TEXT
    assert [r.status("smart")[0]["recent_failures"] for r, _ in made] == [1, 1, 0]
    assert ask(made[2][0]) == RESPONSE_TEXT
    cooled = [[x.cooled_down for x in attempts.items] for _, attempts in made]
    assert cooled == [[False, False], [False, False], [True, False]]
    for r, attempts in made:
        assert ask(r) == RESPONSE_TEXT
        assert attempts.summary()[-1] == ("b", "success")
    assert len(a.requests) == 3


# --- least-busy across routers -------------------------------------------------------------------


def test_least_busy_sees_the_other_routers_requests_in_flight(
    make: Callable[..., tuple[Router, Attempts]],
    upstreams: list[ReplayServer],
    redis_server: RedisServer,
) -> None:
    a, b = upstreams[0], upstreams[1]
    body = fixture_bytes(TRANSCRIPT)
    a.queue(Reply(body=body, stall_after=body.index(b" weather")))
    b.default = Reply(body=body)
    (r1, _), (r2, attempts2) = make(), make()
    for r in (r1, r2):
        r.register("smart", deployments=[dep(a, "a"), dep(b, "b")], strategy="least-busy")
    first = Recorder()
    subscription = r1.completion("smart", messages=MESSAGES, stream=True).subscribe(first)
    assert first.first.wait(10)  # a answers (and stalls): r1's request is in flight on a
    assert [s["in_flight"] for s in r2.status("smart")] == [0, 0]  # r2 has none of its own
    second = r2.completion("smart", messages=MESSAGES, stream=True)
    assert collect_sync(second, timeout=10).text == TEXT
    assert second.deployment == "b"
    assert attempts2.summary() == [("b", "success")]
    assert r2.status("smart")[0]["shared_in_flight"] == 1  # r1's, as Redis said
    subscription.dispose()
    assert a.disconnected.wait(10)
    client = redis_client(redis_server)
    assert wait_until(r1, lambda: client.zcard("rxllm:{smart}:a:busy") == 0)  # released
    client.close()
    a.default = Reply(body=body)
    third = r2.completion("smart", messages=MESSAGES, stream=True)
    assert collect_sync(third, timeout=10).text == TEXT
    assert third.deployment == "a"


# --- separate processes ------------------------------------------------------------------------

WORKER = """
import json, random, sys
from rxllm.router import Router

class FirstChoice(random.Random):  # a while it has room: the order the deployments are given
    def choices(self, population, weights=None, **kwargs):
        return [population[0]]

url, base_a, base_b, key, count = sys.argv[1:6]
router = Router(
    redis_url=url, redis_timeout=2.0, num_retries=0, max_retry_time=2.0, rng=FirstChoice()
)
def dep(id, base, **extra):
    return {"id": id, "provider": "openai", "model": "gpt-4o", "api_key": key,
            "api_base": base, **extra}
router.register("smart", deployments=[dep("a", base_a, rpm=7), dep("b", base_b)])
assert router.connect(wait=5)
print("ready", flush=True)
sys.stdin.readline()
used = {}
for _ in range(int(count)):
    stream = router.completion("smart", messages=[{"role": "user", "content": "hi"}], stream=True)
    stream.run()
    used[stream.deployment] = used.get(stream.deployment, 0) + 1
print(json.dumps({"used": used, "status": router.shared_status()}))
"""


def test_routers_in_separate_processes_share_one_rpm_limit(
    redis_server: RedisServer, upstreams: list[ReplayServer]
) -> None:
    a, b = upstreams[0], upstreams[1]
    a.default = b.default = Reply(body=fixture_bytes(TRANSCRIPT))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [redis_server.url, a.base + "/v1", b.base + "/v1", API_KEY, "6"]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        for _ in range(3)
    ]
    try:
        for worker in workers:  # every one connected and listening before any request
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready", worker.stderr
        results = []
        for worker in workers:
            out, err = worker.communicate("go\n", timeout=60)
            assert worker.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate(timeout=10)
    assert sum(r["used"].get("a", 0) for r in results) == 7
    assert sum(r["used"].get("b", 0) for r in results) == 11
    assert len(a.requests) == 7
    assert all(r["status"]["connected"] and r["status"]["errors"] == 0 for r in results)


# --- Redis failing is not the router failing -----------------------------------------------------


def test_redis_stopped_mid_run_then_back(
    make: Callable[..., tuple[Router, Attempts]],
    upstreams: list[ReplayServer],
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a = upstreams[0]
    caplog.set_level(logging.WARNING, logger="rxllm.router")
    r, attempts = make()
    r.register("smart", deployments=[dep(a, "a", rpm=3)])
    assert ask(r) == RESPONSE_TEXT
    assert r.shared_status()["connected"]
    redis_server.stop()
    started = time.monotonic()
    assert ask(r) == RESPONSE_TEXT  # served on local state
    assert ask(r) == RESPONSE_TEXT
    assert time.monotonic() - started < 2
    status = r.shared_status()
    assert status["connected"] is False
    assert status["state"] == "disconnected"
    assert status["errors"] >= 1
    assert status["fallbacks"] >= 2
    # meanwhile the limits hold per instance: a's window (its own 3 requests) is full
    r.configure(max_retry_time=1.0)
    with pytest.raises(errors.RateLimitError, match="no deployment can take"):
        ask(r)
    warnings = [x.getMessage() for x in caplog.records if x.levelno == logging.WARNING]
    assert sum("is unavailable" in w for w in warnings) == 1
    redis_server.start()
    assert wait_until(r, lambda: r.shared_status()["connected"])  # the probe found it
    assert wait_until(r, lambda: r.shared_status()["subscribed"])
    r.configure(max_retry_time=60.0)
    r.register("smart", deployments=[dep(a, "a", rpm=3)])  # a fresh local window
    before = r.shared_status()["admissions"]
    assert ask(r) == RESPONSE_TEXT
    assert r.shared_status()["admissions"] == before + 1  # shared again
    warnings = [x.getMessage() for x in caplog.records if x.levelno == logging.WARNING]
    assert sum("is back: sharing again" in w for w in warnings) == 1
    assert len(attempts.items) == 4


def test_redis_down_at_start_the_router_works_locally(
    make: Callable[..., tuple[Router, Attempts]],
    upstreams: list[ReplayServer],
    redis_server: RedisServer,
) -> None:
    a = upstreams[0]
    redis_server.stop()
    r, _ = make()
    r.register("smart", deployments=[dep(a, "a")])
    started = time.monotonic()
    assert r.connect(wait=1) is False
    assert ask(r) == RESPONSE_TEXT
    assert ask(r) == RESPONSE_TEXT
    assert time.monotonic() - started < 2
    assert r.shared_status()["state"] == "disconnected"
    redis_server.start()
    assert wait_until(r, lambda: r.shared_status()["connected"])
    assert ask(r) == RESPONSE_TEXT
    assert r.shared_status()["admissions"] == 1


def test_a_frozen_redis_never_hangs_a_request(
    make: Callable[..., tuple[Router, Attempts]],
    upstreams: list[ReplayServer],
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """SIGSTOP: the connections stay open and nothing answers. The request waits at most the
    timeout once, then the router stops asking until a probe gets an answer."""
    a = upstreams[0]
    caplog.set_level(logging.WARNING, logger="rxllm.router")
    r, _ = make(redis_timeout=0.2)
    r.register("smart", deployments=[dep(a, "a")])
    assert r.connect(wait=5)
    assert redis_server.process is not None
    pid = redis_server.process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert ask(r) == RESPONSE_TEXT
        first = time.monotonic() - started
        started = time.monotonic()
        for _ in range(5):
            assert ask(r) == RESPONSE_TEXT
        rest = time.monotonic() - started
        assert 0.15 < first < 1.5
        assert rest < 0.5  # the circuit is open: no more waiting on Redis
        assert r.shared_status()["state"] == "disconnected"
    finally:
        os.kill(pid, signal.SIGCONT)
    assert wait_until(r, lambda: r.shared_status()["connected"])
    assert ask(r) == RESPONSE_TEXT
    warnings = [x.getMessage() for x in caplog.records if x.name == "rxllm.router"]
    assert sum("is unavailable (timed out)" in w for w in warnings) == 1, warnings
    assert sum("is back: sharing again" in w for w in warnings) == 1, warnings


def test_redis_going_away_during_a_stream_does_not_touch_it(
    make: Callable[..., tuple[Router, Attempts]],
    upstreams: list[ReplayServer],
    redis_server: RedisServer,
) -> None:
    a = upstreams[0]
    body = fixture_bytes(TRANSCRIPT)
    a.queue(Reply(body=body, piece=64, delay=0.01))
    r, attempts = make()
    r.register("smart", deployments=[dep(a, "a", tpm=100_000)])
    got_chunk = threading.Event()
    stream = r.completion("smart", messages=MESSAGES, stream=True)
    stream.subscribe(lambda chunk: got_chunk.set())
    assert got_chunk.wait(10)
    redis_server.stop()  # the release after the answer will fail: nobody waits for it
    assert collect_sync(stream, timeout=10).text == TEXT
    assert attempts.wait(1) == [("a", "success")]
    assert wait_until(r, lambda: r.shared_status()["errors"] >= 1)


# --- one round trip per request, and loops ---------------------------------------------------


def test_one_round_trip_on_the_path_of_a_request(
    make: Callable[..., tuple[Router, Attempts]], upstreams: list[ReplayServer]
) -> None:
    a, b = upstreams[0], upstreams[1]
    r, _ = make()
    r.register("smart", deployments=[dep(a, "a", rpm=100, tpm=100_000), dep(b, "b")])
    assert r.connect(wait=5)
    ask(r)  # loads the script
    before = r.shared_status()
    for _ in range(10):
        assert ask(r) == RESPONSE_TEXT
    after = r.shared_status()
    assert after["path_round_trips"] - before["path_round_trips"] == 10
    # and one more each after the answer (release and tpm correction, pipelined)
    assert wait_until(r, lambda: r.shared_status()["round_trips"] - before["round_trips"] == 20)


async def test_a_router_on_the_test_loop_and_on_the_background_loop(
    make: Callable[..., tuple[Router, Attempts]], upstreams: list[ReplayServer]
) -> None:
    """One router used from two loops: one client per loop, both closed with their loop."""
    a, b = upstreams[0], upstreams[1]
    r, attempts = make()
    r.register("smart", deployments=[dep(a, "a", rpm=2), dep(b, "b")])
    assert await r.aconnect(wait=5)
    answer = await r.acompletion("smart", messages=MESSAGES)
    assert answer.text == RESPONSE_TEXT
    await asyncio.to_thread(ask, r)  # the background loop
    answer = await r.acompletion("smart", messages=MESSAGES)
    assert attempts.summary() == [("a", "success"), ("a", "success"), ("b", "success")]
    assert r.shared_status()["admissions"] == 3
    await r.aclose()


def test_releases_reach_redis_when_each_request_has_its_own_asyncio_run(
    make: Callable[..., tuple[Router, Attempts]],
    upstreams: list[ReplayServer],
    redis_server: RedisServer,
) -> None:
    """The loop ends right after the answer: what waits to be released goes at its shutdown."""
    a, b = upstreams[0], upstreams[1]
    r, _ = make()
    r.register("smart", deployments=[dep(a, "a"), dep(b, "b")], strategy="least-busy")
    for _ in range(3):
        assert asyncio.run(r.acompletion("smart", messages=MESSAGES)).text == RESPONSE_TEXT
    assert r.shared_status()["admissions"] == 3
    client = redis_client(redis_server)
    assert client.zcard("rxllm:{smart}:a:busy") == client.zcard("rxllm:{smart}:b:busy") == 0
    client.close()


def test_namespaces_keep_routers_apart(
    make: Callable[..., tuple[Router, Attempts]], upstreams: list[ReplayServer]
) -> None:
    a, b = upstreams[0], upstreams[1]
    (r1, _), (r2, attempts2) = make(), make(redis_namespace="staging")
    for r in (r1, r2):
        r.register("smart", deployments=[dep(a, "a", rpm=1), dep(b, "b")])
    ask(r1)
    ask(r2)
    assert attempts2.summary() == [("a", "success")]


# --- the local windows -----------------------------------------------------------------------


def test_the_local_windows_hold_one_window_of_requests_limits_or_not() -> None:
    """Every request is counted in the local windows (the fallback when Redis is away); they
    never grow beyond one window, and the running tpm total follows corrections."""
    from rxllm.router._config import make_deployment
    from rxllm.router._health import LIMIT_WINDOW, DeploymentState

    free = make_deployment(
        {"provider": "openai", "model": "m", "api_key": "k"}, default_id="free", where="t"
    )
    limited = make_deployment(
        {"provider": "openai", "model": "m", "api_key": "k", "tpm": 100}, default_id="l", where="t"
    )
    state = DeploymentState()
    for n in range(1000):
        state.start(n * 0.5, 10)  # 2 a second, for 500 s
    assert len(state.requests) == len(state.tokens) == LIMIT_WINDOW * 2
    assert state.tokens_used == 1200
    assert free.state.ready_at(free, 0.0, 10**9) == 0.0
    state = limited.state
    first = state.start(0.0, 60)
    second = state.start(1.0, 30)
    assert state.ready_at(limited, 2.0, 20) == LIMIT_WINDOW  # 60 + 30 + 20 > 100
    state.correct(first, 40)  # the real usage: 40 + 30 + 20 fits
    assert state.ready_at(limited, 2.0, 20) == 2.0
    assert state.ready_at(limited, LIMIT_WINDOW + 0.5, 100) == LIMIT_WINDOW + 1.0
    assert state.tokens_used == 30
    state.correct(first, 90)  # out of the window: no longer counted
    state.correct(second, 50)
    assert state.tokens_used == 50
