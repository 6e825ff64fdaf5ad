"""Virtual keys, their limits and their spend across gateway instances, on Redis.

With ``router_settings.redis_url`` (or ``--redis``) every instance keeps using its own SQLite
:class:`~rxllm.gateway._keys.KeyStore` and :class:`~rxllm.gateway._keys.KeyLimits`, as the
local cache and the fallback, and Redis holds what must be one truth:

* ``{ns}:key:{token}``: a key's settings, written when it is made, removed when deleted (a
  tombstone ``{ns}:deleted:{token}`` remembers that); an instance that has not seen a key
  imports it on first use (one extra round trip, once), and one that finds Redis without a key
  it knows (Redis restarted empty) publishes it again;
* ``{ns}:spend:{token}:{window}``: the key's spend in its budget window (``all`` without
  ``budget_duration``), ``{ns}:usage:{token}``: its token and request counts;
* ``{ns}:rpm:{token}`` and ``{ns}:tpm:{token}``: sorted sets, the last minute's requests and
  token counts (sliding windows on Redis' own clock, so hosts' clocks need not agree);
* ``{ns}:seen:{request_id}``: a request's spend is added once, however often it is sent;
* ``{ns}:spend``: a stream of every request's record (request id, key, cost, tokens, instance).

On a request's path there is one round trip, :meth:`SharedKeys.admit`: a Lua script that
checks the key still exists and its budget, and admits it against its rpm and tpm windows
atomically (never read-then-write), so N instances together admit what one would. The spend is
recorded after the answer, off the path, by another script.

Redis failing is not the gateway failing: any error or a slow answer (``timeout``) opens a
circuit for ``retry_seconds``; meanwhile keys are checked on local state (limits per instance,
the spend last seen plus what this instance added since) and spend records wait in SQLite. When
Redis answers again the waiting records are sent (each once, by its request id) before the
circuit closes, so a budget spent meanwhile shows as spent. One warning says sharing stopped,
one that it resumed; ``status()`` feeds the metrics. Spend already on a Redis that restarts
empty is gone from the shared totals (each instance's SQLite keeps its own): run Redis with
persistence (``appendonly yes``) where budgets matter.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import msgspec

from ._errors import GatewayError
from ._keys import (
    KEY_PREFIX,
    WINDOW,
    KeyLimits,
    KeyStore,
    SpendRecord,
    VirtualKey,
    _next_boundary,
    _rate_limited,
    hash_key,
    parse_duration,
    unauthenticated,
)

__all__ = ["RedisLink", "SharedKeys"]

log = logging.getLogger("rxllm.gateway")
T = TypeVar("T")

#: Seconds a Redis call may take before the instance goes on alone.
TIMEOUT = 0.25
#: Seconds between attempts to reach Redis again after a failure.
RETRY_SECONDS = 1.0
#: How long a request id is remembered (a record sent again later than this counts twice).
SEEN_SECONDS = 7 * 86400
#: How long a deleted key's tombstone is kept.
TOMBSTONE_SECONDS = 90 * 86400
#: Records kept in the spend stream (approximately).
LOG_LENGTH = 1_000_000

_DOWN = object()

# KEYS: record, spend, rpm, tpm, tombstone. ARGV: window, rpm limit, tpm limit, budget (-1:
# none), member. Returns {status, spend, wait, used}: 0 admitted, 1 deleted, 2 budget, 3 rpm,
# 4 tpm, 5 unknown to this Redis (it lost its data: the instance publishes the key again).
_ADMIT = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  if redis.call('EXISTS', KEYS[5]) == 1 then return {1, '0', '0', 0} end
  return {5, '0', '0', 0}
end
local spend = tonumber(redis.call('GET', KEYS[2]) or '0')
local budget = tonumber(ARGV[4])
if budget >= 0 and spend >= budget then return {2, tostring(spend), '0', 0} end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local window = tonumber(ARGV[1])
local tpm = tonumber(ARGV[3])
if tpm >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - window)
  local entries = redis.call('ZRANGE', KEYS[4], 0, -1, 'WITHSCORES')
  local used = 0
  for i = 1, #entries, 2 do used = used + tonumber(string.match(entries[i], '^(%d+)')) end
  if used >= tpm then
    local left, wait = used, window
    for i = 1, #entries, 2 do
      left = left - tonumber(string.match(entries[i], '^(%d+)'))
      if left < tpm then wait = tonumber(entries[i + 1]) + window - now break end
    end
    return {4, tostring(spend), tostring(wait), used}
  end
end
local rpm = tonumber(ARGV[2])
if rpm >= 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
  local count = redis.call('ZCARD', KEYS[3])
  if count >= rpm then
    local oldest = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
    return {3, tostring(spend), tostring(tonumber(oldest[2]) + window - now), count}
  end
  redis.call('ZADD', KEYS[3], now, ARGV[5])
  redis.call('PEXPIRE', KEYS[3], math.ceil(window * 1000) + 1000)
end
return {0, tostring(spend), '0', 0}
"""

# KEYS: seen, spend, usage, tpm, log. ARGV: cost, prompt, completion, request id, tpm tokens
# (0: none), window, spend ttl ms (0: none), instance, token, at.
# Returns 1 when recorded, 0 when this request id was recorded before.
_RECORD = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', 604800) then return 0 end
redis.call('INCRBYFLOAT', KEYS[2], ARGV[1])
local ttl = tonumber(ARGV[7])
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
redis.call('HINCRBY', KEYS[3], 'prompt_tokens', ARGV[2])
redis.call('HINCRBY', KEYS[3], 'completion_tokens', ARGV[3])
redis.call('HINCRBY', KEYS[3], 'requests', 1)
redis.call('HINCRBYFLOAT', KEYS[3], 'spend', ARGV[1])
local tokens = tonumber(ARGV[5])
if tokens > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  redis.call('ZADD', KEYS[4], now, ARGV[5] .. ':' .. ARGV[4])
  redis.call('PEXPIRE', KEYS[4], math.ceil(tonumber(ARGV[6]) * 1000) + 1000)
end
redis.call('XADD', KEYS[5], 'MAXLEN', '~', '1000000', '*', 'request_id', ARGV[4],
  'token', ARGV[9], 'cost', ARGV[1], 'prompt_tokens', ARGV[2],
  'completion_tokens', ARGV[3], 'instance', ARGV[8], 'at', ARGV[10])
return 1
"""


class RedisLink:
    """A ``redis.asyncio`` client behind a circuit breaker: :meth:`call` answers or, when
    Redis failed recently (or fails now), returns ``None`` at once so the caller goes on with
    local state. ``on_resume`` runs before the circuit closes again (to send what waited)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = TIMEOUT,
        retry_seconds: float = RETRY_SECONDS,
        on_resume: Callable[[], Awaitable[None]] | None = None,
        on_state: Callable[[bool], None] | None = None,
    ) -> None:
        import redis.asyncio as aioredis

        self.url = url
        self.client: Any = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._timeout = timeout
        self._retry_seconds = retry_seconds
        self._retry_at = 0.0
        self._resuming = False
        self.on_resume = on_resume
        #: Told True / False when Redis comes back / goes away (for the metrics).
        self.on_state = on_state
        #: Whether the last call reached Redis.
        self.up = True
        #: Calls that failed (or found the circuit open), for the metrics.
        self.errors = 0

    async def call(self, use: Callable[[Any], Awaitable[T]]) -> T | None:
        """``await use(client)``, or None when Redis is unreachable (now or recently)."""
        if not self.up and (time.monotonic() < self._retry_at or self._resuming):
            self.errors += 1
            return None
        try:
            result = await asyncio.wait_for(use(self.client), self._timeout * 2)
        except Exception as error:
            if not _unreachable(error):
                raise
            self._failed(error)
            return None
        if not self.up:
            await self._resume()
        return result

    def _failed(self, error: BaseException) -> None:
        self.errors += 1
        self._retry_at = time.monotonic() + self._retry_seconds
        if self.up:
            self.up = False
            if self.on_state is not None:
                self.on_state(False)
            log.warning(
                "Redis at %s is unreachable (%s): going on with this instance's own state "
                "until it answers",
                _masked(self.url),
                type(error).__name__,
            )

    async def _resume(self) -> None:
        """Redis answers again: run ``on_resume`` (with the client itself), then share."""
        self._resuming = True
        try:
            if self.on_resume is not None:
                await self.on_resume()
        except Exception as error:
            if not _unreachable(error):
                raise
            self._failed(error)
            return
        finally:
            self._resuming = False
        self.up = True
        if self.on_state is not None:
            self.on_state(True)
        log.warning("Redis at %s answers again: state is shared again", _masked(self.url))

    async def close(self) -> None:
        await self.client.aclose()


def _unreachable(error: BaseException) -> bool:
    """Whether ``error`` means Redis cannot be used now (down, slow, refusing)."""
    if isinstance(error, (OSError, asyncio.TimeoutError, socket.timeout)):
        return True
    return type(error).__module__.split(".")[0] == "redis"


def _masked(url: str) -> str:
    from .._secrets import masked_url

    return masked_url(url)


class SharedKeys:
    """Keys, limits and spend of every instance, on Redis (see the module docstring)."""

    def __init__(
        self,
        store: KeyStore,
        limits: KeyLimits,
        url: str,
        *,
        namespace: str = "rxllm",
        instance: str | None = None,
        timeout: float = TIMEOUT,
        retry_seconds: float = RETRY_SECONDS,
        clock: Callable[[], float] = time.time,
        on_state: Callable[[bool], None] | None = None,
    ) -> None:
        self.store = store
        self.limits = limits
        self.link = RedisLink(
            url,
            timeout=timeout,
            retry_seconds=retry_seconds,
            on_resume=self.flush,
            on_state=on_state,
        )
        self.ns = namespace
        self.instance = instance or f"{socket.gethostname()}:{id(self):x}"
        self.clock = clock
        client = self.link.client
        self._admit_script = client.register_script(_ADMIT)
        self._record_script = client.register_script(_RECORD)
        #: The shared spend last read per key, and what this instance added since (the
        #: local view of the budget while Redis is away).
        self._seen_spend: dict[str, float] = {}
        self._added: dict[str, float] = {}
        #: Redis round trips made on requests' paths, for measurement.
        self.round_trips = 0

    # --- keys ----------------------------------------------------------------------------

    async def lookup(self, key: str) -> VirtualKey | None:
        """The key a client sent: from this instance's store, else imported from Redis."""
        found = self.store.lookup(key)
        if found is not None:
            return found
        if not key.startswith(KEY_PREFIX):
            return None
        self.round_trips += 1
        return self.store.lookup(key) if await self.fetched(hash_key(key)) else None

    async def fetched(self, token: str) -> bool:
        """Import a key another instance made; False if Redis knows none by that hash."""
        data = await self.link.call(lambda r: r.get(self._key(token)))
        if not data:
            return False
        self.store.imported(data)
        return True

    async def published(self, token: str) -> None:
        """A key made here: make it known to every instance."""
        data = self.store.exported(token)
        if data is not None:
            await self.link.call(lambda r: r.set(self._key(token), data))

    async def deleted(self, tokens: list[str]) -> None:
        """Keys deleted here: delete them everywhere (the others refuse them at once). A
        tombstone tells "deleted" from "this Redis lost its data" for :data:`TOMBSTONE_SECONDS`."""
        if not tokens:
            return

        async def delete(r: Any) -> None:
            async with r.pipeline(transaction=True) as pipe:
                for token in tokens:
                    pipe.set(self._tombstone(token), b"1", ex=TOMBSTONE_SECONDS)
                    pipe.delete(self._key(token))
                await pipe.execute()

        await self.link.call(delete)

    async def overlay(self, info: dict[str, Any]) -> dict[str, Any]:
        """A key's ``/key/info`` with the shared spend and counts, when Redis answers."""
        token = info["token"]
        key = self.store_key(info)
        window = self._window(key, self.clock())
        spend_key = self._spend(token, window)

        async def read(r: Any) -> tuple[Any, Any]:
            async with r.pipeline(transaction=False) as pipe:
                pipe.get(spend_key)
                pipe.hgetall(self._usage(token))
                result: list[Any] = await pipe.execute()
                return result[0], result[1]

        found = await self.link.call(read)
        if found is None:
            return info
        spend, usage = found
        counts = {k.decode(): v.decode() for k, v in usage.items()}
        return {
            **info,
            "spend": float(spend or 0.0),
            "prompt_tokens": int(counts.get("prompt_tokens", 0)),
            "completion_tokens": int(counts.get("completion_tokens", 0)),
            "requests": int(counts.get("requests", 0)),
        }

    def store_key(self, info: dict[str, Any]) -> VirtualKey:
        """The settings a budget window needs, from an info dict."""
        created = info.get("created_at")
        epoch = datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp() if created else 0
        return VirtualKey(
            token=info["token"],
            key_name=info.get("key_name") or "",
            budget_duration=info.get("budget_duration"),
            created_at=epoch,
        )

    # --- the request path --------------------------------------------------------------------

    async def admit(self, key: VirtualKey, model: str, request_id: str) -> GatewayError | None:
        """Refuse the request (expired, model, budget, rpm, tpm) or count it: one round trip."""
        now = self.clock()
        fixed = _with_spend(key, 0.0).refusal(model, now)  # expired, or not this model
        if fixed is not None:
            return fixed
        token = key.token
        window = self._window(key, now)
        keys = [
            self._key(token),
            self._spend(token, window),
            self._rpm(token),
            self._tpm(token),
            self._tombstone(token),
        ]
        args = [
            WINDOW,
            -1 if key.rpm_limit is None else key.rpm_limit,
            -1 if key.tpm_limit is None else key.tpm_limit,
            -1 if key.max_budget is None else key.max_budget,
            request_id,
        ]
        self.round_trips += 1
        answer = await self.link.call(lambda _: self._admit_script(keys=keys, args=args))
        if answer is not None and int(answer[0]) == 5:  # Redis lost it: known here, so share it
            await self.published(token)
            answer = await self.link.call(lambda _: self._admit_script(keys=keys, args=args))
        if answer is None:
            return self._admit_locally(key, model, now)
        status, spend, wait, used = int(answer[0]), float(answer[1]), float(answer[2]), answer[3]
        self._seen_spend[token] = spend
        self._added.pop(token, None)
        if status == 0:
            return None
        if status == 1:  # deleted by another instance
            self.store.forget([token])
            return unauthenticated(key.key_name)
        if status == 2:
            return _with_spend(key, spend).refusal(model, now)
        kind, limit = ("requests", key.rpm_limit) if status == 3 else ("tokens", key.tpm_limit)
        assert limit is not None
        return _rate_limited(key, kind=kind, limit=limit, used=int(used), wait=wait)

    def _admit_locally(self, key: VirtualKey, model: str, now: float) -> GatewayError | None:
        """Redis is away: this instance's limits, and the larger of the spend it last saw
        shared (plus what it added since) and its own count."""
        token = key.token
        shared = self._seen_spend.get(token, 0.0) + self._added.get(token, 0.0)
        spend = max(key.spend, shared)
        return _with_spend(key, spend).refusal(model, now) or self.limits.admit(key, now)

    async def record(
        self,
        key: VirtualKey,
        request_id: str,
        cost: float,
        prompt_tokens: int,
        completion_tokens: int,
    ) -> None:
        """Add a request's spend, once: here (SQLite) and, when Redis answers, everywhere;
        else it waits on disk until Redis is back."""
        now = self.clock()
        self.store.add_spend(key.token, cost, prompt_tokens, completion_tokens)
        tokens = prompt_tokens + completion_tokens
        self.limits.add_tokens(key, tokens, now)  # the local window, for outages
        record = SpendRecord(request_id, key.token, cost, prompt_tokens, completion_tokens, now)
        sent = await self._send(record, key)
        if not sent:
            self._added[key.token] = self._added.get(key.token, 0.0) + cost
            self.store.hold(record)

    async def _send(self, record: SpendRecord, key: VirtualKey | None) -> bool:
        """Record ``record`` on Redis; False when it is unreachable."""
        return await self.link.call(lambda _: self._sent(record, key)) is not None

    async def _sent(self, record: SpendRecord, key: VirtualKey | None) -> int:
        """The record script's call (raises when Redis fails)."""
        token = record.token
        window, ttl = "all", 0
        if key is not None:
            window = self._window(key, record.at)
            if key.budget_duration is not None:
                ttl = int(max(0.0, float(window) - self.clock()) * 1000) + 86_400_000
        keys = [
            f"{self.ns}:seen:{record.request_id}",
            self._spend(token, window),
            self._usage(token),
            self._tpm(token),
            f"{self.ns}:spend",
        ]
        tpm_tokens = 0
        if key is not None and key.tpm_limit is not None:
            tpm_tokens = record.prompt_tokens + record.completion_tokens
        args = [
            repr(record.cost),
            record.prompt_tokens,
            record.completion_tokens,
            record.request_id,
            tpm_tokens,
            WINDOW,
            ttl,
            self.instance,
            token,
            repr(record.at),
        ]
        return int(await self._record_script(keys=keys, args=args))

    async def flush(self) -> None:
        """Send the spend records that waited for Redis, each once (by its request id); run
        when Redis answers again, before it is used for admissions. Raises if it fails."""
        while records := self.store.held():
            for record in records:
                await self._sent(record, self._key_of(record.token))
            self.store.release(record.request_id for record in records)
        self._added.clear()

    def _key_of(self, token: str) -> VirtualKey | None:
        info = self.store.info(token)
        return None if info is None else self.store_key(info)

    def status(self) -> dict[str, Any]:
        return {"connected": self.link.up, "errors": self.link.errors}

    async def close(self) -> None:
        await self.link.close()

    # --- names -------------------------------------------------------------------------------

    def _key(self, token: str) -> str:
        return f"{self.ns}:key:{token}"

    def _spend(self, token: str, window: str) -> str:
        return f"{self.ns}:spend:{token}:{window}"

    def _tombstone(self, token: str) -> str:
        return f"{self.ns}:deleted:{token}"

    def _usage(self, token: str) -> str:
        return f"{self.ns}:usage:{token}"

    def _rpm(self, token: str) -> str:
        return f"{self.ns}:rpm:{token}"

    def _tpm(self, token: str) -> str:
        return f"{self.ns}:tpm:{token}"

    @staticmethod
    def _window(key: VirtualKey, now: float) -> str:
        """The key's budget window, named by when it ends (``all`` without one)."""
        if key.budget_duration is None:
            return "all"
        end = _next_boundary(key.created_at, parse_duration(key.budget_duration), now)
        return str(math.floor(end))


def _with_spend(key: VirtualKey, spend: float) -> VirtualKey:
    return msgspec.structs.replace(key, spend=spend)
