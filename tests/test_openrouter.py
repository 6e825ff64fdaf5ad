"""OpenRouter over real HTTP: recorded transcripts replayed byte for byte."""

from __future__ import annotations

import json

import pytest

import rxllm
from rxllm import errors
from rxllm.streaming import collect_sync

from .conftest import API_KEY, failure_of, fixture_bytes
from .server import ReplayServer, Reply

OK_PROMPT = [{"role": "user", "content": "Reply with exactly 'OK' and nothing else"}]
SUM_PROMPT = [{"role": "user", "content": "What is 2+2?"}]
SIGNATURE = (
    "Et0BCkgIChACGAIqQA2s7h7tA7IG35fbwVkou9PM2hANVJNUwcEM4q12fTRDK6y3v6YoEvJ+7bko8wnW/GLsQFXadaJ"
    "PAEMCpLkhI9ISDLjFkeR1aVUIvdCtyBoMrUTovh0jwk+wpnZWIjANV3e6VVdgbGSsEyyTHO6KMmVtqqs79f9blnVdJmm"
    "MIwMyTi6bEtG59+jTU7v1zlsqQ2IKGZILOlr6adh0Aam7zYttvisys+wjyZZXU1y/Srz0nmp1cFgVOJe1BLKQI3SSRrj"
    "sqQC0uAEUZy0GX0Rq1AXjvIcYAQ=="
)


@pytest.fixture
def base(server: ReplayServer) -> str:
    return server.base + "/api/v1"


def stream(base: str, model: str, messages: object = OK_PROMPT, **kw: object) -> rxllm.ChatStream:
    return rxllm.completion(
        "openrouter",
        model,
        messages=messages,  # type: ignore[arg-type]
        stream=True,
        api_key=API_KEY,
        api_base=base,
        **kw,  # type: ignore[arg-type]
    )


LLAMA = "meta-llama/llama-3.2-3b-instruct:free"


def test_stream_with_comment_keepalives_and_usage(server: ReplayServer, base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openrouter/stream_text_usage.sse"), piece=64))
    response = collect_sync(
        stream(base, LLAMA, max_completion_tokens=10, temperature=0), timeout=10
    )
    assert response.text == "OK"
    assert response.id == "gen-1755695309-n3KSjm2bOuyQkOf869aK"
    assert (response.model, response.provider) == (LLAMA, "openrouter")
    assert response.finish_reason == "stop"
    assert response.choices[0].native_finish_reason == "stop"
    usage = response.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (612, 2, 614)
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 0
    (request,) = server.requests
    assert request.path == "/api/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.json() == json.loads(fixture_bytes("openrouter/request_stream.json"))


def test_stream_reasoning_and_its_details(server: ReplayServer, base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openrouter/stream_reasoning.sse"), piece=300))
    response = collect_sync(stream(base, "anthropic/claude-sonnet-4.5", SUM_PROMPT), timeout=10)
    assert response.reasoning_content == "This is a simple arithmetic question. 2+2 equals 4."
    assert response.text == "2 + 2 = 4"
    assert response.finish_reason == "stop"
    usage = response.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert (usage.total_tokens, usage.completion_tokens_details.reasoning_tokens) == (79, 13)
    message = response.message
    assert message is not None and message.provider_fields is not None
    details = message.provider_fields["reasoning_details"]
    assert [d.get("text") for d in details] == [
        "",
        "This",
        " is a simple arithmetic question. ",
        "2+2 equals 4.",
        "",
        None,
    ]
    assert details[-1]["signature"] == SIGNATURE


def test_reasoning_details_go_back_merged(server: ReplayServer, base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openrouter/stream_reasoning.sse")))
    first = collect_sync(stream(base, "anthropic/claude-sonnet-4.5", SUM_PROMPT), timeout=10)
    assert first.message is not None
    server.queue(Reply(body=fixture_bytes("openrouter/stream_text_usage.sse")))
    history = [*SUM_PROMPT, first.message, {"role": "user", "content": "And 3+3?"}]
    collect_sync(stream(base, "anthropic/claude-sonnet-4.5", history), timeout=10)
    assert server.requests[1].json()["messages"][1] == {
        "role": "assistant",
        "content": "2 + 2 = 4",
        "reasoning_details": [
            {
                "type": "reasoning.text",
                "text": "This is a simple arithmetic question. 2+2 equals 4.",
                "signature": SIGNATURE,
                "format": "anthropic-claude-v1",
                "index": 0,
            }
        ],
    }


def test_error_object_inside_a_chunk_ends_the_stream(server: ReplayServer, base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openrouter/stream_midstream_error.sse"), piece=100))
    chunks: list[rxllm.ChatChunk] = []
    failures: list[Exception] = []
    chat = stream(base, "minimax/minimax-m2:free")
    rxllm.streaming.consume(chat, on_chunk=chunks.append, on_error=failures.append).wait(10)
    (error,) = failures
    assert type(error) is errors.BadRequestError  # from the error's numeric code 400
    assert (error.code, error.message) == ("400", "Token limit reached")
    assert (error.provider, error.model) == ("openrouter", "minimax/minimax-m2:free")
    partial = error.partial_response
    assert partial is not None
    assert partial.reasoning_content == "We need to respond to a greeting. The user"
    assert partial.text == ""
    assert partial.finish_reason == "length"
    assert partial.usage is not None and partial.usage.total_tokens == 53  # from the error chunk
    assert chunks[-1].usage is not None  # the error chunk itself was emitted first


def test_model_string_splits_at_the_first_slash_only(server: ReplayServer, base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openrouter/stream_text_usage.sse")))
    chat = rxllm.completion(
        model="openrouter/anthropic/claude-3.5-sonnet",
        messages=OK_PROMPT,
        stream=True,
        api_key=API_KEY,
        api_base=base,
    )
    assert (chat.provider, chat.model) == ("openrouter", "anthropic/claude-3.5-sonnet")
    collect_sync(chat, timeout=10)
    assert server.requests[0].json()["model"] == "anthropic/claude-3.5-sonnet"


def test_attribution_headers_and_reasoning_effort(
    server: ReplayServer, base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OR_APP_NAME", "rxllm tests")
    server.queue(Reply(body=fixture_bytes("openrouter/stream_text_usage.sse")))
    chat = stream(
        base, LLAMA, http_referer="https://example.org", reasoning_effort="high", top_k=20
    )
    collect_sync(chat, timeout=10)
    (request,) = server.requests
    assert request.headers["HTTP-Referer"] == "https://example.org"
    assert request.headers["X-Title"] == "rxllm tests"
    sent = request.json()
    assert (sent["reasoning"], sent["top_k"]) == ({"effort": "high"}, 20)
    assert "reasoning_effort" not in sent and "http_referer" not in sent


def test_rate_limit_body_with_numeric_code_and_metadata(server: ReplayServer, base: str) -> None:
    server.queue(
        Reply(
            status=429,
            body=fixture_bytes("openrouter/error_429_rate_limit.json"),
            content_type="application/json",
        )
    )
    error = failure_of(stream(base, LLAMA))
    assert type(error) is errors.RateLimitError
    assert (error.status_code, error.code) == (429, "429")
    assert error.message.startswith("Rate limit exceeded: limit_rpm/meta-llama/llama-3.2-3b")
    assert error.retry_after == 0.0  # X-RateLimit-Reset of the metadata: a moment now past
    assert error.recoverable


def test_out_of_credits_and_upstream_provider_errors(server: ReplayServer, base: str) -> None:
    # Shapes from OpenRouter's error documentation (no recording was found).
    server.queue(Reply(status=402, body=b'{"error":{"code":402,"message":"Insufficient credits"}}'))
    error = failure_of(stream(base, LLAMA))
    assert type(error) is errors.QuotaExceededError and not error.recoverable
    server.queue(
        Reply(
            status=502,
            body=b'{"error":{"code":502,"message":"Provider returned error",'
            b'"metadata":{"provider_name":"Venice","raw":"upstream timeout"}}}',
        )
    )
    error = failure_of(stream(base, LLAMA))
    assert type(error) is errors.InternalServerError and error.code == "502"
    assert error.message == "Provider returned error (upstream provider: Venice)"


def test_dropped_connection_after_comments(server: ReplayServer, base: str) -> None:
    body = fixture_bytes("openrouter/stream_reasoning.sse")
    server.queue(Reply(body=body, drop_after=body.index(b'"reasoning":"2+2 equals 4."')))
    error = failure_of(stream(base, "anthropic/claude-sonnet-4.5", SUM_PROMPT))
    assert isinstance(error, errors.StreamTruncatedError)
    assert error.partial_response is not None
    assert error.partial_response.reasoning_content == "This is a simple arithmetic question. "
