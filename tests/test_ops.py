"""The first utilities: extract_content, ops.collect, consume with callbacks, collect."""

from __future__ import annotations

import threading

import pytest
import reactivex
from reactivex import operators as rx_ops

import rxllm
from rxllm import errors, ops
from rxllm._assemble import assemble
from rxllm.streaming import StreamHandle, collect, collect_sync, consume, extract_content
from rxllm.types import (
    ChatChunk,
    Delta,
    FunctionCallDelta,
    StreamChoice,
    ToolCallDelta,
    Usage,
)

from .conftest import API_KEY, fixture_bytes
from .server import ReplayServer, Reply


def chunk(content: str | None = None, **kwargs: object) -> ChatChunk:
    delta = Delta(content=content, **kwargs)  # type: ignore[arg-type]
    return ChatChunk(id="c1", model="m", provider="p", choices=[StreamChoice(delta=delta)])


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


def chat(base: str) -> rxllm.ChatStream:
    return rxllm.completion(
        "openai",
        "gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        api_key=API_KEY,
        api_base=base,
    )


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
