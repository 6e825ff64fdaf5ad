"""``completion`` and ``acompletion``: validate everything, then stream or fetch.

Every check happens before any I/O (docs/contracts.md, 2): unknown provider, missing API key,
empty or malformed messages and unknown parameters raise at call time, so a stream that exists
is a stream that can be sent.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar, overload

import msgspec

from . import _checks, providers
from ._checks import Verify
from ._loop import run_sync
from ._spec import (
    Call,
    ChatCall,
    EmbeddingCall,
    EmbeddingProvider,
    HttpRequest,
    Provider,
    header_credentials,
    url_credentials,
)
from .errors import BadRequestError, ConfigurationError, LLMError
from .stream import ChatStream, fetch, fetch_response
from .types import ChatResponse, EmbeddingResponse, Message

__all__ = [
    "DEFAULT_TIMEOUT",
    "acompletion",
    "aembedding",
    "completion",
    "embedding",
    "prepare",
    "prepare_embedding",
]

#: Seconds allowed to connect and between reads of a stream (total time for a plain request).
DEFAULT_TIMEOUT = 600.0

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


def _common(
    provider: str | None,
    model: str | None,
    *,
    api_key: str | None,
    api_base: str | None,
    timeout: float | None,
    drop_params: bool,
    extra_headers: Mapping[str, str] | None,
    extra_body: Mapping[str, Any] | None,
    params: Mapping[str, Any] | None,
    option_names: Callable[[Any], frozenset[str]],
    capability: str | None = None,
    verify: Verify = True,
) -> tuple[Any, dict[str, Any]]:
    """Resolve provider, key, base URL and options shared by every kind of call.

    Returns the provider implementation and the keyword arguments of a ``Call``; request
    parameters are left in ``params`` for the caller to check against the provider."""
    _checks.check_name(provider, "provider")
    _checks.check_name(model, "model")
    name, model_name = providers.split_model(provider, model)
    info = providers.provider_info(name)
    if capability is not None and not getattr(info, capability):
        raise ConfigurationError(f"{name} does not offer {capability}", provider=name)
    spec = providers.get_provider(name)
    key = _checks.check_api_key(providers.api_key_for(info, api_key), name)
    if key is None and info.key_required:
        variables = " or ".join(info.env_keys) or "api_key="
        raise ConfigurationError(f"no API key: pass api_key=... or set {variables}", provider=name)
    base = _checks.check_api_base(providers.api_base_for(info, api_base), name)
    timeout = _checks.check_timeout(timeout)
    _checks.check_flag(drop_params, "drop_params")
    names = option_names(spec)
    options: dict[str, Any] = {}
    request_params: dict[str, Any] = {}
    for k, v in (params or {}).items():
        if k in names:
            options[k] = v
        elif k == "stream":
            raise BadRequestError("pass stream= as its own argument")
        else:
            request_params[k] = v
    for option, variable in info.env_options.items():
        if option not in options and os.environ.get(variable):
            options[option] = os.environ[variable]
    common = {
        "provider": name,
        "model": model_name,
        "params": request_params,
        "api_key": key,
        "api_base": base,
        "timeout": timeout,
        "drop_params": drop_params,
        "extra_headers": _checks.check_headers(extra_headers),
        "extra_body": _checks.check_mapping(extra_body, "extra_body"),
        "options": options,
        "verify": _checks.check_verify(verify),
    }
    return spec, common


def _built(build: Callable[[], HttpRequest], common: dict[str, Any]) -> HttpRequest:
    """Build the request; a value JSON cannot carry is the caller's error, found before I/O.
    Errors of the provider's request builder name provider and model."""
    try:
        request = _checked(build, common)
    except (TypeError, msgspec.EncodeError) as exc:
        raise BadRequestError(
            f"the request cannot be encoded as JSON: {exc}",
            provider=common["provider"],
            model=common["model"],
        ) from None
    _checked(lambda: _checks.check_url_credentials(request.url, request.headers), common)
    return request


def _secrets(common: dict[str, Any]) -> tuple[str, ...]:
    """The credentials of a call being built (as :attr:`Call.secrets` once it exists)."""
    key = common["api_key"]
    return (
        *((key,) if key else ()),
        *url_credentials(common["api_base"]),
        *header_credentials(common["extra_headers"] or {}),
    )


def _checked(check: Callable[[], T], common: dict[str, Any]) -> T:
    """Run a provider's check; its errors name provider and model."""
    try:
        return check()
    except LLMError as exc:
        exc._with_context(
            provider=common["provider"], model=common["model"], secret=_secrets(common)
        )
        raise


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
    """Validate a chat call and build its HTTP request, without sending anything."""
    _checks.check_flag(stream, "stream")
    spec, common = _common(
        provider,
        model,
        api_key=api_key,
        api_base=api_base,
        timeout=timeout,
        drop_params=drop_params,
        extra_headers=extra_headers,
        extra_body=extra_body,
        params=params,
        option_names=lambda p: p.option_names,
        capability=None if not stream else "streaming",
        verify=verify,
    )
    provider_spec: Provider = spec
    common["params"] = _checked(
        lambda: provider_spec.check_params(common["params"], drop_params), common
    )
    _checked(lambda: _checks.check_params(common["params"]), common)
    call = ChatCall(messages=_messages(messages), stream=stream, **common)
    return call, provider_spec, _built(lambda: provider_spec.build_request(call), common)


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
    """Validate an embedding call and build its HTTP request, without sending anything."""
    texts = [input] if isinstance(input, str) else input
    if (
        not isinstance(texts, (list, tuple))
        or not texts
        or not all(isinstance(t, str) for t in texts)
    ):
        raise BadRequestError("input must be a string or a non-empty list of strings")
    spec, common = _common(
        provider,
        model,
        api_key=api_key,
        api_base=api_base,
        timeout=timeout,
        drop_params=drop_params,
        extra_headers=extra_headers,
        extra_body=extra_body,
        params=params,
        option_names=lambda p: p.option_names,
        capability="embeddings",
        verify=verify,
    )
    provider_spec: EmbeddingProvider = spec
    common["params"] = _checked(
        lambda: provider_spec.check_embedding_params(common["params"], drop_params), common
    )
    _checked(lambda: _checks.check_params(common["params"]), common)
    call = EmbeddingCall(input=list(texts), **common)
    return call, provider_spec, _built(lambda: provider_spec.build_embedding_request(call), common)


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
    call, spec, request = prepare_embedding(
        provider,
        model,
        input=input,
        api_key=api_key,
        api_base=api_base,
        timeout=timeout,
        drop_params=drop_params,
        extra_headers=extra_headers,
        extra_body=extra_body,
        params=params,
        verify=verify,
    )
    return run_sync(_fetch_embedding(call, spec, request))


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
    call, spec, request = prepare_embedding(
        provider,
        model,
        input=input,
        api_key=api_key,
        api_base=api_base,
        timeout=timeout,
        drop_params=drop_params,
        extra_headers=extra_headers,
        extra_body=extra_body,
        params=params,
        verify=verify,
    )
    return await _fetch_embedding(call, spec, request)


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
        verify=verify,
    )
    if stream:
        return ChatStream(call, spec, request, replay=replay)
    return run_sync(_fetch_response(call, spec, request))


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
        verify=verify,
    )
    if stream:
        chat_stream = ChatStream(call, spec, request, replay=replay)
        chat_stream.bind()
        return chat_stream
    return await _fetch_response(call, spec, request)
