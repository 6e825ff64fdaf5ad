"""The background event loop that serves synchronous callers.

Inside asyncio, rxllm runs on the caller's loop. From plain synchronous code (scripts, threads,
a Jupyter cell that calls a blocking helper) it runs one daemon thread with its own loop; that
loop is started on first use, survives ``fork`` by being recreated in the child, and at
interpreter exit closes its HTTP sessions before it stops.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_thread: threading.Thread | None = None
_pid: int | None = None
_shutdown_hooks: list[Callable[[asyncio.AbstractEventLoop], Awaitable[None]]] = []


def running_loop() -> asyncio.AbstractEventLoop | None:
    """The loop running in this thread, if any."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def background_loop() -> asyncio.AbstractEventLoop:
    """The shared background loop, started on first use."""
    global _loop, _thread, _pid
    loop = _loop
    if loop is not None and _pid == os.getpid() and not loop.is_closed():
        return loop
    with _lock:
        if _loop is None or _pid != os.getpid() or _loop.is_closed():
            started = threading.Event()
            new_loop = asyncio.new_event_loop()

            def run() -> None:
                asyncio.set_event_loop(new_loop)
                new_loop.call_soon(started.set)
                try:
                    new_loop.run_forever()
                finally:
                    with contextlib.suppress(Exception):
                        new_loop.run_until_complete(new_loop.shutdown_asyncgens())
                    new_loop.close()

            thread = threading.Thread(target=run, name="rxllm-loop", daemon=True)
            thread.start()
            started.wait()
            if _pid is None:
                atexit.register(_shutdown)
            _loop, _thread, _pid = new_loop, thread, os.getpid()
        return _loop


def background_loop_if_started() -> asyncio.AbstractEventLoop | None:
    """The background loop if this process has started it, else None (never starts it)."""
    return _loop if _pid == os.getpid() else None


def on_background_thread() -> bool:
    return _thread is not None and threading.current_thread() is _thread


def add_shutdown_hook(hook: Callable[[asyncio.AbstractEventLoop], Awaitable[None]]) -> None:
    """Register a coroutine function run on the background loop before it stops."""
    _shutdown_hooks.append(hook)


def run_sync(coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
    """Run ``coro`` on the background loop and block this thread until it is done."""
    if on_background_thread():
        coro.close()
        raise RuntimeError(
            "a blocking rxllm call was made from a callback running on rxllm's own loop thread; "
            "use the async API (await ...) there instead"
        )
    future = asyncio.run_coroutine_threadsafe(coro, background_loop())
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise
    except BaseException:
        future.cancel()
        raise


def _shutdown() -> None:
    loop = _loop
    if loop is None or _pid != os.getpid() or loop.is_closed() or not loop.is_running():
        return

    async def finish() -> None:
        # Like asyncio.run: cancel what is still running (a stream still reading, a finished
        # one draining its connection), so no task is destroyed pending; then the hooks.
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        if others:
            await asyncio.wait(others, timeout=2)
        for hook in _shutdown_hooks:
            with contextlib.suppress(Exception):  # best effort at exit
                await hook(loop)

    with contextlib.suppress(Exception):  # best effort at exit
        asyncio.run_coroutine_threadsafe(finish(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    if _thread is not None:
        _thread.join(5)
