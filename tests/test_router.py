"""The router over real loopback HTTP: named configurations, retries, fallbacks,
strategies, cooldowns, limits and streams that never emit a chunk twice.

Deployments are loopback replay servers that misbehave on request: one always answers 500,
one 429 with ``retry-after-ms``, one drops the connection mid-stream, one is slow to the first
byte. Backoff waits and cooldowns run on a fake clock (its ``sleep`` advances it) unless a test
measures real elapsed time.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import rxllm
from rxllm import errors, router
from rxllm.router import Attempt, Router, RouterStream
from rxllm.streaming import collect, collect_sync

from .conftest import API_KEY, fixture_bytes
from .server import ReplayServer, Reply
from .test_stream import Recorder

MESSAGES = [{"role": "user", "content": "hi"}]
TRANSCRIPT = "openai/stream_text_usage.sse"
TEXT = (
    "I'm unable to provide real-time weather updates. To get the current weather in San "
    "Francisco, I recommend checking a reliable weather website or a weather app."
)
CHUNKS = 33  # data: events in the transcript
RESPONSE_TEXT = "You are a dog, which is a type of mammal."


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def _extra_servers() -> Iterator[list[ReplayServer]]:
    started = [ReplayServer().start() for _ in range(3)]
    yield started
    for s in started:
        s.stop()


@pytest.fixture
def servers(
    server: ReplayServer, _extra_servers: list[ReplayServer]
) -> Iterator[list[ReplayServer]]:
    """Four loopback deployments (a, b, c, d), fresh for each test."""
    all_ = [server, *_extra_servers]
    for s in all_:
        s.reset()
        s.default = Reply(status=500, body=b'{"error":{"message":"no reply queued"}}')
    yield all_
    for s in all_:
        s.reset()
        s.default = Reply(status=500, body=b'{"error":{"message":"no reply queued"}}')


def base(s: ReplayServer) -> str:
    return s.base + "/v1"


def error_reply(
    status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None
) -> Reply:
    body = {"error": {"message": message, "type": "server_error", "code": code}}
    return Reply(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=headers or {},
    )


def always_500(s: ReplayServer) -> ReplayServer:
    s.default = error_reply(500, "The server had an error while processing your request.")
    return s


def stream_reply() -> Reply:
    return Reply(body=fixture_bytes(TRANSCRIPT))


def response_reply() -> Reply:
    return Reply(body=fixture_bytes("openai/response_text.json"), content_type="application/json")


def dep(s: ReplayServer, id: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": id,
        "provider": "openai",
        "model": "gpt-4o",
        "api_key": API_KEY,
        "api_base": base(s),
        **extra,
    }


class FirstChoice(random.Random):
    """Strategies pick the first of equally good candidates (declared order): deterministic."""

    def choices(self, population: Any, weights: Any = None, **kwargs: Any) -> list[Any]:  # type: ignore[override]
        return [population[0]]


class FakeTime:
    """A clock whose sleep advances it at once (and records what was asked)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class Attempts:
    """Records every attempt; ``wait(n)`` blocks until n were reported."""

    def __init__(self) -> None:
        self.items: list[Attempt] = []
        self._cond = threading.Condition()

    def __call__(self, attempt: Attempt) -> None:
        with self._cond:
            self.items.append(attempt)
            self._cond.notify_all()

    def wait(self, n: int, timeout: float = 10) -> list[tuple[str, str]]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.items) >= n, timeout), self.items
        return self.summary()

    def summary(self) -> list[tuple[str, str]]:
        return [(a.deployment, a.outcome) for a in self.items]


def make_router(fake: FakeTime | None = None, **settings: Any) -> tuple[Router, Attempts]:
    attempts = Attempts()
    kwargs: dict[str, Any] = {"rng": FirstChoice(7), "on_attempt": attempts}
    if fake is not None:
        kwargs.update(clock=fake.clock, sleep=fake.sleep)
    kwargs.update(settings)
    return Router(**kwargs), attempts


def text(chunks: list[rxllm.ChatChunk]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


# --- registry -------------------------------------------------------------------------------


def test_register_describe_and_list_never_show_the_key(servers: list[ReplayServer]) -> None:
    r = Router()
    r.register(
        "fast",
        provider="openai",
        model="gpt-4o-mini",
        api_key=API_KEY,
        api_base=base(servers[0]),
        extra_headers={"Authorization": f"Bearer {API_KEY}", "X-Team": "blue"},
        temperature=0.2,
        max_tokens=100,
    )
    r.register("smart", deployments=[dep(servers[0], "eu"), dep(servers[1], "us", weight=2)])
    assert r.list_configs() == ["fast", "smart"]
    fast = r.get_config("fast")
    assert fast is not None
    assert fast["provider"] == "openai"
    assert fast["model"] == "gpt-4o-mini"
    assert fast["num_retries"] == 2
    assert fast["deployments"][0]["api_key"] == "***"
    assert fast["deployments"][0]["extra_headers"] == {"Authorization": "***", "X-Team": "blue"}
    assert fast["deployments"][0]["temperature"] == 0.2
    assert fast["deployments"][0]["max_tokens"] == 100
    smart = r.get_config("smart")
    assert smart is not None
    assert [(d["id"], d["weight"]) for d in smart["deployments"]] == [("eu", 1.0), ("us", 2.0)]
    assert r.get_config("nope") is None
    shown = " ".join(
        [repr(r), str(r.get_config("fast")), str(r.get_config("smart")), str(r.list_configs())]
    )
    assert API_KEY not in shown
    assert repr(r) == "Router(configs=['fast', 'smart'])"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"provider": "nope", "model": "m"}, "unknown provider 'nope'"),
        ({"deployments": []}, "deployments must be a non-empty list"),
        ({"deployments": [{"provider": "openai"}]}, "deployment 0: name a provider and a model"),
        (
            {"provider": "openai", "model": "gpt-4o", "strategy": "fastest"},
            "unknown strategy 'fastest'",
        ),
        (
            {"provider": "openai", "model": "gpt-4o", "temprature": 1},
            "unknown setting or parameter for openai",
        ),
        (
            {"provider": "openai", "model": "gpt-4o", "weight": 0},
            "weight must be a positive number",
        ),
        ({"provider": "openai", "model": "gpt-4o", "rpm": 1.5}, "rpm must be a positive integer"),
        (
            {"provider": "openai", "model": "gpt-4o", "fallbacks": ["x"]},
            "cannot fall back to itself",
        ),
        (
            {"provider": "openai", "model": "gpt-4o", "num_retries": -1},
            "num_retries must be an integer >= 0",
        ),
        ({"provider": "openai", "model": "gpt-4o", "deployments": [{}]}, "give exactly one of"),
        ({"route": "fast"}, "route must be a function"),
    ],
)
def test_bad_configurations_fail_at_register_time(
    kwargs: dict[str, Any], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    r = Router()
    name = "x"
    with pytest.raises(errors.ConfigurationError, match=message):
        r.register(name, **kwargs)
    assert r.list_configs() == []


def test_a_missing_key_fails_at_register_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(errors.ConfigurationError, match=r"openai: .*no API key: pass api_key"):
        Router().register("fast", provider="openai", model="gpt-4o-mini")


def test_unregister_clear_and_isolated_instances() -> None:
    router.clear()
    try:
        router.register("fast", provider="openai", model="gpt-4o-mini", api_key=API_KEY)
        mine = Router()
        mine.register("mine", model="openai/gpt-4o", api_key=API_KEY)
        assert router.list_configs() == ["fast"]
        assert mine.list_configs() == ["mine"]
        mine.unregister("mine")
        mine.unregister("mine")  # nothing to remove: no error
        assert mine.list_configs() == []
        router.clear()
        assert router.list_configs() == []
    finally:
        router.clear()


def test_bad_requests_raise_at_call_time_before_any_io(servers: list[ReplayServer]) -> None:
    r = Router()
    r.register(
        "fast", provider="openai", model="gpt-4o", api_key=API_KEY, api_base=base(servers[0])
    )
    r.register("broken", provider="openai", model="gpt-4o", api_key=API_KEY, fallbacks=["later"])
    with pytest.raises(errors.ConfigurationError, match="no router configuration named 'nope'"):
        r.completion("nope", messages=MESSAGES, stream=True)
    with pytest.raises(errors.BadRequestError, match="messages is empty"):
        r.completion("fast", messages=[], stream=True)
    with pytest.raises(errors.UnsupportedParamsError, match="temprature"):
        r.completion("fast", messages=MESSAGES, stream=True, temprature=1)
    with pytest.raises(errors.ConfigurationError, match="no router configuration named 'later'"):
        r.completion("broken", messages=MESSAGES, stream=True)
    with pytest.raises(errors.ConfigurationError, match="api_key belongs to a deployment"):
        r.completion("fast", messages=MESSAGES, api_key="sk-other")
    assert servers[0].requests == []


# --- quick setup, setup_<provider>, chat ------------------------------------------------------


def test_quick_setup_registers_providers_found_in_the_environment(
    servers: list[ReplayServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in rxllm.list_providers():
        for variable in rxllm.provider_info(name).env_keys:
            monkeypatch.delenv(variable, raising=False)
    keyless = [
        p
        for p in rxllm.list_providers()
        if not rxllm.provider_info(p).key_required and rxllm.provider_info(p).default_model
    ]
    r = Router()
    assert r.quick_setup() == keyless
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", base(servers[0]))
    assert r.quick_setup() == sorted(["openai", *keyless])
    assert r.get_config("openai")["model"] == "gpt-4o-mini"  # type: ignore[index]

    servers[0].queue(response_reply())
    answer = r.chat("openai", "What is 2+2?", system_prompt="Answer briefly.")
    assert answer.text == RESPONSE_TEXT
    (request,) = servers[0].requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.json()["model"] == "gpt-4o-mini"
    assert request.json()["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "What is 2+2?"},
    ]


def test_setup_helpers_come_from_the_registry(servers: list[ReplayServer]) -> None:
    r = Router()
    assert r.setup_openai(model="gpt-4o", api_key=API_KEY, api_base=base(servers[0])) == "openai"
    assert r.get_config("openai")["model"] == "gpt-4o"  # type: ignore[index]
    router.clear()
    try:
        assert router.setup_openai(api_key=API_KEY, name="mini") == "mini"  # type: ignore[attr-defined]
        assert router.get_config("mini")["model"] == "gpt-4o-mini"  # type: ignore[index]
    finally:
        router.clear()
    with pytest.raises(AttributeError):
        router.setup_nope  # type: ignore[attr-defined]  # noqa: B018
    assert "setup_openai" in dir(router)


# --- dynamic routing ------------------------------------------------------------------------


def test_a_route_function_chooses_per_request(servers: list[ReplayServer]) -> None:
    a, b = servers[0], servers[1]
    seen: list[dict[str, Any]] = []

    def choose(request: dict[str, Any]) -> Any:
        seen.append(request)
        if request["metadata"].get("priority") == "high":
            return {"provider": "openai", "model": "gpt-4o", "api_base": base(b)}
        return "fast"

    r, attempts = make_router()
    r.register("fast", provider="openai", model="gpt-4o-mini", api_key=API_KEY, api_base=base(a))
    r.register("adaptive", **router.create_router(choose, {"openai": {"api_key": API_KEY}}))
    a.queue(response_reply())
    b.queue(response_reply())
    assert r.completion("adaptive", messages=MESSAGES).text == RESPONSE_TEXT
    assert r.completion("adaptive", messages=MESSAGES, metadata={"priority": "high"}).text == (
        RESPONSE_TEXT
    )
    assert attempts.summary() == [("fast", "success"), ("adaptive:openai/gpt-4o", "success")]
    assert a.requests[0].json()["model"] == "gpt-4o-mini"
    assert b.requests[0].json()["model"] == "gpt-4o"
    assert b.requests[0].headers["Authorization"] == f"Bearer {API_KEY}"
    assert seen[1]["messages"] == MESSAGES
    assert seen[1]["stream"] is False
    r.register("odd", route=lambda request: 42)
    with pytest.raises(errors.ConfigurationError, match="the route function returned int"):
        r.completion("odd", messages=MESSAGES)


# --- retries ------------------------------------------------------------------------------------


def test_a_retry_goes_to_another_deployment_at_once(servers: list[ReplayServer]) -> None:
    a, b = always_500(servers[0]), servers[1]
    b.queue(response_reply())
    fake = FakeTime()
    r, attempts = make_router(fake)
    r.register("smart", deployments=[dep(a, "a"), dep(b, "b")])
    assert r.completion("smart", messages=MESSAGES).text == RESPONSE_TEXT
    assert attempts.summary() == [("a", "error"), ("b", "success")]
    assert isinstance(attempts.items[0].error, errors.InternalServerError)
    assert fake.sleeps == []
    assert (len(a.requests), len(b.requests)) == (1, 1)


def test_one_failing_deployment_backs_off_exponentially_then_gives_up(
    servers: list[ReplayServer],
) -> None:
    a = always_500(servers[0])
    fake = FakeTime()
    r, attempts = make_router(fake, retry_delay=0.5, max_retry_delay=8.0)
    r.register("fast", deployments=[dep(a, "a")], num_retries=3)
    with pytest.raises(errors.InternalServerError) as caught:
        r.completion("fast", messages=MESSAGES)
    assert caught.value.status_code == 500
    assert caught.value.provider == "openai"
    assert len(a.requests) == 4
    assert attempts.summary() == [("a", "error")] * 4
    first, second, third = fake.sleeps
    assert 0.25 <= first <= 0.5
    assert 0.5 <= second <= 1.0
    assert 1.0 <= third <= 2.0


def test_429_retry_after_is_honoured(servers: list[ReplayServer]) -> None:
    a = servers[0]
    a.queue(
        error_reply(429, "Rate limit reached", "rate_limit_exceeded", {"retry-after-ms": "1500"}),
        response_reply(),
    )
    fake = FakeTime()
    r, attempts = make_router(fake)
    r.register("fast", deployments=[dep(a, "a")])
    assert r.completion("fast", messages=MESSAGES).text == RESPONSE_TEXT
    assert fake.sleeps == [1.5]
    assert attempts.summary() == [("a", "error"), ("a", "success")]
    assert isinstance(attempts.items[0].error, errors.RateLimitError)


def test_429_retry_after_in_real_time(servers: list[ReplayServer]) -> None:
    a = servers[0]
    a.queue(
        error_reply(429, "Rate limit reached", "rate_limit_exceeded", {"retry-after-ms": "300"}),
        stream_reply(),
    )
    r, attempts = make_router()
    r.register("fast", deployments=[dep(a, "a")])
    started = time.monotonic()
    assert (
        collect_sync(r.completion("fast", messages=MESSAGES, stream=True), timeout=10).text == TEXT
    )
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 2.0
    assert attempts.wait(2) == [("a", "error"), ("a", "success")]


def test_a_retry_after_beyond_max_retry_time_is_not_waited_for(
    servers: list[ReplayServer],
) -> None:
    a = servers[0]
    a.queue(error_reply(429, "Rate limit reached", "rate_limit_exceeded", {"retry-after": "30"}))
    fake = FakeTime()
    r, _ = make_router(fake, max_retry_time=5.0)
    r.register("fast", deployments=[dep(a, "a")])
    with pytest.raises(errors.RateLimitError, match="Rate limit reached") as caught:
        r.completion("fast", messages=MESSAGES)
    assert caught.value.retry_after == 30.0
    assert fake.sleeps == []
    assert len(a.requests) == 1
    assert r.status("fast")[0]["paused"] == 30.0


@pytest.mark.parametrize("retry_after", ["1732999999", "1e9", "inf"])
def test_an_absurd_retry_after_pauses_a_deployment_for_max_cooldown_at_most(
    servers: list[ReplayServer], retry_after: str
) -> None:
    a = servers[0]
    a.queue(
        error_reply(429, "Rate limit reached", "rate_limit_exceeded", {"retry-after": retry_after}),
        response_reply(),
        error_reply(429, "Rate limit reached", "rate_limit_exceeded", {"retry-after": retry_after}),
        response_reply(),
    )
    fake = FakeTime()
    r, _ = make_router(fake)
    assert r.settings.max_cooldown == 300.0  # the documented default
    r.register("fast", deployments=[dep(a, "a")])
    with pytest.raises(errors.RateLimitError, match="Rate limit reached") as caught:
        r.completion("fast", messages=MESSAGES)
    assert caught.value.retry_after == float(retry_after)  # what the server said, as it said it
    assert r.status("fast")[0]["paused"] == 300.0  # what the router honours
    fake.now += 300.5
    assert r.completion("fast", messages=MESSAGES).text == RESPONSE_TEXT
    r.configure(max_cooldown=20.0)  # now within max_retry_time: waited for, then retried
    assert r.completion("fast", messages=MESSAGES).text == RESPONSE_TEXT
    assert fake.sleeps == [20.0]
    assert len(a.requests) == 4


@pytest.mark.parametrize("retry_after", ["nan", "-5", "soon", "1.5.2"])
def test_a_retry_after_that_makes_no_sense_falls_back_to_the_usual_backoff(
    servers: list[ReplayServer], retry_after: str
) -> None:
    a = servers[0]
    a.queue(
        error_reply(429, "Rate limit reached", "rate_limit_exceeded", {"retry-after": retry_after}),
        response_reply(),
    )
    fake = FakeTime()
    r, attempts = make_router(fake)
    r.register("fast", deployments=[dep(a, "a")])
    assert r.completion("fast", messages=MESSAGES).text == RESPONSE_TEXT
    error = attempts.items[0].error
    assert isinstance(error, errors.RateLimitError) and error.retry_after is None
    (slept,) = fake.sleeps
    assert 0.25 <= slept <= 0.5  # retry_delay 0.5 s with jitter, as with no header at all
    assert r.status("fast")[0]["paused"] == 0.0


@pytest.mark.parametrize("zone", [" GMT", ""])
def test_an_http_date_retry_after_is_the_time_until_then(
    servers: list[ReplayServer], zone: str
) -> None:
    a = servers[0]
    then = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=12)
    date = then.strftime("%a, %d %b %Y %H:%M:%S") + zone  # RFC 9110 IMF-fixdate (GMT)
    a.queue(
        error_reply(429, "Rate limit reached", "rate_limit_exceeded", {"retry-after": date}),
        response_reply(),
    )
    fake = FakeTime()
    r, _ = make_router(fake)
    r.register("fast", deployments=[dep(a, "a")])
    assert r.completion("fast", messages=MESSAGES).text == RESPONSE_TEXT
    (slept,) = fake.sleeps
    assert 9.0 < slept <= 12.0


def test_max_cooldown_is_checked() -> None:
    for bad in (-1.0, float("nan"), "60"):
        with pytest.raises(errors.ConfigurationError, match="max_cooldown"):
            Router(max_cooldown=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, None, errors.BadRequestError),
        (401, "invalid_api_key", errors.AuthenticationError),
        (429, "insufficient_quota", errors.QuotaExceededError),
    ],
)
def test_client_errors_are_never_retried(
    servers: list[ReplayServer], status: int, code: str | None, cls: type[Exception]
) -> None:
    a, b = servers[0], servers[1]
    a.default = error_reply(status, "no", code)
    b.default = error_reply(status, "no", code)
    fake = FakeTime()
    r, attempts = make_router(fake)
    r.register("smart", deployments=[dep(a, "a"), dep(b, "b")], num_retries=3)
    with pytest.raises(cls):
        r.completion("smart", messages=MESSAGES)
    assert attempts.summary() == [("a", "error")]
    assert (len(a.requests), len(b.requests)) == (1, 0)
    assert fake.sleeps == []


# --- fallbacks ----------------------------------------------------------------------------------


def test_fallbacks_are_tried_in_order(servers: list[ReplayServer]) -> None:
    a, b, c = always_500(servers[0]), servers[1], servers[2]
    b.default = error_reply(503, "overloaded")
    c.queue(response_reply())
    fake = FakeTime()
    r, attempts = make_router(fake)
    r.register("first", deployments=[dep(a, "a")], num_retries=0, fallbacks=["second", "third"])
    r.register("second", deployments=[dep(b, "b")], num_retries=1)
    r.register("third", deployments=[dep(c, "c")], fallbacks=["first"])
    assert r.completion("first", messages=MESSAGES).text == RESPONSE_TEXT
    assert attempts.summary() == [("a", "error"), ("b", "error"), ("b", "error"), ("c", "success")]
    assert [a.group for a in attempts.items] == ["first", "second", "second", "third"]
    assert {a.config for a in attempts.items} == {"first"}
    assert [a.number for a in attempts.items] == [1, 2, 3, 4]


def test_an_authentication_error_falls_back_but_a_bad_request_does_not(
    servers: list[ReplayServer],
) -> None:
    a, b = servers[0], servers[1]
    a.queue(error_reply(401, "Incorrect API key provided", "invalid_api_key"))
    b.queue(response_reply())
    r, attempts = make_router(FakeTime())
    r.register("primary", deployments=[dep(a, "a")], fallbacks=["backup"])
    r.register("backup", deployments=[dep(b, "b")])
    assert r.completion("primary", messages=MESSAGES).text == RESPONSE_TEXT
    a.queue(error_reply(400, "Invalid value for 'temperature'", "invalid_value"))
    with pytest.raises(errors.BadRequestError, match="Invalid value"):
        r.completion("primary", messages=MESSAGES)
    assert attempts.summary() == [("a", "error"), ("b", "success"), ("a", "error")]
    assert len(b.requests) == 1


def test_context_window_errors_go_to_context_window_fallbacks(
    servers: list[ReplayServer],
) -> None:
    a, b, c = servers[0], servers[1], servers[2]
    a.queue(
        error_reply(
            400,
            "This model's maximum context length is 8192 tokens.",
            "context_length_exceeded",
        )
    )
    c.queue(response_reply())
    r, attempts = make_router(FakeTime())
    r.register(
        "small", deployments=[dep(a, "a")], fallbacks=["other"], context_window_fallbacks=["big"]
    )
    r.register("other", deployments=[dep(b, "b")])
    r.register("big", deployments=[dep(c, "c")])
    assert r.completion("small", messages=MESSAGES).text == RESPONSE_TEXT
    assert attempts.summary() == [("a", "error"), ("c", "success")]
    assert isinstance(attempts.items[0].error, errors.ContextWindowExceededError)
    assert b.requests == []


# --- cooldowns ----------------------------------------------------------------------------------


def test_a_failing_deployment_cools_down_and_comes_back(servers: list[ReplayServer]) -> None:
    a, b = always_500(servers[0]), servers[1]
    b.default = response_reply()
    fake = FakeTime()
    r, attempts = make_router(fake, allowed_fails=1, cooldown_time=10.0, fail_window=60.0)
    r.register("smart", deployments=[dep(a, "a"), dep(b, "b")])
    for _ in range(3):
        assert r.completion("smart", messages=MESSAGES).text == RESPONSE_TEXT
    assert attempts.summary() == [
        ("a", "error"),
        ("b", "success"),
        ("a", "error"),  # the second failure within the window: a cools down
        ("b", "success"),
        ("b", "success"),  # a is skipped
    ]
    assert [x.cooled_down for x in attempts.items] == [False, False, True, False, False]
    assert r.status("smart")[0]["cooldown"] == 10.0
    fake.now += 10.5
    assert r.completion("smart", messages=MESSAGES).text == RESPONSE_TEXT
    assert attempts.summary()[5:] == [("a", "error"), ("b", "success")]
    assert len(a.requests) == 3


def test_when_every_deployment_cools_down_the_request_falls_back(
    servers: list[ReplayServer],
) -> None:
    a, b = always_500(servers[0]), servers[1]
    b.default = response_reply()
    fake = FakeTime()
    r, attempts = make_router(fake, allowed_fails=0, cooldown_time=5.0)
    r.register("flaky", deployments=[dep(a, "a")], fallbacks=["steady"])
    r.register("steady", deployments=[dep(b, "b")])
    r.register("alone", deployments=[dep(a, "a2")])
    assert r.completion("flaky", messages=MESSAGES).text == RESPONSE_TEXT
    assert r.completion("flaky", messages=MESSAGES).text == RESPONSE_TEXT
    assert attempts.summary() == [("a", "error"), ("b", "success"), ("b", "success")]
    with pytest.raises(errors.InternalServerError):
        r.completion("alone", messages=MESSAGES)
    with pytest.raises(
        errors.ServiceUnavailableError, match="every deployment is cooling down"
    ) as caught:
        r.completion("alone", messages=MESSAGES)
    assert caught.value.retry_after == 5.0


# --- rpm / tpm ------------------------------------------------------------------------------------


def test_rpm_limits_send_requests_elsewhere_until_the_window_passes(
    servers: list[ReplayServer],
) -> None:
    a, b = servers[0], servers[1]
    a.default = response_reply()
    b.default = response_reply()
    fake = FakeTime()
    r, attempts = make_router(fake)
    r.register("smart", deployments=[dep(a, "a", rpm=1), dep(b, "b")])
    for _ in range(3):
        r.completion("smart", messages=MESSAGES)
    fake.now += 60.5
    r.completion("smart", messages=MESSAGES)
    assert attempts.summary() == [
        ("a", "success"),
        ("b", "success"),
        ("b", "success"),
        ("a", "success"),
    ]


def test_an_rpm_limited_single_deployment_waits_for_its_slot(servers: list[ReplayServer]) -> None:
    a = servers[0]
    a.default = response_reply()
    fake = FakeTime()
    r, _ = make_router(fake, max_retry_time=120.0)
    r.register("only", deployments=[dep(a, "a", rpm=2)])
    for _ in range(3):
        r.completion("only", messages=MESSAGES)
    assert fake.sleeps == [60.0]
    # the window now holds the requests at 60 s and 60 s: the next slot is at 120 s
    r.completion("only", messages=MESSAGES)
    r.configure(max_retry_time=10.0)
    with pytest.raises(
        errors.RateLimitError, match="no deployment can take this request"
    ) as caught:
        r.completion("only", messages=MESSAGES)
    assert caught.value.retry_after == 60.0
    assert len(a.requests) == 4
    assert fake.sleeps == [60.0]


def test_tpm_limits_use_the_pluggable_token_estimate(servers: list[ReplayServer]) -> None:
    a, b = servers[0], servers[1]
    a.default = response_reply()
    b.default = response_reply()
    estimated: list[str] = []

    def estimate(text: str) -> int:
        estimated.append(text)
        return len(text.split())

    fake = FakeTime()
    r, attempts = make_router(fake, token_estimator=estimate)
    r.register("smart", deployments=[dep(a, "a", tpm=50), dep(b, "b")])
    short = [{"role": "user", "content": "one two three"}]
    long = [{"role": "user", "content": "word " * 60}]
    r.completion("smart", messages=long)  # 60 tokens never fit a's 50
    r.completion("smart", messages=short)  # 3 tokens fit
    r.completion("smart", messages=short)  # a used 34 (the real usage): 34 + 3 fits
    r.completion("smart", messages=short, max_tokens=20)  # 34 + 34 + 23 > 50
    assert attempts.summary() == [
        ("b", "success"),
        ("a", "success"),
        ("a", "success"),
        ("b", "success"),
    ]
    assert estimated[1] == "one two three"


def test_the_default_token_estimate_is_four_characters_a_token() -> None:
    from rxllm.router._router import default_token_estimator

    estimate = default_token_estimator()
    if hasattr(rxllm, "estimate_tokens"):  # another helper's estimator, when it exists
        assert estimate is rxllm.estimate_tokens
    else:
        assert estimate("x" * 400) == 100


# --- strategies ------------------------------------------------------------------------------------


def test_weighted_shuffle_follows_the_weights() -> None:
    from rxllm.router._config import make_deployment
    from rxllm.router._health import choose

    heavy = make_deployment(
        {"provider": "openai", "model": "m", "api_key": "k", "weight": 3},
        default_id="heavy",
        where="t",
    )
    light = make_deployment(
        {"provider": "openai", "model": "m", "api_key": "k"}, default_id="light", where="t"
    )
    rng = random.Random(42)
    picks = [choose("simple-shuffle", [heavy, light], rng).id for _ in range(4000)]
    assert 0.72 < picks.count("heavy") / 4000 < 0.78


def test_least_busy_avoids_the_deployment_with_a_request_in_flight(
    servers: list[ReplayServer],
) -> None:
    a, b = servers[0], servers[1]
    body = fixture_bytes(TRANSCRIPT)
    a.queue(Reply(body=body, stall_after=body.index(b" weather")))
    b.queue(stream_reply())
    r, attempts = make_router()
    r.register("smart", deployments=[dep(a, "a"), dep(b, "b")], strategy="least-busy")
    first = Recorder()
    subscription = r.completion("smart", messages=MESSAGES, stream=True).subscribe(first)
    deadline = time.monotonic() + 10
    while not a.requests and time.monotonic() < deadline:
        time.sleep(0.005)  # polling for the server to have the request
    assert r.status("smart")[0]["in_flight"] == 1
    second = r.completion("smart", messages=MESSAGES, stream=True)
    assert collect_sync(second, timeout=10).text == TEXT
    assert second.deployment == "b"
    subscription.dispose()
    assert a.disconnected.wait(10)
    assert sorted(attempts.wait(2)) == [("a", "cancelled"), ("b", "success")]
    assert [s["in_flight"] for s in r.status("smart")] == [0, 0]


def test_lowest_latency_prefers_the_faster_deployment(servers: list[ReplayServer]) -> None:
    slow, fast = servers[0], servers[1]
    slow.default = Reply(body=fixture_bytes(TRANSCRIPT), wait=0.3)
    fast.default = stream_reply()
    r, attempts = make_router()
    r.register(
        "smart", deployments=[dep(slow, "slow"), dep(fast, "fast")], strategy="lowest-latency"
    )
    for n in range(1, 5):
        assert (
            collect_sync(r.completion("smart", messages=MESSAGES, stream=True), timeout=10).text
            == TEXT
        )
        attempts.wait(n)
    assert attempts.summary() == [
        ("slow", "success"),  # untried deployments are measured first
        ("fast", "success"),
        ("fast", "success"),
        ("fast", "success"),
    ]
    slow_latency, fast_latency = (s["latency"] for s in r.status("smart"))
    assert slow_latency >= 0.3
    assert fast_latency < 0.3


# --- streams --------------------------------------------------------------------------------------


def test_a_stream_is_lazy_shared_and_replaying(servers: list[ReplayServer]) -> None:
    a = servers[0]
    a.queue(stream_reply())
    r, attempts = make_router()
    r.register("fast", deployments=[dep(a, "a")])
    stream = r.completion("fast", messages=MESSAGES, stream=True)
    assert isinstance(stream, rxllm.ChatStream)
    assert stream.state == "pending"
    assert a.requests == []
    one, two = Recorder(), Recorder()
    stream.subscribe(one)
    stream.subscribe(two)
    one.wait()
    two.wait()
    late = Recorder()
    stream.subscribe(late)
    late.wait()
    assert text(one.items) == text(two.items) == text(late.items) == TEXT
    assert len(one.items) == len(late.items) == CHUNKS
    assert len(a.requests) == 1
    assert a.requests[0].json()["stream"] is True
    assert attempts.summary() == [("a", "success")]  # reported before the stream completed
    assert stream.attempts[0].latency is not None


def test_a_stream_falls_back_before_its_first_chunk_without_duplicates(
    servers: list[ReplayServer],
) -> None:
    a, b, c = always_500(servers[0]), servers[1], servers[2]
    body = fixture_bytes(TRANSCRIPT)
    b.queue(Reply(body=body, drop_after=body.index(b"data: {")))  # cut before any chunk
    c.queue(stream_reply())
    r, attempts = make_router(FakeTime())
    r.register("smart", deployments=[dep(a, "a"), dep(b, "b")], num_retries=1, fallbacks=["backup"])
    r.register("backup", deployments=[dep(c, "c")])
    recorder = Recorder()
    stream = r.completion("smart", messages=MESSAGES, stream=True)
    stream.subscribe(recorder)
    recorder.wait()
    assert recorder.errors == []
    assert recorder.completed == 1
    assert text(recorder.items) == TEXT
    assert len(recorder.items) == CHUNKS
    assert [chunk.id for chunk in recorder.items].count(recorder.items[0].id) == CHUNKS
    assert attempts.wait(3) == [("a", "error"), ("b", "error"), ("c", "success")]
    assert isinstance(attempts.items[1].error, errors.StreamTruncatedError)
    assert stream.deployment == "c"
    assert (stream.provider, stream.model) == ("openai", "gpt-4o")


def test_after_the_first_chunk_a_failure_is_the_streams_error(servers: list[ReplayServer]) -> None:
    a, b = servers[0], servers[1]
    body = fixture_bytes(TRANSCRIPT)
    a.queue(Reply(body=body, drop_after=body.index(b" weather"), piece=100))
    b.default = stream_reply()
    r, attempts = make_router(FakeTime())
    r.register("smart", deployments=[dep(a, "a"), dep(b, "b")], num_retries=2, fallbacks=["other"])
    r.register("other", deployments=[dep(b, "b2")])
    recorder = Recorder()
    r.completion("smart", messages=MESSAGES, stream=True).subscribe(recorder)
    recorder.wait()
    assert recorder.completed == 0
    (error,) = recorder.errors
    assert isinstance(error, errors.StreamTruncatedError)
    assert error.partial_text == "I'm unable to provide real-time"
    assert text(recorder.items) == "I'm unable to provide real-time"
    assert b.requests == []
    assert attempts.wait(1) == [("a", "error")]


def test_a_deployment_slow_to_the_first_byte_times_out_and_the_next_serves(
    servers: list[ReplayServer],
) -> None:
    slow, fast = servers[0], servers[1]
    slow.queue(Reply(body=fixture_bytes(TRANSCRIPT), wait=5.0))
    fast.queue(stream_reply())
    r, attempts = make_router()
    r.register("smart", deployments=[dep(slow, "slow"), dep(fast, "fast")], timeout=0.3)
    started = time.monotonic()
    assert (
        collect_sync(r.completion("smart", messages=MESSAGES, stream=True), timeout=10).text == TEXT
    )
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 3.0
    assert attempts.wait(2) == [("slow", "error"), ("fast", "success")]
    assert isinstance(attempts.items[0].error, errors.APITimeoutError)
    assert attempts.items[0].latency is None
    assert attempts.items[1].latency is not None
    assert r.status("smart")[0]["latency"] >= 0.3  # a timeout counts against lowest-latency
    assert slow.disconnected.wait(10)


def test_disposing_a_router_stream_closes_its_connection(servers: list[ReplayServer]) -> None:
    a = servers[0]
    body = fixture_bytes(TRANSCRIPT)
    a.queue(Reply(body=body, stall_after=body.index(b" weather")))
    r, attempts = make_router()
    r.register("fast", deployments=[dep(a, "a")])
    got_chunk = threading.Event()
    subscription = r.completion("fast", messages=MESSAGES, stream=True).subscribe(
        lambda chunk: got_chunk.set()
    )
    assert got_chunk.wait(10)
    subscription.dispose()
    assert a.disconnected.wait(10)
    assert attempts.wait(1) == [("a", "cancelled")]
    assert r.status("fast")[0]["in_flight"] == 0


async def test_router_streams_and_requests_inside_asyncio(servers: list[ReplayServer]) -> None:
    a, b = always_500(servers[0]), servers[1]
    b.queue(stream_reply(), response_reply())
    r, attempts = make_router()
    r.register("smart", deployments=[dep(a, "a"), dep(b, "b")])
    stream = await r.acompletion("smart", messages=MESSAGES, stream=True)
    assert isinstance(stream, RouterStream)
    assert stream.loop is asyncio.get_running_loop()
    response = await collect(stream)
    assert response.text == TEXT
    assert response.usage is not None and response.usage.total_tokens == 44
    answer = await r.achat("smart", "hi")
    assert answer.text == RESPONSE_TEXT
    assert attempts.summary()[-2:] == [("a", "error"), ("b", "success")]


# --- observability and secrets ------------------------------------------------------------------------


def test_attempt_callbacks_and_logs_never_show_the_key(
    servers: list[ReplayServer], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = servers[0], servers[1]
    a.default = error_reply(500, f"echo of the key {API_KEY}")
    b.queue(stream_reply())
    caplog.set_level(logging.DEBUG, logger="rxllm")
    r, attempts = make_router(FakeTime(), allowed_fails=0)
    broken: list[str] = []

    def bad_callback(attempt: Attempt) -> None:
        broken.append(attempt.deployment)
        raise RuntimeError("a callback bug")

    remove = r.on_attempt(bad_callback)
    r.register("smart", deployments=[dep(a, "a"), dep(b, "b")])
    assert (
        collect_sync(r.completion("smart", messages=MESSAGES, stream=True), timeout=10).text == TEXT
    )
    assert attempts.wait(2) == [("a", "error"), ("b", "success")]
    failed = attempts.items[0]
    assert (failed.provider, failed.model, failed.api_base) == ("openai", "gpt-4o", base(a))
    assert failed.error is not None and "***" in failed.error.message
    assert failed.cooled_down is True
    assert broken == ["a", "b"]
    remove()
    assert "a callback bug" in caplog.text
    assert "cools down" in caplog.text
    everything = caplog.text + repr(attempts.items) + str(attempts.items)
    assert API_KEY not in everything


# --- README ------------------------------------------------------------------------------------------


def _router_section_code() -> list[str]:
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("\n## Router\n", 1)[1].split("\n## ", 1)[0]
    blocks = section.split("```python\n")[1:]
    return [block.split("```", 1)[0] for block in blocks]


def test_readme_router_examples_run(
    servers: list[ReplayServer], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The README's Router section, run as written against loopback servers: OpenAI's base
    URL and key from the environment, the example hosts replaced by failing local servers."""
    openai, eu, us = servers[0], always_500(servers[1]), servers[2]
    us.default = error_reply(
        429, "Rate limit reached", "rate_limit_exceeded", {"retry-after-ms": "10"}
    )
    openai.queue(response_reply(), stream_reply(), stream_reply(), stream_reply(), response_reply())
    for name in rxllm.list_providers():
        for variable in rxllm.provider_info(name).env_keys:
            monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", base(openai))
    router.clear()
    saved = router.configure()
    router.configure(retry_delay=0.01, max_retry_delay=0.05)
    remove_callbacks = router.default_router()._callbacks
    try:
        namespace: dict[str, Any] = {}
        for block in _router_section_code():
            code = block.replace("https://eu.example.com/v1", base(eu))
            code = code.replace("https://us.example.com/v1", base(us))
            exec(compile(code, "README.md", "exec"), namespace)
        assert namespace["response"].text == RESPONSE_TEXT
    finally:
        router.clear()
        router.configure(**{f: getattr(saved, f) for f in saved.__struct_fields__})
        router.default_router()._callbacks = remove_callbacks
    out = capsys.readouterr().out
    assert out.startswith(RESPONSE_TEXT + "\n")
    assert f"\n=== fast ===\n{TEXT}\n\n=== smart ===\n{TEXT}\n" in out
    assert f"fast success\n{TEXT}\n" in out
    assert "eu" not in out  # deployments are named smart[0], smart[1]
    assert "smart[0] error\n" in out
    assert "smart[1] error\n" in out
    assert len(openai.requests) == 5
    assert [r.json()["model"] for r in openai.requests] == [
        "gpt-4o-mini",
        "gpt-4o-mini",
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4o-mini",
    ]
