"""OpenAI Chat Completions over real HTTP: recorded transcripts replayed byte for byte."""

from __future__ import annotations

import json

import pytest

import rxllm
from rxllm import errors, ops
from rxllm.streaming import collect, collect_sync

from .conftest import API_KEY, fixture_bytes
from .server import ReplayServer, Reply

MESSAGES = [{"role": "user", "content": "What's the weather like in SF?"}]

TEXT = (
    "I'm unable to provide real-time weather updates. To get the current weather in San "
    "Francisco, I recommend checking a reliable weather website or a weather app."
)


def stream(base: str, **kwargs: object) -> rxllm.ChatStream:
    return rxllm.completion(
        "openai",
        "gpt-4o",
        messages=MESSAGES,
        stream=True,
        api_key=API_KEY,
        api_base=base,
        **kwargs,  # type: ignore[arg-type]
    )


def test_stream_text_and_usage(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse"), piece=97))
    response = collect_sync(stream(openai_base), timeout=10)
    assert response.text == TEXT
    assert response.id == "chatcmpl-ABfw031mOJeYCSHe4yI2ZjOA6kMJL"
    assert response.model == "gpt-4o-2024-08-06"
    assert response.provider == "openai"
    assert response.finish_reason == "stop"
    assert response.choices[0].native_finish_reason == "stop"
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (14, 30)
    assert response.usage.total_tokens == 44
    assert response.tool_calls == []


def test_request_shape(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse")))
    collect_sync(stream(openai_base, temperature=0.2, max_tokens=50), timeout=10)
    (request,) = server.requests
    assert request.method == "POST"
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.json() == {
        "model": "gpt-4o",
        "messages": MESSAGES,
        "temperature": 0.2,
        "max_tokens": 50,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_stream_tool_call(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_tool_call_usage.sse"), piece=50))
    tools = json.loads(fixture_bytes("openai/request_stream_tools.json"))["tools"]
    response = collect_sync(stream(openai_base, tools=tools), timeout=10)
    assert response.finish_reason == "tool_calls"
    (call,) = response.tool_calls
    assert call.id == "call_4XzlGBLtUe9dy3GVNV4jhq7h"
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert call.parsed_arguments() == {"city": "New York City"}
    assert response.text == ""
    assert response.usage is not None and response.usage.total_tokens == 60
    assert server.requests[0].json()["tools"] == tools


def test_stream_parallel_tool_calls(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_parallel_tool_calls.sse"), piece=333))
    response = collect_sync(stream(openai_base), timeout=10)
    assert [(c.id, c.function.name, c.parsed_arguments()) for c in response.tool_calls] == [
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
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (149, 60)


def test_chunks_are_typed_and_labelled(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse")))
    chunks: list[rxllm.ChatChunk] = []
    handle = rxllm.streaming.consume(stream(openai_base), on_chunk=chunks.append)
    assert handle.wait(10) is not None
    assert all(isinstance(c, rxllm.ChatChunk) and c.provider == "openai" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert "".join(rxllm.streaming.extract_content(c) or "" for c in chunks) == TEXT


def test_non_streaming_text(server: ReplayServer, openai_base: str) -> None:
    server.queue(
        Reply(body=fixture_bytes("openai/response_text.json"), content_type="application/json")
    )
    response = rxllm.completion(
        model="openai/gpt-3.5-turbo", messages=MESSAGES, api_key=API_KEY, api_base=openai_base
    )
    assert isinstance(response, rxllm.ChatResponse)
    assert response.text == "You are a dog, which is a type of mammal."
    assert response.finish_reason == "stop"
    assert response.usage is not None and response.usage.total_tokens == 34
    assert "stream" not in server.requests[0].json()


def test_non_streaming_tool_call(server: ReplayServer, openai_base: str) -> None:
    server.queue(
        Reply(
            body=fixture_bytes("openai/response_tool_calls.json"), content_type="application/json"
        )
    )
    request = json.loads(fixture_bytes("openai/request_tools.json"))
    response = rxllm.completion(
        "openai",
        "gpt-4o-mini",
        messages=request["messages"],
        tools=request["tools"],
        api_key=API_KEY,
        api_base=openai_base,
    )
    (call,) = response.tool_calls
    assert (call.id, call.function.name) == ("call_TTY8UFNo7rNCaOBUNtlRSvMG", "lookup_population")
    assert call.parsed_arguments() == {"country": "Crumpet"}
    assert response.finish_reason == "tool_calls"
    assert response.text == ""
    sent = server.requests[0].json()
    assert sent["tools"] == request["tools"] and sent["messages"] == request["messages"]


async def test_acompletion_non_streaming(server: ReplayServer, openai_base: str) -> None:
    server.queue(
        Reply(body=fixture_bytes("openai/response_text.json"), content_type="application/json")
    )
    response = await rxllm.acompletion(
        "openai", "gpt-3.5-turbo", messages=MESSAGES, api_key=API_KEY, api_base=openai_base
    )
    assert response.text == "You are a dog, which is a type of mammal."


async def test_acompletion_stream_with_collect_operator(
    server: ReplayServer, openai_base: str
) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse"), piece=10))
    chat = await rxllm.acompletion(
        "openai", "gpt-4o", messages=MESSAGES, stream=True, api_key=API_KEY, api_base=openai_base
    )
    response = await chat.pipe(ops.collect())
    assert response.text == TEXT
    assert (await collect(chat)).text == TEXT  # replayed, no second request
    assert len(server.requests) == 1


# --- errors ------------------------------------------------------------------------------------

ERROR_CASES = [
    (
        401,
        b'{"error":{"message":"Incorrect API key provided: sk-test-***CRET.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}',
        errors.AuthenticationError,
        "invalid_api_key",
    ),
    (
        403,
        b'{"error":{"message":"Country not supported","type":"request_forbidden","code":"unsupported_country_region_territory"}}',
        errors.PermissionDeniedError,
        "unsupported_country_region_territory",
    ),
    (
        404,
        fixture_bytes("openai/error_404_model_not_found.json"),
        errors.NotFoundError,
        "model_not_found",
    ),
    (
        400,
        fixture_bytes("openai/error_400_invalid_image_url.json"),
        errors.BadRequestError,
        "invalid_image_url",
    ),
    (
        400,
        fixture_bytes("openai/error_400_unsupported_parameter.json"),
        errors.UnsupportedParamsError,
        "unsupported_parameter",
    ),
    (
        400,
        b'{"error":{"message":"This model\'s maximum context length is 128000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}',
        errors.ContextWindowExceededError,
        "context_length_exceeded",
    ),
    (
        429,
        b'{"error":{"message":"Rate limit reached for gpt-4o","type":"requests","param":null,"code":"rate_limit_exceeded"}}',
        errors.RateLimitError,
        "rate_limit_exceeded",
    ),
    (
        429,
        b'{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}',
        errors.QuotaExceededError,
        "insufficient_quota",
    ),
    (
        500,
        b'{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}',
        errors.InternalServerError,
        None,
    ),
    (
        503,
        b"<html><body><h1>503 Service Unavailable</h1></body></html>",
        errors.ServiceUnavailableError,
        None,
    ),
]


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    ERROR_CASES,
    ids=[f"{c[0]}-{c[2].__name__}" for c in ERROR_CASES],
)
def test_http_errors_map_to_typed_errors(
    server: ReplayServer, openai_base: str, status: int, body: bytes, cls: type, code: str | None
) -> None:
    headers = {"x-request-id": "req_abc123", "retry-after": "7"}
    server.queue(Reply(status=status, body=body, content_type="application/json", headers=headers))
    server.queue(Reply(status=status, body=body, content_type="application/json", headers=headers))
    with pytest.raises(cls) as caught:
        rxllm.completion(
            "openai", "gpt-4o", messages=MESSAGES, api_key=API_KEY, api_base=openai_base
        )
    failures: list[Exception] = []
    handle = rxllm.streaming.consume(stream(openai_base), on_error=failures.append)
    assert handle.wait(10) is None
    for error in (caught.value, failures[0]):
        assert type(error) is cls
        assert (error.provider, error.model, error.status_code) == ("openai", "gpt-4o", status)
        assert error.code == code
        assert error.request_id == "req_abc123"
        assert error.retry_after == 7.0
        assert API_KEY not in str(error) and API_KEY not in repr(error)
    assert cls is not errors.RateLimitError or caught.value.recoverable
    assert cls is not errors.QuotaExceededError or not caught.value.recoverable


def test_retry_after_ms_header_wins(server: ReplayServer, openai_base: str) -> None:
    server.queue(
        Reply(status=429, body=b"{}", headers={"retry-after-ms": "1500", "retry-after": "9"})
    )
    with pytest.raises(errors.RateLimitError) as caught:
        rxllm.completion(
            "openai", "gpt-4o", messages=MESSAGES, api_key=API_KEY, api_base=openai_base
        )
    assert caught.value.retry_after == 1.5


# --- vision --------------------------------------------------------------------------------


def test_image_parts_are_sent_as_openai_content_parts(
    server: ReplayServer, openai_base: str
) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse")))
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this image?"},
            {
                "type": "image_url",
                "image_url": {"url": "https://example.org/cat.jpg", "detail": "low"},
            },
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
    }
    chat = rxllm.completion(
        "openai",
        "gpt-4o",
        messages=[message],
        stream=True,
        api_key=API_KEY,
        api_base=openai_base,
    )
    collect_sync(chat, timeout=10)
    assert server.requests[0].json()["messages"] == [message]


def test_invalid_image_url_error(server: ReplayServer, openai_base: str) -> None:
    server.queue(
        Reply(
            status=400,
            body=fixture_bytes("openai/error_400_invalid_image_url.json"),
            content_type="application/json",
        )
    )
    message = {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "https://example.org/gone.jpg"}}],
    }
    with pytest.raises(errors.BadRequestError) as caught:
        rxllm.completion(
            "openai", "gpt-4o", messages=[message], api_key=API_KEY, api_base=openai_base
        )
    error = caught.value
    assert type(error) is errors.BadRequestError
    assert (error.status_code, error.code, error.error_type) == (
        400,
        "invalid_image_url",
        "invalid_request_error",
    )
    assert (
        error.message
        == json.loads(fixture_bytes("openai/error_400_invalid_image_url.json"))["error"]["message"]
    )


def test_rxllm_fields_are_not_sent_back(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openai/response_text.json")))
    history = [
        {"role": "user", "content": "Hi"},
        {
            "role": "assistant",
            "content": "Hello",
            "reasoning_content": "A greeting.",
            "provider_fields": {"opaque": 1},
        },
        {"role": "user", "content": "Bye"},
    ]
    rxllm.completion("openai", "gpt-4o", messages=history, api_key=API_KEY, api_base=openai_base)
    assert server.requests[0].json()["messages"][1] == {"role": "assistant", "content": "Hello"}
