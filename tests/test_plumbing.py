"""The typed plumbing under ``completion`` and the router: one ``CallOptions`` checked in one
step, router configurations converted from msgspec structs with errors naming the field, and
``ChatStream``'s hook for streams that send more than one request."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

import rxllm
from rxllm import errors
from rxllm._api import chat_call, embedding_call, prepare
from rxllm._checks import CallOptions, check_options
from rxllm._provider import ChatCall, Provider
from rxllm._wire import HttpRequest
from rxllm.router import Router
from rxllm.router._config import ConfigSpec, DeploymentSpec
from rxllm.stream import ChatStream
from rxllm.streaming import collect_sync

from .server import ReplayServer, Reply, sse

API_KEY = "sk-plumbing-0123456789"
HI = [{"role": "user", "content": "Hi"}]
CHUNK = (
    '{"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
    '"choices":[{"index":0,"delta":{"content":"%s"},"finish_reason":%s}]}'
)


def test_call_options_are_checked_in_one_step() -> None:
    options = CallOptions(
        model="openai/gpt-4o",
        api_key=f" {API_KEY}\n",
        api_base="http://127.0.0.1:9/v1",
        timeout=5,
        extra_headers={"X-Team": "blue"},
        params={"temperature": 0.5, "organization": "org-1"},
    )
    resolved = check_options(options)
    assert (resolved.provider, resolved.model, resolved.api_key) == ("openai", "gpt-4o", API_KEY)
    assert resolved.timeout == 5.0 and isinstance(resolved.timeout, float)
    assert resolved.options == {"organization": "org-1"}
    assert resolved.params == {"temperature": 0.5}
    assert API_KEY not in repr(options) and API_KEY not in repr(resolved)
    call, _, request = chat_call(options, HI, True)
    same, _, again = prepare(
        None,
        "openai/gpt-4o",
        messages=HI,
        stream=True,
        api_key=API_KEY,
        api_base="http://127.0.0.1:9/v1",
        timeout=5,
        extra_headers={"X-Team": "blue"},
        params={"temperature": 0.5, "organization": "org-1"},
    )
    assert repr(call) == repr(same)
    assert (request.url, request.headers, request.body) == (again.url, again.headers, again.body)
    embed, _, _ = embedding_call(msgspec.structs.replace(options, params=None), "text")
    assert embed.input == ["text"]


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (CallOptions(provider="", model="m"), errors.ConfigurationError, "provider must be"),
        (CallOptions(model="openai/m", timeout=0), errors.ConfigurationError, "timeout must be"),
        (
            CallOptions(model="openai/m", params={"temprature": 1}),
            errors.UnsupportedParamsError,
            "temprature",
        ),
        (
            CallOptions(model="openai/m", params={"max_tokens": "9"}),
            errors.BadRequestError,
            "max_tokens must be a positive integer",
        ),
    ],
)
def test_a_bad_option_raises_its_typed_error_naming_the_provider(
    options: CallOptions, error: type[errors.LLMError], message: str
) -> None:
    options = msgspec.structs.replace(options, api_key=API_KEY)
    with pytest.raises(error, match=message) as caught:
        chat_call(options, HI, False)
    if "provider must" not in message and "timeout" not in message:
        assert caught.value.provider == "openai" and caught.value.model == "m"


def test_a_deployment_spec_splits_default_parameters_from_its_fields() -> None:
    spec = DeploymentSpec.from_mapping(
        {"model": "openai/gpt-4o", "rpm": 60, "timeout": 3, "temperature": 0.2}, "here"
    )
    assert (spec.model, spec.rpm, spec.timeout) == ("openai/gpt-4o", 60, 3.0)
    assert spec.params == {"temperature": 0.2}
    assert msgspec.convert({"fallbacks": ["a"]}, ConfigSpec).fallbacks == ("a",)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tpm": 0}, "'x': tpm must be a positive integer, not 0"),
        ({"timeout": float("inf")}, "'x': timeout must be positive seconds, not inf"),
        ({"weight": True}, "'x': weight must be a positive number, not True"),
        ({"fallbacks": ["y", ""]}, "'x': fallbacks must be configuration names, not ''"),
        ({"num_retries": True}, "'x': num_retries must be an integer >= 0, not True"),
        ({"api_base": 8080}, "'x': api_base: Expected `str | null`, got `int`"),
        ({"extra_headers": {1: "a"}}, "'x': extra_headers: Expected `str`, got `int`"),
        ({"strategy": 3}, "'x': unknown strategy 3; choose one of simple-shuffle"),
    ],
)
def test_a_bad_field_is_a_configuration_error_naming_it(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(errors.ConfigurationError) as caught:
        Router().register("x", model="openai/gpt-4o", api_key=API_KEY, **kwargs)
    assert f"router configuration {message}" in str(caught.value)
    assert API_KEY not in str(caught.value)


def test_a_group_deployment_names_its_index_in_errors() -> None:
    with pytest.raises(errors.ConfigurationError, match=r"deployment 1: rpm must be a positive"):
        Router().register(
            "x",
            deployments=[
                {"model": "openai/a", "api_key": API_KEY},
                {"model": "openai/b", "api_key": API_KEY, "rpm": -1},
            ],
        )


def test_router_policy_is_the_routers_own_time_and_settings() -> None:
    ticks = iter(range(100, 1000))
    r = Router(clock=lambda: float(next(ticks)), num_retries=4)
    r.configure(num_retries=1)
    r.register("fast", model="openai/gpt-4o", api_key=API_KEY, api_base="http://127.0.0.1:9")
    execution = r._execution("fast", HI, True, None, {})
    assert execution.clock() >= 100
    assert execution.plan.primary.num_retries == 1


class TwoTries(ChatStream):
    """A stream that sends its request a second time when the first fails before any chunk
    reached the subscribers: the subclass hook at work, without the router."""

    def __init__(self, first: tuple[ChatCall, Provider, HttpRequest], second: Any) -> None:
        super().__init__(*first)
        self.first = first
        self.second = second
        self.seen: list[tuple[bool, bool, bool]] = []

    async def _produce(self) -> None:
        self.seen.append((self.running, self.committed, self.cancelled))
        try:
            await self._send(*self.first)
        except errors.LLMError:
            self.seen.append((self.running, self.committed, self.cancelled))
            if self.committed:
                raise
            await self._send(*self.second)


def test_a_subclass_sends_a_second_request_through_the_hook(server: ReplayServer) -> None:
    server.queue(
        Reply(status=503, body=b'{"error":{"message":"busy"}}', content_type="application/json"),
        Reply(body=sse(CHUNK % ("Hello", "null"), CHUNK % ("", '"stop"'))),
    )
    base = server.base + "/v1"
    first = prepare("openai", "first", messages=HI, stream=True, api_key=API_KEY, api_base=base)
    second = prepare("openai", "second", messages=HI, stream=True, api_key=API_KEY, api_base=base)
    stream = TwoTries(first, second)
    assert (stream.running, stream.cancelled) == (False, False)
    assert collect_sync(stream, timeout=10).text == "Hello"
    assert stream.seen == [(True, False, False), (True, False, False)]
    assert (stream.model, stream.running, stream.committed) == ("second", False, True)
    assert [r.json()["model"] for r in server.requests] == ["first", "second"]
    assert rxllm.ChatStream is ChatStream
