"""docs/contracts.md, 6: a subscriber slower than the server loses nothing, holds the server's
writes back, and memory stays bounded while it is behind."""

from __future__ import annotations

import asyncio
import json
import threading
import tracemalloc

import pytest

import rxllm
from rxllm import ops
from rxllm.streaming import iterate

from .conftest import API_KEY
from .server import ReplayServer, Reply, sse

CHUNKS = 1500
SIZE = 16 * 1024  # 24 MB of SSE: more than the kernel's socket buffers can absorb


def large_body() -> bytes:
    events = [
        json.dumps(
            {
                "id": "c",
                "choices": [{"index": 0, "delta": {"content": f"{i:06d}" + "x" * (SIZE - 6)}}],
            }
        )
        for i in range(CHUNKS)
    ]
    return sse(*events)


def chat(base: str) -> rxllm.ChatStream:
    return rxllm.completion(
        "openai",
        "gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        api_key=API_KEY,
        api_base=base,
    )


def wait_until_server_is_held_back(server: ReplayServer) -> int:
    """Wait until a write of the server waits for the client to read; the bytes written then."""
    assert server.write_blocked.wait(20), "the server was never held back"
    return server.written


async def test_slow_async_consumer_holds_the_server_back(
    server: ReplayServer, openai_base: str
) -> None:
    body = large_body()
    server.queue(Reply(body=body, piece=64 * 1024, report_blocking=True))
    received: list[str] = []
    tracemalloc.start()
    try:
        async for text in iterate(chat(openai_base).pipe(ops.extract_content())):
            received.append(text[:6])
            if len(received) == 10:  # now the consumer is busy for a long while
                before = tracemalloc.get_traced_memory()[0]
                stalled_at = await asyncio.to_thread(wait_until_server_is_held_back, server)
                growth = tracemalloc.get_traced_memory()[0] - before
                assert not server.completed.is_set(), "the server wrote everything: no backpressure"
                assert stalled_at < len(body) - 4 * 1024 * 1024
                assert growth < 4 * 1024 * 1024, f"memory grew by {growth} bytes while blocked"
    finally:
        tracemalloc.stop()
    assert received == [f"{i:06d}" for i in range(CHUNKS)]  # nothing lost, nothing reordered
    assert server.completed.wait(10)


def test_slow_sync_subscriber_holds_the_server_back(server: ReplayServer, openai_base: str) -> None:
    body = large_body()
    server.queue(Reply(body=body, piece=64 * 1024, report_blocking=True))
    release, blocked, done = threading.Event(), threading.Event(), threading.Event()
    received: list[str] = []

    def slow(text: str) -> None:
        received.append(text[:6])
        if len(received) == 10:
            blocked.set()
            release.wait(30)  # a subscriber that blocks, on the stream's own thread

    chat(openai_base).pipe(ops.extract_content()).subscribe(slow, on_completed=done.set)
    assert blocked.wait(10)
    stalled_at = wait_until_server_is_held_back(server)
    assert not server.completed.is_set() and stalled_at < len(body) - 4 * 1024 * 1024
    release.set()
    assert done.wait(30)
    assert received == [f"{i:06d}" for i in range(CHUNKS)]


async def test_slow_async_consumer_on_another_loop_holds_the_server_back(
    server: ReplayServer, openai_base: str
) -> None:
    # The I/O runs on rxllm's background loop, the consumer here: chunks cross threads one read
    # at a time, and the consumer's hold travels back with them.
    body = large_body()
    server.queue(Reply(body=body, piece=64 * 1024, report_blocking=True))
    stream = chat(openai_base)
    stream.bind(rxllm._loop.background_loop())
    received: list[str] = []
    tracemalloc.start()
    try:
        async for text in iterate(stream.pipe(ops.extract_content())):
            received.append(text[:6])
            if len(received) == 10:  # the consumer is busy for a long while
                before = tracemalloc.get_traced_memory()[0]
                stalled_at = await asyncio.to_thread(wait_until_server_is_held_back, server)
                # Held for good, not for a moment: in a second the server would send it all.
                assert not await asyncio.to_thread(server.completed.wait, 1.0)
                growth = tracemalloc.get_traced_memory()[0] - before
                assert not server.completed.is_set(), "the server wrote everything"
                assert stalled_at < len(body) - 4 * 1024 * 1024
                assert growth < 4 * 1024 * 1024, f"memory grew by {growth} bytes while blocked"
    finally:
        tracemalloc.stop()
    assert received == [f"{i:06d}" for i in range(CHUNKS)]
    assert server.completed.wait(10)


async def test_ready_takes_what_is_buffered_without_waiting() -> None:
    """``StreamIterator.ready()``: the items already in, at once; the end stays for the next
    wait to report."""
    import reactivex

    from rxllm._flow import StreamIterator

    chunks = StreamIterator(reactivex.of(1, 2, 3))
    assert await chunks.next_within(1.0) == 1  # subscribes: all three arrive at once
    assert chunks.ready() == [2, 3]
    assert chunks.ready() == []
    with pytest.raises(StopAsyncIteration):
        await chunks.next_within(1.0)
