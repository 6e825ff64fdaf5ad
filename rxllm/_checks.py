"""The caller's arguments, checked before any I/O (docs/contracts.md, 2 and 11).

Everything a caller can get wrong in the shape of a request - a name that is not a string, a
timeout that is not a positive number, a base URL without ``http(s)://``, an API key or header
with a line break (which aiohttp would refuse at send time, or worse, send), a parameter of the
wrong type, a CA bundle that does not load - is a :class:`ConfigurationError` or a
:class:`BadRequestError` raised by ``completion()`` itself, never an odd failure of the request.
Messages that name a secret never repeat its value.
"""

from __future__ import annotations

import functools
import math
import os
import ssl
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import msgspec

from . import providers
from ._provider import Call
from ._schema import is_struct_type, response_format
from ._secrets import header_credentials, masked_url, url_credentials
from ._wire import LOOPBACK_SCHEME, HttpRequest
from .errors import BadRequestError, ConfigurationError, LLMError

__all__ = [
    "DEFAULT_TIMEOUT",
    "CallOptions",
    "Resolved",
    "Verify",
    "check_api_base",
    "check_api_key",
    "check_flag",
    "check_headers",
    "check_mapping",
    "check_name",
    "check_options",
    "check_params",
    "check_timeout",
    "check_verify",
    "structured_params",
]

#: ``verify=``: True (the system's CAs), False (no verification: a warning), a CA bundle path,
#: or a ready ``ssl.SSLContext``.
Verify = bool | str | os.PathLike[str] | ssl.SSLContext

_CONTROL = frozenset(chr(c) for c in (*range(32), 127))

#: Seconds allowed to connect and between reads of a stream (total time for a plain request).
DEFAULT_TIMEOUT = 600.0

C = TypeVar("C", bound=Call)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_name(value: Any, what: str) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigurationError(f"{what} must be a non-empty string, not {value!r}")


def check_flag(value: Any, what: str) -> None:
    if not isinstance(value, bool):
        raise BadRequestError(f"{what} must be True or False, not {value!r}")


def check_timeout(timeout: Any) -> float | None:
    """Seconds (a positive, finite number) or None for no limit."""
    if timeout is None:
        return None
    if not _is_number(timeout) or not math.isfinite(timeout) or timeout <= 0:
        raise ConfigurationError(
            f"timeout must be positive seconds (or None for no limit), not {timeout!r}"
        )
    return float(timeout)


def check_api_key(key: Any, provider: str) -> str | None:
    """A key is a string without control characters (surrounding whitespace, as left by a
    file or an ``export`` line, is dropped). The key itself is never quoted back."""
    if key is None:
        return None
    if not isinstance(key, str):
        raise ConfigurationError(
            f"the API key for {provider} must be a string, not {type(key).__name__}",
            provider=provider,
        )
    key = key.strip()
    if not _CONTROL.isdisjoint(key):
        raise ConfigurationError(
            f"the API key for {provider} contains a line break or another control character",
            provider=provider,
        )
    return key or None


def check_api_base(base: Any, provider: str) -> str:
    """An http(s) URL with a host; "" (no base known: the provider module asks for one) and
    rxllm's own loopback URLs pass as they are."""
    if not isinstance(base, str):
        raise ConfigurationError(
            f"api_base must be a URL string, not {type(base).__name__}", provider=provider
        )
    if not base or base.startswith(LOOPBACK_SCHEME):
        return base
    try:
        parts = urlsplit(base)
        host = parts.hostname
    except ValueError as exc:
        raise ConfigurationError(f"api_base is not a valid URL: {exc}", provider=provider) from None
    if parts.scheme not in ("http", "https") or not host or not _CONTROL.isdisjoint(base):
        raise ConfigurationError(
            f"api_base must be an http:// or https:// URL with a host, not {masked_url(base)!r}",
            provider=provider,
        )
    return base


def check_url_credentials(url: str, headers: Mapping[str, str]) -> None:
    """Credentials in a URL (``https://user:password@proxy/v1``) become a Basic
    ``Authorization`` header, which cannot be sent beside the provider's own: refuse the pair
    before any I/O instead of letting the HTTP client fail with a bare ValueError."""
    if "@" not in url or not any(name.lower() == "authorization" for name in headers):
        return
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    if parts.username is not None:
        raise ConfigurationError(
            f"api_base carries credentials ({masked_url(url)}) and the request has its own "
            "Authorization header (the API key, or extra_headers): HTTP cannot send both. "
            "Remove them from api_base (a proxy's credentials can go in extra_headers, e.g. "
            "Proxy-Authorization)."
        )


def check_mapping(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise BadRequestError(f"{what} must be a dict with string keys, not {value!r}")
    return dict(value)


def check_headers(headers: Any) -> dict[str, str]:
    """``extra_headers``: string names and values, no line breaks (values never quoted: a
    header may hold a credential)."""
    checked = check_mapping(headers, "extra_headers")
    for name, value in checked.items():
        if not isinstance(value, str):
            raise BadRequestError(
                f"extra_headers[{name!r}] must be a string, not {type(value).__name__}"
            )
        if not name or not _CONTROL.isdisjoint(name) or not _CONTROL.isdisjoint(value):
            raise BadRequestError(
                f"extra_headers[{name!r}] holds a line break or another control character"
            )
    return checked


# --- request parameters ------------------------------------------------------------------------


def _number(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _stop(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, (list, tuple)) and all(isinstance(s, str) for s in value)
    )


def _tools(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and all(isinstance(t, Mapping) for t in value)


def _text_or_mapping(value: Any) -> bool:
    return isinstance(value, (str, Mapping))


#: The OpenAI-style parameters every provider translates (docs/contracts.md, 11), with the type
#: each must have: a wrong type fails here rather than as the provider's 400. None means "not
#: set".
_PARAMS: dict[str, tuple[Any, str]] = {
    "temperature": (_number, "a number"),
    "top_p": (_number, "a number"),
    "presence_penalty": (_number, "a number"),
    "frequency_penalty": (_number, "a number"),
    "max_tokens": (_count, "a positive integer"),
    "max_completion_tokens": (_count, "a positive integer"),
    "n": (_count, "a positive integer"),
    "top_k": (_count, "a positive integer"),
    "top_logprobs": (_integer, "an integer"),
    "seed": (_integer, "an integer"),
    "stop": (_stop, "a string or a list of strings"),
    "tools": (_tools, "a list of tool dicts"),
    "tool_choice": (_text_or_mapping, "a string or a dict"),
    "response_format": (
        lambda v: isinstance(v, Mapping) or is_struct_type(v),
        "a dict or a msgspec.Struct type",
    ),
    "stream_options": (lambda v: isinstance(v, Mapping), "a dict"),
    "logit_bias": (lambda v: isinstance(v, Mapping), "a dict"),
    "logprobs": (lambda v: isinstance(v, bool), "True or False"),
    "parallel_tool_calls": (lambda v: isinstance(v, bool), "True or False"),
    "user": (lambda v: isinstance(v, str), "a string"),
    "reasoning_effort": (lambda v: isinstance(v, str), "a string"),
}


def structured_params(params: dict[str, Any]) -> dict[str, Any]:
    """``response_format`` given as a ``msgspec.Struct`` type -> OpenAI's ``json_schema`` form
    with the type's schema (``rxllm/_schema.py``), which every provider translates."""
    value = params.get("response_format")
    if not is_struct_type(value):
        return params
    return {**params, "response_format": response_format(value)}


def check_params(params: Mapping[str, Any]) -> None:
    """The common parameters have the right types (the provider checks which it takes)."""
    for name, value in params.items():
        rule = _PARAMS.get(name)
        if rule is not None and value is not None and not rule[0](value):
            raise BadRequestError(f"{name} must be {rule[1]}, not {value!r}", param=name)


# --- TLS ---------------------------------------------------------------------------------------


def check_verify(verify: Any) -> bool | ssl.SSLContext:
    """``verify=`` as aiohttp's ``ssl=``: True, False (warned about), or a context."""
    if verify is True:
        return True
    if verify is False:
        warnings.warn(
            "rxllm: TLS certificate verification is disabled (verify=False): anyone on the "
            "network path can read and alter the request, API key included",
            RuntimeWarning,
            stacklevel=5,
        )
        return False
    if isinstance(verify, ssl.SSLContext):
        return verify
    if isinstance(verify, (str, os.PathLike)):
        return _ca_bundle(os.fspath(verify))
    raise ConfigurationError(
        f"verify must be True, False, a CA bundle path or an ssl.SSLContext, not {verify!r}"
    )


@functools.lru_cache(maxsize=16)
def _ca_bundle(path: str) -> ssl.SSLContext:
    """A verifying context trusting the CA certificates in ``path`` (a PEM file, or a directory
    of hashed certificates). Cached: loading a bundle takes milliseconds."""
    try:
        if os.path.isdir(path):
            return ssl.create_default_context(capath=path)
        return ssl.create_default_context(cafile=path)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"cannot load the CA bundle {path!r}: {exc}") from None


# --- a call's options, in one step ----------------------------------------------------------


class CallOptions(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a call says besides its content (messages or input), as the caller gave it:
    which provider and model, where and how to send, and the request parameters.

    ``completion``, ``embedding`` (and their async forms) make one from their arguments; a
    router deployment holds one. :func:`check_options` checks it. Its repr masks the key."""

    provider: str | None = None
    model: str | None = None
    api_key: str | None = None
    api_base: str | None = None
    timeout: float | None = DEFAULT_TIMEOUT
    drop_params: bool = False
    extra_headers: Mapping[str, str] | None = None
    extra_body: Mapping[str, Any] | None = None
    verify: Verify = True
    #: Request parameters and provider options (``temperature``, Azure's ``api_version``...).
    params: Mapping[str, Any] | None = None

    def __repr__(self) -> str:
        base = masked_url(self.api_base) if isinstance(self.api_base, str) else self.api_base
        return (
            f"CallOptions(provider={self.provider!r}, model={self.model!r}, api_base={base!r}, "
            f"api_key={'***' if self.api_key else None!r}, "
            f"params={sorted(self.params or ())})"
        )


class Resolved(msgspec.Struct, frozen=True, kw_only=True):
    """A :class:`CallOptions` checked: the provider's implementation (``spec``) and the
    fields of its ``Call``. Request parameters are split from provider options but not yet
    checked by the provider (:meth:`request_params` does that)."""

    #: The provider implementation (a ``Provider``, or an ``EmbeddingProvider`` too).
    spec: Any
    provider: str
    model: str
    api_key: str | None
    api_base: str
    timeout: float | None
    drop_params: bool
    extra_headers: dict[str, str]
    extra_body: dict[str, Any]
    verify: bool | ssl.SSLContext
    #: Provider options (``option_names``), from the call or the provider's environment.
    options: dict[str, Any]
    #: Request parameters, as given.
    params: dict[str, Any]

    def __repr__(self) -> str:
        return f"Resolved({self.provider}/{self.model} @ {masked_url(self.api_base)})"

    def named(self, error: LLMError) -> LLMError:
        """``error`` naming this call's provider and model, its credentials masked."""
        key = (self.api_key,) if self.api_key else ()
        secrets = (*key, *url_credentials(self.api_base), *header_credentials(self.extra_headers))
        return error._with_context(provider=self.provider, model=self.model, secret=secrets)

    def request_params(self, check: Callable[[dict[str, Any], bool], dict[str, Any]]) -> Any:
        """The parameters to send: a ``response_format`` Struct type becomes its schema
        (:func:`structured_params`), then ``check`` is the provider's (``check_params`` or
        ``check_embedding_params``), then the common types; errors name provider and model."""
        try:
            params = check(structured_params(self.params), self.drop_params)
            check_params(params)
        except LLMError as exc:
            self.named(exc)
            raise
        return params

    def call(self, cls: type[C], params: dict[str, Any], **content: Any) -> C:
        """The ``Call`` (``ChatCall`` or ``EmbeddingCall``, ``content`` its own fields)."""
        return cls(
            provider=self.provider,
            model=self.model,
            params=params,
            api_key=self.api_key,
            api_base=self.api_base,
            timeout=self.timeout,
            drop_params=self.drop_params,
            extra_headers=self.extra_headers,
            extra_body=self.extra_body,
            options=self.options,
            verify=self.verify,
            **content,
        )

    def request(self, build: Callable[[C], HttpRequest], call: C) -> HttpRequest:
        """The provider's request for ``call``; a value JSON cannot carry is the caller's
        error, found before I/O. Errors of the builder name provider and model."""
        try:
            request = build(call)
            check_url_credentials(request.url, request.headers)
        except LLMError as exc:
            self.named(exc)
            raise
        except (TypeError, msgspec.EncodeError) as exc:
            raise BadRequestError(
                f"the request cannot be encoded as JSON: {exc}",
                provider=self.provider,
                model=self.model,
            ) from None
        return request


def check_options(options: CallOptions, capability: str | None = None) -> Resolved:
    """Check a call's options and resolve them, before any I/O: the provider (named, or
    inferred from the model), that it offers ``capability`` (``"streaming"``,
    ``"embeddings"``), its key and base URL (given, else from its environment variables), the
    timeout, headers, body and TLS settings. Raises ``ConfigurationError`` or
    ``BadRequestError``."""
    check_name(options.provider, "provider")
    check_name(options.model, "model")
    name, model = providers.split_model(options.provider, options.model)
    info = providers.provider_info(name)
    if capability is not None and not getattr(info, capability):
        raise ConfigurationError(f"{name} does not offer {capability}", provider=name)
    spec = providers.get_provider(name)
    key = check_api_key(providers.api_key_for(info, options.api_key), name)
    if key is None and info.key_required:
        variables = " or ".join(info.env_keys) or "api_key="
        raise ConfigurationError(f"no API key: pass api_key=... or set {variables}", provider=name)
    base = check_api_base(providers.api_base_for(info, options.api_base), name)
    timeout = check_timeout(options.timeout)
    check_flag(options.drop_params, "drop_params")
    names = spec.option_names
    provider_options: dict[str, Any] = {}
    params: dict[str, Any] = {}
    for k, v in (options.params or {}).items():
        if k in names:
            provider_options[k] = v
        elif k == "stream":
            raise BadRequestError("pass stream= as its own argument")
        else:
            params[k] = v
    for option, variable in info.env_options.items():
        if option not in provider_options and os.environ.get(variable):
            provider_options[option] = os.environ[variable]
    return Resolved(
        spec=spec,
        provider=name,
        model=model,
        api_key=key,
        api_base=base,
        timeout=timeout,
        drop_params=options.drop_params,
        extra_headers=check_headers(options.extra_headers),
        extra_body=check_mapping(options.extra_body, "extra_body"),
        verify=check_verify(options.verify),
        options=provider_options,
        params=params,
    )
