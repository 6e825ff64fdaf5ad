"""What a stream keeps for replay (rxllm._replay): chunks rebuilt equal to the originals, on
every recorded transcript and on arbitrary chunks; iteration that follows appends; the memory
it takes per chunk (docs/contracts.md, 2: at most 200 bytes per chunk beyond its text)."""

from __future__ import annotations

import gc
import json
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rxllm import transport
from rxllm._api import prepare
from rxllm._assemble import assemble
from rxllm._replay import NoReplay, Replay
from rxllm.providers.openai import OpenAIStreamParser
from rxllm.types import (
    ChatChunk,
    CompletionTokensDetails,
    Delta,
    FunctionCallDelta,
    PromptTokensDetails,
    StreamChoice,
    ToolCallDelta,
    Usage,
)

from .conftest import API_KEY, fixture_bytes
from .server import sse

USER = [{"role": "user", "content": "hi"}]


def framed(name: str) -> bytes:
    """A ``.chunks.txt`` recording (one JSON payload a line) as its SSE body."""
    return sse(*fixture_bytes(name).splitlines())


def ndjson(*names: str) -> bytes:
    return b"".join(json.dumps(json.loads(fixture_bytes(n))).encode() + b"\n" for n in names)


# Every stream transcript the provider tests replay: (provider, model, body, options).
TRANSCRIPTS: dict[str, tuple[str, str, Callable[[], bytes], dict[str, Any]]] = {
    "openai/stream_text_usage": ("openai", "gpt-4o", lambda: fixture_bytes("openai/stream_text_usage.sse"), {}),
    "openai/stream_tool_call_usage": ("openai", "gpt-4o", lambda: fixture_bytes("openai/stream_tool_call_usage.sse"), {}),
    "openai/stream_parallel_tool_calls": ("openai", "gpt-4o", lambda: fixture_bytes("openai/stream_parallel_tool_calls.sse"), {}),
    "openai/stream_structured_output_json_schema": ("openai", "gpt-4o", lambda: fixture_bytes("openai/stream_structured_output_json_schema.sse"), {}),
    "openai/stream_refusal": ("openai", "gpt-4o", lambda: fixture_bytes("openai/stream_refusal.sse"), {}),
    "azure/stream_text": ("azure", "gpt-4o", lambda: fixture_bytes("azure/stream_text.sse"), {"api_version": "2024-02-01"}),
    "azure/stream_usage": ("azure", "gpt-4o", lambda: framed("azure/stream_usage.chunks.txt"), {"api_version": "2024-02-01"}),
    "deepseek/stream_reasoning_usage": ("deepseek", "deepseek-reasoner", lambda: fixture_bytes("deepseek/stream_reasoning_usage.sse"), {}),
    "deepseek/stream_tool_call": ("deepseek", "deepseek-chat", lambda: framed("deepseek/stream_tool_call.chunks.txt"), {}),
    "mistral/stream_text_usage": ("mistral", "mistral-tiny", lambda: fixture_bytes("mistral/stream_text_usage.sse"), {}),
    "mistral/stream_thinking": ("mistral", "magistral-medium-latest", lambda: fixture_bytes("mistral/stream_thinking.sse"), {}),
    "mistral/stream_tool_call": ("mistral", "mistral-tiny", lambda: framed("mistral/stream_tool_call.chunks.txt"), {}),
    "mistral/stream_incremental_tool_call": ("mistral", "mistral-tiny", lambda: framed("mistral/stream_incremental_tool_call.chunks.txt"), {}),
    "openai_compatible/stream_tool_call": ("openai_compatible", "llama-3.3-70b-versatile", lambda: framed("openai_compatible/stream_tool_call.chunks.txt"), {}),
    "openrouter/stream_text_usage": ("openrouter", "openai/gpt-4o", lambda: fixture_bytes("openrouter/stream_text_usage.sse"), {}),
    "openrouter/stream_reasoning": ("openrouter", "deepseek/deepseek-r1", lambda: fixture_bytes("openrouter/stream_reasoning.sse"), {}),
    "openrouter/stream_midstream_error": ("openrouter", "openai/gpt-4o", lambda: fixture_bytes("openrouter/stream_midstream_error.sse"), {}),
    "openai_responses/stream_text": ("openai_responses", "gpt-4.1-nano", lambda: fixture_bytes("openai_responses/stream_text.sse"), {}),
    "openai_responses/stream_function_call": ("openai_responses", "gpt-5.5", lambda: fixture_bytes("openai_responses/stream_function_call.sse"), {}),
    "openai_responses/stream_function_call_no_sequence_number": ("openai_responses", "gpt-4o", lambda: fixture_bytes("openai_responses/stream_function_call_no_sequence_number.sse"), {}),
    "openai_responses/stream_reasoning_summary": ("openai_responses", "o3-mini", lambda: fixture_bytes("openai_responses/stream_reasoning_summary.sse"), {}),
    "openai_responses/stream_web_search_cached_usage": ("openai_responses", "gpt-5", lambda: fixture_bytes("openai_responses/stream_web_search_cached_usage.sse"), {}),
    "openai_responses/stream_error_failed": ("openai_responses", "gpt-5-nano", lambda: sse(*fixture_bytes("openai_responses/stream_error_failed.chunks.txt").splitlines(), done=False), {}),
    "anthropic/stream_text": ("anthropic", "claude-haiku-4-5", lambda: fixture_bytes("anthropic/stream_text.sse"), {}),
    "anthropic/stream_thinking": ("anthropic", "claude-sonnet-4-5", lambda: fixture_bytes("anthropic/stream_thinking.sse"), {}),
    "anthropic/stream_tool_use": ("anthropic", "claude-haiku-4-5", lambda: fixture_bytes("anthropic/stream_tool_use.sse"), {}),
    "anthropic/stream_error_overloaded": ("anthropic", "claude-haiku-4-5", lambda: fixture_bytes("anthropic/stream_error_overloaded.sse"), {}),
    "anthropic/stream_cache_creation": ("anthropic", "claude-3-5-sonnet-20240620", lambda: fixture_bytes("anthropic/stream_cache_creation.sse"), {}),
    "anthropic/stream_cache_read": ("anthropic", "claude-3-5-sonnet-20240620", lambda: fixture_bytes("anthropic/stream_cache_read.sse"), {}),
    "anthropic/stream_compaction_cache_read": ("anthropic", "claude-sonnet-4-6", lambda: fixture_bytes("anthropic/stream_compaction_cache_read.sse"), {}),
    "anthropic/stream_redacted_thinking": ("anthropic", "claude-3-7-sonnet-20250219", lambda: fixture_bytes("anthropic/stream_redacted_thinking.sse"), {}),
    "anthropic/stream_web_search_citations": ("anthropic", "claude-sonnet-4-0", lambda: fixture_bytes("anthropic/stream_web_search_citations.sse"), {}),
    "anthropic/stream_web_search_thinking_citations": ("anthropic", "claude-sonnet-4-0", lambda: fixture_bytes("anthropic/stream_web_search_thinking_citations.sse"), {}),
    "anthropic/stream_structured_output_json": ("anthropic", "claude-sonnet-4-5", lambda: fixture_bytes("anthropic/stream_structured_output_json.sse"), {}),
    "anthropic/stream_forced_tool_json": ("anthropic", "claude-haiku-4-5", lambda: sse(*fixture_bytes("anthropic/stream_forced_tool_json.chunks.txt").splitlines(), done=False), {"response_format": {"type": "json_schema", "json_schema": {"name": "json", "schema": {"type": "object"}}}}),
    "gemini/stream_text": ("gemini", "gemini-2.0-flash", lambda: fixture_bytes("gemini/stream_text.sse"), {}),
    "gemini/stream_thinking": ("gemini", "gemini-2.5-flash", lambda: fixture_bytes("gemini/stream_thinking.sse"), {}),
    "gemini/stream_function_call": ("gemini", "gemini-2.0-flash", lambda: fixture_bytes("gemini/stream_function_call.sse"), {}),
    "gemini/stream_function_call_thought_signature": ("gemini", "gemini-2.5-flash", lambda: fixture_bytes("gemini/stream_function_call_thought_signature.sse"), {}),
    "gemini/stream_thinking_thought_signature": ("gemini", "gemini-2.5-pro", lambda: fixture_bytes("gemini/stream_thinking_thought_signature.sse"), {}),
    "gemini/stream_text_thought_signature_empty_part": ("gemini", "gemini-3-pro-preview", lambda: framed("gemini/stream_text_thought_signature_empty_part.chunks.txt"), {}),
    "gemini/stream_after_function_response": ("gemini", "gemini-3-pro-preview", lambda: fixture_bytes("gemini/stream_after_function_response.sse"), {}),
    "gemini/stream_midstream_error": ("gemini", "gemini-2.0-flash", lambda: fixture_bytes("gemini/stream_midstream_error.txt"), {}),
    "gemini/stream_structured_output": ("gemini", "gemini-3-flash-preview", lambda: fixture_bytes("gemini/stream_structured_output.sse"), {}),
    "ollama/stream_chat": ("ollama", "gemma3:1b", lambda: fixture_bytes("ollama/stream_chat.ndjson"), {}),
    "ollama/stream_midstream_error": ("ollama", "gemma3:1b", lambda: fixture_bytes("ollama/stream_midstream_error.ndjson"), {}),
    "ollama/stream_tool_call": ("ollama", "llama3.2", lambda: ndjson("ollama/stream_tool_call_chunk.json", "ollama/stream_tool_call_final.json"), {}),
}  # fmt: skip


def parsed(provider: str, model: str, body: bytes, options: dict[str, Any]) -> list[ChatChunk]:
    """The chunks a stream of ``body`` emits, driven as ChatStream drives the parser (reads of
    97 bytes; the chunks before an error count)."""
    call, spec, _ = prepare(
        provider,
        model,
        messages=USER,
        stream=True,
        api_key=API_KEY,
        api_base="http://127.0.0.1:9/v1",
        params=options,
    )
    decoder = spec.decoder()
    parser = spec.stream_parser(call)
    chunks: list[ChatChunk] = []
    for start in range(0, len(body), 97):
        found, error = parser.parse(decoder.feed(body[start : start + 97]))
        chunks += found
        if error is not None or parser.done:
            return chunks
    found, error = parser.parse(decoder.close())
    chunks += found
    if error is None and parser.done:
        return chunks
    if error is None:
        try:
            last = parser.finish()
        except Exception:
            return chunks
        if last is not None:
            chunks.append(last)
    return chunks


def check(chunks: list[ChatChunk]) -> Replay:
    """Everything a Replay and a NoReplay promise about ``chunks``; the Replay."""
    replay, no_replay = Replay(), NoReplay()
    for chunk in chunks:
        replay.append(chunk)
        no_replay.append(chunk)
    assert len(replay) == len(no_replay) == len(chunks)
    assert bool(replay) == bool(no_replay) == bool(chunks)
    assert list(replay) == chunks
    assert replay.chunks() == chunks
    assert list(replay) == chunks  # again: iteration keeps nothing
    assert list(no_replay) == no_replay.chunks() == []
    usages = [c.usage for c in chunks if getattr(c, "usage", None) is not None]
    assert replay.usage() is no_replay.usage() is (usages[-1] if usages else None)
    if chunks:
        expected = assemble(chunks)
        assert replay.assemble() == expected
        assert no_replay.assemble() == expected
        assert no_replay.assemble() == expected  # any number of times
    return replay


# --- recorded transcripts ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TRANSCRIPTS))
def test_every_recorded_transcript_replays_equal(name: str) -> None:
    provider, model, body, options = TRANSCRIPTS[name]
    chunks = parsed(provider, model, body(), options)
    assert chunks or "error" in name, "the transcript gives chunks"
    check(chunks)


def test_every_stream_fixture_is_in_the_table() -> None:
    from .conftest import FIXTURES

    names = {
        f"{path.parent.name}/{path.name.split('.')[0]}"
        for path in FIXTURES.glob("*/stream_*")
        if not path.name.endswith(".json")
    }
    names.add("ollama/stream_tool_call")  # two .json lines, framed by ndjson()
    assert names == set(TRANSCRIPTS)


def test_a_text_stream_keeps_its_text_chunks_as_text() -> None:
    chunks = parsed("openai", "gpt-4o", fixture_bytes("openai/stream_text_usage.sse"), {})
    replay = check(chunks)
    kept = replay._items
    texts = [c.choices[0].delta.content for c in chunks[:-2]]  # the role chunk's "" first
    assert [item for item in kept if type(item) is str] == texts
    assert [item for item in kept if type(item) is ChatChunk] == chunks[-2:]  # finish, usage
    assert replay._templates == 2  # the role chunk's, the text chunks'


def test_reasoning_chunks_are_kept_as_text_too() -> None:
    provider, model, body, options = TRANSCRIPTS["deepseek/stream_reasoning_usage"]
    chunks = parsed(provider, model, body(), options)
    replay = check(chunks)
    reasoning = [item for item in replay._items if type(item) is tuple]
    assert len(reasoning) > len(chunks) // 2
    assert sum(type(item) is ChatChunk for item in replay._items) <= 2


@pytest.mark.parametrize(
    "name", ["openai/stream_tool_call_usage", "openai/stream_parallel_tool_calls"]
)
def test_tool_call_argument_fragments_are_kept_as_text(name: str) -> None:
    provider, model, body, options = TRANSCRIPTS[name]
    chunks = parsed(provider, model, body(), options)
    replay = check(chunks)
    fragments = [
        c.choices[0].delta.tool_calls[0].function.arguments  # type: ignore[index, union-attr]
        for c in chunks
        if c.choices
        and c.choices[0].delta.tool_calls
        and c.choices[0].delta.tool_calls[0].id is None
    ]
    assert [item[0] for item in replay._items if type(item) is list] == fragments
    # each call's first fragment (id, name), the finish chunk, the usage chunk
    calls = len(
        {
            c.choices[0].delta.tool_calls[0].index
            for c in chunks
            if c.choices and c.choices[0].delta.tool_calls
        }
    )  # type: ignore[index]
    assert sum(type(item) is ChatChunk for item in replay._items) == calls + 2


# --- arbitrary chunks --------------------------------------------------------------------

_texts = st.one_of(st.none(), st.just(""), st.text(max_size=4))
_fields = st.one_of(
    st.none(),
    st.dictionaries(st.sampled_from(["signature", "x"]), st.integers() | st.text(max_size=3)),
)
_tool_calls = st.lists(
    st.builds(
        ToolCallDelta,
        index=st.integers(0, 2),
        id=st.none() | st.sampled_from(["call_1", "call_2"]),
        type=st.none() | st.just("function"),
        function=st.none()
        | st.builds(FunctionCallDelta, name=st.none() | st.just("f"), arguments=_texts),
        provider_fields=_fields,
    ),
    max_size=2,
)
_usage = st.builds(
    Usage,
    prompt_tokens=st.integers(0, 5),
    completion_tokens=st.integers(0, 5),
    total_tokens=st.integers(0, 10),
    prompt_tokens_details=st.none() | st.builds(PromptTokensDetails, cached_tokens=st.none() | st.integers(0, 3)),
    completion_tokens_details=st.none() | st.builds(CompletionTokensDetails, reasoning_tokens=st.none() | st.integers(0, 3)),
)  # fmt: skip
_odd_delta = st.builds(
    Delta,
    role=st.none() | st.just("assistant"),
    content=_texts,
    reasoning_content=_texts,
    tool_calls=st.none() | _tool_calls,
    refusal=st.none() | st.just("no"),
    provider_fields=_fields,
)
_finish = st.none() | st.sampled_from(["stop", "length", "tool_calls"])
_headers = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["chatcmpl-1", "chatcmpl-2", ""]),
        "object": st.sampled_from(["chat.completion.chunk", ""]),
        "created": st.sampled_from([0, 1727346168]),
        "model": st.sampled_from(["gpt-4o", "gpt-4o-mini", ""]),
        "system_fingerprint": st.none() | st.sampled_from(["fp_1", ""]),
        "provider": st.sampled_from(["openai", "x"]),
        "source": st.none() | st.sampled_from(["a", ""]),
    }
)


@st.composite
def streams(draw: st.DrawFn) -> list[ChatChunk]:
    """Runs of chunks over a few headers: mostly chunks with one text (``content``,
    ``reasoning_content``, a tool-call fragment's ``arguments``: what a replay keeps
    compactly), mixed with arbitrary ones (several choices, tool-call deltas,
    usage, finish reasons, provider fields), the header changing mid-stream."""
    headers = draw(st.lists(_headers, min_size=1, max_size=3))
    chunks = []
    for _ in range(draw(st.integers(0, 30))):
        header = headers[draw(st.integers(0, len(headers) - 1))]
        kind = draw(st.sampled_from(["content", "content", "reasoning", "arguments", "odd"]))
        index = draw(st.sampled_from([0, 0, 0, 1]))
        role = draw(st.sampled_from([None, None, "assistant"]))
        if kind == "content":
            delta = Delta(role=role, content=draw(_texts))
            choices = [StreamChoice(index=index, delta=delta)]
        elif kind == "reasoning":
            delta = Delta(role=role, reasoning_content=draw(_texts))
            choices = [StreamChoice(index=index, delta=delta)]
        elif kind == "arguments":
            fragment = ToolCallDelta(
                index=draw(st.sampled_from([0, 0, 1])),
                function=FunctionCallDelta(arguments=draw(_texts)),
            )
            choices = [StreamChoice(index=index, delta=Delta(role=role, tool_calls=[fragment]))]
        else:
            choices = draw(
                st.lists(
                    st.builds(
                        StreamChoice,
                        index=st.integers(0, 2),
                        delta=_odd_delta,
                        finish_reason=_finish,
                        native_finish_reason=_finish,
                    ),
                    max_size=3,
                )
            )
        usage = draw(st.none() | _usage) if kind == "odd" else None
        chunks.append(ChatChunk(**header, choices=choices, usage=usage))
    return chunks


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_arbitrary_chunks_replay_equal(chunks: list[ChatChunk]) -> None:
    check(chunks)


@settings(max_examples=100, deadline=None)
@given(streams(), st.integers(1, 4))
def test_no_replay_folds_without_changing_the_answer(chunks: list[ChatChunk], every: int) -> None:
    class Small(NoReplay):
        __slots__ = ()
        FOLD_AT = every

    no_replay = Small()
    for chunk in chunks:
        no_replay.append(chunk)
        assert len(no_replay._items) < every
    assert len(no_replay) == len(chunks)
    if chunks:
        assert no_replay.assemble() == assemble(chunks)


def test_the_originals_are_not_kept_and_changing_them_later_changes_nothing() -> None:
    chunk = ChatChunk(id="c", model="m", choices=[StreamChoice(delta=Delta(content="a"))])
    copy = msgspec.json.decode(msgspec.json.encode(chunk), type=ChatChunk)
    replay = Replay()
    replay.append(chunk)
    chunk.id = "changed"
    chunk.choices[0].delta.content = "b"
    assert list(replay) == [copy]


class _Text(str):
    pass


class _Raises:
    def __eq__(self, other: object) -> bool:
        raise ValueError("no comparing me")

    __hash__ = None  # type: ignore[assignment]


def test_values_no_parser_makes_are_kept_as_they_are() -> None:
    """A hand-made chunk with values of other types than its fields' never confuses the
    replay (nor makes append raise): at worst it is kept whole."""

    def text(content: Any) -> ChatChunk:
        return ChatChunk(id="c", choices=[StreamChoice(delta=Delta(content=content))])

    odd: list[Any] = [
        text(("tuple",)),
        text(["list"]),
        text(_Text("str subclass")),
        text(5),
        text(None),
        ChatChunk(id="c", choices=None),  # type: ignore[arg-type]
        ChatChunk(id="c", choices=[StreamChoice(delta=None)]),  # type: ignore[arg-type]
        ChatChunk(id="c", choices=[None]),  # type: ignore[list-item]
        ChatChunk(id="c", choices=[StreamChoice(delta=Delta(content="x"))], source=_Raises()),  # type: ignore[arg-type]
        ChatChunk(id="c", choices=[StreamChoice(delta=Delta(tool_calls=[None]))]),  # type: ignore[list-item]
        "not a chunk",
    ]
    for position in range(len(odd)):
        chunks = [text("a"), text("b"), odd[position], text("c"), *odd[:position]]
        replay = Replay()
        for chunk in chunks:
            replay.append(chunk)
        assert len(replay) == len(chunks)
        kept = list(replay)
        assert [type(c) for c in kept] == [type(c) for c in chunks]
        assert kept == chunks


def test_each_iteration_builds_fresh_chunks() -> None:
    replay = Replay()
    replay.append(ChatChunk(id="c", choices=[StreamChoice(delta=Delta(content="a"))]))
    (first,) = replay
    (second,) = replay
    assert first == second and first is not second
    assert first.choices is not second.choices


# --- iteration while appending -----------------------------------------------------------


def text_chunks(n: int, start: int = 0) -> list[ChatChunk]:
    return [
        ChatChunk(id="c", model="m", choices=[StreamChoice(delta=Delta(content=str(i)))])
        for i in range(start, start + n)
    ]


def test_an_iteration_yields_what_is_appended_while_it_runs() -> None:
    chunks = text_chunks(3)
    chunks.insert(2, ChatChunk(id="other", choices=[]))  # kept whole, between compact ones
    chunks.append(ChatChunk(id="new id", choices=[StreamChoice(delta=Delta(content="x"))]))
    replay = Replay()
    replay.append(chunks[0])
    seen = []
    iterator = iter(replay)
    for chunk in chunks[1:]:
        seen.append(next(iterator))
        replay.append(chunk)
    seen += list(iterator)
    assert seen == chunks
    assert next(iterator, None) is None


def test_a_late_subscriber_replays_then_follows() -> None:
    """The pattern a stream uses: replay from inside a callback, the producer appending."""
    replay = Replay()
    first, later = text_chunks(5), text_chunks(5, start=5)
    for chunk in first:
        replay.append(chunk)
    late: Iterator[ChatChunk] = iter(replay)
    received = list(late)  # what is there so far
    assert received == first
    for chunk in later:
        replay.append(chunk)
        received += list(late)  # an exhausted generator stays exhausted...
    assert received == first
    received += list(iter(replay))[len(received) :]  # ...a new iteration sees the rest
    assert received == first + later


def test_an_unfinished_iteration_follows_appends() -> None:
    replay = Replay()
    chunks = text_chunks(6)
    replay.append(chunks[0])
    iterator = iter(replay)
    received = [next(iterator)]
    for chunk in chunks[1:]:
        replay.append(chunk)
        received.append(next(iterator))
    assert received == chunks


def test_no_replay_counts_and_keeps_nothing_to_iterate() -> None:
    no_replay = NoReplay()
    for chunk in text_chunks(10):
        no_replay.append(chunk)
    assert len(no_replay) == 10 and list(no_replay) == []
    assert no_replay.assemble().text == "0123456789"
    assert "10 chunks" in repr(no_replay)


# --- memory ------------------------------------------------------------------------------

N_CHUNKS = 20_000
_WORDS = ["Hello", " world", ",", " this", " is", " a", " streamed", " token", " é", " 🙂"]
_HEAD = (
    '{"id":"chatcmpl-ABfw031mOJeYCSHe4yI2ZjOA6kMJL","object":"chat.completion.chunk",'
    '"created":1727346168,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_5050236cbd",'
    '"choices":'
)


def openai_body(n: int) -> bytes:
    """A typical OpenAI stream: role chunk, ``n`` text chunks, finish chunk, usage chunk."""
    first = '[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},'
    first += '"logprobs":null,"finish_reason":null}]}'
    text = '[{"index":0,"delta":{"content":TEXT},"logprobs":null,"finish_reason":null}]}'
    last = '[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}'
    usage = f'[],"usage":{{"prompt_tokens":14,"completion_tokens":{n},"total_tokens":{n + 14}}}}}'
    events = [_HEAD + first]
    events += [_HEAD + text.replace("TEXT", json.dumps(_WORDS[i % len(_WORDS)])) for i in range(n)]
    events += [_HEAD + last, _HEAD + usage]
    return sse(*events)


def kept_bytes(keeper: Callable[[], Any], body: bytes) -> tuple[int, int, int]:
    """(bytes still allocated after the stream, UTF-8 bytes of its text, chunks): the stream
    parsed as ChatStream parses it (64 KiB reads), each chunk handed to ``keeper().append``;
    the chunks themselves are dropped, as the subscribers drop them."""
    gc.collect()
    tracemalloc.start()
    try:
        kept = keeper()
        decoder, parser = transport.SSEDecoder(), OpenAIStreamParser("openai", "gpt-4o")
        count = text = 0
        for start in range(0, len(body), 65536):
            chunks, error = parser.parse(decoder.feed(body[start : start + 65536]))
            assert error is None
            for chunk in chunks:
                kept.append(chunk)
                count += 1
                if chunk.choices:
                    text += len((chunk.choices[0].delta.content or "").encode())
            del chunks
        gc.collect()
        size, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert parser.done and len(kept) == count
    return size, text, count


def test_replay_keeps_at_most_200_bytes_per_chunk_beyond_its_text() -> None:
    body = openai_body(N_CHUNKS)
    figures = {}
    for name, keeper in (("list of structs", list), ("Replay", Replay), ("NoReplay", NoReplay)):
        size, text, count = kept_bytes(keeper, body)
        figures[name] = (size - text) / count
    print(  # the real figures (pytest -s)
        "bytes kept per chunk beyond its text: "
        + ", ".join(f"{name} {value:.1f}" for name, value in figures.items())
    )
    assert figures["Replay"] <= 200
    assert figures["NoReplay"] <= 50
    assert figures["list of structs"] > 400  # what the measurement would catch
