"""Consuming streams: ``extract-content``, ``consume-stream-with-callbacks``,
``collect-stream`` and ``->sse-stream`` (docs/contracts.md, API table), for asyncio code and for
plain scripts alike, plus async iteration and fan-out over several streams.

* :func:`consume` - callbacks, and a handle to await, wait on or dispose;
* :func:`collect` / :func:`collect_sync` - the whole answer as one ``ChatResponse``;
* :func:`iterate` - ``async for`` / ``for`` over any stream or pipeline, with backpressure;
* :func:`to_sse` - the SSE bridge: a stream as ``text/event-stream`` bytes in OpenAI's chunk
  format, with :func:`sse_response` (aiohttp) and :func:`sse_streaming_response`
  (Starlette/FastAPI) to serve it;
* :func:`fan_out` - several streams merged, each chunk labelled with its stream's name.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import reactivex
from reactivex import Observable, abc
from reactivex import operators as rx_ops

from ._assemble import Assembler
from ._assemble import extract_content as _chunk_text
from ._flow import StreamIterator
from ._places import Pump, recording
from ._sse_frames import SSEFrames
from .errors import FanOutError
from .ops import label
from .stream import ChatStream, Piped
from .types import ChatChunk, ChatResponse

if TYPE_CHECKING:
    from aiohttp import web
    from starlette.responses import StreamingResponse

__all__ = [
    "SSE_HEADERS",
    "StreamHandle",
    "StreamIterator",
    "collect",
    "collect_sync",
    "consume",
    "extract_content",
    "fan_out",
    "iterate",
    "sse_response",
    "sse_streaming_response",
    "to_sse",
]

T = TypeVar("T")


def extract_content(item: ChatChunk | ChatResponse) -> str | None:
    """The text of a chunk (its delta) or of a response; None when there is none."""
    if isinstance(item, ChatChunk):
        return _chunk_text(item)
    return item.text or None


class StreamHandle:
    """A running consumption: ``await`` it, ``wait()`` for it, or ``dispose()`` it.

    It resolves to the assembled ``ChatResponse``; to ``None`` when disposed, or when the
    stream failed and the error was handed to an ``on_error`` callback. Without ``on_error``
    a failure is raised by ``await`` / ``wait()``.
    """

    def __init__(self, stream: Observable[ChatChunk]) -> None:
        self._stream = stream
        self._future: concurrent.futures.Future[ChatResponse | None] = concurrent.futures.Future()
        self._subscription: abc.DisposableBase | None = None
        self._streams: list[ChatStream] = []

    @property
    def done(self) -> bool:
        return self._future.done()

    def dispose(self) -> None:
        """Stop consuming; if nobody else is subscribed the request is cancelled."""
        if self._subscription is not None:
            self._subscription.dispose()
        if not self._future.done():
            self._future.set_result(None)

    def wait(self, timeout: float | None = None) -> ChatResponse | None:
        """Block until the stream ends (for scripts and notebooks; ``await`` it in asyncio).

        Callbacks due on this thread (a notebook cell's loop, another stream's callback) run
        here meanwhile. Ctrl-C disposes the consumption (cancelling the request if nobody else
        listens); a stream that runs on this very thread's loop, already started, cannot be
        waited for here: that raises :class:`~rxllm.errors.WouldBlockError` at once."""
        return self._wait(Pump(), timeout)

    def _wait(self, pump: Pump, timeout: float | None) -> ChatResponse | None:
        """Run ``pump`` (this thread's callbacks) until the end; see :meth:`wait`."""
        future = self._future
        try:
            if not future.done():
                for stream in self._streams:
                    problem = stream._loop_for(pump)
                    if isinstance(problem, Exception):
                        raise problem
                future.add_done_callback(lambda _: pump.wake())
                try:
                    finished = pump.run_until(future.done, timeout)
                except BaseException:
                    self.dispose()
                    raise
                if not finished:
                    raise concurrent.futures.TimeoutError(
                        f"the stream did not end within {timeout} s "
                        "(it goes on; dispose() stops it)"
                    )
        finally:
            pump.close()
        return future.result()

    def __await__(self) -> Generator[Any, None, ChatResponse | None]:
        return asyncio.wrap_future(self._future).__await__()

    def _settle(self, result: ChatResponse | None, error: BaseException | None = None) -> None:
        if self._future.done():
            return
        if error is not None:
            self._future.set_exception(error)
        else:
            self._future.set_result(result)


def consume(
    stream: Observable[ChatChunk],
    on_chunk: Callable[[ChatChunk], Any] | None = None,
    on_complete: Callable[[ChatResponse], Any] | None = None,
    on_error: Callable[[Exception], Any] | None = None,
    *,
    scheduler: abc.SchedulerBase | None = None,
) -> StreamHandle:
    """Subscribe with callbacks: ``on_chunk`` for each chunk, ``on_complete`` with the
    assembled response, ``on_error`` with the typed error. Returns a :class:`StreamHandle`.

    The callbacks run where this is called: on the running loop's thread inside asyncio, on a
    thread of their own from plain code (or on the thread blocked in ``wait()``).

    A stream of something else than chunks (a pipeline ending in ``ops.metrics()``...) is a
    misuse: it ends at the first such item with a ``TypeError`` that the handle raises."""
    handle = StreamHandle(stream)
    assembler = Assembler()
    add = assembler.add
    checked = False

    def next_(chunk: ChatChunk) -> None:
        nonlocal checked
        if not checked:  # only the first item: a misuse shows there, and chunks stay cheap
            if handle.done:  # refused already
                return
            if not isinstance(chunk, ChatChunk):
                _refuse(handle, chunk, on_error)
                return
            checked = True
        add(chunk)
        if on_chunk is not None:
            on_chunk(chunk)

    def completed() -> None:
        if handle.done:  # refused (a synchronous source completes before it can be disposed)
            return
        response = assembler.result()
        try:
            if on_complete is not None:
                on_complete(response)
        except Exception as exc:
            handle._settle(None, exc)
            raise
        handle._settle(response)

    def failed(error: Exception) -> None:
        if handle.done:
            return
        if on_error is None:
            handle._settle(None, error)
            return
        try:
            on_error(error)
        finally:
            handle._settle(None)

    with recording() as streams:
        handle._subscription = stream.subscribe(next_, failed, completed, scheduler=scheduler)
    handle._streams = [s for s in streams if isinstance(s, ChatStream)]
    if handle.done and not checked:  # refused during subscribe: the items came synchronously
        handle._subscription.dispose()
    return handle


def _refuse(
    handle: StreamHandle, item: object, on_error: Callable[[Exception], Any] | None
) -> None:
    """``consume`` got something other than chunks (``s.pipe(ops.metrics())``...): end it with a
    TypeError that says so, through the handle (and ``on_error``), instead of failing later in
    the assembler with an AttributeError nobody awaits."""
    error = TypeError(
        f"consume() and collect() assemble ChatChunks, but this stream emitted a "
        f"{type(item).__name__}: subscribe to it or iterate() over it to read its items, or "
        "pass the chunk stream itself (before operators such as ops.metrics())"
    )
    handle._settle(None, error)
    if handle._subscription is not None:
        handle._subscription.dispose()
    if on_error is not None:
        on_error(error)


async def collect(stream: Observable[ChatChunk]) -> ChatResponse:
    """Await the whole stream as one ``ChatResponse`` (raises the stream's error)."""
    result = await consume(stream)
    assert result is not None
    return result


def collect_sync(stream: Observable[ChatChunk], timeout: float | None = None) -> ChatResponse:
    """Block until the whole stream has arrived; return it as one ``ChatResponse``.

    Works anywhere: in scripts, in a notebook cell (a stream not started yet runs on rxllm's
    background loop), inside another stream's callback. Ctrl-C cancels the request."""
    pump = Pump()
    result = consume(stream, scheduler=pump.scheduler)._wait(pump, timeout)
    assert result is not None
    return result


# --- iteration -------------------------------------------------------------------------------


def iterate(stream: Observable[T], max_buffered: int = 64) -> StreamIterator[T]:
    """``async for item in iterate(stream.pipe(...))`` - or a plain ``for`` in scripts.

    Backpressure is real: while ``max_buffered`` items wait for the loop body, the stream stops
    reading its socket (so the server's writes are held back too) and resumes as the loop
    catches up. Leaving the loop early (``break``, an exception) disposes the subscription,
    which cancels the request if nobody else is subscribed; a stream error is raised by the
    loop after the items before it. ``async for chunk in stream`` is the same, on a ChatStream.
    """
    return StreamIterator(stream, max_buffered)


# --- the SSE bridge --------------------------------------------------------------------------

#: Response headers for an SSE endpoint (``X-Accel-Buffering`` stops nginx from buffering it).
SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}


async def to_sse(stream: Observable[ChatChunk]) -> AsyncIterator[bytes]:
    """A stream as Server-Sent Events bytes, for any async web framework's streaming body.

    Each chunk becomes ``data: {chat.completion.chunk JSON}\n\n`` - OpenAI's chunk format
    (plus rxllm's ``provider`` and ``source`` fields), with every field the official SDKs rely
    on (``delta.role`` first, ``tool_calls[].index``, ``type``; see :mod:`rxllm._sse_frames`)
    - and a complete stream ends with its usage alone in a chunk with ``choices: []``, then
    ``data: [DONE]\n\n``. A failed stream ends instead with ``event: error\ndata: {"error":
    <error_summary>}\n\n`` (no ``[DONE]``): the summary names the error type, provider, model,
    status and code, never an API key, and the ``openai`` SDK raises it as an ``APIError``
    with its message. Chunks are pulled with backpressure; closing the iterator (the HTTP
    client went away) disposes the subscription, which cancels the upstream request if nobody
    else is subscribed.
    """
    frames = SSEFrames()
    chunks = StreamIterator(stream)
    try:
        async for chunk in chunks:
            frame = frames.chunk(chunk)
            if frame:
                yield frame
    except Exception as error:
        for frame in frames.error(error):
            yield frame
        return
    finally:
        chunks.close()
    for frame in frames.end():
        yield frame


async def sse_response(
    request: web.BaseRequest,
    stream: Observable[ChatChunk],
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.StreamResponse:
    """Serve ``stream`` as SSE from an aiohttp handler: ``return await sse_response(request,
    stream)``. A client that disconnects is noticed at the next write (or at once when the app
    enables handler cancellation) and the upstream stream is disposed."""
    from aiohttp import web

    response = web.StreamResponse(status=status, headers={**SSE_HEADERS, **(headers or {})})
    await response.prepare(request)
    frames = to_sse(stream)
    try:
        async for frame in frames:
            await response.write(frame)
        await response.write_eof()
    except ConnectionError:  # the client went away (aiohttp's ClientConnectionResetError too)
        pass
    finally:
        await frames.aclose()  # type: ignore[attr-defined]
    return response


def sse_streaming_response(
    stream: Observable[ChatChunk],
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> StreamingResponse:
    """Serve ``stream`` as SSE from Starlette or FastAPI: ``return sse_streaming_response(stream)``.

    A Starlette ``StreamingResponse`` over :func:`to_sse` that closes the frames (and so
    disposes the upstream stream) as soon as the response ends for any reason, client
    disconnects included. Needs ``starlette`` (FastAPI brings it)."""
    response: StreamingResponse = _starlette_response_class()(
        to_sse(stream),
        status_code=status_code,
        headers={**SSE_HEADERS, **(headers or {})},
        media_type="text/event-stream",
    )
    return response


@functools.cache
def _starlette_response_class() -> Any:
    from starlette.responses import StreamingResponse

    class SSEStreamingResponse(StreamingResponse):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            try:
                await super().__call__(scope, receive, send)
            finally:
                await self.body_iterator.aclose()  # type: ignore[attr-defined]

    return SSEStreamingResponse


# --- fan-out ---------------------------------------------------------------------------------


def fan_out(
    streams: Mapping[str, Observable[ChatChunk]],
    *,
    fail_fast: bool = False,
    on_source_error: Callable[[str, Exception], Any] | None = None,
) -> Observable[ChatChunk]:
    """Several streams as one: ``reactivex.merge`` of each stream labelled with its name
    (:func:`rxllm.ops.label`, so ``chunk.source`` says where a chunk came from).

    It completes when every stream has completed. A stream that fails does not stop the others:
    ``on_source_error(name, error)`` is called at once, if given, and when the last stream has
    ended the merged stream fails with one :class:`~rxllm.errors.FanOutError` whose ``errors``
    maps each failed name to its typed error and whose ``completed`` lists the others - so every
    chunk of the healthy streams arrives first, and a partial result is never mistaken for a
    complete one. With ``fail_fast=True`` the first failure disposes the other streams (closing
    their connections) and fails the merged stream at once, with a ``FanOutError`` holding it.
    """
    names = list(streams)
    roots: list[ChatStream] = []
    for stream in streams.values():
        if isinstance(stream, ChatStream):
            roots.append(stream)
        elif isinstance(stream, Piped):
            roots.extend(stream.streams)

    def per_subscription(_: abc.SchedulerBase | None) -> Observable[ChatChunk]:
        failures: dict[str, Exception] = {}

        def completed() -> list[str]:
            return [name for name in names if name not in failures]

        def handler(name: str) -> Callable[[Exception, Any], Observable[ChatChunk]]:
            def on_failure(error: Exception, _: Any) -> Observable[ChatChunk]:
                failures[name] = error
                if on_source_error is not None:
                    on_source_error(name, error)
                if fail_fast:
                    return reactivex.throw(FanOutError({name: error}, []))
                return reactivex.empty()

            return on_failure

        def outcome(_: abc.SchedulerBase | None) -> Observable[ChatChunk]:
            if failures:
                return reactivex.throw(FanOutError(dict(failures), completed()))
            return reactivex.empty()

        labelled = [
            stream.pipe(label(name), rx_ops.catch(handler(name)))
            for name, stream in streams.items()
        ]
        return reactivex.merge(*labelled).pipe(rx_ops.concat(reactivex.defer(outcome)))

    return Piped(tuple(roots), reactivex.defer(per_subscription))
