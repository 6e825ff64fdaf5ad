"""LiteLLM's cache configuration, read into rxllm's: so a proxy config that turns caching on
(``litellm_settings: {cache: true, cache_params: {...}}``) carries over to ``rxllm serve``."""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from .._secrets import masked_url
from ..errors import ConfigurationError
from ._cache import Mode, ResponseCache
from ._store import check_redis_url

__all__ = ["CacheSettings", "cache_settings_from_litellm"]

_WHERE = "litellm_settings.cache_params"
#: LiteLLM's call types (``supported_call_types``); rxllm's chat completions are LiteLLM's
#: ``completion``/``acompletion``, its Anthropic messages ``anthropic_messages``.
_CALL_TYPES = frozenset(
    {
        "completion",
        "acompletion",
        "embedding",
        "aembedding",
        "atranscription",
        "transcription",
        "atext_completion",
        "text_completion",
        "arerank",
        "rerank",
        "responses",
        "aresponses",
        "anthropic_messages",
        "aanthropic_messages",
    }
)
_CHAT = frozenset({"completion", "acompletion"})
_MESSAGES = frozenset({"anthropic_messages", "aanthropic_messages"})
#: LiteLLM's cache types rxllm does not offer (an error: never silently another kind).
_OTHER_TYPES = ("redis-semantic", "valkey-semantic", "qdrant-semantic", "s3", "gcs", "azure-blob")
_ADDRESS = ("url", "redis_url", "host", "port", "password", "username", "ssl", "db")
_USED = frozenset(
    {
        "type",
        "ttl",
        "default_in_memory_ttl",
        "default_in_redis_ttl",
        "namespace",
        "mode",
        "supported_call_types",
        "max_size_in_memory",
        "max_messages",
        "socket_timeout",
        *_ADDRESS,
    }
)
#: The in-memory TTL LiteLLM uses when none is given (its ``InMemoryCache`` default).
_LOCAL_TTL = 600.0
_ENV_PREFIX = "os.environ/"


class CacheSettings(msgspec.Struct, frozen=True, kw_only=True):
    """A cache configuration, as :func:`cache_settings_from_litellm` reads it; :meth:`build`
    makes the :class:`~rxllm.cache.ResponseCache`."""

    type: Literal["local", "redis"]
    #: Seconds an answer lives (None: until Redis evicts it, as LiteLLM keeps Redis entries).
    ttl: float | None
    namespace: str = "rxllm"
    mode: Mode = "default_on"
    #: The Redis URL (type ``redis``), and where it came from: ``cache_params``, ``REDIS_URL``,
    #: ``REDIS_HOST``, or ``router_settings.redis_url``.
    redis_url: str | None = None
    redis_source: str | None = None
    redis_timeout: float = 1.0
    max_entries: int = 1000
    max_messages: int | None = None
    #: LiteLLM's ``supported_call_types``.
    call_types: frozenset[str] = _CALL_TYPES
    #: Keys of ``cache_params`` rxllm does not use, as dotted paths (for the config's list of
    #: unsupported settings).
    ignored: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return f"CacheSettings({self.describe()})"

    @property
    def chat_completions(self) -> bool:
        """Whether ``/v1/chat/completions`` is cached (``completion`` or ``acompletion`` among
        the call types)."""
        return not _CHAT.isdisjoint(self.call_types)

    @property
    def messages(self) -> bool:
        """Whether ``/v1/messages`` is cached (``anthropic_messages`` or its async form)."""
        return not _MESSAGES.isdisjoint(self.call_types)

    def describe(self) -> str:
        """One line for logs (the Redis password masked)."""
        where = "this process (in memory)"
        if self.redis_url is not None:
            where = f"Redis at {masked_url(self.redis_url)} (from {self.redis_source})"
        ttl = "no expiry" if self.ttl is None else f"ttl {self.ttl:g} s"
        return f"{self.type} cache in {where}, {ttl}, mode {self.mode}, namespace {self.namespace}"

    def build(self, **overrides: Any) -> ResponseCache:
        """The cache (``overrides``: other :class:`~rxllm.cache.ResponseCache` arguments)."""
        settings: dict[str, Any] = {
            "ttl": self.ttl,
            "namespace": self.namespace,
            "mode": self.mode,
            "redis_url": self.redis_url,
            "redis_timeout": self.redis_timeout,
            "max_entries": self.max_entries,
            "max_messages": self.max_messages,
        }
        settings.update(overrides)
        return ResponseCache(**settings)


def _resolved(value: Any, environ: Mapping[str, str], where: str) -> Any:
    """``os.environ/NAME`` read from ``environ`` (the gateway's loader does it too)."""
    if isinstance(value, str) and value.startswith(_ENV_PREFIX):
        name = value[len(_ENV_PREFIX) :]
        if name not in environ:
            raise ConfigurationError(f"{where}: the environment variable {name} is not set")
        return environ[name]
    return value


def _seconds(params: Mapping[str, Any], name: str) -> float | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1e12:
        return float(value)
    raise ConfigurationError(f"{_WHERE}.{name} must be positive seconds, not {value!r}")


def _count(params: Mapping[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise ConfigurationError(f"{_WHERE}.{name} must be a positive integer, not {value!r}")


def _url(
    host: str,
    port: Any,
    *,
    password: Any,
    username: Any,
    ssl: bool,
    db: Any,
    where: str,
) -> str:
    if not isinstance(host, str) or not host:
        raise ConfigurationError(f"{where}host must be a host name, not {host!r}")
    try:
        number = int(port) if port not in (None, "") else 6379
    except (TypeError, ValueError):
        raise ConfigurationError(f"{where}port must be a port number, not {port!r}") from None
    auth = ""
    if password not in (None, ""):
        user = urllib.parse.quote(str(username), safe="") if username else ""
        auth = f"{user}:{urllib.parse.quote(str(password), safe='')}@"
    name = f"[{host}]" if ":" in host and not host.startswith("[") else host
    database = f"/{int(db)}" if db not in (None, "") else ""
    return f"{'rediss' if ssl else 'redis'}://{auth}{name}:{number}{database}"


def _true(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def _redis_address(
    params: Mapping[str, Any], environ: Mapping[str, str], fallback: str | None
) -> tuple[str, str] | None:
    """(URL, where it came from) for a Redis cache: ``cache_params``' own address, else
    ``REDIS_URL``, else ``REDIS_HOST`` (``REDIS_PORT``, ``REDIS_PASSWORD``, ``REDIS_USERNAME``,
    ``REDIS_SSL``), as LiteLLM reads them; else ``fallback`` (``router_settings.redis_url``)."""
    url = params.get("url") or params.get("redis_url")
    if url:
        return str(url), _WHERE
    if params.get("host"):
        return (
            _url(
                params["host"],
                params.get("port"),
                password=params.get("password"),
                username=params.get("username"),
                ssl=_true(params.get("ssl")),
                db=params.get("db"),
                where=f"{_WHERE}.",
            ),
            _WHERE,
        )
    if environ.get("REDIS_URL"):
        return environ["REDIS_URL"], "REDIS_URL"
    if environ.get("REDIS_HOST"):
        return (
            _url(
                environ["REDIS_HOST"],
                environ.get("REDIS_PORT"),
                password=environ.get("REDIS_PASSWORD"),
                username=environ.get("REDIS_USERNAME"),
                ssl=_true(environ.get("REDIS_SSL")),
                db=None,
                where="the environment's REDIS_",
            ),
            "REDIS_HOST",
        )
    if fallback:
        return fallback, "router_settings.redis_url"
    return None


def cache_settings_from_litellm(
    litellm_settings: Mapping[str, Any],
    *,
    redis_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> CacheSettings | None:
    """The cache a LiteLLM proxy config asks for, or None when it asks for none
    (``litellm_settings.cache`` absent or false). Pure: reads only its arguments (``environ``
    defaults to ``os.environ``); every mistake is a ``ConfigurationError`` naming the key.

    ``cache: true`` and ``cache_params``:

    * ``type``: ``local`` (this process) or ``redis``. Without ``cache_params`` it is Redis,
      as in LiteLLM's proxy; with ``cache_params`` but no ``type`` it is Redis when they give
      a Redis address (LiteLLM would quietly keep answers in memory, uncoordinated between
      instances), else local. Any other type (semantic caches, s3, gcs...) is an error.
    * Redis's address: ``url`` (or ``redis_url``), else ``host``/``port``/``password``/
      ``username``/``ssl``/``db``, else the environment (``REDIS_URL``, else ``REDIS_HOST``,
      ``REDIS_PORT``, ``REDIS_PASSWORD``, ``REDIS_USERNAME``, ``REDIS_SSL``), else
      ``redis_url`` (the gateway passes ``router_settings.redis_url``). Redis with none of
      them is an error, never a quiet fallback to memory.
    * ``ttl`` seconds (``default_in_memory_ttl`` / ``default_in_redis_ttl`` win for their
      type, as in LiteLLM); without any: 600 s in memory, no expiry in Redis.
    * ``namespace`` (default ``rxllm``), ``mode`` (``default_on``, the default, or
      ``default_off``: only requests with ``cache: {"use-cache": true}``),
      ``supported_call_types``, ``max_size_in_memory`` (entries), ``max_messages``,
      ``socket_timeout`` (seconds per Redis command).

    Other keys are listed in :attr:`CacheSettings.ignored`.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    enabled = _resolved(litellm_settings.get("cache"), env, "litellm_settings.cache")
    if enabled is None or enabled is False:
        return None
    if enabled is not True:
        raise ConfigurationError(f"litellm_settings.cache must be true or false, not {enabled!r}")
    raw = litellm_settings.get("cache_params")
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"{_WHERE} must be a mapping, not {type(raw).__name__}")
    params = {str(k): _resolved(v, env, f"{_WHERE}.{k}") for k, v in raw.items()}
    kind = params.get("type")
    if kind is None:
        given = any(params.get(k) for k in ("url", "redis_url", "host"))
        kind = "redis" if not params or given else "local"
    if kind in _OTHER_TYPES or kind == "disk":
        raise ConfigurationError(
            f"{_WHERE}.type {kind!r} is not supported by rxllm: use 'local' or 'redis'"
        )
    if kind not in ("local", "redis"):
        raise ConfigurationError(f"{_WHERE}.type must be 'local' or 'redis', not {kind!r}")
    mode = params.get("mode") or "default_on"
    if mode not in ("default_on", "default_off"):
        raise ConfigurationError(
            f"{_WHERE}.mode must be 'default_on' or 'default_off', not {mode!r}"
        )
    namespace = params.get("namespace") or "rxllm"
    if not isinstance(namespace, str):
        raise ConfigurationError(f"{_WHERE}.namespace must be a string, not {namespace!r}")
    types = params.get("supported_call_types")
    call_types = _CALL_TYPES
    if types is not None:
        if isinstance(types, str) or not isinstance(types, (list, tuple)):
            raise ConfigurationError(f"{_WHERE}.supported_call_types must be a list")
        unknown = sorted(str(t) for t in types if t not in _CALL_TYPES)
        if unknown:
            raise ConfigurationError(
                f"{_WHERE}.supported_call_types: unknown call type(s) {unknown}; "
                f"known: {', '.join(sorted(_CALL_TYPES))}"
            )
        call_types = frozenset(types)
    specific = "default_in_redis_ttl" if kind == "redis" else "default_in_memory_ttl"
    ttl = _seconds(params, specific) or _seconds(params, "ttl")
    if ttl is None and kind == "local":
        ttl = _LOCAL_TTL
    ignored = [f"{_WHERE}.{k}" for k in params if k not in _USED]
    url = source = None
    if kind == "redis":
        found = _redis_address(params, env, redis_url)
        if found is None:
            raise ConfigurationError(
                f"litellm_settings.cache: true asks for a Redis cache (cache_params.type "
                "redis, or no cache_params, as in LiteLLM's proxy) but no Redis is named: set "
                f"{_WHERE}.url or host/port/password, REDIS_URL or REDIS_HOST/REDIS_PORT, or "
                f"router_settings.redis_url; or {_WHERE}.type: local for this process only"
            )
        url, source = found
        check_redis_url(url)
    else:
        ignored += [f"{_WHERE}.{k}" for k in _ADDRESS if k in params]
    if kind == "local" and "default_in_redis_ttl" in params:
        ignored.append(f"{_WHERE}.default_in_redis_ttl")
    if kind == "redis":
        for name in ("default_in_memory_ttl", "max_size_in_memory"):
            if name in params:
                ignored.append(f"{_WHERE}.{name}")
    return CacheSettings(
        type="redis" if kind == "redis" else "local",
        ttl=ttl,
        namespace=namespace,
        mode="default_off" if mode == "default_off" else "default_on",
        redis_url=url,
        redis_source=source,
        redis_timeout=_seconds(params, "socket_timeout") or 1.0,
        max_entries=_count(params, "max_size_in_memory") or 1000,
        max_messages=_count(params, "max_messages"),
        call_types=call_types,
        ignored=tuple(ignored),
    )
