"""DeepSeek over real HTTP: recorded transcripts replayed byte for byte (the ``.chunks.txt``
recording lacks the SSE framing: it is framed here as ``data: <line>`` events plus
``data: [DONE]``, as DeepSeek sends them)."""

from __future__ import annotations

import pytest

import rxllm
from rxllm import errors
from rxllm.streaming import collect_sync

from .conftest import API_KEY, failure_of, fixture_bytes
from .server import ReplayServer, Reply, sse

HELLO = [{"role": "user", "content": "Hello"}]
WEATHER = [{"role": "user", "content": "What is the weather in San Francisco?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "weather",
            "description": "Get the weather in a location",
            "parameters": {
                "type": "object",
                "properties": {"location": {"type": "string"}},
                "required": ["location"],
            },
        },
    }
]

GREETING_THOUGHTS = (
    "Hmm, the user just said \"Hello\". It's a simple greeting but I wonder if there's more to "
    "it.  \n\nThe message is very brief, so I don't have much context to work with. Maybe "
    "they're just testing if I'm responsive, or perhaps they're new to chatting with AI.  \n\n"
    "I should keep my reply warm and inviting to encourage further conversation. A smiley face "
    "would help make it friendly. Since they didn't specify a need, I'll leave it open-ended by "
    "asking how I can help them today.  \n\nThe tone should be cheerful but professional - not "
    'too stiff, not too casual. "Hello there!" feels right for a start. Adding "What can I do '
    'for you today?" turns it into an invitation rather than just mirroring their greeting.  '
    "\n\nI'll avoid assumptions about their gender, location, or intent since there's zero "
    "information. If they're just being polite, they might not reply further - and that's okay "
    "too."
)
TOOL_THOUGHTS = (
    "The user is asking for the weather in San Francisco. I need to use the weather tool to get "
    'this information. Let me invoke the weather tool with the location parameter set to "San '
    'Francisco".'
)


@pytest.fixture
def base(server: ReplayServer) -> str:
    return server.base  # DeepSeek's base URL has no /v1


def stream(base: str, messages: object = HELLO, **kw: object) -> rxllm.ChatStream:
    return rxllm.completion(
        "deepseek",
        "deepseek-reasoner",
        messages=messages,  # type: ignore[arg-type]
        stream=True,
        api_key=API_KEY,
        api_base=base,
        **kw,  # type: ignore[arg-type]
    )


def complete(server: ReplayServer, base: str, body: bytes, messages: object = HELLO, **kw: object):  # type: ignore[no-untyped-def]
    server.queue(Reply(body=body, content_type="application/json"))
    return rxllm.completion(
        "deepseek",
        "deepseek-reasoner",
        messages=messages,  # type: ignore[arg-type]
        api_key=API_KEY,
        api_base=base,
        **kw,  # type: ignore[arg-type]
    )


def test_stream_reasoning_then_text_usage_in_the_last_chunk(
    server: ReplayServer, base: str
) -> None:
    server.queue(Reply(body=fixture_bytes("deepseek/stream_reasoning_usage.sse"), piece=1000))
    response = collect_sync(stream(base), timeout=10)
    assert response.reasoning_content == GREETING_THOUGHTS
    assert response.text == "Hello there! \U0001f60a How can I help you today?"
    assert response.id == "33be18fc-3842-486c-8c29-dd8e578f7f20"
    assert response.system_fingerprint == "fp_393bca965e_prod0623_fp8_kvcache"
    assert response.finish_reason == "stop"
    usage = response.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (6, 212, 218)
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 198
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0
    (request,) = server.requests
    assert request.path == "/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.json() == {
        "model": "deepseek-reasoner",
        "messages": HELLO,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def test_stream_tool_call_after_reasoning(server: ReplayServer, base: str) -> None:
    server.queue(
        Reply(body=sse(*fixture_bytes("deepseek/stream_tool_call.chunks.txt").splitlines()))
    )
    response = collect_sync(stream(base, WEATHER, tools=TOOLS), timeout=10)
    assert response.reasoning_content == TOOL_THOUGHTS
    (call,) = response.tool_calls
    assert (call.id, call.function.name) == ("call_00_ioIn7yN9p1ZOMNpDLwd4MgAF", "weather")
    assert call.parsed_arguments() == {"location": "San Francisco"}
    assert response.finish_reason == "tool_calls"
    assert response.text == ""
    usage = response.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (339, 83)
    assert usage.prompt_tokens_details.cached_tokens == 320
    assert server.requests[0].json()["tools"] == TOOLS


def test_cache_hit_tokens_alone_become_cached_tokens(server: ReplayServer, base: str) -> None:
    # The recorded last chunk, without the prompt_tokens_details that newer API versions add.
    lines = fixture_bytes("deepseek/stream_tool_call.chunks.txt").splitlines()
    last = lines[-1].replace(b'"prompt_tokens_details":{"cached_tokens":320},', b"")
    assert b"prompt_tokens_details" not in last
    server.queue(Reply(body=sse(*lines[:-1], last)))
    response = collect_sync(stream(base, WEATHER, tools=TOOLS), timeout=10)
    usage = response.usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 320


def test_non_streaming_reasoning(server: ReplayServer, base: str) -> None:
    response = complete(server, base, fixture_bytes("deepseek/response_reasoning.json"))
    assert response.text == (
        'The word "strawberry" contains three instances of the letter "r": one after the "t" and '
        'two before the "y".'
    )
    assert response.reasoning_content is not None
    assert response.reasoning_content.startswith("We are asked: \"How many 'r's are in the word")
    assert response.reasoning_content.endswith("So answer is 3.")
    usage = response.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert (usage.total_tokens, usage.completion_tokens_details.reasoning_tokens) == (363, 315)


def test_non_streaming_tool_call_and_tool_results_next_turn(
    server: ReplayServer, base: str
) -> None:
    first = complete(server, base, fixture_bytes("deepseek/response_tool_call.json"), WEATHER)
    (call,) = first.tool_calls
    assert (call.id, call.function.name) == ("call_00_9V0vrf86Pc9aelHCJMZqnJBo", "weather")
    assert call.parsed_arguments() == {"location": "San Francisco"}
    assert first.finish_reason == "tool_calls"
    assert first.usage is not None and first.usage.prompt_tokens_details is not None
    assert first.usage.prompt_tokens_details.cached_tokens == 320
    assert first.message is not None
    history = [
        *WEATHER,
        first.message,
        {"role": "tool", "tool_call_id": call.id, "content": "18C and foggy"},
        {"role": "assistant", "content": "It is 18C and foggy.", "reasoning_content": "Easy."},
        {"role": "user", "content": "Thanks! And tomorrow?"},
    ]
    complete(server, base, fixture_bytes("deepseek/response_tool_call.json"), history)
    sent = server.requests[1].json()["messages"]
    # Thinking mode needs the reasoning of a turn that called tools back; not the others'.
    assert sent[1]["reasoning_content"] == first.reasoning_content
    assert sent[1]["tool_calls"][0]["id"] == "call_00_9V0vrf86Pc9aelHCJMZqnJBo"
    assert sent[2] == {
        "role": "tool",
        "tool_call_id": "call_00_9V0vrf86Pc9aelHCJMZqnJBo",
        "content": "18C and foggy",
    }
    assert sent[3] == {"role": "assistant", "content": "It is 18C and foggy."}


def test_parameters(server: ReplayServer, base: str) -> None:
    with pytest.raises(errors.UnsupportedParamsError) as caught:
        stream(base, seed=1)
    assert (caught.value.provider, caught.value.param) == ("deepseek", "seed")
    complete(
        server,
        base,
        fixture_bytes("deepseek/response_reasoning.json"),
        seed=1,
        drop_params=True,
        max_completion_tokens=100,
        thinking={"type": "enabled"},
        reasoning_effort="high",
    )
    sent = server.requests[0].json()
    assert "seed" not in sent
    assert (sent["max_tokens"], sent["thinking"], sent["reasoning_effort"]) == (
        100,
        {"type": "enabled"},
        "high",
    )


def test_error_bodies(server: ReplayServer, base: str) -> None:
    body = fixture_bytes("deepseek/error_400_invalid_request.json")
    error = complete_error(server, base, 400, body)
    assert type(error) is errors.BadRequestError
    assert (error.provider, error.status_code, error.code) == (
        "deepseek",
        400,
        "invalid_request_error",
    )
    assert error.message == "No tool output found for tool call call-a."
    # 402 is DeepSeek's "Insufficient Balance" (its error-code table; no recorded body).
    error = complete_error(server, base, 402, b'{"error":{"message":"Insufficient Balance"}}')
    assert type(error) is errors.QuotaExceededError and not error.recoverable


def complete_error(server: ReplayServer, base: str, status: int, body: bytes) -> errors.LLMError:
    server.queue(Reply(status=status, body=body, content_type="application/json"))
    with pytest.raises(errors.LLMError) as caught:
        rxllm.completion(
            "deepseek", "deepseek-chat", messages=HELLO, api_key=API_KEY, api_base=base
        )
    return caught.value


def test_dropped_connection_mid_reasoning(server: ReplayServer, base: str) -> None:
    body = fixture_bytes("deepseek/stream_reasoning_usage.sse")
    server.queue(Reply(body=body, drop_after=body.index(b'"reasoning_content":" user"')))
    error = failure_of(stream(base))
    assert isinstance(error, errors.StreamTruncatedError)
    assert error.partial_response is not None
    assert error.partial_response.reasoning_content == "Hmm, the"
    assert error.partial_text == ""
