"""Azure OpenAI over real HTTP: recorded transcripts replayed byte for byte (the
``.chunks.txt`` recording lacks the SSE framing: it is framed here as ``data: <line>`` events
plus ``data: [DONE]``, as Azure sends them)."""

from __future__ import annotations

import json

import pytest

import rxllm
from rxllm import errors
from rxllm.streaming import collect_sync

from .conftest import API_KEY, failure_of, fixture_bytes
from .server import ReplayServer, Reply, sse

JOKE = [{"role": "user", "content": "Tell me a joke about opentelemetry"}]
DEPLOYMENT = "openllmetry-testing"


def stream(base: str, deployment: str = DEPLOYMENT, **kw: object) -> rxllm.ChatStream:
    return rxllm.completion(
        "azure",
        deployment,
        messages=JOKE,
        stream=True,
        api_key=API_KEY,
        api_base=base,
        api_version="2024-02-01",
        **kw,  # type: ignore[arg-type]
    )


def complete(server: ReplayServer, body: bytes, status: int = 200) -> rxllm.ChatResponse:
    server.queue(Reply(status=status, body=body, content_type="application/json"))
    return rxllm.completion(
        "azure",
        DEPLOYMENT,
        messages=JOKE,
        api_key=API_KEY,
        api_base=server.base,
        api_version="2024-02-01",
    )


def test_stream_with_empty_first_chunk_and_filter_results(server: ReplayServer) -> None:
    server.queue(Reply(body=fixture_bytes("azure/stream_text.sse"), piece=400))
    chunks: list[rxllm.ChatChunk] = []
    response = rxllm.streaming.consume(stream(server.base), on_chunk=chunks.append).wait(10)
    assert response is not None
    assert response.text == (
        "Why did the Opentelemetry developer bring a ladder to the coding competition? \n\n"
        "Because they wanted to reach new traces!"
    )
    assert (response.id, response.model) == (
        "chatcmpl-9HpbaAXyt0cAnlWvI8kUAFpZt5jyQ",
        "gpt-35-turbo",
    )
    assert (response.provider, response.finish_reason) == ("azure", "stop")
    assert response.usage is None  # this recording asked for no usage chunk
    # The opening prompt-filter chunk (empty id, no choices) carries nothing: not emitted.
    assert chunks[0].id == "chatcmpl-9HpbaAXyt0cAnlWvI8kUAFpZt5jyQ"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(c.choices[0].delta.provider_fields is None for c in chunks)  # nothing filtered


def test_request_url_header_and_body(server: ReplayServer) -> None:
    server.queue(Reply(body=fixture_bytes("azure/stream_text.sse")))
    collect_sync(stream(server.base + "/"), timeout=10)
    (request,) = server.requests
    assert request.path == "/openai/deployments/openllmetry-testing/chat/completions"
    assert request.query == {"api-version": "2024-02-01"}
    assert request.headers["api-key"] == API_KEY
    assert "Authorization" not in request.headers
    # The recorded body plus the usage request rxllm always makes when streaming.
    recorded = json.loads(fixture_bytes("azure/request_stream.json"))
    assert request.json() == {**recorded, "stream_options": {"include_usage": True}}


def test_stream_with_obfuscation_and_usage_chunk(server: ReplayServer) -> None:
    body = sse(*fixture_bytes("azure/stream_usage.chunks.txt").splitlines())
    server.queue(Reply(body=body, piece=256))
    response = collect_sync(stream(server.base, "gpt-5-nano"), timeout=10)
    assert response.text == "Capital of Denmark."
    assert response.model == "gpt-5-nano-2025-08-07"
    assert response.finish_reason == "stop"
    usage = response.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (15, 78, 93)
    assert usage.completion_tokens_details.reasoning_tokens == 64


def test_filtered_chunk_keeps_its_filter_results(server: ReplayServer) -> None:
    # Built from the recorded chunk shapes: a finish chunk cut by the output filter.
    head = fixture_bytes("azure/stream_text.sse").split(b"\n\n")[:4]
    cut = (
        '{"choices":[{"content_filter_results":{"hate":{"filtered":true,"severity":"high"},'
        '"self_harm":{"filtered":false,"severity":"safe"}},"delta":{},'
        '"finish_reason":"content_filter","index":0,"logprobs":null}],"created":1714036974,'
        '"id":"chatcmpl-9HpbaAXyt0cAnlWvI8kUAFpZt5jyQ","model":"gpt-35-turbo",'
        '"object":"chat.completion.chunk","system_fingerprint":null}'
    )
    server.queue(Reply(body=b"\n\n".join(head) + b"\n\n" + sse(cut)))
    response = collect_sync(stream(server.base), timeout=10)
    assert response.text == "Why did"
    assert response.finish_reason == "content_filter"
    message = response.message
    assert message is not None and message.provider_fields is not None
    results = message.provider_fields["content_filter_results"]
    assert results["hate"] == {"filtered": True, "severity": "high"}


def test_non_streaming_text(server: ReplayServer) -> None:
    response = complete(server, fixture_bytes("azure/response_text.json"))
    assert response.text == (
        "Why did the Opentelemetry developer refuse to share their candy?\n\n"
        "Because they wanted to keep all the traces for themselves!"
    )
    assert response.finish_reason == "stop"
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (15, 24)
    assert "stream" not in server.requests[0].json()


def test_non_streaming_answer_cut_by_the_filter(server: ReplayServer) -> None:
    response = complete(server, fixture_bytes("azure/response_finish_content_filter.json"))
    assert response.finish_reason == "content_filter"
    assert response.text == ""
    assert response.usage is not None and response.usage.total_tokens == 34
    message = response.message
    assert message is not None and message.provider_fields is not None
    assert message.provider_fields["content_filter_results"]["hate"] == {
        "filtered": True,
        "severity": "high",
    }


AZURE_ERRORS = [
    (401, "azure/error_401_access_denied.json", errors.AuthenticationError, "401", None),
    (
        404,
        "azure/error_404_deployment_not_found.json",
        errors.NotFoundError,
        "DeploymentNotFound",
        "invalid_request_error",
    ),
    (
        400,
        "azure/error_400_content_filter.json",
        errors.ContentPolicyViolationError,
        "content_filter",
        None,
    ),
]


@pytest.mark.parametrize(("status", "name", "cls", "code", "error_type"), AZURE_ERRORS)
def test_error_bodies(
    server: ReplayServer, status: int, name: str, cls: type, code: str, error_type: str | None
) -> None:
    server.queue(Reply(status=status, body=fixture_bytes(name), content_type="application/json"))
    error = failure_of(stream(server.base))
    assert type(error) is cls
    assert (error.provider, error.model, error.status_code) == ("azure", DEPLOYMENT, status)
    assert (error.code, error.error_type) == (code, error_type)
    assert API_KEY not in str(error)


def test_content_filter_error_details(server: ReplayServer) -> None:
    with pytest.raises(errors.ContentPolicyViolationError) as caught:
        complete(server, fixture_bytes("azure/error_400_content_filter.json"), status=400)
    assert caught.value.param == "prompt"
    assert caught.value.message.startswith(
        "The response was filtered due to the prompt triggering Azure Content management policy."
    )
    # As the cassette recorded it (status 200): still the typed error, not a response.
    with pytest.raises(errors.ContentPolicyViolationError):
        complete(server, fixture_bytes("azure/error_400_content_filter.json"))


def test_settings_from_the_environment(
    server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-env-key")
    monkeypatch.setenv("AZURE_API_BASE", server.base)
    monkeypatch.setenv("AZURE_API_VERSION", "2025-01-01-preview")
    server.queue(Reply(body=fixture_bytes("azure/response_text.json")))
    rxllm.completion("azure", "my-gpt-4o", messages=JOKE)
    (request,) = server.requests
    assert request.path == "/openai/deployments/my-gpt-4o/chat/completions"
    assert request.query == {"api-version": "2025-01-01-preview"}
    assert request.headers["api-key"] == "azure-env-key"


def test_default_api_version_and_missing_base(
    server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT", "AZURE_API_VERSION"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(errors.ConfigurationError, match="api_base"):
        rxllm.completion("azure", "d", messages=JOKE, stream=True, api_key=API_KEY)
    assert server.requests == []
    server.queue(Reply(body=fixture_bytes("azure/response_text.json")))
    rxllm.completion("azure", "d", messages=JOKE, api_key=API_KEY, api_base=server.base)
    assert server.requests[0].query == {"api-version": "2024-10-21"}


def test_embeddings_for_a_deployment(server: ReplayServer) -> None:
    # Azure answers embeddings in OpenAI's shape: the recorded OpenAI body stands in.
    server.queue(Reply(body=fixture_bytes("openai/response_embedding.json")))
    response = rxllm.embedding(
        "azure",
        "text-embedding-3-small",
        input=["a", "b"],
        api_key=API_KEY,
        api_base=server.base,
        api_version="2024-10-21",
    )
    assert response.vectors[1] == [
        -0.037104916,
        -0.05178114,
        -0.008340587,
        0.001164541,
        -0.0035253682,
    ]
    assert response.provider == "azure"
    (request,) = server.requests
    assert request.path == "/openai/deployments/text-embedding-3-small/embeddings"
    assert request.query == {"api-version": "2024-10-21"}
    assert request.headers["api-key"] == API_KEY
    assert request.json() == {"model": "text-embedding-3-small", "input": ["a", "b"]}
