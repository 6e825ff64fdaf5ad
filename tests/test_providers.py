"""Discovery (the registry) and docs/contracts.md, 11 across providers: a parameter a provider
cannot take raises before any I/O, unless ``drop_params=True`` leaves it out."""

from __future__ import annotations

import msgspec
import pytest

import rxllm
from rxllm import errors
from rxllm._api import prepare
from rxllm.router import Router
from rxllm.streaming import collect_sync

from .conftest import API_KEY, fixture_bytes
from .server import ReplayServer, Reply

HI = [{"role": "user", "content": "Hi"}]
FAMILY = ["azure", "deepseek", "mistral", "ollama", "openai_compatible", "openrouter"]


def test_the_family_is_registered() -> None:
    assert set(FAMILY) | {"openai"} <= set(rxllm.list_providers())


@pytest.mark.parametrize(
    ("name", "base", "keys", "tools", "vision", "reasoning", "embeddings"),
    [
        ("mistral", "https://api.mistral.ai/v1", ("MISTRAL_API_KEY",), True, True, True, True),
        (
            "openrouter",
            "https://openrouter.ai/api/v1",
            ("OPENROUTER_API_KEY",),
            True,
            True,
            True,
            False,
        ),
        ("deepseek", "https://api.deepseek.com", ("DEEPSEEK_API_KEY",), True, False, True, False),
        ("azure", "", ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY"), True, True, False, True),
        ("openai_compatible", "", ("OPENAI_COMPATIBLE_API_KEY",), True, True, True, True),
        ("ollama", "http://localhost:11434", ("OLLAMA_API_KEY",), True, True, True, True),
    ],
)
def test_capabilities(
    name: str,
    base: str,
    keys: tuple[str, ...],
    tools: bool,
    vision: bool,
    reasoning: bool,
    embeddings: bool,
) -> None:
    info = rxllm.provider_info(name)
    assert (info.name, info.default_api_base, info.env_keys) == (name, base, keys)
    assert rxllm.supports_streaming(name)
    assert (rxllm.supports_tools(name), rxllm.supports_vision(name)) == (tools, vision)
    assert (rxllm.supports_reasoning(name), rxllm.supports_embeddings(name)) == (
        reasoning,
        embeddings,
    )
    assert info.key_required is (name not in ("ollama", "openai_compatible"))


def test_embeddings_refused_where_not_offered() -> None:
    with pytest.raises(errors.ConfigurationError, match="does not offer embeddings"):
        rxllm.embedding("deepseek", "deepseek-chat", input="x", api_key=API_KEY)


def test_unknown_provider_and_missing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(errors.ConfigurationError, match="known providers"):
        rxllm.provider_info("nope")
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    with pytest.raises(errors.ConfigurationError, match="MISTRAL_API_KEY"):
        rxllm.completion("mistral", "mistral-small-latest", messages=HI, stream=True)


# A parameter each provider cannot take, and a recorded answer to replay when it is dropped.
UNSUPPORTED = [
    ("openai", "/v1", "random_seed", "openai/stream_text_usage.sse"),
    ("mistral", "/v1", "user", "mistral/stream_text_usage.sse"),
    ("openrouter", "/api/v1", "safe_prompt", "openrouter/stream_text_usage.sse"),
    ("deepseek", "", "seed", "deepseek/stream_reasoning_usage.sse"),
    ("azure", "", "random_seed", "azure/stream_text.sse"),
    ("ollama", "", "logit_bias", "ollama/stream_chat.ndjson"),
]


@pytest.mark.parametrize(("name", "path", "param", "fixture"), UNSUPPORTED)
def test_unsupported_parameter_raises_then_drops(
    server: ReplayServer, name: str, path: str, param: str, fixture: str
) -> None:
    def call(**kw: object) -> rxllm.ChatStream:
        return rxllm.completion(
            name,
            "m",
            messages=HI,
            stream=True,
            api_key=API_KEY,
            api_base=server.base + path,
            temperature=0.5,
            **{param: 1},
            **kw,  # type: ignore[arg-type]
        )

    with pytest.raises(errors.UnsupportedParamsError) as caught:
        call()
    assert (caught.value.provider, caught.value.param) == (name, param)
    assert caught.value.model == "m"
    assert server.requests == []  # refused before any I/O
    server.queue(Reply(body=fixture_bytes(fixture)))
    response = collect_sync(call(drop_params=True), timeout=10)
    assert response.finish_reason == "stop"
    (request,) = server.requests
    sent = request.json()
    assert param not in sent and param not in sent.get("options", {})
    assert 0.5 in (sent.get("temperature"), sent.get("options", {}).get("temperature"))


def test_openai_compatible_forwards_what_others_refuse(server: ReplayServer) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse")))
    chat = rxllm.completion(
        "openai_compatible",
        "m",
        messages=HI,
        stream=True,
        api_base=server.base,
        random_seed=1,
        drop_params=True,  # nothing to drop: the server decides
    )
    collect_sync(chat, timeout=10)
    assert server.requests[0].json()["random_seed"] == 1


# The OpenAI-shaped providers without a tool-call recording of their own (none exists, see
# tests/fixtures/SOURCES.md) send OpenAI's wire: OpenAI's recorded tool-call stream stands in.
OPENAI_SHAPED = [
    ("azure", "", {"api_version": "2024-10-21"}),
    ("openrouter", "/api/v1", {}),
    ("openai_compatible", "/v1", {}),
]
IMAGE = {
    "role": "user",
    "content": [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ],
}


@pytest.mark.parametrize(("name", "path", "options"), OPENAI_SHAPED)
def test_tool_calls_images_and_tool_results(
    server: ReplayServer, name: str, path: str, options: dict[str, str]
) -> None:
    def chat(messages: list[object]) -> rxllm.ChatResponse:
        return collect_sync(
            rxllm.completion(
                name,
                "gpt-4o",
                messages=messages,  # type: ignore[arg-type]
                stream=True,
                api_key=API_KEY,
                api_base=server.base + path,
                tools=[{"type": "function", "function": {"name": "get_weather"}}],
                tool_choice="auto",
                **options,  # type: ignore[arg-type]
            ),
            timeout=10,
        )

    server.queue(Reply(body=fixture_bytes("openai/stream_tool_call_usage.sse")))
    first = chat([IMAGE])
    (call,) = first.tool_calls
    assert (call.id, call.function.name) == ("call_4XzlGBLtUe9dy3GVNV4jhq7h", "get_weather")
    assert call.parsed_arguments() == {"city": "New York City"}
    assert (first.finish_reason, first.provider) == ("tool_calls", name)
    sent = server.requests[0].json()
    assert sent["messages"] == [IMAGE]
    assert sent["tool_choice"] == "auto"
    assert first.message is not None
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse")))
    chat([IMAGE, first.message, {"role": "tool", "tool_call_id": call.id, "content": "7C"}])
    assert server.requests[1].json()["messages"][1:] == [
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": "call_4XzlGBLtUe9dy3GVNV4jhq7h",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"New York City"}'},
                }
            ],
        },
        {"role": "tool", "content": "7C", "tool_call_id": "call_4XzlGBLtUe9dy3GVNV4jhq7h"},
    ]


def test_errors_while_building_a_request_name_provider_and_model() -> None:
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    with pytest.raises(errors.BadRequestError) as caught:
        rxllm.completion(
            "ollama", "llava", messages=[{"role": "user", "content": [image]}], stream=True
        )
    assert (caught.value.provider, caught.value.model) == ("ollama", "llava")


# --- a model named alone: its provider inferred from the registry's model_patterns -----------


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-4o", "openai"),
        ("chatgpt-4o-latest", "openai"),
        ("o1", "openai"),
        ("o3-mini", "openai"),
        ("o4-mini", "openai"),
        ("claude-sonnet-4-5", "anthropic"),
        ("gemini-2.5-flash", "gemini"),
        ("mistral-small-latest", "mistral"),
        ("magistral-medium-latest", "mistral"),
        ("codestral-latest", "mistral"),
        ("ministral-8b-latest", "mistral"),
        ("pixtral-12b", "mistral"),
        ("deepseek-chat", "deepseek"),
    ],
)
def test_a_well_known_model_alone_finds_its_provider(model: str, provider: str) -> None:
    call, _, request = prepare(
        None, model, messages=HI, stream=True, api_key=API_KEY, api_base="http://127.0.0.1:9"
    )
    assert (call.provider, call.model) == (provider, model)
    assert model.encode() in (request.body or b"") or model in request.url


@pytest.mark.parametrize("model", ["my-own-model", "o10-preview", "llama3.2", "meta-llama/Llama-3"])
def test_an_unknown_model_alone_keeps_the_clear_error(model: str) -> None:
    with pytest.raises(errors.ConfigurationError, match="cannot tell the provider") as caught:
        rxllm.completion(model=model, messages=HI, api_key=API_KEY)
    assert "pass provider= or a 'provider/model' string" in str(caught.value)


def test_a_model_two_rows_claim_is_ambiguous(monkeypatch: pytest.MonkeyPatch) -> None:
    from rxllm import providers

    rows = dict(providers._REGISTRY)
    rows["azure"] = msgspec.structs.replace(rows["azure"], model_patterns=("gpt-*",))
    monkeypatch.setattr(providers, "_REGISTRY", rows)
    with pytest.raises(errors.ConfigurationError, match="could be openai or azure"):
        rxllm.completion(model="gpt-4o", messages=HI, api_key=API_KEY)


def test_an_inferred_provider_is_said_in_the_routers_description() -> None:
    router = Router()
    router.register("guess", model="claude-sonnet-4-5", api_key=API_KEY)
    router.register("named", model="anthropic/claude-sonnet-4-5", api_key=API_KEY)
    guess, named = router.get_config("guess"), router.get_config("named")
    assert guess is not None and named is not None
    assert guess["provider"] == "anthropic" and guess["model"] == "claude-sonnet-4-5"
    assert guess["provider_source"] == "inferred from the model name"
    assert guess["deployments"][0]["provider_source"] == "inferred from the model name"
    assert named["provider_source"] == "given"


def test_a_missing_key_names_the_provider_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(errors.ConfigurationError) as caught:
        rxllm.completion("openai", "gpt-4o", messages=HI)
    assert str(caught.value) == "openai: no API key: pass api_key=... or set OPENAI_API_KEY"
