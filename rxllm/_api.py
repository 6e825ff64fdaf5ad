"""``completion`` and ``acompletion``: validate everything, then stream or fetch.

Every check happens before any I/O (docs/contracts.md, 2): unknown provider, missing API key,
empty or malformed messages and unknown parameters raise at call time, so a stream that exists
is a stream that can be sent.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Mapping, Sequence
from typing import Any, Literal, TypeVar, overload

import msgspec

from . import _checks, _telemetry
from ._checks import DEFAULT_TIMEOUT, CallOptions, Verify
from ._loop import run_sync
from ._provider import Call, ChatCall, EmbeddingCall, EmbeddingProvider, Provider
from ._wire import HttpRequest
from .errors import BadRequestError, LLMError
from .stream import ChatStream, fetch, fetch_response
from .types import ChatResponse, EmbeddingResponse, Message

__all__ = [
    "DEFAULT_TIMEOUT",
    "CallOptions",
    "acompletion",
    "aembedding",
    "chat_call",
    "completion",
    "embedding",
    "embedding_call",
    "prepare",
    "prepare_embedding",
]

T = TypeVar("T")

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


def chat_call(
    options: CallOptions, messages: Sequence[MessageLike] | None, stream: bool
) -> tuple[ChatCall, Provider, HttpRequest]:
    """Validate a chat call and build its HTTP request, without sending anything."""
    _checks.check_flag(stream, "stream")
    resolved = _checks.check_options(options, "streaming" if stream else None)
    spec: Provider = resolved.spec
    params = resolved.request_params(spec.check_params)
    call = resolved.call(ChatCall, params, messages=_messages(messages), stream=stream)
    return call, spec, resolved.request(spec.build_request, call)


def embedding_call(
    options: CallOptions, input: str | Sequence[str]
) -> tuple[EmbeddingCall, EmbeddingProvider, HttpRequest]:
    """Validate an embedding call and build its HTTP request, without sending anything."""
    texts = [input] if isinstance(input, str) else input
    if (
        not isinstance(texts, (list, tuple))
        or not texts
        or not all(isinstance(t, str) for t in texts)
    ):
        raise BadRequestError("input must be a string or a non-empty list of strings")
    resolved = _checks.check_options(options, "embeddings")
    spec: EmbeddingProvider = resolved.spec
    params = resolved.request_params(spec.check_embedding_params)
    call = resolved.call(EmbeddingCall, params, input=list(texts))
    return call, spec, resolved.request(spec.build_embedding_request, call)


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
    verify: Verify = True,
) -> tuple[ChatCall, Provider, HttpRequest]:
    """:func:`chat_call` with the options as keyword arguments."""
    options = CallOptions(
        provider=provider,
        model=model,
        api_key=api_key,
        api_base=api_base,
        timeout=timeout,
        drop_params=drop_params,
        extra_headers=extra_headers,
        extra_body=extra_body,
        verify=verify,
        params=params,
    )
    return chat_call(options, messages, stream)


def prepare_embedding(
    provider: str | None,
    model: str | None,
    *,
    input: str | Sequence[str],
    api_key: str | None = None,
    api_base: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    drop_params: bool = False,
    extra_headers: Mapping[str, str] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    verify: Verify = True,
) -> tuple[EmbeddingCall, EmbeddingProvider, HttpRequest]:
    """:func:`embedding_call` with the options as keyword arguments."""
    options = CallOptions(
        provider=provider,
        model=model,
        api_key=api_key,
        api_base=api_base,
        timeout=timeout,
        drop_params=drop_params,
        extra_headers=extra_headers,
        extra_body=extra_body,
        verify=verify,
        params=params,
    )
    return embedding_call(options, input)


async def _masked(call: Call, exchange: Awaitable[T]) -> T:
    """``exchange``'s result; an error it raises has every secret of ``call`` masked (the
    credentials in ``api_base`` and ``extra_headers`` as well as the key)."""
    try:
        return await exchange
    except LLMError as exc:
        raise exc._with_context(
            provider=call.provider, model=call.model, secret=call.secrets
        ) from exc.__cause__


async def _fetch_response(call: ChatCall, spec: Provider, request: HttpRequest) -> ChatResponse:
    return await _masked(call, fetch_response(call, spec, request))


async def _fetch_embedding(
    call: EmbeddingCall, spec: EmbeddingProvider, request: HttpRequest
) -> EmbeddingResponse:
    provider: Provider = spec  # type: ignore[assignment]
    return await _masked(
        call,
        fetch(
            call,
            request,
            lambda body: spec.parse_embedding_response(body, call),
            lambda status, body, headers: provider.map_error(status, body, headers, call),
        ),
    )


def embedding(
    provider: str | None = None,
    model: str | None = None,
    *,
    input: str | Sequence[str],
    api_key: str | None = None,
    api_base: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    drop_params: bool = False,
    extra_headers: Mapping[str, str] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    verify: Verify = True,
    **params: Any,
) -> EmbeddingResponse:
    """Embed a string or a list of strings; blocks until the vectors arrive."""
    options = CallOptions(
        provider=provider,
        model=model,
        api_key=api_key,
        api_base=api_base,
        timeout=timeout,
        drop_params=drop_params,
        extra_headers=extra_headers,
        extra_body=extra_body,
        verify=verify,
        params=params,
    )
    call, spec, request = embedding_call(options, input)
    exchange = functools.partial(_fetch_embedding, call, spec, request)
    return run_sync(_telemetry.measured(call, exchange, operation="embeddings"))


async def aembedding(
    provider: str | None = None,
    model: str | None = None,
    *,
    input: str | Sequence[str],
    api_key: str | None = None,
    api_base: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    drop_params: bool = False,
    extra_headers: Mapping[str, str] | None = None,
    extra_body: Mapping[str, Any] | None = None,
    verify: Verify = True,
    **params: Any,
) -> EmbeddingResponse:
    """:func:`embedding` for asyncio."""
    options = CallOptions(
        provider=provider,
        model=model,
        api_key=api_key,
        api_base=api_base,
        timeout=timeout,
        drop_params=drop_params,
        extra_headers=extra_headers,
        extra_body=extra_body,
        verify=verify,
        params=params,
    )
    call, spec, request = embedding_call(options, input)
    exchange = functools.partial(_fetch_embedding, call, spec, request)
    return await _telemetry.measured(call, exchange, operation="embeddings")


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
    verify: Verify = ...,
    replay: bool = ...,
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
    verify: Verify = ...,
    replay: bool = ...,
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
    verify: Verify = True,
    replay: bool = True,
    **params: Any,
) -> ChatStream | ChatResponse:
    """Chat with any provider.

    ``completion("openai", "gpt-4o", messages=[...])`` (or ``model="openai/gpt-4o"``) returns a
    :class:`~rxllm.types.ChatResponse`, blocking until it arrives. With ``stream=True`` it
    returns at once a hot :class:`~rxllm.stream.ChatStream` of ``ChatChunk`` s; the request
    starts at the first subscription. Other keyword arguments are request parameters
    (``temperature``, ``max_tokens``, ``tools``, ...); a parameter the provider cannot take
    raises ``UnsupportedParamsError`` unless ``drop_params=True``.

    ``verify`` is TLS certificate verification: on by default (the system's CAs); a path to a
    CA bundle (PEM file or hashed directory) or an ``ssl.SSLContext`` trusts those instead;
    ``verify=False`` turns it off, with a ``RuntimeWarning``.

    ``replay=False`` (streams only) keeps no chunks for late subscribers, for very long
    answers: each chunk is dropped once every current subscriber has it, and a subscriber that
    comes after the first chunk gets ``ReplayUnavailableError``, never a partial sequence.
    """
    options = CallOptions(
        provider=provider,
        model=model,
        api_key=api_key,
        api_base=api_base,
        timeout=timeout,
        drop_params=drop_params,
        extra_headers=extra_headers,
        extra_body=extra_body,
        verify=verify,
        params=params,
    )
    call, spec, request = chat_call(options, messages, stream)
    if stream:
        return ChatStream(call, spec, request, replay=replay)
    exchange = functools.partial(_fetch_response, call, spec, request)
    return run_sync(_telemetry.measured(call, exchange))


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
    verify: Verify = ...,
    replay: bool = ...,
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
    verify: Verify = ...,
    replay: bool = ...,
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
    verify: Verify = True,
    replay: bool = True,
    **params: Any,
) -> ChatStream | ChatResponse:
    """:func:`completion` for asyncio: the request runs on the running loop.

    With ``stream=True`` the stream is bound to the running loop and returned unstarted (it
    starts at the first subscription, exactly as from :func:`completion`).
    """
    options = CallOptions(
        provider=provider,
        model=model,
        api_key=api_key,
        api_base=api_base,
        timeout=timeout,
        drop_params=drop_params,
        extra_headers=extra_headers,
        extra_body=extra_body,
        verify=verify,
        params=params,
    )
    call, spec, request = chat_call(options, messages, stream)
    if stream:
        chat_stream = ChatStream(call, spec, request, replay=replay)
        chat_stream.bind()
        return chat_stream
    exchange = functools.partial(_fetch_response, call, spec, request)
    return await _telemetry.measured(call, exchange)
