"""The official `openai` and `anthropic` SDKs against `rxllm serve`, a real subprocess whose
upstreams replay recorded OpenAI and Anthropic transcripts (tests/gateway/conftest.py)."""

from __future__ import annotations

import json

import anthropic
import openai
import pytest

from ..conftest import fixture_bytes
from .conftest import Gateway

pytestmark = pytest.mark.timeout(60)

#: The recorded OpenAI answer (openai/stream_text_usage.sse and response_text.json).
WEATHER_TEXT = (
    "I'm unable to provide real-time weather updates. To get the current weather in San "
    "Francisco, I recommend checking a reliable weather website or a weather app."
)
USER = [{"role": "user", "content": "What's the weather like in San Francisco?"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the weather of a city",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}


def recorded_text(name: str) -> str:
    """The text of a recorded OpenAI stream, read straight from its frames."""
    parts = []
    for line in fixture_bytes(name).decode().splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:])["choices"]:
                parts.append(choice["delta"].get("content") or "")  # noqa: PERF401
    return "".join(parts)


def recorded_tool_arguments(name: str) -> dict[int, str]:
    calls: dict[int, str] = {}
    for line in fixture_bytes(name).decode().splitlines():
        if line.startswith("data: {"):
            for choice in json.loads(line[6:])["choices"]:
                for call in choice["delta"].get("tool_calls") or []:
                    arguments = call.get("function", {}).get("arguments") or ""
                    calls[call["index"]] = calls.get(call["index"], "") + arguments
    return calls


def anthropic_recorded(name: str) -> dict[str, str]:
    """Text, thinking and signature of a recorded Anthropic stream."""
    found = {"text": "", "thinking": "", "signature": "", "partial_json": ""}
    for line in fixture_bytes(name).decode().splitlines():
        if line.startswith("data: {"):
            event = json.loads(line[6:])
            delta = event.get("delta") or {}
            for key in found:
                found[key] += delta.get(key) or ""
    return found


@pytest.fixture
def client(gateway: Gateway, upstream: object) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url("/v1"), api_key="anything", max_retries=0)


@pytest.fixture
def aclient(gateway: Gateway, upstream: object) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=gateway.url("/v1"), api_key="anything", max_retries=0)


@pytest.fixture
def claude(gateway: Gateway, upstream: object) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.url(""), api_key="anything", max_retries=0)


# --- openai: chat completions ---------------------------------------------------------------


def test_create_without_streaming(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=USER)
    completion = raw.parse()
    expected = json.loads(fixture_bytes("openai/response_text.json"))
    assert completion.choices[0].message.content == expected["choices"][0]["message"]["content"]
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == expected["usage"]["prompt_tokens"]
    assert raw.headers["x-request-id"].startswith("req_")


def test_create_streaming_passes_every_chunk(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o", messages=USER, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == recorded_text("openai/stream_text_usage.sse") == WEATHER_TEXT
    assert all(c.usage is None for c in chunks)  # the client did not ask for usage
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_include_usage_is_honoured(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o",
            messages=USER,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.total_tokens > 0
    assert [c for c in chunks[:-1] if c.usage is not None] == []


def test_stream_helper_with_tools(client: openai.OpenAI) -> None:
    question = [{"role": "user", "content": "Use the weather tool for Boston"}]
    with client.chat.completions.stream(
        model="gpt-4o",
        messages=question,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert calls is not None and len(calls) == 1
    expected = recorded_tool_arguments("openai/stream_tool_call_usage.sse")
    assert calls[0].function.arguments == expected[0]
    assert json.loads(calls[0].function.arguments)
    assert "tool_calls.function.arguments.done" in events
    assert final.choices[0].finish_reason == "tool_calls"


def test_parallel_tool_calls_stream(client: openai.OpenAI) -> None:
    question = [{"role": "user", "content": "parallel weather please"}]
    with client.chat.completions.stream(
        model="gpt-4o",
        messages=question,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    ) as stream:
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    expected = recorded_tool_arguments("openai/stream_parallel_tool_calls.sse")
    assert [c.function.arguments for c in calls] == [expected[i] for i in sorted(expected)]
    assert len(calls) >= 2


def test_tools_without_streaming(client: openai.OpenAI) -> None:
    question = [{"role": "user", "content": "Use the weather tool"}]
    completion = client.chat.completions.create(
        model="gpt-4o",
        messages=question,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    expected = json.loads(fixture_bytes("openai/response_tool_calls.json"))
    got = completion.choices[0].message.tool_calls or []
    want = expected["choices"][0]["message"]["tool_calls"]
    assert [c.function.arguments for c in got] == [c["function"]["arguments"] for c in want]


async def test_async_client_streams(aclient: openai.AsyncOpenAI) -> None:
    stream = await aclient.chat.completions.create(model="gpt-4o", messages=USER, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == WEATHER_TEXT
    completion = await aclient.chat.completions.create(model="gpt-4o", messages=USER)
    assert completion.choices[0].message.content
    await aclient.close()


def test_chat_completions_without_v1_prefix(gateway: Gateway, upstream: object) -> None:
    client = openai.OpenAI(base_url=gateway.url(""), api_key="x", max_retries=0)
    completion = client.chat.completions.create(model="gpt-4o", messages=USER)
    assert completion.choices[0].message.content


def test_an_anthropic_upstream_answers_openai_clients(client: openai.OpenAI) -> None:
    chunks = list(client.chat.completions.create(model="claude", messages=USER, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == anthropic_recorded("anthropic/stream_text.sse")["text"]


# --- openai: embeddings, models, errors ------------------------------------------------------


def test_embeddings(client: openai.OpenAI) -> None:
    result = client.embeddings.create(model="embed", input=["hello", "world"])
    expected = json.loads(fixture_bytes("openai/response_embedding.json"))
    assert [d.embedding for d in result.data] == [d["embedding"] for d in expected["data"]]


def test_models_list(client: openai.OpenAI) -> None:
    assert {m.id for m in client.models.list()} >= {"gpt-4o", "claude", "embed"}


def test_unknown_model_is_not_found(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=USER)
    assert caught.value.code == "model_not_found"
    assert "no-such-model" in caught.value.message


def test_upstream_rate_limit_reaches_the_client_typed(client: openai.OpenAI) -> None:
    question = [{"role": "user", "content": "fail429 now"}]
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=question, stream=True)
    assert caught.value.code == "rate_limit_exceeded"
    assert "sk-upstream" not in str(caught.value.body)


def test_unsupported_parameter_is_a_bad_request(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(  # Anthropic's API takes no such parameter
            model="claude", messages=USER, extra_body={"no_such_parameter": 1}
        )
    assert "no_such_parameter" in caught.value.message


def test_mid_stream_failure_is_an_error_event(client: openai.OpenAI) -> None:
    question = [{"role": "user", "content": "cut this short"}]
    stream = client.chat.completions.create(model="gpt-4o", messages=question, stream=True)
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            received.append(chunk)  # noqa: PERF402
    assert received  # what came before the failure was passed on
    assert "connection broke mid-response" in caught.value.message


# --- anthropic -------------------------------------------------------------------------------


def test_anthropic_create(claude: anthropic.Anthropic) -> None:
    message = claude.messages.create(model="claude", max_tokens=100, messages=USER)  # type: ignore[arg-type]
    expected = json.loads(fixture_bytes("anthropic/response_text.json"))
    assert message.content[0].type == "text"
    assert message.content[0].text == expected["content"][0]["text"]
    assert message.stop_reason == expected["stop_reason"]


def test_anthropic_stream_text(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model="claude", max_tokens=100, messages=USER) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == anthropic_recorded("anthropic/stream_text.sse")["text"]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_anthropic_stream_tool_use(claude: anthropic.Anthropic) -> None:
    tools = [
        {
            "name": "get_weather",
            "description": "Get the weather",
            "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
        }
    ]
    question = [{"role": "user", "content": "Use the weather tool for Paris"}]
    with claude.messages.stream(
        model="claude",
        max_tokens=200,
        messages=question,
        tools=tools,  # type: ignore[arg-type]
    ) as stream:
        final = stream.get_final_message()
    uses = [block for block in final.content if block.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [
        ("get_weather", {"location": "San Francisco, CA", "unit": "celsius"}),
        ("get_time", {"timezone": "America/Los_Angeles"}),
    ]
    recorded = fixture_bytes("anthropic/stream_tool_use.sse").decode()
    assert all(u.id in recorded for u in uses)
    assert final.stop_reason == "tool_use"


def test_anthropic_stream_thinking(claude: anthropic.Anthropic) -> None:
    question = [{"role": "user", "content": "think about it"}]
    with claude.messages.stream(
        model="claude",
        max_tokens=3000,
        messages=question,  # type: ignore[arg-type]
        thinking={"type": "enabled", "budget_tokens": 2000},
    ) as stream:
        final = stream.get_final_message()
    recorded = anthropic_recorded("anthropic/stream_thinking.sse")
    thinking = [block for block in final.content if block.type == "thinking"]
    assert len(thinking) == 1
    assert thinking[0].thinking == recorded["thinking"]
    assert thinking[0].signature == recorded["signature"]
    assert "".join(b.text for b in final.content if b.type == "text") == recorded["text"]


def test_anthropic_client_on_an_openai_upstream(claude: anthropic.Anthropic) -> None:
    with claude.messages.stream(model="gpt-4o", max_tokens=100, messages=USER) as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
    assert text == WEATHER_TEXT


def test_anthropic_errors(claude: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        claude.messages.create(model="nope", max_tokens=10, messages=USER)  # type: ignore[arg-type]
    assert caught.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.create(model="claude", max_tokens=-1, messages=USER)  # type: ignore[arg-type]
    assert bad.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


def test_anthropic_cache_control_reaches_an_anthropic_upstream(
    claude: anthropic.Anthropic, upstream: object
) -> None:
    """Prompt-caching breakpoints pass through the gateway to Anthropic, where they bill."""
    from ..server import ReplayServer

    assert isinstance(upstream, ReplayServer)
    claude.messages.create(
        model="claude",
        max_tokens=100,
        system=[
            {"type": "text", "text": "You answer about a long contract."},
            {"type": "text", "text": "CONTRACT " * 50, "cache_control": {"type": "ephemeral"}},
        ],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Who signs?", "cache_control": {"type": "ephemeral"}}
                ],
            }
        ],
    )
    sent = upstream.requests[-1].json()
    assert sent["system"][1]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in sent["system"][0]
    assert sent["messages"][0]["content"][-1]["cache_control"] == {"type": "ephemeral"}
