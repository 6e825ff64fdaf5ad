"""Consuming streams: the seed's ``extract-content``, ``consume-stream-with-callbacks`` and
``collect-stream``, for asyncio code and for plain scripts alike."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Generator
from typing import Any

from reactivex import Observable, abc

from ._assemble import Assembler
from ._assemble import extract_content as _chunk_text
from ._loop import background_loop, running_loop
from .stream import ChatStream
from .types import ChatChunk, ChatResponse

__all__ = ["StreamHandle", "collect", "collect_sync", "consume", "extract_content"]


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
