"""Any OpenAI-compatible server (``provider="openai_compatible"`` + ``api_base``): recorded
Groq transcripts, and other servers' recordings of the same wire, replayed byte for byte
(``.chunks.txt`` recordings are framed here as ``data: <line>`` events plus
``data: [DONE]``)."""

from __future__ import annotations

import pytest

import rxllm
from rxllm import errors
from rxllm.streaming import collect_sync

from .conftest import failure_of, fixture_bytes
from .server import ReplayServer, Reply, sse

WEATHER = [{"role": "user", "content": "What is the weather?"}]


@pytest.fixture
def base(server: ReplayServer) -> str:
    return server.base + "/openai/v1"


def stream(base: str, model: str = "llama-3.3-70b-versatile", **kw: object) -> rxllm.ChatStream:
    return rxllm.completion(
        "openai_compatible",
        model,
        messages=WEATHER,
        stream=True,
        api_base=base,
        **kw,  # type: ignore[arg-type]
    )


def test_groq_tool_call_stream_without_a_key(server: ReplayServer, base: str) -> None:
    server.queue(
        Reply(
            body=sse(*fixture_bytes("openai_compatible/stream_tool_call.chunks.txt").splitlines())
        )
    )
    response = collect_sync(stream(base), timeout=10)
    (call,) = response.tool_calls
    assert (call.id, call.function.name, call.parsed_arguments()) == ("tk85n1k4m", "weather", {})
    assert response.finish_reason == "tool_calls"
    assert response.provider == "openai_compatible"
    assert response.system_fingerprint == "fp_f8b414701e"
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (210, 15)
    (request,) = server.requests
    assert request.path == "/openai/v1/chat/completions"
    assert "Authorization" not in request.headers  # no key needed
    assert request.json()["stream_options"] == {"include_usage": True}


def test_groq_reasoning_field_non_streaming(server: ReplayServer, base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openai_compatible/response_reasoning.json")))
    response = rxllm.completion(
        "openai_compatible", "qwen/qwen3-32b", messages=WEATHER, api_base=base, api_key="gsk-1"
    )
    assert response.reasoning_content is not None
    assert response.reasoning_content.startswith(
        'Okay, so the user is asking how many times the letter "r" appears in the word'
    )
    assert response.reasoning_content.endswith("So the answer should be 3.\n")
    assert response.text.startswith('The word "strawberry" contains **3** instances')
    assert response.text.endswith("**Answer:** 3.")
    usage = response.usage
    assert usage is not None and usage.completion_tokens_details is not None
    assert (usage.total_tokens, usage.completion_tokens_details.reasoning_tokens) == (666, 570)
    assert server.requests[0].headers["Authorization"] == "Bearer gsk-1"


@pytest.mark.parametrize(
    ("name", "reasoning_start", "text"),
    [
        (
            "deepseek/stream_reasoning_usage.sse",
            'Hmm, the user just said "Hello".',
            "Hello there! \U0001f60a How can I help you today?",
        ),
        ("mistral/stream_thinking.sse", "Okay, the user is asking how to cross the street.", None),
        ("openrouter/stream_reasoning.sse", "This is a simple arithmetic question.", "2 + 2 = 4"),
        (
            "openai/stream_text_usage.sse",
            None,
            "I'm unable to provide real-time weather updates. To get the current weather in San "
            "Francisco, I recommend checking a reliable weather website or a weather app.",
        ),
    ],
)
def test_every_dialect_of_the_family_is_read(
    server: ReplayServer, base: str, name: str, reasoning_start: str | None, text: str | None
) -> None:
    # vLLM, LM Studio, llama.cpp and others send one of these dialects: reasoning_content,
    # reasoning, or thinking parts in a content list.
    server.queue(Reply(body=fixture_bytes(name), piece=333))
    response = collect_sync(stream(base), timeout=10)
    if reasoning_start is None:
        assert response.reasoning_content is None
    else:
        assert response.reasoning_content is not None
        assert response.reasoning_content.startswith(reasoning_start)
    if text is not None:
        assert response.text == text
    assert response.finish_reason == "stop"


def test_every_parameter_is_forwarded(server: ReplayServer, base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse")))
    chat = stream(base, top_k=20, min_p=0.05, guided_json={"type": "object"}, seed=3)
    collect_sync(chat, timeout=10)
    sent = server.requests[0].json()
    assert (sent["top_k"], sent["min_p"], sent["guided_json"], sent["seed"]) == (
        20,
        0.05,
        {"type": "object"},
        3,
    )


def test_api_base_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_COMPATIBLE_API_BASE", raising=False)
    with pytest.raises(errors.ConfigurationError, match="api_base"):
        rxllm.completion("openai_compatible", "m", messages=WEATHER, stream=True)


def test_base_and_key_from_the_environment(
    server: ReplayServer, base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_BASE", base)
    monkeypatch.setenv("OPENAI_COMPATIBLE_API_KEY", "local-key")
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse")))
    collect_sync(rxllm.completion("openai_compatible", "m", messages=WEATHER, stream=True), 10)
    assert server.requests[0].headers["Authorization"] == "Bearer local-key"


# Real vLLM error bodies quoted in public threads: the top-level form of vLLM < 0.16
# (meta-llama/llama-verifications#58) and the enveloped form of vLLM 0.16+
# (harbor-framework/harbor#996).
VLLM_OLD = (
    b'{"object":"error","message":"This model\'s maximum context length is 131072 tokens. '
    b"However, you requested 156632 tokens (152536 in the messages, 4096 in the completion). "
    b'Please reduce the length of the messages or completion.","type":"BadRequestError",'
    b'"param":null,"code":400}'
)
VLLM_NEW = (
    b'{"error":{"message":"You passed 1015 input tokens and requested 10 output tokens. However, '
    b"the model's context length is only 1024 tokens, resulting in a maximum input length of "
    b"1014 tokens. Please reduce the length of the input prompt. (parameter=input_tokens, "
    b'value=1015)","type":"BadRequestError","param":"input_tokens","code":400}}'
)


@pytest.mark.parametrize(("body", "param"), [(VLLM_OLD, None), (VLLM_NEW, "input_tokens")])
def test_vllm_context_errors(
    server: ReplayServer, base: str, body: bytes, param: str | None
) -> None:
    server.queue(Reply(status=400, body=body, content_type="application/json"))
    error = failure_of(stream(base))
    assert type(error) is errors.ContextWindowExceededError
    assert (error.status_code, error.code, error.error_type) == (400, "400", "BadRequestError")
    assert error.param == param


def test_embeddings(server: ReplayServer, base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openai/response_embedding.json")))
    response = rxllm.embedding(
        "openai_compatible", "nomic-embed-text", input=["a", "b"], api_base=base, truncate=True
    )
    assert response.vectors[0] == [
        0.0057293195,
        -0.012727811,
        0.020042092,
        -0.013437585,
        0.022833068,
    ]
    assert server.requests[0].path == "/openai/v1/embeddings"
    assert server.requests[0].json() == {
        "model": "nomic-embed-text",
        "input": ["a", "b"],
        "truncate": True,
    }
