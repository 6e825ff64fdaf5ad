"""The response cache over real loopback HTTP upstreams replaying recorded transcripts: streamed
answers stored as their chunks and replayed chunk for chunk, whole answers, keys, expiry, the
LRU bound, what is never stored, opt-in per request and per configuration, Redis shared by two
caches and Redis down, pacing; LiteLLM's config and per-request controls."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec
import pytest
import redis

import rxllm
from rxllm import errors
from rxllm._assemble import assemble
from rxllm._loop import run_sync
from rxllm.cache import (
    CacheControl,
    CachedResponse,
    CacheEntry,
    CacheStats,
    ResponseCache,
    cache_settings_from_litellm,
    chunks_of,
    is_cache_hit,
    parse_cache_control,
)
from rxllm.cache._entry import Recorder as EntryRecorder
from rxllm.cache._entry import decode_entry, encode_entry
from rxllm.router import Router
from rxllm.streaming import collect, collect_sync
from rxllm.types import Delta, Message, StreamChoice

from .conftest import API_KEY, fixture_bytes
from .redis_server import RedisServer
from .server import Recorded, ReplayServer, Reply, sse
from .test_router import FakeTime, make_router
from .test_stream import Recorder

MESSAGES = [{"role": "user", "content": "hi"}]
TRANSCRIPT = "openai/stream_text_usage.sse"

#: name -> (provider, model, recorded stream, what the base URL adds to the server's)
STREAMS = {
    "deepseek-reasoning": (
        "deepseek",
        "deepseek-reasoner",
        "deepseek/stream_reasoning_usage.sse",
        "",
    ),
    "openai-parallel-tools": ("openai", "gpt-4o", "openai/stream_parallel_tool_calls.sse", "/v1"),
    "anthropic-thinking": (
        "anthropic",
        "claude-sonnet-4-20250514",
        "anthropic/stream_thinking.sse",
        "",
    ),
}


class FakeClock:
    """The cache's clock, moved by hand (wall-clock seconds)."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Sleeps:
    """The cache's ``sleep`` for pacing: records what it was asked, waits for nothing."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
        await asyncio.sleep(0)


def stream_reply(name: str = TRANSCRIPT, piece: int | None = 400) -> Reply:
    return Reply(body=fixture_bytes(name), piece=piece)


def json_reply(name: str) -> Reply:
    return Reply(body=fixture_bytes(name), content_type="application/json")


def answer_both(server: ReplayServer) -> None:
    """Stream requests get the recorded stream, plain ones the recorded response."""

    def respond(request: Recorded) -> Reply:
        if request.json().get("stream"):
            return stream_reply()
        return json_reply("openai/response_text.json")

    server.responder = respond


def ask(
    through: ResponseCache, base: str, *, stream: bool = False, content: str = "hi", **params: Any
) -> Any:
    return through.completion(
        "openai",
        "gpt-4o",
        messages=[{"role": "user", "content": content}],
        stream=stream,
        api_key=API_KEY,
        api_base=base,
        **params,
    )


def ask_case(through: ResponseCache, server: ReplayServer, case: str, **params: Any) -> Any:
    provider, model, _, suffix = STREAMS[case]
    return through.completion(
        provider, model, messages=MESSAGES, api_key=API_KEY, api_base=server.base + suffix, **params
    )


def chunks(stream: rxllm.ChatStream) -> list[rxllm.ChatChunk]:
    """Every chunk of ``stream``; it must complete."""
    recorder = Recorder()
    stream.subscribe(recorder)
    recorder.wait()
    assert recorder.errors == [] and recorder.completed == 1
    return recorder.items


def failure(stream: rxllm.ChatStream) -> errors.LLMError:
    recorder = Recorder()
    stream.subscribe(recorder)
    recorder.wait()
    (error,) = recorder.errors
    assert isinstance(error, errors.LLMError)
    return error


# --- streams: stored as their chunks, replayed chunk for chunk ------------------------------------


@pytest.mark.parametrize("case", list(STREAMS))
def test_a_streamed_answer_is_stored_and_replayed_chunk_for_chunk(
    server: ReplayServer, case: str
) -> None:
    server.queue(stream_reply(STREAMS[case][2], piece=300))
    cache = ResponseCache()
    first = ask_case(cache, server, case, stream=True)
    assert first.cache_hit is None and server.requests == []  # lazy: nothing until subscribed
    original = chunks(first)
    assert first.cache_hit is False
    second = ask_case(cache, server, case, stream=True)
    replayed = chunks(second)
    assert second.cache_hit is True and is_cache_hit(second)
    assert replayed == original  # every chunk, field for field: the same boundaries
    assert len(server.requests) == 1  # the upstream saw one request
    assert cache.stats == CacheStats(hits=1, misses=1, stores=1)

    # What other caches lose on a streaming hit is all there.
    whole = assemble(replayed)
    assert whole.finish_reason in ("stop", "tool_calls")
    assert any(c.usage is not None for c in replayed)
    assert whole.usage is not None and whole.usage.total_tokens > 0
    if case != "openai-parallel-tools":
        assert whole.reasoning_content and any(
            c.choices and c.choices[0].delta.reasoning_content for c in replayed
        )
    else:
        assert len(whole.tool_calls) >= 2
        fragments = [f for c in replayed if c.choices for f in c.choices[0].delta.tool_calls or ()]
        assert len(fragments) > len(whole.tool_calls)  # argument deltas, not whole calls

    # The entry keeps the socket reads the chunks came in, and their times.
    entry = run_sync(cache.get(second.cache_key))
    assert entry is not None and entry.reads is not None and entry.times is not None
    assert sum(entry.reads) == len(original) and len(entry.reads) > 1
    assert [len(batch) for _, batch in entry.batches(None)] == entry.reads


def test_a_streamed_answer_answers_a_plain_request_with_the_assembled_original(
    server: ReplayServer,
) -> None:
    server.queue(stream_reply(STREAMS["deepseek-reasoning"][2]))
    cache = ResponseCache()
    original = chunks(ask_case(cache, server, "deepseek-reasoning", stream=True))
    hit = ask_case(cache, server, "deepseek-reasoning")
    assert isinstance(hit, CachedResponse) and hit.cache_hit and is_cache_hit(hit)
    assert hit.response() == assemble(original)
    assert hit.reasoning_content and hit.text
    # The original usage stays visible (what the answer would have cost).
    assert hit.usage is not None and hit.usage == assemble(original).usage
    assert hit.cache_key.startswith("rxllm:")
    # The same JSON as the plain response: no marker leaks into a client's body.
    assert msgspec.json.encode(hit) == msgspec.json.encode(hit.response())
    assert len(server.requests) == 1
    assert not is_cache_hit(assemble(original))


@pytest.mark.parametrize(
    "recorded", ["deepseek/response_reasoning.json", "openai/response_tool_calls.json"]
)
def test_a_plain_answer_answers_a_stream(server: ReplayServer, recorded: str) -> None:
    provider = recorded.split("/", maxsplit=1)[0]
    base = server.base + ("/v1" if provider == "openai" else "")
    server.queue(json_reply(recorded))
    cache = ResponseCache()
    plain = cache.completion(provider, "m", messages=MESSAGES, api_key=API_KEY, api_base=base)
    assert not is_cache_hit(plain)
    stream = cache.completion(
        provider, "m", messages=MESSAGES, stream=True, api_key=API_KEY, api_base=base
    )
    replayed = chunks(stream)
    assert stream.cache_hit is True and len(server.requests) == 1
    assert assemble(replayed) == plain
    assert replayed == chunks_of(plain)
    assert replayed[-1].usage == plain.usage and plain.usage is not None
    assert [c.choices[0].finish_reason for c in replayed if c.choices][-1] == plain.finish_reason


def test_the_recorder_keeps_only_complete_answers() -> None:
    def chunk(index: int, text: str | None = None, finish: str | None = None) -> rxllm.ChatChunk:
        return rxllm.ChatChunk(
            id="c",
            model="m",
            provider="openai",
            choices=[StreamChoice(index=index, delta=Delta(content=text), finish_reason=finish)],
        )

    two_choices = [chunk(0, "a"), chunk(1, "b"), chunk(0, finish="stop")]
    recorder = EntryRecorder(limit=100)
    recorder.add(two_choices[:2])
    recorder.add(two_choices[2:])
    assert not recorder.complete and recorder.finish(0.0, None) is None  # choice 1 unfinished
    recorder = EntryRecorder(limit=100)
    recorder.add(two_choices)
    recorder.add([chunk(1, finish="length")])
    data = recorder.finish(5.0, 60.0)
    assert data is not None
    entry = decode_entry(data)
    assert entry is not None and entry.chunks == [*two_choices, chunk(1, finish="length")]
    assert (entry.reads, entry.stored_at, entry.ttl) == ([3, 1], 5.0, 60.0)
    assert [len(b) for _, b in entry.batches(None)] == [3, 1]
    assert [len(b) for _, b in entry.batches(0.5)] == [1, 1, 1, 1]
    assert entry.assembled().choices[1].finish_reason == "length"
    too_long = EntryRecorder(limit=3)
    too_long.add(two_choices)
    too_long.add([chunk(1, finish="stop")])
    assert too_long.finish(0.0, None) is None
    assert decode_entry(encode_entry(CacheEntry(response=entry.assembled()))) == CacheEntry(
        response=entry.assembled()
    )


def test_entries_are_compact_and_decode_to_equal_chunks(server: ReplayServer) -> None:
    server.queue(stream_reply(STREAMS["deepseek-reasoning"][2]))
    cache = ResponseCache()
    stream = ask_case(cache, server, "deepseek-reasoning", stream=True)
    original = chunks(stream)
    entry = run_sync(cache.get(stream.cache_key))
    assert entry is not None
    data = encode_entry(entry)
    text = sum(
        len((c.choices[0].delta.content or "") + (c.choices[0].delta.reasoning_content or ""))
        for c in original
        if c.choices
    )
    assert len(data) - text < 20 * len(original)  # 211 chunks of about 280 bytes each as JSON
    decoded = decode_entry(data)
    assert decoded is not None and decoded.chunks == original
    assert decode_entry(b"not an entry") is None
    assert decode_entry(data[:-5]) is None  # cut short


# --- keys -------------------------------------------------------------------------------------


def test_keys_follow_what_changes_the_answer() -> None:
    cache = ResponseCache()
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"b": 1, "a": 2}}}]
    key = cache.key("openai", "gpt-4o", MESSAGES, {"temperature": 0.2, "tools": tools})
    same = [
        ("openai", "gpt-4o", MESSAGES, {"temperature": 0.2, "tools": tools, "user": "bob"}),
        (
            "openai",
            "gpt-4o",
            MESSAGES,
            {"tools": tools, "temperature": 0.2, "stream": True, "stream_options": {"x": 1}},
        ),
        (
            "openai",
            "gpt-4o",
            [Message(role="user", content="hi")],
            {"temperature": 0.2, "tools": tools, "metadata": {"t": 1}, "timeout": 3, "seed": None},
        ),
        (
            "openai",
            "gpt-4o",
            MESSAGES,
            {
                "temperature": 0.2,
                "tools": [
                    {"function": {"parameters": {"a": 2, "b": 1}, "name": "f"}, "type": "function"}
                ],
                "api_key": "sk-other",
                "extra_headers": {"X": "y"},
                "request_timeout": 9,
            },
        ),
    ]
    for args in same:
        assert cache.key(*args) == key, args
    different = [
        ("openai", "gpt-4o", MESSAGES, {"temperature": 0.3, "tools": tools}),
        ("openai", "gpt-4o-mini", MESSAGES, {"temperature": 0.2, "tools": tools}),
        ("azure", "gpt-4o", MESSAGES, {"temperature": 0.2, "tools": tools}),
        (
            "openai",
            "gpt-4o",
            [{"role": "user", "content": "hi!"}],
            {"temperature": 0.2, "tools": tools},
        ),
        (
            "openai",
            "gpt-4o",
            [{"role": "system", "content": "hi"}],
            {"temperature": 0.2, "tools": tools},
        ),
        ("openai", "gpt-4o", MESSAGES, {"temperature": 0.2}),
        ("openai", "gpt-4o", MESSAGES, {"temperature": 0.2, "tools": tools, "max_tokens": 5}),
        ("openai", "gpt-4o", MESSAGES, {"temperature": 0.2, "tools": tools, "seed": 1}),
        ("openai", "gpt-4o", MESSAGES, {"temperature": 0.2, "tools": tools, "n": 2}),
        (
            "openai",
            "gpt-4o",
            MESSAGES,
            {"temperature": 0.2, "tools": tools, "response_format": {"type": "json_object"}},
        ),
        (
            "openai",
            "gpt-4o",
            MESSAGES,
            {"temperature": 0.2, "tools": tools, "extra_body": {"k": 1}},
        ),
    ]
    keys = {cache.key(*args) for args in different}
    assert key not in keys and len(keys) == len(different)
    # Whole floats are ints: temperature=1 and temperature=1.0 are one request.
    assert cache.key("openai", "m", MESSAGES, {"temperature": 1}) == cache.key(
        "openai", "m", MESSAGES, {"temperature": 1.0}
    )
    assert key.startswith("rxllm:") and len(key) == len("rxllm:") + 64
    assert cache.key("openai", "m", MESSAGES, namespace="team").startswith("team:")
    assert ResponseCache(namespace="other").key("openai", "m", MESSAGES).startswith("other:")


def test_requests_differing_only_in_user_and_stream_options_share_an_answer(
    server: ReplayServer, openai_base: str
) -> None:
    answer_both(server)
    cache = ResponseCache()
    first = ask(cache, openai_base, stream=True, user="alice")
    assert chunks(first) and first.cache_hit is False
    again = ask(cache, openai_base, stream=True, user="bob", stream_options={"include_usage": True})
    chunks(again)
    assert again.cache_hit is True
    assert is_cache_hit(ask(cache, openai_base, user="carol"))
    assert len(server.requests) == 1
    # The provider and model as resolved: "openai/gpt-4o" is the same request.
    whole = cache.completion(
        model="openai/gpt-4o", messages=MESSAGES, api_key=API_KEY, api_base=openai_base
    )
    assert is_cache_hit(whole)
    assert not is_cache_hit(ask(cache, openai_base, temperature=0.5))
    assert len(server.requests) == 2


# --- expiry and the LRU bound --------------------------------------------------------------------


def test_answers_expire_after_their_ttl(server: ReplayServer, openai_base: str) -> None:
    answer_both(server)
    clock = FakeClock()
    cache = ResponseCache(ttl=60, clock=clock)
    assert not is_cache_hit(ask(cache, openai_base))
    clock.now += 59
    assert is_cache_hit(ask(cache, openai_base))
    clock.now += 2
    assert not is_cache_hit(ask(cache, openai_base))  # expired: asked again, stored again
    assert is_cache_hit(ask(cache, openai_base))
    assert len(server.requests) == 2

    # A request's own ttl (LiteLLM's per-request control).
    assert not is_cache_hit(ask(cache, openai_base, content="short", cache={"ttl": 5}))
    clock.now += 4
    assert is_cache_hit(ask(cache, openai_base, content="short"))
    clock.now += 2
    assert not is_cache_hit(ask(cache, openai_base, content="short"))

    # s-maxage: only an answer young enough will do.
    assert not is_cache_hit(ask(cache, openai_base, content="age"))
    clock.now += 30
    assert is_cache_hit(ask(cache, openai_base, content="age", cache={"s-maxage": 40}))
    assert not is_cache_hit(ask(cache, openai_base, content="age", cache={"s-maxage": 10}))
    assert is_cache_hit(ask(cache, openai_base, content="age", cache={"s-maxage": 10}))  # fresh
    assert len(server.requests) == 6


def test_the_memory_store_keeps_the_most_recently_used(
    server: ReplayServer, openai_base: str
) -> None:
    answer_both(server)
    cache = ResponseCache(max_entries=2)
    for content in ("a", "b"):
        assert not is_cache_hit(ask(cache, openai_base, content=content))
    assert is_cache_hit(ask(cache, openai_base, content="a"))  # "a" is now the most recent
    assert not is_cache_hit(ask(cache, openai_base, content="c"))  # pushes "b" out
    assert is_cache_hit(ask(cache, openai_base, content="a"))
    assert not is_cache_hit(ask(cache, openai_base, content="b"))
    assert len(server.requests) == 4


# --- what is never stored ----------------------------------------------------------------------


def _events(name: str) -> list[bytes]:
    return [e + b"\n\n" for e in fixture_bytes(name).split(b"\n\n") if e.strip()]


def _failing_replies() -> dict[str, Reply]:
    events = _events(TRANSCRIPT)
    half = b"".join(events[: len(events) // 2])
    error_event = sse('{"error": {"message": "overloaded", "type": "server_error"}}', done=False)
    no_end = b"".join(e for e in events if b"[DONE]" not in e)
    return {
        "an error status": Reply(
            status=500,
            body=b'{"error": {"message": "boom", "type": "server_error"}}',
            content_type="application/json",
        ),
        "a connection dropped mid-stream": Reply(
            body=fixture_bytes(TRANSCRIPT), drop_after=len(half)
        ),
        "an error event mid-stream": Reply(body=half + error_event),
        "a body without its end marker": Reply(body=no_end),
    }


@pytest.mark.parametrize("how", list(_failing_replies()))
def test_failed_and_truncated_streams_are_not_stored(
    server: ReplayServer, openai_base: str, how: str
) -> None:
    server.queue(_failing_replies()[how], stream_reply())
    cache = ResponseCache()
    failed = ask(cache, openai_base, stream=True)
    error = failure(failed)
    assert isinstance(error, errors.LLMError) and failed.state == "failed"
    assert cache.stats.stores == 0 and cache.stats.not_stored == 1
    served = ask(cache, openai_base, stream=True)
    assert chunks(served) and served.cache_hit is False  # asked upstream again
    assert is_cache_hit(ask(cache, openai_base))  # and that complete answer was stored
    assert len(server.requests) == 2


def test_a_failed_plain_request_is_not_stored(server: ReplayServer, openai_base: str) -> None:
    server.queue(_failing_replies()["an error status"], json_reply("openai/response_text.json"))
    cache = ResponseCache()
    with pytest.raises(errors.InternalServerError):
        ask(cache, openai_base)
    assert not is_cache_hit(ask(cache, openai_base))
    assert is_cache_hit(ask(cache, openai_base))
    assert len(server.requests) == 2


def test_a_stream_whose_subscriber_left_is_not_stored(
    server: ReplayServer, openai_base: str
) -> None:
    body = fixture_bytes(TRANSCRIPT)
    server.queue(Reply(body=body, stall_after=len(body) // 2), stream_reply())
    cache = ResponseCache()
    left = ask(cache, openai_base, stream=True)
    recorder = Recorder(stop_after=1)
    subscription = left.subscribe(recorder)
    assert recorder.n.wait(10)
    subscription.dispose()
    assert server.disconnected.wait(10)  # cancelled for real: the connection closed
    assert left.cancelled
    served = ask(cache, openai_base, stream=True)
    assert chunks(served) and served.cache_hit is False
    assert len(server.requests) == 2 and cache.stats.stores == 1


def test_an_answer_longer_than_max_chunks_is_not_stored(
    server: ReplayServer, openai_base: str
) -> None:
    answer_both(server)
    cache = ResponseCache(max_chunks=10)
    assert len(chunks(ask(cache, openai_base, stream=True))) > 10
    assert cache.stats.stores == 0 and cache.stats.not_stored == 1
    assert chunks(ask(cache, openai_base, stream=True))
    assert len(server.requests) == 2


def test_no_store_and_no_cache(server: ReplayServer, openai_base: str) -> None:
    answer_both(server)
    cache = ResponseCache()
    assert not is_cache_hit(ask(cache, openai_base, cache={"no-store": True}))
    assert not is_cache_hit(ask(cache, openai_base))  # nothing was stored: asked again
    assert not is_cache_hit(ask(cache, openai_base, cache={"no-cache": True}))  # asked, stored
    assert is_cache_hit(ask(cache, openai_base))
    assert not is_cache_hit(ask(cache, openai_base, cache=False))
    stream = ask(cache, openai_base, stream=True, cache={"no-cache": True})
    assert stream.cache_hit is False and chunks(stream)
    assert len(server.requests) == 5


# --- streams answered from the cache are streams ----------------------------------------------


def test_a_hit_is_lazy_shared_and_replaying(server: ReplayServer, openai_base: str) -> None:
    answer_both(server)
    cache = ResponseCache()
    original = chunks(ask(cache, openai_base, stream=True))
    hit = ask(cache, openai_base, stream=True)
    assert hit.state == "pending" and hit.cache_hit is None
    assert cache.stats.hits == 0  # not even looked up before a subscription
    a, b = Recorder(), Recorder()
    hit.subscribe(a)
    hit.subscribe(b)
    assert a.wait().items == original and b.wait().items == original
    late = Recorder()
    hit.subscribe(late)
    assert late.wait().items == original and late.completed == 1  # replayed after the end
    assert cache.stats.hits == 1 and hit.cache_hit is True
    assert collect_sync(hit, timeout=10) == assemble(original)
    assert len(server.requests) == 1


async def test_a_hit_is_known_at_once_in_asyncio_and_cancellable(
    server: ReplayServer, openai_base: str
) -> None:
    answer_both(server)
    cache = ResponseCache()
    first = await cache.acompletion(
        "openai", "gpt-4o", messages=MESSAGES, stream=True, api_key=API_KEY, api_base=openai_base
    )
    assert first.cache_hit is False
    original: list[rxllm.ChatChunk] = []
    first.subscribe(original.append)
    whole_original = await collect(first)
    hit = await cache.acompletion(
        "openai",
        "gpt-4o",
        messages=MESSAGES,
        stream=True,
        api_key=API_KEY,
        api_base=openai_base,
        cache={"pace": 0.01},
    )
    assert hit.cache_hit is True and hit.state == "pending"
    got: list[rxllm.ChatChunk] = []
    two = asyncio.Event()

    def on_next(chunk: rxllm.ChatChunk) -> None:
        got.append(chunk)
        if len(got) == 2:
            two.set()

    subscription = hit.subscribe(on_next)
    await asyncio.wait_for(two.wait(), 10)
    subscription.dispose()  # on the stream's own loop: detached at once
    assert hit.cancelled
    assert 2 <= len(got) < len(original) and got == original[: len(got)]
    whole = await cache.acompletion(
        "openai", "gpt-4o", messages=MESSAGES, api_key=API_KEY, api_base=openai_base
    )
    assert is_cache_hit(whole) and whole.text == whole_original.text
    assert len(server.requests) == 1


def test_a_hit_can_be_paced(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=fixture_bytes(TRANSCRIPT), piece=600, delay=0.02))
    sleeps = Sleeps()
    cache = ResponseCache(sleep=sleeps)
    original = chunks(ask(cache, openai_base, stream=True))
    assert chunks(ask(cache, openai_base, stream=True)) == original
    assert sleeps.asked == []  # not paced unless asked

    assert chunks(ask(cache, openai_base, stream=True, cache={"pace": 0.05})) == original
    assert sleeps.asked == [0.05] * (len(original) - 1)

    sleeps.asked.clear()
    hit = ask(cache, openai_base, stream=True, cache={"pace": "recorded"})
    assert chunks(hit) == original
    entry = run_sync(cache.get(hit.cache_key))
    assert entry is not None and entry.times is not None and len(entry.times) > 2
    gaps = [b - a for a, b in zip(entry.times, entry.times[1:], strict=False) if b > a]
    assert sleeps.asked == pytest.approx(gaps)
    assert sum(sleeps.asked) >= 0.01 * (len(entry.times) - 1)  # the server's pauses were recorded
    assert len(server.requests) == 1


def test_pacing_takes_real_time(server: ReplayServer, openai_base: str) -> None:
    answer_both(server)
    cache = ResponseCache(pace=0.02)
    original = chunks(ask(cache, openai_base, stream=True))
    arrivals: list[float] = []
    hit = ask(cache, openai_base, stream=True)
    hit.subscribe(lambda _: arrivals.append(time.monotonic()))
    assert collect_sync(hit, timeout=10) == assemble(original)
    assert len(arrivals) == len(original)
    assert arrivals[-1] - arrivals[0] >= 0.02 * (len(original) - 1) * 0.9


# --- the router --------------------------------------------------------------------------------


def _register(r: Router, server: ReplayServer, name: str, **settings: Any) -> None:
    r.register(
        name,
        provider="openai",
        model="gpt-4o",
        api_key=API_KEY,
        api_base=server.base + "/v1",
        **settings,
    )


def test_the_router_caches_where_a_request_or_its_configuration_opts_in(
    server: ReplayServer,
) -> None:
    answer_both(server)
    r = Router(cache=ResponseCache())
    _register(r, server, "plain")
    _register(r, server, "cached", cache=True)
    _register(r, server, "never", cache=False)
    assert r.get_config("cached")["cache"] is True  # type: ignore[index]

    def sent() -> int:
        return len(server.requests)

    def hit(name: str, **params: Any) -> bool:
        return is_cache_hit(r.completion(name, MESSAGES, **params))

    assert not hit("plain") and not hit("plain") and sent() == 2  # opt-in: not cached
    assert not hit("plain", cache=True) and hit("plain", cache=True) and sent() == 3
    assert not hit("plain", cache={"ttl": 60})  # LiteLLM: default_off needs use-cache
    assert hit("plain", cache={"use-cache": True}) and sent() == 4
    assert not hit("cached") and hit("cached") and sent() == 5
    assert not hit("cached", cache=False) and sent() == 6
    assert not hit("never") and not hit("never") and sent() == 8
    assert not hit("never", cache=True) and hit("never", cache=True) and sent() == 9
    stream = r.completion("cached", MESSAGES, stream=True)
    assert chunks(stream) and stream.cache_hit is True  # the plain answer serves a stream
    assert sent() == 9

    on = Router(cache=ResponseCache(mode="default_on"))
    _register(on, server, "plain")
    _register(on, server, "never", cache=False)
    before = sent()
    assert not is_cache_hit(on.completion("plain", MESSAGES))
    assert is_cache_hit(on.completion("plain", MESSAGES))
    assert not is_cache_hit(on.completion("never", MESSAGES))
    assert not is_cache_hit(on.completion("never", MESSAGES))
    assert sent() == before + 3


def test_a_router_hit_runs_no_attempt_and_takes_no_rpm_slot(server: ReplayServer) -> None:
    answer_both(server)
    fake = FakeTime()
    r, attempts = make_router(fake, cache=ResponseCache())
    _register(r, server, "fast", rpm=1, cache=True)
    collect_sync(r.completion("fast", MESSAGES, stream=True), timeout=10)
    for _ in range(3):
        stream = r.completion("fast", MESSAGES, stream=True)
        collect_sync(stream, timeout=10)
        assert stream.cache_hit is True and stream.attempts == []
        assert is_cache_hit(r.completion("fast", MESSAGES))
    assert attempts.summary() == [("fast", "success")]
    assert fake.sleeps == []  # a second real request would have waited for the rpm window
    assert r.status("fast")[0]["in_flight"] == 0
    assert len(server.requests) == 1


async def test_router_streams_without_replay_are_cached_and_hits_known_at_once(
    server: ReplayServer,
) -> None:
    answer_both(server)
    r = Router(cache=ResponseCache())
    _register(r, server, "fast", cache=True)
    first = await r.acompletion("fast", MESSAGES, stream=True, replay=False)
    assert first.cache_hit is False
    original = [chunk async for chunk in first]
    second = await r.acompletion("fast", MESSAGES, stream=True, replay=False)
    assert second.cache_hit is True and second.state == "pending"
    assert [chunk async for chunk in second] == original
    whole = await r.acompletion("fast", MESSAGES)
    assert isinstance(whole, CachedResponse) and whole.response() == assemble(original)
    assert len(server.requests) == 1


def test_asking_for_the_cache_of_a_router_without_one_is_an_error(server: ReplayServer) -> None:
    answer_both(server)
    r = Router()
    _register(r, server, "plain")
    _register(r, server, "cached", cache=True)
    with pytest.raises(errors.ConfigurationError, match="has none"):
        r.completion("cached", MESSAGES)
    with pytest.raises(errors.ConfigurationError, match="has none"):
        r.completion("plain", MESSAGES, cache=True)
    assert r.completion("plain", MESSAGES, cache={"ttl": 5}).text  # controls alone: ignored
    assert r.completion("cached", MESSAGES, cache=False).text
    r.cache = ResponseCache()
    assert not is_cache_hit(r.completion("cached", MESSAGES))
    assert is_cache_hit(r.completion("cached", MESSAGES))
    with pytest.raises(errors.BadRequestError, match="no_cache"):
        r.completion("cached", MESSAGES, cache={"no_cache": True})
    with pytest.raises(errors.ConfigurationError):
        Router(cache="yes")  # type: ignore[arg-type]


# --- Redis ---------------------------------------------------------------------------------------


def test_two_caches_share_answers_through_redis(
    server: ReplayServer, redis_server: RedisServer
) -> None:
    server.queue(
        stream_reply(STREAMS["anthropic-thinking"][2], piece=300),
        json_reply("anthropic/response_text.json"),
    )
    one = ResponseCache(redis_url=redis_server.url, ttl=120)
    two = ResponseCache(redis_url=redis_server.url, ttl=120)
    try:
        computed = ask_case(one, server, "anthropic-thinking", stream=True)
        original = chunks(computed)
        assert one.drain(10)
        replayed_stream = ask_case(two, server, "anthropic-thinking", stream=True)
        assert chunks(replayed_stream) == original
        assert replayed_stream.cache_hit is True
        whole = ask_case(two, server, "anthropic-thinking")
        assert isinstance(whole, CachedResponse) and whole.response() == assemble(original)
        assert whole.reasoning_content
        assert len(server.requests) == 1
        assert two.stats.hits == 2 and one.stats.stores == 1
        # SET key value PX ttl: Redis expires it.
        client = redis.Redis.from_url(redis_server.url)
        try:
            assert 0 < client.pttl(computed.cache_key) <= 120_000
            client.set("someone-else:key", b"kept")
            # Another namespace sees nothing; clear() empties this namespace only.
            other = ResponseCache(redis_url=redis_server.url, namespace="other")
            assert not is_cache_hit(ask_case(other, server, "anthropic-thinking"))
            other.close()
            run_sync(one.clear())
            assert run_sync(two.get(computed.cache_key)) is None
            assert client.get("someone-else:key") == b"kept"
        finally:
            client.close()
    finally:
        one.close()
        two.close()


def test_redis_down_is_a_miss_and_the_request_is_still_served(
    server: ReplayServer,
    openai_base: str,
    redis_server: RedisServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    answer_both(server)
    clock = FakeClock()
    cache = ResponseCache(redis_url=redis_server.url, clock=clock, redis_retry_after=5)
    caplog.set_level(logging.WARNING, logger="rxllm.cache")
    try:
        redis_server.stop()
        assert not is_cache_hit(ask(cache, openai_base))  # served: a miss, nothing stored
        assert chunks(ask(cache, openai_base, stream=True))
        clock.now += 6  # Redis is tried again, and is still down
        assert not is_cache_hit(ask(cache, openai_base))
        assert len(server.requests) == 3 and cache.stats.errors >= 3
        down = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(down) == 1  # warned once

        redis_server.start()
        clock.now += 6
        assert not is_cache_hit(ask(cache, openai_base))  # a fresh, empty Redis
        assert cache.drain(10)
        assert is_cache_hit(ask(cache, openai_base))
        assert len(server.requests) == 4
        back = [r for r in caplog.records if "answers again" in r.getMessage()]
        assert len(back) == 1
    finally:
        cache.close()


def test_a_redis_url_is_checked_when_the_cache_is_made() -> None:
    with pytest.raises(errors.ConfigurationError, match="redis://"):
        ResponseCache(redis_url="http://localhost:6379")
    with pytest.raises(errors.ConfigurationError, match="ttl"):
        ResponseCache(ttl=0)
    with pytest.raises(errors.ConfigurationError, match="pace"):
        ResponseCache(pace="fast")  # type: ignore[arg-type]
    cache = ResponseCache(redis_url="redis://:s3cret@localhost:1/0")
    assert "s3cret" not in repr(cache) and cache.kind == "redis"


# --- the per-request controls and LiteLLM's configuration ----------------------------------------


def test_per_request_controls_are_read_as_litellm_writes_them() -> None:
    assert parse_cache_control(None) == CacheControl()
    assert parse_cache_control(True) == CacheControl(use=True)
    assert parse_cache_control(False) == CacheControl(use=False)
    assert parse_cache_control(
        {"no-cache": True, "no-store": True, "ttl": 60, "s-maxage": 10, "namespace": "t"}
    ) == CacheControl(lookup=False, store=False, ttl=60.0, max_age=10.0, namespace="t")
    assert parse_cache_control({"use-cache": True, "s-max-age": 5}) == CacheControl(
        use=True, max_age=5.0
    )
    assert parse_cache_control({"pace": "recorded"}).pace == "recorded"
    control = CacheControl(ttl=3)
    assert parse_cache_control(control) is control
    for bad in (
        {"no_cache": True},
        {"ttl": -1},
        {"ttl": "60"},
        {"no-store": "yes"},
        {"s-maxage": float("nan")},
        {"namespace": ""},
        {"pace": "slow"},
        "yes",
        3,
    ):
        with pytest.raises(errors.BadRequestError) as caught:
            parse_cache_control(bad)  # type: ignore[arg-type]
        assert caught.value.param == "cache"


def test_litellm_cache_settings_carry_over() -> None:
    read = cache_settings_from_litellm
    assert read({}) is None and read({"cache": False}) is None
    assert read({"drop_params": True}) is None

    local = read({"cache": True, "cache_params": {"type": "local", "ttl": 30}}, environ={})
    assert local is not None and (local.type, local.ttl, local.redis_url) == ("local", 30.0, None)
    assert local.mode == "default_on" and local.chat_completions and local.messages
    built = local.build()
    assert built.kind == "local" and built.ttl == 30.0 and built.mode == "default_on"

    # No cache_params: Redis, as LiteLLM's proxy does, from the environment...
    env = {"REDIS_HOST": "cache.internal", "REDIS_PORT": "6380", "REDIS_PASSWORD": "p@ss"}
    redis_env = read({"cache": True}, environ=env)
    assert redis_env is not None and redis_env.type == "redis"
    assert redis_env.redis_url == "redis://:p%40ss@cache.internal:6380"
    assert redis_env.redis_source == "REDIS_HOST" and redis_env.ttl is None
    assert "p@ss" not in repr(redis_env) and "p%40ss" not in repr(redis_env)
    assert (
        read({"cache": True}, environ={"REDIS_URL": "redis://r:1/2"}).redis_url == "redis://r:1/2"
    )  # type: ignore[union-attr]
    # ... or router_settings.redis_url; with none of them it is an error, never memory.
    fallback = read({"cache": True}, environ={}, redis_url="redis://shared:6379/0")
    assert fallback is not None and fallback.redis_source == "router_settings.redis_url"
    with pytest.raises(errors.ConfigurationError, match="no Redis is named"):
        read({"cache": True}, environ={})

    full = read(
        {
            "cache": True,
            "cache_params": {
                "type": "redis",
                "host": "os.environ/CACHE_HOST",
                "port": 6379,
                "password": "pw",
                "ssl": True,
                "namespace": "litellm.caching",
                "ttl": 600,
                "default_in_redis_ttl": 120,
                "mode": "default_off",
                "supported_call_types": ["acompletion", "aembedding"],
                "max_connections": 10,
                "socket_timeout": 2,
            },
        },
        environ={"CACHE_HOST": "10.0.0.5"},
    )
    assert full is not None
    assert full.redis_url == "rediss://:pw@10.0.0.5:6379" and full.redis_source.startswith(  # type: ignore[union-attr]
        "litellm_settings"
    )
    assert (full.ttl, full.mode, full.namespace, full.redis_timeout) == (
        120.0,
        "default_off",
        "litellm.caching",
        2.0,
    )
    assert full.chat_completions and not full.messages
    assert full.ignored == ("litellm_settings.cache_params.max_connections",)

    # cache_params with a Redis address but no type: Redis (LiteLLM would quietly use memory).
    inferred = read({"cache": True, "cache_params": {"host": "h", "ttl": 5}}, environ={})
    assert (
        inferred is not None and inferred.type == "redis" and inferred.redis_url == "redis://h:6379"
    )
    # ... and without an address: memory, LiteLLM's in-memory TTL by default.
    memory = read({"cache": True, "cache_params": {"max_size_in_memory": 50}}, environ={})
    assert memory is not None and (memory.type, memory.ttl, memory.max_entries) == (
        "local",
        600.0,
        50,
    )

    for bad, message in (
        ({"cache": "yes"}, "litellm_settings.cache"),
        ({"cache": True, "cache_params": {"type": "s3"}}, "not supported"),
        ({"cache": True, "cache_params": {"type": "redis-semantic"}}, "not supported"),
        ({"cache": True, "cache_params": {"type": "local", "ttl": -5}}, "ttl"),
        ({"cache": True, "cache_params": {"type": "local", "mode": "always"}}, "mode"),
        ({"cache": True, "cache_params": {"supported_call_types": ["chat"]}}, "call type"),
        ({"cache": True, "cache_params": {"url": "http://x"}}, "redis://"),
        ({"cache": True, "cache_params": {"host": "h", "port": "x"}}, "port"),
        ({"cache": True, "cache_params": {"type": "local", "namespace": 3}}, "namespace"),
    ):
        with pytest.raises(errors.ConfigurationError, match=message):
            read(bad, environ={})


def test_an_entry_put_by_hand_answers_requests(server: ReplayServer, openai_base: str) -> None:
    server.queue(json_reply("openai/response_text.json"))
    cache = ResponseCache()
    original = ask(cache, openai_base, cache=False)
    key = cache.key("openai", "gpt-4o", [{"role": "user", "content": "by hand"}])
    run_sync(cache.put(key, CacheEntry(response=original)))
    hit = ask(cache, openai_base, content="by hand")
    assert isinstance(hit, CachedResponse) and hit.response() == original
    run_sync(cache.delete(key))
    assert run_sync(cache.get(key)) is None
    run_sync(cache.clear())
    assert len(server.requests) == 1


def test_the_readme_section_runs(
    server: ReplayServer,
    openai_base: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The README's "Response cache" section, run as written against the loopback server."""
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("\n## Response cache\n", 1)[1].split("\n## ", 1)[0]
    (code,) = [block.split("```", 1)[0] for block in section.split("```python\n")[1:]]
    answer_both(server)
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", openai_base)
    exec(compile(code, "README.md", "exec"), {})
    text = assemble(chunks(ask(ResponseCache(), openai_base, stream=True))).text
    lines = capsys.readouterr().out.splitlines()
    usage = msgspec.json.decode(fixture_bytes(TRANSCRIPT).split(b"data: ")[-2]).get("usage")
    assert lines == [text, "True True", f"True {usage['total_tokens']}", "True"]
    assert len(server.requests) == 3  # the stream, the router's first request, and ours above
