"""The operators (rxllm.ops) and the streaming helpers (consume, collect, iterate, fan_out):
in memory, then over loopback HTTP."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import reactivex
from reactivex import operators as rx_ops
from reactivex.subject import Subject

import rxllm
from rxllm import errors, ops
from rxllm._assemble import assemble
from rxllm.streaming import (
    StreamHandle,
    collect,
    collect_sync,
    consume,
    extract_content,
    fan_out,
    iterate,
)
from rxllm.types import (
    ChatChunk,
    Delta,
    FunctionCallDelta,
    StreamChoice,
    ToolCallDelta,
    Usage,
)

from .conftest import API_KEY, fixture_bytes
from .server import Recorded, ReplayServer, Reply, sse

TEXT = (
    "I'm unable to provide real-time weather updates. To get the current weather in San "
    "Francisco, I recommend checking a reliable weather website or a weather app."
)


def chunk(content: str | None = None, finish: str | None = None, **delta: object) -> ChatChunk:
    return ChatChunk(
        id="c1",
        model="m",
        provider="p",
        choices=[StreamChoice(delta=Delta(content=content, **delta), finish_reason=finish)],  # type: ignore[arg-type]
    )


def chat(base: str, model: str = "gpt-4o", **kwargs: object) -> rxllm.ChatStream:
    return rxllm.completion(
        "openai",
        model,
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        api_key=API_KEY,
        api_base=base,
        **kwargs,  # type: ignore[arg-type]
    )


def paced_words(n: int = 400) -> bytes:
    return sse(
        *[f'{{"id":"c","choices":[{{"index":0,"delta":{{"content":"w{i} "}}}}]}}' for i in range(n)]
    )


def test_extract_content_on_chunks_and_responses() -> None:
    assert extract_content(chunk("hi")) == "hi"
    assert extract_content(chunk("")) is None
    assert extract_content(chunk(None, role="assistant")) is None
    assert extract_content(ChatChunk(id="u", usage=Usage(total_tokens=3))) is None
    assert extract_content(assemble([chunk("a"), chunk("b")])) == "ab"


def test_extract_content_operator_skips_metadata_chunks() -> None:
    source = reactivex.of(chunk(None, role="assistant"), chunk("Hel"), chunk(""), chunk("lo"))
    assert source.pipe(ops.extract_content(), rx_ops.to_list()).run() == ["Hel", "lo"]


def test_collect_assembles_text_reasoning_tools_usage_finish() -> None:
    chunks = [
        chunk(None, role="assistant"),
        chunk(None, reasoning_content="think "),
        chunk(None, reasoning_content="hard"),
        chunk("Sure"),
        chunk(
            None,
            tool_calls=[
                ToolCallDelta(
                    index=1,
                    id="b",
                    type="function",
                    function=FunctionCallDelta(name="two", arguments=""),
                ),
                ToolCallDelta(
                    index=0,
                    id="a",
                    type="function",
                    function=FunctionCallDelta(name="one", arguments='{"x"'),
                ),
            ],
        ),
        chunk(
            None, tool_calls=[ToolCallDelta(index=0, function=FunctionCallDelta(arguments=": 1}"))]
        ),
        chunk(
            None, tool_calls=[ToolCallDelta(index=1, function=FunctionCallDelta(arguments="{}"))]
        ),
        ChatChunk(
            id="c1",
            choices=[StreamChoice(finish_reason="tool_calls", native_finish_reason="tool_use")],
        ),
        ChatChunk(id="c1", usage=Usage(prompt_tokens=5, completion_tokens=7, total_tokens=12)),
    ]
    (response,) = reactivex.from_iterable(chunks).pipe(ops.collect(), rx_ops.to_list()).run()
    assert response.text == "Sure"
    assert response.reasoning_content == "think hard"
    assert [(c.id, c.function.name, c.parsed_arguments()) for c in response.tool_calls] == [
        ("a", "one", {"x": 1}),
        ("b", "two", {}),
    ]
    assert response.finish_reason == "tool_calls"
    assert response.choices[0].native_finish_reason == "tool_use"
    assert response.usage == Usage(prompt_tokens=5, completion_tokens=7, total_tokens=12)
    assert (response.id, response.model, response.provider) == ("c1", "m", "p")


def test_collect_is_fresh_per_subscription() -> None:
    collected = reactivex.of(chunk("a"), chunk("b")).pipe(ops.collect())
    assert collected.run().text == "ab"
    assert collected.run().text == "ab"  # not "abab": each subscription has its own assembler


def test_collect_passes_errors_through() -> None:
    boom = errors.StreamTruncatedError("cut")
    source = reactivex.concat(reactivex.of(chunk("a")), reactivex.throw(boom))
    with pytest.raises(errors.StreamTruncatedError):
        source.pipe(ops.collect()).run()


# --- consume over a real stream ---------------------------------------------------------------


def test_consume_callbacks_like_the_seed(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse"), piece=128))
    printed: list[str] = []
    finished: list[rxllm.ChatResponse] = []
    handle = consume(
        chat(openai_base),
        on_chunk=lambda c: printed.append(extract_content(c) or ""),
        on_complete=finished.append,
        on_error=lambda e: pytest.fail(f"unexpected {e!r}"),
    )
    assert isinstance(handle, StreamHandle)
    response = handle.wait(10)
    assert response is not None and handle.done
    assert finished == [response]
    assert "".join(printed) == response.text
    assert response.usage is not None and response.usage.total_tokens == 44


def test_consume_on_error_resolves_to_none(server: ReplayServer, openai_base: str) -> None:
    server.queue(
        Reply(status=429, body=b'{"error":{"message":"slow down","code":"rate_limit_exceeded"}}')
    )
    seen: list[Exception] = []
    assert consume(chat(openai_base), on_error=seen.append).wait(10) is None
    assert isinstance(seen[0], errors.RateLimitError)


def test_consume_without_on_error_raises_from_wait(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(status=500, body=b"oops"))
    with pytest.raises(errors.InternalServerError, match="oops"):
        consume(chat(openai_base)).wait(10)


def test_consume_dispose_resolves_and_cancels(server: ReplayServer, openai_base: str) -> None:
    body = fixture_bytes("openai/stream_text_usage.sse")
    server.queue(Reply(body=body, stall_after=body.index(b" weather")))
    started = threading.Event()
    handle = consume(chat(openai_base), on_chunk=lambda _: started.set())
    assert started.wait(10)
    handle.dispose()
    assert handle.wait(1) is None
    assert server.disconnected.wait(10)


def test_consume_of_a_pipeline_that_emits_no_chunks_is_a_type_error(
    server: ReplayServer, openai_base: str
) -> None:
    """``consume(s.pipe(ops.metrics()))`` assembles chunks out of StreamMetrics: the handle
    raises a TypeError saying so (before, an AttributeError was logged and wait() timed out)."""
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse")))
    handle = consume(chat(openai_base).pipe(ops.metrics()))
    with pytest.raises(TypeError, match="emitted a StreamMetrics: subscribe to it or iterate"):
        handle.wait(10)


def test_consume_refuses_the_first_non_chunk_once() -> None:
    seen: list[Exception] = []
    completed: list[rxllm.ChatResponse] = []
    handle = consume(
        reactivex.of("text", "more"), on_complete=completed.append, on_error=seen.append
    )
    with pytest.raises(TypeError, match="emitted a str"):
        handle.wait(1)
    assert [type(e) for e in seen] == [TypeError] and completed == []
    with pytest.raises(TypeError, match="collect\\(\\) assemble ChatChunks"):
        collect_sync(reactivex.of({"choices": []}), timeout=1)


async def test_collect_async_and_await_handle(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse")))
    stream = chat(openai_base)
    response = await collect(stream)
    assert response.text.startswith("I'm unable")
    assert (await consume(stream)) == response


def test_collect_sync_raises_typed_error(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(status=401, body=b'{"error":{"message":"no","code":"invalid_api_key"}}'))
    with pytest.raises(errors.AuthenticationError):
        collect_sync(chat(openai_base), timeout=10)


def test_collect_merges_provider_fields() -> None:
    chunks = [
        chunk(None, provider_fields={"thinking": [{"signature": "s1"}]}),
        chunk("x", provider_fields={"thinking": [{"signature": "s2"}], "k": 1}),
        chunk(
            None,
            tool_calls=[
                ToolCallDelta(
                    index=0,
                    id="t",
                    function=FunctionCallDelta(name="f", arguments="{}"),
                    provider_fields={"sig": "abc"},
                )
            ],
        ),
    ]
    response = assemble(chunks)
    message = response.message
    assert message is not None
    assert message.provider_fields == {
        "thinking": [{"signature": "s1"}, {"signature": "s2"}],
        "k": 1,
    }
    assert response.tool_calls[0].provider_fields == {"sig": "abc"}


# --- text operators ---------------------------------------------------------------------------


def test_extract_reasoning_and_accumulate() -> None:
    source = reactivex.of(
        chunk(None, role="assistant"),
        chunk(None, reasoning_content="Let me "),
        chunk(None, reasoning_content="think."),
        chunk("The answer"),
        chunk(""),
        chunk(" is 42."),
        chunk(None, finish="stop"),
    )
    assert source.pipe(ops.extract_reasoning(), rx_ops.to_list()).run() == ["Let me ", "think."]
    assert source.pipe(ops.accumulate(), rx_ops.to_list()).run() == [
        "The answer",
        "The answer is 42.",
    ]


def test_accumulate_is_fresh_per_subscription() -> None:
    running = reactivex.of(chunk("a"), chunk("b")).pipe(ops.accumulate())
    assert running.pipe(rx_ops.to_list()).run() == ["a", "ab"]
    assert running.pipe(rx_ops.to_list()).run() == ["a", "ab"]


def test_buffer_text_joins_windows_and_drops_empty_ones() -> None:
    from reactivex.testing import ReactiveTest, TestScheduler

    scheduler = TestScheduler()
    on_next, on_completed = ReactiveTest.on_next, ReactiveTest.on_completed
    source = scheduler.create_hot_observable(
        on_next(110, chunk("Hel")),
        on_next(120, chunk(None, role="assistant")),
        on_next(150, chunk("lo")),
        on_next(260, chunk(" wor")),
        on_next(270, chunk("ld")),
        on_completed(520),
    )
    observer = scheduler.start(
        lambda: source.pipe(ops.buffer_text(100 / 1e6 * 1e6, scheduler=scheduler)),
        created=0,
        subscribed=100,
        disposed=1000,
    )
    values = [m.value.value for m in observer.messages if m.value.kind == "N"]
    # windows [100,200) [200,300) [300,400) [400,500) [500,520): two empty ones are dropped
    assert values == ["Hello", " world"]
    assert observer.messages[-1].value.kind == "C"


def test_label_copies_chunks_instead_of_changing_them() -> None:
    original = chunk("hi")
    subject: Subject[ChatChunk] = Subject()
    plain: list[ChatChunk] = []
    labelled: list[ChatChunk] = []
    subject.subscribe(plain.append)
    subject.pipe(ops.label("fast")).subscribe(labelled.append)
    subject.on_next(original)
    assert labelled[0].source == "fast" and labelled[0].choices[0].delta.content == "hi"
    assert plain[0] is original and original.source is None


# --- tool calls -------------------------------------------------------------------------------


def test_tool_calls_emit_each_call_when_the_next_one_starts(
    server: ReplayServer, openai_base: str
) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_parallel_tool_calls.sse"), piece=50))
    stream = chat(openai_base)
    seen_at: list[tuple[str, int]] = []
    chunks: list[ChatChunk] = []
    done = threading.Event()
    stream.pipe(rx_ops.do_action(chunks.append), ops.tool_calls()).subscribe(
        lambda call: seen_at.append((call.function.name, len(chunks))), on_completed=done.set
    )
    assert done.wait(10)
    calls = stream.pipe(ops.tool_calls(), rx_ops.to_list()).run()
    assert [(c.id, c.function.name, c.parsed_arguments()) for c in calls] == [
        (
            "call_JMW1whyEaYG438VE1OIflxA2",
            "GetWeatherArgs",
            {"city": "Edinburgh", "country": "GB", "units": "c"},
        ),
        (
            "call_DNYTawLBoN8fj3KN6qU9N1Ou",
            "get_stock_price",
            {"ticker": "AAPL", "exchange": "NASDAQ"},
        ),
    ]
    # the first call is out as soon as index 1 starts (chunk 14 of 25), not at the end
    assert seen_at[0] == ("GetWeatherArgs", 14)
    assert seen_at[1] == ("get_stock_price", 24)  # at the finish chunk


def test_tool_calls_flush_at_finish_and_never_on_error() -> None:
    fragment = ToolCallDelta(
        index=0, id="t1", type="function", function=FunctionCallDelta(name="f", arguments='{"a":')
    )
    rest = ToolCallDelta(index=0, function=FunctionCallDelta(arguments="1}"))
    finished = reactivex.of(
        chunk(None, tool_calls=[fragment]),
        chunk(None, tool_calls=[rest]),
        chunk(None, "tool_calls"),
    )
    emitted: list[object] = []
    finished.pipe(ops.tool_calls()).subscribe(emitted.append)
    assert [(c.id, c.function.arguments) for c in emitted] == [("t1", '{"a":1}')]  # type: ignore[attr-defined]
    broken = reactivex.concat(
        reactivex.of(chunk(None, tool_calls=[fragment])),
        reactivex.throw(errors.StreamTruncatedError("cut")),
    )
    with pytest.raises(errors.StreamTruncatedError):
        broken.pipe(ops.tool_calls(), rx_ops.to_list()).run()


# --- metrics ----------------------------------------------------------------------------------


def test_metrics_with_reported_usage(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse"), piece=400, delay=0.01))
    result = chat(openai_base).pipe(ops.metrics(), rx_ops.to_list()).run()
    (m,) = result
    assert m.response.text == TEXT
    assert (m.chunks, m.prompt_tokens, m.completion_tokens, m.tokens_estimated) == (
        33,
        14,
        30,
        False,
    )
    assert m.time_to_first_token is not None and 0 < m.time_to_first_token < m.duration
    assert m.tokens_per_second is not None and m.tokens_per_second > 0
    # gpt-4o-2024-08-06 at $2.50 / $10 per million tokens: 14 * 2.5e-6 + 30 * 1e-5
    assert m.cost == pytest.approx(0.000335)


def test_metrics_estimates_tokens_without_usage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RXLLM_TOKENIZER", "heuristic")
    ticks = iter([0.0, 0.5, 2.5])  # subscribe, first token, end
    source = reactivex.of(chunk(None, role="assistant"), chunk("abcdefgh"), chunk("ijkl"))
    (m,) = source.pipe(ops.metrics(clock=lambda: next(ticks)), rx_ops.to_list()).run()
    assert (m.completion_tokens, m.tokens_estimated, m.prompt_tokens, m.cost) == (
        3,
        True,
        None,
        None,
    )
    assert (m.time_to_first_token, m.duration, m.tokens_per_second) == (0.5, 2.5, 1.5)


# --- timeout ----------------------------------------------------------------------------------


def test_timeout_first_token_closes_the_connection(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse"), stall_after=0))
    started = time.monotonic()
    with pytest.raises(errors.APITimeoutError, match=r"no first chunk within 0\.2 s") as caught:
        chat(openai_base).pipe(ops.timeout(first_token=0.2), ops.collect()).run()
    assert time.monotonic() - started < 5
    assert (caught.value.provider, caught.value.model) == ("openai", "gpt-4o")
    assert server.disconnected.wait(10), "the server never saw the client leave"


def test_timeout_idle_keeps_the_partial_answer(server: ReplayServer, openai_base: str) -> None:
    body = fixture_bytes("openai/stream_text_usage.sse")
    server.queue(Reply(body=body, stall_after=body.index(b" weather"), piece=100))
    with pytest.raises(errors.APITimeoutError, match=r"no chunk for 0\.2 s") as caught:
        chat(openai_base).pipe(ops.timeout(idle=0.2), ops.collect()).run()
    assert caught.value.partial_text == "I'm unable to provide real-time"
    assert server.disconnected.wait(10)


async def test_timeout_total_inside_asyncio(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=paced_words(), piece=60, delay=0.01))
    texts: list[str] = []
    with pytest.raises(errors.APITimeoutError, match=r"longer than 0\.3 s"):
        async for text in iterate(
            chat(openai_base).pipe(ops.timeout(total=0.3), ops.extract_content())
        ):
            texts.append(text)  # noqa: PERF401 (keeps what came before the error)
    assert texts[:2] == ["w0 ", "w1 "] and len(texts) < 400
    assert await asyncio.to_thread(server.disconnected.wait, 10)


def test_timeout_does_not_fire_on_a_healthy_stream(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse"), piece=300, delay=0.01))
    response = (
        chat(openai_base).pipe(ops.timeout(first_token=5, idle=5, total=10), ops.collect()).run()
    )
    assert response.text == TEXT
    assert server.completed.wait(10) and not server.disconnected.is_set()


def test_take_until_a_timer_closes_the_connection(server: ReplayServer, openai_base: str) -> None:
    # the guide's `alts!` against `(timeout ms)`: end quietly when the timer fires
    server.queue(Reply(body=paced_words(), piece=60, delay=0.01))
    texts = (
        chat(openai_base)
        .pipe(ops.extract_content(), rx_ops.take_until(reactivex.timer(0.3)), rx_ops.to_list())
        .run()
    )
    assert texts[:3] == ["w0 ", "w1 ", "w2 "] and len(texts) < 400
    assert server.disconnected.wait(10), "the server never saw the client leave"
    assert not server.completed.is_set()


def test_timeout_needs_a_limit() -> None:
    with pytest.raises(ValueError, match="positive seconds"):
        ops.timeout()
    with pytest.raises(ValueError, match="positive seconds"):
        ops.timeout(idle=0)


# --- iteration --------------------------------------------------------------------------------


async def test_async_for_over_a_stream_and_a_pipeline(
    server: ReplayServer, openai_base: str
) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse"), piece=100))
    stream = chat(openai_base)
    chunks = [c async for c in stream]
    assert len(chunks) == 33
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 44
    texts = [t async for t in iterate(stream.pipe(ops.extract_content()))]
    assert "".join(texts) == TEXT and len(server.requests) == 1


async def test_breaking_out_of_async_for_cancels_the_request(
    server: ReplayServer, openai_base: str
) -> None:
    server.queue(Reply(body=paced_words(), piece=60, delay=0.01))
    stream = chat(openai_base)
    async for text in iterate(stream.pipe(ops.extract_content())):
        assert text == "w0 "
        break
    assert await asyncio.to_thread(server.disconnected.wait, 10)
    assert stream.state == "cancelled"


async def test_async_for_raises_the_stream_error_after_the_chunks(
    server: ReplayServer, openai_base: str
) -> None:
    body = fixture_bytes("openai/stream_text_usage.sse")
    server.queue(Reply(body=body, drop_after=body.index(b" weather"), piece=100))
    texts: list[str] = []
    with pytest.raises(errors.StreamTruncatedError):
        async for text in iterate(chat(openai_base).pipe(ops.extract_content())):
            texts.append(text)  # noqa: PERF401 (keeps what came before the error)
    assert "".join(texts) == "I'm unable to provide real-time"


def test_plain_for_in_a_script(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse"), piece=100))
    assert "".join(iterate(chat(openai_base).pipe(ops.extract_content()))) == TEXT


async def acompletion_stream(base: str) -> rxllm.ChatStream:
    """A stream made by ``acompletion``: bound to the running loop, not started."""
    return await rxllm.acompletion(
        "openai",
        "gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        api_key=API_KEY,
        api_base=base,
    )


async def test_plain_for_inside_asyncio_runs_a_stream_not_started_elsewhere(
    server: ReplayServer, openai_base: str
) -> None:
    # The loop acompletion bound it to would be blocked by the `for`: it runs on the
    # background loop instead, and the `for` runs its callbacks here.
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse")))
    stream = await acompletion_stream(openai_base)
    assert "".join(rxllm.streaming.extract_content(c) or "" for c in iterate(stream))
    assert stream.loop is not asyncio.get_running_loop()


async def test_plain_for_inside_asyncio_is_refused_at_once_when_it_would_deadlock(
    server: ReplayServer, openai_base: str
) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse"), piece=400, delay=0.02))
    stream = await acompletion_stream(openai_base)
    handle = rxllm.streaming.consume(stream)
    async for _ in stream:  # under way on this loop now
        break
    with pytest.raises(rxllm.errors.WouldBlockError, match="async for"):
        next(iter(iterate(stream)))
    assert (await handle) is not None


# --- fan-out ----------------------------------------------------------------------------------


def by_model(replies: dict[str, Reply]) -> object:
    def respond(request: Recorded) -> Reply:
        return replies[request.json()["model"]]

    return respond


def test_fan_out_labels_and_completes_when_all_complete(
    server: ReplayServer, openai_base: str
) -> None:
    server.responder = by_model(  # type: ignore[assignment]
        {
            "gpt-4o-mini": Reply(
                body=fixture_bytes("openai/stream_text_usage.sse"), piece=200, delay=0.002
            ),
            "gpt-4o": Reply(
                body=fixture_bytes("openai/stream_tool_call_usage.sse"), piece=200, delay=0.002
            ),
            "o3-mini": Reply(body=paced_words(20), piece=100),
        }
    )
    merged = fan_out(
        {
            "fast": chat(openai_base, "gpt-4o-mini"),
            "tools": chat(openai_base, "gpt-4o"),
            "words": chat(openai_base, "o3-mini"),
        }
    )
    chunks = merged.pipe(rx_ops.to_list()).run()
    assert {c.source for c in chunks} == {"fast", "tools", "words"}
    texts = {
        name: "".join(
            c.choices[0].delta.content or "" for c in chunks if c.source == name and c.choices
        )
        for name in ("fast", "tools", "words")
    }
    assert texts["fast"] == TEXT and texts["tools"] == "" and texts["words"].startswith("w0 w1 ")
    assert len(server.requests) == 3


def test_fan_out_reports_each_failure_without_killing_the_others(
    server: ReplayServer, openai_base: str
) -> None:
    server.responder = by_model(  # type: ignore[assignment]
        {
            "gpt-4o": Reply(
                body=fixture_bytes("openai/stream_text_usage.sse"), piece=100, delay=0.01
            ),
            "gpt-4o-mini": Reply(
                status=429, body=b'{"error":{"message":"slow down","code":"rate_limit_exceeded"}}'
            ),
        }
    )
    live: list[tuple[str, str]] = []
    texts: list[str] = []
    outcome: list[BaseException] = []
    ended = threading.Event()
    fan_out(
        {"smart": chat(openai_base, "gpt-4o"), "fast": chat(openai_base, "gpt-4o-mini")},
        on_source_error=lambda name, e: live.append((name, type(e).__name__)),
    ).pipe(ops.extract_content()).subscribe(
        texts.append, lambda e: (outcome.append(e), ended.set()), ended.set
    )
    assert ended.wait(10)
    assert live == [("fast", "RateLimitError")]
    assert "".join(texts) == TEXT  # the healthy stream ran to its end
    (error,) = outcome
    assert isinstance(error, errors.FanOutError)
    assert error.completed == ["smart"] and isinstance(error.errors["fast"], errors.RateLimitError)
    summary = errors.error_summary(error)
    assert summary["errors"]["fast"]["code"] == "rate_limit_exceeded"
    assert summary["completed"] == ["smart"] and summary["recoverable"] is True


def test_fan_out_fail_fast_closes_the_other_connections(
    server: ReplayServer, openai_base: str
) -> None:
    body = fixture_bytes("openai/stream_text_usage.sse")
    server.responder = by_model(  # type: ignore[assignment]
        {
            # "smart" streams its first words, then stalls; "fast" breaks a little later
            "gpt-4o": Reply(body=body, stall_after=body.index(b" weather")),
            "gpt-4o-mini": Reply(body=body, drop_after=600, piece=100, delay=0.05),
        }
    )
    with pytest.raises(errors.FanOutError, match="fast: StreamTruncatedError") as caught:
        fan_out(
            {"smart": chat(openai_base, "gpt-4o"), "fast": chat(openai_base, "gpt-4o-mini")},
            fail_fast=True,
        ).run()
    assert list(caught.value.errors) == ["fast"]
    assert server.disconnected.wait(10), "the stalled stream's connection was left open"
