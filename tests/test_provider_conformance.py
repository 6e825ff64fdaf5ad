"""The provider contract, checked for every registered provider (and the example plug-ins in
``tests/plugins/``, registered while this module runs).

Each provider gets the same tests: the request for a simple chat, a recorded (or, with no
recording, format-built) stream replayed through the loopback server, a non-stream answer, error
bodies for 400/401/403/404/429/500 mapped to the right ``rxllm.errors`` classes, and its declared
capabilities honoured. What differs per provider is data - its :class:`Format` (how its wire
looks) and, for built-ins with recordings, the transcripts - never test code: a new
OpenAI-compatible provider is covered by registering it.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import rxllm
from rxllm import errors, providers
from rxllm._provider import Provider
from rxllm.providers.openai import OpenAIProvider

from .conftest import API_KEY, fixture_bytes
from .server import ReplayServer, Reply

USER = [{"role": "user", "content": "Say hello"}]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]

#: The status an error body comes with -> the class it must be (or subclass).
STATUS_CLASSES: dict[int, type[errors.LLMError]] = {
    400: errors.BadRequestError,
    401: errors.AuthenticationError,
    403: errors.PermissionDeniedError,
    404: errors.NotFoundError,
    429: errors.RateLimitError,
    500: errors.InternalServerError,
}


# --- formats: how each family's wire looks, and an independent reading of its text ----------


def _openai_error(status: int) -> bytes:
    kind = {429: "rate_limit_exceeded", 500: "server_error"}.get(status, "invalid_request_error")
    return json.dumps(
        {"error": {"message": f"failed {status}", "type": kind, "code": None}}
    ).encode()


def _anthropic_error(status: int) -> bytes:
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        429: "rate_limit_error",
        500: "api_error",
    }[status]
    return json.dumps(
        {"type": "error", "error": {"type": kind, "message": f"failed {status}"}}
    ).encode()


def _gemini_error(status: int) -> bytes:
    kind = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
    }[status]
    body = {"error": {"code": status, "message": f"failed {status}", "status": kind}}
    return json.dumps(body).encode()


def _ollama_error(status: int) -> bytes:
    return json.dumps({"error": f"failed {status}"}).encode()


def _sse_payloads(body: bytes) -> Iterator[Any]:
    for line in body.splitlines():
        if line.startswith(b"data:") and line[5:].strip() not in (b"", b"[DONE]"):
            yield json.loads(line[5:])


def _openai_stream_text(body: bytes) -> str:
    return "".join(
        choice["delta"].get("content") or ""
        for frame in _sse_payloads(body)
        for choice in frame.get("choices") or ()
    )


def _anthropic_stream_text(body: bytes) -> str:
    return "".join(
        frame["delta"].get("text", "")
        for frame in _sse_payloads(body)
        if frame.get("type") == "content_block_delta"
    )


def _responses_stream_text(body: bytes) -> str:
    return "".join(
        frame["delta"]
        for frame in _sse_payloads(body)
        if frame.get("type") == "response.output_text.delta"
    )


def _responses_text(answer: Any) -> str:
    return "".join(
        part["text"]
        for item in answer["output"]
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )


def _gemini_text(answer: Any) -> str:
    parts = answer["candidates"][0].get("content", {}).get("parts", [])
    return "".join(p.get("text", "") for p in parts if not p.get("thought"))


def _gemini_stream_text(body: bytes) -> str:
    return "".join(_gemini_text(frame) for frame in _sse_payloads(body) if frame.get("candidates"))


def _ollama_stream_text(body: bytes) -> str:
    lines = [json.loads(line) for line in body.splitlines() if line.strip()]
    return "".join(line.get("message", {}).get("content", "") for line in lines)


@dataclass(frozen=True)
class Format:
    """One wire family: its recorded exchange by default, and how to read text off it."""

    stream: str  # fixture path of a stream
    response: str  # fixture path of a non-stream answer
    content_type: str
    stream_text: Callable[[bytes], str]
    response_text: Callable[[Any], str]
    error_body: Callable[[int], bytes]
    #: Where the model and the stream flag go: "body" (JSON fields) or "url".
    model_in: str = "body"
    stream_flag_in: str = "body"


OPENAI_FORMAT = Format(
    "openai/stream_text_usage.sse",
    "openai/response_text.json",
    "text/event-stream",
    _openai_stream_text,
    lambda answer: answer["choices"][0]["message"]["content"],
    _openai_error,
)
FORMATS = {
    "anthropic": Format(
        "anthropic/stream_text.sse",
        "anthropic/response_text.json",
        "text/event-stream",
        _anthropic_stream_text,
        lambda answer: "".join(b["text"] for b in answer["content"] if b["type"] == "text"),
        _anthropic_error,
    ),
    "openai_responses": Format(
        "openai_responses/stream_text.sse",
        "openai_responses/response_text.json",
        "text/event-stream",
        _responses_stream_text,
        _responses_text,
        _openai_error,
    ),
    "gemini": Format(
        "gemini/stream_text.sse",
        "gemini/response_text.json",
        "text/event-stream",
        _gemini_stream_text,
        _gemini_text,
        _gemini_error,
        model_in="url",
        stream_flag_in="url",
    ),
    "ollama": Format(
        "ollama/stream_chat.ndjson",
        "ollama/response_chat.json",
        "application/x-ndjson",
        _ollama_stream_text,
        lambda answer: answer["message"]["content"],
        _ollama_error,
    ),
}


@dataclass(frozen=True)
class Case:
    """What the suite needs of one provider beyond its registry row: all defaulted."""

    provider: str
    format: Format = OPENAI_FORMAT
    model: str = "test-model"
    #: Appended to the loopback server's address to make ``api_base``.
    path: str = "/v1"
    #: The provider's own recordings, where they exist (else the format's).
    stream: str | None = None
    response: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.provider


#: Built-in providers whose wire or setup is not plain Chat Completions at ``/v1``.
CASES = {
    case.provider: case
    for case in (
        Case("openai", model="gpt-4o"),
        Case("openai_responses", FORMATS["openai_responses"], "gpt-4.1-nano"),
        Case("anthropic", FORMATS["anthropic"], "claude-3-opus-20240229", path=""),
        Case("gemini", FORMATS["gemini"], "gemini-2.5-flash", path=""),
        Case("ollama", FORMATS["ollama"], "gemma3:1b", path=""),
        Case(
            "azure",
            model="my-deployment",
            path="",
            stream="azure/stream_text.sse",
            response="azure/response_text.json",
            options={"api_version": "2024-02-01"},
        ),
        Case(
            "deepseek",
            model="deepseek-chat",
            path="",
            stream="deepseek/stream_reasoning_usage.sse",
            response="deepseek/response_reasoning.json",
        ),
        Case(
            "mistral",
            model="mistral-small-latest",
            stream="mistral/stream_text_usage.sse",
            response="mistral/response_text.json",
        ),
        Case("openrouter", model="openai/gpt-4o", stream="openrouter/stream_text_usage.sse"),
    )
}

PLUGINS = Path(__file__).parent / "plugins"


def _plugin_rows() -> list[providers.ProviderInfo]:
    """The registry rows of the example provider modules in ``tests/plugins/``."""
    return [
        importlib.import_module(f"tests.plugins.{path.stem}").ROW
        for path in sorted(PLUGINS.glob("*.py"))
        if path.stem != "__init__"
    ]


PLUGIN_ROWS = _plugin_rows()
#: Served by rxllm's own loopback server, not a recorded wire: its conformance is its own tests'.
NOT_ON_THE_WIRE = {"mock"}
NAMES = sorted({*providers.list_providers(), *(row.name for row in PLUGIN_ROWS)})
WIRE_NAMES = [name for name in NAMES if name not in NOT_ON_THE_WIRE]


@pytest.fixture(scope="module", autouse=True)
def _plugins() -> Iterator[None]:
    for row in PLUGIN_ROWS:
        providers.register_provider(row)
    yield
    for row in PLUGIN_ROWS:
        providers.unregister_provider(row.name)


def case_of(name: str) -> Case:
    return CASES.get(name) or Case(name)


def call_kwargs(case: Case, server: ReplayServer, **more: Any) -> dict[str, Any]:
    return {
        "messages": USER,
        "api_key": API_KEY,
        "api_base": server.base + case.path,
        **case.options,
        **more,
    }


@pytest.mark.parametrize("name", NAMES)
def test_the_module_implements_the_protocol(name: str) -> None:
    provider = providers.get_provider(name)
    assert isinstance(provider, Provider)
    assert provider.name == name
    decoder = provider.decoder()
    assert decoder.feed(b"") == []
    if providers.supports_embeddings(name):
        assert isinstance(provider, rxllm._provider.EmbeddingProvider)


@pytest.mark.parametrize("name", WIRE_NAMES)
def test_a_simple_chat_request(name: str, server: ReplayServer) -> None:
    case = case_of(name)
    fmt = case.format
    server.queue(
        Reply(body=fixture_bytes(case.stream or fmt.stream), content_type=fmt.content_type)
    )
    chat = rxllm.completion(name, case.model, stream=True, **call_kwargs(case, server))
    rxllm.streaming.collect_sync(chat, timeout=10)
    (request,) = server.requests
    assert request.method == "POST"
    assert request.path.startswith(case.path + "/")
    body = request.json()
    if fmt.model_in == "body":
        assert body["model"] == case.model
    else:
        assert case.model in request.path
    if fmt.stream_flag_in == "body":
        assert body["stream"] is True
    else:
        assert "stream" in request.path.lower()
    assert "Say hello" in json.dumps(body)


@pytest.mark.parametrize("name", WIRE_NAMES)
def test_a_stream_gives_the_text_and_completes(name: str, server: ReplayServer) -> None:
    case = case_of(name)
    fmt = case.format
    transcript = fixture_bytes(case.stream or fmt.stream)
    server.queue(Reply(body=transcript, content_type=fmt.content_type, piece=61))
    chat = rxllm.completion(name, case.model, stream=True, **call_kwargs(case, server))
    response = rxllm.streaming.collect_sync(chat, timeout=10)
    expected = fmt.stream_text(transcript)
    assert expected
    assert response.choices[0].message.content == expected
    assert response.choices[0].finish_reason is not None


@pytest.mark.parametrize("name", WIRE_NAMES)
def test_a_non_stream_answer(name: str, server: ReplayServer) -> None:
    case = case_of(name)
    fmt = case.format
    body = fixture_bytes(case.response or fmt.response)
    server.queue(Reply(body=body, content_type="application/json"))
    response = rxllm.completion(name, case.model, **call_kwargs(case, server))
    assert response.choices[0].message.content == fmt.response_text(json.loads(body))
    assert server.requests[0].json().get("stream", False) is False


@pytest.mark.parametrize("status", sorted(STATUS_CLASSES))
@pytest.mark.parametrize("name", WIRE_NAMES)
def test_error_bodies_are_typed(name: str, status: int, server: ReplayServer) -> None:
    case = case_of(name)
    body = case.format.error_body(status)
    server.queue(Reply(status=status, body=body, content_type="application/json"))
    with pytest.raises(errors.LLMError) as raised:
        rxllm.completion(name, case.model, **call_kwargs(case, server))
    error = raised.value
    assert isinstance(error, STATUS_CLASSES[status]), (type(error), body)
    assert error.status_code == status
    assert error.provider == name
    assert f"failed {status}" in str(error)


@pytest.mark.parametrize("name", NAMES)
def test_declared_capabilities_are_honoured(name: str) -> None:
    provider = providers.get_provider(name)
    if providers.supports_tools(name):
        assert "tools" in provider.check_params({"tools": TOOLS}, False)
        return
    with pytest.raises(errors.UnsupportedParamsError):
        provider.check_params({"tools": TOOLS}, False)
    assert provider.check_params({"tools": TOOLS, "temperature": 0.5}, True) == {"temperature": 0.5}


def test_the_suite_covers_every_registered_provider() -> None:
    assert set(providers.list_providers()) <= set(NAMES)
    assert {row.name for row in PLUGIN_ROWS} <= set(WIRE_NAMES)
    assert all(
        isinstance(providers.get_provider(n), OpenAIProvider) for n in WIRE_NAMES if n not in CASES
    )


@pytest.mark.parametrize("name", NAMES)
def test_fast_path_markers_cover_what_the_reader_keeps(name: str) -> None:
    """A read holding a field the reader keeps must skip the fast path (which would lose it)."""
    provider = providers.get_provider(name)
    markers = getattr(provider, "markers", ())
    for kept in getattr(provider, "keep", ()):
        assert b'"%s"' % kept.encode() in markers
    for member, value in getattr(provider, "keep_when", ()):
        assert b'"%s":%s' % (member.encode(), json.dumps(value).encode()) in markers
