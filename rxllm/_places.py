"""Where a subscriber's callbacks run (docs/contracts.md, 5).

A :class:`Place` is a serial queue of callbacks and timers bound to one thread:

* :class:`LoopPlace` - an asyncio loop's thread (a subscriber that subscribed inside a running
  loop); work is handed over with ``call_soon_threadsafe``;
* :class:`WorkerPlace` - a thread of its own, for a subscriber from plain code, so that a slow
  callback holds back nobody else; it ends when its subscriptions have;
* :class:`Pump` - the thread of a blocking helper (``collect_sync``, ``.run()``, ``wait()``,
  a blocking ``for``): while it waits, that thread runs its own subscriptions' callbacks, and
  those of the place it was called from (a loop blocked in a Jupyter cell, a worker blocked in
  a callback), so a blocked thread never waits for work queued to itself.

A stream hands each subscriber's chunks to its place one socket read at a time; the
subscriber's operators (and reactivex's time operators, through :class:`PlaceScheduler`) run
there too. :func:`subscriber_place` tells which place a new subscription belongs to.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from datetime import datetime
from typing import Any, TypeVar

from reactivex import abc, typing
from reactivex.disposable import CompositeDisposable, Disposable, SingleAssignmentDisposable
from reactivex.scheduler.periodicscheduler import PeriodicScheduler

from ._loop import running_loop

__all__ = [
    "LoopPlace",
    "Place",
    "PlaceScheduler",
    "Pump",
    "WorkerPlace",
    "current_place",
    "loop_place",
    "recording",
    "subscriber_place",
]

log = logging.getLogger("rxllm")

_TState = TypeVar("_TState")

_clock = time.monotonic
_sequence = itertools.count()
_local = threading.local()


class Timer:
    """A callback due at a time on a place; ``cancel()`` from any thread."""

    __slots__ = ("callback", "cancelled", "order", "when")

    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.order = next(_sequence)
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True

    def __lt__(self, other: Timer) -> bool:
        return (self.when, self.order) < (other.when, other.order)


class Place:
    """A serial queue of callbacks and timers, run on one thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[tuple[object, Callable[[], None]]] = deque()
        self._timers: list[Timer] = []
        self._pump: Pump | None = None  # a blocking helper on this place's thread, if any
        self._scheduler: PlaceScheduler | None = None
        #: The subscribers whose callbacks are running on this place now: a blocking helper
        #: inside one pumps this place but skips their work (it would re-enter them).
        self.busy: set[object] = set()
        self.dead = False

    # --- for producers, from any thread -------------------------------------------------------

    def post(self, callback: Callable[[], None], owner: object = None) -> bool:
        """Queue ``callback`` to run on this place, after the earlier work; False when the
        place is gone. ``owner`` is the subscriber it is for (work of one owner keeps its
        order; see ``busy``)."""
        with self._lock:
            if self.dead:
                return False
            self._queue.append((owner, callback))
            pump = self._pump
        if pump is not None:
            pump.wake()
        else:
            self._wake()
        return not self.dead  # a loop found closed while waking it: nobody will run this

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(_clock() + max(0.0, delay), callback)
        with self._lock:
            heapq.heappush(self._timers, timer)
            earliest = self._timers[0] is timer
            pump = self._pump
        if pump is not None:
            pump.wake()
        elif earliest:
            self._timer_added(timer.when)
        return timer

    @property
    def scheduler(self) -> PlaceScheduler:
        """A reactivex scheduler whose work and timers run on this place."""
        scheduler = self._scheduler
        if scheduler is None:
            scheduler = self._scheduler = PlaceScheduler(self)
        return scheduler

    def retain(self) -> None:
        """A subscription now uses this place (a worker stays alive while any does)."""

    def release(self) -> None:
        """A subscription that used this place has ended."""

    def is_current(self) -> bool:
        """Whether this thread is the place's thread."""
        raise NotImplementedError

    def gone(self) -> bool:
        """Whether work posted here will never run (its loop closed, its thread ended)."""
        return self.dead

    def blocks_loop(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether waiting here would keep ``loop`` from running (it runs on this thread)."""
        return False

    # --- for the place's own thread -----------------------------------------------------------

    def run_pending(self, skip: set[object] | None = None) -> float | None:
        """Run every queued callback and due timer, except the work of the owners in
        ``skip`` (left queued, in order); return when the next timer is due."""
        queue = self._queue
        kept: list[tuple[object, Callable[[], None]]] = []
        while True:
            with self._lock:
                if not queue:
                    queue.extendleft(reversed(kept))
                    break
                owner, callback = queue.popleft()
            if skip and owner in skip:
                kept.append((owner, callback))
                continue
            self._run(callback)
        while True:
            with self._lock:
                timers = self._timers
                while timers and timers[0].cancelled:
                    heapq.heappop(timers)
                if not timers:
                    return None
                if timers[0].when > _clock():
                    return timers[0].when
                timer = heapq.heappop(timers)
            self._run(timer.callback)

    def has_work(self, skip: set[object] | None = None) -> bool:
        with self._lock:
            if any(not skip or owner not in skip for owner, _ in self._queue):
                return True
            return bool(self._timers and self._timers[0].when <= _clock())

    @staticmethod
    def _run(callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:  # callbacks guard their own subscribers; this is a last resort
            log.exception("an rxllm callback raised")

    def _wake(self) -> None:
        raise NotImplementedError

    def _timer_added(self, when: float) -> None:
        self._wake()

    def _attach_pump(self, pump: Pump | None) -> Pump | None:
        with self._lock:
            previous, self._pump = self._pump, pump
        return previous

    def _close(self) -> None:
        with self._lock:
            self.dead = True
            self._queue.clear()
            self._timers.clear()


class LoopPlace(Place):
    """The thread of an asyncio loop: what a subscriber inside a running loop gets."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self._scheduled = False

    def is_current(self) -> bool:
        return running_loop() is self.loop

    def gone(self) -> bool:
        return self.dead or self.loop.is_closed()

    def blocks_loop(self, loop: asyncio.AbstractEventLoop) -> bool:
        # While a blocking helper pumps this place, its loop's thread is held in that helper.
        return loop is self.loop and self._pump is not None

    def _wake(self) -> None:
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nobody will run this place again
            self._close()

    def _drain(self) -> None:
        with self._lock:
            self._scheduled = False
            if self._pump is not None:  # a blocking helper on this thread runs it now
                return
        next_timer = self.run_pending()
        if next_timer is not None:
            self._timer_added(next_timer)

    def _timer_added(self, when: float) -> None:
        def arm() -> None:
            self.loop.call_later(max(0.0, when - _clock()), self._wake)

        try:
            if self.is_current():
                arm()
            else:
                self.loop.call_soon_threadsafe(arm)
        except RuntimeError:
            self._close()


_loop_places: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopPlace] = (
    weakref.WeakKeyDictionary()
)
_loop_places_lock = threading.Lock()


def loop_place(loop: asyncio.AbstractEventLoop) -> LoopPlace:
    """The one place of ``loop``."""
    place = _loop_places.get(loop)
    if place is None:
        with _loop_places_lock:
            place = _loop_places.get(loop)
            if place is None:
                place = _loop_places[loop] = LoopPlace(loop)
    return place


_workers: set[WorkerPlace] = set()
_workers_lock = threading.Lock()
_exit_hook: list[bool] = []  # [True] once the exit wait is registered


class WorkerPlace(Place):
    """A thread of its own for one subscription from plain code. It starts at the first work
    and ends when every subscription that retained it has ended and its queue is empty; the
    interpreter waits for live workers at exit (so a script that subscribes and reaches its
    end still gets its answer)."""

    def __init__(self) -> None:
        super().__init__()
        self._wakeup = threading.Condition(self._lock)
        self._refs = 0
        self._thread: threading.Thread | None = None

    def is_current(self) -> bool:
        return threading.current_thread() is self._thread

    def retain(self) -> None:
        with self._lock:
            self._refs += 1
            start = self._thread is None and not self.dead
            if start:
                self._thread = threading.Thread(
                    target=self._main, name="rxllm-callbacks", daemon=True
                )
        if start:
            _register_worker(self)
            assert self._thread is not None
            self._thread.start()

    def release(self) -> None:
        with self._lock:
            self._refs -= 1
            self._wakeup.notify()

    def _wake(self) -> None:
        with self._lock:
            self._wakeup.notify()

    def _main(self) -> None:
        _local.place = self
        try:
            while True:
                next_timer = self.run_pending()
                with self._lock:
                    if self.dead or (self._refs <= 0 and not self._queue):
                        self.dead = True
                        break
                    if self._queue:
                        continue
                    timeout = None if next_timer is None else max(0.0, next_timer - _clock())
                    self._wakeup.wait(timeout)
        finally:
            self._close()
            with _workers_lock:
                _workers.discard(self)
            with _exit_condition:
                _exit_condition.notify_all()


class Pump(Place):
    """The place of a blocking helper: the calling thread, which runs the helper's callbacks
    (and those queued for the place it was called from) until the helper is done."""

    def __init__(self) -> None:
        super().__init__()
        self._wakeup = threading.Condition(self._lock)
        self._loop = running_loop()
        self._thread = threading.current_thread()

    def is_current(self) -> bool:
        return threading.current_thread() is self._thread

    def blocks_loop(self, loop: asyncio.AbstractEventLoop) -> bool:
        return loop is self._loop

    def wake(self) -> None:
        with self._lock:
            self._wakeup.notify()

    _wake = wake
    #: The waiter protocol of :mod:`rxllm._flow` (an item arrived from another thread).
    set = wake

    def run_until(self, done: Callable[[], bool], timeout: float | None = None) -> bool:
        """Run callbacks on this thread until ``done()``; False if ``timeout`` passed first."""
        deadline = None if timeout is None else _clock() + timeout
        pumped = _outer_place()
        # The subscribers whose callback this helper was called from are skipped: running
        # their later work here would re-enter them (their stream is not held back meanwhile:
        # see release_hold).
        skip = set(pumped.busy) if pumped is not None else None
        previous_pump = pumped._attach_pump(self) if pumped is not None else None
        previous_place = getattr(_local, "place", None)
        _local.place = self
        release_hold()
        try:
            while True:
                next_timer = self.run_pending()
                if pumped is not None:
                    next_timer = _earliest(next_timer, pumped.run_pending(skip))
                if done():
                    return True
                with self._lock:
                    if self._queue or (pumped is not None and pumped.has_work(skip)):
                        continue
                    wait_until = _earliest(next_timer, deadline)
                    if deadline is not None and _clock() >= deadline:
                        return False
                    self._wakeup.wait(None if wait_until is None else wait_until - _clock())
        finally:
            _local.place = previous_place
            if pumped is not None:
                pumped._attach_pump(previous_pump)
                if pumped.has_work():
                    pumped._wake()

    def close(self) -> None:
        """The helper is done: later work for it is dropped."""
        self._close()


def _earliest(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _outer_place() -> Place | None:
    """The place this thread serves when it is not in a blocking helper."""
    place = getattr(_local, "place", None)
    if place is not None:
        return place  # type: ignore[no-any-return]
    loop = running_loop()
    return loop_place(loop) if loop is not None else None


def current_place() -> Place | None:
    """The place whose callbacks this thread runs: a blocking helper's, a worker's, or the
    running loop's; None in plain code."""
    return _outer_place()


def subscriber_place(scheduler: abc.SchedulerBase | None = None) -> Place:
    """The place a new subscription belongs to: the one its subscribe scheduler names (set by
    a pipeline or a blocking helper), else the running loop's, else a new worker - also inside
    another subscriber's callback on a worker, which may block waiting for this one."""
    if isinstance(scheduler, PlaceScheduler):
        return scheduler.place
    loop = running_loop()
    if loop is not None:
        return loop_place(loop)
    return WorkerPlace()


# --- the delivery in progress: backpressure of a callback that blocks -------------------------


class Delivery:
    """What a place is delivering now: a blocking helper started inside it releases ``hold``
    at once, so the stream is not held back by a callback that waits for that same stream."""

    __slots__ = ("hold",)

    def __init__(self) -> None:
        self.hold: Callable[[], None] | None = None


_delivery: ContextVar[Delivery | None] = ContextVar("rxllm_delivery", default=None)


@contextlib.contextmanager
def delivering(place: Place, owner: object, delivery: Delivery) -> Iterator[None]:
    """Mark ``owner``'s callbacks as running on ``place`` (see ``Place.busy``)."""
    token = _delivery.set(delivery)
    place.busy.add(owner)
    try:
        yield
    finally:
        place.busy.discard(owner)
        _delivery.reset(token)


def release_hold() -> None:
    delivery = _delivery.get()
    if delivery is not None and delivery.hold is not None:
        hold, delivery.hold = delivery.hold, None
        hold()


# --- which streams a blocking helper waits on -------------------------------------------------

_recorder: ContextVar[list[Any] | None] = ContextVar("rxllm_recorder", default=None)


def record(stream: Any) -> None:
    """Called by a stream as it is subscribed: tells a recording helper it depends on it."""
    streams = _recorder.get()
    if streams is not None:
        streams.append(stream)


@contextlib.contextmanager
def recording() -> Iterator[list[Any]]:
    """The streams subscribed (synchronously) inside the ``with`` block."""
    streams: list[Any] = []
    token = _recorder.set(streams)
    try:
        yield streams
    finally:
        _recorder.reset(token)


# --- a reactivex scheduler on a place ---------------------------------------------------------


class PlaceScheduler(PeriodicScheduler):
    """Schedules reactivex work and timers on a :class:`Place`. Passed as the subscribe
    scheduler by pipelines, it also tells the stream at the root where the subscriber lives."""

    def __init__(self, place: Place) -> None:
        super().__init__()
        self.place = place

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(time.time())

    def schedule(
        self, action: typing.ScheduledAction[_TState], state: _TState | None = None
    ) -> abc.DisposableBase:
        return self.schedule_relative(0.0, action, state)

    def schedule_relative(
        self,
        duetime: typing.RelativeTime,
        action: typing.ScheduledAction[_TState],
        state: _TState | None = None,
    ) -> abc.DisposableBase:
        seconds = self.to_seconds(duetime)
        inner = SingleAssignmentDisposable()
        cancelled = False

        def run() -> None:
            if not cancelled:
                inner.disposable = self.invoke_action(action, state=state)

        timer = self.place.call_later(seconds, run) if seconds > 0 else None
        if timer is None:
            self.place.post(run)

        def cancel() -> None:
            nonlocal cancelled
            cancelled = True
            if timer is not None:
                timer.cancel()

        return CompositeDisposable(inner, Disposable(cancel))

    def schedule_absolute(
        self,
        duetime: typing.AbsoluteTime,
        action: typing.ScheduledAction[_TState],
        state: _TState | None = None,
    ) -> abc.DisposableBase:
        return self.schedule_relative(self.to_datetime(duetime) - self.now, action, state)


# --- interpreter exit -------------------------------------------------------------------------

_exit_condition = threading.Condition()
_exit_interrupt_hooks: list[Callable[[], None]] = []


def on_exit_interrupt(hook: Callable[[], None]) -> None:
    """Run ``hook`` when Ctrl-C ends the wait for live subscribers at exit."""
    _exit_interrupt_hooks.append(hook)


def _register_worker(worker: WorkerPlace) -> None:
    with _workers_lock:
        _workers.add(worker)
        if _exit_hook:
            return
        _exit_hook.append(True)
    register = getattr(threading, "_register_atexit", None)
    try:
        if register is None:
            raise RuntimeError
        register(_wait_for_workers)  # before non-daemon threads are joined, like our workers
    except RuntimeError:
        import atexit

        atexit.register(_wait_for_workers)


def _wait_for_workers() -> None:
    """At exit: wait until every worker's subscriptions have ended; Ctrl-C cancels them."""
    try:
        with _exit_condition:
            while True:
                with _workers_lock:
                    alive = any(not worker.dead for worker in _workers)
                if not alive:
                    return
                _exit_condition.wait(0.5)
    except KeyboardInterrupt:
        for hook in _exit_interrupt_hooks:
            with contextlib.suppress(Exception):
                hook()
        with _workers_lock:
            workers = list(_workers)
        for worker in workers:
            worker._close()
            worker._wake()
