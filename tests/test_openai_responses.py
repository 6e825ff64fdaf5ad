"""OpenAI Responses API over real HTTP: recorded transcripts replayed byte for byte.

The recordings (tests/fixtures/openai_responses/, provenance in tests/fixtures/SOURCES.md) hold
no ``response.incomplete``, ``response.refusal.delta`` or parallel function-call stream: those
cases are built here from the recorded events (an edited terminal event, the recorded items
with their fields swapped), and each test says which.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

import rxllm
from rxllm import errors
from rxllm._api import prepare
from rxllm._events import NamedDataEvents
from rxllm._sse import SSEDecoder
from rxllm.streaming import collect_sync

from .conftest import API_KEY, failure_of, fixture_bytes
from .server import ReplayServer, Reply

MODEL = "gpt-5"
USER = [{"role": "user", "content": "What is 2+2?"}]
MULTIPLY = "What is 1231 * 2331? Use the multiply tool."
QUOTA = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors."
)


# --- the recordings, event by event ------------------------------------------------------------


def blocks(name: str) -> list[bytes]:
    """The events of a recorded ``.sse`` stream, each with its blank line."""
    body = fixture_bytes(f"openai_responses/{name}")
    return [block + b"\n\n" for block in body.split(b"\n\n") if block.strip()]


def payloads(name: str) -> list[dict[str, Any]]:
    """The JSON payloads of a recorded ``.sse`` stream, in order."""
    return [json.loads(block.split(b"\ndata: ", 1)[1]) for block in blocks(name)]


def frame(payload: dict[str, Any] | bytes) -> bytes:
    """One event as the API frames it: ``event: <its type>`` then ``data: <the payload>``."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    kind = json.loads(data)["type"].encode()
    return b"event: " + kind + b"\ndata: " + data + b"\n\n"


def failure_lines() -> list[bytes]:
    """The recorded failing stream's payloads (its ``.chunks.txt`` lacks the SSE framing)."""
    return fixture_bytes("openai_responses/stream_error_failed.chunks.txt").splitlines()


def failed_stream() -> bytes:
    """The failing stream as it came over the wire: each payload framed with its event name."""
    return b"".join(frame(line) for line in failure_lines())


def completed(name: str) -> dict[str, Any]:
    """The Response object of a recorded stream's ``response.completed`` event."""
    (event,) = [p for p in payloads(name) if p["type"] == "response.completed"]
    response: dict[str, Any] = event["response"]
    return response


def done_items(name: str) -> list[dict[str, Any]]:
    """The items of a recorded stream's ``response.output_item.done`` events, in order."""
    return [p["item"] for p in payloads(name) if p["type"] == "response.output_item.done"]


def stream(server: ReplayServer, messages: list[Any] = USER, **kwargs: Any) -> rxllm.ChatStream:
    return rxllm.completion(
        "openai_responses",
        kwargs.pop("model", MODEL),
        messages=messages,
        stream=True,
        api_key=API_KEY,
        api_base=server.base + "/v1",
        **kwargs,
    )


def answer(server: ReplayServer, name: str, messages: list[Any] = USER, **kwargs: Any) -> Any:
    """A non-streamed call answered with the recorded body ``name``."""
    body = fixture_bytes(f"openai_responses/{name}")
    server.queue(Reply(body=body, content_type="application/json"))
    return rxllm.completion(
        "openai_responses",
        kwargs.pop("model", MODEL),
        messages=messages,
        api_key=API_KEY,
        api_base=server.base + "/v1",
        **kwargs,
    )


def sent_body(messages: list[Any], model: str = MODEL, **params: Any) -> dict[str, Any]:
    """The JSON body rxllm would send (built, not sent: request translation only)."""
    _, _, request = prepare(
        "openai_responses", model, messages=messages, stream=False, api_key=API_KEY, params=params
    )
    assert request.body is not None
    body: dict[str, Any] = json.loads(request.body)
    return body


def parsed(body: bytes, pieces: list[int] | None = None) -> list[rxllm.ChatChunk]:
    """The chunks of ``body`` cut at ``pieces`` (offsets), driven as ChatStream drives the
    parser; it must reach the end marker without error."""
    call, spec, _ = prepare("openai_responses", MODEL, messages=USER, stream=True, api_key=API_KEY)
    decoder, parser = spec.decoder(), spec.stream_parser(call)
    cuts = [0, *(pieces or []), len(body)]
    chunks: list[rxllm.ChatChunk] = []
    for start, end in itertools.pairwise(cuts):
        found, error = parser.parse(decoder.feed(body[start:end]))
        assert error is None
        chunks += found
    found, error = parser.parse(decoder.close())
    assert error is None and parser.done
    return [*chunks, *found]


def fragments(chunks: list[rxllm.ChatChunk]) -> list[Any]:
    return [t for c in chunks for t in c.choices[0].delta.tool_calls or []]


# --- streaming ---------------------------------------------------------------------------------


def test_stream_text(server: ReplayServer) -> None:
    server.queue(Reply(body=fixture_bytes("openai_responses/stream_text.sse"), piece=97))
    chunks: list[rxllm.ChatChunk] = []
    response = rxllm.streaming.consume(stream(server), on_chunk=chunks.append).wait(10)
    assert response is not None
    assert response.text == "2 + 2 equals 4."
    assert response.id == "resp_087a1bffb8180cc4006912065042e08196a1a6445d62480120"
    assert response.model == "gpt-4.1-nano-2025-04-14"
    assert response.created == 1762788944
    assert response.provider == "openai_responses"
    assert (response.finish_reason, response.choices[0].native_finish_reason) == (
        "stop",
        "completed",
    )
    assert response.reasoning_content is None and response.tool_calls == []
    usage = response.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (14, 9, 23)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 0
    # One role chunk, one chunk per text delta, one closing chunk with the usage.
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].delta.content for c in chunks[1:-1]] == [
        "2",
        " +",
        " ",
        "2",
        " equals",
        " ",
        "4",
        ".",
    ]
    assert chunks[-1].usage == usage and chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.provider == "openai_responses" and c.id == response.id for c in chunks)
    assert response.message is not None and response.message.provider_fields is None


def test_stream_function_call_and_the_recorded_request(server: ReplayServer) -> None:
    recorded = json.loads(fixture_bytes("openai_responses/request_stream_function_call.json"))
    server.queue(Reply(body=fixture_bytes("openai_responses/stream_function_call.sse"), piece=50))
    tools = [
        {
            "type": "function",
            "function": {
                "name": tool["name"],
                "description": tool["description"],
                "parameters": tool["parameters"],
            },
        }
        for tool in recorded["tools"]
    ]
    chunks: list[rxllm.ChatChunk] = []
    chat = stream(
        server,
        [{"role": "user", "content": MULTIPLY}],
        model="gpt-5.5",
        tools=tools,
        reasoning_effort="low",
    )
    response = rxllm.streaming.consume(chat, on_chunk=chunks.append).wait(10)
    assert response is not None
    (request,) = server.requests
    assert request.method == "POST" and request.path == "/v1/responses"
    assert request.json() == recorded  # Chat tools flattened, store off, encrypted reasoning on
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["Accept"] == "text/event-stream"
    (call,) = response.tool_calls
    assert (call.id, call.type, call.function.name) == (
        "call_sVidsfFJ6zlzRpelrPkTPlpd",
        "function",
        "multiply",
    )
    assert call.function.arguments == '{"a":1231,"b":2331}'
    assert call.provider_fields is None
    assert response.text == "" and response.message is not None
    assert response.message.content is None
    assert (response.finish_reason, response.choices[0].native_finish_reason) == (
        "tool_calls",
        "completed",
    )
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (58, 23)
    # The call opens with its id and name at index 0; then one fragment per arguments delta.
    parts = fragments(chunks)
    assert (parts[0].index, parts[0].id, parts[0].function.name) == (
        0,
        "call_sVidsfFJ6zlzRpelrPkTPlpd",
        "multiply",
    )
    assert [p.function.arguments for p in parts[1:]] == [
        '{"',
        "a",
        '":',
        "123",
        "1",
        ',"',
        "b",
        '":',
        "233",
        "1",
        "}",
    ]
    assert all(p.index == 0 and p.id is None and p.function.name is None for p in parts[1:])


def test_stream_without_sequence_numbers(server: ReplayServer) -> None:
    server.queue(
        Reply(
            body=fixture_bytes("openai_responses/stream_function_call_no_sequence_number.sse"),
            piece=7,
        )
    )
    response = collect_sync(stream(server, model="gpt-4o"), timeout=10)
    (call,) = response.tool_calls
    assert (call.id, call.function.name, call.parsed_arguments()) == (
        "call_kL0PCQV7M2WMoVX8V8OtYSAL",
        "get_capital",
        {"country": "France"},
    )
    assert response.model == "gpt-4o-2024-08-06" and response.finish_reason == "tool_calls"
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.total_tokens) == (255, 271)


def test_stream_reasoning_summary(server: ReplayServer) -> None:
    name = "stream_reasoning_summary.sse"
    server.queue(Reply(body=fixture_bytes(f"openai_responses/{name}"), piece=1000))
    chat = stream(server, model="o3-mini", reasoning_effort="high", reasoning_summary="detailed")
    response = collect_sync(chat, timeout=10)
    sent = server.requests[0].json()
    assert sent["reasoning"] == {"effort": "high", "summary": "detailed"}
    assert sent["include"] == ["reasoning.encrypted_content"] and sent["store"] is False
    reasoning_item, message_item = completed(name)["output"]
    summaries = [part["text"] for part in reasoning_item["summary"]]
    assert len(summaries) == 4
    assert response.reasoning_content == "\n\n".join(summaries)  # parts kept apart
    assert response.reasoning_content.startswith(
        "**Providing street crossing instructions**\n\nThe user is asking how to cross the street"
    )
    assert response.text == message_item["content"][0]["text"]
    assert response.text.startswith("I'm not a road safety professional, but here are some")
    usage = response.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens == 1680
    assert usage.completion_tokens_details.reasoning_tokens == 1408
    # The reasoning item goes back whole, as output_item.done has it (the copy in
    # output_item.added carries other, unfinished encrypted content).
    added = next(p["item"] for p in payloads(name) if p["type"] == "response.output_item.added")
    done = done_items(name)[0]
    assert added["encrypted_content"] != done["encrypted_content"]
    assert response.message is not None
    assert response.message.provider_fields == {"output_items": [done]}


def test_stream_web_search_with_cached_and_reasoning_tokens(server: ReplayServer) -> None:
    name = "stream_web_search_cached_usage.sse"
    server.queue(Reply(body=fixture_bytes(f"openai_responses/{name}"), piece=333))
    response = collect_sync(stream(server, tools=[{"type": "web_search"}]), timeout=10)
    assert server.requests[0].json()["tools"] == [{"type": "web_search"}]
    usage = response.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (9463, 582, 10045)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 8320
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 512
    assert response.text == completed(name)["output"][3]["content"][0]["text"]
    assert response.text.startswith("San Francisco weather today (Tuesday, September 16, 2025)")
    assert response.finish_reason == "stop" and response.tool_calls == []
    assert response.model == "gpt-5-2025-08-07"
    # Reasoning, the server's web search, reasoning: kept in order, as they were done.
    rs1, ws, rs2, _ = done_items(name)
    assert ws["action"] == {
        "type": "search",
        "query": "weather: San Francisco, CA",
        "sources": [{"type": "api", "name": "oai-weather"}],
    }
    assert response.message is not None
    assert response.message.provider_fields == {"output_items": [rs1, ws, rs2]}


def test_reasoning_text_stream(server: ReplayServer) -> None:
    """Raw reasoning text (``response.reasoning_text.delta``, what open-weight models behind an
    Open Responses server send) was not recorded: the recorded summary deltas of the first two
    parts, retyped, their summary index made a content index."""
    events = payloads("stream_reasoning_summary.sse")
    deltas = [e for e in events if e["type"] == "response.reasoning_summary_text.delta"]
    chosen = [d for d in deltas if d["summary_index"] == 0][:3]
    chosen += [d for d in deltas if d["summary_index"] == 1][:2]
    retyped = [
        {
            "type": "response.reasoning_text.delta",
            "item_id": d["item_id"],
            "output_index": d["output_index"],
            "content_index": d["summary_index"],
            "delta": d["delta"],
            "sequence_number": d["sequence_number"],
        }
        for d in chosen
    ]
    server.queue(Reply(body=b"".join(map(frame, [*events[:2], *retyped, events[-1]]))))
    response = collect_sync(stream(server), timeout=10)
    assert [d["delta"] for d in chosen] == [
        "**Providing",
        " street",
        " crossing",
        "**Expl",
        "aining",
    ]
    assert response.reasoning_content == "**Providing street crossing\n\n**Explaining"


def _call_events() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Two function calls streamed side by side, built from the recorded stream's events with
    the two recorded calls of response_function_call.json in them (no recorded stream has two),
    their argument fragments interleaved; and the recorded Response."""
    response = json.loads(fixture_bytes("openai_responses/response_function_call.json"))
    recorded = payloads("stream_function_call.sse")
    start, in_progress, added = recorded[:3]
    delta = recorded[3]
    events: list[dict[str, Any]] = [start, in_progress]
    for index, item in enumerate(response["output"]):
        events.append({**added, "output_index": index, "item": {**item, "arguments": ""}})
    pieces = [('{"location":', '{"location"'), ('"London"}', ':"London"}')]
    for first, second in pieces:
        for index, piece in enumerate((first, second)):
            item_id = response["output"][index]["id"]
            events.append({**delta, "output_index": index, "item_id": item_id, "delta": piece})
    events.append({**recorded[-1], "response": response})
    return events, response


def test_two_function_calls_get_an_index_each(server: ReplayServer) -> None:
    events, response = _call_events()
    server.queue(Reply(body=b"".join(map(frame, events)), piece=40))
    chunks: list[rxllm.ChatChunk] = []
    answer_ = rxllm.streaming.consume(stream(server), on_chunk=chunks.append).wait(10)
    assert answer_ is not None
    assert [(c.id, c.function.name, c.function.arguments) for c in answer_.tool_calls] == [
        (item["call_id"], "get_weather", '{"location":"London"}') for item in response["output"]
    ]
    assert answer_.tool_calls[0].id == "call_tYDv1bhtioyX33juEGDY4D6H"
    assert answer_.tool_calls[1].id == "call_lC079UhGnLJngBlPQO0FS6sv"
    parts = fragments(chunks)
    assert [(p.index, p.function.name) for p in parts if p.function.name] == [
        (0, "get_weather"),
        (1, "get_weather"),
    ]
    assert [(p.index, p.function.arguments) for p in parts if not p.function.name] == [
        (0, '{"location":'),
        (1, '{"location"'),
        (0, '"London"}'),
        (1, ':"London"}'),
    ]
    assert answer_.finish_reason == "tool_calls"


def test_arguments_that_come_only_when_the_call_is_done(server: ReplayServer) -> None:
    """A server that sends no arguments deltas (the recorded stream without them): the
    arguments come whole from output_item.done."""
    body = b"".join(b for b in blocks("stream_function_call.sse") if b"arguments.delta" not in b)
    server.queue(Reply(body=body))
    (call,) = collect_sync(stream(server), timeout=10).tool_calls
    assert (call.function.name, call.function.arguments) == ("multiply", '{"a":1231,"b":2331}')


def test_refusal_stream(server: ReplayServer) -> None:
    """No refusal stream was recorded: the recorded text stream with its text deltas turned
    into ``response.refusal.delta`` events (the type and fields of the API reference)."""
    events = payloads("stream_text.sse")
    template = events[4]
    assert template["type"] == "response.output_text.delta"
    refusal = ["I'm sorry,", " I can't", " help with that."]
    deltas = [{**template, "type": "response.refusal.delta", "delta": text} for text in refusal]
    body = b"".join(map(frame, [*events[:4], *deltas, events[-1]]))
    server.queue(Reply(body=body))
    chunks: list[rxllm.ChatChunk] = []
    response = rxllm.streaming.consume(stream(server), on_chunk=chunks.append).wait(10)
    assert response is not None and response.message is not None
    assert response.message.refusal == "I'm sorry, I can't help with that."
    assert [c.choices[0].delta.refusal for c in chunks[1:-1]] == refusal
    assert response.finish_reason == "stop"


@pytest.mark.parametrize(
    ("reason", "finish"), [("max_output_tokens", "length"), ("content_filter", "content_filter")]
)
def test_incomplete_stream(server: ReplayServer, reason: str, finish: str) -> None:
    """No response.incomplete was recorded: the recorded text stream ending with its
    terminal event made incomplete, as the API reference describes it."""
    events = payloads("stream_text.sse")
    last = events[-1]
    last["type"] = "response.incomplete"
    last["response"] = {
        **last["response"],
        "status": "incomplete",
        "incomplete_details": {"reason": reason},
    }
    server.queue(Reply(body=b"".join(map(frame, events))))
    response = collect_sync(stream(server), timeout=10)
    assert response.text == "2 + 2 equals 4."
    assert (response.finish_reason, response.choices[0].native_finish_reason) == (finish, reason)
    assert response.usage is not None and response.usage.total_tokens == 23


# --- failures ----------------------------------------------------------------------------------


def test_recorded_failure_is_a_typed_error(server: ReplayServer) -> None:
    server.queue(Reply(body=failed_stream()))
    error = failure_of(stream(server))
    assert type(error) is errors.QuotaExceededError
    assert (error.code, error.error_type, error.status_code) == (
        "insufficient_quota",
        "insufficient_quota",
        None,
    )
    assert error.message == QUOTA and not error.recoverable
    assert (error.provider, error.model) == ("openai_responses", MODEL)
    assert error.partial_text == "" and error.partial_response is not None
    assert error.partial_response.id == "resp_05500b38c2cd9bfc00691c7c9d222481a3b595421266dab424"


def test_failure_mid_stream_keeps_the_partial_answer(server: ReplayServer) -> None:
    # The recorded text stream up to its fourth delta, then the recorded error and failure.
    head = blocks("stream_text.sse")[:8]
    server.queue(Reply(body=b"".join(head) + b"".join(map(frame, failure_lines()[2:])), piece=64))
    chunks: list[rxllm.ChatChunk] = []
    failures: list[Exception] = []
    rxllm.streaming.consume(stream(server), on_chunk=chunks.append, on_error=failures.append).wait(
        10
    )
    (error,) = failures
    assert isinstance(error, errors.QuotaExceededError)
    assert error.partial_text == "2 + 2"
    assert len(chunks) == 5  # the role chunk and four deltas


def test_response_failed_alone(server: ReplayServer) -> None:
    lines = failure_lines()
    server.queue(Reply(body=b"".join(frame(line) for line in (lines[0], lines[1], lines[3]))))
    error = failure_of(stream(server))
    assert type(error) is errors.QuotaExceededError
    assert (error.code, error.message) == ("insufficient_quota", QUOTA)


FAILURES = [
    ("server_error", "The server had an error", errors.InternalServerError, True),
    ("rate_limit_exceeded", "Rate limit reached", errors.RateLimitError, True),
    ("vector_store_timeout", "The vector store timed out", errors.InternalServerError, True),
    ("invalid_prompt", "Invalid prompt", errors.BadRequestError, False),
    ("image_too_large", "The image is too large", errors.BadRequestError, False),
    ("bio_policy", "Flagged", errors.ContentPolicyViolationError, False),
    (
        "context_length_exceeded",
        "Your input exceeds the context window of this model.",
        errors.ContextWindowExceededError,
        False,
    ),
    ("500", "upstream failed", errors.InternalServerError, True),  # a gateway's status
]


@pytest.mark.parametrize(("code", "message", "cls", "recoverable"), FAILURES)
def test_failed_response_codes(
    server: ReplayServer, code: str, message: str, cls: type[errors.LLMError], recoverable: bool
) -> None:
    """The recorded response.failed event, with each code of the API reference."""
    lines = failure_lines()
    failed = json.loads(lines[3])
    failed["response"]["error"] = {"code": code, "message": message}
    server.queue(Reply(body=frame(lines[0]) + frame(failed)))
    error = failure_of(stream(server))
    assert type(error) is cls
    assert (error.code, error.message, error.recoverable) == (code, message, recoverable)


def test_flat_error_event(server: ReplayServer) -> None:
    """The ``error`` event in the flat shape of the API reference (the recorded one nests its
    fields in ``error``)."""
    event = {
        "type": "error",
        "code": "rate_limit_exceeded",
        "message": "Rate limit reached for gpt-5",
        "param": None,
        "sequence_number": 2,
    }
    server.queue(Reply(body=frame(failure_lines()[0]) + frame(event)))
    error = failure_of(stream(server))
    assert type(error) is errors.RateLimitError and error.recoverable
    assert (error.code, error.message) == ("rate_limit_exceeded", "Rate limit reached for gpt-5")


def test_close_before_the_terminal_event_is_a_truncation(server: ReplayServer) -> None:
    server.queue(Reply(body=b"".join(blocks("stream_text.sse")[:-1])))
    with pytest.raises(errors.StreamTruncatedError, match=r"response\.completed") as caught:
        collect_sync(stream(server), timeout=10)
    assert caught.value.partial_text == "2 + 2 equals 4."


def test_dropped_connection_keeps_the_partial_text(server: ReplayServer) -> None:
    body = fixture_bytes("openai_responses/stream_text.sse")
    cut = body.index(b"event: response.output_text.done")
    server.queue(Reply(body=body, drop_after=cut, piece=200))
    error = failure_of(stream(server))
    assert isinstance(error, errors.StreamTruncatedError)
    assert error.partial_text == "2 + 2 equals 4."


def test_unknown_events_and_done_markers_are_skipped(server: ReplayServer) -> None:
    events = blocks("stream_text.sse")
    odd = [
        frame({"type": "response.future_event", "delta": {"not": "a string"}, "item": 7}),
        b"event: response.audio.delta\ndata: "
        + b'{"type":"response.audio.delta","delta":"UklGR"}\n\n',
        b": a comment\n\n",
        b"data: [DONE]\n\n",
    ]
    body = b"".join(events[:6]) + b"".join(odd) + b"".join(events[6:]) + b"data: [DONE]\n\n"
    server.queue(Reply(body=body, piece=300))
    response = collect_sync(stream(server), timeout=10)
    assert response.text == "2 + 2 equals 4." and response.finish_reason == "stop"


def test_a_broken_frame_fails_after_the_chunks_before_it(server: ReplayServer) -> None:
    events = blocks("stream_text.sse")
    broken = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",\n\n'
    server.queue(Reply(body=b"".join(events[:6]) + broken + b"".join(events[6:])))
    error = failure_of(stream(server))
    assert isinstance(error, errors.MalformedResponseError)
    assert error.partial_text == "2 +"


@pytest.mark.parametrize(
    ("frame_", "cls", "message"),
    [
        (
            b'data: {"error":{"message":"upstream failed","code":502}}\n\n',
            errors.InternalServerError,
            "upstream failed",
        ),
        (b'data: {"error":"upstream gone"}\n\n', errors.APIStatusError, "upstream gone"),
        (
            b"data: <html>Bad gateway</html>\n\n",
            errors.MalformedResponseError,
            "unparseable stream frame",
        ),
    ],
)
def test_frames_that_are_no_event(
    server: ReplayServer, frame_: bytes, cls: type[errors.LLMError], message: str
) -> None:
    """A gateway in front of the API ends a stream with its own error object, or worse."""
    events = blocks("stream_text.sse")
    server.queue(Reply(body=b"".join(events[:5]) + frame_ + b"".join(events[5:])))
    error = failure_of(stream(server))
    assert type(error) is cls
    assert message in error.message and error.partial_text == "2"


def test_a_known_event_of_the_wrong_shape_is_malformed(server: ReplayServer) -> None:
    events = blocks("stream_text.sse")
    wrong = frame({"type": "response.output_text.delta", "delta": ["not", "text"]})
    server.queue(Reply(body=b"".join(events[:5]) + wrong + b"".join(events[5:])))
    error = failure_of(stream(server))
    assert isinstance(error, errors.MalformedResponseError)
    assert "response.output_text.delta" in error.message and error.partial_text == "2"


# --- cutting the bytes, batching the reads -----------------------------------------------------


def _plain(chunks: list[rxllm.ChatChunk]) -> list[Any]:
    return [(c.choices[0].delta, c.choices[0].finish_reason, c.usage) for c in chunks]


def test_every_cut_of_the_text_stream_gives_the_same_chunks() -> None:
    body = fixture_bytes("openai_responses/stream_text.sse")
    whole = parsed(body)
    assert len(whole) == 10
    for cut in range(1, len(body)):
        assert parsed(body, [cut]) == whole, cut


@pytest.mark.parametrize(
    "name", ["stream_function_call.sse", "stream_function_call_no_sequence_number.sse"]
)
def test_byte_by_byte_gives_the_same_chunks(name: str) -> None:
    body = fixture_bytes(f"openai_responses/{name}")
    assert parsed(body, list(range(1, len(body)))) == parsed(body)


def _parser() -> Any:
    call, spec, _ = prepare("openai_responses", MODEL, messages=USER, stream=True, api_key=API_KEY)
    return spec.stream_parser(call)


@pytest.mark.parametrize(
    "name",
    [
        "stream_text.sse",
        "stream_function_call.sse",
        "stream_function_call_no_sequence_number.sse",
        "stream_reasoning_summary.sse",
        "stream_web_search_cached_usage.sse",
    ],
)
def test_a_whole_read_parses_as_event_by_event(name: str) -> None:
    body = fixture_bytes(f"openai_responses/{name}")
    events = SSEDecoder().feed(body)
    assert type(events) is NamedDataEvents  # the fast path takes the read
    batched, error = _parser().parse(events)
    assert error is None
    one_by_one = _parser()
    expected = [c for c in map(one_by_one.feed, events) if c is not None]
    assert batched == expected and len(batched) >= 3
    assert one_by_one.done


def test_an_error_event_inside_a_read_keeps_the_chunks_before_it() -> None:
    body = b"".join(blocks("stream_text.sse")[:8]) + failed_stream()
    chunks, error = _parser().parse(SSEDecoder().feed(body))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "2 + 2"
    assert isinstance(error, errors.QuotaExceededError)


# --- non-streaming -----------------------------------------------------------------------------


def test_non_streaming_text(server: ReplayServer) -> None:
    response = answer(server, "response_text.json", model="gpt-4.1-nano")
    assert response.text == "The capital of France is Paris."
    assert response.id == "resp_685ff88d1f7c8199980b00a1f8b7467b05baa2d6acc60d4f"
    assert (response.model, response.created) == ("gpt-4.1-nano-2025-04-14", 1751120013)
    assert (response.finish_reason, response.choices[0].native_finish_reason) == (
        "stop",
        "completed",
    )
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (14, 8)
    assert response.usage.total_tokens == 22
    (request,) = server.requests
    assert request.path == "/v1/responses" and request.headers["Accept"] == "application/json"
    sent = request.json()
    assert "stream" not in sent and sent["store"] is False and "include" not in sent


def test_non_streaming_two_function_calls(server: ReplayServer) -> None:
    response = answer(server, "response_function_call.json")
    assert [(c.id, c.function.name, c.parsed_arguments()) for c in response.tool_calls] == [
        ("call_tYDv1bhtioyX33juEGDY4D6H", "get_weather", {"location": "London"}),
        ("call_lC079UhGnLJngBlPQO0FS6sv", "get_weather", {"location": "London"}),
    ]
    assert response.finish_reason == "tool_calls"
    assert response.message is not None and response.message.content is None
    assert response.usage is not None and response.usage.total_tokens == 102


def test_non_streaming_reasoning_without_encrypted_content(server: ReplayServer) -> None:
    response = answer(server, "response_reasoning.json", model="gpt-5-nano")
    assert response.text == "3"
    assert response.reasoning_content is None  # the summary is empty
    usage = response.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert (usage.completion_tokens, usage.completion_tokens_details.reasoning_tokens) == (327, 320)
    # Neither encrypted nor stored: the reasoning item could not go back, so it is not kept.
    assert response.message is not None and response.message.provider_fields is None


def test_non_streaming_reasoning_kept_by_id_when_stored(server: ReplayServer) -> None:
    response = answer(server, "response_reasoning.json", model="gpt-5-nano", store=True)
    assert server.requests[0].json()["store"] is True
    assert "include" not in server.requests[0].json()
    assert response.message is not None
    assert response.message.provider_fields == {
        "output_items": [
            {
                "id": "rs_68a4627af1bc8197aae387797f277fa20da1a7bf2012633f",
                "type": "reasoning",
                "summary": [],
            }
        ]
    }


def test_non_streaming_encrypted_reasoning_goes_with_its_call(server: ReplayServer) -> None:
    body = json.loads(
        fixture_bytes("openai_responses/response_reasoning_encrypted_function_call.json")
    )
    reasoning_item, call_item = body["output"]
    response = answer(server, "response_reasoning_encrypted_function_call.json", model="gpt-5.5")
    (call,) = response.tool_calls
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_uy7tfNVokIN7NjFF6k7OtLyl",
        "lookup_population",
        '{"country":"Pundora"}',
    )
    assert call.id == call_item["call_id"]
    assert call.provider_fields == {"output_items": [reasoning_item]}
    assert reasoning_item["encrypted_content"].startswith("gAAAAABp-rIaNe6WknTMnPCTW6JIYUOsrQ")
    usage = response.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 63


def test_incomplete_and_failed_responses(server: ReplayServer) -> None:
    """The recorded text response with its status made incomplete, then failed (no such
    answer was recorded)."""
    body = json.loads(fixture_bytes("openai_responses/response_text.json"))
    incomplete = {
        **body,
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
    }
    server.queue(Reply(body=json.dumps(incomplete).encode(), content_type="application/json"))
    response = rxllm.completion(
        "openai_responses", MODEL, messages=USER, api_key=API_KEY, api_base=server.base + "/v1"
    )
    assert (response.finish_reason, response.choices[0].native_finish_reason) == (
        "length",
        "max_output_tokens",
    )
    assert response.text == "The capital of France is Paris."
    failed = {**body, "status": "failed", "error": {"code": "server_error", "message": "Oops"}}
    server.queue(Reply(body=json.dumps(failed).encode(), content_type="application/json"))
    with pytest.raises(errors.InternalServerError) as caught:
        rxllm.completion(
            "openai_responses", MODEL, messages=USER, api_key=API_KEY, api_base=server.base + "/v1"
        )
    assert (caught.value.code, caught.value.message) == ("server_error", "Oops")


def test_non_streaming_refusal(server: ReplayServer) -> None:
    """The recorded text response with its text part made a refusal part (none recorded)."""
    body = json.loads(fixture_bytes("openai_responses/response_text.json"))
    body["output"][0]["content"] = [{"type": "refusal", "refusal": "I can't help with that."}]
    server.queue(Reply(body=json.dumps(body).encode(), content_type="application/json"))
    response = rxllm.completion(
        "openai_responses", MODEL, messages=USER, api_key=API_KEY, api_base=server.base + "/v1"
    )
    assert response.message is not None
    assert (response.message.refusal, response.text) == ("I can't help with that.", "")
    assert response.finish_reason == "stop"


# --- HTTP errors -------------------------------------------------------------------------------

ERROR_CASES = [
    (
        429,
        fixture_bytes("openai_responses/error_insufficient_quota.json"),
        errors.QuotaExceededError,
        "insufficient_quota",
    ),
    (
        401,
        b'{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}',
        errors.AuthenticationError,
        "invalid_api_key",
    ),
    (
        400,
        b'{"error":{"message":"Unsupported parameter: \'temperature\' is not supported with this model.","type":"invalid_request_error","param":"temperature","code":"unsupported_parameter"}}',
        errors.UnsupportedParamsError,
        "unsupported_parameter",
    ),
    (
        500,
        b'{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}',
        errors.InternalServerError,
        None,
    ),
]


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    ERROR_CASES,
    ids=[f"{c[0]}-{c[2].__name__}" for c in ERROR_CASES],
)
def test_http_errors_map_to_typed_errors(
    server: ReplayServer, status: int, body: bytes, cls: type[errors.LLMError], code: str | None
) -> None:
    headers = {"x-request-id": "req_83a358e390da43f0af03fb3186d6e121", "retry-after": "7"}
    for _ in range(2):
        server.queue(
            Reply(status=status, body=body, content_type="application/json", headers=headers)
        )
    with pytest.raises(cls) as caught:
        rxllm.completion(
            "openai_responses", MODEL, messages=USER, api_key=API_KEY, api_base=server.base + "/v1"
        )
    for error in (caught.value, failure_of(stream(server))):
        assert type(error) is cls
        assert (error.provider, error.model, error.status_code) == (
            "openai_responses",
            MODEL,
            status,
        )
        assert error.code == code
        assert error.request_id == "req_83a358e390da43f0af03fb3186d6e121"
        assert error.retry_after == 7.0
        assert API_KEY not in str(error) and API_KEY not in repr(error)


def test_an_error_body_with_status_200(server: ReplayServer) -> None:
    server.queue(
        Reply(
            body=fixture_bytes("openai_responses/error_insufficient_quota.json"),
            content_type="application/json",
        )
    )
    with pytest.raises(errors.QuotaExceededError) as caught:
        rxllm.completion(
            "openai_responses", MODEL, messages=USER, api_key=API_KEY, api_base=server.base + "/v1"
        )
    assert caught.value.code == "insufficient_quota"


# --- request translation -----------------------------------------------------------------------

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {
                    "type": "string",
                    "description": "The city and state, e.g. San Francisco, CA",
                }
            },
            "required": ["location"],
        },
        "strict": True,
    },
}


def test_a_conversation_with_tools_results_and_images() -> None:
    """Every kind of message, checked field by field against the API reference's items and
    the recorded request (response_function_call.json's tool, echoed there as sent)."""
    recorded_tool = json.loads(fixture_bytes("openai_responses/response_function_call.json"))[
        "tools"
    ][0]
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": "Answer in English."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Where is this, and what is the weather there?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/london.jpg", "detail": "low"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": "Looks like London. Checking.",
            "tool_calls": [
                {
                    "id": "call_tYDv1bhtioyX33juEGDY4D6H",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"location":"London"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_tYDv1bhtioyX33juEGDY4D6H", "content": "14C, rain"},
        {"role": "user", "content": "Thanks"},
    ]
    body = sent_body(
        messages,
        model="gpt-4.1-nano",
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
        max_tokens=300,
        temperature=0.2,
        top_p=0.9,
        user="u-42",
        metadata={"run": "7"},
    )
    assert body == {
        "model": "gpt-4.1-nano",
        "input": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": "Answer in English."},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Where is this, and what is the weather there?"},
                    {
                        "type": "input_image",
                        "image_url": "data:image/png;base64,iVBORw0KGgo=",
                        "detail": "auto",
                    },
                    {
                        "type": "input_image",
                        "image_url": "https://example.com/london.jpg",
                        "detail": "low",
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Looks like London. Checking."}],
            },
            {
                "type": "function_call",
                "call_id": "call_tYDv1bhtioyX33juEGDY4D6H",
                "name": "get_weather",
                "arguments": '{"location":"London"}',
            },
            {
                "type": "function_call_output",
                "call_id": "call_tYDv1bhtioyX33juEGDY4D6H",
                "output": "14C, rain",
            },
            {"role": "user", "content": "Thanks"},
        ],
        "store": False,  # no include: gpt-4.1 does not reason
        "tools": [recorded_tool],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "parallel_tool_calls": False,
        "max_output_tokens": 300,
        "temperature": 0.2,
        "top_p": 0.9,
        "user": "u-42",
        "metadata": {"run": "7"},
    }


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ({"type": "function", "function": {"name": "f"}}, {"type": "function", "name": "f"}),
        ({"type": "function", "name": "f"}, {"type": "function", "name": "f"}),
        ({"type": "web_search"}, {"type": "web_search"}),
    ],
)
def test_tool_choice(choice: Any, expected: Any) -> None:
    assert sent_body(USER, tools=[WEATHER], tool_choice=choice)["tool_choice"] == expected


def test_tool_choice_of_no_known_kind_is_refused() -> None:
    with pytest.raises(errors.BadRequestError) as caught:
        sent_body(USER, tools=[WEATHER], tool_choice="any")
    assert caught.value.provider == "openai_responses"


def test_responses_own_tools_pass_as_they_are() -> None:
    flat = {"type": "function", "name": "f", "parameters": {"type": "object"}, "strict": False}
    tools = [flat, {"type": "web_search"}, {"type": "file_search", "vector_store_ids": ["vs_1"]}]
    assert sent_body(USER, tools=tools)["tools"] == tools


@pytest.mark.parametrize(
    ("response_format", "expected"),
    [
        ({"type": "json_object"}, {"type": "json_object"}),
        ({"type": "text"}, {"type": "text"}),
        (
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "Location",
                    "schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                    "strict": True,
                },
            },
            {
                "type": "json_schema",
                "name": "Location",
                "schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                "strict": True,
            },
        ),
    ],
)
def test_response_format_becomes_text_format(response_format: Any, expected: Any) -> None:
    body = sent_body(USER, response_format=response_format, verbosity="low")
    assert body["text"] == {"format": expected, "verbosity": "low"}


def test_token_limits() -> None:
    assert sent_body(USER, max_completion_tokens=64)["max_output_tokens"] == 64
    assert sent_body(USER, max_tokens=10, max_output_tokens=20)["max_output_tokens"] == 20
    assert "max_output_tokens" not in sent_body(USER)


def test_reasoning_parameters_and_encrypted_reasoning() -> None:
    body = sent_body(USER, model="gpt-4.1", reasoning_effort="low", reasoning_summary="auto")
    assert body["reasoning"] == {"effort": "low", "summary": "auto"}
    assert body["include"] == ["reasoning.encrypted_content"] and body["store"] is False
    merged = sent_body(
        USER, reasoning={"effort": "high", "summary": "concise"}, reasoning_effort="low"
    )
    assert merged["reasoning"] == {"effort": "high", "summary": "concise"}  # the native one wins
    # A reasoning model asks for encrypted reasoning by itself; a stored one, or one given its
    # own include, does not.
    assert sent_body(USER, model="o4-mini")["include"] == ["reasoning.encrypted_content"]
    assert sent_body(USER, model="gpt-5-mini")["include"] == ["reasoning.encrypted_content"]
    assert "include" not in sent_body(USER, model="gpt-4o")
    assert "include" not in sent_body(USER, store=True)
    assert sent_body(USER, include=["message.output_text.logprobs"])["include"] == [
        "message.output_text.logprobs"
    ]
    assert sent_body(USER, include=[])["include"] == []


def test_pass_through_parameters() -> None:
    params = {
        "instructions": "Be brief.",
        "previous_response_id": "resp_1",
        "prompt_cache_key": "k",
        "safety_identifier": "s",
        "service_tier": "flex",
        "truncation": "auto",
        "max_tool_calls": 3,
        "top_logprobs": 2,
    }
    body = sent_body(USER, store=True, **params)
    assert {k: body[k] for k in params} == params and body["store"] is True


def test_stream_options(server: ReplayServer) -> None:
    for options in ({"include_usage": True}, {"include_obfuscation": False}):
        server.queue(Reply(body=fixture_bytes("openai_responses/stream_text.sse")))
        collect_sync(stream(server, stream_options=options), timeout=10)
    first, second = (r.json() for r in server.requests)
    assert "stream_options" not in first and first["stream"] is True
    assert second["stream_options"] == {"include_obfuscation": False}


@pytest.mark.parametrize("param", ["stop", "seed", "n", "frequency_penalty", "logit_bias"])
def test_unsupported_params_raise_or_are_dropped(param: str) -> None:
    value = {"stop": "END", "seed": 7, "n": 2, "frequency_penalty": 0.5, "logit_bias": {"1": 1}}
    with pytest.raises(errors.UnsupportedParamsError) as caught:
        sent_body(USER, **{param: value[param]})
    assert caught.value.provider == "openai_responses" and caught.value.param == param
    _, _, request = prepare(
        "openai_responses",
        MODEL,
        messages=USER,
        stream=False,
        api_key=API_KEY,
        drop_params=True,
        params={param: value[param], "temperature": 0.5},
    )
    assert request.body is not None
    body = json.loads(request.body)
    assert body["temperature"] == 0.5 and param not in body


def test_a_tool_result_without_its_call_id_fails_before_any_io() -> None:
    with pytest.raises(errors.BadRequestError, match="tool_call_id") as caught:
        sent_body([*USER, {"role": "tool", "content": "4"}])
    assert caught.value.provider == "openai_responses"


def test_extra_body_and_headers_and_options(server: ReplayServer) -> None:
    server.queue(Reply(body=fixture_bytes("openai_responses/stream_text.sse")))
    chat = stream(
        server,
        extra_body={"prompt": {"id": "pmpt_1"}},
        extra_headers={"X-Trace": "t1"},
        organization="org-1",
        project="proj-1",
    )
    collect_sync(chat, timeout=10)
    (request,) = server.requests
    assert request.json()["prompt"] == {"id": "pmpt_1"}
    assert request.headers["X-Trace"] == "t1"
    assert (request.headers["OpenAI-Organization"], request.headers["OpenAI-Project"]) == (
        "org-1",
        "proj-1",
    )


# --- multi-turn --------------------------------------------------------------------------------


def test_tool_loop_over_http_sends_the_call_back_with_its_call_id(server: ReplayServer) -> None:
    server.queue(
        Reply(body=fixture_bytes("openai_responses/stream_function_call.sse")),
        Reply(body=fixture_bytes("openai_responses/stream_text.sse")),
    )
    messages: list[Any] = [{"role": "user", "content": MULTIPLY}]
    first = collect_sync(stream(server, messages, tools=[WEATHER]), timeout=10)
    (call,) = first.tool_calls
    messages += [first.message, {"role": "tool", "tool_call_id": call.id, "content": "2869461"}]
    collect_sync(stream(server, messages, tools=[WEATHER]), timeout=10)
    assert server.requests[1].json()["input"] == [
        {"role": "user", "content": MULTIPLY},
        {
            "type": "function_call",
            "call_id": "call_sVidsfFJ6zlzRpelrPkTPlpd",
            "name": "multiply",
            "arguments": '{"a":1231,"b":2331}',
        },
        {
            "type": "function_call_output",
            "call_id": "call_sVidsfFJ6zlzRpelrPkTPlpd",
            "output": "2869461",
        },
    ]


def test_encrypted_reasoning_goes_back_before_its_call(server: ReplayServer) -> None:
    recorded = json.loads(
        fixture_bytes("openai_responses/response_reasoning_encrypted_function_call.json")
    )
    question = "Pick a clever country name, look up its population, then check whether it can have dragons. Be brief."
    messages: list[Any] = [{"role": "user", "content": question}]
    first = answer(
        server, "response_reasoning_encrypted_function_call.json", messages, model="gpt-5.5"
    )
    (call,) = first.tool_calls
    messages += [first.message, {"role": "tool", "tool_call_id": call.id, "content": "123124"}]
    body = sent_body(messages, model="gpt-5.5", reasoning_effort="high")
    reasoning_item = recorded["output"][0]
    assert body["input"] == [
        {"role": "user", "content": question},
        {
            "id": "rs_0f4809b27460351d0169fab21897dc8196960e8680fb72a88d",
            "type": "reasoning",
            "encrypted_content": reasoning_item["encrypted_content"],
            "summary": [],
        },
        {
            "type": "function_call",
            "call_id": "call_uy7tfNVokIN7NjFF6k7OtLyl",
            "name": "lookup_population",
            "arguments": '{"country":"Pundora"}',
        },
        {
            "type": "function_call_output",
            "call_id": "call_uy7tfNVokIN7NjFF6k7OtLyl",
            "output": "123124",
        },
    ]
    assert body["include"] == ["reasoning.encrypted_content"] and body["store"] is False


def test_streamed_reasoning_goes_back_before_the_call_it_led_to(server: ReplayServer) -> None:
    """No recorded stream has reasoning before a function call: the recorded function-call
    stream with the web-search recording's first reasoning item (its added and done events)
    put before the call, the indexes shifted by one."""
    reasoning = [
        p
        for p in payloads("stream_web_search_cached_usage.sse")
        if p["type"].startswith("response.output_item.") and p["output_index"] == 0
    ]
    events = payloads("stream_function_call.sse")
    for event in events:
        if "output_index" in event:
            event["output_index"] += 1
    server.queue(Reply(body=b"".join(map(frame, [*events[:2], *reasoning, *events[2:]]))))
    first = collect_sync(stream(server), timeout=10)
    rs = reasoning[1]["item"]
    (call,) = first.tool_calls
    assert call.provider_fields == {"output_items": [rs]}
    assert first.message is not None and first.message.provider_fields is None
    assert call.function.arguments == '{"a":1231,"b":2331}'
    body = sent_body(
        [*USER, first.message, {"role": "tool", "tool_call_id": call.id, "content": "2869461"}]
    )
    assert [item.get("type") for item in body["input"]] == [
        None,
        "reasoning",
        "function_call",
        "function_call_output",
    ]
    assert body["input"][1] == rs


def test_streamed_reasoning_and_server_tool_items_go_back_before_the_message(
    server: ReplayServer,
) -> None:
    name = "stream_web_search_cached_usage.sse"
    server.queue(Reply(body=fixture_bytes(f"openai_responses/{name}")))
    first = collect_sync(stream(server, tools=[{"type": "web_search"}]), timeout=10)
    body = sent_body([*USER, first.message, {"role": "user", "content": "And tomorrow?"}])
    rs1, ws, rs2, _ = done_items(name)
    assert body["input"] == [
        USER[0],
        rs1,
        ws,
        rs2,
        {"role": "assistant", "content": [{"type": "output_text", "text": first.text}]},
        {"role": "user", "content": "And tomorrow?"},
    ]


def test_reasoning_and_refusal_of_a_plain_history_message() -> None:
    """An assistant message written by hand (no provider fields) goes back as text and
    refusal; rxllm's reasoning_content is not sent."""
    message = {
        "role": "assistant",
        "content": "Hello",
        "refusal": "Not that.",
        "reasoning_content": "A greeting.",
    }
    assert sent_body([*USER, message])["input"][1] == {
        "role": "assistant",
        "content": [
            {"type": "output_text", "text": "Hello"},
            {"type": "refusal", "refusal": "Not that."},
        ],
    }


# --- the registry ------------------------------------------------------------------------------


def test_registry_row_model_strings_and_environment(
    server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = rxllm.providers.provider_info("openai_responses")
    assert info.default_api_base == "https://api.openai.com/v1"
    assert info.env_keys == ("OPENAI_API_KEY",) and info.env_api_base == "OPENAI_BASE_URL"
    assert (info.tools, info.vision, info.reasoning, info.embeddings) == (True, True, True, False)
    assert info.model_patterns == () and info.default_model is None
    assert rxllm.providers.split_model(None, "openai_responses/gpt-5") == (
        "openai_responses",
        "gpt-5",
    )
    assert rxllm.providers.split_model(None, "gpt-5") == ("openai", "gpt-5")  # unchanged
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env-0123456789")
    monkeypatch.setenv("OPENAI_BASE_URL", server.base + "/v1")
    server.queue(Reply(body=fixture_bytes("openai_responses/stream_text.sse")))
    chat = rxllm.completion(model="openai_responses/gpt-5", messages=USER, stream=True)
    assert collect_sync(chat, timeout=10).text == "2 + 2 equals 4."
    (request,) = server.requests
    assert request.path == "/v1/responses" and request.json()["model"] == "gpt-5"
    assert request.headers["Authorization"] == "Bearer sk-from-env-0123456789"
