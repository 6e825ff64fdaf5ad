"""Errors as proxies, gateways and OpenAI-compatible servers phrase them, over real HTTP.

The bodies are the shapes those servers send (sources beside each): LiteLLM's proxy wraps every
failure as ``{"error": {"message", "type", "param", "code": "<status>"}}`` - as the HTTP body,
and as a ``data:`` frame when its upstream fails mid-stream, on its OpenAI-format and its
Anthropic-format (``/v1/messages``) endpoints alike; vLLM sends a top-level
``{"object": "error", ..., "code": 400}``; OpenRouter a numeric ``code`` with ``metadata``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import rxllm
from rxllm import errors

from .conftest import API_KEY, failure_of, fixture_bytes
from .server import ReplayServer, Reply, sse

USER = [{"role": "user", "content": "hi"}]

#: LiteLLM proxy, OpenAI route, context window exceeded upstream: its class chain, then the
#: upstream's words (the shape of OpenHands/OpenHands#5350, with OpenAI's own message).
LITELLM_CONTEXT_400 = json.dumps(
    {
        "error": {
            "message": "litellm.ContextWindowExceededError: litellm.BadRequestError: "
            "ContextWindowExceededError: OpenAIException - This model's maximum context length "
            "is 128000 tokens. However, your messages resulted in 204308 tokens. Please reduce "
            "the length of the messages.\nReceived Model Group=gpt-4o\n"
            "Available Model Group Fallbacks=None",
            "type": None,
            "param": None,
            "code": "400",
        }
    }
).encode()
#: LiteLLM proxy in front of Anthropic: github.com/BrokkAi/brokk-app/issues/540.
LITELLM_ANTHROPIC_CONTEXT_400 = json.dumps(
    {
        "error": {
            "message": 'litellm.BadRequestError: AnthropicException - b\'{"type":"error",'
            '"error":{"type":"invalid_request_error","message":"input length and `max_tokens` '
            "exceed context limit: 179413 + 32768 > 200000, decrease input length or "
            "`max_tokens` and try again\"}}'. Received Model Group=anthropic/claude-sonnet-4\n"
            "Available Model Group Fallbacks=None",
            "type": None,
            "param": None,
            "code": "400",
        }
    }
).encode()
#: vLLM's top-level error body: github.com/vllm-project/vllm/issues/20409.
VLLM_CONTEXT_400 = json.dumps(
    {
        "object": "error",
        "message": "This model's maximum context length is 16384 tokens. However, you requested "
        "19591 tokens (9591 in the messages, 10000 in the completion). Please reduce the length "
        "of the messages or completion. None",
        "type": "BadRequestError",
        "param": None,
        "code": 400,
    }
).encode()
#: The wrapped shape newer vLLM sends (github.com/vllm-project/vllm/pull/37011); the wording is
#: illustrative, in the style of vLLM's max_tokens check.
VLLM_WRAPPED_400 = json.dumps(
    {
        "error": {
            "message": "'max_tokens' or 'max_completion_tokens' is too large: 10000. This "
            "model's maximum context length is 16384 tokens and your request has 9591 input "
            "tokens (10000 > 16384 - 9591).",
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    }
).encode()


def litellm_frame(code: Any, message: str = "upstream connection dropped") -> bytes:
    """What LiteLLM's proxy writes when its upstream fails mid-stream (``async_data_generator``
    in litellm/proxy/proxy_server.py: ``data: {json.dumps({"error": ProxyException...})}``)."""
    detail = {"message": message, "type": "None", "param": "None", "code": code}
    return json.dumps({"error": detail}).encode()


OPENAI_FRAME = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-4o",
        "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}],
    }
).encode()
ANTHROPIC_START = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",'
    b'"model":"claude-sonnet-4-5","content":[],"stop_reason":null,"usage":{"input_tokens":3,'
    b'"output_tokens":1}}}\n\n'
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}'
    b"\n\n"
)


def call(provider: str, server: ReplayServer, *, stream: bool = False) -> Any:
    base = server.base if provider == "anthropic" else server.base + "/v1"
    return rxllm.completion(
        provider, "m", messages=USER, stream=stream, api_key=API_KEY, api_base=base
    )


def raised(provider: str, server: ReplayServer) -> errors.LLMError:
    with pytest.raises(errors.LLMError) as caught:
        call(provider, server)
    return caught.value


OPENAI_ROUTES = ("openai", "openai_compatible", "openrouter", "deepseek", "mistral")


@pytest.mark.parametrize("provider", [*OPENAI_ROUTES, "anthropic"])
@pytest.mark.parametrize(
    "body", [LITELLM_CONTEXT_400, LITELLM_ANTHROPIC_CONTEXT_400], ids=["openai", "anthropic"]
)
def test_litellm_context_window_errors_are_typed_on_every_route(
    server: ReplayServer, provider: str, body: bytes
) -> None:
    server.queue(Reply(status=400, body=body, content_type="application/json"))
    error = raised(provider, server)
    assert type(error) is errors.ContextWindowExceededError, error
    assert error.status_code == 400 and not error.recoverable
    assert "context" in error.message


@pytest.mark.parametrize("provider", ["openai", "openai_compatible", "mistral"])
@pytest.mark.parametrize("body", [VLLM_CONTEXT_400, VLLM_WRAPPED_400], ids=["top", "wrapped"])
def test_vllm_context_window_errors(server: ReplayServer, provider: str, body: bytes) -> None:
    server.queue(Reply(status=400, body=body, content_type="application/json"))
    error = raised(provider, server)
    assert type(error) is errors.ContextWindowExceededError, error
    assert error.message.startswith(("This model's", "'max_tokens'"))  # not the raw JSON
    assert error.status_code == 400


@pytest.mark.parametrize(
    ("code", "cls", "status"),
    [
        ("500", errors.InternalServerError, 500),
        (500, errors.InternalServerError, 500),
        ("503", errors.ServiceUnavailableError, 503),
        ("429", errors.RateLimitError, 429),
        (429, errors.RateLimitError, 429),
        ("401", errors.AuthenticationError, 401),
    ],
)
@pytest.mark.parametrize("provider", [*OPENAI_ROUTES, "anthropic"])
def test_gateway_error_frame_mid_stream_takes_its_status_from_the_code(
    server: ReplayServer, provider: str, code: Any, cls: type[errors.LLMError], status: int
) -> None:
    if provider == "anthropic":
        body = ANTHROPIC_START + b"data: " + litellm_frame(code) + b"\n\n"
    else:
        body = sse(OPENAI_FRAME, litellm_frame(code), done=False)
    server.queue(Reply(body=body))
    error = failure_of(call(provider, server, stream=True))
    assert type(error) is cls, error
    assert error.status_code == status
    assert error.recoverable == cls("x").recoverable
    assert error.partial_text == "Hel"  # the frame before it still arrived
    assert error.message == "upstream connection dropped"


def test_gateway_context_window_frame_mid_stream(server: ReplayServer) -> None:
    frame = litellm_frame("400", "litellm.ContextWindowExceededError: prompt is too long")
    server.queue(Reply(body=sse(OPENAI_FRAME, frame, done=False)))
    error = failure_of(call("openai", server, stream=True))
    assert type(error) is errors.ContextWindowExceededError
    assert error.status_code == 400


def test_openrouter_bodies(server: ReplayServer) -> None:
    server.queue(
        Reply(
            status=429,
            body=fixture_bytes("openrouter/error_429_rate_limit.json"),
            content_type="application/json",
        )
    )
    limited = raised("openrouter", server)
    assert type(limited) is errors.RateLimitError and limited.status_code == 429
    server.queue(Reply(body=fixture_bytes("openrouter/stream_midstream_error.sse")))
    cut = failure_of(call("openrouter", server, stream=True))
    assert type(cut) is errors.BadRequestError  # {"code": 400, "message": "Token limit reached"}
    assert cut.status_code == 400 and cut.code == "400"


@pytest.mark.parametrize(
    "text",
    [
        "This model's maximum context length is 8192 tokens",
        "context_length_exceeded",
        "prompt is too long: 209303 tokens > 200000 maximum",
        "Input is too long for requested model.",
        "The input exceeds the context window of this model",
        "input length and `max_tokens` exceed context limit: 1 + 2 > 2",
        "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
        "litellm.ContextWindowExceededError: whatever the upstream said",
    ],
)
def test_context_window_phrasings(text: str) -> None:
    assert errors.refine_class(errors.BadRequestError, text) is errors.ContextWindowExceededError
    assert errors.refine_class(errors.APIStatusError, text) is errors.ContextWindowExceededError
    assert errors.refine_class(errors.RateLimitError, text) is errors.RateLimitError


def test_unrelated_bad_requests_stay_bad_requests() -> None:
    for text in ("Invalid 'messages[0].content': empty", "context is missing", "max_tokens < 1"):
        assert errors.refine_class(errors.BadRequestError, text) is errors.BadRequestError


@pytest.mark.parametrize(
    ("code", "status"),
    [("500", 500), (429, 429), (" 404 ", 404), ("invalid_api_key", None), (1, None), (True, None)],
)
def test_status_from_code(code: Any, status: int | None) -> None:
    assert errors.status_from_code(code) == status
