"""Virtual keys over real HTTP: LiteLLM's management endpoints on a loopback port, a SQLite file
in tmp_path, an injected clock (no sleeps), and two stores on one file as two workers see it.

The field names checked are the ones LiteLLM's proxy answers with (``GenerateKeyResponse``,
``/key/info``'s ``{"key", "info"}``, ``{"deleted_keys"}``, ``/key/list``'s page) and that its
client and CLI read (``key``, ``token``, ``key_alias``, ``spend``, ``expires``...).
"""

from __future__ import annotations

import contextlib
import hashlib
import multiprocessing
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from rxllm.gateway._errors import anthropic_error_body, describe, openai_error_body
from rxllm.gateway._keys import (
    BUDGET_STATUS,
    GenerateKey,
    KeyLimits,
    KeyStore,
    VirtualKey,
    authenticate,
    hash_key,
    key_routes,
    parse_duration,
    unauthenticated,
)

MASTER = "sk-master-0123456789"
ADMIN = {"Authorization": f"Bearer {MASTER}"}
#: 2026-01-31T12:00:00Z: the last day of a month, so "1mo" has to clamp.
T0 = datetime(2026, 1, 31, 12, tzinfo=timezone.utc).timestamp()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "keys.db")


@pytest.fixture
def store(db_path: str, clock: Clock) -> Iterator[KeyStore]:
    opened = KeyStore(db_path, clock=clock)
    yield opened
    opened.close()


class Api:
    """The management endpoints on a loopback port, called as a client would."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        data: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        async with self.session.request(
            method,
            self.base + path,
            json=body,
            data=data,
            params=params,
            headers=ADMIN if headers is None else headers,
        ) as response:
            assert response.content_type == "application/json"
            return response.status, await response.json()

    async def generate(self, **body: Any) -> dict[str, Any]:
        status, answer = await self.call("POST", "/key/generate", body)
        assert status == 200, answer
        assert isinstance(answer, dict)
        return answer


@contextlib.asynccontextmanager
async def serving(store: KeyStore) -> AsyncIterator[Api]:
    app = web.Application()
    app.add_routes(key_routes(store, MASTER))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(session, f"http://127.0.0.1:{port}")
    finally:
        await runner.cleanup()


@pytest.fixture
async def api(store: KeyStore) -> AsyncIterator[Api]:
    async with serving(store) as served:
        yield served


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def looked_up(store: KeyStore, key: str) -> VirtualKey:
    found = store.lookup(key)
    assert found is not None
    return found


# --- /key/generate, /key/info, /key/delete, /key/list -----------------------------------------


async def test_generate_answers_litellms_fields_and_the_token_is_the_keys_sha256(
    api: Api, clock: Clock
) -> None:
    answer = await api.generate(
        key_alias="ci-bot",
        models=["gpt-4o", "claude-sonnet"],
        max_budget=12.5,
        rpm_limit=60,
        tpm_limit=100000,
        duration="1h",
        metadata={"team": "core-infra"},
        user_id="ana",
    )
    key = answer["key"]
    assert key.startswith("sk-") and len(key) > 40
    assert answer["token"] == answer["token_id"] == hashlib.sha256(key.encode()).hexdigest()
    assert answer["key_name"] == f"sk-...{key[-4:]}"
    assert answer["expires"] == iso(clock.now + 3600)
    assert answer["created_at"] == iso(clock.now)
    expected = {
        "key_alias": "ci-bot",
        "models": ["gpt-4o", "claude-sonnet"],
        "max_budget": 12.5,
        "spend": 0.0,
        "rpm_limit": 60,
        "tpm_limit": 100000,
        "metadata": {"team": "core-infra"},
        "user_id": "ana",
        "team_id": None,
        "duration": "1h",
        "budget_duration": None,
    }
    assert {name: answer[name] for name in expected} == expected


async def test_generate_with_an_empty_body_makes_an_unlimited_key(api: Api) -> None:
    status, answer = await api.call("POST", "/key/generate", data=b"")
    assert status == 200
    assert answer["models"] == [] and answer["expires"] is None and answer["max_budget"] is None


async def test_info_by_key_or_by_hash_reports_the_same_key(api: Api, store: KeyStore) -> None:
    made = await api.generate(key_alias="a", max_budget=3.0)
    store.add_spend(made["token"], 0.75, 100, 20)
    for asked in (made["key"], made["token"]):
        status, answer = await api.call("GET", "/key/info", params={"key": asked})
        assert status == 200
        assert answer["key"] == asked
        info = answer["info"]
        assert info["token"] == made["token"]
        assert info["key_alias"] == "a" and info["max_budget"] == 3.0
        assert info["spend"] == 0.75 and info["status"] == "active"
        assert (info["prompt_tokens"], info["completion_tokens"], info["requests"]) == (100, 20, 1)
        assert made["key"] not in str(answer["info"])


async def test_info_of_an_unknown_key_is_404_and_without_a_key_400(api: Api) -> None:
    status, answer = await api.call("GET", "/key/info", params={"key": "sk-nobody-" + "x" * 20})
    assert status == 404 and answer["error"]["param"] == "key"
    status, answer = await api.call("GET", "/key/info")
    assert status == 400 and answer["error"]["param"] == "key"


async def test_delete_by_key_hash_or_alias(api: Api, store: KeyStore) -> None:
    by_key, by_hash, by_alias = [await api.generate(key_alias=f"k{i}") for i in range(3)]
    status, answer = await api.call(
        "POST", "/key/delete", {"keys": [by_key["key"], by_hash["token"]]}
    )
    assert (status, answer) == (200, {"deleted_keys": [by_key["key"], by_hash["token"]]})
    status, answer = await api.call("POST", "/key/delete", {"key_aliases": ["k2"]})
    assert (status, answer) == (200, {"deleted_keys": ["k2"]})
    for made in (by_key, by_hash, by_alias):
        assert store.lookup(made["key"]) is None
        status, _ = await api.call("GET", "/key/info", params={"key": made["token"]})
        assert status == 404
    status, answer = await api.call("POST", "/key/delete", {"keys": [by_key["key"]]})
    assert status == 404 and answer["error"]["message"] == "No keys found"


async def test_list_pages_hashes_or_full_objects(api: Api) -> None:
    made = [await api.generate(key_alias=f"k{i}") for i in range(3)]
    status, answer = await api.call("GET", "/key/list", params={"size": "2"})
    assert status == 200
    assert answer == {
        "keys": [made[0]["token"], made[1]["token"]],
        "total_count": 3,
        "current_page": 1,
        "total_pages": 2,
    }
    params = {"page": "2", "size": "2", "return_full_object": "true"}
    status, answer = await api.call("GET", "/key/list", params=params)
    assert [key["token"] for key in answer["keys"]] == [made[2]["token"]]
    assert answer["keys"][0]["key_alias"] == "k2"
    status, answer = await api.call("GET", "/key/list", params={"key_alias": "k1"})
    assert answer["keys"] == [made[1]["token"]] and answer["total_count"] == 1


async def test_a_custom_key_is_taken_as_given(api: Api, store: KeyStore) -> None:
    custom = "sk-imported-from-litellm-0001"
    answer = await api.generate(key=custom, models=["gpt-4o"])
    assert answer["key"] == custom and answer["token"] == hash_key(custom)
    assert looked_up(store, custom).models == ("gpt-4o",)


# --- the master key ---------------------------------------------------------------------------

ENDPOINTS = [
    ("POST", "/key/generate", {}),
    ("GET", "/key/info?key=sk-whatever-0123456789", None),
    ("POST", "/key/delete", {"keys": ["sk-whatever-0123456789"]}),
    ("GET", "/key/list", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sk-wrong-0123456789"},
        {"Authorization": f"Basic {MASTER}"},
        {"x-api-key": MASTER + "x"},
    ],
    ids=["missing", "wrong", "not-bearer", "wrong-x-api-key"],
)
async def test_management_without_the_master_key_is_401_in_openais_shape(
    api: Api, method: str, path: str, body: Any, headers: dict[str, str]
) -> None:
    status, answer = await api.call(method, path, body, headers=headers)
    assert status == 401
    assert answer["error"]["code"] == "invalid_api_key"
    assert answer["error"]["type"] == "invalid_request_error"
    assert set(answer["error"]) == {"message", "type", "param", "code"}


async def test_a_virtual_key_is_not_the_master_key(api: Api, store: KeyStore) -> None:
    made = await api.generate()
    status, _ = await api.call("GET", "/key/list", headers={"x-api-key": made["key"]})
    assert status == 401
    status, _ = await api.call("GET", "/key/list", headers={"x-api-key": MASTER})
    assert status == 200


# --- bad bodies are 400s naming the field -----------------------------------------------------

BAD_BODIES = [
    ("/key/generate", b"{not json", None),
    ("/key/generate", b"[1, 2]", None),
    ("/key/generate", b'{"rpm_limit": "ten"}', "rpm_limit"),
    ("/key/generate", b'{"tpm_limit": -1}', "tpm_limit"),
    ("/key/generate", b'{"max_budget": -0.5}', "max_budget"),
    ("/key/generate", b'{"models": "gpt-4o"}', "models"),
    ("/key/generate", b'{"metadata": [1]}', "metadata"),
    ("/key/generate", b'{"duration": "3 weeks"}', "duration"),
    ("/key/generate", b'{"duration": "0d"}', "duration"),
    ("/key/generate", b'{"duration": "99999999999d"}', "duration"),
    ("/key/generate", b'{"budget_duration": "1y"}', "budget_duration"),
    ("/key/generate", b'{"key": "pk-not-an-sk-key-000"}', "key"),
    ("/key/generate", b'{"key": "sk-short"}', "key"),
    ("/key/generate", b'{"team_id": "core"}', "team_id"),
    ("/key/generate", b'{"model_rpm_limit": {"gpt-4o": 5}}', "model_rpm_limit"),
    ("/key/generate", b'{"max_parallel_requests": 2}', "max_parallel_requests"),
    ("/key/delete", b"{}", "keys"),
    ("/key/delete", b'{"keys": "sk-one"}', "keys"),
    ("/key/delete", b"", "keys"),
]


@pytest.mark.parametrize(("path", "raw", "field"), BAD_BODIES)
async def test_a_bad_body_is_a_400_naming_the_field(
    api: Api, path: str, raw: bytes, field: str | None
) -> None:
    status, answer = await api.call("POST", path, data=raw)
    assert status == 400, answer
    assert answer["error"]["param"] == field
    assert answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["message"]


async def test_a_taken_alias_or_key_is_a_400(api: Api) -> None:
    await api.generate(key_alias="one", key="sk-custom-key-000000001")
    status, answer = await api.call("POST", "/key/generate", {"key_alias": "one"})
    assert status == 400 and answer["error"]["param"] == "key_alias"
    status, answer = await api.call("POST", "/key/generate", {"key": "sk-custom-key-000000001"})
    assert status == 400 and answer["error"]["param"] == "key"


@pytest.mark.parametrize(
    ("params", "field"),
    [({"size": "0"}, "size"), ({"page": "x"}, "page"), ({"size": "101"}, "size")],
)
async def test_bad_list_queries_are_400s(api: Api, params: dict[str, str], field: str) -> None:
    status, answer = await api.call("GET", "/key/list", params=params)
    assert status == 400 and answer["error"]["param"] == field


# --- durations and expiry (the injected clock) -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("30m", 1800),
        ("1h", 3600),
        ("7d", 7 * 86400),
        ("2w", 14 * 86400),
        ("daily", 86400),
        ("1mo", 28 * 86400),  # from January 31st: February's last day
        ("2mo", (28 + 31) * 86400),  # March 31st
    ],
)
async def test_durations_end_when_litellm_says(
    api: Api, store: KeyStore, clock: Clock, text: str, seconds: int
) -> None:
    made = await api.generate(duration=text, key_alias=text)
    assert made["expires"] == iso(T0 + seconds)
    key = looked_up(store, made["key"])
    assert key.refusal("gpt-4o", T0 + seconds - 1) is None
    expired = key.refusal("gpt-4o", T0 + seconds)
    assert expired is not None
    wire = describe(expired)
    assert (wire.status, wire.code, wire.openai_type) == (
        401,
        "invalid_api_key",
        "invalid_request_error",
    )
    assert wire.anthropic_type == "authentication_error"
    clock.now = T0 + seconds
    _, answer = await api.call("GET", "/key/info", params={"key": made["token"]})
    assert answer["info"]["status"] == "expired"


def test_parse_duration_rejects_what_litellm_would_misread() -> None:
    assert parse_duration(" 12h ") == parse_duration("12h")
    for bad in ("", "h", "1", "1.5h", "-1d", "1 d", "1y", "1mos", "0s"):
        with pytest.raises(Exception, match="Invalid duration"):
            parse_duration(bad)


# --- budgets ----------------------------------------------------------------------------------


async def test_a_spent_budget_is_refused_with_litellms_budget_exceeded(
    api: Api, store: KeyStore
) -> None:
    made = await api.generate(max_budget=1.0)
    store.add_spend(made["token"], 0.5, 10, 10)
    assert looked_up(store, made["key"]).refusal("gpt-4o", T0) is None
    store.add_spend(made["token"], 0.5, 10, 10)
    spent = looked_up(store, made["key"])
    assert spent.spend == 1.0
    refusal = spent.refusal("gpt-4o", T0)
    assert refusal is not None
    wire = describe(refusal)
    assert wire.status == BUDGET_STATUS == 400
    body = openai_error_body(wire)["error"]
    assert (body["type"], body["code"]) == ("budget_exceeded", "budget_exceeded")
    assert body["message"] == "Budget has been exceeded! Current cost: 1.0, Max budget: 1.0"
    assert anthropic_error_body(wire)["error"]["type"] == "billing_error"


async def test_a_zero_budget_refuses_at_once_and_no_budget_never(api: Api, store: KeyStore) -> None:
    zero = looked_up(store, (await api.generate(max_budget=0))["key"])
    assert zero.refusal("m", T0) is not None
    free = await api.generate()
    store.add_spend(free["token"], 1e9, 0, 0)
    assert looked_up(store, free["key"]).refusal("m", T0) is None


async def test_a_budget_duration_starts_a_new_window_counted_from_creation(
    api: Api, store: KeyStore, clock: Clock
) -> None:
    made = await api.generate(max_budget=1.0, budget_duration="1d")
    assert made["budget_reset_at"] == iso(T0 + 86400)
    store.add_spend(made["token"], 1.0, 0, 0)
    assert looked_up(store, made["key"]).refusal("m", T0 + 86399) is not None
    clock.now = T0 + 86400
    fresh = looked_up(store, made["key"])
    assert (fresh.spend, fresh.budget_reset_at) == (0.0, T0 + 2 * 86400)
    assert fresh.refusal("m", clock.now) is None
    # Idle for days: the next window still ends on the creation's hour, and the spend added
    # first in the new window (before any lookup) counts in it.
    clock.now = T0 + 5 * 86400 + 7
    store.add_spend(made["token"], 0.25, 0, 0)
    info = store.info(made["key"])
    assert info is not None
    assert (info["spend"], info["budget_reset_at"]) == (0.25, iso(T0 + 6 * 86400))


async def test_a_monthly_budget_window_follows_the_calendar(
    api: Api, store: KeyStore, clock: Clock
) -> None:
    made = await api.generate(max_budget=1.0, budget_duration="1mo")
    assert made["budget_reset_at"] == iso(
        datetime(2026, 2, 28, 12, tzinfo=timezone.utc).timestamp()
    )
    clock.now = datetime(2026, 5, 1, tzinfo=timezone.utc).timestamp()
    assert looked_up(store, made["key"]).budget_reset_at == (
        datetime(2026, 5, 31, 12, tzinfo=timezone.utc).timestamp()
    )


def test_a_window_is_reset_once_of_two_workers_and_only_for_its_key(
    db_path: str, clock: Clock
) -> None:
    first = KeyStore(db_path, clock=clock)
    second = KeyStore(db_path, clock=clock)
    try:
        windowed = first.generate(GenerateKey(max_budget=1.0, budget_duration="1h"))
        other = first.generate(GenerateKey(max_budget=1.0))
        first.add_spend(other["token"], 0.5, 0, 0)
        stale = looked_up(second, windowed["key"])  # second's view before the hour ends
        clock.now = T0 + 3600
        first.add_spend(windowed["token"], 0.25, 0, 0)  # first starts the new window
        # second, late, tries to reset the window it saw: the compare-and-set refuses.
        assert stale.budget_reset_at == T0 + 3600
        second._roll(windowed["token"], T0, "1h", stale.budget_reset_at, clock.now)
        assert looked_up(second, windowed["key"]).spend == 0.25
        assert looked_up(second, other["key"]).spend == 0.5
    finally:
        first.close()
        second.close()


def test_spend_must_be_a_finite_cost(store: KeyStore) -> None:
    token = store.generate(GenerateKey())["token"]
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="cost"):
            store.add_spend(token, bad, 0, 0)


# --- model allow-lists ------------------------------------------------------------------------


async def test_a_key_calls_only_its_models(api: Api, store: KeyStore) -> None:
    key = looked_up(store, (await api.generate(models=["gpt-4o", "openai/*"]))["key"])
    assert key.refusal("gpt-4o", T0) is None
    assert key.refusal("openai/gpt-4.1-mini", T0) is None
    for other in ("gpt-4o-mini", "claude-sonnet", "anthropic/openai/x"):
        refusal = key.refusal(other, T0)
        assert refusal is not None
        wire = describe(refusal)
        assert (wire.status, wire.param, wire.openai_type) == (
            403,
            "model",
            "key_model_access_denied",
        )
        assert wire.anthropic_type == "permission_error"
    anything = looked_up(store, (await api.generate())["key"])
    assert anything.refusal("whatever/model", T0) is None


# --- rate limits (the injected clock) ---------------------------------------------------------


def limited(rpm: int | None = None, tpm: int | None = None) -> VirtualKey:
    return VirtualKey(token="t" * 64, key_name="sk-...abcd", rpm_limit=rpm, tpm_limit=tpm)


def test_rpm_admits_the_limit_per_sliding_minute() -> None:
    limits, key = KeyLimits(), limited(rpm=3)
    assert [limits.admit(key, t) for t in (0.0, 1.0, 2.0)] == [None, None, None]
    refused = limits.admit(key, 3.0)
    assert refused is not None
    wire = describe(refused)
    assert (wire.status, wire.code, wire.openai_type) == (429, "rate_limit_exceeded", "requests")
    assert wire.retry_after == 57.0
    assert limits.admit(key, 59.999) is not None
    assert limits.admit(key, 60.0) is None  # the request of t=0 has left the window
    assert limits.admit(key, 60.5) is not None  # a refusal is not counted...
    assert limits.admit(key, 61.0) is None  # ...so t=1's slot frees at 61


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(min_value=0, max_value=5),
    gaps=st.lists(st.floats(min_value=0, max_value=30, allow_nan=False), max_size=60),
)
def test_rpm_never_admits_more_than_the_limit_in_any_60_seconds(
    limit: int, gaps: list[float]
) -> None:
    limits, key = KeyLimits(), limited(rpm=limit)
    now, admitted = 0.0, []
    for gap in gaps:
        now += gap
        refusal = limits.admit(key, now)
        if refusal is None:
            admitted.append(now)
        else:
            assert refusal.retry_after is not None and 0 <= refusal.retry_after <= 60
    for at in admitted:
        assert sum(1 for other in admitted if at - 60 < other <= at) <= limit


def test_tpm_refuses_once_the_minutes_tokens_reach_the_limit() -> None:
    limits, key = KeyLimits(), limited(tpm=100)
    assert limits.admit(key, 0.0) is None
    limits.add_tokens(key, 60, 1.0)
    assert limits.admit(key, 2.0) is None
    limits.add_tokens(key, 50, 3.0)
    refused = limits.admit(key, 4.0)
    assert refused is not None
    wire = describe(refused)
    assert (wire.status, wire.openai_type, wire.retry_after) == (429, "tokens", 57.0)
    assert "Limit 100, Used 110" in wire.message
    assert limits.admit(key, 60.999) is not None
    assert limits.admit(key, 61.0) is None  # the 60 tokens of t=1 have left: 50 < 100


def test_both_limits_and_no_limits() -> None:
    limits = KeyLimits()
    both = limited(rpm=1, tpm=10)
    assert limits.admit(both, 0.0) is None
    limits.add_tokens(both, 10, 0.5)
    refused = limits.admit(both, 1.0)
    assert refused is not None and describe(refused).openai_type == "tokens"
    free = limited()
    assert all(limits.admit(free, float(t)) is None for t in range(1000))


# --- two workers on one file --------------------------------------------------------------------


def test_two_stores_on_one_file_add_spend_exactly(db_path: str, clock: Clock) -> None:
    first = KeyStore(db_path, clock=clock)
    second = KeyStore(db_path, clock=clock)
    try:
        made = first.generate(GenerateKey(max_budget=1000.0))
        start = threading.Barrier(2, timeout=10)
        failures: list[BaseException] = []

        def spend(store: KeyStore) -> None:
            try:
                start.wait()
                for _ in range(400):
                    store.add_spend(made["token"], 0.125, 3, 2)
            except BaseException as error:
                failures.append(error)

        threads = [threading.Thread(target=spend, args=(s,)) for s in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in threads)
        assert failures == []
        for store in (first, second):
            info = store.info(made["token"])
            assert info is not None
            assert (info["spend"], info["requests"], info["prompt_tokens"]) == (100.0, 800, 2400)
            assert looked_up(store, made["key"]).spend == 100.0
    finally:
        first.close()
        second.close()


def _spend_in_another_process(path: str, token: str, times: int) -> None:
    """A worker process's share of the spend (a spawned child runs this)."""
    store = KeyStore(path)
    try:
        for _ in range(times):
            store.add_spend(token, 0.25, 1, 1)
    finally:
        store.close()


def test_worker_processes_sharing_the_file_add_up_exactly(db_path: str) -> None:
    store = KeyStore(db_path)
    try:
        made = store.generate(GenerateKey())
        context = multiprocessing.get_context("spawn")
        workers = [
            context.Process(target=_spend_in_another_process, args=(db_path, made["token"], 300))
            for _ in range(2)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=45)
        stuck = [worker for worker in workers if worker.is_alive()]
        for worker in stuck:
            worker.kill()
            worker.join()
        assert not stuck
        assert [worker.exitcode for worker in workers] == [0, 0]
        assert looked_up(store, made["key"]).spend == 150.0
    finally:
        store.close()


def test_one_worker_sees_another_workers_spend_and_deletion_at_once(
    db_path: str, clock: Clock
) -> None:
    first = KeyStore(db_path, clock=clock)
    second = KeyStore(db_path, clock=clock)
    try:
        made = first.generate(GenerateKey(max_budget=1.0, models=["m"]))
        assert looked_up(second, made["key"]).refusal("m", T0) is None  # now in second's cache
        first.add_spend(made["token"], 1.0, 0, 0)
        assert looked_up(second, made["key"]).refusal("m", T0) is not None
        assert first.delete([made["key"]]) == [made["key"]]
        assert second.lookup(made["key"]) is None
        # The same custom key made again with other settings: the cache does not serve the old.
        custom = "sk-custom-key-0000000042"
        second.generate(GenerateKey(key=custom, models=["a"]))
        assert looked_up(first, custom).models == ("a",)
        first.delete([custom])
        first.generate(GenerateKey(key=custom, models=["b"]))
        assert looked_up(second, custom).models == ("b",)
    finally:
        first.close()
        second.close()


def test_keys_outlive_the_store_that_made_them(db_path: str) -> None:
    made = KeyStore(db_path)
    try:
        answer = made.generate(GenerateKey(key_alias="kept", rpm_limit=5))
    finally:
        made.close()
    reopened = KeyStore(db_path)
    try:
        key = looked_up(reopened, answer["key"])
        assert (key.key_alias, key.rpm_limit) == ("kept", 5)
    finally:
        reopened.close()


# --- keys are stored hashed -------------------------------------------------------------------


async def test_the_file_never_holds_a_plain_key(api: Api, store: KeyStore, tmp_path: Path) -> None:
    made = [await api.generate(key_alias=f"k{i}") for i in range(3)]
    made.append(await api.generate(key="sk-custom-secret-key-77"))
    store.add_spend(made[0]["token"], 0.5, 1, 1)
    written = files_bytes(tmp_path)  # the database, its WAL and shared-memory files
    assert made[0]["token"].encode() in written  # what is there: the hash
    for answer in made:
        secret = answer["key"].removeprefix("sk-")
        assert secret.encode() not in written
    assert lookup_ignores_a_hash(store, made[0]["token"])


def files_bytes(folder: Path) -> bytes:
    return b"".join(path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file())


def lookup_ignores_a_hash(store: KeyStore, token: str) -> bool:
    """The stored hash is not itself a key a client could send."""
    return store.lookup(token) is None and store.lookup("sk-" + token) is None


# --- the client's key -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"Authorization": "Bearer sk-abc"}, "sk-abc"),
        ({"authorization": "bearer   sk-abc "}, "sk-abc"),
        ({"x-api-key": "sk-anthropic"}, "sk-anthropic"),
        ({"X-Api-Key": "sk-anthropic"}, "sk-anthropic"),
        ({"api-key": "sk-azure"}, "sk-azure"),
        ({"Authorization": "Bearer sk-first", "x-api-key": "sk-second"}, "sk-first"),
        ({"Authorization": "Basic dXNlcg==", "x-api-key": "sk-second"}, "sk-second"),
        ({"Authorization": "Bearer "}, None),
        ({"x-api-key": ""}, None),
        ({}, None),
    ],
)
def test_authenticate_reads_openais_anthropics_and_azures_headers(
    headers: dict[str, str], key: str | None
) -> None:
    assert authenticate(headers) == key
    assert authenticate(CIMultiDict(headers)) == key


def test_the_401_for_a_missing_or_unknown_key_is_openais_invalid_api_key(store: KeyStore) -> None:
    unknown = "sk-never-generated-0123456789"
    assert store.lookup(unknown) is None
    for sent in (None, unknown):
        wire = describe(unauthenticated(sent))
        assert (wire.status, wire.code, wire.openai_type) == (
            401,
            "invalid_api_key",
            "invalid_request_error",
        )
        assert wire.anthropic_type == "authentication_error"
        assert unknown not in wire.message


async def test_a_failing_store_is_a_503_not_a_500(api: Api, store: KeyStore) -> None:
    store.close()  # every call now raises sqlite3.ProgrammingError
    status, answer = await api.call("GET", "/key/list")
    assert status == 503 and answer["error"]["type"] == "server_error"
