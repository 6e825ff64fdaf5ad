"""The response cache: keys, lookups and stores, and the stream that answers from it."""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

import msgspec

from .._api import DEFAULT_TIMEOUT, MessageLike, _messages, prepare
from .._checks import Verify
from .._flow import producer_holds
from .._loop import run_sync
from .._provider import ChatCall, Provider
from .._wire import HttpRequest
from ..errors import BadRequestError, ConfigurationError, LLMError
from ..stream import ChatStream, fetch_response
from ..types import ChatChunk, ChatResponse
from ._control import CacheControl, CacheRequest, Pace, check_pace, parse_cache_control
from ._entry import CachedResponse, CacheEntry, Recorder, complete, decode_entry, encode_entry
from ._store import MemoryStore, RedisStore, Store

__all__ = [
    "IGNORED_PARAMS",
    "CacheStats",
    "CacheUse",
    "CachingStream",
    "CachingStreamMixin",
    "ResponseCache",
    "is_cache_hit",
]

Mode = Literal["default_on", "default_off"]

#: Request parameters that do not change the answer: left out of the key. Every other
#: parameter (and provider option, and ``extra_body``) is in it.
IGNORED_PARAMS = frozenset(
    {
        "stream",
        "stream_options",
        "user",
        "metadata",
        "timeout",
        "request_timeout",
        "api_key",
        "api_base",
        "base_url",
        "extra_headers",
        "drop_params",
        "verify",
        "replay",
        "cache",
        "num_retries",
        "max_retries",
        "store",
        "mock_delay",
    }
)

#: Bumped when what goes into a key changes (old entries are then simply not found).
_KEY_VERSION = 1
_canonical = msgspec.json.Encoder(order="sorted").encode


def _normal(value: Any) -> Any:
    """``value`` with every whole float written as an int (``temperature=1`` and ``1.0`` are
    one request), recursively through dicts, lists and tuples."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, Mapping):
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    return value


def is_cache_hit(answer: object) -> bool:
    """True when ``answer`` (a stream or a response) is answered from a cache. A stream made
    with a cache whose lookup has not run yet (a plain ``completion(..., stream=True)`` with
    Redis, before its first subscription) says False until it has."""
    return getattr(answer, "cache_hit", None) is True


class CacheStats(msgspec.Struct, frozen=True, kw_only=True):
    """What a cache has done since it was made (counts)."""

    #: Lookups answered from the cache, and lookups that found nothing usable.
    hits: int = 0
    misses: int = 0
    #: Answers stored; answers not stored (not complete, failed, too long, store unreachable).
    stores: int = 0
    not_stored: int = 0
    #: Redis unreachable (lookups and stores) and values that did not decode.
    errors: int = 0


class ResponseCache:
    """A cache of complete answers, keyed by the normalized request (see :meth:`key`).

    In this process by default (at most ``max_entries`` answers, least recently used out
    first), in Redis with ``redis_url`` (shared by every process and gateway that names it).
    Answers live ``ttl`` seconds (None: until evicted). A streamed answer is kept as its chunks
    and replayed as a stream with the same chunks (``pace``: None, at once; seconds between
    chunks; ``"recorded"``, as the original came) or as a whole response.

    ``mode`` decides for a router request that says nothing (and whose configuration says
    nothing): ``"default_off"`` (opt-in: ``cache=True`` on the request, or
    ``register(..., cache=True)``) or ``"default_on"`` (LiteLLM's default: every request).
    Requests with more than ``max_messages`` messages are neither looked up nor stored; an
    answer of more than ``max_chunks`` chunks is not stored.

    ``clock`` (seconds, wall-clock: entries carry it to other processes) and ``sleep`` (for
    ``pace``) can be replaced in tests. ``redis_timeout`` bounds every Redis command;
    ``redis_retry_after`` is how long an unreachable Redis is left alone.
    """

    def __init__(
        self,
        *,
        ttl: float | None = 600.0,
        max_entries: int = 1000,
        redis_url: str | None = None,
        namespace: str = "rxllm",
        mode: Mode = "default_off",
        pace: Pace = None,
        max_messages: int | None = None,
        max_chunks: int = 50_000,
        redis_timeout: float = 1.0,
        redis_retry_after: float = 5.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        _check_seconds("ttl", ttl, optional=True)
        _check_count("max_entries", max_entries)
        _check_count("max_chunks", max_chunks)
        if max_messages is not None:
            _check_count("max_messages", max_messages)
        _check_seconds("redis_timeout", redis_timeout)
        _check_seconds("redis_retry_after", redis_retry_after)
        if not isinstance(namespace, str) or not namespace:
            raise ConfigurationError(f"namespace must be a non-empty string, not {namespace!r}")
        if mode not in ("default_on", "default_off"):
            raise ConfigurationError(f"mode must be 'default_on' or 'default_off', not {mode!r}")
        try:
            self.pace = check_pace(pace, "pace")
        except BadRequestError as exc:
            raise ConfigurationError(exc.message) from None
        self.ttl = ttl
        self.namespace = namespace
        self.mode: Mode = mode
        self.max_messages = max_messages
        self.max_chunks = max_chunks
        self._clock = clock
        self._sleep = sleep
        self._counts = dict.fromkeys(CacheStats.__struct_fields__, 0)
        self._counts_lock = threading.Lock()
        self._store: Store
        if redis_url is None:
            self._store = MemoryStore(max_entries, clock)
        else:
            self._store = RedisStore(
                redis_url,
                timeout=redis_timeout,
                retry_after=redis_retry_after,
                clock=clock,
                on_error=lambda: self._count("errors"),
            )

    def __repr__(self) -> str:
        where = repr(self._store) if isinstance(self._store, RedisStore) else "memory"
        return f"ResponseCache({where}, ttl={self.ttl}, namespace={self.namespace!r})"

    @property
    def kind(self) -> str:
        """``"local"`` (this process) or ``"redis"``."""
        return self._store.kind

    @property
    def stats(self) -> CacheStats:
        with self._counts_lock:
            return CacheStats(**self._counts)

    def _count(self, name: str) -> None:
        with self._counts_lock:
            self._counts[name] += 1

    # --- keys ------------------------------------------------------------------------------

    def key(
        self,
        provider: str,
        model: str,
        messages: Sequence[MessageLike],
        params: Mapping[str, Any] | None = None,
        *,
        namespace: str | None = None,
    ) -> str:
        """The key of a request: ``<namespace>:<sha256 hex>`` of its canonical form.

        In the canonical form: ``provider`` and ``model`` as given (``cache.completion`` gives
        the resolved ones: ``model="openai/gpt-4o"`` and ``provider="openai", model="gpt-4o"``
        are one request; a router gives ``"router"`` and the configuration's name), the
        messages as ``Message`` structs (a dict and the equal struct are one message; fields
        left unset are left out), and the parameters that change the answer, dict keys sorted
        and whole floats as ints (``temperature=1`` is ``temperature=1.0``). Left out: the
        parameters of :data:`IGNORED_PARAMS` (``stream``, ``stream_options``, ``user``,
        ``metadata``, timeouts, keys and bases, retries...) and parameters that are None. The
        API base is not in it: the same model behind another URL is taken to answer alike.
        """
        kept = {
            name: _normal(value)
            for name, value in (params or {}).items()
            if name not in IGNORED_PARAMS and value is not None
        }
        form = [_KEY_VERSION, provider, model, _messages(messages), kept]
        try:
            canonical = _canonical(form)
        except (TypeError, msgspec.EncodeError) as exc:
            raise BadRequestError(
                f"a parameter cannot be part of a cache key: {exc}", param="cache"
            ) from None
        return f"{namespace or self.namespace}:{hashlib.sha256(canonical).hexdigest()}"

    # --- entries ---------------------------------------------------------------------------

    async def get(self, key: str, *, max_age: float | None = None) -> CacheEntry | None:
        """The entry under ``key`` (None: a miss - nothing there, expired, older than
        ``max_age`` seconds, unreadable, or the store unreachable). Counted as a hit or a miss."""
        data = await self._store.get(key)
        entry = decode_entry(data) if data is not None else None
        if data is not None and entry is None:
            self._count("errors")
        if entry is not None:
            now = self._clock()
            if entry.expired(now) or (max_age is not None and now - entry.stored_at > max_age):
                entry = None
        self._count("hits" if entry is not None else "misses")
        return entry

    def _keep(self, key: str, data: bytes | None, ttl: float | None) -> None:
        """Store an encoded entry (at once in memory; in the background on Redis)."""
        if data is None:
            self._count("not_stored")
            return
        self._store.put(key, data, ttl)
        self._count("stores")

    async def put(
        self, key: str, entry: CacheEntry, *, ttl: float | Literal["default"] | None = "default"
    ) -> None:
        """Store ``entry`` under ``key`` now (stamped with this cache's clock), for ``ttl``
        seconds (``"default"``: the cache's ``ttl``; None: until evicted); on Redis, returns
        once it is written (or skipped: Redis unreachable)."""
        if ttl == "default":
            ttl = self.ttl
        _check_seconds("ttl", ttl, optional=True)
        kept = msgspec.structs.replace(entry, stored_at=self._clock(), ttl=ttl)
        self._keep(key, encode_entry(kept), ttl)
        await self._store.drain()

    async def delete(self, key: str) -> None:
        await self._store.delete(key)

    async def clear(self) -> None:
        """Remove every entry of this cache's namespace."""
        await self._store.clear(self.namespace + ":")

    def drain(self, timeout: float | None = None) -> bool:
        """Block until every store begun so far is written (Redis writes run in the
        background); False if ``timeout`` came first."""
        return self._store.drain_sync(timeout)

    async def adrain(self) -> None:
        """:meth:`drain` for asyncio."""
        await self._store.drain()

    async def aclose(self) -> None:
        """Finish pending stores and close the Redis connections (they are closed at exit
        anyway)."""
        await self._store.aclose()

    def close(self) -> None:
        run_sync(self.aclose())

    def hit(self, entry: CacheEntry, key: str) -> CachedResponse:
        """``entry`` as the whole response a hit answers with."""
        return CachedResponse.of(entry.assembled(), key, entry.stored_at)

    # --- requests --------------------------------------------------------------------------

    def use(
        self,
        provider: str,
        model: str,
        messages: Sequence[MessageLike],
        params: Mapping[str, Any] | None,
        control: CacheControl,
        *,
        default: bool | None = None,
    ) -> CacheUse | None:
        """What one request does with this cache, or None when it does not use it: the
        request's ``control`` decides, then ``default`` (a router configuration's ``cache=``),
        then :attr:`mode`."""
        enabled = control.use
        if enabled is None:
            enabled = default if default is not None else self.mode == "default_on"
        if not enabled or not (control.lookup or control.store):
            return None
        if self.max_messages is not None and len(messages) > self.max_messages:
            return None
        key = self.key(provider, model, messages, params, namespace=control.namespace)
        return CacheUse(self, key, control)

    def _call_use(self, call: ChatCall, cache: CacheRequest) -> CacheUse | None:
        params: dict[str, Any] = {**call.options, **call.params}
        if call.extra_body:
            params["extra_body"] = call.extra_body
        control = parse_cache_control(cache)
        return self.use(call.provider, call.model, call.messages, params, control, default=True)

    @overload
    def completion(
        self,
        provider: str | None = ...,
        model: str | None = ...,
        *,
        messages: Sequence[MessageLike],
        stream: Literal[True],
        cache: CacheRequest = ...,
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
        self,
        provider: str | None = ...,
        model: str | None = ...,
        *,
        messages: Sequence[MessageLike],
        stream: Literal[False] = ...,
        cache: CacheRequest = ...,
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
        self,
        provider: str | None = None,
        model: str | None = None,
        *,
        messages: Sequence[MessageLike],
        stream: bool = False,
        cache: CacheRequest = None,
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
        """``rxllm.completion`` through this cache (no router, no gateway): the same arguments,
        checked the same way at call time, plus ``cache`` (this request's controls, see
        :func:`parse_cache_control`; calling the cache is opting in).

        A stream (a :class:`CachingStream`) stays lazy: the lookup happens at its first
        subscription, then it replays the hit or sends the request and stores the answer once
        it completes. Without ``stream`` it blocks: a hit is a :class:`CachedResponse`."""
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
        use = self._call_use(call, cache)
        if stream:
            if use is None:
                return ChatStream(call, spec, request, replay=replay)
            return CachingStream(call, spec, request, use=use, replay=replay)
        return run_sync(_fetch(use, call, spec, request))

    @overload
    async def acompletion(
        self,
        provider: str | None = ...,
        model: str | None = ...,
        *,
        messages: Sequence[MessageLike],
        stream: Literal[True],
        cache: CacheRequest = ...,
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
        self,
        provider: str | None = ...,
        model: str | None = ...,
        *,
        messages: Sequence[MessageLike],
        stream: Literal[False] = ...,
        cache: CacheRequest = ...,
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
        self,
        provider: str | None = None,
        model: str | None = None,
        *,
        messages: Sequence[MessageLike],
        stream: bool = False,
        cache: CacheRequest = None,
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
        """:meth:`completion` for asyncio. A stream is looked up before it is returned (its
        ``cache_hit`` is known at once) and bound to the running loop; it still sends nothing
        until it is subscribed to."""
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
        use = self._call_use(call, cache)
        if not stream:
            return await _fetch(use, call, spec, request)
        if use is None:
            plain = ChatStream(call, spec, request, replay=replay)
        else:
            entry = await use.find()
            plain = CachingStream(
                call, spec, request, use=use, entry=entry, looked_up=True, replay=replay
            )
        plain.bind()
        return plain


async def _fetch(
    use: CacheUse | None, call: ChatCall, spec: Provider, request: HttpRequest
) -> ChatResponse:
    if use is None:
        return await fetch_response(call, spec, request)
    return await use.fetch(lambda: fetch_response(call, spec, request))


class CacheUse:
    """One request's use of a cache: its key and what it may do (look up, store, how long,
    how a hit is paced)."""

    __slots__ = ("cache", "control", "key")

    def __init__(self, cache: ResponseCache, key: str, control: CacheControl) -> None:
        self.cache = cache
        self.key = key
        self.control = control

    def __repr__(self) -> str:
        return f"CacheUse({self.key!r}, lookup={self.lookup}, store={self.store})"

    @property
    def lookup(self) -> bool:
        return self.control.lookup

    @property
    def store(self) -> bool:
        return self.control.store

    @property
    def ttl(self) -> float | None:
        return self.control.ttl if self.control.ttl is not None else self.cache.ttl

    @property
    def pace(self) -> Pace:
        return self.control.pace if self.control.pace is not None else self.cache.pace

    async def find(self) -> CacheEntry | None:
        """The entry that answers this request (None: call the model)."""
        if not self.lookup:
            return None
        return await self.cache.get(self.key, max_age=self.control.max_age)

    def recorder(self) -> Recorder | None:
        """What records a streamed answer for :meth:`keep_stream` (None: it is not stored)."""
        return Recorder(self.cache.max_chunks) if self.store else None

    def keep_stream(self, recorder: Recorder | None) -> None:
        """Store the answer ``recorder`` recorded, if complete (the stream completed)."""
        if recorder is not None:
            ttl = self.ttl
            self.cache._keep(self.key, recorder.finish(self.cache._clock(), ttl), ttl)

    def not_kept(self) -> None:
        self.cache._count("not_stored")

    def keep_response(self, response: ChatResponse) -> None:
        """Store a non-streamed answer, if complete."""
        if not self.store:
            return
        ttl = self.ttl
        data = None
        if complete(response):
            entry = CacheEntry(response=response, stored_at=self.cache._clock(), ttl=ttl)
            data = encode_entry(entry)
        self.cache._keep(self.key, data, ttl)

    async def fetch(self, run: Callable[[], Awaitable[ChatResponse]]) -> ChatResponse:
        """A non-streamed request: the hit (a :class:`CachedResponse`), else ``run()``'s
        answer, stored."""
        entry = await self.find()
        if entry is not None:
            return self.cache.hit(entry, self.key)
        response = await run()
        self.keep_response(response)
        return response


#: A stream's entry before its lookup has run.
_UNKNOWN: Any = object()

if TYPE_CHECKING:
    _StreamBase = ChatStream
else:
    _StreamBase = object


class CachingStreamMixin(_StreamBase):
    """Makes a ``ChatStream`` subclass answer from a cache (mixed in before it, initialised
    with :meth:`_init_caching`). Through ``ChatStream``'s subclass hooks: ``_produce`` looks
    the request up (unless the caller already did) and replays a hit - the entry's chunks, read
    by read, with the stream's own emitting, so every promise of a stream holds (lazy, shared,
    replaying, backpressure, cancellable, callbacks where each subscriber lives); on a miss it
    runs the request as the class would and ``_emit`` records what it emits (compactly,
    whatever the stream's ``replay``); ``_finish`` stores the answer when the stream completes
    after the provider's end marker with a finish reason. An error, a cancellation (the last
    subscriber left: ``_finish`` is not reached) or a stream cut short is never stored. The
    answer is stored before the subscribers hear ``on_completed``."""

    _caching_use: CacheUse
    _caching_entry: CacheEntry | None
    _caching_recorder: Recorder | None

    def _init_caching(
        self, use: CacheUse, entry: CacheEntry | None = None, *, looked_up: bool = False
    ) -> None:
        """``looked_up``: the caller already looked the request up, and found ``entry``."""
        self._caching_use = use
        self._caching_entry = entry if looked_up or not use.lookup else _UNKNOWN
        self._caching_recorder = None

    @property
    def cache_hit(self) -> bool | None:
        """True when this stream replays a cached answer, False when it calls the model, None
        while its lookup has not run (it runs at the first subscription)."""
        entry = self._caching_entry
        return None if entry is _UNKNOWN else entry is not None

    @property
    def cache_key(self) -> str:
        return self._caching_use.key

    @property
    def cached_at(self) -> float | None:
        """When the answer replayed was stored (the cache's clock), for a hit."""
        entry = self._caching_entry
        return None if entry is _UNKNOWN or entry is None else entry.stored_at

    async def _produce(self) -> None:
        use = self._caching_use
        entry = self._caching_entry
        if entry is _UNKNOWN:
            entry = self._caching_entry = await use.find()
        if entry is not None:
            await self._play(entry, use)
            return
        self._caching_recorder = use.recorder()
        await super()._produce()

    async def _play(self, entry: CacheEntry, use: CacheUse) -> None:
        """Emit ``entry``'s chunks as its reads came (paced as ``use`` says), waiting for the
        subscribers between reads as a socket read would (docs/contracts.md, 6)."""
        sleep = use.cache._sleep
        holds = producer_holds()
        for wait, batch in entry.batches(use.pace):
            if wait > 0:
                await sleep(wait)
            if not self.running:
                return
            self._emit(batch)
            if holds:
                await self._wait_holds(holds)

    def _emit(self, chunks: list[ChatChunk]) -> None:
        recorder = self._caching_recorder
        if recorder is not None:
            recorder.add(chunks)
        super()._emit(chunks)

    def _finish(self, error: LLMError | None) -> None:
        recorder, self._caching_recorder = self._caching_recorder, None
        if recorder is not None and self.running:
            if error is None:
                self._caching_use.keep_stream(recorder)
            else:
                self._caching_use.not_kept()
        super()._finish(error)


class CachingStream(CachingStreamMixin, ChatStream):
    """A ``ChatStream`` that answers from a :class:`ResponseCache` when it can and stores what
    it gets (what ``cache.completion(..., stream=True)`` returns). ``cache_hit`` says which."""

    def __init__(
        self,
        call: ChatCall,
        provider: Provider,
        request: HttpRequest,
        *,
        use: CacheUse,
        entry: CacheEntry | None = None,
        looked_up: bool = False,
        replay: bool = True,
    ) -> None:
        super().__init__(call, provider, request, replay=replay)
        self._init_caching(use, entry, looked_up=looked_up)

    def __repr__(self) -> str:
        hit = {True: "hit", False: "miss", None: "not looked up"}[self.cache_hit]
        return f"{super().__repr__()[:-1]}, cache={hit})"


def _check_seconds(name: str, value: Any, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise ConfigurationError(f"{name} must be positive seconds, not {value!r}")


def _check_count(name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"{name} must be a positive integer, not {value!r}")
