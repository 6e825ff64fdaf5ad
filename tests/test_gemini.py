"""Gemini over real HTTP: recorded transcripts replayed byte for byte."""

from __future__ import annotations

import json
from typing import Any

import pytest

import rxllm
from rxllm import errors
from rxllm._api import prepare
from rxllm._sse import SSEDecoder
from rxllm.streaming import collect_sync

from .conftest import API_KEY, fixture_bytes
from .server import ReplayServer, Reply

MODEL = "gemini-2.5-flash"
USER = [{"role": "user", "content": "What is the capital of France?"}]


def stream(server: ReplayServer, messages: list[Any] = USER, **kwargs: Any) -> rxllm.ChatStream:
    return rxllm.completion(
        "gemini",
        kwargs.pop("model", MODEL),
        messages=messages,
        stream=True,
        api_key=API_KEY,
        api_base=server.base,
        **kwargs,
    )


def sent_body(messages: list[Any], model: str = MODEL, **params: Any) -> dict[str, Any]:
    """The JSON body rxllm would send (built, not sent: request translation only)."""
    _, _, request = prepare(
        "gemini", model, messages=messages, stream=False, api_key=API_KEY, params=params
    )
    assert request.body is not None
    body: dict[str, Any] = json.loads(request.body)
    return body


def failure(chat: rxllm.ChatStream) -> tuple[Exception, list[rxllm.ChatChunk]]:
    failures: list[Exception] = []
    chunks: list[rxllm.ChatChunk] = []
    handle = rxllm.streaming.consume(chat, on_chunk=chunks.append, on_error=failures.append)
    assert handle.wait(10) is None
    (error,) = failures
    return error, chunks


# --- streaming ---------------------------------------------------------------------------------


def test_stream_text_over_crlf_framing(server: ReplayServer) -> None:
    server.queue(Reply(body=fixture_bytes("gemini/stream_text.sse"), piece=37))
    response = collect_sync(stream(server, model="gemini-2.0-flash-exp"), timeout=10)
    assert response.text == "The capital of France is Paris.\n"
    assert response.id == "w1peaMz6INOvnvgPgYfPiQY"
    assert response.model == "gemini-2.0-flash-exp"
    assert response.provider == "gemini"
    assert (response.finish_reason, response.choices[0].native_finish_reason) == ("stop", "STOP")
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (13, 8)
    assert response.usage.total_tokens == 21
    (request,) = server.requests
    assert request.method == "POST"
    assert request.path == "/v1beta/models/gemini-2.0-flash-exp:streamGenerateContent"
    assert request.query == {"alt": "sse"}
    assert request.headers["x-goog-api-key"] == API_KEY
    assert API_KEY not in request.path and API_KEY not in json.dumps(request.query)
    assert "key" not in request.query and "Authorization" not in request.headers
    assert request.json() == {
        "contents": [{"role": "user", "parts": [{"text": "What is the capital of France?"}]}]
    }


def test_usage_only_on_the_finished_chunk(server: ReplayServer) -> None:
    server.queue(Reply(body=fixture_bytes("gemini/stream_text.sse")))
    chunks: list[rxllm.ChatChunk] = []
    rxllm.streaming.consume(stream(server), on_chunk=chunks.append).wait(10)
    assert [c.choices[0].delta.content for c in chunks] == [
        "The",
        " capital of France",
        " is Paris.\n",
    ]
    assert [c.usage is not None for c in chunks] == [False, False, True]
    assert chunks[0].choices[0].delta.role == "assistant"


def test_stream_function_call(server: ReplayServer) -> None:
    server.queue(Reply(body=fixture_bytes("gemini/stream_function_call.sse")))
    response = collect_sync(stream(server), timeout=10)
    (call,) = response.tool_calls
    assert call.function.name == "get_capital"
    assert call.parsed_arguments() == {"country": "France"}
    assert call.id  # Gemini sends none: one is made up, unique per response
    assert (response.finish_reason, response.choices[0].native_finish_reason) == (
        "tool_calls",
        "STOP",
    )
    assert response.text == ""
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (52, 5)


def test_stream_thought_signature_round_trip(server: ReplayServer) -> None:
    server.queue(
        Reply(body=fixture_bytes("gemini/stream_function_call_thought_signature.sse"), piece=500)
    )
    response = collect_sync(stream(server, model="gemini-3-pro-preview"), timeout=10)
    (call,) = response.tool_calls
    assert (call.function.name, call.parsed_arguments()) == ("get_country", {})
    assert call.provider_fields is not None
    signature = call.provider_fields["thought_signature"]
    assert signature.startswith("EpwICpkIAXLI2nxlU6gsWZaZHRYkX1orzuM8vSUF")
    assert signature.endswith("7NoL5owonoBDAXOk15QuFyU=") and len(signature) == 1408
    assert response.finish_reason == "tool_calls"  # the finishReason came in a later event
    usage = response.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (29, 212, 241)
    assert usage.completion_tokens_details.reasoning_tokens == 202

    body = sent_body(
        [
            {"role": "user", "content": "Which country is Paris in?"},
            response.message,
            {"role": "tool", "tool_call_id": call.id, "content": '{"country": "France"}'},
        ],
        model="gemini-3-pro-preview",
    )
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Which country is Paris in?"}]},
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get_country", "args": {}}, "thoughtSignature": signature}
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_country", "response": {"country": "France"}}}
            ],
        },
    ]


def test_stream_thought_summaries_are_reasoning(server: ReplayServer) -> None:
    server.queue(Reply(body=fixture_bytes("gemini/stream_thinking.sse"), piece=1000))
    response = collect_sync(stream(server, reasoning_effort="medium"), timeout=10)
    reasoning = response.reasoning_content
    assert reasoning is not None
    assert reasoning.startswith("**Clarifying User Goals**\n\nI'm currently focused on defining")
    assert "**Crafting Safe Instructions**" in reasoning
    assert reasoning.endswith("regardless of specific circumstances or locations.\n\n\n")
    assert response.text.startswith(
        "This is a great question! Safely crossing the street is all about being aware and "
        "predictable."
    )
    assert response.text.endswith("Always assume a driver might not see you.")
    assert "Clarifying User Goals" not in response.text
    assert response.finish_reason == "stop"
    usage = response.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        34,
        469 + 787,
        1290,
    )
    assert usage.completion_tokens_details.reasoning_tokens == 787
    message = response.message
    assert message is not None and message.provider_fields is not None
    signature = message.provider_fields["thought_signature"]
    assert signature.startswith("CiIB0e2Kb6Syj1a961EfbWv4W5C8RgAA/hGleV9V")
    assert signature.endswith("TiOIFZ1EgMKlqm/dH8k=")
    assert server.requests[0].json()["generationConfig"] == {
        "thinkingConfig": {"thinkingBudget": 8192, "includeThoughts": True}
    }
    # Next turn: the answer goes back with its signature on its (first) text part.
    body = sent_body([*USER, message, {"role": "user", "content": "Thanks"}])
    assert body["contents"][1] == {
        "role": "model",
        "parts": [{"text": response.text, "thoughtSignature": signature}],
    }


def test_request_matches_the_recorded_tools_request() -> None:
    recorded = json.loads(fixture_bytes("gemini/request_tools.json"))
    tool = recorded["tools"][0]["functionDeclarations"][0]
    body = sent_body(
        [{"role": "user", "content": "Two names for a pet pelican"}],
        safety_settings=recorded["safetySettings"],
        tools=[
            {
                "type": "function",
                "function": {"name": tool["name"], "parameters": tool["parameters"]},
            }
        ],
    )
    assert body["contents"] == recorded["contents"]
    assert body["safetySettings"] == recorded["safetySettings"]
    # Same declaration; the schema goes in parametersJsonSchema (full JSON Schema), and a
    # missing description is left out rather than sent as null.
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {"name": "pelican_name_generator", "parametersJsonSchema": tool["parameters"]}
            ]
        }
    ]


# --- non-streaming -----------------------------------------------------------------------------


def test_non_streaming_text(server: ReplayServer) -> None:
    server.queue(
        Reply(body=fixture_bytes("gemini/response_text.json"), content_type="application/json")
    )
    response = rxllm.completion(
        model="gemini/gemini-2.0-flash",
        messages=[{"role": "user", "content": "Where is Google's headquarters?"}],
        api_key=API_KEY,
        api_base=server.base,
    )
    assert response.text == (
        "Google's headquarters, also known as the Googleplex, is located in "
        "**Mountain View, California**.\n"
    )
    assert response.model == "gemini-2.0-flash"
    assert response.finish_reason == "stop"
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (7, 22)
    assert response.usage.total_tokens == 29
    (request,) = server.requests
    assert request.path == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert request.query == {} and request.headers["x-goog-api-key"] == API_KEY


def test_non_streaming_thought_summary_and_function_call(server: ReplayServer) -> None:
    server.queue(
        Reply(
            body=fixture_bytes("gemini/response_function_call.json"),
            content_type="application/json",
        )
    )
    response = rxllm.completion(
        "gemini", MODEL, messages=USER, api_key=API_KEY, api_base=server.base
    )
    assert response.id == "38CHaLjMG6TujrEPtvTiuQk" and response.model == "gemini-2.5-pro"
    assert response.reasoning_content is not None
    assert response.reasoning_content.startswith(
        "**Thinking Through the New Year's Eve Calculation**"
    )
    assert response.reasoning_content.endswith("I think this will all work.\n")
    assert response.text == ""
    (call,) = response.tool_calls
    assert (call.function.name, call.parsed_arguments()) == ("now", {})
    assert call.provider_fields is not None
    assert call.provider_fields["thought_signature"].startswith("CtQOAVSoXO74PmYr9AFurEIJ")
    assert call.provider_fields["thought_signature"].endswith("gwXDPHYhBUvGlQbIC1+Zdw==")
    assert (response.finish_reason, response.choices[0].native_finish_reason) == (
        "tool_calls",
        "STOP",
    )
    usage = response.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (38, 509, 547)
    assert usage.completion_tokens_details.reasoning_tokens == 501


# --- multi-turn --------------------------------------------------------------------------------


def test_tool_round_trip_serialises_calls_and_results(server: ReplayServer) -> None:
    server.queue(Reply(body=fixture_bytes("gemini/stream_function_call.sse")))
    first = collect_sync(stream(server), timeout=10)
    (call,) = first.tool_calls
    body = sent_body(
        [
            {"role": "system", "content": "Answer with one word."},
            *USER,
            first.message,
            {"role": "tool", "tool_call_id": call.id, "content": "Paris"},
            {"role": "user", "content": "And Italy?"},
        ]
    )
    assert body["systemInstruction"] == {"parts": [{"text": "Answer with one word."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "What is the capital of France?"}]},
        {
            "role": "model",
            "parts": [{"functionCall": {"name": "get_capital", "args": {"country": "France"}}}],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_capital", "response": {"result": "Paris"}}},
                {"text": "And Italy?"},
            ],
        },
    ]


def test_parallel_tool_results_go_back_in_one_turn() -> None:
    assistant = {
        "role": "assistant",
        "tool_calls": [
            {"id": "a", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}},
            {"id": "b", "type": "function", "function": {"name": "g", "arguments": ""}},
        ],
    }
    body = sent_body(
        [
            *USER,
            assistant,
            {"role": "tool", "tool_call_id": "b", "content": "[1, 2]"},
            {"role": "tool", "tool_call_id": "a", "content": '{"ok": true}'},
        ]
    )
    assert body["contents"][1:] == [
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "f", "args": {"x": 1}}},
                {"functionCall": {"name": "g", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "g", "response": {"result": [1, 2]}}},
                {"functionResponse": {"name": "f", "response": {"ok": True}}},
            ],
        },
    ]


# --- request translation -----------------------------------------------------------------------


def test_generation_config_tools_and_tool_choice() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_capital",
                "description": "The capital of a country",
                "parameters": {
                    "type": "object",
                    "properties": {"country": {"type": "string"}},
                    "required": ["country"],
                    "additionalProperties": False,
                },
            },
        },
        {"googleSearch": {}},
    ]
    body = sent_body(
        USER,
        temperature=0.2,
        top_p=0.9,
        top_k=40,
        max_tokens=256,
        stop=["END"],
        n=2,
        seed=7,
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "get_capital"}},
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "c", "schema": {"type": "object"}},
        },
    )
    assert body["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "topK": 40,
        "candidateCount": 2,
        "seed": 7,
        "maxOutputTokens": 256,
        "stopSequences": ["END"],
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object"},
    }
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_capital",
                    "description": "The capital of a country",
                    "parametersJsonSchema": tools[0]["function"]["parameters"],
                }
            ]
        },
        {"googleSearch": {}},
    ]
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_capital"]}
    }


@pytest.mark.parametrize(
    ("choice", "mode"), [("auto", "AUTO"), ("none", "NONE"), ("required", "ANY")]
)
def test_tool_choice_modes(choice: str, mode: str) -> None:
    assert sent_body(USER, tool_choice=choice)["toolConfig"] == {
        "functionCallingConfig": {"mode": mode}
    }


@pytest.mark.parametrize(
    ("model", "effort", "config"),
    [
        ("gemini-2.5-flash", "low", {"thinkingBudget": 1024, "includeThoughts": True}),
        ("gemini-2.5-flash", "none", {"thinkingBudget": 0}),
        ("gemini-3-pro-preview", "high", {"thinkingLevel": "high", "includeThoughts": True}),
    ],
)
def test_reasoning_effort(model: str, effort: str, config: dict[str, Any]) -> None:
    body = sent_body(USER, model=model, reasoning_effort=effort)
    assert body["generationConfig"] == {"thinkingConfig": config}


def test_images_inline_or_by_reference() -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png?size=2"}},
    ]
    body = sent_body([{"role": "user", "content": content}])
    assert body["contents"][0]["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
        {"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/cat.png?size=2"}},
    ]


def test_unsupported_params_raise_or_are_dropped() -> None:
    with pytest.raises(errors.UnsupportedParamsError) as caught:
        sent_body(USER, logit_bias={"1": 2})
    assert caught.value.provider == "gemini" and caught.value.param == "logit_bias"
    _, _, request = prepare(
        "gemini",
        MODEL,
        messages=USER,
        stream=False,
        api_key=API_KEY,
        drop_params=True,
        params={"logit_bias": {"1": 2}, "temperature": 0.5},
    )
    assert request.body is not None
    assert json.loads(request.body)["generationConfig"] == {"temperature": 0.5}


def test_registry_row_and_environment_keys(
    server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = rxllm.providers.provider_info("gemini")
    assert info.default_api_base == "https://generativelanguage.googleapis.com"
    assert info.env_keys == ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    assert (info.tools, info.vision, info.reasoning, info.embeddings) == (True, True, True, True)
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "google-key")
    for expected in ("google-key", "gemini-key"):
        server.queue(Reply(body=fixture_bytes("gemini/stream_text.sse")))
        chat = rxllm.completion("gemini", MODEL, messages=USER, stream=True, api_base=server.base)
        collect_sync(chat, timeout=10)
        assert server.requests[-1].headers["x-goog-api-key"] == expected
        monkeypatch.setenv("GEMINI_API_KEY", "gemini-key")  # the first variable wins


# --- the end of a stream -----------------------------------------------------------------------


def _events(name: str) -> list[bytes]:
    return [e + b"\r\n\r\n" for e in fixture_bytes(name).split(b"\r\n\r\n") if e.strip()]


def test_clean_close_before_a_finish_reason_is_a_truncation(server: ReplayServer) -> None:
    body = b"".join(_events("gemini/stream_text.sse")[:2])  # no finishReason yet
    server.queue(Reply(body=body))
    error, _ = failure(stream(server))
    assert isinstance(error, errors.StreamTruncatedError)
    assert error.partial_text == "The capital of France"
    assert (error.provider, error.model) == ("gemini", MODEL)


def test_dropped_connection_is_a_truncation_with_partial_text(server: ReplayServer) -> None:
    body = fixture_bytes("gemini/stream_thinking.sse")
    cut = body.index(b'"text": " guide that is widely taught')  # mid-event, in the answer
    server.queue(Reply(body=body, drop_after=cut, piece=900))
    error, chunks = failure(stream(server))
    assert isinstance(error, errors.StreamTruncatedError)
    assert error.partial_text.startswith("This is a great question!")
    assert error.partial_response is not None
    assert error.partial_response.reasoning_content is not None
    assert chunks and all(c.usage is None for c in chunks)


def test_blocked_prompt_is_a_content_filter_finish(server: ReplayServer) -> None:
    # The documented shape of a blocked prompt (no candidates, promptFeedback.blockReason);
    # no real recording of one exists among the fixtures.
    body = (
        b'data: {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},'
        b'"usageMetadata": {"promptTokenCount": 9,"totalTokenCount": 9},'
        b'"modelVersion": "gemini-2.5-flash","responseId": "blocked-1"}\r\n\r\n'
    )
    server.queue(Reply(body=body))
    response = collect_sync(stream(server), timeout=10)
    assert (response.finish_reason, response.choices[0].native_finish_reason) == (
        "content_filter",
        "PROHIBITED_CONTENT",
    )
    assert response.text == "" and response.usage is not None
    assert response.usage.prompt_tokens == 9


# --- errors ------------------------------------------------------------------------------------

ERROR_CASES = [
    (
        "gemini/error_400_api_key_invalid.json",
        400,
        errors.AuthenticationError,
        "API_KEY_INVALID",
        None,
    ),
    (
        "gemini/error_403_permission_denied.json",
        403,
        errors.PermissionDeniedError,
        "PERMISSION_DENIED",
        None,
    ),
    (
        "gemini/error_429_resource_exhausted.json",
        429,
        errors.RateLimitError,
        "RATE_LIMIT_EXCEEDED",
        None,
    ),
    ("gemini/error_429_retry_info.json", 429, errors.RateLimitError, "RESOURCE_EXHAUSTED", 34.4),
]


@pytest.mark.parametrize(
    ("name", "status", "cls", "code", "retry_after"),
    ERROR_CASES,
    ids=[c[0].split("/")[1] for c in ERROR_CASES],
)
def test_recorded_errors_map_to_typed_errors(
    server: ReplayServer,
    name: str,
    status: int,
    cls: type[errors.LLMError],
    code: str,
    retry_after: float | None,
) -> None:
    body = fixture_bytes(name)
    for _ in range(2):
        server.queue(Reply(status=status, body=body, content_type="application/json"))
    with pytest.raises(cls) as caught:
        rxllm.completion("gemini", MODEL, messages=USER, api_key=API_KEY, api_base=server.base)
    streamed, _ = failure(stream(server))
    for error in (caught.value, streamed):
        assert type(error) is cls
        assert (error.provider, error.model, error.status_code) == ("gemini", MODEL, status)
        assert error.code == code
        assert error.retry_after == retry_after
        assert error.message == json.loads(body)["error"]["message"]
        assert API_KEY not in str(error) and API_KEY not in repr(error)


def _google_error(code: int, status: str, message: str) -> bytes:
    """The documented google.rpc.Status error shape, for statuses with no real recording."""
    return json.dumps({"error": {"code": code, "message": message, "status": status}}).encode()


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (404, _google_error(404, "NOT_FOUND", "models/nope is not found"), errors.NotFoundError),
        (
            400,
            _google_error(
                400,
                "INVALID_ARGUMENT",
                "The input token count (1200000) exceeds the maximum number of tokens allowed "
                "(1048576).",
            ),
            errors.ContextWindowExceededError,
        ),
        (
            500,
            _google_error(500, "INTERNAL", "An internal error has occurred."),
            errors.InternalServerError,
        ),
        (
            503,
            _google_error(503, "UNAVAILABLE", "The model is overloaded."),
            errors.ServiceUnavailableError,
        ),
        (502, b"<html><body>Bad Gateway</body></html>", errors.InternalServerError),
    ],
)
def test_other_statuses(
    server: ReplayServer, status: int, body: bytes, cls: type[errors.LLMError]
) -> None:
    server.queue(Reply(status=status, body=body, headers={"retry-after": "5"}))
    with pytest.raises(cls) as caught:
        rxllm.completion("gemini", MODEL, messages=USER, api_key=API_KEY, api_base=server.base)
    assert type(caught.value) is cls and caught.value.status_code == status
    assert caught.value.retry_after == 5.0


def test_bare_json_error_mid_stream(server: ReplayServer) -> None:
    body = fixture_bytes("gemini/stream_midstream_error.txt")
    server.queue(Reply(body=body, piece=100))
    error, chunks = failure(stream(server))
    assert type(error) is errors.InternalServerError
    assert (error.code, error.message) == ("CANCELLED", "The operation was cancelled.")
    assert error.partial_text == "First Second "
    assert [c.choices[0].delta.content for c in chunks] == ["First ", "Second "]


def test_bare_json_error_survives_every_cut() -> None:
    body = fixture_bytes("gemini/stream_midstream_error.txt")

    def decode(pieces: list[bytes]) -> list[Any]:
        decoder = SSEDecoder()
        events = [e for piece in pieces for e in decoder.feed(piece)]
        return events + decoder.close()

    whole = decode([body])
    assert len(whole) == 3 and json.loads(whole[2].data)["error"]["status"] == "CANCELLED"
    for position in range(1, len(body)):
        assert decode([body[:position], body[position:]]) == whole


# --- embeddings --------------------------------------------------------------------------------


def test_batch_embeddings_request_and_response(server: ReplayServer) -> None:
    server.queue(
        Reply(
            body=fixture_bytes("gemini/response_batch_embed.json"),
            content_type="application/json",
        )
    )
    response = rxllm.embedding(
        "gemini",
        "gemini-embedding-2",
        input=["First text", "Second text"],
        dimensions=768,
        api_key=API_KEY,
        api_base=server.base,
    )
    (request,) = server.requests
    assert request.path == "/v1beta/models/gemini-embedding-2:batchEmbedContents"
    assert request.body == fixture_bytes("gemini/request_batch_embed.json")  # byte for byte
    assert request.headers["x-goog-api-key"] == API_KEY and not request.query
    first, second = response.vectors
    assert len(first) == len(second) == 768
    assert first[:3] == [-0.011345503, -0.011202878, 0.05836822]
    assert second[-2:] == [-0.022146842, -0.0006047033]
    assert response.provider == "gemini" and response.model == "gemini-embedding-2"
    assert response.usage is not None and response.usage.prompt_tokens == 4


async def test_aembedding_errors_and_params(server: ReplayServer) -> None:
    server.queue(
        Reply(
            status=400,
            body=fixture_bytes("gemini/error_400_api_key_invalid.json"),
            content_type="application/json",
        )
    )
    with pytest.raises(errors.AuthenticationError):
        await rxllm.aembedding(
            "gemini", "gemini-embedding-001", input="x", api_key=API_KEY, api_base=server.base
        )
    with pytest.raises(errors.UnsupportedParamsError):
        await rxllm.aembedding(
            "gemini", "gemini-embedding-001", input="x", user="u", api_key=API_KEY
        )
    _, _, request = rxllm._api.prepare_embedding(
        "gemini",
        "gemini-embedding-001",
        input="hello",
        api_key=API_KEY,
        params={"task_type": "RETRIEVAL_QUERY"},
    )
    assert request.body is not None
    assert json.loads(request.body) == {
        "requests": [
            {
                "model": "models/gemini-embedding-001",
                "content": {"parts": [{"text": "hello"}]},
                "taskType": "RETRIEVAL_QUERY",
            }
        ]
    }


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("OTHER", "stop"),
    ],
)
def test_finish_reasons(server: ReplayServer, reason: str, finish: str) -> None:
    # The recorded response with its finishReason swapped for each value the API documents.
    body = fixture_bytes("gemini/response_text.json").replace(
        b'"finishReason": "STOP"', b'"finishReason": "%s"' % reason.encode()
    )
    server.queue(Reply(body=body, content_type="application/json"))
    response = rxllm.completion(
        "gemini", MODEL, messages=USER, api_key=API_KEY, api_base=server.base
    )
    assert (response.finish_reason, response.choices[0].native_finish_reason) == (finish, reason)
