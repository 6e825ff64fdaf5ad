"""Consuming streams: the seed's ``extract-content``, ``consume-stream-with-callbacks``,
``collect-stream`` and ``->sse-stream``, for asyncio code and for plain scripts alike, plus
async iteration and fan-out over several streams.

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
from ._loop import background_loop, running_loop
from ._sse_frames import SSEFrames
from .errors import FanOutError
from .ops import label
from .stream import ChatStream
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
        """Block until the stream ends (for scripts; use ``await`` inside asyncio)."""
        _check_can_block(self._stream)
        return self._future.result(timeout)

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
) -> StreamHandle:
    """Subscribe with callbacks: ``on_chunk`` for each chunk, ``on_complete`` with the
    assembled response, ``on_error`` with the typed error. Returns a :class:`StreamHandle`."""
    handle = StreamHandle(stream)
    assembler = Assembler()
    add = assembler.add

    def next_(chunk: ChatChunk) -> None:
        add(chunk)
        if on_chunk is not None:
            on_chunk(chunk)

    def completed() -> None:
        response = assembler.result()
        try:
            if on_complete is not None:
                on_complete(response)
        except Exception as exc:
            handle._settle(None, exc)
            raise
        handle._settle(response)

    def failed(error: Exception) -> None:
        if on_error is None:
            handle._settle(None, error)
            return
        try:
            on_error(error)
        finally:
            handle._settle(None)

    handle._subscription = stream.subscribe(next_, failed, completed)
    return handle


async def collect(stream: Observable[ChatChunk]) -> ChatResponse:
    """Await the whole stream as one ``ChatResponse`` (raises the stream's error)."""
    result = await consume(stream)
    assert result is not None
    return result


def collect_sync(stream: Observable[ChatChunk], timeout: float | None = None) -> ChatResponse:
    """Block until the whole stream has arrived; return it as one ``ChatResponse``.

    For scripts and notebooks: if the stream has not started yet it is run on rxllm's
    background loop, so this also works in a thread whose event loop is running (Jupyter).
    """
    if isinstance(stream, ChatStream) and stream.loop is None:
        stream.bind(background_loop())
    result = consume(stream).wait(timeout)
    assert result is not None
    return result


def _check_can_block(stream: Observable[ChatChunk]) -> None:
    loop = stream.loop if isinstance(stream, ChatStream) else None
    if loop is not None and running_loop() is loop:
        raise RuntimeError(
            "waiting here would block the event loop this stream runs on; "
            "use `await handle` (or `await rxllm.streaming.collect(stream)`) instead"
        )


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

    return reactivex.defer(per_subscription)
