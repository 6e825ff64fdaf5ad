"""The gateway's HTTP application: endpoints, keys, the stream relay, accounting.

``Gateway(config).app()`` is an ``aiohttp.web.Application``. Each model call is answered in the
client's own wire format (OpenAI's on ``/v1/chat/completions``, Anthropic's on
``/v1/messages``) whatever the upstream's provider, through the router of the config's
:class:`~rxllm.gateway._config.Catalog`. A streamed answer is relayed by :meth:`Gateway._relay`:

* each upstream chunk leaves as its own SSE event as soon as it is parsed (``response.write``
  per chunk, never batched), and the next is not taken before the client's socket accepted the
  last one, so a slow client holds the upstream read back (docs/contracts.md, 6);
* a ``: keep-alive`` comment goes out every ``heartbeat_seconds`` while nothing else does,
  before the first token too. The response is committed (status 200) only at the first chunk
  or the first heartbeat, so an upstream that fails quickly is answered with its real status;
* a client that goes away cancels the handler (aiohttp's handler cancellation), which disposes
  the stream, which cancels the upstream request (docs/contracts.md, 3);
* a failure after the first byte ends the stream with an error event in the client's format.

Usage is always requested upstream; the client's stream carries it only when asked. Every
request's usage is priced at the price table's rates and added to its virtual key's spend.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import importlib.metadata
import logging
import random
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import msgspec
from aiohttp import web
from reactivex import Observable

from .. import providers
from .._api import aembedding
from .._flow import TIMED_OUT, StreamIterator
from ..cache import CACHE_HEADER, is_cache_hit
from ..pricing import cost_of
from ..streaming import SSE_HEADERS
from ..tokens import estimate_request_tokens
from ..types import ChatChunk, ChatResponse, Usage
from . import _anthropic, _openai
from ._config import Catalog, GatewayConfig
from ._errors import GatewayError, WireError, anthropic_error_body, describe, openai_error_body
from ._keys import KeyLimits, KeyStore, VirtualKey, authenticate, key_routes, unauthenticated
from ._metrics import CONTENT_TYPE, Metrics, RequestMetrics, measuring
from ._playground import playground_routes
from ._shared import SharedKeys

__all__ = ["Gateway"]

try:
    _VERSION = importlib.metadata.version("rxllm")
except importlib.metadata.PackageNotFoundError:  # run from a source tree
    _VERSION = "unknown"

log = logging.getLogger("rxllm.gateway")

KEEP_ALIVE = b": keep-alive\n\n"
_encode = msgspec.json.Encoder().encode
_JSON = "application/json"
#: Chunks a relay may hold for a client before the upstream read waits.
_RELAY_BUFFER = 8
_ANTHROPIC_PATH = "/v1/messages"


class Frames(Protocol):
    """A stream in one client's wire format (``_openai.OpenAIFrames``,
    ``_anthropic.AnthropicStream``)."""

    @property
    def usage(self) -> Usage | None: ...

    def start(self) -> bytes: ...

    def chunk(self, chunk: ChatChunk) -> bytes: ...

    def end(self) -> bytes: ...

    def error(self, error: WireError) -> bytes: ...


class Caller(msgspec.Struct, frozen=True):
    """Who is calling: the master key / an open gateway (``key`` None), or a virtual key."""

    key: VirtualKey | None = None


class Gateway:
    """The application of ``rxllm serve`` for one config; one per process."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        catalog: Catalog | None = None,
        metrics: Metrics | None = None,
        keys: KeyStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.catalog = catalog or Catalog(config)
        self.metrics = metrics or Metrics()
        general = config.general
        self.master_key = general.master_key
        if self.master_key and keys is None:
            keys = KeyStore(general.database_path)
        self.keys = keys
        self.limits = KeyLimits()
        #: Keys, limits and spend shared by every instance on Redis (``redis_url``).
        self.shared: SharedKeys | None = None
        if config.redis_url and self.keys is not None:
            self.shared = SharedKeys(
                self.keys, self.limits, config.redis_url, on_state=self.metrics.redis_state
            )
            self.metrics.redis_state(True)
        #: Spend records on their way to Redis.
        self._records: set[asyncio.Task[Any]] = set()
        self._syncing: asyncio.Future[None] | None = None
        self.heartbeat = general.heartbeat_seconds
        self.max_body = int(general.max_request_size_mb * 1024 * 1024)
        self.clock = clock
        #: True once SIGTERM arrived: readiness fails, so load balancers stop sending.
        self.draining = False
        #: True once the grace period is over: open streams end with an error event.
        self.drain_expired = False
        self.open_streams = 0
        #: The handlers running now, for draining.
        self.inflight: set[asyncio.Task[Any]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.started = int(clock())

    # --- the application -----------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body, middlewares=[self._errors])
        chat, messages = self._chat_completions, self._messages
        app.add_routes(
            [
                web.post("/v1/chat/completions", chat),
                web.post("/chat/completions", chat),
                web.post("/v1/messages", messages),
                web.post("/v1/embeddings", self._embeddings),
                web.post("/embeddings", self._embeddings),
                web.get("/v1/models", self._models),
                web.get("/models", self._models),
                web.get("/health/liveliness", self._liveliness),
                web.get("/health/readiness", self._readiness),
                web.get("/metrics", self._metrics),
            ]
        )
        app.add_routes(playground_routes(self.catalog, self._caller))  # the page at /
        if self.keys is not None and self.master_key:
            app.add_routes(key_routes(self.keys, self.master_key, self.shared))
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._close)
        return app

    async def _start(self, _: web.Application) -> None:
        router = self.catalog.router
        if router.shared_status()["enabled"]:
            await router.aconnect()  # an unreachable Redis is said now, not at a request
            self._syncing = asyncio.ensure_future(self._sync_router_metrics())

    async def _sync_router_metrics(self) -> None:
        """Each second, the router's Redis figures into the metrics (each worker its own)."""
        while True:
            self.metrics.router_shared(self.catalog.router.shared_status())
            await asyncio.sleep(1.0)  # a reporting period, not a synchronisation

    async def _close(self, _: web.Application) -> None:
        if self._syncing is not None:
            self._syncing.cancel()
        await self.catalog.router.aclose()
        if self._records:
            await asyncio.wait(self._records, timeout=5)
        if self.shared is not None:
            await self.shared.close()
        if self.keys is not None:
            self.keys.close()

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Every failure as the client's wire format expects it: never a traceback. Also
        keeps the set of running handlers, for draining."""
        task = asyncio.current_task()
        if task is not None:
            self.inflight.add(task)
            self._idle.clear()
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            error: BaseException = GatewayError(exc.status, exc.reason)
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception as exc:
            error = exc
            if describe(exc).status >= 500 and not isinstance(exc, GatewayError):
                log.warning("%s %s failed: %r", request.method, request.path, exc)
        finally:
            if task is not None:
                self.inflight.discard(task)
                if not self.inflight:
                    self._idle.set()
        return self._error_response(request, error)

    async def drained(self) -> None:
        """Wait until no handler runs."""
        await self._idle.wait()

    def _error_response(self, request: web.Request, error: BaseException) -> web.Response:
        wire = describe(error)
        request_id = request.get("request_id") or _request_id()
        if request.path == _ANTHROPIC_PATH:
            body = anthropic_error_body(wire, request_id)
        else:
            body = openai_error_body(wire)
        headers = {"x-request-id": request_id, "request-id": request_id}
        if wire.retry_after is not None:
            headers["retry-after"] = str(max(1, round(wire.retry_after)))
        measured = request.get("metrics") or self.metrics.request(_endpoint(request), "")
        measured.finished(wire.status, _since(request), error=type(error).__name__)
        return web.Response(
            status=wire.status, body=_encode(body), content_type=_JSON, headers=headers
        )

    # --- keys ------------------------------------------------------------------------------

    async def _caller(self, request: web.Request) -> Caller:
        """The caller of a model endpoint (401 without a valid key when keys are on)."""
        if not self.master_key:
            return Caller()
        key = authenticate(request.headers)
        if key is None:
            raise unauthenticated(None)
        if hmac.compare_digest(key.encode(), self.master_key.encode()):
            return Caller()
        if self.shared is not None:
            found = await self.shared.lookup(key)
        else:
            found = self.keys.lookup(key) if self.keys is not None else None
        if found is None:
            raise unauthenticated(key)
        return Caller(found)

    async def _admit(self, request: web.Request, caller: Caller, model: str) -> None:
        """Refuse a key's request (expired, model, budget, rpm, tpm) or count it."""
        key = caller.key
        if key is None:
            return
        if self.shared is not None:
            refusal = await self.shared.admit(key, model, request["request_id"])
            self.metrics.redis_round_trips.inc()
        else:
            now = self.clock()
            refusal = key.refusal(model, now) or self.limits.admit(key, now)
        if refusal is not None:
            raise refusal

    def _account(
        self,
        request: web.Request,
        caller: Caller,
        provider: str,
        model: str,
        usage: Usage | None,
    ) -> None:
        """Price a request's usage; add it to its key's spend and to the metrics."""
        if usage is None or request.get("cache_hit"):
            return  # a cache hit costs nothing
        cost = cost_of(provider, model, usage)
        request["metrics"].usage(usage.prompt_tokens, usage.completion_tokens, cost)
        key = caller.key
        if key is None:
            return
        prompt, completion = usage.prompt_tokens, usage.completion_tokens
        if self.shared is not None:  # off the request's path: the answer is not held for it
            record = self.shared.record(key, request["request_id"], cost or 0.0, prompt, completion)
            task = asyncio.ensure_future(record)
            self._records.add(task)
            task.add_done_callback(self._records.discard)
            return
        self.limits.add_tokens(key, usage.total_tokens or prompt + completion, self.clock())
        if self.keys is not None:
            self.keys.add_spend(key.token, cost or 0.0, prompt, completion)

    # --- model endpoints ---------------------------------------------------------------------

    async def _body(self, request: web.Request) -> bytes:
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise GatewayError(
                413,
                f"the request body is larger than the gateway's limit of {self.max_body} bytes "
                "(general_settings.max_request_size_mb)",
                code="request_too_large",
            ) from None

    def _resolve(self, request: web.Request, model: str) -> str:
        request["model"] = model
        request["metrics"] = measured = self.metrics.request(_endpoint(request), model)
        measuring(measured)  # the upstream request made next reports its timing there
        name = self.catalog.resolve(model)
        if name is None:
            raise GatewayError(
                404,
                f"The model `{model}` does not exist or you do not have access to it.",
                code="model_not_found",
                param="model",
            )
        return name

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        _begin(request)
        caller = await self._caller(request)
        chat = _openai.parse_chat(await self._body(request))
        name = self._resolve(request, chat.model)
        await self._admit(request, caller, chat.model)
        router = self.catalog.router
        params = self._cache_param(chat.params, chat_completions=True)
        if not chat.stream:
            response = await router.acompletion(name, chat.messages, **params)
            return self._answered(request, caller, response, _openai.render_chat(response))
        stream = await router.acompletion(name, chat.messages, stream=True, replay=False, **params)
        self._cached(request, stream)
        frames = _openai.OpenAIFrames(include_usage=chat.include_usage)
        return await self._relay(request, caller, stream, frames, chat.messages)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        _begin(request)
        caller = await self._caller(request)
        call = _anthropic.parse_request(await self._body(request))
        name = self._resolve(request, call.model)
        await self._admit(request, caller, call.model)
        router = self.catalog.router
        message_id = "msg_" + secrets.token_hex(12)
        params = self._cache_param(self._thinking_as_taken(name, call.params), messages=True)
        if not call.stream:
            response = await router.acompletion(name, call.messages, **params)
            body = _anthropic.render_message(response, model=call.model, message_id=message_id)
            return self._answered(request, caller, response, body)
        stream = await router.acompletion(name, call.messages, stream=True, replay=False, **params)
        frames = _anthropic.AnthropicStream(model=call.model, message_id=message_id)
        return await self._relay(request, caller, stream, frames, call.messages)

    def _cache_param(
        self, params: dict[str, Any], *, chat_completions: bool = False, messages: bool = False
    ) -> dict[str, Any]:
        """The request's ``cache`` control as the router takes it: dropped when no cache is
        configured (LiteLLM ignores it then), off for an endpoint the cache does not cover."""
        settings = self.config.cache
        if settings is None:
            return (
                {k: v for k, v in params.items() if k != "cache"} if "cache" in params else params
            )
        covered = (chat_completions and settings.chat_completions) or (
            messages and settings.messages
        )
        return params if covered else {**params, "cache": False}

    def _cached(self, request: web.Request, answer: object) -> None:
        """Note whether the cache answered (header, metric; a hit costs nothing)."""
        if self.config.cache is None:
            return
        hit = is_cache_hit(answer)
        request["cache_hit"] = hit
        self.metrics.cache.labels("hit" if hit else "miss").inc()
        if self.config.cache.type == "redis":  # its lookup was a round trip on the path
            self.metrics.redis_round_trips.inc()

    def _thinking_as_taken(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """Anthropic's ``thinking`` as the configured deployments take it: as it is where
        every one accepts it, else as ``reasoning_effort`` (its budget as low, medium or high)
        where they all take that, else left out (the model answers without thinking)."""
        thinking = params.get("thinking")
        if thinking is None:
            return params
        names = {spec.provider or "" for spec in self.catalog.deployments(name)}
        if all(_takes(provider, "thinking") for provider in names):
            return params
        adapted = {k: v for k, v in params.items() if k != "thinking"}
        effort = _effort(thinking)
        if effort is not None and all(_takes(p, "reasoning_effort") for p in names):
            adapted["reasoning_effort"] = effort
        return adapted

    def _answered(
        self, request: web.Request, caller: Caller, response: ChatResponse, body: bytes
    ) -> web.Response:
        self._cached(request, response)
        measured: RequestMetrics = request["metrics"]
        self._account(request, caller, response.provider, response.model, response.usage)
        measured.finished(200, _since(request))
        return web.Response(body=body, content_type=_JSON, headers=_ids(request))

    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        _begin(request)
        caller = await self._caller(request)
        asked = _openai.parse_embeddings(await self._body(request))
        name = self._resolve(request, asked.model)
        await self._admit(request, caller, asked.model)
        deployments = self.catalog.deployments(name)
        if not deployments:
            raise GatewayError(400, f"`{asked.model}` has no deployment for embeddings")
        spec = random.choice(deployments)
        texts: Any = asked.input
        settings: dict[str, Any] = {**spec.params, **asked.params}
        if spec.timeout is not None:
            settings["timeout"] = spec.timeout
        response = await aembedding(
            spec.provider,
            spec.model,
            input=texts,
            api_key=spec.api_key,
            api_base=spec.api_base,
            **settings,
        )
        measured: RequestMetrics = request["metrics"]
        self._account(request, caller, response.provider, response.model, response.usage)
        measured.finished(200, _since(request))
        body = _openai.render_embeddings(response)
        return web.Response(body=body, content_type=_JSON, headers=_ids(request))

    async def _models(self, request: web.Request) -> web.StreamResponse:
        await self._caller(request)
        body = _openai.models_body(self.catalog.names(), self.started)
        return web.Response(body=body, content_type=_JSON)

    # --- the relay -------------------------------------------------------------------------

    async def _relay(
        self,
        request: web.Request,
        caller: Caller,
        stream: Observable[ChatChunk],
        frames: Frames,
        messages: list[dict[str, Any]],
    ) -> web.StreamResponse:
        """Pass ``stream`` to the client chunk by chunk (see the module docstring). A stream
        that ends without usage (the client left, the upstream failed) is billed an estimate:
        the prompt's tokens and a token per 4 characters of what was streamed."""
        measured: RequestMetrics = request["metrics"]
        chunks: StreamIterator[ChatChunk] = StreamIterator(stream, max_buffered=_RELAY_BUFFER)
        heartbeat = self.heartbeat
        response: web.StreamResponse | None = None
        first = True
        provider = model = ""
        chars = 0

        def usage() -> Usage | None:
            if frames.usage is not None or first:
                return frames.usage
            return _estimated(messages, chars)

        self.open_streams += 1
        self.metrics.open_streams.inc()
        try:
            while True:
                try:
                    item = await chunks.next_within(heartbeat)
                except StopAsyncIteration:
                    break
                if response is None:
                    response = await self._open(request, frames)
                if item is TIMED_OUT:
                    await response.write(KEEP_ALIVE)
                    continue
                if first:
                    first = False
                    provider, model = item.provider, item.model
                # What arrived with it (one upstream read) leaves in the same write: each
                # chunk its own event, none held back.
                batch = (item, *chunks.ready())
                for chunk in batch:
                    for choice in chunk.choices:
                        delta = choice.delta
                        chars += len(delta.content or "") + len(delta.reasoning_content or "")
                data = frames.chunk(item) if len(batch) == 1 else b"".join(map(frames.chunk, batch))
                if data:
                    await response.write(data)
        except asyncio.CancelledError:
            self._account(request, caller, provider, model, usage())
            if not self.drain_expired or response is None:
                measured.finished(499, _since(request), error="ClientDisconnected")
                raise
            wire = describe(GatewayError(503, "the gateway is shutting down", code="shutdown"))
            measured.finished(wire.status, _since(request), error="GatewayShutdown")
            await _write_last(response, frames.error(wire))
            raise
        except ConnectionError:
            self._account(request, caller, provider, model, usage())
            measured.finished(499, _since(request), error="ClientDisconnected")
            raise
        except Exception as error:
            if response is None:
                raise  # nothing sent yet: the middleware answers with the real status
            wire = describe(error)
            measured.finished(wire.status, _since(request), error=type(error).__name__)
            self._account(request, caller, provider, model, usage())
            await _write_last(response, frames.error(wire))
            return response
        finally:
            chunks.close()
            self.open_streams -= 1
            self.metrics.open_streams.dec()
        if response is None:
            response = await self._open(request, frames)
        self._account(request, caller, provider, model, frames.usage)
        measured.finished(200, _since(request))
        await _write_last(response, frames.end())
        return response

    async def _open(self, request: web.Request, frames: Frames) -> web.StreamResponse:
        """Commit to a 200 SSE response and send the format's opening events."""
        response = web.StreamResponse(headers={**SSE_HEADERS, **_ids(request)})
        await response.prepare(request)
        opening = frames.start()
        if opening:
            await response.write(opening)
        return response

    # --- health and metrics ----------------------------------------------------------------

    async def _liveliness(self, _: web.Request) -> web.StreamResponse:
        return web.Response(body=b'"I\'m alive!"', content_type=_JSON)

    async def _readiness(self, _: web.Request) -> web.StreamResponse:
        status = "draining" if self.draining else "healthy"
        body = _encode(
            {
                "status": status,
                "models": len(self.catalog.names()),
                "open_streams": self.open_streams,
                "db": "connected" if self.keys is not None else "Not connected",
                "rxllm_version": _VERSION,
            }
        )
        return web.Response(status=503 if self.draining else 200, body=body, content_type=_JSON)

    async def _metrics(self, _: web.Request) -> web.StreamResponse:
        self.metrics.router_shared(self.catalog.router.shared_status())
        body = self.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


@functools.cache
def _takes(provider: str, param: str) -> bool:
    """Whether ``provider`` accepts the request parameter ``param`` (its own check says)."""
    try:
        spec = providers.get_provider(provider)
        return param in spec.check_params({param: None}, drop=True)
    except Exception:  # an unknown provider, a check that wants a real value: say no
        return False


def _effort(thinking: Any) -> str | None:
    """A ``thinking`` setting as a ``reasoning_effort`` level (None: thinking is off)."""
    if not isinstance(thinking, dict) or thinking.get("type") == "disabled":
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int):
        return "medium"
    return "low" if budget < 2048 else "medium" if budget < 4096 else "high"


def _estimated(messages: list[dict[str, Any]], chars: int) -> Usage:
    """Usage a stream that ended early did not report, estimated (see ``Gateway._relay``)."""
    prompt = estimate_request_tokens(messages)
    completion = -(-chars // 4)
    return Usage(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def _request_id() -> str:
    return "req_" + secrets.token_hex(12)


def _begin(request: web.Request) -> None:
    request["started"] = asyncio.get_running_loop().time()
    request["request_id"] = _request_id()


def _since(request: web.Request) -> float:
    started = request.get("started")
    return 0.0 if started is None else asyncio.get_running_loop().time() - started


def _ids(request: web.Request) -> dict[str, str]:
    """The response's own headers: its request id, and whether the cache answered."""
    request_id = request["request_id"]
    headers = {"x-request-id": request_id, "request-id": request_id}
    hit = request.get("cache_hit")
    if hit is not None:
        headers[CACHE_HEADER] = "hit" if hit else "miss"
    return headers


def _endpoint(request: web.Request) -> str:
    """The route's path, for labels ("other" for unknown paths: a label per path a client
    invents would grow the metrics without bound)."""
    route = request.match_info.route.resource
    return route.canonical if route is not None else "other"


async def _write_last(response: web.StreamResponse, data: bytes) -> None:
    """The stream's last events; a client already gone is not an error."""
    try:
        if data:
            await response.write(data)
        await response.write_eof()
    except ConnectionError:
        pass
