"""Backpressure from consumers to a stream's reading task, and iteration over Observables.

An Observable pushes: ``on_next`` cannot wait. A stream's reading task waits instead: for a
subscriber on its own loop it calls ``on_next`` directly, so a slow synchronous subscriber holds
the socket back; for a subscriber elsewhere it waits until that subscriber's place has delivered
the read (see :mod:`rxllm.stream`). An *asynchronous* consumer (``async for``, the SSE bridge)
cannot block inside ``on_next``; instead it asks the producer to wait: :func:`hold_producer`
registers a future with the emitter (found through a context variable: the reading task's own
list, or the list of the delivery running on the consumer's place), and the reading task awaits
it before it reads the socket again. This works through any chain of synchronous operators
between the two (``map``, ``filter``, ``label``, ``merge``...), because they all run inside the
same ``on_next`` call.

:class:`StreamIterator` uses it: ``async for`` / ``for`` over any Observable, holding the producer
while ``max_buffered`` items wait, so a slow loop body loses nothing and memory stays bounded. A
blocking ``for`` runs its subscription's callbacks on its own thread while it waits (a
:class:`rxllm._places.Pump`), so it works inside a running loop and inside another callback.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Generic, TypeVar

from reactivex import Observable, abc

from ._loop import running_loop

__all__ = ["TIMED_OUT", "StreamIterator", "hold_producer", "producer_holds"]

T = TypeVar("T")

_holds: ContextVar[list[asyncio.Future[None]] | None] = ContextVar("rxllm_holds", default=None)


def producer_holds() -> list[asyncio.Future[None]]:
    """For a producing task, once at its start: the list consumers add their holds to."""
    holds: list[asyncio.Future[None]] = []
    _holds.set(holds)
    return holds


def hold_producer(until: asyncio.Future[None]) -> bool:
    """From inside ``on_next``: ask the task that is emitting to wait for ``until`` before it
    reads more. False when the emitter is not an rxllm reading task (a replay, a plain
    Observable): then nothing waits and the caller must buffer."""
    holds = _holds.get()
    if holds is None:
        return False
    holds.append(until)
    return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _resolve_from_any_thread(future: asyncio.Future[None]) -> None:
    loop = future.get_loop()
    if running_loop() is loop:
        _resolve(future)
    elif not loop.is_closed():
        loop.call_soon_threadsafe(_resolve, future)


_END = object()
#: What :meth:`StreamIterator.next_within` returns when no item came in time.
TIMED_OUT: Any = object()


class _Channel:
    """The subscriber side of a :class:`StreamIterator`: the buffer the producer fills.

    Kept apart from the iterator so that the stream's reference to its subscriber does not keep
    the iterator alive: an iterator the loop dropped is collected at once, and disposes."""

    __slots__ = ("high", "hold", "items", "lock", "low", "waiter")

    def __init__(self, max_buffered: int) -> None:
        self.high = max(1, max_buffered)
        self.low = self.high // 2
        self.items: deque[Any] = deque()
        self.lock = threading.Lock()
        self.waiter: Any = None  # an asyncio future, or anything with set()
        self.hold: asyncio.Future[None] | None = None

    def on_next(self, item: Any) -> None:
        with self.lock:
            items = self.items
            items.append(item)
            waiter, self.waiter = self.waiter, None
            full = len(items) >= self.high and self.hold is None
        if waiter is not None:
            _wake(waiter)
        if full:
            self._hold_producer()

    def _hold_producer(self) -> None:
        loop = running_loop()
        if loop is None:
            return
        future: asyncio.Future[None] = loop.create_future()
        with self.lock:
            if len(self.items) >= self.high and self.hold is None and hold_producer(future):
                self.hold = future

    def _end(self, end: object) -> None:
        with self.lock:
            self.items.append(_Ended(end))
            waiter, self.waiter = self.waiter, None
        if waiter is not None:
            _wake(waiter)

    def on_error(self, error: Exception) -> None:
        self._end(error)

    def on_completed(self) -> None:
        self._end(_END)

    def take(self) -> tuple[bool, Any]:
        """(True, item) if one is ready; (False, None) if the caller must wait; raises the
        end (``_Stop`` or the stream's error). Call under ``lock``."""
        items = self.items
        if not items:
            return False, None
        item = items[0]
        if isinstance(item, _Ended):
            if item.end is _END:
                raise _Stop
            raise item.end  # type: ignore[misc]
        items.popleft()
        hold = self.hold
        if hold is not None and len(items) <= self.low:
            self.hold = None
            _resolve_from_any_thread(hold)
        return True, item

    def release(self) -> None:
        with self.lock:
            self.items.clear()
            hold, self.hold = self.hold, None
        if hold is not None:
            _resolve_from_any_thread(hold)


def _wake(waiter: Any) -> None:
    if isinstance(waiter, asyncio.Future):
        _resolve_from_any_thread(waiter)
    else:
        waiter.set()


class StreamIterator(Generic[T]):
    """Iterate an Observable with ``async for`` or ``for``, with backpressure.

    Subscribes at the first ``__anext__`` / ``__next__``. While ``max_buffered`` items wait for
    the loop body, the producing rxllm stream stops reading its socket (see module doc). Leaving
    the loop early (``break``, an exception, ``close()``, the iterator being dropped) disposes
    the subscription, which cancels the request when nobody else is subscribed. A stream error
    is raised by the iteration, after the items that preceded it.
    """

    def __init__(self, source: Observable[T], max_buffered: int = 64) -> None:
        self._source = source
        self._channel = _Channel(max_buffered)
        self._subscription: abc.DisposableBase | None = None
        self._started = False
        self._closed = False
        self._pump: Any = None  # the blocking ``for``'s place (rxllm._places.Pump)

    def _start(self, scheduler: abc.SchedulerBase | None = None) -> None:
        self._started = True
        channel = self._channel
        self._subscription = self._source.subscribe(
            channel.on_next, channel.on_error, channel.on_completed, scheduler=scheduler
        )

    def _next_or_wait(self, make_waiter: Callable[[], Any]) -> tuple[bool, Any]:
        """(True, item), or (False, waiter) after registering a new waiter for the producer to
        wake. At the end of the stream: closes, and raises ``_Stop`` or the stream's error."""
        channel = self._channel
        with channel.lock:
            try:
                ready, item = channel.take()
            except BaseException as end:
                ended: BaseException | None = end
            else:
                if ready:
                    return True, item
                waiter = channel.waiter = make_waiter()
                return False, waiter
        self.close()
        assert ended is not None
        raise ended

    def __aiter__(self) -> StreamIterator[T]:
        return self

    async def __anext__(self) -> T:
        if self._closed:
            raise StopAsyncIteration
        if not self._started:
            self._start()
        loop = asyncio.get_running_loop()
        while True:
            try:
                ready, item = self._next_or_wait(loop.create_future)
            except _Stop:
                raise StopAsyncIteration from None
            if ready:
                return item  # type: ignore[no-any-return]
            try:
                await item
            except BaseException:
                self.close()
                raise

    async def next_within(self, seconds: float) -> T:
        """The next item, or :data:`TIMED_OUT` if none came within ``seconds`` (the iteration
        goes on: call again). Raises ``StopAsyncIteration`` at the end, as ``__anext__``.
        For a server's heartbeats: a quiet stream is noticed without cancelling anything."""
        if self._closed:
            raise StopAsyncIteration
        if not self._started:
            self._start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            try:
                ready, item = self._next_or_wait(loop.create_future)
            except _Stop:
                raise StopAsyncIteration from None
            if ready:
                return item  # type: ignore[no-any-return]
            if loop.time() >= deadline:
                return TIMED_OUT  # type: ignore[no-any-return]
            timer = loop.call_at(deadline, _resolve, item)
            try:
                await item
            except BaseException:
                self.close()
                raise
            finally:
                timer.cancel()

    def ready(self) -> list[T]:
        """The items already buffered, taken now without waiting (``[]`` when none, or at the
        end: the next ``next_within`` / ``__anext__`` reports the end). For a relay that
        writes what arrived together in one go."""
        channel = self._channel
        taken: list[T] = []
        with channel.lock:
            items = channel.items
            while items and not isinstance(items[0], _Ended):
                _, item = channel.take()
                taken.append(item)
        return taken

    def __iter__(self) -> StreamIterator[T]:
        return self

    def __next__(self) -> T:
        if self._closed:
            raise StopIteration
        if not self._started:
            from ._places import Pump  # the places module builds on this one

            self._pump = Pump()
            self._start(self._pump.scheduler)
        pump = self._pump
        channel = self._channel
        while True:
            try:
                ready, item = self._next_or_wait(lambda: pump)
            except _Stop:
                raise StopIteration from None
            if ready:
                return item  # type: ignore[no-any-return]
            try:  # run this iteration's callbacks here until an item (or the end) is in
                pump.run_until(lambda: bool(channel.items))
            except BaseException:
                self.close()
                raise

    def close(self) -> None:
        """Stop iterating: dispose the subscription (cancelling the request if it was the last)."""
        self._closed = True
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.dispose()
        self._channel.release()
        if self._pump is not None:
            self._pump.close()

    dispose = close

    async def aclose(self) -> None:
        self.close()

    def __enter__(self) -> StreamIterator[T]:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    async def __aenter__(self) -> StreamIterator[T]:
        return self

    async def __aexit__(self, *_: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_subscription", None) is not None:
            self.close()


class _Ended:
    __slots__ = ("end",)

    def __init__(self, end: object) -> None:
        self.end = end


class _Stop(Exception):
    pass
