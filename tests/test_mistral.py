"""Mistral over real HTTP: recorded transcripts replayed byte for byte (``.chunks.txt``
recordings, which lack the SSE framing, are framed here as ``data: <line>`` events plus
``data: [DONE]``, the way Mistral's API sends them)."""

from __future__ import annotations

import json

import pytest

import rxllm
from rxllm import errors
from rxllm.streaming import collect_sync

from .conftest import API_KEY, failure_of, fixture_bytes
from .server import ReplayServer, Reply, sse

JOKE = [{"content": "Tell me a joke about OpenTelemetry", "role": "user"}]
WEATHER = [{"role": "user", "content": "What is the weather in San Francisco?"}]

STREAM_TEXT = (
    "Here's a light-hearted joke that combines OpenTelemetry with a bit of humor:\n\n"
    "Why did the OpenTelemetry trace cross the road?\n\n"
    "To get to the other service call, of course! But it got so caught up in gathering "
    "metadata, it didn't realize a bus had hit it! (I hope this brings a smile to your face.)"
)
THINKING = (
    "Okay, the user is asking how to cross the street. I know that crossing the street safely "
    "involves a few key steps: first, look both ways to check for oncoming traffic; second, use "
    "a crosswalk if one is available; third, obey any traffic signals or signs that may be "
    "present; and finally, proceed with caution until you have safely reached the other side. "
    "Let me compile this information into a clear and concise response."
)
STEPS = (
    "To cross the street safely, follow these steps:\n\n"
    "1. Look both ways to check for oncoming traffic.\n"
    "2. Use a crosswalk if one is available.\n"
    "3. Obey any traffic signals or signs that may be present.\n"
    "4. Proceed with caution until you have safely reached the other side."
)
THINKING_ANSWER = (
    f"{STEPS}\n\n```markdown\n{STEPS}\n```\n\nBy following these steps, you can ensure a safe "
    "crossing."
)


@pytest.fixture
def base(server: ReplayServer) -> str:
    return server.base + "/v1"


def stream(base: str, model: str = "mistral-tiny", messages: object = JOKE, **kw: object):  # type: ignore[no-untyped-def]
    return rxllm.completion(
        "mistral",
        model,
        messages=messages,  # type: ignore[arg-type]
        stream=True,
        api_key=API_KEY,
        api_base=base,
        **kw,  # type: ignore[arg-type]
    )


def framed(name: str) -> bytes:
    """A ``.chunks.txt`` recording as the SSE body it was recorded from."""
    return sse(*fixture_bytes(name).splitlines())


# --- streams -------------------------------------------------------------------------------


def test_stream_text_with_padding_and_usage_in_the_finish_chunk(
    server: ReplayServer, base: str
) -> None:
    server.queue(Reply(body=fixture_bytes("mistral/stream_text_usage.sse"), piece=211))
    response = collect_sync(stream(base), timeout=10)
    assert response.text == STREAM_TEXT
    assert response.id == "6dc321029f5d4aa5899c1b38c9657a61"
    assert (response.model, response.provider) == ("mistral-tiny", "mistral")
    assert response.finish_reason == "stop"
    assert response.choices[0].native_finish_reason == "stop"
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (11, 80)
    assert response.usage.total_tokens == 91
    assert response.reasoning_content is None


def test_request_matches_the_recorded_one(server: ReplayServer, base: str) -> None:
    server.queue(Reply(body=fixture_bytes("mistral/stream_text_usage.sse")))
    collect_sync(stream(base), timeout=10)
    (request,) = server.requests
    assert (request.method, request.path) == ("POST", "/v1/chat/completions")
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    # Mistral refuses unknown fields: no stream_options (usage comes with the last chunk).
    assert request.json() == json.loads(fixture_bytes("mistral/request_stream.json"))


def test_stream_thinking_parts_become_reasoning_content(server: ReplayServer, base: str) -> None:
    server.queue(Reply(body=fixture_bytes("mistral/stream_thinking.sse"), piece=500))
    chunks: list[rxllm.ChatChunk] = []
    chat = stream(base, model="magistral-medium-latest")
    response = rxllm.streaming.consume(chat, on_chunk=chunks.append).wait(10)
    assert response is not None
    assert response.reasoning_content == THINKING
    assert response.text == THINKING_ANSWER
    assert response.model == "magistral-medium-latest"
    assert response.finish_reason == "stop"
    assert response.usage is not None and response.usage.total_tokens == 242
    # Chunk by chunk: thinking parts arrive as reasoning deltas, never as text.
    assert chunks[2].choices[0].delta.reasoning_content == "Okay"
    assert chunks[2].choices[0].delta.content is None


def test_stream_tool_call_whole_in_one_chunk_without_index(server: ReplayServer, base: str) -> None:
    server.queue(Reply(body=framed("mistral/stream_tool_call.chunks.txt")))
    response = collect_sync(
        stream(base, model="mistral-small-latest", messages=WEATHER), timeout=10
    )
    (call,) = response.tool_calls
    assert (call.id, call.type, call.function.name) == ("gSIMJiOkT", "function", "weather")
    assert call.parsed_arguments() == {"location": "San Francisco"}
    assert response.finish_reason == "tool_calls"
    assert response.text == ""
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (124, 22)


def test_stream_tool_call_in_fragments(server: ReplayServer, base: str) -> None:
    server.queue(Reply(body=framed("mistral/stream_incremental_tool_call.chunks.txt")))
    response = collect_sync(stream(base, model="zai-glm-5-2", messages=WEATHER), timeout=10)
    (call,) = response.tool_calls
    assert (call.id, call.function.name) == ("chatcmpl-tool-9f149c74c42f265b", "webSearchTool")
    assert call.parsed_arguments() == {"query": "current Berlin weather"}
    assert response.finish_reason == "tool_calls"
    usage = response.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert (usage.total_tokens, usage.prompt_tokens_details.cached_tokens) == (185, 128)


def test_several_whole_tool_calls_get_their_own_indexes(server: ReplayServer, base: str) -> None:
    # Two calls delivered whole, without index, as Mistral does for parallel calls.
    call = '{"id":"%s","function":{"name":"weather","arguments":"{\\"location\\": \\"%s\\"}"}}'
    body = sse(
        '{"id":"a","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
        '"delta":{"content":null,"tool_calls":[' + call % ("one", "Paris") + "]}}]}",
        '{"id":"a","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
        '"delta":{"content":null,"tool_calls":[' + call % ("two", "Oslo") + "]},"
        '"finish_reason":"tool_calls"}]}',
    )
    server.queue(Reply(body=body))
    response = collect_sync(stream(base), timeout=10)
    assert [(c.id, c.parsed_arguments()) for c in response.tool_calls] == [
        ("one", {"location": "Paris"}),
        ("two", {"location": "Oslo"}),
    ]


# --- non-streaming -------------------------------------------------------------------------


def complete(
    base: str, body: bytes, server: ReplayServer, messages: object = JOKE, **kw: object
) -> rxllm.ChatResponse:
    server.queue(Reply(body=body, content_type="application/json"))
    return rxllm.completion(
        "mistral",
        "mistral-tiny",
        messages=messages,  # type: ignore[arg-type]
        api_key=API_KEY,
        api_base=base,
        **kw,  # type: ignore[arg-type]
    )


def test_non_streaming_text(server: ReplayServer, base: str) -> None:
    response = complete(base, fixture_bytes("mistral/response_text.json"), server)
    assert response.text.startswith("Here's a light-hearted, tech-themed joke related to Open")
    assert response.text.endswith("spread some positivity amidst the tech talk.)")
    assert response.id == "e9459fcd56c742e0875167c9926c6aae"
    assert response.finish_reason == "stop" and response.tool_calls == []
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (11, 96)
    assert "stream" not in server.requests[0].json()


def test_non_streaming_tool_call_without_type(server: ReplayServer, base: str) -> None:
    response = complete(base, fixture_bytes("mistral/response_tool_call.json"), server)
    (call,) = response.tool_calls
    assert (call.id, call.type, call.function.name) == ("gSIMJiOkT", "function", "weather")
    assert call.parsed_arguments() == {"location": "San Francisco"}
    assert response.finish_reason == "tool_calls"
    assert response.usage is not None and response.usage.total_tokens == 146


# --- requests ------------------------------------------------------------------------------


def test_parameters_are_translated_to_mistral_names(server: ReplayServer, base: str) -> None:
    complete(
        base,
        fixture_bytes("mistral/response_text.json"),
        server,
        seed=7,
        max_completion_tokens=64,
        safe_prompt=True,
        temperature=0.3,
        tool_choice="any",
    )
    sent = server.requests[0].json()
    assert {k: v for k, v in sent.items() if k not in ("model", "messages")} == {
        "random_seed": 7,
        "max_tokens": 64,
        "safe_prompt": True,
        "temperature": 0.3,
        "tool_choice": "any",
    }


def test_unknown_parameters_raise_or_are_dropped(server: ReplayServer, base: str) -> None:
    with pytest.raises(errors.UnsupportedParamsError) as caught:
        stream(base, user="u-1")
    assert (caught.value.provider, caught.value.param) == ("mistral", "user")
    assert server.requests == []
    complete(
        base, fixture_bytes("mistral/response_text.json"), server, user="u-1", drop_params=True
    )
    assert "user" not in server.requests[0].json()


def test_tool_results_go_back_in_mistral_shape(server: ReplayServer, base: str) -> None:
    first = complete(base, fixture_bytes("mistral/response_tool_call.json"), server)
    assistant = first.message
    assert assistant is not None
    history = [
        {"role": "user", "content": "What is the weather in San Francisco?", "name": "ann"},
        assistant,
        {"role": "tool", "tool_call_id": "gSIMJiOkT", "name": "weather", "content": "18C, fog"},
    ]
    server.queue(Reply(body=fixture_bytes("mistral/response_text.json")))
    rxllm.completion(
        "mistral", "mistral-small-latest", messages=history, api_key=API_KEY, api_base=base
    )
    assert server.requests[1].json()["messages"] == [
        # "name" is not a field of Mistral's user message (it answers 422 extra_forbidden)
        {"role": "user", "content": "What is the weather in San Francisco?"},
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "gSIMJiOkT",
                    "type": "function",
                    "function": {"name": "weather", "arguments": '{"location": "San Francisco"}'},
                }
            ],
        },
        {"role": "tool", "content": "18C, fog", "name": "weather", "tool_call_id": "gSIMJiOkT"},
    ]


def test_reasoning_is_not_sent_back(server: ReplayServer, base: str) -> None:
    history = [
        {"role": "user", "content": "How do I cross the street?"},
        {"role": "assistant", "content": STEPS, "reasoning_content": THINKING},
        {"role": "user", "content": "And at night?"},
    ]
    complete(base, fixture_bytes("mistral/response_text.json"), server, messages=history)
    sent = server.requests[0].json()["messages"]
    assert sent[1] == {"role": "assistant", "content": STEPS}


def test_image_parts_are_sent_as_image_url(server: ReplayServer, base: str) -> None:
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ],
    }
    complete(base, fixture_bytes("mistral/response_text.json"), server, messages=[message])
    assert server.requests[0].json()["messages"] == [message]


# --- embeddings ----------------------------------------------------------------------------


def test_embeddings(server: ReplayServer, base: str) -> None:
    server.queue(
        Reply(
            body=fixture_bytes("mistral/response_embedding.json"), content_type="application/json"
        )
    )
    response = rxllm.embedding(
        "mistral",
        "mistral-embed",
        input=["Hello", "World"],
        dimensions=5,
        api_key=API_KEY,
        api_base=base,
    )
    assert response.vectors == [
        [
            -0.0389404296875,
            0.048065185546875,
            0.07159423828125,
            0.00139617919921875,
            0.028350830078125,
        ],
        [
            -0.0535888671875,
            0.019500732421875,
            0.057464599609375,
            0.0029582977294921875,
            0.0467529296875,
        ],
    ]
    assert (response.model, response.provider) == ("mistral-embed", "mistral")
    assert response.usage is not None and response.usage.prompt_tokens == 16
    (request,) = server.requests
    assert request.path == "/v1/embeddings"
    assert request.json() == {
        "model": "mistral-embed",
        "input": ["Hello", "World"],
        "output_dimension": 5,
    }


# --- errors --------------------------------------------------------------------------------

# Real Mistral error bodies, as quoted in public issue threads (no recording was found):
# editor-code-assistant/eca#231 (2025-12), partITech/php-mistral#76 (2025-11),
# mistralai/platform-docs-public#7 (2024-01, the message is itself JSON text).
MISTRAL_ERRORS = [
    (
        422,
        b'{"object":"error","message":{"detail":[{"type":"extra_forbidden","loc":["body",'
        b'"max_completion_tokens"],"msg":"Extra inputs are not permitted","input":32000}]},'
        b'"type":"invalid_request_error","param":null,"code":null}',
        errors.UnsupportedParamsError,
        None,
        "max_completion_tokens",
        "max_completion_tokens: Extra inputs are not permitted",
    ),
    (
        422,
        b'{"object":"Error","detail":[{"type":"extra_forbidden","loc":["body","tools"],'
        b'"msg":"Extra inputs are not permitted","input":[]}],"message":[{"type":"extra_forbidden",'
        b'"loc":["body","tools"],"msg":"Extra inputs are not permitted","input":[]}],'
        b'"type":"invalid_request_error","code":3001}',
        errors.UnsupportedParamsError,
        "3001",
        "tools",
        "tools: Extra inputs are not permitted",
    ),
    (
        422,
        b'{"object":"error","message":"{\\"detail\\":[{\\"type\\":\\"extra_forbidden\\",\\"loc\\"'
        b':[\\"body\\",\\"frequency_penalty\\"],\\"msg\\":\\"Extra inputs are not permitted\\",'
        b'\\"input\\":0.0,\\"url\\":\\"https://errors.pydantic.dev/2.5/v/extra_forbidden\\"}]}",'
        b'"type":"internal_error_proxy","param":null,"code":"1000"}',
        errors.UnsupportedParamsError,
        "1000",
        "frequency_penalty",
        "frequency_penalty: Extra inputs are not permitted",
    ),
    (
        503,
        b"<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>",
        errors.ServiceUnavailableError,
        None,
        None,
        "503 Service Temporarily Unavailable",
    ),
]


@pytest.mark.parametrize(
    ("status", "body", "cls", "code", "param", "message"),
    MISTRAL_ERRORS,
    ids=["message-detail", "top-level-detail", "message-json-text", "html-503"],
)
def test_error_bodies(
    server: ReplayServer,
    base: str,
    status: int,
    body: bytes,
    cls: type,
    code: str | None,
    param: str | None,
    message: str,
) -> None:
    server.queue(Reply(status=status, body=body, content_type="application/json"))
    error = failure_of(stream(base))
    assert type(error) is cls
    assert (error.provider, error.model, error.status_code) == ("mistral", "mistral-tiny", status)
    assert (error.code, error.param, error.message) == (code, param, message)
