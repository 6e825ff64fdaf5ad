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
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ._spec import LOOPBACK_SCHEME, masked_url
from .errors import BadRequestError, ConfigurationError

__all__ = [
    "Verify",
    "check_api_base",
    "check_api_key",
    "check_flag",
    "check_headers",
    "check_mapping",
    "check_name",
    "check_params",
    "check_timeout",
    "check_verify",
]

#: ``verify=``: True (the system's CAs), False (no verification: a warning), a CA bundle path,
#: or a ready ``ssl.SSLContext``.
Verify = bool | str | os.PathLike[str] | ssl.SSLContext

_CONTROL = frozenset(chr(c) for c in (*range(32), 127))


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
    "response_format": (lambda v: isinstance(v, Mapping), "a dict"),
    "stream_options": (lambda v: isinstance(v, Mapping), "a dict"),
    "logit_bias": (lambda v: isinstance(v, Mapping), "a dict"),
    "logprobs": (lambda v: isinstance(v, bool), "True or False"),
    "parallel_tool_calls": (lambda v: isinstance(v, bool), "True or False"),
    "user": (lambda v: isinstance(v, str), "a string"),
    "reasoning_effort": (lambda v: isinstance(v, str), "a string"),
}


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
