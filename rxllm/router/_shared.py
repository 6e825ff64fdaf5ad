"""Deployment health shared by several routers (processes, hosts) on one Redis.

``Router(redis_url=...)`` keeps its local :class:`~rxllm.router._health.DeploymentState` as the
fast path and the fallback, and adds Redis as the truth that every instance shares:

* **Admission** (one round trip on a request's path): a Lua script run just before an attempt
  checks the candidates the local state found ready, in order - the deployment's shared
  cooldown and ``Retry-After`` pause, its rpm window (a sorted set of request times) and its
  tpm window (per-second buckets of tokens) - and admits the first that may take the request
  (``least-busy``: the one with the fewest requests in flight on every instance), counting
  it in the windows and in its in-flight set, atomically. It answers with what it saw, so the
  local state learns the others' cooldowns and limits; a refusal of every candidate is like a
  local rpm refusal: the execution chooses again or waits.
* **Failures** are counted in Redis within ``fail_window`` (a script), so ``allowed_fails``
  holds across instances; a cooldown or pause it starts is written with a TTL and published,
  and every router applies what it hears (one pub/sub connection per router).
* **After the answer**, off the path: the in-flight entry is removed and the tpm bucket
  corrected with the real usage (a pipeline, in a task nobody waits for).

Redis failing is not the router failing: every operation has a short timeout; the first
failure opens a circuit (one warning, the status and its counters say so), requests run on
local state alone (limits per instance), a background probe retries with backoff, and the
first success closes the circuit again (one warning more).

Times in Redis are the server's (``TIME`` in the scripts), so the instances' clocks need not
agree; what comes back are durations, applied to the router's own clock.

Layout, for a namespace ``ns``, a configuration ``cfg`` and a deployment id ``id`` (the hash
tag keeps one configuration's keys together on a cluster):

==============================  ====================================================
``ns:{cfg}:id:cool``            exists while the deployment cools down (PX TTL)
``ns:{cfg}:id:pause``           exists while a ``Retry-After`` pauses it (PX TTL)
``ns:{cfg}:id:fails``           sorted set: failure times (ms) within ``fail_window``
``ns:{cfg}:id:rpm``             sorted set: request start times (ms) within the window
``ns:{cfg}:id:tpm``             hash: second -> tokens, for the last window
``ns:{cfg}:id:busy``            sorted set: requests in flight, scored by lease expiry
``ns:events``                   pub/sub channel: ``{"k": "cool"|"pause", "c", "d", "ms"}``
==============================  ====================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import sys
import threading
import time
import uuid
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from .. import _loop
from .._secrets import masked_url
from ..errors import ConfigurationError
from ._health import LIMIT_WINDOW

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from ._config import Deployment

__all__ = ["Admission", "Lease", "SharedFailure", "SharedSettings", "SharedState"]

T = TypeVar("T")

log = logging.getLogger("rxllm.router")

#: Seconds sharing must hold before a new outage probes at ``probe_delay`` again.
STABLE = 60.0
#: Releases kept per loop while Redis cannot take them (the oldest go first beyond that;
#: their in-flight entries expire with their lease).
MAX_PENDING = 10_000

# Codes of the admission script's answer, per candidate.
ADMITTED, COOLING, PAUSED, RPM_FULL, TPM_FULL = 0, 1, 2, 3, 4

ADMIT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local least = ARGV[1] == 'least'
local member = ARGV[2]
local window = tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
local bucket = math.floor(now / 1000)
local out = {0, bucket}
local chosen, chosen_busy = 0, 0
for i = 1, #KEYS / 5 do
  local k = (i - 1) * 5
  local a = 4 + (i - 1) * 3
  local rpm, tpm, tokens = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local code, wait = 0, 0
  local left = redis.call('PTTL', KEYS[k + 1])
  if left > 0 then code, wait = 1, left end
  if code == 0 then
    left = redis.call('PTTL', KEYS[k + 2])
    if left > 0 then code, wait = 2, left end
  end
  if code == 0 and rpm >= 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[k + 3], '-inf', now - window)
    local count = redis.call('ZCARD', KEYS[k + 3])
    if count >= rpm then
      local oldest = redis.call('ZRANGE', KEYS[k + 3], count - rpm, count - rpm, 'WITHSCORES')
      code, wait = 3, tonumber(oldest[2]) + window - now
    end
  end
  if code == 0 and tpm >= 0 then
    local fields = redis.call('HGETALL', KEYS[k + 4])
    local used, live = 0, {}
    for j = 1, #fields, 2 do
      local b, n = tonumber(fields[j]), tonumber(fields[j + 1])
      if (b + 1) * 1000 <= now - window then
        redis.call('HDEL', KEYS[k + 4], fields[j])
      else
        used = used + n
        live[#live + 1] = {b, n}
      end
    end
    if used + tokens > tpm then
      table.sort(live, function(x, y) return x[1] < y[1] end)
      local at = now
      for _, entry in ipairs(live) do
        if used + tokens <= tpm then break end
        used = used - entry[2]
        at = (entry[1] + 1) * 1000 + window
      end
      code, wait = 4, at - now
    end
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[k + 5], '-inf', now)
  local busy = redis.call('ZCARD', KEYS[k + 5])
  out[#out + 1] = code
  out[#out + 1] = math.max(wait, 1)
  out[#out + 1] = busy
  if code == 0 then
    if chosen == 0 or (least and busy < chosen_busy) then chosen, chosen_busy = i, busy end
    if not least then break end
  end
end
if chosen > 0 then
  local k = (chosen - 1) * 5
  local a = 4 + (chosen - 1) * 3
  if tonumber(ARGV[a + 1]) >= 0 then
    redis.call('ZADD', KEYS[k + 3], now, member)
    redis.call('PEXPIRE', KEYS[k + 3], window)
  end
  if tonumber(ARGV[a + 2]) >= 0 then
    redis.call('HINCRBY', KEYS[k + 4], bucket, ARGV[a + 3])
    redis.call('PEXPIRE', KEYS[k + 4], window + 1000)
  end
  redis.call('ZADD', KEYS[k + 5], now + lease, member)
  redis.call('PEXPIRE', KEYS[k + 5], lease)
  out[3 * chosen + 2] = chosen_busy + 1
end
out[1] = chosen
return out
"""

FAILURE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, allowed = tonumber(ARGV[5]), tonumber(ARGV[6])
local cooldown, pause = tonumber(ARGV[7]), tonumber(ARGV[8])
if pause > 0 and redis.call('PTTL', KEYS[3]) < pause then
  redis.call('SET', KEYS[3], '1', 'PX', pause)
  local event = {k = 'pause', c = ARGV[2], d = ARGV[3], ms = pause}
  redis.call('PUBLISH', ARGV[1], cjson.encode(event))
end
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local cooled = 0
if cooldown > 0 and count > allowed then
  redis.call('SET', KEYS[2], '1', 'PX', cooldown)
  redis.call('DEL', KEYS[1])
  local event = {k = 'cool', c = ARGV[2], d = ARGV[3], ms = cooldown}
  redis.call('PUBLISH', ARGV[1], cjson.encode(event))
  cooled = 1
else
  redis.call('PEXPIRE', KEYS[1], window)
end
return {cooled, count, redis.call('PTTL', KEYS[2]), redis.call('PTTL', KEYS[3])}
"""


class SharedSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where and how a router shares its deployments' health (``Router(redis_url=...)``)."""

    #: ``redis://[user:password@]host:port/db`` (``rediss://`` for TLS, ``unix://``).
    url: str
    #: Prefix of every key and of the channel: routers share state when their namespace,
    #: configuration names and deployment ids agree (the same config file everywhere).
    namespace: str = "rxllm"
    #: Seconds any one Redis operation may take (connecting included) before the router
    #: gives up on it and uses local state.
    timeout: float = 0.25
    #: Seconds before the first probe after a failure; doubles up to ``max_probe_delay``.
    probe_delay: float = 0.5
    max_probe_delay: float = 10.0
    #: Seconds after which a request in flight that was never released (its instance died)
    #: stops counting for ``least-busy``.
    lease: float = 600.0

    def __repr__(self) -> str:
        return f"SharedSettings({masked_url(self.url)!r}, namespace={self.namespace!r})"

    def checked(self) -> SharedSettings:
        if not isinstance(self.url, str) or not self.url:
            raise ConfigurationError(f"redis_url must be a redis:// URL, not {self.url!r}")
        try:
            from redis.asyncio.connection import parse_url
        except ImportError:
            raise ConfigurationError(
                "redis_url needs the redis package: pip install -e '.[redis]' in the clone"
            ) from None
        try:
            parse_url(self.url)
        except ValueError as exc:
            raise ConfigurationError(f"redis_url {masked_url(self.url)!r}: {exc}") from None
        if not isinstance(self.namespace, str) or not self.namespace:
            raise ConfigurationError(
                f"redis_namespace must be a non-empty string, not {self.namespace!r}"
            )
        for name in ("timeout", "probe_delay", "max_probe_delay", "lease"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigurationError(f"redis {name} must be positive seconds, not {value!r}")
        return self


class Lease:
    """A request admitted by Redis, to release after its answer."""

    __slots__ = ("bucket", "busy", "member", "tokens", "tpm")

    def __init__(self, busy: str, member: str, tpm: str | None, bucket: int, tokens: int) -> None:
        self.busy = busy
        self.member = member
        self.tpm = tpm
        self.bucket = bucket
        self.tokens = tokens


class Admission:
    """What an admission decided: the deployment (None: every candidate refused) and its
    lease."""

    __slots__ = ("deployment", "lease")

    def __init__(self, deployment: Deployment | None, lease: Lease | None) -> None:
        self.deployment = deployment
        self.lease = lease


class SharedFailure(msgspec.Struct, frozen=True):
    """What Redis made of a failure: did it start the cooldown, and the seconds left of the
    deployment's cooldown and pause (0: none)."""

    cooled: bool
    cooldown: float
    pause: float


class _Keys:
    __slots__ = ("busy", "cool", "fails", "pause", "rpm", "tpm")

    def __init__(self, prefix: str) -> None:
        self.cool = prefix + "cool"
        self.pause = prefix + "pause"
        self.fails = prefix + "fails"
        self.rpm = prefix + "rpm"
        self.tpm = prefix + "tpm"
        self.busy = prefix + "busy"


class _Event(msgspec.Struct):
    k: str
    c: str
    d: str
    ms: float


_decode_event = msgspec.json.Decoder(_Event).decode

#: Finds the deployments of (configuration, deployment id) in the router.
Resolver = Callable[[str, str], Sequence["Deployment"]]
#: Called for each cooldown or pause heard: (kind, configuration, deployment id, seconds).
Listener = Callable[[str, str, str, float], Any]


class SharedState:
    """One router's connection to the shared state: per-loop clients, the scripts, the
    circuit breaker, the pub/sub listener and the counters of :meth:`status`."""

    def __init__(
        self,
        settings: SharedSettings,
        *,
        resolve: Resolver,
        lock: AbstractContextManager[Any],
        clock: Callable[[], float],
    ) -> None:
        self.settings = settings.checked()
        self._resolve = resolve
        self._lock = lock
        self._clock = clock
        self._prefix = settings.namespace + ":"
        self.channel = settings.namespace + ":events"
        self._keys: dict[tuple[str, str], _Keys] = {}
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
            weakref.WeakKeyDictionary()
        )
        self._listeners: tuple[Listener, ...] = ()
        #: Guards the state and counters; notified whenever :meth:`status` would change, so
        #: :meth:`wait_for` needs no polling.
        self._guard = threading.Condition(threading.RLock())
        #: "idle" (not used yet), "connected" or "disconnected" (the circuit is open).
        self._state = "idle"
        self._probe: asyncio.Task[None] | None = None
        #: The next probe's delay: it keeps growing while Redis comes and goes (a slow Redis
        #: that answers a probe and times out the next request), and starts afresh once
        #: sharing held for a minute.
        self._delay = settings.probe_delay
        self._connected_at = -math.inf
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = False
        #: Set (on the listener's loop) to cut its reconnection wait short, and by the
        #: listener once it is subscribed.
        self._wake: asyncio.Event | None = None
        self._ready: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Releases waiting for their loop's flush, and the loops flushing now.
        self._pending: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, list[tuple[Lease, int]]
        ] = weakref.WeakKeyDictionary()
        self._flushing: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
        self._admit_sha = _sha1(ADMIT_SCRIPT)
        self._failure_sha = _sha1(FAILURE_SCRIPT)
        self._closed = False
        self.counts = {
            "errors": 0,
            "fallbacks": 0,
            "round_trips": 0,
            "path_round_trips": 0,
            "admissions": 0,
            "refusals": 0,
            "events": 0,
        }

    # --- status ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        with self._guard:
            counts = dict(self.counts)
            state = self._state
        return {
            "enabled": True,
            "url": masked_url(self.settings.url),
            "namespace": self.settings.namespace,
            "state": state,
            "connected": state == "connected",
            "subscribed": self._subscribed,
            **counts,
        }

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        with self._guard:
            self._listeners = (*self._listeners, listener)

        def remove() -> None:
            with self._guard:
                self._listeners = tuple(x for x in self._listeners if x is not listener)

        return remove

    def _count(self, name: str, n: int = 1) -> None:
        with self._guard:
            self.counts[name] += n
            self._guard.notify_all()

    def wait_for(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``condition()`` holds, re-checked each time the state or a counter of
        :meth:`status` changes (a probe found Redis, a release was flushed...); False after
        ``timeout`` seconds."""
        with self._guard:
            return bool(self._guard.wait_for(condition, timeout))

    def _set_subscribed(self, subscribed: bool) -> None:
        with self._guard:
            self._subscribed = subscribed
            self._guard.notify_all()

    # --- the circuit breaker ------------------------------------------------------------------

    def _usable(self, tasks: bool) -> bool:
        """May this operation go to Redis? (No while the circuit is open: then it counts as a
        fallback, and a probe runs on this loop, with ``tasks``, if none runs anywhere.)"""
        with self._guard:
            if self._closed:
                return False
            if self._state != "disconnected":
                return True
            self.counts["fallbacks"] += 1
            self._guard.notify_all()
            probe = self._probe
            alive = probe is not None and not probe.done() and not probe.get_loop().is_closed()
            if alive or not tasks:
                return False
            self._probe = asyncio.get_running_loop().create_task(self._probe_until_back())
            return False

    def _failed(self, error: BaseException, tasks: bool = True) -> None:
        """An operation failed: open the circuit (warn once) and probe in the background
        (on this loop, with ``tasks``)."""
        with self._guard:
            self.counts["errors"] += 1
            self.counts["fallbacks"] += 1
            was = self._state
            self._state = "disconnected"
            if was != "disconnected" and time.monotonic() - self._connected_at > STABLE:
                self._delay = self.settings.probe_delay
            probe = self._probe
            start = probe is None or probe.done() or probe.get_loop().is_closed()
            if start and tasks and not self._closed:
                self._probe = asyncio.get_running_loop().create_task(self._probe_until_back())
            self._guard.notify_all()
        if was != "disconnected":
            log.warning(
                "router: shared state on Redis (%s) is unavailable (%s): routing on this "
                "instance's own state, limits per instance, until it is back",
                masked_url(self.settings.url),
                _describe(error),
            )

    def _succeeded(self) -> None:
        """Redis answered a probe (or ``connect``): close the circuit."""
        with self._guard:
            was = self._state
            self._state = "connected"
            self._connected_at = time.monotonic()
            self._guard.notify_all()
        if was == "disconnected":
            log.warning(
                "router: shared state on Redis (%s) is back: sharing again",
                masked_url(self.settings.url),
            )
            listener, wake = self._listener, self._wake
            if listener is not None and wake is not None and not listener.get_loop().is_closed():
                with contextlib.suppress(RuntimeError):
                    listener.get_loop().call_soon_threadsafe(wake.set)

    async def _probe_until_back(self) -> None:
        """The only way back from "disconnected": PING until Redis answers, backing off."""
        while self._state == "disconnected":
            delay = self._delay
            self._delay = min(delay * 2, self.settings.max_probe_delay)
            await asyncio.sleep(delay)
            if await self._ping():
                self._succeeded()
                self._ensure_listener()
                self._start_flush()

    async def _ping(self) -> bool:
        try:
            await asyncio.wait_for(self._client().ping(), self.settings.timeout)
        except asyncio.CancelledError:
            raise
        except Exception:
            self._count("errors")
            return False
        self._trip(False)
        return True

    async def _run(
        self, op: Callable[[aioredis.Redis], Awaitable[T]], *, tasks: bool = True
    ) -> T | None:
        """``op`` on this loop's client within the timeout; None when Redis is not usable
        (the circuit is open, or the operation failed and opened it). ``tasks``: it may start
        the listener or a probe on this loop (not while the loop shuts down)."""
        if not self._usable(tasks):
            return None
        if tasks:
            self._ensure_listener()
        try:
            if sys.version_info >= (3, 11):  # no task per operation
                async with asyncio.timeout(self.settings.timeout):
                    result = await op(self._client())
            else:
                result = await asyncio.wait_for(op(self._client()), self.settings.timeout)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(exc, tasks)
            return None
        if self._state == "idle":  # the first answer (from "disconnected", only a probe)
            with self._guard:
                if self._state == "idle":
                    self._state = "connected"
                    self._connected_at = time.monotonic()
                    self._guard.notify_all()
        return result

    def _trip(self, path: bool) -> None:
        """Count a round trip (``path``: on a request's path, before its answer)."""
        with self._guard:
            self.counts["round_trips"] += 1
            if path:
                self.counts["path_round_trips"] += 1
            self._guard.notify_all()

    async def _script(
        self,
        client: aioredis.Redis,
        sha: str,
        source: str,
        keys: list[str],
        args: list[Any],
        *,
        path: bool,
    ) -> Any:
        """EVALSHA, and EVAL when the server does not know the script yet (a restart)."""
        from redis.exceptions import NoScriptError

        self._trip(path)
        try:
            return await client.evalsha(sha, len(keys), *keys, *args)
        except NoScriptError:
            self._trip(path)
            return await client.eval(source, len(keys), *keys, *args)

    async def _script_reply(
        self, client: aioredis.Redis, reply: Any, source: str, keys: list[str], args: list[Any]
    ) -> Any:
        """A script's answer from a pipeline: EVAL when the server did not know the script."""
        from redis.exceptions import NoScriptError

        if isinstance(reply, NoScriptError):
            self._trip(True)
            return await client.eval(source, len(keys), *keys, *args)
        if isinstance(reply, Exception):
            raise reply
        return reply

    # --- clients, one per loop ---------------------------------------------------------------

    def _client(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            timeout = self.settings.timeout
            client = aioredis.Redis.from_url(
                self.settings.url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                retry=Retry(NoBackoff(), 0),
            )
            self._clients[loop] = client
            _track(loop, client, self)
        return client

    def keys(self, config: str, deployment: str) -> _Keys:
        found = self._keys.get((config, deployment))
        if found is None:
            found = _Keys(f"{self._prefix}{{{config}}}:{deployment}:")
            self._keys[(config, deployment)] = found
        return found

    # --- admission (on the request's path) -----------------------------------------------------

    async def admit(
        self,
        config: str,
        candidates: Sequence[Deployment],
        tokens: Sequence[int],
        *,
        least_busy: bool,
    ) -> Admission | None:
        """Admit the first candidate that the shared state lets take the request (the least
        busy one with ``least_busy``); None when Redis could not be asked (the local choice
        stands). What Redis says of each candidate it checked is applied to the local state."""
        member = uuid.uuid4().hex
        keys: list[str] = []
        args: list[Any] = ["least" if least_busy else "first", member]
        args += [int(LIMIT_WINDOW * 1000), math.ceil(self.settings.lease * 1000)]
        for deployment, n in zip(candidates, tokens, strict=True):
            k = self.keys(config, deployment.id)
            keys += (k.cool, k.pause, k.rpm, k.tpm, k.busy)
            rpm, tpm = deployment.rpm, deployment.tpm
            args += (-1 if rpm is None else rpm, -1 if tpm is None else tpm, n)

        async def op(client: aioredis.Redis) -> Any:
            batch = self._take()
            if not batch:
                return await self._script(
                    client, self._admit_sha, ADMIT_SCRIPT, keys, args, path=True
                )
            # the releases waiting on this loop ride along: still one round trip
            try:
                pipe = client.pipeline(transaction=False)
                _releases(pipe, batch)
                pipe.evalsha(self._admit_sha, len(keys), *keys, *args)
                self._trip(True)
                replies = await pipe.execute(raise_on_error=False)
            except BaseException:
                self._requeue(batch)
                raise
            return await self._script_reply(client, replies[-1], ADMIT_SCRIPT, keys, args)

        reply = await self._run(op)
        if reply is None:
            return None
        chosen, bucket = int(reply[0]), int(reply[1])
        self._learn(candidates, reply)
        if chosen == 0:
            self._count("refusals")
            return Admission(None, None)
        self._count("admissions")
        deployment = candidates[chosen - 1]
        k = self.keys(config, deployment.id)
        tpm_key = k.tpm if deployment.tpm is not None else None
        return Admission(deployment, Lease(k.busy, member, tpm_key, bucket, tokens[chosen - 1]))

    def _learn(self, candidates: Sequence[Deployment], reply: Sequence[Any]) -> None:
        """Apply what the admission saw of each candidate to the local state."""
        with self._lock:
            now = self._clock()
            for i in range((len(reply) - 2) // 3):
                code, wait = int(reply[2 + 3 * i]), int(reply[3 + 3 * i]) / 1000
                state = candidates[i].state
                state.shared_in_flight = int(reply[4 + 3 * i])
                if code == COOLING:
                    state.cooldown_until = max(state.cooldown_until, now + wait)
                elif code == PAUSED:
                    state.not_before = max(state.not_before, now + wait)
                elif code in (RPM_FULL, TPM_FULL):
                    state.limited_until = max(state.limited_until, now + wait)

    # --- after the answer (off the path) -------------------------------------------------------

    def release(self, lease: Lease, used: int | None) -> None:
        """The request ended: remove it from the in-flight set and correct the tpm bucket
        with the real usage, off the path: the releases of a loop ride along with its next
        admission, or go in one pipeline of their own from a task nobody waits for."""
        delta = 0 if used is None or lease.tpm is None else used - lease.tokens
        self._queue([(lease, delta)])
        self._start_flush()

    def _queue(self, batch: list[tuple[Lease, int]], *, first: bool = False) -> None:
        pending = self._pending.setdefault(asyncio.get_running_loop(), [])
        if first:
            pending[:0] = batch
        else:
            pending += batch
        if len(pending) > MAX_PENDING:
            del pending[: len(pending) - MAX_PENDING]

    def _take(self) -> list[tuple[Lease, int]]:
        return self._pending.pop(asyncio.get_running_loop(), None) or []

    def _requeue(self, batch: list[tuple[Lease, int]]) -> None:
        """Releases that may not have reached Redis go again: their in-flight removals (which
        may be repeated), not their tpm corrections (which may not)."""
        self._queue([(lease, 0) for lease, _ in batch], first=True)

    def _start_flush(self) -> None:
        loop = asyncio.get_running_loop()
        if loop not in self._flushing and self._pending.get(loop):
            self._flushing.add(loop)
            self._background(self._flush(loop))

    async def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while self._state != "disconnected" and (batch := self._take()):

                async def op(client: aioredis.Redis, batch: list[tuple[Lease, int]] = batch) -> Any:
                    pipe = client.pipeline(transaction=False)
                    _releases(pipe, batch)
                    self._trip(False)
                    return await pipe.execute()

                try:
                    done = await self._run(op)
                except BaseException:
                    self._requeue(batch)
                    raise
                if done is None:
                    self._requeue(batch)
                    return
        finally:
            self._flushing.discard(loop)

    async def drain(self) -> None:
        """Send what waits on the running loop now (its shutdown: a flush task would be
        cancelled before it ran)."""
        if self._state != "disconnected" and (batch := self._take()):

            async def op(client: aioredis.Redis) -> Any:
                pipe = client.pipeline(transaction=False)
                _releases(pipe, batch)
                self._trip(False)
                return await pipe.execute()

            await self._run(op, tasks=False)

    def _background(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- failures --------------------------------------------------------------------------------

    async def failure(
        self,
        config: str,
        deployment: Deployment,
        *,
        pause: float | None,
        allowed_fails: int,
        fail_window: float,
        cooldown_time: float,
    ) -> SharedFailure | None:
        """Count a failure of ``deployment`` on every instance's behalf; start (and publish)
        its cooldown when more than ``allowed_fails`` fell within ``fail_window``, and its
        pause for ``pause`` seconds. None when Redis could not be asked."""
        k = self.keys(config, deployment.id)
        keys = [k.fails, k.cool, k.pause]
        args: list[Any] = [
            self.channel,
            config,
            deployment.id,
            uuid.uuid4().hex,
            max(1, math.ceil(fail_window * 1000)),
            allowed_fails,
            math.ceil(cooldown_time * 1000),
            math.ceil(pause * 1000) if pause else 0,
        ]

        async def op(client: aioredis.Redis) -> Any:
            return await self._script(
                client, self._failure_sha, FAILURE_SCRIPT, keys, args, path=False
            )

        reply = await self._run(op)
        if reply is None:
            return None
        return SharedFailure(
            bool(reply[0]), max(0, int(reply[2])) / 1000, max(0, int(reply[3])) / 1000
        )

    # --- the listener: other instances' cooldowns and pauses ------------------------------------

    def _ensure_listener(self) -> None:
        """Start the pub/sub listener on the running loop unless one runs somewhere."""
        with self._guard:
            task = self._listener
            if self._closed or (
                task is not None and not task.done() and not task.get_loop().is_closed()
            ):
                return
            self._wake, self._ready = asyncio.Event(), asyncio.Event()
            self._listener = asyncio.get_running_loop().create_task(
                self._listen(self._wake, self._ready)
            )

    async def _listen(self, wake: asyncio.Event, ready: asyncio.Event) -> None:
        delay = self.settings.probe_delay
        while True:
            wake.clear()
            pubsub = None
            try:
                pubsub = self._client().pubsub(ignore_subscribe_messages=True)
                await asyncio.wait_for(pubsub.subscribe(self.channel), self.settings.timeout)
                self._set_subscribed(True)
                ready.set()
                delay = self.settings.probe_delay
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=30)
                    if message is not None and message.get("type") == "message":
                        self._heard(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("router: shared state listener: %s", _describe(exc))
            finally:
                self._set_subscribed(False)
                ready.clear()
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), delay)
            delay = min(delay * 2, self.settings.max_probe_delay)

    def _heard(self, data: bytes) -> None:
        try:
            event = _decode_event(data)
        except msgspec.DecodeError:
            log.debug("router: shared state: an event that is not rxllm's: %r", data[:100])
            return
        self._count("events")
        seconds = event.ms / 1000
        deployments = self._resolve(event.c, event.d)
        if deployments:
            with self._lock:
                now = self._clock()
                for deployment in deployments:
                    state = deployment.state
                    if event.k == "cool":
                        state.cooldown_until = max(state.cooldown_until, now + seconds)
                        state.failures.clear()
                    elif event.k == "pause":
                        state.not_before = max(state.not_before, now + seconds)
        for listener in self._listeners:
            try:
                listener(event.k, event.c, event.d, seconds)
            except Exception:
                log.exception("an rxllm router on_shared_event callback raised")

    # --- connecting and closing ------------------------------------------------------------------

    async def connect(self, wait: float) -> bool:
        """Ask Redis now (a PING) and start listening; True when it answered and the listener
        subscribed within ``wait`` seconds (when it runs on this loop)."""

        async def op(client: aioredis.Redis) -> Any:
            self._trip(False)
            return await client.ping()

        if self._closed:
            return False
        if self._state == "disconnected":  # a deliberate attempt: now, not at the next probe
            if not await self._ping():
                return False
            self._succeeded()
        elif await self._run(op) is None:
            return False
        self._ensure_listener()
        listener, ready = self._listener, self._ready
        if (
            listener is not None
            and ready is not None
            and listener.get_loop() is asyncio.get_running_loop()
        ):
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ready.wait(), wait)
        return self._subscribed

    async def aclose(self) -> None:
        """Stop the listener and the probe and close this router's clients (those of other
        loops are closed on their loop, or when it shuts down)."""
        with self._guard:
            self._closed = True
            tasks = [t for t in (self._listener, self._probe, *self._tasks) if t is not None]
        here = asyncio.get_running_loop()
        for task in tasks:
            loop = task.get_loop()
            if loop is here:
                task.cancel()
            elif not loop.is_closed():
                loop.call_soon_threadsafe(task.cancel)
        mine = [t for t in tasks if t.get_loop() is here]
        if mine:
            await asyncio.wait(mine, timeout=2)
        for loop, client in list(self._clients.items()):
            self._clients.pop(loop, None)
            _untrack(loop, client)
            if loop is here:
                with contextlib.suppress(Exception):
                    await client.aclose()
            elif loop.is_running():
                asyncio.run_coroutine_threadsafe(_close_quietly(client), loop)


def _releases(pipe: Any, batch: list[tuple[Lease, int]]) -> None:
    for lease, delta in batch:
        pipe.zrem(lease.busy, lease.member)
        if delta and lease.tpm is not None:
            pipe.hincrby(lease.tpm, str(lease.bucket), delta)


def _sha1(source: str) -> str:
    import hashlib

    return hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()


def _describe(error: BaseException) -> str:
    if isinstance(error, (asyncio.TimeoutError, TimeoutError)) and not str(error):
        return "timed out"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


# --- every shared client of a loop, closed when the loop shuts down --------------------------
# (as rxllm/transport/session.py does for aiohttp sessions: a parked async generator that
# shutdown_asyncgens() finalises on a user's loop; a shutdown hook on the background loop)

_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, set[aioredis.Redis]] = (
    weakref.WeakKeyDictionary()
)
#: The routers' shared states that used each loop (to drain their releases at its shutdown).
_states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.WeakSet[SharedState]] = (
    weakref.WeakKeyDictionary()
)
_guards: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = (
    weakref.WeakKeyDictionary()
)


def _track(loop: asyncio.AbstractEventLoop, client: aioredis.Redis, state: SharedState) -> None:
    _states.setdefault(loop, weakref.WeakSet()).add(state)
    clients = _by_loop.get(loop)
    if clients is None:
        clients = _by_loop[loop] = set()
        if loop is not _loop.background_loop_if_started():
            guard = _guard(loop)
            _guards[loop] = guard
            with contextlib.suppress(StopIteration):
                guard.asend(None).send(None)
    clients.add(client)


def _untrack(loop: asyncio.AbstractEventLoop, client: aioredis.Redis) -> None:
    clients = _by_loop.get(loop)
    if clients is not None:
        clients.discard(client)


async def _close_quietly(client: aioredis.Redis) -> None:
    with contextlib.suppress(Exception):
        await client.aclose()


async def _close_loop_clients(loop: asyncio.AbstractEventLoop) -> None:
    for state in list(_states.pop(loop, ())):
        with contextlib.suppress(Exception):
            await state.drain()
    for client in list(_by_loop.pop(loop, ())):
        await _close_quietly(client)


async def _guard(loop: asyncio.AbstractEventLoop) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        _guards.pop(loop, None)
        await _close_loop_clients(loop)


_loop.add_shutdown_hook(_close_loop_clients)
