"""Ollama's native API over real HTTP: recorded NDJSON transcripts replayed byte for byte.

Ollama's documented tool-call stream exists only as two pretty-printed objects
(``stream_tool_call_chunk.json``, ``stream_tool_call_final.json``); they are re-encoded here as
the compact lines Ollama puts on the wire."""

from __future__ import annotations

import json

import pytest

import rxllm
from rxllm import errors
from rxllm.streaming import collect_sync

from .conftest import failure_of, fixture_bytes
from .server import ReplayServer, Reply

COUNT = [{"role": "user", "content": "Count from 1 to 5"}]
NDJSON = "application/x-ndjson"


def ndjson(*names: str) -> bytes:
    """Pretty-printed documentation objects as NDJSON lines."""
    return b"".join(json.dumps(json.loads(fixture_bytes(n))).encode() + b"\n" for n in names)


def stream(
    base: str, model: str = "gemma3:1b", messages: object = COUNT, **kw: object
) -> rxllm.ChatStream:
    return rxllm.completion(
        "ollama",
        model,
        messages=messages,  # type: ignore[arg-type]
        stream=True,
        api_base=base,
        **kw,  # type: ignore[arg-type]
    )


def complete(
    server: ReplayServer, body: bytes, messages: object = COUNT, **kw: object
) -> rxllm.ChatResponse:
    server.queue(Reply(body=body, content_type="application/json"))
    return rxllm.completion(
        "ollama",
        "llama3",
        messages=messages,  # type: ignore[arg-type]
        api_base=server.base,
        **kw,  # type: ignore[arg-type]
    )


TOOLS = json.loads(fixture_bytes("ollama/request_tools.json"))["tools"]
TOKYO = [{"role": "user", "content": "what is the weather in tokyo?"}]


# --- streams -------------------------------------------------------------------------------


def test_stream_text_and_final_counts(server: ReplayServer) -> None:
    server.queue(
        Reply(body=fixture_bytes("ollama/stream_chat.ndjson"), content_type=NDJSON, piece=150)
    )
    chunks: list[rxllm.ChatChunk] = []
    response = rxllm.streaming.consume(stream(server.base), on_chunk=chunks.append).wait(10)
    assert response is not None
    assert response.text == "Okay, here we go!\n\n1, 2, 3, 4, 5\n"
    assert (response.model, response.provider) == ("gemma3:1b", "ollama")
    assert response.created == 1755697704  # 2025-08-20T13:48:24Z
    assert response.finish_reason == "stop"
    assert response.choices[0].native_finish_reason == "stop"
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (16, 22)
    assert response.usage.total_tokens == 38
    assert len(chunks) == 22 and len({c.id for c in chunks}) == 1
    assert chunks[0].id.startswith("chatcmpl-")


def test_request_matches_the_recorded_one(server: ReplayServer) -> None:
    server.queue(Reply(body=fixture_bytes("ollama/stream_chat.ndjson"), content_type=NDJSON))
    collect_sync(stream(server.base, max_tokens=50, temperature=0, format=""), timeout=10)
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/api/chat")
    assert "Authorization" not in request.headers
    assert request.json() == json.loads(fixture_bytes("ollama/request_stream.json"))


def test_stream_tool_call_gets_an_id_and_json_text_arguments(server: ReplayServer) -> None:
    body = ndjson("ollama/stream_tool_call_chunk.json", "ollama/stream_tool_call_final.json")
    server.queue(Reply(body=body, content_type=NDJSON))
    response = collect_sync(stream(server.base, "llama3.2", TOKYO, tools=TOOLS), timeout=10)
    (call,) = response.tool_calls
    assert call.function.name == "get_weather"
    assert call.function.arguments == '{"city":"Tokyo"}'
    assert call.parsed_arguments() == {"city": "Tokyo"}
    assert call.id.startswith("call_") and len(call.id) == 29
    assert response.finish_reason == "tool_calls"
    assert response.choices[0].native_finish_reason == "stop"
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (169, 15)
    assert server.requests[0].json() == json.loads(fixture_bytes("ollama/request_tools.json"))


def test_stream_thinking_becomes_reasoning_content(server: ReplayServer) -> None:
    # Lines in the shape of Ollama's OpenAPI ChatStreamEvent (no recording with thinking).
    body = (
        b'{"model":"qwen3","created_at":"2025-10-26T17:15:24.097767Z","message":{"role":"assistant",'
        b'"content":"","thinking":"The user wants"},"done":false}\n'
        b'{"model":"qwen3","created_at":"2025-10-26T17:15:24.109172Z","message":{"role":"assistant",'
        b'"content":"","thinking":" a count."},"done":false}\n'
        b'{"model":"qwen3","created_at":"2025-10-26T17:15:24.121485Z","message":{"role":"assistant",'
        b'"content":"1, 2, 3"},"done":false}\n'
        b'{"model":"qwen3","created_at":"2025-10-26T17:15:24.132802Z","message":{"role":"assistant",'
        b'"content":""},"done":true,"done_reason":"length","prompt_eval_count":9,"eval_count":12}\n'
    )
    server.queue(Reply(body=body, content_type=NDJSON, piece=40))
    response = collect_sync(stream(server.base, "qwen3", reasoning_effort="high"), timeout=10)
    assert response.reasoning_content == "The user wants a count."
    assert response.text == "1, 2, 3"
    assert response.finish_reason == "length"
    assert server.requests[0].json()["think"] == "high"


# --- non-streaming -------------------------------------------------------------------------


def test_non_streaming_text(server: ReplayServer) -> None:
    response = complete(server, fixture_bytes("ollama/response_chat.json"))
    assert response.text.startswith(
        "A joke about OpenTelemetry!\n\nWhy did the OpenTelemetry agent"
    )
    assert response.text.endswith("but I hope it brings a smile to your face!)")
    assert response.created == 1716580891  # 2024-05-24T20:01:31Z
    assert response.finish_reason == "stop"
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (17, 66)
    assert server.requests[0].json()["stream"] is False


def test_non_streaming_tool_call_and_the_next_turn(server: ReplayServer) -> None:
    first = complete(server, fixture_bytes("ollama/response_tool_calls.json"), TOKYO, tools=TOOLS)
    (call,) = first.tool_calls
    assert (call.function.name, call.parsed_arguments()) == ("get_weather", {"city": "Tokyo"})
    assert first.finish_reason == "tool_calls"
    assert first.usage is not None and first.usage.total_tokens == 187
    assert first.message is not None
    history = [
        *TOKYO,
        first.message,
        {"role": "tool", "tool_call_id": call.id, "content": "22C, clear"},
    ]
    complete(server, fixture_bytes("ollama/response_chat.json"), history, tools=TOOLS)
    assert server.requests[1].json()["messages"] == [
        *TOKYO,
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Tokyo"}}}],
        },
        {"role": "tool", "content": "22C, clear", "tool_name": "get_weather"},
    ]


# --- requests ------------------------------------------------------------------------------


def test_parameters_become_options_format_and_think(server: ReplayServer) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    complete(
        server,
        fixture_bytes("ollama/response_chat.json"),
        temperature=0.2,
        top_p=0.9,
        seed=42,
        stop=["\n\n"],
        max_completion_tokens=99,
        top_k=20,
        options={"num_ctx": 8192},
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}},
        reasoning_effort="none",
        keep_alive="10m",
        tool_choice="auto",
    )
    sent = server.requests[0].json()
    assert sent["options"] == {
        "temperature": 0.2,
        "top_p": 0.9,
        "seed": 42,
        "stop": ["\n\n"],
        "top_k": 20,
        "num_predict": 99,
        "num_ctx": 8192,
    }
    assert (sent["format"], sent["think"], sent["keep_alive"]) == (schema, False, "10m")
    assert "tool_choice" not in sent and "response_format" not in sent
    complete(
        server, fixture_bytes("ollama/response_chat.json"), response_format={"type": "json_object"}
    )
    assert server.requests[1].json()["format"] == "json"


def test_unsupported_parameters(server: ReplayServer) -> None:
    with pytest.raises(errors.UnsupportedParamsError) as caught:
        stream(server.base, tools=TOOLS, tool_choice="required")
    assert caught.value.param == "tool_choice"
    with pytest.raises(errors.UnsupportedParamsError) as caught:
        stream(server.base, logit_bias={"1": 2})
    assert caught.value.param == "logit_bias"
    assert server.requests == []
    complete(
        server,
        fixture_bytes("ollama/response_chat.json"),
        tools=TOOLS,
        tool_choice="required",
        logit_bias={"1": 2},
        drop_params=True,
    )
    sent = server.requests[0].json()
    assert sent["tools"] == TOOLS and "tool_choice" not in sent and "logit_bias" not in sent
    complete(server, fixture_bytes("ollama/response_chat.json"), tools=TOOLS, tool_choice="none")
    assert "tools" not in server.requests[1].json()


def test_images_are_sent_as_base64(server: ReplayServer) -> None:
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is in this image?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANS"}},
        ],
    }
    complete(server, fixture_bytes("ollama/response_chat.json"), [message])
    assert server.requests[0].json()["messages"] == [
        {"role": "user", "content": "what is in this image?", "images": ["iVBORw0KGgoAAAANS"]}
    ]
    remote = {
        **message,
        "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
    }
    with pytest.raises(errors.BadRequestError, match="base64"):
        stream(server.base, messages=[remote])


def test_base_url_from_ollama_host(server: ReplayServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_API_BASE", raising=False)
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{server.port}")  # no scheme, as Ollama's CLI
    server.queue(Reply(body=fixture_bytes("ollama/response_chat.json")))
    response = rxllm.completion("ollama", "llama3", messages=COUNT)
    assert response.finish_reason == "stop"
    assert server.requests[0].path == "/api/chat"


# --- embeddings ----------------------------------------------------------------------------


def test_embeddings(server: ReplayServer) -> None:
    server.queue(
        Reply(body=fixture_bytes("ollama/response_embed.json"), content_type="application/json")
    )
    response = rxllm.embedding(
        "ollama",
        "all-minilm",
        input=["Why is the sky blue?", "Why is the grass green?"],
        api_base=server.base,
        truncate=False,
    )
    assert response.vectors[0][:3] == [0.010071029, -0.0017594862, 0.05007221]
    assert response.vectors[1][-2:] == [0.09951512, 0.09072481]
    assert [len(v) for v in response.vectors] == [10, 10]
    assert (response.model, response.provider) == ("all-minilm", "ollama")
    (request,) = server.requests
    assert request.path == "/api/embed"
    assert request.json() == {
        "model": "all-minilm",
        "input": ["Why is the sky blue?", "Why is the grass green?"],
        "truncate": False,
    }


# --- errors and faults ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "name", "cls", "message"),
    [
        (
            400,
            "ollama/error_400_tools_unsupported.json",
            errors.BadRequestError,
            "registry.ollama.ai/library/gemma3:1b does not support tools",
        ),
        (
            500,
            "ollama/error.json",
            errors.InternalServerError,
            "the model failed to generate a response",
        ),
    ],
)
def test_error_bodies(
    server: ReplayServer, status: int, name: str, cls: type, message: str
) -> None:
    server.queue(Reply(status=status, body=fixture_bytes(name), content_type="application/json"))
    error = failure_of(stream(server.base, tools=TOOLS))
    assert type(error) is cls
    assert (error.provider, error.model, error.status_code, error.message) == (
        "ollama",
        "gemma3:1b",
        status,
        message,
    )


def test_error_line_mid_stream(server: ReplayServer) -> None:
    server.queue(
        Reply(body=fixture_bytes("ollama/stream_midstream_error.ndjson"), content_type=NDJSON)
    )
    error = failure_of(stream(server.base, "gemma4"))
    assert type(error) is errors.InternalServerError
    assert error.message == "an error was encountered while running the model"
    assert error.partial_text == " Yes.Ican"


def test_clean_close_before_done_is_a_truncation(server: ReplayServer) -> None:
    lines = fixture_bytes("ollama/stream_chat.ndjson").splitlines(keepends=True)
    server.queue(Reply(body=b"".join(lines[:5]), content_type=NDJSON))
    error = failure_of(stream(server.base))
    assert isinstance(error, errors.StreamTruncatedError)
    assert error.partial_text == "Okay, here we go"
