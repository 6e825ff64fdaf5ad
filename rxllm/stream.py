"""One request, as a hot, shared, lazy, replaying Observable (docs/contracts.md, 2-6).

:class:`ChatStream` is what ``completion(..., stream=True)`` returns:

* **lazy** - nothing is sent until the first subscription;
* **shared** - that subscription starts the one HTTP request; every later subscriber shares it;
* **replaying** - a late subscriber first receives every chunk already received, then follows
  live; after the end it gets the full replay and the same termination, with no new request;
* **cancellable** - when the last subscriber disposes, the request task is cancelled and the
  connection closed (not returned to the pool), so the provider stops generating;
* **honest** - ``on_completed`` only after the provider's end marker; everything else is an
  ``on_error`` with a typed :mod:`rxllm.errors` exception holding the partial response.

Threads and loops (docs/contracts.md, 5 and 6): the stream does its I/O on one event loop, chosen
at the first subscription (the subscriber's loop, else rxllm's background loop; a loop that
stopped or that a blocking helper holds is never chosen). All of its state is touched only on
that loop's thread, so the per-chunk path takes no lock. Each subscriber lives at a *place*
(:mod:`rxllm._places`): a subscriber on the stream's own loop is called directly by the reading
task, which is also the backpressure (the socket is not read again until ``on_next`` returned);
a subscriber anywhere else (another loop, a thread of its own for plain code, a blocking helper's
thread) is handed each socket read's chunks with ``_post``, and the reading task waits for a hold
that the subscriber's place releases once it has delivered them. Consumers that cannot block
inside ``on_next`` (``async for``, the SSE bridge) add holds of their own (:mod:`rxllm._flow`),
carried back across threads with the read's. A finished stream replays anywhere, with no loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
import threading
import weakref
from collections.abc import Callable, Coroutine, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
from reactivex import Observable, abc
from reactivex.disposable import CompositeDisposable, Disposable
from reactivex.internal.exceptions import SequenceContainsNoElementsError

from . import _telemetry, transport
from ._events import StreamDecoder
from ._flow import StreamIterator, _holds, producer_holds
from ._loop import background_loop, running_loop
from ._places import (
    Delivery,
    LoopPlace,
    Place,
    PlaceScheduler,
    Pump,
    delivering,
    loop_place,
    on_exit_interrupt,
    record,
    subscriber_place,
)
from ._provider import Call, ChatCall, Provider
from ._replay import NoReplay, Replay
from ._telemetry import RequestTelemetry
from ._wire import HttpRequest, body_snippet, request_id_from
from .errors import (
    LLMError,
    MalformedResponseError,
    ReplayUnavailableError,
    ResponseError,
    StreamCancelledError,
    WouldBlockError,
)
from .types import ChatChunk, ChatResponse

__all__ = ["ChatStream", "Piped", "fetch", "fetch_response", "run_blocking"]

T = TypeVar("T")

log = logging.getLogger("rxllm")

_DRAIN_BYTES = 65536
_DRAIN_SECONDS = 1.0
_HOLD_CHECK_SECONDS = 1.0

_PENDING, _RUNNING, _COMPLETED, _FAILED, _CANCELLED = range(5)
_STATE_NAMES = ("pending", "running", "completed", "failed", "cancelled")


def _add_context(error: LLMError, call: Call, request_id: str | None) -> LLMError:
    error._with_context(provider=call.provider, model=call.model, secret=call.secrets)
    if error.request_id is None:
        error.request_id = request_id
    return error


async def fetch(
    call: Call,
    request: HttpRequest,
    parse: Callable[[bytes], T],
    map_error: Callable[[int, bytes, Mapping[str, str]], LLMError],
) -> T:
    """A plain request/response exchange: send, read the body, parse it or map the error."""
    request_id = None
    try:
        response = await transport.send(
            request, timeout=call.timeout, stream=False, verify=call.verify
        )
        try:
            request_id = request_id_from(response.headers)
            if response.status >= 300:
                body = await transport.read_capped(response)
            else:
                body = await response.read()
        except BaseException as exc:
            response.close()
            if isinstance(exc, Exception):
                raise transport.body_reader_error(exc, call.timeout) from exc
            raise
        response.release()
        if response.status >= 300:
            raise map_error(response.status, body, response.headers)
        try:
            return parse(body)
        except LLMError as error:  # a body that is no answer: say which status brought it
            if error.status_code is None and isinstance(error, ResponseError):
                error.status_code = response.status
            raise
    except LLMError as error:
        raise _add_context(error, call, request_id) from error.__cause__


async def fetch_response(call: ChatCall, provider: Provider, request: HttpRequest) -> ChatResponse:
    """The non-streaming chat request (one attempt of the measured request being awaited, if
    telemetry is on: see ``rxllm._telemetry.measured``)."""

    def exchange() -> Coroutine[Any, Any, ChatResponse]:
        return fetch(
            call,
            request,
            lambda body: provider.parse_response(body, call),
            lambda status, body, headers: provider.map_error(status, body, headers, call),
        )

    if not _telemetry.sinks:
        return await exchange()
    measure = _telemetry.current()
    if measure is None:  # sent by no measured request: measured on its own
        return await _telemetry.measured(call, exchange)
    measure.attempt(call.provider, call.model, call.api_base)
    try:
        response = await exchange()
    except BaseException as exc:
        measure.attempt_ended(exc)
        raise
    measure.attempt_ended(None)
    return response


def _is_stream(media_type: str, decoder: StreamDecoder) -> bool:
    """Whether a 2xx answer to a stream request may be the stream. An HTML page (a proxy's, a
    captive portal's) never is; a JSON document is not an SSE stream (it is an error object,
    or a server that ignored ``stream``). Anything else - missing, ``text/plain``,
    ``application/octet-stream`` - is given to the decoder, which ends honestly either way."""
    if media_type == "text/html":
        return False
    return decoder.json_is_stream or not (
        media_type == "application/json" or media_type.endswith("+json")
    )


def _not_a_stream(
    response: aiohttp.ClientResponse,
    body: bytes,
    provider: Provider,
    call: ChatCall,
    decoder: StreamDecoder,
) -> LLMError:
    """The typed error for a 2xx answer that is not a stream: the provider's own error when the
    body is a JSON error object, else a malformed response naming what came instead."""
    media_type = response.content_type
    if "json" in media_type and b'"error"' in body:
        return provider.map_error(response.status, body, response.headers, call)
    return MalformedResponseError(
        f"expected a stream ({decoder.media_type}), got {media_type}: {body_snippet(body, 200)!r}",
        status_code=response.status,
    )


class ChatStream(Observable[ChatChunk]):
    """The hot stream of one chat request. Subscribe to it, ``pipe`` operators onto it.

    Subclass hook, for a stream that sends more than one request (the router's retries and
    fallbacks): override ``_produce`` and call ``await self._send(call, provider, request)``
    for each attempt; an attempt may follow a failed one only while nothing reached the
    subscribers (``not self.committed``). ``_emit(chunks)`` and ``_finish(error)`` may be
    extended (calling ``super()``) to observe the chunks and the end. Telemetry counts each
    ``_send`` as one request sent, and reads two attributes of a subclass that routes, if it
    has them: ``config`` (the name the caller asked for) and ``attempts`` (its records of them).
    """

    def __init__(
        self, call: ChatCall, provider: Provider, request: HttpRequest, *, replay: bool = True
    ) -> None:
        super().__init__()
        self._call = call
        self._provider = provider
        self._request = request
        #: What a late subscriber is replayed (compact), or with ``replay=False`` only the
        #: partial answer for errors: chunks are dropped once every subscriber has them.
        self._chunks: Replay | NoReplay = Replay() if replay else NoReplay()
        self._observers: tuple[abc.ObserverBase[ChatChunk], ...] = ()
        self._state = _PENDING
        self._error: LLMError | None = None
        # The error's traceback as the stream ended: each late subscriber gets it back, so
        # re-raising the one shared exception does not make its traceback grow without end.
        self._error_tb: TracebackType | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = False
        #: Subscribers whose callbacks run elsewhere than this stream's loop thread.
        self._remote: tuple[_Remote, ...] = ()
        self._replay = replay
        self._emitted = 0
        self._bind_lock = threading.Lock()
        self.request_id: str | None = None
        #: What telemetry measures of this request; None while telemetry is off (the usual
        #: case), and then nothing more is done per request or per read.
        self._telemetry: RequestTelemetry | None = (
            RequestTelemetry.of(call, operation="chat", stream=True) if _telemetry.sinks else None
        )

    # --- what users can look at --------------------------------------------------------

    @property
    def provider(self) -> str:
        return self._call.provider

    @property
    def model(self) -> str:
        return self._call.model

    @property
    def state(self) -> str:
        """``pending``, ``running``, ``completed``, ``failed`` or ``cancelled``."""
        return _STATE_NAMES[self._state]

    @property
    def done(self) -> bool:
        return self._state >= _COMPLETED

    @property
    def running(self) -> bool:
        """True from the first subscription until the stream ends."""
        return self._state == _RUNNING

    @property
    def cancelled(self) -> bool:
        """True when the stream ended because its last subscriber left (or it was cancelled)."""
        return self._state == _CANCELLED

    @property
    def committed(self) -> bool:
        """True once a chunk has reached the subscribers, or the stream is not running: no
        other request may be sent into it then (see the subclass hook)."""
        return bool(self._chunks) or self._state != _RUNNING

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the stream runs on (None until the first subscription)."""
        return self._loop

    def __aiter__(self) -> StreamIterator[ChatChunk]:
        """``async for chunk in stream``: the chunks, with backpressure (a slow loop body holds
        the socket back); leaving the loop early cancels the request if nobody else listens."""
        return StreamIterator(self)

    def __repr__(self) -> str:
        return (
            f"ChatStream({self._call.provider}/{self._call.model}, state={self.state}, "
            f"chunks={len(self._chunks)})"
        )

    # --- subscription ------------------------------------------------------------------

    def bind(self, loop: asyncio.AbstractEventLoop | None = None) -> asyncio.AbstractEventLoop:
        """Choose the loop the stream will run on, if not chosen yet, and return it."""
        with self._bind_lock:
            if self._loop is None:
                self._loop = loop or running_loop() or background_loop()
                self._pid = os.getpid()
            return self._loop

    def pipe(self, *operators: Callable[[Any], Any]) -> Any:
        """``Observable.pipe``, returning a :class:`Piped` that still knows this stream, so
        ``.run()``, ``await`` and time operators behave wherever it is consumed."""
        return _piped((self,), Observable.pipe(self, *operators))

    def run(self, scheduler: abc.SchedulerBase | None = None) -> ChatChunk:
        """Block until the stream ends; its last chunk (reactivex's ``run``, safe anywhere)."""
        return run_blocking(self, scheduler)

    def _subscribe_core(
        self,
        observer: abc.ObserverBase[ChatChunk],
        scheduler: abc.SchedulerBase | None = None,
    ) -> abc.DisposableBase:
        place = subscriber_place(scheduler)
        record(self)
        if self._state >= _COMPLETED:  # finished: replayed where the subscriber lives, no loop
            return self._replay_finished_at(place, observer)
        loop = self._loop_for(place)
        if isinstance(loop, LLMError):
            observer.on_error(_add_context(loop, self._call, self.request_id))
            return Disposable()
        if isinstance(place, LoopPlace) and place.loop is loop and place.is_current():
            self._attach(observer)  # the subscriber lives on the stream's own loop: direct
            return Disposable(lambda: self._detach_from_any_thread(observer))
        remote = _Remote(observer, place)
        place.retain()
        try:  # never synchronously, even on the loop: not in the middle of an emit
            loop.call_soon_threadsafe(self._attach_remote, remote)
        except RuntimeError:  # the loop closed in between
            remote.release()
            observer.on_error(_add_context(_loop_gone(), self._call, self.request_id))
            return Disposable()

        def dispose() -> None:
            remote.closed = True
            self._detach_from_any_thread(observer)

        return Disposable(dispose)

    def _loop_for(self, place: Place) -> asyncio.AbstractEventLoop | LLMError:
        """The loop to attach a subscriber living at ``place`` on: a stream nobody has started
        is (re)bound to a loop that can run it; a running one must have a live loop that the
        subscriber does not block."""
        with self._bind_lock:
            loop = self._loop
            if self._state == _PENDING:
                if loop is None or not _alive(loop, self._pid) or place.blocks_loop(loop):
                    loop = self._loop = _loop_to_run_on(place)
                    self._pid = os.getpid()
                return loop
            assert loop is not None
            if self._pid != os.getpid():
                return StreamCancelledError(
                    "the stream was running when the process forked; start a new one here"
                )
            if loop.is_closed() or not loop.is_running():
                return _loop_gone()
            if place.blocks_loop(loop):
                if self._started:
                    return WouldBlockError(
                        "this stream runs on this thread's event loop, which a blocking call "
                        "here would stop; use `await` (`await rxllm.streaming.collect(stream)`, "
                        "`async for`, `await handle`) instead"
                    )
                return self._move_to(background_loop(), loop)
            return loop

    def _move_to(
        self, loop: asyncio.AbstractEventLoop, old: asyncio.AbstractEventLoop
    ) -> asyncio.AbstractEventLoop:
        """Move a stream whose task has not run yet (its loop's thread is about to block in a
        helper) to ``loop``: its subscribers on ``old`` now get their chunks handed over."""
        if self._task is not None:
            self._task.cancel()  # never started: no request was sent
        old_place = loop_place(old)
        moved = tuple(_Remote(observer, old_place) for observer in self._observers)
        self._observers = ()
        self._remote = (*moved, *self._remote)
        self._loop = loop
        loop.call_soon_threadsafe(self._start)
        return loop

    def _detach_from_any_thread(self, observer: abc.ObserverBase[ChatChunk]) -> None:
        loop = self._loop
        if loop is None:
            return
        if running_loop() is loop:
            self._detach(observer)
        elif not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._detach, observer)

    def _replay_finished_at(
        self, place: Place, observer: abc.ObserverBase[ChatChunk]
    ) -> abc.DisposableBase:
        """A finished stream's whole sequence and termination: right here when this thread is
        the subscriber's place, else handed to that place (whatever loop the stream had)."""
        if place.is_current():
            self._replay_finished(observer)
            return Disposable()
        remote = _Remote(observer, place)
        place.retain()

        def replay() -> None:
            try:
                if not remote.closed:
                    self._replay_finished(observer)
            finally:
                remote.release()

        if not place.post(replay, remote):
            remote.release()

        def dispose() -> None:
            remote.closed = True

        return Disposable(dispose)

    def _replay_finished(self, observer: abc.ObserverBase[ChatChunk]) -> None:
        """A finished stream's whole sequence and termination, on the calling thread."""
        if self._replay_to(observer):
            self._end_finished(observer)

    def _replay_to(self, observer: abc.ObserverBase[ChatChunk]) -> bool:
        """Hand ``observer`` every chunk kept so far. False when it cannot have them (replay is
        off and chunks went by) or its callback raised: it has had its ``on_error`` then."""
        if not self._replay and self._emitted:
            self._safely(observer.on_error, self._replay_unavailable())
            return False
        try:
            for chunk in self._chunks:
                observer.on_next(chunk)
        except BaseException as exc:
            self._safely(
                observer.on_error, exc if isinstance(exc, Exception) else _callback_raised(exc)
            )
            return False
        return True

    def _end_finished(self, observer: abc.ObserverBase[ChatChunk]) -> None:
        if self._state == _COMPLETED:
            self._safely(observer.on_completed)
        else:
            error = self._error
            assert error is not None
            self._safely(observer.on_error, error.with_traceback(self._error_tb))

    def _replay_unavailable(self) -> LLMError:
        return _add_context(
            ReplayUnavailableError(
                f"this stream was made with replay=False and {self._emitted} chunks have "
                "already gone by; subscribe before the first chunk, or keep replay on"
            ),
            self._call,
            self.request_id,
        )

    def _attach(self, observer: abc.ObserverBase[ChatChunk]) -> None:
        if not self._replay_to(observer):
            return
        state = self._state
        if state >= _COMPLETED:
            self._end_finished(observer)
        else:
            self._observers = (*self._observers, observer)
            if state == _PENDING:
                self._start()

    def _attach_remote(self, remote: _Remote) -> None:
        """On the stream's loop: hand a subscriber living elsewhere what it missed, then
        follow live."""
        if remote.closed:
            remote.release()
            return
        if not self._replay and self._emitted:
            self._end_remote(remote, self._replay_unavailable())
            return
        if self._chunks and not remote.place.post(
            functools.partial(self._deliver, remote, list(self._chunks), None), remote
        ):
            remote.release()
            return
        state = self._state
        if state == _COMPLETED:
            self._end_remote(remote, None)
        elif state >= _FAILED:
            self._end_remote(remote, self._error)
        else:
            self._remote = (*self._remote, remote)
            if state == _PENDING:
                self._start()

    def _start(self) -> None:
        if self._state == _PENDING or (self._state == _RUNNING and not self._started):
            self._state = _RUNNING
            loop = self._loop
            assert loop is not None
            self._task = loop.create_task(self._run())
            _running.add(self)

    def _detach(self, observer: abc.ObserverBase[ChatChunk]) -> None:
        observers = self._observers
        if observer in observers:
            self._observers = tuple(o for o in observers if o is not observer)
        else:
            remote = next((r for r in self._remote if r.observer is observer), None)
            if remote is None:
                return
            self._remote = tuple(r for r in self._remote if r is not remote)
            remote.closed = True
            remote.release()
            # The reading task may wait for this subscriber's last read; its place may never
            # deliver it now (a blocking helper that returned drops what was queued for it).
            if remote.hold is not None and not remote.hold.done():
                remote.hold.set_result(None)
        if not self._observers and not self._remote and self._state == _RUNNING:
            self._cancel("every subscriber disposed before the stream finished")

    def _cancel(self, reason: str) -> None:
        self._error = _add_context(StreamCancelledError(reason), self._call, self.request_id)
        self._error.partial_response = self._chunks.assemble() if self._chunks else None
        self._state = _CANCELLED
        _running.discard(self)
        if self._task is not None:
            self._task.cancel()

    def _cancel_everything(self) -> None:
        """Ctrl-C at exit: drop every subscriber and cancel the request."""
        for remote in self._remote:
            remote.closed = True
            remote.release()
        self._observers, self._remote = (), ()
        if self._state == _RUNNING:
            self._cancel("cancelled at interpreter exit")

    @staticmethod
    def _safely(callback: Any, *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("an rxllm stream subscriber's callback raised")

    # --- delivery to subscribers living elsewhere ------------------------------------------

    def _deliver(
        self, remote: _Remote, batch: list[ChatChunk], hold: asyncio.Future[None] | None
    ) -> None:
        """On the subscriber's place: one socket read's chunks. The reading task waits for
        ``hold``, released when they are delivered (and when any consumer that asked to hold
        the producer, such as ``async for``, lets go): backpressure across threads."""
        delivery = Delivery()
        consumer_holds: list[asyncio.Future[None]] = []
        if hold is not None:
            delivery.hold = functools.partial(_resolve_threadsafe, hold)
        token = _holds.set(consumer_holds)
        interrupted: BaseException | None = None
        try:
            with delivering(remote.place, remote, delivery):
                on_next = remote.observer.on_next
                for chunk in batch:
                    if remote.closed:
                        break
                    try:
                        on_next(chunk)
                    except BaseException as exc:
                        self._callback_failed(remote, exc)
                        if isinstance(exc, KeyboardInterrupt):
                            interrupted = exc
                        break
        finally:
            _holds.reset(token)
            release = delivery.hold
            if release is not None:
                if consumer_holds:
                    _after_all(consumer_holds, release)
                else:
                    release()
        if interrupted is not None:
            raise interrupted

    def _callback_failed(self, remote: _Remote, exc: BaseException) -> None:
        """A subscriber's callback raised: that subscriber alone ends, with it as on_error."""
        remote.closed = True
        self._detach_from_any_thread(remote.observer)
        error = exc if isinstance(exc, Exception) else _callback_raised(exc)
        try:
            self._safely(remote.observer.on_error, error)
        finally:
            remote.release()

    def _end_remote(self, remote: _Remote, error: LLMError | None) -> None:
        tb = self._error_tb
        if not remote.place.post(functools.partial(self._deliver_end, remote, error, tb), remote):
            remote.release()

    def _deliver_end(
        self, remote: _Remote, error: LLMError | None, tb: TracebackType | None
    ) -> None:
        if remote.closed:
            remote.release()
            return
        remote.closed = True
        try:
            if error is None:
                self._safely(remote.observer.on_completed)
            else:
                self._safely(remote.observer.on_error, error.with_traceback(tb))
        finally:
            remote.release()

    def _post(self, chunks: list[ChatChunk]) -> None:
        """Hand a read's chunks to every subscriber living elsewhere; the reading task waits
        for each before it reads again."""
        holds = _holds.get()
        loop = self._loop
        assert loop is not None
        batch = list(chunks)
        for remote in self._remote:
            hold = None
            if holds is not None:
                hold = loop.create_future()
                holds.append(hold)
                remote.hold = hold
            if not remote.place.post(functools.partial(self._deliver, remote, batch, hold), remote):
                if hold is not None:
                    hold.set_result(None)
                self._detach(remote.observer)  # its place is gone (a closed loop)

    # --- the request -------------------------------------------------------------------

    async def _run(self) -> None:
        self._started = True
        measure = self._telemetry
        if measure is not None:
            measure.begin(self)
        try:
            await self._produce()
        except asyncio.CancelledError:
            if self._state == _RUNNING:  # cancelled from outside (loop shutting down)
                self._finish(StreamCancelledError("the stream's task was cancelled"))
            raise
        except LLMError as error:
            self._finish(error)
        except Exception as exc:  # a bug, not a provider problem: still a typed error
            unexpected = LLMError(f"unexpected error in the stream: {exc!r}")
            unexpected.__cause__ = exc
            self._finish(unexpected)
        else:
            self._finish(None)
        finally:
            if measure is not None and not measure.done:  # cancelled, or stopped: ends here
                why = self._error
                if why is None and self._state == _RUNNING:  # its loop closed under it
                    why = StreamCancelledError("the stream's task stopped before it finished")
                measure.finish(why, replay=self._chunks, source=self)

    async def _produce(self) -> None:
        """Run the request and emit its chunks (a subclass may send it more than once, e.g.
        the router's retries, as long as it emits nothing twice)."""
        await self._read(self._call, self._provider, self._request)

    async def _send(self, call: ChatCall, provider: Provider, request: HttpRequest) -> None:
        """The subclass hook: make ``call`` this stream's request (its ``provider``, ``model``
        and the context of its errors), send ``request`` and emit its chunks."""
        self._call, self._provider, self._request = call, provider, request
        self.request_id = None
        measure = self._telemetry
        if measure is None:
            await self._read(call, provider, request)
            return
        measure.attempt(call.provider, call.model, call.api_base)
        try:
            await self._read(call, provider, request)
        except BaseException as exc:
            measure.attempt_ended(exc)
            raise
        measure.attempt_ended(None)

    async def _read(self, call: ChatCall, provider: Provider, request: HttpRequest) -> None:
        """Send ``request`` and emit its chunks; raises the typed error that ends it early."""
        response = await transport.send(
            request, timeout=call.timeout, stream=True, verify=call.verify
        )
        try:
            self.request_id = request_id_from(response.headers)
            if response.status >= 300:
                body = await transport.read_capped(response)
                raise provider.map_error(response.status, body, response.headers, call)
            decoder = provider.decoder()
            if not _is_stream(response.content_type, decoder):
                body = await transport.read_capped(response)
                raise _not_a_stream(response, body, provider, call, decoder)
            parser = provider.stream_parser(call)
            decode, parse = decoder.feed, parser.parse
            holds = producer_holds()
            emit: Callable[[list[ChatChunk]], None] = self._emit
            if self._telemetry is not None:  # checked once per response, never per read
                emit = self._telemetry.emitter(emit)
            try:
                async for data in response.content.iter_any():
                    chunks, error = parse(decode(data))
                    if chunks:
                        emit(chunks)
                        if holds:
                            await self._wait_holds(holds)
                    if error is not None:
                        raise error
                    if parser.done or self._state != _RUNNING:
                        break
                else:
                    chunks, error = parse(decoder.close())
                    emit(chunks)
                    if error is not None:
                        raise error
                    last = parser.finish()
                    if last is not None:
                        emit([last])
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as exc:
                # aiohttp raises a dropped connection before the bytes it had already
                # received: decode those first, so the partial answer keeps them.
                chunks, _ = parse(decode(_unread(response.content)))
                if chunks and self._state == _RUNNING:
                    emit(chunks)
                raise transport.body_reader_error(exc, call.timeout) from exc
            if parser.done:
                self._finish(None)
                await self._drain(response)
        except BaseException:
            response.close()
            raise
        response.release()

    async def _wait_holds(self, holds: list[asyncio.Future[None]]) -> None:
        """Wait until every subscriber let go of the last read. A subscriber whose place is
        gone (its loop closed with the read undelivered) is dropped, so the others never wait
        for it: checked each second while waiting, which costs nothing while nobody is slow."""
        while True:
            _, pending = await asyncio.wait(holds, timeout=_HOLD_CHECK_SECONDS)
            if not pending:
                break
            for remote in self._remote:
                if remote.place.gone():
                    self._detach(remote.observer)
        holds.clear()

    @staticmethod
    async def _drain(response: aiohttp.ClientResponse) -> None:
        """After the end marker, read the little that may follow (the chunked-encoding
        terminator) so the connection goes back to the pool instead of being closed."""
        content = response.content
        if content.at_eof():  # the usual case: nothing left, no task or timer to set up
            return

        async def read_rest() -> None:
            budget = _DRAIN_BYTES
            while budget > 0 and not content.at_eof():
                budget -= len(await content.readany())

        with contextlib.suppress(Exception):
            await asyncio.wait_for(read_rest(), _DRAIN_SECONDS)

    def _emit(self, chunks: list[ChatChunk]) -> None:
        """Append each chunk to the replay list, then hand it to every subscriber, in order.

        A chunk is appended just before it is emitted (not the whole batch at once) so that a
        subscriber joining from inside an ``on_next`` gets each chunk exactly once. One
        subscriber (the usual case) takes a shorter path, left as soon as the set of
        subscribers changes."""
        self._emitted += len(chunks)
        if self._remote:
            self._post(chunks)
        append = self._chunks.append
        observers = self._observers
        if len(observers) != 1:
            self._emit_each(iter(chunks))
            return
        observer = observers[0]
        on_next = observer.on_next
        rest = iter(chunks)
        for chunk in rest:
            append(chunk)
            try:
                on_next(chunk)
            except BaseException as exc:
                self._drop_failed(observer, exc)
            if self._observers is not observers:
                if self._state == _RUNNING:
                    self._emit_each(rest)
                return

    def _emit_each(self, chunks: Iterator[ChatChunk]) -> None:
        append = self._chunks.append
        for chunk in chunks:
            append(chunk)
            for observer in self._observers:
                try:
                    observer.on_next(chunk)
                except BaseException as exc:
                    self._drop_failed(observer, exc)
            if self._state != _RUNNING:
                return

    def _drop_failed(self, observer: abc.ObserverBase[ChatChunk], exc: BaseException) -> None:
        """A subscriber's on_next raised: that subscriber gets it as on_error and leaves."""
        self._detach(observer)
        self._safely(
            observer.on_error, exc if isinstance(exc, Exception) else _callback_raised(exc)
        )

    def _finish(self, error: LLMError | None) -> None:
        if self._state != _RUNNING:
            return
        measure = self._telemetry
        if measure is None:
            self._end(error)
            return
        measure.stop()  # the request ends now; its telemetry is reported once the subscribers
        self._end(error)  # have heard of the end, so that they do not wait for it
        measure.finish(error, replay=self._chunks, source=self)

    def _end(self, error: LLMError | None) -> None:
        _running.discard(self)
        observers, self._observers = self._observers, ()
        remotes, self._remote = self._remote, ()
        if error is None:
            self._state = _COMPLETED
            for remote in remotes:
                self._end_remote(remote, None)
            for observer in observers:
                self._safely(observer.on_completed)
            return
        _add_context(error, self._call, self.request_id)
        if error.partial_response is None and self._chunks:
            error.partial_response = self._chunks.assemble()
        self._error, self._error_tb = error, error.__traceback__
        self._state = _FAILED
        for remote in remotes:
            self._end_remote(remote, error)
        for observer in observers:
            self._safely(observer.on_error, error)


class _Remote:
    """A subscriber whose callbacks run on another place than the stream's loop thread."""

    __slots__ = ("closed", "hold", "observer", "place", "released")

    def __init__(self, observer: abc.ObserverBase[ChatChunk], place: Place) -> None:
        self.observer = observer
        self.place = place
        self.closed = False
        self.released = False
        self.hold: asyncio.Future[None] | None = None

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.place.release()


class Piped(Observable[T]):
    """What ``ChatStream.pipe`` returns: the piped Observable, still knowing its streams.

    Subscribing gives the whole pipeline the subscriber's place as its scheduler, so reactivex's
    own time operators (``timeout``, ``buffer_with_time``, ``debounce``...) run their timers
    where the subscriber's callbacks run; ``.run()`` and ``await`` work from anywhere."""

    def __init__(self, streams: tuple[ChatStream, ...], observable: Observable[T]) -> None:
        super().__init__()
        self.streams = streams
        self._observable = observable

    def pipe(self, *operators: Callable[[Any], Any]) -> Any:
        return _piped(self.streams, Observable.pipe(self._observable, *operators))

    def run(self, scheduler: abc.SchedulerBase | None = None) -> T:
        """Block until the pipeline ends and return its last item (safe anywhere)."""
        return run_blocking(self, scheduler)

    def _subscribe_core(
        self, observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        place = subscriber_place(scheduler)
        if not isinstance(scheduler, PlaceScheduler):
            scheduler = place.scheduler
        place.retain()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                place.release()

        def on_error(error: Exception) -> None:
            try:
                observer.on_error(error)
            finally:
                release()

        def on_completed() -> None:
            try:
                observer.on_completed()
            finally:
                release()

        subscription = self._observable.subscribe(
            observer.on_next, on_error, on_completed, scheduler=scheduler
        )
        return CompositeDisposable(subscription, Disposable(release))


def _piped(streams: tuple[ChatStream, ...], result: Any) -> Any:
    """A pipe's result as a :class:`Piped` when it is an Observable (an operator such as
    ``to_future`` may end the pipe in something else)."""
    return Piped(streams, result) if isinstance(result, Observable) else result


def run_blocking(
    source: Observable[T],
    scheduler: abc.SchedulerBase | None = None,
    timeout: float | None = None,
) -> T:
    """Subscribe, block until ``source`` ends, return its last item (reactivex's ``run``
    semantics) - running its callbacks on this thread meanwhile, so it works in plain code,
    inside a running loop (Jupyter) and inside another stream's callback. Ctrl-C (or the
    ``timeout``, as ``TimeoutError``) disposes the subscription before it propagates."""
    del scheduler  # the callbacks run on this thread: that is the point
    pump = Pump()
    outcome: list[Any] = []
    last: list[T] = []
    done = threading.Event()

    def on_error(error: Exception) -> None:
        outcome.append(error)
        on_completed()

    def on_completed() -> None:
        done.set()
        pump.wake()  # in case the end came from another thread

    subscription = source.subscribe(last.append, on_error, on_completed, scheduler=pump.scheduler)
    try:
        if not pump.run_until(done.is_set, timeout):
            raise concurrent.futures.TimeoutError(f"the stream did not end within {timeout} s")
    except BaseException:
        subscription.dispose()
        raise
    finally:
        pump.close()
    if outcome:
        raise outcome[0]
    if not last:
        raise SequenceContainsNoElementsError()
    return last[-1]


def _alive(loop: asyncio.AbstractEventLoop, pid: int | None) -> bool:
    return pid == os.getpid() and not loop.is_closed() and loop.is_running()


def _loop_to_run_on(place: Place) -> asyncio.AbstractEventLoop:
    """Where a stream first subscribed from ``place`` does its I/O: the subscriber's loop when
    it lives on one, else rxllm's background loop."""
    if (
        isinstance(place, LoopPlace)
        and _alive(place.loop, os.getpid())
        and not place.blocks_loop(place.loop)
    ):
        return place.loop
    loop = running_loop()
    if loop is not None and not place.blocks_loop(loop):
        return loop
    return background_loop()


def _unread(content: aiohttp.StreamReader) -> bytes:
    """What a failed body reader had buffered and not handed out (aiohttp keeps it in
    ``_buffer``; empty if that ever changes)."""
    buffer = getattr(content, "_buffer", None)
    try:
        return b"".join(buffer) if buffer else b""
    except TypeError:
        return b""


def _loop_gone() -> LLMError:
    return StreamCancelledError("the stream's event loop has stopped or closed while it ran")


def _callback_raised(exc: BaseException) -> LLMError:
    error = LLMError(f"a subscriber's callback raised {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def _resolve_threadsafe(future: asyncio.Future[None]) -> None:
    loop = future.get_loop()
    if running_loop() is loop:
        if not future.done():
            future.set_result(None)
    elif not loop.is_closed():
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve_if_pending, future)


def _resolve_if_pending(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _after_all(futures: list[asyncio.Future[None]], then: Callable[[], None]) -> None:
    """Call ``then`` once every one of ``futures`` (on this thread's loop) is done."""
    pending = [len(futures)]

    def one_done(_: object) -> None:
        pending[0] -= 1
        if pending[0] == 0:
            then()

    for future in futures:
        future.add_done_callback(one_done)


#: Streams with a request in flight (for Ctrl-C at interpreter exit).
_running: weakref.WeakSet[ChatStream] = weakref.WeakSet()


def _cancel_running_streams() -> None:
    for stream in list(_running):
        loop = stream._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stream._cancel_everything)


on_exit_interrupt(_cancel_running_streams)
