"""``completion`` and ``acompletion``: validate everything, then stream or fetch.

Every check happens before any I/O (contract 2): unknown provider, missing API key, empty or
malformed messages and unknown parameters raise at call time, so a stream that exists is a
stream that can be sent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal, overload

import msgspec

from . import providers
from ._loop import run_sync
from ._spec import ChatCall, HttpRequest, Provider
from .errors import BadRequestError, ConfigurationError
from .stream import ChatStream, fetch_response
from .types import ChatResponse, Message

__all__ = ["DEFAULT_TIMEOUT", "acompletion", "completion", "prepare"]

#: Seconds allowed to connect and between reads of a stream (total time for a plain request).
DEFAULT_TIMEOUT = 600.0

MessageLike = Message | Mapping[str, Any]

_to_message = msgspec.convert


def _messages(messages: Sequence[MessageLike] | None) -> list[Message]:
    if messages is None or isinstance(messages, (str, bytes, Mapping)):
        raise BadRequestError(
            "messages must be a non-empty list like [{'role': 'user', 'content': 'Hi'}]"
        )
    if not messages:
        raise BadRequestError("messages is empty: send at least one message")
    result = []
    for i, message in enumerate(messages):
        if isinstance(message, Message):
            result.append(message)
            continue
        try:
            result.append(_to_message(message, Message, from_attributes=True))
        except msgspec.ValidationError as exc:
            raise BadRequestError(f"messages[{i}] is not a valid message: {exc}") from None
    return result


def prepare(
    provider: str | None,
    model: str | None,
    *,
    messages: Sequence[MessageLike] | None,
    stream: bool,
    api_key: str | None = None,
    api_base: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    drop_params: bool = False,
    extra_headers: Mapping[str, str] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
) -> tuple[ChatCall, Provider, HttpRequest]:
    """Validate a call and build its HTTP request, without sending anything."""
    name, model_name = providers.split_model(provider, model)
    info = providers.provider_info(name)
    spec = providers.get_provider(name)
    key = providers.api_key_for(info, api_key)
    if key is None and info.key_required:
        variables = " or ".join(info.env_keys) or "api_key="
        raise ConfigurationError(
            f"no API key for {name}: pass api_key=... or set {variables}", provider=name
        )
    base = api_base or (os.environ.get(info.env_api_base) if info.env_api_base else None)
    base = base or info.default_api_base
    if timeout is not None and timeout <= 0:
        raise ConfigurationError(f"timeout must be positive seconds, not {timeout!r}")
    options: dict[str, Any] = {}
    request_params: dict[str, Any] = {}
    for k, v in (params or {}).items():
        if k in spec.option_names:
            options[k] = v
        elif k == "stream":
            raise BadRequestError("pass stream= as its own argument")
        else:
            request_params[k] = v
    try:
        request_params = spec.check_params(request_params, drop_params)
    except BadRequestError as exc:
        exc._with_context(provider=name, model=model_name, secret=key)
        raise
    call = ChatCall(
        provider=name,
        model=model_name,
        messages=_messages(messages),
        params=request_params,
        api_key=key,
        api_base=base,
        stream=stream,
        timeout=timeout,
        drop_params=drop_params,
        extra_headers=dict(extra_headers or {}),
        extra_body=dict(extra_body or {}),
        options=options,
    )
    return call, spec, spec.build_request(call)


@overload
def completion(
    provider: str | None = ...,
    model: str | None = ...,
    *,
    messages: Sequence[MessageLike],
    stream: Literal[True],
    api_key: str | None = ...,
    api_base: str | None = ...,
    timeout: float | None = ...,
    drop_params: bool = ...,
    extra_headers: Mapping[str, str] | None = ...,
    extra_body: Mapping[str, Any] | None = ...,
    **params: Any,
) -> ChatStream: ...


@overload
def completion(
    provider: str | None = ...,
    model: str | None = ...,
    *,
    messages: Sequence[MessageLike],
    stream: Literal[False] = ...,
    api_key: str | None = ...,
    api_base: str | None = ...,
    timeout: float | None = ...,
    drop_params: bool = ...,
    extra_headers: Mapping[str, str] | None = ...,
    extra_body: Mapping[str, Any] | None = ...,
    **params: Any,
) -> ChatResponse: ...


def completion(
    provider: str | None = None,
    model: str | None = None,
    *,
    messages: Sequence[MessageLike],
    stream: bool = False,
    api_key: str | None = None,
    api_base: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    drop_params: bool = False,
    extra_headers: Mapping[str, str] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    **params: Any,
) -> ChatStream | ChatResponse:
    """Chat with any provider.

    ``completion("openai", "gpt-4o", messages=[...])`` (or ``model="openai/gpt-4o"``) returns a
    :class:`~rxllm.types.ChatResponse`, blocking until it arrives. With ``stream=True`` it
    returns at once a hot :class:`~rxllm.stream.ChatStream` of ``ChatChunk`` s; the request
    starts at the first subscription. Other keyword arguments are request parameters
    (``temperature``, ``max_tokens``, ``tools``, ...); a parameter the provider cannot take
    raises ``UnsupportedParamsError`` unless ``drop_params=True``.
    """
    call, spec, request = prepare(
        provider,
        model,
        messages=messages,
        stream=stream,
        api_key=api_key,
        api_base=api_base,
        timeout=timeout,
        drop_params=drop_params,
        extra_headers=extra_headers,
        extra_body=extra_body,
        params=params,
    )
    if stream:
        return ChatStream(call, spec, request)
    return run_sync(fetch_response(call, spec, request))


@overload
async def acompletion(
    provider: str | None = ...,
    model: str | None = ...,
    *,
    messages: Sequence[MessageLike],
    stream: Literal[True],
    api_key: str | None = ...,
    api_base: str | None = ...,
    timeout: float | None = ...,
    drop_params: bool = ...,
    extra_headers: Mapping[str, str] | None = ...,
    extra_body: Mapping[str, Any] | None = ...,
    **params: Any,
) -> ChatStream: ...


@overload
async def acompletion(
    provider: str | None = ...,
    model: str | None = ...,
    *,
    messages: Sequence[MessageLike],
    stream: Literal[False] = ...,
    api_key: str | None = ...,
    api_base: str | None = ...,
    timeout: float | None = ...,
    drop_params: bool = ...,
    extra_headers: Mapping[str, str] | None = ...,
    extra_body: Mapping[str, Any] | None = ...,
    **params: Any,
) -> ChatResponse: ...


async def acompletion(
    provider: str | None = None,
    model: str | None = None,
    *,
    messages: Sequence[MessageLike],
    stream: bool = False,
    api_key: str | None = None,
    api_base: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    drop_params: bool = False,
    extra_headers: Mapping[str, str] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    **params: Any,
) -> ChatStream | ChatResponse:
    """:func:`completion` for asyncio: the request runs on the running loop.

    With ``stream=True`` the stream is bound to the running loop and returned unstarted (it
    starts at the first subscription, exactly as from :func:`completion`).
    """
    call, spec, request = prepare(
        provider,
        model,
        messages=messages,
        stream=stream,
        api_key=api_key,
        api_base=api_base,
        timeout=timeout,
        drop_params=drop_params,
        extra_headers=extra_headers,
        extra_body=extra_body,
        params=params,
    )
    if stream:
        chat_stream = ChatStream(call, spec, request)
        chat_stream.bind()
        return chat_stream
    return await fetch_response(call, spec, request)
