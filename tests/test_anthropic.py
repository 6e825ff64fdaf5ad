"""Anthropic Messages API over real HTTP: recorded transcripts replayed byte for byte."""

from __future__ import annotations

import json
from typing import Any

import pytest

import rxllm
from rxllm import errors
from rxllm._api import prepare
from rxllm._events import NamedDataEvents
from rxllm._sse import SSEDecoder
from rxllm.streaming import collect_sync

from .conftest import API_KEY, fixture_bytes
from .server import ReplayServer, Reply

MODEL = "claude-sonnet-4-5"

TOOL_TEXT = (
    "Certainly! I can help you with that information. To get the weather and current time in "
    "San Francisco, I'll need to use two separate functions. Let me fetch that data for you."
)

THINKING = (
    "This is a straightforward question about pedestrian safety. I should provide clear, "
    "helpful advice about how to safely cross a street. This is basic safety information that "
    "could help prevent accidents."
)

SIGNATURE = (
    "EvMCCkYICxgCKkCHP2cSuEdcJK/0rFwqES/ecn+VurRpNTwI4XNyM0vnNfGsc9OmE8YYHauwBZ/uaRpmlEn2I4/kszHlc"
    "pptO82JEgyRMSbPkJYaegxYF3AaDHZbSm9EzZ6CM+YtliIw3iNVP/ilYrfoneo8S2+ad/5xSC62nKbk6joLtKmqXgXwYF"
    "JRpjIUjM2V7EGReOPRKtoBKfNHVmdNf7SeMhHalX/ObSeJ1G/NjDyGQAsDjyHGd7uY1r5gAIn3Cpdv5r+gHYJmWT+w2u"
    "iKZsBDRoSf4O3Km0l752EhPD4InEhqpCKyqhbUZ3dt5+JVKQHk2iyTBhQMB/XBYgZTstIpRqQRXU5ypcrydgnqj3mD1G9"
    "C7YC0ZTCNvFluAx0OL8q+cQwufgfqKquLEf2+XMYzhx9jYkVFEpnf/s1nx6gNBATKfF3Dmrs2r4tWu2QJB+FjlRuDp/8d"
    "xUxgJbmyhGxb7XsYeb1vgb7wwzDvP/UhjfQYAQ=="
)

USER = [{"role": "user", "content": "What is the weather and current time in San Francisco?"}]


def stream(server: ReplayServer, messages: list[Any] = USER, **kwargs: Any) -> rxllm.ChatStream:
    return rxllm.completion(
        "anthropic",
        kwargs.pop("model", MODEL),
        messages=messages,
        stream=True,
        api_key=API_KEY,
        api_base=server.base,
        **kwargs,
    )


def sent_body(messages: list[Any], **params: Any) -> dict[str, Any]:
    """The JSON body rxllm would send (built, not sent: request translation only)."""
    _, _, request = prepare(
        "anthropic", MODEL, messages=messages, stream=False, api_key=API_KEY, params=params
    )
    assert request.body is not None
    body: dict[str, Any] = json.loads(request.body)
    return body


def openai_tools(anthropic_tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The OpenAI-style form a caller writes for the tools of a recorded Anthropic request."""
    return [
        {
            "type": "function",
            "function": {
                "name": t["name"],
                "description": t["description"],
                "parameters": t["input_schema"],
            },
        }
        for t in anthropic_tools
    ]


# --- streaming ---------------------------------------------------------------------------------


def test_stream_text(server: ReplayServer) -> None:
    server.queue(Reply(body=fixture_bytes("anthropic/stream_text.sse"), piece=64))
    response = collect_sync(stream(server), timeout=10)
    assert response.text == "Hello"
    assert response.id == "msg_01T8kTq7cYyYJeQ5DxcVUc6D"
    assert response.model == "claude-haiku-4-5-20251001"
    assert response.provider == "anthropic"
    assert (response.finish_reason, response.choices[0].native_finish_reason) == (
        "stop",
        "end_turn",
    )
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (10, 4)
    assert response.usage.total_tokens == 14


def test_request_matches_the_recorded_one(server: ReplayServer) -> None:
    recorded = json.loads(fixture_bytes("anthropic/request_stream_text.json"))
    server.queue(Reply(body=fixture_bytes("anthropic/stream_text.sse")))
    collect_sync(
        stream(
            server,
            [{"role": "user", "content": [{"type": "text", "text": "Say just hello"}]}],
            model="claude-haiku-4-5-20251001",
            max_tokens=8192,
            temperature=1.0,
        ),
        timeout=10,
    )
    (request,) = server.requests
    assert request.method == "POST" and request.path == "/v1/messages"
    assert request.json() == recorded
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in request.headers
    assert API_KEY not in request.path and not request.query


def test_stream_two_tool_calls_and_the_recorded_tools_request(server: ReplayServer) -> None:
    recorded = json.loads(fixture_bytes("anthropic/request_tools.json"))
    server.queue(Reply(body=fixture_bytes("anthropic/stream_tool_use.sse"), piece=97))
    chunks: list[rxllm.ChatChunk] = []
    chat = stream(
        server,
        recorded["messages"],
        model="claude-3-5-sonnet-20240620",
        max_tokens=1024,
        tools=openai_tools(recorded["tools"]),
    )
    response = rxllm.streaming.consume(chat, on_chunk=chunks.append).wait(10)
    assert response is not None
    assert server.requests[0].json() == recorded  # tools translated to Anthropic's shape
    assert response.text == TOOL_TEXT
    assert [(c.id, c.function.name, c.parsed_arguments()) for c in response.tool_calls] == [
        (
            "toolu_014x5X91kx3fvdhpLvwXZWE2",
            "get_weather",
            {"location": "San Francisco, CA", "unit": "celsius"},
        ),
        ("toolu_0121kXsENLvoDZ72LCuAnCCz", "get_time", {"timezone": "America/Los_Angeles"}),
    ]
    assert (response.finish_reason, response.choices[0].native_finish_reason) == (
        "tool_calls",
        "tool_use",
    )
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (506, 153)
    # Streamed fragments carry one stable index per tool block, the name only on the first.
    fragments = [(t.index, t.function) for c in chunks for t in c.choices[0].delta.tool_calls or []]
    assert [(i, f.name) for i, f in fragments if f and f.name] == [
        (0, "get_weather"),
        (1, "get_time"),
    ]
    assert "".join(f.arguments or "" for i, f in fragments if i == 1 and f) == (
        '{"timezone": "America/Los_Angeles"}'
    )
    assert chunks[-1].usage is not None and chunks[-1].choices[0].finish_reason == "tool_calls"


def test_stream_thinking_and_its_signature(server: ReplayServer) -> None:
    server.queue(Reply(body=fixture_bytes("anthropic/stream_thinking.sse"), piece=300))
    response = collect_sync(stream(server, reasoning_effort="medium"), timeout=10)
    assert response.reasoning_content == THINKING
    assert response.text.startswith(
        "Here are the basic steps for safely crossing the street:\n\n"
        '**At intersections with traffic lights:**\n- Wait for the pedestrian "Walk" signal'
    )
    assert response.text.endswith("Always prioritize safety over speed when crossing streets.")
    assert response.model == "claude-sonnet-4-20250514"
    assert response.finish_reason == "stop"
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (43, 282)
    message = response.message
    assert message is not None and message.provider_fields == {
        "thinking_blocks": [{"type": "thinking", "thinking": THINKING, "signature": SIGNATURE}]
    }
    sent = server.requests[0].json()
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert sent["max_tokens"] == 4096 + 2048

    # Next turn: the signed thinking block goes back first, unchanged.
    follow_up = [*USER, message, {"role": "user", "content": "And at night?"}]
    body = sent_body(follow_up, reasoning_effort="medium")
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": THINKING, "signature": SIGNATURE},
            {"type": "text", "text": response.text},
        ],
    }


# --- non-streaming -----------------------------------------------------------------------------


def test_non_streaming_text(server: ReplayServer) -> None:
    server.queue(
        Reply(body=fixture_bytes("anthropic/response_text.json"), content_type="application/json")
    )
    response = rxllm.completion(
        model="anthropic/claude-3-opus-20240229",
        messages=[{"role": "user", "content": "How are you?"}],
        api_key=API_KEY,
        api_base=server.base,
    )
    assert response.text == (
        "Hello! As an AI language model, I don't have feelings, but I'm functioning properly and "
        "ready to assist you. How can I help you today?"
    )
    assert response.id == "msg_014pVpaDLxzAdWjwpuN7rQQX"
    assert (response.finish_reason, response.choices[0].native_finish_reason) == (
        "stop",
        "end_turn",
    )
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (13, 35)
    sent = server.requests[0].json()
    assert "stream" not in sent and sent["max_tokens"] == 4096


def test_non_streaming_tool_use(server: ReplayServer) -> None:
    server.queue(
        Reply(
            body=fixture_bytes("anthropic/response_tool_use.json"),
            content_type="application/json",
        )
    )
    response = rxllm.completion(
        "anthropic", MODEL, messages=USER, api_key=API_KEY, api_base=server.base
    )
    assert response.text == (
        "Certainly! I'd be happy to help you with both the current weather in New York and the "
        "current time there. Let's use the available tools to get this information for you."
    )
    assert [(c.id, c.function.name, c.parsed_arguments()) for c in response.tool_calls] == [
        (
            "toolu_012r6TBCWjRHG71j6zruYyUL",
            "get_weather",
            {"location": "New York, NY", "unit": "fahrenheit"},
        ),
        ("toolu_01SkeBKkLCNYWNuivqFerGDd", "get_time", {"timezone": "America/New_York"}),
    ]
    assert response.finish_reason == "tool_calls"
    assert response.usage is not None and response.usage.total_tokens == 514 + 152


# --- multi-turn --------------------------------------------------------------------------------


def test_tool_round_trip_serialises_calls_and_results(server: ReplayServer) -> None:
    server.queue(Reply(body=fixture_bytes("anthropic/stream_tool_use.sse")))
    first = collect_sync(stream(server), timeout=10)
    weather, clock = first.tool_calls
    messages = [
        {"role": "system", "content": "Be brief."},
        *USER,
        first.message,
        {"role": "tool", "tool_call_id": weather.id, "content": '{"temp_c": 14}'},
        {"role": "tool", "tool_call_id": clock.id, "content": "09:41"},
    ]
    body = sent_body(messages)
    assert body["system"] == "Be brief."
    assert body["messages"] == [
        USER[0],
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": TOOL_TEXT},
                {
                    "type": "tool_use",
                    "id": "toolu_014x5X91kx3fvdhpLvwXZWE2",
                    "name": "get_weather",
                    "input": {"location": "San Francisco, CA", "unit": "celsius"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_0121kXsENLvoDZ72LCuAnCCz",
                    "name": "get_time",
                    "input": {"timezone": "America/Los_Angeles"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_014x5X91kx3fvdhpLvwXZWE2",
                    "content": '{"temp_c": 14}',
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_0121kXsENLvoDZ72LCuAnCCz",
                    "content": "09:41",
                },
            ],
        },
    ]


# --- request translation -----------------------------------------------------------------------


def test_system_messages_are_lifted_and_defaults_filled() -> None:
    body = sent_body(
        [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": "Answer in French."},
            {"role": "user", "content": "Hi"},
        ],
        stop="END",
        top_p=0.9,
        top_k=5,
        user="u-42",
    )
    assert body == {
        "model": MODEL,
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Hi"}],
        "system": [
            {"type": "text", "text": "You are terse."},
            {"type": "text", "text": "Answer in French."},
        ],
        "top_p": 0.9,
        "top_k": 5,
        "stop_sequences": ["END"],
        "metadata": {"user_id": "u-42"},
    }


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("none", None, {"type": "none"}),
        ("required", None, {"type": "any"}),
        (
            {"type": "function", "function": {"name": "get_time"}},
            None,
            {"type": "tool", "name": "get_time"},
        ),
        ("auto", False, {"type": "auto", "disable_parallel_tool_use": True}),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
    ],
)
def test_tool_choice(choice: Any, parallel: bool | None, expected: dict[str, Any]) -> None:
    tools = openai_tools(json.loads(fixture_bytes("anthropic/request_tools.json"))["tools"])
    params: dict[str, Any] = {"tools": tools}
    if choice is not None:
        params["tool_choice"] = choice
    if parallel is not None:
        params["parallel_tool_calls"] = parallel
    assert sent_body(USER, **params)["tool_choice"] == expected


def test_images_become_base64_or_url_sources() -> None:
    content = [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]
    body = sent_body([{"role": "user", "content": content}])
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "Compare"},
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        },
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_unsupported_params_raise_or_are_dropped() -> None:
    with pytest.raises(errors.UnsupportedParamsError) as caught:
        sent_body(USER, seed=7)
    assert caught.value.provider == "anthropic" and caught.value.param == "seed"
    _, _, request = prepare(
        "anthropic",
        MODEL,
        messages=USER,
        stream=False,
        api_key=API_KEY,
        drop_params=True,
        params={"seed": 7, "response_format": {"type": "json_object"}, "temperature": 0.5},
    )
    assert request.body is not None
    body = json.loads(request.body)
    assert body["temperature"] == 0.5 and "seed" not in body and "response_format" not in body


def test_bad_tool_arguments_fail_before_any_io() -> None:
    assistant = {
        "role": "assistant",
        "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": "{oops"}}
        ],
    }
    with pytest.raises(errors.BadRequestError) as caught:
        sent_body([*USER, assistant])
    assert caught.value.provider == "anthropic"


def test_registry_row_and_environment_key(
    server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = rxllm.providers.provider_info("anthropic")
    assert info.default_api_base == "https://api.anthropic.com"
    assert info.env_keys == ("ANTHROPIC_API_KEY",)
    assert (info.tools, info.vision, info.reasoning, info.embeddings) == (True, True, True, False)
    assert rxllm.providers.supports_streaming("anthropic")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env")
    server.queue(Reply(body=fixture_bytes("anthropic/stream_text.sse")))
    chat = rxllm.completion("anthropic", MODEL, messages=USER, stream=True, api_base=server.base)
    assert collect_sync(chat, timeout=10).text == "Hello"
    assert server.requests[0].headers["x-api-key"] == "sk-ant-from-env"
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(errors.ConfigurationError, match="ANTHROPIC_API_KEY"):
        rxllm.completion("anthropic", MODEL, messages=USER)


# --- errors ------------------------------------------------------------------------------------


def _error(kind: str, message: str) -> bytes:
    """The documented error body shape (docs.claude.com/en/api/errors): no real recording of
    these statuses exists (see tests/fixtures/SOURCES.md), so these are written by hand."""
    return json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()


ERROR_CASES = [
    (401, _error("authentication_error", "invalid x-api-key"), errors.AuthenticationError),
    (402, _error("billing_error", "Your credit balance is too low"), errors.QuotaExceededError),
    (403, _error("permission_error", "not allowed"), errors.PermissionDeniedError),
    (404, _error("not_found_error", "model: claude-nope"), errors.NotFoundError),
    (400, _error("invalid_request_error", "max_tokens: Field required"), errors.BadRequestError),
    (
        400,
        _error("invalid_request_error", "prompt is too long: 208310 tokens > 200000 maximum"),
        errors.ContextWindowExceededError,
    ),
    (413, _error("request_too_large", "Request exceeds the maximum size"), errors.BadRequestError),
    (500, _error("api_error", "Internal server error"), errors.InternalServerError),
    (529, _error("overloaded_error", "Overloaded"), errors.ServiceUnavailableError),
]


@pytest.mark.parametrize(
    ("status", "body", "cls"), ERROR_CASES, ids=[f"{c[0]}-{c[2].__name__}" for c in ERROR_CASES]
)
def test_http_errors_map_to_typed_errors(
    server: ReplayServer, status: int, body: bytes, cls: type[errors.LLMError]
) -> None:
    headers = {"request-id": "req_018EeWyXxfu5pfWkrYcMdjWG", "retry-after": "3"}
    for _ in range(2):
        server.queue(
            Reply(status=status, body=body, content_type="application/json", headers=headers)
        )
    with pytest.raises(cls) as caught:
        rxllm.completion("anthropic", MODEL, messages=USER, api_key=API_KEY, api_base=server.base)
    failures: list[Exception] = []
    assert rxllm.streaming.consume(stream(server), on_error=failures.append).wait(10) is None
    kind = json.loads(body)["error"]["type"]
    for error in (caught.value, failures[0]):
        assert type(error) is cls
        assert (error.provider, error.model, error.status_code) == ("anthropic", MODEL, status)
        assert error.code == kind
        assert error.request_id == "req_018EeWyXxfu5pfWkrYcMdjWG"
        assert error.retry_after == 3.0
        assert API_KEY not in str(error) and API_KEY not in repr(error)


def test_recorded_429_keeps_its_request_id(server: ReplayServer) -> None:
    server.queue(
        Reply(
            status=429,
            body=fixture_bytes("anthropic/error_429_rate_limit.json"),
            content_type="application/json",
            headers={"retry-after": "17"},
        )
    )
    with pytest.raises(errors.RateLimitError) as caught:
        rxllm.completion("anthropic", MODEL, messages=USER, api_key=API_KEY, api_base=server.base)
    error = caught.value
    assert error.code == "rate_limit_error" and error.status_code == 429
    assert error.request_id == "req_011CYK5mje9HkutJtmfPzzNC"
    assert error.retry_after == 17.0 and error.recoverable
    assert error.message.startswith("This request would exceed your organization's rate limit")


# --- faults mid-stream -------------------------------------------------------------------------


def _events(name: str) -> list[bytes]:
    return [e + b"\n\n" for e in fixture_bytes(name).split(b"\n\n") if e.strip()]


def test_error_event_alone_is_a_typed_error(server: ReplayServer) -> None:
    server.queue(Reply(body=fixture_bytes("anthropic/stream_error_overloaded.sse")))
    failures: list[Exception] = []
    rxllm.streaming.consume(stream(server), on_error=failures.append).wait(10)
    (error,) = failures
    assert type(error) is errors.ServiceUnavailableError
    assert (error.code, error.message, error.status_code) == (
        "overloaded_error",
        "Overloaded",
        None,
    )
    assert error.recoverable and error.partial_text == ""


def test_error_event_mid_stream_keeps_the_partial_text(server: ReplayServer) -> None:
    events = _events("anthropic/stream_tool_use.sse")
    # message_start, content_block_start, ping and two text deltas, then the overload event.
    body = b"".join(events[:5]) + fixture_bytes("anthropic/stream_error_overloaded.sse")
    server.queue(Reply(body=body, piece=50))
    failures: list[Exception] = []
    chunks: list[rxllm.ChatChunk] = []
    rxllm.streaming.consume(stream(server), on_chunk=chunks.append, on_error=failures.append).wait(
        10
    )
    (error,) = failures
    assert isinstance(error, errors.ServiceUnavailableError)
    assert error.partial_text == "Certainly! I can help you with that information"
    assert error.provider == "anthropic" and error.model == MODEL
    assert len(chunks) == 3  # the role chunk and the two text deltas


def test_dropped_connection_is_a_truncation_with_partial_text(server: ReplayServer) -> None:
    body = fixture_bytes("anthropic/stream_tool_use.sse")
    cut = body.index(b"event: content_block_stop")  # every text delta sent, no tool block yet
    server.queue(Reply(body=body, drop_after=cut, piece=200))
    failures: list[Exception] = []
    rxllm.streaming.consume(stream(server), on_error=failures.append).wait(10)
    (error,) = failures
    assert isinstance(error, errors.StreamTruncatedError)
    assert error.partial_text == TOOL_TEXT


def test_clean_close_before_message_stop_is_a_truncation(server: ReplayServer) -> None:
    body = b"".join(_events("anthropic/stream_text.sse")[:-1])  # everything but message_stop
    server.queue(Reply(body=body))
    with pytest.raises(errors.StreamTruncatedError, match="message_stop") as caught:
        collect_sync(stream(server), timeout=10)
    assert caught.value.partial_text == "Hello"


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
    ],
)
def test_finish_reasons(server: ReplayServer, stop_reason: str, finish: str) -> None:
    # The recorded response with its stop_reason swapped for each value the API documents.
    body = fixture_bytes("anthropic/response_text.json").replace(
        b'"stop_reason":"end_turn"', b'"stop_reason":"%s"' % stop_reason.encode()
    )
    server.queue(Reply(body=body, content_type="application/json"))
    response = rxllm.completion(
        "anthropic", MODEL, messages=USER, api_key=API_KEY, api_base=server.base
    )
    assert (response.finish_reason, response.choices[0].native_finish_reason) == (
        finish,
        stop_reason,
    )


def test_thinking_blocks_of_a_non_streamed_answer_round_trip(server: ReplayServer) -> None:
    # The documented shape of a thinking answer (no non-streamed recording exists): a signed
    # thinking block, a redacted one, then the text.
    body = json.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [
                {"type": "thinking", "thinking": "Let me think.", "signature": "sig-1"},
                {"type": "redacted_thinking", "data": "opaque-1"},
                {"type": "text", "text": "42"},
            ],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": 5, "output_tokens": 7, "cache_read_input_tokens": 3},
        }
    ).encode()
    server.queue(Reply(body=body, content_type="application/json"))
    response = rxllm.completion(
        "anthropic", MODEL, messages=USER, api_key=API_KEY, api_base=server.base
    )
    assert (response.text, response.reasoning_content) == ("42", "Let me think.")
    usage = response.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (8, 7)
    assert usage.prompt_tokens_details.cached_tokens == 3
    body_sent = sent_body([*USER, response.message, {"role": "user", "content": "Why?"}])
    assert body_sent["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "Let me think.", "signature": "sig-1"},
        {"type": "redacted_thinking", "data": "opaque-1"},
        {"type": "text", "text": "42"},
    ]


# --- a whole read decoded at once ---------------------------------------------------------------


def _parser() -> Any:
    call, spec, _ = prepare("anthropic", MODEL, messages=USER, stream=True, api_key=API_KEY)
    return spec.stream_parser(call)


def _read(body: bytes) -> Any:
    """``body`` as one socket read gives it to the parser (asserting the bulk path took it)."""
    events = SSEDecoder().feed(body)
    assert type(events) is NamedDataEvents
    return events


@pytest.mark.parametrize("name", ["stream_text.sse", "stream_tool_use.sse", "stream_thinking.sse"])
def test_a_whole_read_parses_as_event_by_event(name: str) -> None:
    body = fixture_bytes(f"anthropic/{name}")
    batched, error = _parser().parse(_read(body))
    assert error is None
    one_by_one = _parser()
    expected = [c for c in map(one_by_one.feed, _read(body)) if c is not None]
    for chunk in (*batched, *expected):
        chunk.created = 0
    assert batched == expected and len(batched) >= 3


def test_an_error_event_inside_a_read_keeps_the_chunks_before_it() -> None:
    body = b"".join(_events("anthropic/stream_tool_use.sse")[:5])
    body += fixture_bytes("anthropic/stream_error_overloaded.sse")
    parser = _parser()
    chunks, error = parser.parse(_read(body))
    assert len(chunks) == 3  # the role chunk and the two text deltas
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == (
        "Certainly! I can help you with that information"
    )
    assert isinstance(error, errors.ServiceUnavailableError) and error.code == "overloaded_error"


def test_a_bad_frame_inside_a_read_fails_after_the_chunks_before_it() -> None:
    events = _events("anthropic/stream_text.sse")
    body = events[0] + b"event: content_block_delta\ndata: {not json\n\n" + events[-1]
    chunks, error = _parser().parse(_read(body))
    assert [c.choices[0].delta.role for c in chunks] == ["assistant"]
    assert isinstance(error, errors.MalformedResponseError)
