"""One case of the thread/loop matrix (tests/test_matrix.py), run in a subprocess of its own:

    python -m tests.matrix_case SOURCE CONTEXT CONSUMER

SOURCE is how the stream comes to be, CONTEXT where it is first run and consumed, CONSUMER how.
Prints one JSON line: ``{"text": ...}`` with what the consumer got, or ``{"error": class name,
"seconds": time to the error}``. The parent's timeout is the watchdog: a hang is a failure.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from reactivex import operators as rx_ops

import rxllm
from rxllm import ops
from rxllm.router import Router
from rxllm.streaming import collect, collect_sync, consume, fan_out, iterate
from rxllm.types import ChatChunk, ChatResponse

ANSWER = "one two three four"
MOCK = {"mock_response": ANSWER, "mock_delay": 0.005}
MESSAGES = [{"role": "user", "content": "count"}]
EXPECTED = {
    "sync": ANSWER,
    "async": ANSWER,
    "router": ANSWER,
    "piped": ANSWER,
    "fan_out": ANSWER + ANSWER,
}


def _sync() -> Any:
    return rxllm.completion("mock", "m", messages=MESSAGES, stream=True, **MOCK)


def _async() -> Any:
    """``acompletion``: awaited on the running loop, else on a loop of its own that then stops
    (``run_until_complete``), so the stream is bound to a loop that no longer runs."""
    made = rxllm.acompletion("mock", "m", messages=MESSAGES, stream=True, **MOCK)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(made)
        finally:
            loop.close()
    # Inside a running loop a coroutine cannot be run synchronously: make it in a thread's
    # loop of its own, as a library handing a stream over would.
    box: list[Any] = []
    worker = threading.Thread(target=lambda: box.append(asyncio.run(made)))
    worker.start()
    worker.join(10)
    return box[0]


def _router() -> Any:
    router = Router()
    router.register("fast", provider="mock", model="m", **MOCK)
    return router.completion("fast", messages=MESSAGES, stream=True)


def _piped() -> Any:
    return _sync().pipe(ops.timeout(idle=10), rx_ops.map(lambda chunk: chunk))


def _fan_out() -> Any:
    return fan_out({"a": _sync(), "b": _sync()})


SOURCES: dict[str, Callable[[], Any]] = {
    "sync": _sync,
    "async": _async,
    "router": _router,
    "piped": _piped,
    "fan_out": _fan_out,
}


def _text(items: list[Any]) -> str:
    return "".join(rxllm.streaming.extract_content(item) or "" for item in items)


# --- consumers: each takes the stream and returns the text it saw ------------------------------


def callbacks(stream: Any) -> str:
    """Plain subscribe; wait for the end on an event (a loop is never blocked: see below)."""
    items: list[Any] = []
    ended = threading.Event()
    errors: list[Exception] = []

    def on_error(error: Exception) -> None:
        errors.append(error)
        ended.set()

    stream.subscribe(items.append, on_error, ended.set)
    if not ended.wait(15):
        raise TimeoutError("callbacks never ended")
    if errors:
        raise errors[0]
    return _text(items)


async def acallbacks(stream: Any) -> str:
    items: list[Any] = []
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_error(error: Exception) -> None:
        if not done.done():
            done.set_exception(error)

    def on_completed() -> None:
        if not done.done():
            done.set_result(None)

    stream.subscribe(items.append, on_error, on_completed)
    await asyncio.wait_for(done, 15)
    return _text(items)


def run(stream: Any) -> str:
    response = stream.pipe(ops.collect()).run()
    return str(response.text)


async def await_(stream: Any) -> str:
    response = await stream.pipe(ops.collect())
    return str(response.text)


async def collect_(stream: Any) -> str:
    return (await collect(stream)).text


def collect_sync_(stream: Any) -> str:
    return collect_sync(stream, timeout=15).text


def iterate_(stream: Any) -> str:
    return _text(list(iterate(stream)))


async def async_for(stream: Any) -> str:
    return _text([item async for item in iterate(stream)])


def consume_wait(stream: Any) -> str:
    response = consume(stream).wait(15)
    assert isinstance(response, ChatResponse)
    return response.text


SYNC_CONSUMERS: dict[str, Callable[[Any], str]] = {
    "callbacks": callbacks,
    "run": run,
    "collect_sync": collect_sync_,
    "iterate": iterate_,
    "consume_wait": consume_wait,
}
ASYNC_CONSUMERS: dict[str, Callable[[Any], Any]] = {
    "callbacks": acallbacks,
    "await": await_,
    "collect": collect_,
    "async_for": async_for,
}
CONSUMERS = sorted({*SYNC_CONSUMERS, *ASYNC_CONSUMERS})


def consume_here(consumer: str, make: Callable[[], Any]) -> str:
    """Make the stream and consume it in the current context: synchronously when the consumer
    is a blocking one (even inside a running loop, as a notebook cell does), else by awaiting
    it - on the running loop, or on a loop of its own from plain code."""
    if consumer in SYNC_CONSUMERS and not (consumer == "callbacks" and _in_loop()):
        return SYNC_CONSUMERS[consumer](make())
    if _in_loop():
        raise AssertionError("async consumers are awaited by the context itself")

    async def main() -> str:
        return str(await ASYNC_CONSUMERS[consumer](make()))

    return asyncio.run(main())


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


# --- contexts ----------------------------------------------------------------------------------


def plain(consumer: str, make: Callable[[], Any]) -> str:
    return consume_here(consumer, make)


def in_asyncio(consumer: str, make: Callable[[], Any]) -> str:
    """Inside ``asyncio.run``: an async consumer is awaited; a blocking one is called from the
    coroutine, as a Jupyter cell does."""

    async def main() -> str:
        if consumer in ASYNC_CONSUMERS:
            return str(await ASYNC_CONSUMERS[consumer](make()))
        return SYNC_CONSUMERS[consumer](make())

    return asyncio.run(main())


def second_loop(consumer: str, make: Callable[[], Any]) -> str:
    """A loop of its own in another thread (while the main thread waits)."""
    box: list[Any] = []

    def target() -> None:
        try:
            box.append(in_asyncio(consumer, make))
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(20)
    if not box:
        raise TimeoutError("the second loop's thread never finished")
    if isinstance(box[0], BaseException):
        raise box[0]
    return str(box[0])


def in_callback(consumer: str, make: Callable[[], Any]) -> str:
    """Inside the ``on_next`` of another stream subscribed from plain code."""
    box: list[Any] = []
    ended = threading.Event()

    def on_next(_: ChatChunk) -> None:
        if box:
            return
        try:
            box.append(consume_here(consumer, make))
        except BaseException as exc:
            box.append(exc)

    outer = rxllm.completion("mock", "m", messages=MESSAGES, stream=True, **MOCK)
    outer.subscribe(on_next, lambda _: ended.set(), ended.set)
    if not ended.wait(20):
        raise TimeoutError("the outer stream never ended")
    if isinstance(box[0], BaseException):
        raise box[0]
    return str(box[0])


def in_loop_callback(consumer: str, make: Callable[[], Any]) -> str:
    """Inside the ``on_next`` of a stream subscribed from asyncio (run on that loop)."""

    async def main() -> str:
        box: list[Any] = []
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_next(_: ChatChunk) -> None:
            if box:
                return
            try:
                if consumer in SYNC_CONSUMERS and consumer != "callbacks":
                    box.append(SYNC_CONSUMERS[consumer](make()))
                else:  # an async consumer is started from the callback as a task
                    task = asyncio.ensure_future(ASYNC_CONSUMERS[consumer](make()))
                    box.append(task)
            except BaseException as exc:
                box.append(exc)

        outer = rxllm.completion("mock", "m", messages=MESSAGES, stream=True, **MOCK)
        outer.subscribe(on_next, done.set_exception, lambda: done.set_result(None))
        await asyncio.wait_for(done, 20)
        result = box[0]
        if isinstance(result, asyncio.Future):
            result = await asyncio.wait_for(result, 20)
        if isinstance(result, BaseException):
            raise result
        return str(result)

    return asyncio.run(main())


CONTEXTS: dict[str, Callable[[str, Callable[[], Any]], str]] = {
    "plain": plain,
    "asyncio": in_asyncio,
    "second_loop": second_loop,
    "callback": in_callback,
    "loop_callback": in_loop_callback,
}


def main() -> None:
    source, context, consumer = sys.argv[1:4]
    started = time.monotonic()
    try:
        text = CONTEXTS[context](consumer, SOURCES[source])
    except Exception as exc:
        seconds = time.monotonic() - started
        print(
            json.dumps({"error": type(exc).__name__, "message": str(exc)[:300], "seconds": seconds})
        )
    else:
        print(json.dumps({"text": text}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
