"""The :class:`Router`: named configurations, and requests sent through them."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Literal, overload

import msgspec

from .. import providers
from .._api import DEFAULT_TIMEOUT, MessageLike, _messages
from .._loop import run_sync
from .._telemetry import measured
from ..cache import CacheRequest, CacheUse, ResponseCache, parse_cache_control
from ..errors import ConfigurationError
from ..types import ChatResponse
from ._cached import CachingRouterStream
from ._config import Deployment, Route, RouteConfig, describe, make_config, make_deployment
from ._execution import Attempt, Execution, FetchSender, Group, Pick, Plan, Policy
from ._shared import SharedSettings, SharedState
from ._stream import RouterStream

__all__ = ["Router", "Settings", "create_router"]

log = logging.getLogger("rxllm.router")

#: How many route functions may hand a request on to another configuration in a row.
_MAX_ROUTE_DEPTH = 8
#: Deployments remembered per route function (each keeps its own health and latency).
_MAX_DYNAMIC = 256
#: Keyword arguments that belong to a deployment, not to a request.
_DEPLOYMENT_ONLY = ("api_key", "api_base", "timeout", "extra_headers", "extra_body", "verify")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """A router's timing and health policy (``Router(...)`` / ``configure(...)``)."""

    #: Retries after the first attempt of a configuration (``register`` may override).
    num_retries: int = 2
    #: Seconds per attempt: to connect and between reads of a stream; the whole response
    #: otherwise (``register`` and each deployment may override).
    timeout: float | None = DEFAULT_TIMEOUT
    #: Backoff before the k-th retry of a deployment: a random time between half and all of
    #: ``min(max_retry_delay, retry_delay * 2**(k-1))`` (unless it sent ``Retry-After``).
    retry_delay: float = 0.5
    max_retry_delay: float = 8.0
    #: No attempt starts, and no wait is begun that would end, later than this many seconds
    #: after the request started.
    max_retry_time: float = 60.0
    #: A deployment failing more than ``allowed_fails`` times within ``fail_window`` seconds is
    #: skipped for ``cooldown_time`` seconds (0 disables cooldowns).
    allowed_fails: int = 3
    fail_window: float = 60.0
    cooldown_time: float = 30.0
    #: The longest a provider's ``Retry-After`` pauses a deployment, in seconds: a longer one
    #: (``inf``, an epoch timestamp sent by mistake, ``1e9``) is cut to this, so that one bad
    #: header cannot take a deployment out for decades. A ``Retry-After`` that is NaN,
    #: negative or unparsable is ignored (the usual backoff and cooldown apply).
    max_cooldown: float = 300.0

    def checked(self) -> Settings:
        for name in ("num_retries", "allowed_fails"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigurationError(f"{name} must be an integer >= 0, not {value!r}")
        for name in (
            "retry_delay",
            "max_retry_delay",
            "max_retry_time",
            "cooldown_time",
            "max_cooldown",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value >= 0:
                raise ConfigurationError(f"{name} must be seconds >= 0, not {value!r}")
        if not self.fail_window > 0:
            raise ConfigurationError(f"fail_window must be positive, not {self.fail_window!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigurationError(f"timeout must be positive seconds, not {self.timeout!r}")
        return self


def default_token_estimator() -> Callable[[str], int]:
    """rxllm's token estimate (:func:`rxllm.tokens.estimate_tokens`)."""
    from ..tokens import estimate_tokens

    return estimate_tokens


class Router:
    """Named configurations and the policy that keeps them up.

    ``rxllm.router``'s module functions use one default ``Router``; create your own for an
    isolated set of configurations, health state and callbacks. ``clock``, ``sleep`` and ``rng``
    are injectable for tests (``sleep`` must advance ``clock``).

    The timing and health settings are :class:`Settings`'s fields; among them ``max_cooldown``
    (default 300 s) is the longest a provider's ``Retry-After`` keeps a deployment out, so one
    absurd header (``1e9``, ``inf``, an epoch timestamp) cannot disable it for decades.

    ``cache`` is the response cache requests may use (:class:`rxllm.cache.ResponseCache`;
    ``True``: one in memory; also settable later as ``router.cache``): a configuration
    registered with ``cache=True``, or a request made with ``cache=True`` (or LiteLLM's
    controls), is answered from it when it can; a hit runs no attempt at all.

    ``redis_url`` shares the deployments' health with every router on that Redis (other
    processes, other hosts): cooldowns and ``Retry-After`` pauses, failure counts, the rpm/tpm
    windows and the requests in flight (``least-busy``), keyed by ``redis_namespace``, the
    configuration name and the deployment id. Without it everything stays in this process.
    A Redis operation that takes longer than ``redis_timeout`` seconds, or fails, sends the
    router back to its own state (limits per instance) until a probe finds Redis again
    (first after ``redis_probe_delay`` seconds, then backing off); :meth:`shared_status`
    tells which, and counts.
    """

    def __init__(
        self,
        *,
        num_retries: int = 2,
        timeout: float | None = DEFAULT_TIMEOUT,
        retry_delay: float = 0.5,
        max_retry_delay: float = 8.0,
        max_retry_time: float = 60.0,
        allowed_fails: int = 3,
        fail_window: float = 60.0,
        cooldown_time: float = 30.0,
        max_cooldown: float = 300.0,
        on_attempt: Callable[[Attempt], Any] | None = None,
        token_estimator: Callable[[str], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: random.Random | None = None,
        cache: ResponseCache | bool | None = None,
        redis_url: str | None = None,
        redis_namespace: str = "rxllm",
        redis_timeout: float = 0.25,
        redis_probe_delay: float = 0.5,
    ) -> None:
        settings = Settings(
            num_retries=num_retries,
            timeout=timeout,
            retry_delay=retry_delay,
            max_retry_delay=max_retry_delay,
            max_retry_time=max_retry_time,
            allowed_fails=allowed_fails,
            fail_window=fail_window,
            cooldown_time=cooldown_time,
            max_cooldown=max_cooldown,
        ).checked()
        self._configs: dict[str, RouteConfig] = {}
        lock = threading.RLock()
        #: The health shared with other routers on Redis (None: this router's alone).
        self._shared = (
            None
            if redis_url is None
            else SharedState(
                SharedSettings(
                    url=redis_url,
                    namespace=redis_namespace,
                    timeout=redis_timeout,
                    probe_delay=redis_probe_delay,
                    max_probe_delay=max(10.0, redis_probe_delay),
                ),
                resolve=self._deployments_named,
                lock=lock,
                clock=clock,
            )
        )
        self._callbacks: tuple[Callable[[Attempt], Any], ...] = (on_attempt,) if on_attempt else ()
        self._token_estimator = token_estimator
        #: The clock, lock, settings... every request of this router is given.
        self._policy = Policy(
            clock=clock,
            sleep=sleep,
            rng=rng or random.Random(),
            settings=settings,
            lock=lock,
            estimate=self._estimator,
            notify=self._notify,
            shared=self._shared,
        )
        self._lock = self._policy.lock
        if cache is True:
            cache = ResponseCache()
        if cache is not None and cache is not False and not isinstance(cache, ResponseCache):
            raise ConfigurationError(
                f"cache must be a rxllm.cache.ResponseCache or True, not {type(cache).__name__}"
            )
        #: The response cache requests may use (None: no cache).
        self.cache: ResponseCache | None = cache or None

    def __repr__(self) -> str:
        return f"Router(configs={self.list_configs()!r})"

    @property
    def settings(self) -> Settings:
        return self._policy.settings

    def configure(self, **settings: Any) -> Settings:
        """Change timing and health settings (see :class:`Settings`); returns the new ones."""
        unknown = set(settings) - set(Settings.__struct_fields__)
        if unknown:
            raise ConfigurationError(
                f"unknown router setting(s) {sorted(unknown)}; "
                f"known: {', '.join(Settings.__struct_fields__)}"
            )
        policy = self._policy
        policy.settings = msgspec.structs.replace(policy.settings, **settings).checked()
        return policy.settings

    def _estimator(self, text: str) -> int:
        if self._token_estimator is None:
            self._token_estimator = default_token_estimator()
        return self._token_estimator(text)

    # --- configurations ------------------------------------------------------------------

    def register(
        self,
        name: str,
        provider: str | None = None,
        model: str | None = None,
        *,
        deployments: Sequence[Mapping[str, Any]] | None = None,
        route: Route | None = None,
        configs: Mapping[str, Mapping[str, Any]] | None = None,
        strategy: str = "simple-shuffle",
        num_retries: int | None = None,
        fallbacks: Sequence[str] | None = None,
        context_window_fallbacks: Sequence[str] | None = None,
        timeout: float | None = None,
        cache: bool | None = None,
        **config: Any,
    ) -> str:
        """Name a configuration; returns the name. Registering a name again replaces it.

        Three forms:

        * ``register("fast", provider="openai", model="gpt-4o-mini", api_key=..., api_base=...)``
          (or ``model="openai/gpt-4o-mini"``): one deployment;
        * ``register("smart", deployments=[{"provider": ..., "model": ..., "api_key": ...,
          "api_base": ..., "weight": 2, "rpm": 60, "tpm": 100_000}, ...], strategy=...)``:
          a group balanced by ``strategy`` (``simple-shuffle``, ``least-busy``,
          ``lowest-latency``); keyword settings given besides apply to every deployment;
        * ``register("adaptive", route=fn, configs={"openai": {"api_key": ...}})``: ``fn``
          gets the request (a dict: ``messages``, ``stream``, ``metadata`` and the parameters)
          and returns a configuration name or a deployment dict (completed by ``configs`` for
          its provider) - ``create-router`` (docs/contracts.md, API table).

        Other keyword settings of a deployment: ``timeout``, ``drop_params``,
        ``extra_headers``, ``extra_body``, provider options, and default request parameters
        (``temperature=0.2``...). ``num_retries`` and ``timeout`` default to the router's.
        ``fallbacks`` name other configurations to try in order when this one fails;
        ``context_window_fallbacks`` those to try when the prompt is too long for it. They
        may be registered later; they must exist when a request is made. ``cache=True``
        makes its requests use the router's response cache (``False``: never; None: as the
        cache's ``mode`` says); a request's own ``cache=`` wins.
        """
        entry = make_config(
            name,
            provider=provider,
            model=model,
            deployments=deployments,
            route=route,
            configs=configs,
            policy={
                "strategy": strategy,
                "num_retries": num_retries,
                "timeout": timeout,
                "fallbacks": fallbacks,
                "context_window_fallbacks": context_window_fallbacks,
                "cache": cache,
            },
            settings=config,
        )
        with self._lock:
            self._configs[name] = entry
        log.info("router: registered %r (%s)", name, entry)
        return name

    def unregister(self, name: str) -> None:
        """Remove a configuration (nothing happens if there is none by that name)."""
        with self._lock:
            self._configs.pop(name, None)

    def list_configs(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._configs)

    def get_config(self, name: str) -> dict[str, Any] | None:
        """A registered configuration as plain data (keys masked), or None."""
        config = self._configs.get(name)
        if config is None:
            return None
        described = describe(config)
        settings = self._policy.settings
        if config.num_retries is None:
            described["num_retries"] = settings.num_retries
        if config.timeout is None:
            described["timeout"] = settings.timeout
        return described

    def clear(self) -> None:
        """Remove every configuration (callbacks and settings stay)."""
        with self._lock:
            self._configs.clear()

    def status(self, name: str) -> list[dict[str, Any]]:
        """What the router knows now about each deployment of ``name``: requests in flight,
        latency moving average, recent failures, and seconds left of a cooldown or pause.
        With ``redis_url``: ``shared_in_flight``, the requests in flight on every router as
        Redis last said (None before it was asked), and ``limited``, the seconds until the
        shared rpm/tpm windows, which other routers filled, have room again."""
        config = self._config(name)
        with self._lock:
            now = self._policy.clock()
            return [
                {
                    "deployment": d.id,
                    "in_flight": d.state.in_flight,
                    "latency": d.state.latency,
                    "recent_failures": len(d.state.failures),
                    "cooldown": max(0.0, d.state.cooldown_until - now),
                    "paused": max(0.0, d.state.not_before - now),
                    "shared_in_flight": d.state.shared_in_flight,
                    "limited": max(0.0, d.state.limited_until - now),
                }
                for d in (*config.deployments, *config.dynamic.values())
            ]

    # --- the state shared on Redis ---------------------------------------------------------

    def shared_status(self) -> dict[str, Any]:
        """The state of sharing on Redis, for logs and metrics.

        ``enabled`` (False without ``redis_url``: nothing else is then meaningful), ``state``
        (``idle`` before first use, ``connected``, ``disconnected``: routing on local state
        while a probe waits for Redis), ``connected``, ``subscribed`` (hearing the other
        routers' cooldowns), and counters since the router was made: ``errors`` (Redis
        operations that failed or timed out), ``fallbacks`` (operations done on local state
        instead), ``round_trips`` (all of them), ``path_round_trips`` (those on a request's
        path, before its answer: one per attempt), ``admissions``, ``refusals`` (every
        candidate full or cooling on the shared state), ``events`` (cooldowns and pauses heard
        from the channel)."""
        if self._shared is None:
            return {
                "enabled": False,
                "state": "off",
                "connected": False,
                "subscribed": False,
                "errors": 0,
                "fallbacks": 0,
                "round_trips": 0,
                "path_round_trips": 0,
                "admissions": 0,
                "refusals": 0,
                "events": 0,
            }
        return self._shared.status()

    async def aconnect(self, wait: float = 1.0) -> bool:
        """Connect to Redis now, on the running loop, and start listening to the other
        routers (rather than at the first request). True when Redis answered and the listener
        subscribed within ``wait`` seconds; False (never an error) when it did not, or there is
        no ``redis_url``: the router then routes on its own state and keeps trying."""
        if self._shared is None:
            return False
        return await self._shared.connect(wait)

    def connect(self, wait: float = 1.0) -> bool:
        """:meth:`aconnect` from plain code (on rxllm's background loop)."""
        return run_sync(self.aconnect(wait))

    async def aclose(self) -> None:
        """Stop sharing: close this router's Redis connections and its listener. (They are
        closed anyway when their event loop shuts down.)"""
        if self._shared is not None:
            await self._shared.aclose()

    def on_shared_event(
        self, callback: Callable[[str, str, str, float], Any]
    ) -> Callable[[], None]:
        """Call ``callback(kind, config, deployment_id, seconds)`` for every cooldown
        (``"cool"``) and ``Retry-After`` pause (``"pause"``) heard on the Redis channel, after
        it was applied to this router's state (its own included). Runs on the listener's
        event loop. Returns a function that removes it."""
        if self._shared is None:
            raise ConfigurationError("on_shared_event needs a router made with redis_url=...")
        return self._shared.add_listener(callback)

    def _deployments_named(self, config: str, deployment: str) -> list[Deployment]:
        """The deployments ``deployment`` of the configuration ``config`` (for events)."""
        with self._lock:
            entry = self._configs.get(config)
            if entry is None:
                return []
            return [d for d in (*entry.deployments, *entry.dynamic.values()) if d.id == deployment]

    def on_attempt(self, callback: Callable[[Attempt], Any]) -> Callable[[], None]:
        """Call ``callback(attempt)`` after every attempt (deployment, latency, outcome,
        error) - for logs and metering. Returns a function that removes it. It runs on the
        request's event loop; what it raises is logged and ignored."""
        with self._lock:
            self._callbacks = (*self._callbacks, callback)

        def remove() -> None:
            with self._lock:
                self._callbacks = tuple(c for c in self._callbacks if c is not callback)

        return remove

    def _notify(self, attempt: Attempt) -> None:
        for callback in self._callbacks:
            try:
                callback(attempt)
            except Exception:
                log.exception("an rxllm router on_attempt callback raised")

    # --- quick setup -----------------------------------------------------------------------

    def setup(
        self, provider: str, model: str | None = None, *, name: str | None = None, **config: Any
    ) -> str:
        """Register ``provider`` under its own name (or ``name``) with its default model;
        the key comes from ``api_key=`` or the provider's environment variable."""
        info = providers.provider_info(provider)
        chosen = model or _default_model(info)
        if not chosen:
            raise ConfigurationError(f"{provider} has no default model: pass model=...")
        return self.register(name or provider, provider=provider, model=chosen, **config)

    def quick_setup(self) -> list[str]:
        """One configuration per provider usable from the environment, named after it: its
        key variable is set (or it needs none, like a local server), its base URL is known,
        and it has a default model. Returns the names registered."""
        names = []
        for provider in providers.list_providers():
            info = providers.provider_info(provider)
            if info.key_required and providers.api_key_for(info, None) is None:
                continue
            if not providers.api_base_for(info, None):
                continue
            model = _default_model(info)
            if model:
                names.append(self.register(provider, provider=provider, model=model))
        log.info("router: quick setup registered %s", names)
        return names

    def __getattr__(self, attribute: str) -> Callable[..., str]:
        """``setup_<provider>(model=None, **config)`` for every provider in the registry."""
        if attribute.startswith("setup_"):
            provider = attribute[len("setup_") :]
            if provider in providers.list_providers():
                return functools.partial(self.setup, provider)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {attribute!r}")

    # --- requests --------------------------------------------------------------------------

    def _config(self, name: str) -> RouteConfig:
        config = self._configs.get(name)
        if config is None:
            known = ", ".join(repr(n) for n in self._configs) or "none"
            raise ConfigurationError(
                f"no router configuration named {name!r} (registered: {known})"
            )
        return config

    def _resolve(
        self, name: str, request: dict[str, Any], depth: int = 0
    ) -> tuple[RouteConfig, Group]:
        """The configuration serving ``name`` for this request, and its deployments."""
        config = self._config(name)
        deployments = config.deployments
        if config.route is not None:
            target = config.route(request)
            if isinstance(target, str):
                if depth >= _MAX_ROUTE_DEPTH:
                    raise ConfigurationError(
                        f"router configuration {name!r}: route functions hand the request on "
                        f"more than {_MAX_ROUTE_DEPTH} times (a cycle?)"
                    )
                return self._resolve(target, request, depth + 1)
            deployments = (self._dynamic(config, target),)
        settings = self._policy.settings
        group = Group(
            config.name,
            deployments,
            config.strategy,
            settings.num_retries if config.num_retries is None else config.num_retries,
            settings.timeout if config.timeout is None else config.timeout,
        )
        return config, group

    def _dynamic(self, config: RouteConfig, target: Any) -> Deployment:
        """The deployment a route function chose (remembered, so its health is tracked)."""
        where = f"router configuration {config.name!r}: the route function"
        if not isinstance(target, Mapping):
            raise ConfigurationError(
                f"{where} returned {type(target).__name__}: return a configuration name or a "
                "dict with provider and model"
            )
        try:
            provider, model = providers.split_model(target.get("provider"), target.get("model"))
        except ConfigurationError as exc:
            raise ConfigurationError(f"{where} returned no usable model: {exc.message}") from None
        spec = {**config.route_configs.get(provider, {}), **target}
        spec["provider"], spec["model"] = provider, model
        key = repr(sorted((k, repr(v)) for k, v in spec.items()))
        deployment = config.dynamic.get(key)
        if deployment is None:
            default_id = f"{config.name}:{provider}/{model}"
            made = make_deployment(spec, default_id=default_id, where=where)
            with self._lock:
                deployment = config.dynamic.setdefault(key, made)
                if len(config.dynamic) > _MAX_DYNAMIC:
                    config.dynamic.pop(next(iter(config.dynamic)))
        return deployment

    def _execution(
        self,
        name: str,
        messages: Sequence[MessageLike] | None,
        stream: bool,
        metadata: Mapping[str, Any] | None,
        params: dict[str, Any],
    ) -> Execution:
        """Everything checked before any I/O: the request, the configuration and its
        fallbacks resolved, the first deployment chosen and its request built."""
        for key in _DEPLOYMENT_ONLY:
            if key in params:
                raise ConfigurationError(
                    f"{key} belongs to a deployment: give it to router.register(), "
                    "not to the request"
                )
        checked = _messages(messages)
        request = {"messages": messages, "stream": stream, "metadata": dict(metadata or {})}
        request.update(params)
        config, primary = self._resolve(name, request)
        plan = Plan(
            name,
            primary,
            tuple(self._resolve(n, request, 1)[1] for n in config.fallbacks),
            tuple(self._resolve(n, request, 1)[1] for n in config.context_window_fallbacks),
        )
        return Execution(self._policy, plan, checked, params, stream=stream)

    @overload
    def completion(
        self,
        name: str,
        messages: Sequence[MessageLike] | None = ...,
        *,
        stream: Literal[True],
        metadata: Mapping[str, Any] | None = ...,
        replay: bool = ...,
        cache: CacheRequest = ...,
        **params: Any,
    ) -> RouterStream: ...

    @overload
    def completion(
        self,
        name: str,
        messages: Sequence[MessageLike] | None = ...,
        *,
        stream: Literal[False] = ...,
        metadata: Mapping[str, Any] | None = ...,
        replay: bool = ...,
        cache: CacheRequest = ...,
        **params: Any,
    ) -> ChatResponse: ...

    def completion(
        self,
        name: str,
        messages: Sequence[MessageLike] | None = None,
        *,
        stream: bool = False,
        metadata: Mapping[str, Any] | None = None,
        replay: bool = True,
        cache: CacheRequest = None,
        **params: Any,
    ) -> RouterStream | ChatResponse:
        """``rxllm.completion`` through the configuration ``name``: a ``ChatResponse``
        (blocking), or with ``stream=True`` a hot stream (a ``ChatStream``) returned at once.
        ``metadata`` reaches route functions, not the provider; other keyword arguments are
        request parameters. ``replay=False`` as for ``rxllm.completion`` (a stream read by one
        consumer from its start keeps no chunks).

        ``cache`` (with a router cache): ``True`` / ``False``, or LiteLLM's controls
        (``{"no-cache": True, "no-store": True, "ttl": 60, "s-maxage": 600, "use-cache":
        True}``, see ``rxllm.cache.parse_cache_control``); None leaves it to the configuration
        and the cache's ``mode``. A hit is a ``CachedResponse``, or a stream whose
        ``cache_hit`` is True; a stream looks the request up at its first subscription."""
        execution = self._execution(name, messages, stream, metadata, params)
        first = execution.first()
        use = self._cache_use(name, messages, params, cache)
        if stream:
            if use is None:
                return RouterStream(execution, first, replay=replay)
            return CachingRouterStream(execution, first, use=use, replay=replay)
        if use is None:
            return run_sync(_plain(execution, first, name))
        return run_sync(use.fetch(lambda: _plain(execution, first, name)))

    @overload
    async def acompletion(
        self,
        name: str,
        messages: Sequence[MessageLike] | None = ...,
        *,
        stream: Literal[True],
        metadata: Mapping[str, Any] | None = ...,
        replay: bool = ...,
        cache: CacheRequest = ...,
        **params: Any,
    ) -> RouterStream: ...

    @overload
    async def acompletion(
        self,
        name: str,
        messages: Sequence[MessageLike] | None = ...,
        *,
        stream: Literal[False] = ...,
        metadata: Mapping[str, Any] | None = ...,
        replay: bool = ...,
        cache: CacheRequest = ...,
        **params: Any,
    ) -> ChatResponse: ...

    async def acompletion(
        self,
        name: str,
        messages: Sequence[MessageLike] | None = None,
        *,
        stream: bool = False,
        metadata: Mapping[str, Any] | None = None,
        replay: bool = True,
        cache: CacheRequest = None,
        **params: Any,
    ) -> RouterStream | ChatResponse:
        """:meth:`completion` for asyncio (the stream is bound to the running loop). With the
        cache, a stream is looked up before it is returned: its ``cache_hit`` is known at
        once (a gateway can say so in its response headers)."""
        execution = self._execution(name, messages, stream, metadata, params)
        first = execution.first()
        use = self._cache_use(name, messages, params, cache)
        if stream:
            if use is None:
                routed = RouterStream(execution, first, replay=replay)
            else:
                entry = await use.find()
                routed = CachingRouterStream(
                    execution, first, use=use, entry=entry, looked_up=True, replay=replay
                )
            routed.bind()
            return routed
        if use is None:
            return await _plain(execution, first, name)
        return await use.fetch(lambda: _plain(execution, first, name))

    def _cache_use(
        self,
        name: str,
        messages: Sequence[MessageLike] | None,
        params: Mapping[str, Any],
        cache: CacheRequest,
    ) -> CacheUse | None:
        """How a request (already checked) uses the router's cache; None: it does not. Asking
        for the cache (the request or its configuration) on a router without one is an error,
        never a quiet miss; LiteLLM's dict of controls alone is ignored then."""
        control = parse_cache_control(cache)
        if control.use is False:
            return None
        wanted = self._config(name).cache
        store = self.cache
        if store is None:
            if control.use or wanted:
                who = "the request" if control.use else f"configuration {name!r}"
                raise ConfigurationError(
                    f"{who} asks for the response cache but this router has none: "
                    "Router(cache=rxllm.cache.ResponseCache(...)) or router.cache = ..."
                )
            return None
        assert messages is not None  # checked by _execution
        return store.use("router", name, messages, params, control, default=wanted)

    def chat(
        self, name: str, question: str, *, system_prompt: str | None = None, **params: Any
    ) -> ChatResponse:
        """Ask one question (``chat``): ``chat("fast", "What is 2+2?").text``."""
        return self.completion(
            name, _chat_messages(question, system_prompt), stream=False, **params
        )

    async def achat(
        self, name: str, question: str, *, system_prompt: str | None = None, **params: Any
    ) -> ChatResponse:
        """:meth:`chat` for asyncio."""
        return await self.acompletion(
            name, _chat_messages(question, system_prompt), stream=False, **params
        )


def _plain(execution: Execution, first: Pick, name: str) -> Coroutine[Any, Any, ChatResponse]:
    """A plain routed request, measured as one request whatever its attempts (telemetry)."""
    return measured(
        first.call,
        lambda: execution.run(FetchSender()),
        config=name,
        records=execution.attempts,
    )


def _chat_messages(question: str, system_prompt: str | None) -> list[dict[str, str]]:
    messages = [{"role": "user", "content": question}]
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages


def _default_model(info: providers.ProviderInfo) -> str | None:
    """The registry's default model, else the one named by the provider's ``model`` env
    option (e.g. an Azure deployment name)."""
    if info.default_model:
        return info.default_model
    variable = info.env_options.get("model")
    return os.environ.get(variable) if variable else None


def create_router(
    route: Route, configs: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """``create-router``: ``register("adaptive", **create_router(fn, configs))``."""
    return {"route": route, "configs": dict(configs or {})}
