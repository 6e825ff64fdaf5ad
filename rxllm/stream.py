"""One request, as a hot, shared, lazy, replaying Observable (DESIGN contracts 2-6).

:class:`ChatStream` is what ``completion(..., stream=True)`` returns:

* **lazy** - nothing is sent until the first subscription;
* **shared** - that subscription starts the one HTTP request; every later subscriber shares it;
* **replaying** - a late subscriber first receives every chunk already received, then follows
  live; after the end it gets the full replay and the same termination, with no new request;
* **cancellable** - when the last subscriber disposes, the request task is cancelled and the
  connection closed (not returned to the pool), so the provider stops generating;
* **honest** - ``on_completed`` only after the provider's end marker; everything else is an
  ``on_error`` with a typed :mod:`rxllm.errors` exception holding the partial response.

Threading: the stream belongs to one event loop, chosen at the first subscription (the loop
running in the subscribing thread, else rxllm's background loop). All of its state is touched
only on that loop's thread: a subscription or disposal from another thread is handed over with
``call_soon_threadsafe``. So the per-chunk path takes no lock: the reading task decodes a chunk,
appends it to the replay list and calls each observer's ``on_next`` directly (which is also the
backpressure: the socket is not read again until every observer has returned). An asynchronous
consumer (``async for chunk in stream``, the SSE bridge) cannot block there; it registers a hold
(:mod:`rxllm._flow`) and the reading task waits for it before its next read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

import aiohttp
from reactivex import Observable, abc
from reactivex.disposable import Disposable

from . import transport
from ._assemble import assemble
from ._flow import StreamIterator, producer_holds, wait_holds
from ._loop import background_loop, running_loop
from ._spec import Call, ChatCall, HttpRequest, Provider
from .errors import LLMError, MalformedResponseError, ResponseError, StreamCancelledError
from .providers._common import body_snippet, request_id_from
from .types import ChatChunk, ChatResponse

__all__ = ["ChatStream", "fetch", "fetch_response"]

T = TypeVar("T")

log = logging.getLogger("rxllm")

_DRAIN_BYTES = 65536
_DRAIN_SECONDS = 1.0

_PENDING, _RUNNING, _COMPLETED, _FAILED, _CANCELLED = range(5)
_STATE_NAMES = ("pending", "running", "completed", "failed", "cancelled")


def _add_context(error: LLMError, call: Call, request_id: str | None) -> LLMError:
    error._with_context(provider=call.provider, model=call.model, secret=call.api_key)
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
    """The non-streaming chat request."""
    return await fetch(
        call,
        request,
        lambda body: provider.parse_response(body, call),
        lambda status, body, headers: provider.map_error(status, body, headers, call),
    )


_STREAM_TYPES = {"sse": "text/event-stream", "ndjson": "application/x-ndjson"}


def _is_stream(media_type: str, stream_format: str) -> bool:
    """Whether a 2xx answer to a stream request may be the stream. An HTML page (a proxy's, a
    captive portal's) never is; a JSON document is not an SSE stream (it is an error object,
    or a server that ignored ``stream``). Anything else - missing, ``text/plain``,
    ``application/octet-stream`` - is given to the decoder, which ends honestly either way."""
    if media_type == "text/html":
        return False
    return stream_format != "sse" or not (
        media_type == "application/json" or media_type.endswith("+json")
    )


def _not_a_stream(
    response: aiohttp.ClientResponse, body: bytes, provider: Provider, call: ChatCall
) -> LLMError:
    """The typed error for a 2xx answer that is not a stream: the provider's own error when the
    body is a JSON error object, else a malformed response naming what came instead."""
    media_type = response.content_type
    if "json" in media_type and b'"error"' in body:
        return provider.map_error(response.status, body, response.headers, call)
    expected = _STREAM_TYPES.get(provider.stream_format, provider.stream_format)
    return MalformedResponseError(
        f"expected a stream ({expected}), got {media_type}: {body_snippet(body, 200)!r}",
        status_code=response.status,
    )


class ChatStream(Observable[ChatChunk]):
    """The hot stream of one chat request. Subscribe to it, ``pipe`` operators onto it."""

    def __init__(self, call: ChatCall, provider: Provider, request: HttpRequest) -> None:
        super().__init__()
        self._call = call
        self._provider = provider
        self._request = request
        self._chunks: list[ChatChunk] = []
        self._observers: tuple[abc.ObserverBase[ChatChunk], ...] = ()
        self._state = _PENDING
        self._error: LLMError | None = None
        # The error's traceback as the stream ended: each late subscriber gets it back, so
        # re-raising the one shared exception does not make its traceback grow without end.
        self._error_tb: TracebackType | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._bind_lock = threading.Lock()
        self.request_id: str | None = None

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
            return self._loop

    def _subscribe_core(
        self,
        observer: abc.ObserverBase[ChatChunk],
        scheduler: abc.SchedulerBase | None = None,
    ) -> abc.DisposableBase:
        loop = self._loop or self.bind()
        if running_loop() is loop:
            self._attach(observer)
        elif loop.is_closed():
            observer.on_error(
                _add_context(
                    StreamCancelledError("the stream's event loop is closed"),
                    self._call,
                    self.request_id,
                )
            )
        else:
            loop.call_soon_threadsafe(self._attach, observer)
        return Disposable(lambda: self._detach_from_any_thread(observer))

    def _detach_from_any_thread(self, observer: abc.ObserverBase[ChatChunk]) -> None:
        loop = self._loop
        if loop is None:
            return
        if running_loop() is loop:
            self._detach(observer)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(self._detach, observer)

    def _attach(self, observer: abc.ObserverBase[ChatChunk]) -> None:
        try:
            for chunk in self._chunks:
                observer.on_next(chunk)
        except Exception as exc:
            self._safely(observer.on_error, exc)
            return
        state = self._state
        if state == _COMPLETED:
            self._safely(observer.on_completed)
        elif state >= _FAILED:
            assert self._error is not None
            self._safely(observer.on_error, self._error.with_traceback(self._error_tb))
        else:
            self._observers = (*self._observers, observer)
            if state == _PENDING:
                self._state = _RUNNING
                loop = self._loop
                assert loop is not None
                self._task = loop.create_task(self._run())

    def _detach(self, observer: abc.ObserverBase[ChatChunk]) -> None:
        observers = self._observers
        if observer not in observers:
            return
        self._observers = tuple(o for o in observers if o is not observer)
        if not self._observers and self._state == _RUNNING:
            self._state = _CANCELLED
            self._error = _add_context(
                StreamCancelledError("every subscriber disposed before the stream finished"),
                self._call,
                self.request_id,
            )
            self._error.partial_response = assemble(self._chunks) if self._chunks else None
            if self._task is not None:
                self._task.cancel()

    @staticmethod
    def _safely(callback: Any, *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            log.exception("an rxllm stream subscriber's callback raised")

    # --- the request -------------------------------------------------------------------

    async def _run(self) -> None:
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

    async def _produce(self) -> None:
        """Run the request and emit its chunks (a subclass may send it more than once, e.g.
        the router's retries, as long as it emits nothing twice)."""
        await self._read(self._call, self._provider, self._request)

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
            if not _is_stream(response.content_type, provider.stream_format):
                raise _not_a_stream(response, await transport.read_capped(response), provider, call)
            decoder = (
                transport.SSEDecoder()
                if provider.stream_format == "sse"
                else transport.NDJSONDecoder()
            )
            parser = provider.stream_parser(call)
            decode, parse = decoder.feed, parser.parse
            holds = producer_holds()
            try:
                async for data in response.content.iter_any():
                    chunks, error = parse(decode(data))
                    if chunks:
                        self._emit(chunks)
                        if holds:
                            await wait_holds(holds)
                    if error is not None:
                        raise error
                    if parser.done or self._state != _RUNNING:
                        break
                else:
                    chunks, error = parse(decoder.close())
                    self._emit(chunks)
                    if error is not None:
                        raise error
                    last = parser.finish()
                    if last is not None:
                        self._emit([last])
            except (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError) as exc:
                raise transport.body_reader_error(exc, call.timeout) from exc
            if parser.done:
                self._finish(None)
                await self._drain(response)
        except BaseException:
            response.close()
            raise
        response.release()

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
            except Exception as exc:
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
                except Exception as exc:
                    self._drop_failed(observer, exc)
            if self._state != _RUNNING:
                return

    def _drop_failed(self, observer: abc.ObserverBase[ChatChunk], exc: Exception) -> None:
        """A subscriber's on_next raised: that subscriber gets it as on_error and leaves."""
        self._detach(observer)
        self._safely(observer.on_error, exc)

    def _finish(self, error: LLMError | None) -> None:
        if self._state != _RUNNING:
            return
        observers, self._observers = self._observers, ()
        if error is None:
            self._state = _COMPLETED
            for observer in observers:
                self._safely(observer.on_completed)
            return
        _add_context(error, self._call, self.request_id)
        if error.partial_response is None and self._chunks:
            error.partial_response = assemble(self._chunks)
        self._state, self._error, self._error_tb = _FAILED, error, error.__traceback__
        for observer in observers:
            self._safely(observer.on_error, error)
