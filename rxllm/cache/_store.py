"""Where entries are kept: in this process (bounded, least recently used first out) or in Redis.

Both hold bytes (:func:`rxllm.cache._entry.encode_entry`): a hit decodes fresh chunks, so a
subscriber that changes a chunk it was given cannot change the cache.

Redis (``redis.asyncio``, the ``redis`` extra): every command runs on rxllm's background loop,
whatever loop or thread asks (a client is bound to the loop it connects on), with a short
timeout and no retries. A value is ``SET key value PX ttl``; Redis's own memory policy bounds
it, not an LRU here. Redis unreachable is never the request's failure: a lookup is a miss, a
store is skipped, one warning is logged (and one line when it answers again), and Redis is not
asked again for ``retry_after`` seconds, so an outage costs no request a timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import urllib.parse
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .. import _loop
from .._secrets import masked_url, url_credentials
from ..errors import ConfigurationError

if TYPE_CHECKING:
    from redis.asyncio import Redis

__all__ = ["MemoryStore", "RedisStore", "Store"]

T = TypeVar("T")

log = logging.getLogger("rxllm.cache")


class Store(Protocol):
    """Bytes by key, with an expiry."""

    kind: str

    async def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, data: bytes, ttl: float | None) -> None:
        """Keep ``data`` (at once, or in the background: :meth:`drain` waits for it). Never
        raises."""
        ...

    async def delete(self, key: str) -> None: ...

    async def clear(self, prefix: str) -> None:
        """Remove every key starting with ``prefix``."""
        ...

    async def drain(self) -> None:
        """Wait until every store begun so far is done."""
        ...

    def drain_sync(self, timeout: float | None) -> bool: ...

    async def aclose(self) -> None: ...


class MemoryStore:
    """This process's store: at most ``max_entries`` values, the least recently used dropped
    first; a value past its time is dropped when next asked for (or pushed out)."""

    kind = "local"

    def __init__(self, max_entries: int, clock: Callable[[], float]) -> None:
        self._items: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._max = max_entries
        self._clock = clock
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    async def get(self, key: str) -> bytes | None:
        return self.get_now(key)

    def get_now(self, key: str) -> bytes | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            data, expires = item
            if expires is not None and self._clock() >= expires:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return data

    def put(self, key: str, data: bytes, ttl: float | None) -> None:
        expires = None if ttl is None else self._clock() + ttl
        with self._lock:
            self._items[key] = (data, expires)
            self._items.move_to_end(key)
            while len(self._items) > self._max:
                self._items.popitem(last=False)

    async def delete(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    async def clear(self, prefix: str) -> None:
        with self._lock:
            for key in [k for k in self._items if k.startswith(prefix)]:
                del self._items[key]

    async def drain(self) -> None:
        return None

    def drain_sync(self, timeout: float | None) -> bool:
        return True

    async def aclose(self) -> None:
        return None


def check_redis_url(url: str) -> str:
    """``url`` if it is a Redis URL (``redis://``, ``rediss://``, ``unix://``) and redis-py is
    installed; else a ``ConfigurationError`` saying what to do."""
    if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in (
        "redis",
        "rediss",
        "unix",
    ):
        shown = masked_url(url) if isinstance(url, str) else url
        raise ConfigurationError(
            f"redis_url must be a redis://, rediss:// or unix:// URL, not {shown!r}"
        )
    try:
        import redis.asyncio  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            "a Redis cache needs redis-py: pip install -e '.[redis]' in the clone"
        ) from None
    return url


class RedisStore:
    """Entries in Redis (see the module docstring)."""

    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        retry_after: float,
        clock: Callable[[], float],
        on_error: Callable[[], None],
    ) -> None:
        self.url = check_redis_url(url)
        self._secrets = url_credentials(url)
        self._timeout = timeout
        self._retry_after = retry_after
        self._clock = clock
        self._on_error = on_error
        self._client: Redis | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()
        self._down_until: float | None = None  # None: up (as far as we know)
        self._pending: set[concurrent.futures.Future[None]] = set()
        _stores.add(self)

    def __repr__(self) -> str:
        return f"RedisStore({masked_url(self.url)})"

    # --- health ----------------------------------------------------------------------------

    def _skipping(self) -> bool:
        """True while an outage is recent: Redis is not asked (a miss, a skipped store)."""
        with self._lock:
            down = self._down_until
        return down is not None and self._clock() < down

    def _failed(self, error: BaseException) -> None:
        with self._lock:
            first = self._down_until is None
            self._down_until = self._clock() + self._retry_after
        self._on_error()
        if first:
            log.warning(
                "rxllm cache: Redis at %s is unreachable (%s); answering without the cache "
                "(lookups miss, stores are skipped) and trying again every %g s",
                masked_url(self.url),
                self._describe(error),
                self._retry_after,
            )

    def _answered(self) -> None:
        with self._lock:
            was_down, self._down_until = self._down_until is not None, None
        if was_down:
            log.warning("rxllm cache: Redis at %s answers again", masked_url(self.url))

    def _describe(self, error: BaseException) -> str:
        text = f"{type(error).__name__}: {error}"
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text

    # --- commands ----------------------------------------------------------------------------

    def _redis(self) -> Redis:
        """The client of the running (background) loop, made on first use there."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            self._client = Redis.from_url(
                self.url,
                socket_timeout=self._timeout,
                socket_connect_timeout=self._timeout,
                retry=Retry(NoBackoff(), 0),
            )
            self._client_loop = loop
        return self._client

    async def _command(self, command: Callable[[Redis], Awaitable[T]]) -> T:
        """Run ``command`` with the client (on the background loop). A client that failed is
        dropped and closed: its pooled connections may be dead (a restarted server), and the
        next command connects afresh."""
        client = self._redis()
        try:
            return await command(client)
        except Exception:
            if self._client is client:
                self._client = None
                self._client_loop = None
            with contextlib.suppress(Exception):
                await client.aclose()
            raise

    async def _get(self, key: str) -> bytes | None:
        value: Any = await self._command(lambda client: client.get(key))
        return bytes(value) if value is not None else None

    async def get(self, key: str) -> bytes | None:
        if self._skipping():
            return None
        try:
            value = await _on_background(lambda: self._get(key))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # never the request's failure
            self._failed(error)
            return None
        self._answered()
        return value

    async def _put(self, key: str, data: bytes, ttl: float | None) -> None:
        px = None if ttl is None else max(1, round(ttl * 1000))
        try:
            await self._command(lambda client: client.set(key, data, px=px))
        except Exception as error:
            self._failed(error)
        else:
            self._answered()

    def put(self, key: str, data: bytes, ttl: float | None) -> None:
        if self._skipping():
            self._on_error()
            return
        future = asyncio.run_coroutine_threadsafe(
            self._put(key, data, ttl), _loop.background_loop()
        )
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: concurrent.futures.Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    async def delete(self, key: str) -> None:
        try:
            await _on_background(lambda: self._delete(key))
        except Exception as error:
            self._failed(error)

    async def _delete(self, key: str) -> None:
        await self._command(lambda client: client.delete(key))

    async def clear(self, prefix: str) -> None:
        try:
            await _on_background(lambda: self._clear(prefix))
        except Exception as error:
            self._failed(error)

    async def _clear(self, prefix: str) -> None:
        await self._command(lambda client: self._clear_with(client, prefix))

    @staticmethod
    async def _clear_with(client: Redis, prefix: str) -> None:
        batch: list[Any] = []
        async for key in client.scan_iter(match=_glob_escape(prefix) + "*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                await client.delete(*batch)
                batch.clear()
        if batch:
            await client.delete(*batch)

    async def drain(self) -> None:
        with self._lock:
            pending = list(self._pending)
        if pending:
            await asyncio.wait([asyncio.wrap_future(f) for f in pending])

    def drain_sync(self, timeout: float | None) -> bool:
        with self._lock:
            pending = list(self._pending)
        _, left = concurrent.futures.wait(pending, timeout)
        return not left

    async def aclose(self) -> None:
        await self.drain()
        await _on_background(self._close)

    async def _close(self) -> None:
        client, self._client = self._client, None
        self._client_loop = None
        if client is not None:
            await client.aclose()


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


async def _on_background(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``make()`` run on rxllm's background loop, awaited from whatever loop runs this."""
    background = _loop.background_loop()
    if _loop.running_loop() is background:
        return await make()
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(make(), background))


#: Every Redis store of the process, closed when the background loop stops.
_stores: weakref.WeakSet[RedisStore] = weakref.WeakSet()


async def _close_all(loop: asyncio.AbstractEventLoop) -> None:
    for store in list(_stores):
        if store._client_loop is loop:
            await store._close()


_loop.add_shutdown_hook(_close_all)
