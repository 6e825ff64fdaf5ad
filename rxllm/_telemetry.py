"""The measurements of one request, made once, for every telemetry sink.

A *sink* (:class:`Sink`) is anything that wants to know about requests: rxllm's OpenTelemetry
exporter (:mod:`rxllm.telemetry`), the gateway's Prometheus metrics, a test. While no sink is
registered, telemetry is off and costs nothing: a stream made then holds no
:class:`RequestTelemetry` (``None``), its reading task calls nothing more per socket read, and
no module of OpenTelemetry is imported.

While a sink is registered, each request made gets one :class:`RequestTelemetry` when it is
*made* (``completion(...)``, in the caller's context: a sink may read the caller's context
there, such as its current span), and each sink may return a :class:`Listener` for it. Then:

* ``started`` - the request starts: a stream's first subscription (its task's first step); a
  plain request when it is awaited. A stream that is never subscribed never starts, and
  nothing is reported of it: no request was sent.
* ``first_chunk`` - a stream's first chunk arrived (:attr:`RequestTelemetry.time_to_first_chunk`).
* ``finished`` - the request ended, exactly once whatever ended it: completion, a typed error,
  cancellation (the last subscriber disposed, the caller's task was cancelled). Everything
  measured is on the :class:`RequestTelemetry` then: duration, time to the first chunk, the
  intervals between chunks, usage and cost, the response (id, model, finish reasons), the
  error and its class, and for a routed request every attempt.

Per socket read, only an enabled stream does any work: one clock reading and the read's chunk
count, appended to two arrays (:meth:`RequestTelemetry.emitter`). Listener calls never reach
the per-chunk path. A listener that raises is logged and ignored: telemetry never changes what
a request does.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
import time
from array import array
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit

from .errors import LLMError, StreamCancelledError
from .pricing import cost_of
from .types import ChatChunk, ChatResponse, EmbeddingResponse, Message, Usage

__all__ = [
    "Sent",
    "Listener",
    "RequestTelemetry",
    "Sink",
    "add_sink",
    "conversation",
    "current",
    "measured",
    "remove_sink",
    "sinks",
]

T = TypeVar("T")

log = logging.getLogger("rxllm.telemetry")

Operation = Literal["chat", "embeddings"]
Outcome = Literal["success", "error", "cancelled"]

_DEFAULT_PORTS = {"https": 443, "http": 80}


class Listener:
    """What a sink is told about one request (override what you need; each is called on the
    request's event loop thread, or for a plain request where it is awaited)."""

    def started(self, request: RequestTelemetry) -> None:
        """The request started (its first attempt is about to be sent)."""

    def first_chunk(self, request: RequestTelemetry) -> None:
        """A stream's first chunk arrived."""

    def finished(self, request: RequestTelemetry) -> None:
        """The request ended (exactly once); every measurement is final."""


class CallLike(Protocol):
    """What telemetry reads of a call (``rxllm._provider.Call``; ``messages`` or ``input``
    too when it has them)."""

    provider: str
    model: str
    api_base: str
    params: dict[str, Any]


class Sink(Protocol):
    """Gets every request made while it is registered (:func:`add_sink`)."""

    def request(self, request: RequestTelemetry) -> Listener | None:
        """A request was made (not started yet), in the caller's context: the listener that
        follows it, or None to leave it alone."""
        ...


#: The registered sinks; empty means telemetry is off (rebound, never mutated, so the hot
#: path reads it without a lock).
sinks: tuple[Sink, ...] = ()

_sinks_lock = threading.Lock()

#: The plain request being awaited in this context: its attempts report to it.
_current: contextvars.ContextVar[RequestTelemetry | None] = contextvars.ContextVar(
    "rxllm_request", default=None
)
_conversation: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "rxllm_conversation", default=None
)


def add_sink(sink: Sink) -> Callable[[], None]:
    """Register ``sink`` (once; adding it again changes nothing); returns what removes it."""
    global sinks  # noqa: PLW0603 - rebound, never mutated: readers take no lock
    with _sinks_lock:
        if not any(s is sink for s in sinks):
            sinks = (*sinks, sink)
    return lambda: remove_sink(sink)


def remove_sink(sink: Sink) -> None:
    """Unregister ``sink`` (nothing happens if it is not registered)."""
    global sinks  # noqa: PLW0603 - rebound, never mutated: readers take no lock
    with _sinks_lock:
        sinks = tuple(s for s in sinks if s is not sink)


def current() -> RequestTelemetry | None:
    """The plain (not streamed) request being awaited in this context, if telemetry is on."""
    return _current.get()


@contextlib.contextmanager
def conversation(conversation_id: str) -> Iterator[None]:
    """Requests made inside the block belong to the conversation ``conversation_id``
    (``gen_ai.conversation.id``)."""
    token = _conversation.set(conversation_id)
    try:
        yield
    finally:
        _conversation.reset(token)


class Sent:
    """One request sent for a request that may send several (a routed request's attempt):
    when, where, and how it ended. The router's own record of it (deployment, configuration,
    attempt number, outcome: an ``rxllm.router.Attempt``) is :attr:`record`."""

    __slots__ = (
        "api_base",
        "end_ns",
        "ended",
        "error",
        "model",
        "provider",
        "record",
        "start_ns",
        "started",
    )

    def __init__(self, provider: str, model: str, api_base: str) -> None:
        self.provider = provider
        self.model = model
        self.api_base = api_base
        self.start_ns = time.time_ns()
        self.started = time.perf_counter()
        self.end_ns: int | None = None
        self.ended: float | None = None
        self.error: BaseException | None = None
        #: The router's ``Attempt`` record (``rxllm.router.Attempt``), when it made one.
        self.record: Any = None

    def end(self, error: BaseException | None, at: tuple[int, float] | None = None) -> None:
        """It ended (only the first call counts), now or ``at`` (wall ns, perf seconds)."""
        if self.ended is None:
            self.end_ns, self.ended = (
                at if at is not None else (time.time_ns(), time.perf_counter())
            )
            self.error = error

    @property
    def duration(self) -> float:
        return (self.ended if self.ended is not None else time.perf_counter()) - self.started


class RequestTelemetry:
    """Everything measured of one request, and the listeners that follow it.

    Made by rxllm only while a sink is registered; read by the sinks' listeners. Times are
    ``time.perf_counter()`` seconds (``*_ns``: wall clock, ``time.time_ns()``)."""

    __slots__ = (
        "_counts",
        "_records",
        "_reported",
        "_times",
        "chunks",
        "config",
        "conversation_id",
        "end_ns",
        "ended",
        "error",
        "first_chunk_at",
        "input",
        "listeners",
        "messages",
        "model",
        "operation",
        "params",
        "provider",
        "requested_model",
        "response",
        "sent",
        "server_address",
        "server_port",
        "start_ns",
        "started",
        "stream",
        "usage",
    )

    def __init__(
        self,
        *,
        operation: Operation,
        stream: bool,
        provider: str,
        model: str,
        api_base: str,
        params: Mapping[str, Any],
        messages: Sequence[Message] | None = None,
        input: Sequence[str] | None = None,
        config: str | None = None,
        records: Sequence[Any] | None = None,
    ) -> None:
        #: ``chat`` or ``embeddings``.
        self.operation: Operation = operation
        self.stream = stream
        #: rxllm's name of the provider, and the model, of the request sent last.
        self.provider = provider
        self.model = model
        #: What the caller asked for: the model, or for a routed request the configuration.
        self.requested_model = config or model
        #: The router configuration of a routed request.
        self.config = config
        self.server_address, self.server_port = server_of(api_base)
        #: The request's parameters (``temperature``, ``max_tokens``, ``tools``...).
        self.params = params
        #: The messages sent (chat) or the texts embedded; for sinks that capture contents.
        self.messages = messages
        self.input = input
        self.conversation_id = _conversation.get()
        self.listeners: tuple[Listener, ...] = ()
        self.start_ns = 0
        self.started: float | None = None
        self.first_chunk_at: float | None = None
        self.end_ns = 0
        self.ended: float | None = None
        self._reported = False
        #: Chunks emitted (streams).
        self.chunks = 0
        self._times = array("d")
        self._counts = array("l")
        self.usage: Usage | None = None
        #: The answer: a ``ChatResponse`` (a stream's assembled chunks, the partial answer of
        #: one that failed) or an ``EmbeddingResponse``; None when nothing came.
        self.response: ChatResponse | EmbeddingResponse | None = None
        self.error: BaseException | None = None
        #: Every request sent, for a routed request (empty for a direct one).
        self.sent: list[Sent] = []
        self._records = records

    @classmethod
    def of(
        cls,
        call: CallLike,
        *,
        operation: Operation,
        stream: bool,
        config: str | None = None,
        records: Sequence[Any] | None = None,
    ) -> RequestTelemetry:
        """The telemetry of a request made for ``call`` (an ``rxllm._provider.Call``), shown to
        every sink: call it where the request is made, only while a sink is registered."""
        request = cls(
            operation=operation,
            stream=stream,
            provider=call.provider,
            model=call.model,
            api_base=call.api_base,
            params=call.params,
            messages=getattr(call, "messages", None),
            input=getattr(call, "input", None),
            config=config,
            records=records,
        )
        listeners = []
        for sink in sinks:
            try:
                listener = sink.request(request)
            except Exception:
                log.exception("an rxllm telemetry sink raised")
                continue
            if listener is not None:
                listeners.append(listener)
        request.listeners = tuple(listeners)
        return request

    # --- what sinks read ---------------------------------------------------------------

    @property
    def done(self) -> bool:
        """True once the request ended and its listeners heard of it."""
        return self._reported

    @property
    def duration(self) -> float | None:
        """Seconds from the start to the end (None until both happened)."""
        if self.started is None or self.ended is None:
            return None
        return self.ended - self.started

    @property
    def time_to_first_chunk(self) -> float | None:
        """Seconds from the start to a stream's first chunk (None without one)."""
        if self.started is None or self.first_chunk_at is None:
            return None
        return self.first_chunk_at - self.started

    def chunk_intervals(self) -> Iterator[float]:
        """For every chunk after the first, the seconds since the chunk before it arrived:
        the chunks of one socket read arrive together (0 s apart), the first of a read the
        time since the read before."""
        previous: float | None = None
        for at, count in zip(self._times, self._counts, strict=True):
            if previous is not None:
                yield at - previous
            for _ in range(count - 1):
                yield 0.0
            previous = at

    @property
    def reads(self) -> int:
        """Socket reads that brought chunks."""
        return len(self._times)

    @property
    def outcome(self) -> Outcome:
        error = self.error
        if error is None:
            return "success"
        if isinstance(error, (StreamCancelledError, asyncio.CancelledError, KeyboardInterrupt)):
            return "cancelled"
        return "error"

    @property
    def error_type(self) -> str | None:
        """The class name of the error that ended the request (an ``rxllm.errors`` class:
        ``RateLimitError``, ``StreamCancelledError``...), None when it succeeded."""
        return None if self.error is None else type(self.error).__name__

    @property
    def response_id(self) -> str | None:
        response = self.response
        return (response.id or None) if isinstance(response, ChatResponse) else None

    @property
    def response_model(self) -> str | None:
        response = self.response
        return (response.model or None) if response is not None else None

    @property
    def finish_reasons(self) -> tuple[str, ...]:
        """One finish reason per choice that has one (rxllm's normalised values: ``stop``,
        ``length``, ``tool_calls``, ``content_filter``)."""
        response = self.response
        if not isinstance(response, ChatResponse):
            return ()
        return tuple(c.finish_reason for c in response.choices if c.finish_reason)

    @property
    def cost(self) -> float | None:
        """USD at rxllm's price table (None without usage, or for a model it has no price of)."""
        usage = self.usage
        if usage is None:
            return None
        for model in dict.fromkeys(m for m in (self.response_model, self.model) if m):
            cost = cost_of(self.provider, model, usage)  # each part at its own rate
            if cost is not None:
                return cost
        return None

    @property
    def routed(self) -> bool:
        return self.config is not None

    # --- what rxllm calls --------------------------------------------------------------

    def begin(self, source: object | None = None) -> None:
        """The request starts. ``source`` is the stream: one that routes names its router
        configuration (``config``) and its attempt records (``attempts``)."""
        if self.started is not None:
            return
        if source is not None:
            config = getattr(source, "config", None)
            if isinstance(config, str):
                self.config = self.requested_model = config
        self.start_ns = time.time_ns()
        self.started = time.perf_counter()
        for listener in self.listeners:
            _safely(listener.started, self)

    def emitter(self, emit: Callable[[list[ChatChunk]], None]) -> Callable[[list[ChatChunk]], None]:
        """``emit`` (a stream's, for one response), measuring each read's chunks first."""
        times, counts, clock = self._times.append, self._counts.append, time.perf_counter

        def measured_emit(chunks: list[ChatChunk]) -> None:
            if chunks:
                at = clock()
                if self.first_chunk_at is None:
                    self._first(at)
                times(at)
                counts(len(chunks))
            emit(chunks)

        return measured_emit

    def _first(self, at: float) -> None:
        self.first_chunk_at = at
        for listener in self.listeners:
            _safely(listener.first_chunk, self)

    def attempt(self, provider: str, model: str, api_base: str) -> None:
        """A request is sent for this one (a routed request's attempt)."""
        if self.sent:
            self.sent[-1].end(None)
        self.provider, self.model = provider, model
        self.server_address, self.server_port = server_of(api_base)
        self.sent.append(Sent(provider, model, api_base))

    def attempt_ended(self, error: BaseException | None) -> None:
        if self.sent:
            self.sent[-1].end(error)

    def stop(self) -> None:
        """The request ends now (only the first call counts): :meth:`finish` reports it, maybe
        a little later."""
        if self.ended is None and self.started is not None:
            self.end_ns = time.time_ns()
            self.ended = time.perf_counter()

    def finish(
        self,
        error: BaseException | None,
        *,
        response: ChatResponse | EmbeddingResponse | None = None,
        replay: Any = None,
        source: object | None = None,
    ) -> None:
        """The request ended (only the first call counts; at :meth:`stop`'s time if it was
        called). A stream gives what it kept (``replay``: its ``Replay``/``NoReplay``), a plain
        request its ``response``. Then every listener hears of it."""
        if self._reported or self.started is None:
            return
        self._reported = True
        self.stop()
        self.error = error
        if self.sent and self.ended is not None:
            self.sent[-1].end(error, (self.end_ns, self.ended))
        if replay is not None:
            self.chunks = len(replay)
            if response is None and self.chunks:
                partial = getattr(error, "partial_response", None)
                response = partial if isinstance(partial, ChatResponse) else replay.assemble()
            self.usage = replay.usage() if self.chunks else None
        elif response is not None:
            self.usage = response.usage
        if response is None and isinstance(error, LLMError):
            response = error.partial_response
        self.response = response
        records = self._records
        if records is None and source is not None:
            records = getattr(source, "attempts", None)
        if records:
            # Each request sent made one record, in order; a deployment whose request could
            # not even be built adds one last record with no request.
            for sent, record in zip(self.sent, records, strict=False):
                sent.record = record
        self._records = records
        for listener in self.listeners:
            _safely(listener.finished, self)

    @property
    def records(self) -> Sequence[Any]:
        """The router's attempt records (``rxllm.router.Attempt``) of a routed request."""
        return self._records or ()

    async def _run(self, exchange: Callable[[], Coroutine[Any, Any, T]]) -> T:
        self.begin()
        token = _current.set(self)
        try:
            result = await exchange()
        except BaseException as exc:
            self.finish(exc)
            raise
        finally:
            _current.reset(token)
        self.finish(None, response=result if isinstance(result, _RESPONSES) else None)
        return result

    def __repr__(self) -> str:
        return (
            f"RequestTelemetry({self.operation} {self.provider}/{self.model}, "
            f"stream={self.stream}, outcome={self.outcome if self.done else 'pending'})"
        )


_RESPONSES = (ChatResponse, EmbeddingResponse)


def measured(
    call: CallLike,
    exchange: Callable[[], Coroutine[Any, Any, T]],
    *,
    operation: Operation = "chat",
    config: str | None = None,
    records: Sequence[Any] | None = None,
) -> Coroutine[Any, Any, T]:
    """The coroutine of a plain (not streamed) request for ``call``, measured as one request:
    ``exchange()`` itself while telemetry is off, else ``exchange()`` run inside a measurement.
    Call it where the request is made (the caller's context: the parent of its span). A routed
    request gives its router ``config`` and ``records``, its list of attempt records, filled as
    it runs."""
    if not sinks:
        return exchange()
    request = RequestTelemetry.of(
        call, operation=operation, stream=False, config=config, records=records
    )
    return request._run(exchange)


def server_of(api_base: str) -> tuple[str | None, int | None]:
    """``server.address`` and ``server.port`` of a base URL (the scheme's port if none)."""
    try:
        parts = urlsplit(api_base)
        port = parts.port
    except ValueError:
        return None, None
    if not parts.hostname:
        return None, None
    return parts.hostname, port if port is not None else _DEFAULT_PORTS.get(parts.scheme)


def _safely(callback: Callable[[RequestTelemetry], None], request: RequestTelemetry) -> None:
    try:
        callback(request)
    except Exception:
        log.exception("an rxllm telemetry listener raised")
