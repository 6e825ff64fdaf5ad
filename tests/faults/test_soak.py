"""Soak: many streams started and disposed at random points (seeded), each shared by several
subscribers of three kinds - callbacks on the stream's loop, ``async for`` on an asyncio loop,
blocking ``for`` in worker threads - while the server answers, drops, stalls, fails or gzips.

Afterwards the process's own counters must show nothing left behind: no asyncio task, no
connection handed out, no stream object alive, client sockets only as idle pooled connections
(none once the sessions are closed), no more file descriptors than before, and memory (traced
by ``tracemalloc``, plus RSS) grown by less than a bound between the warm-up and the end.

``RXLLM_SOAK_STREAMS`` sets the count (10,000 in CI), ``RXLLM_SOAK_SEED`` the random seed. The figures
are printed at the end of the test session.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import os
import random
import threading
import time
import tracemalloc
import weakref
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import pytest

import rxllm
from rxllm import _loop, errors
from rxllm.streaming import iterate
from rxllm.transport import session as sessions

from ..conftest import API_KEY
from ..server import Recorded, Reply
from . import figures, probe
from .cases import OPENAI
from .server import FaultServer

pytestmark = pytest.mark.slow

STREAMS = int(os.environ.get("RXLLM_SOAK_STREAMS", "10000"))
SEED = int(os.environ.get("RXLLM_SOAK_SEED", "1806"))
CONCURRENCY = 48  # streams in flight at once
WORKERS = 4  # threads running blocking `for` loops
#: Traced memory allowed to grow over the second half of the run: less than 500 bytes a stream
#: (at 10,000), or some 50 whole streams (~40 KB each, with their chunks) of 4,500. The fault
#: server shares the process, and its stalled handlers linger a few milliseconds.
MEMORY_BOUND = 2 << 20
#: Resident memory may grow while the allocator finds its working size, but not on and on: the
#: second half of the run may add at most this much.
RSS_BOUND = 16 << 20

BODY = OPENAI.transcript.body
CHUNKS = BODY.count(b"data: {")


@dataclass(frozen=True)
class Plan:
    """One stream: what the server does, and the subscribers (kind, chunks before leaving;
    None: stay to the end)."""

    server: str
    at: int
    background: bool  # the stream runs on rxllm's background loop (else on the test's loop)
    subscribers: tuple[tuple[str, int | None, int], ...]  # (kind, leave after, yields first)

    @property
    def timeout(self) -> float:
        return 0.25 if self.server == "stall" else 10.0


def make_plans(count: int, seed: int) -> list[Plan]:
    rng = random.Random(seed)
    plans = []
    for _ in range(count):
        server = rng.choices(["ok", "gzip", "drop", "error", "stall"], weights=[60, 10, 15, 10, 5])[
            0
        ]
        subscribers = tuple(
            (
                rng.choice(["callback", "async_for", "thread_for"]),
                None if rng.random() < 0.4 else rng.randrange(0, CHUNKS + 2),
                rng.randrange(0, 4),
            )
            for _ in range(rng.randint(1, 4))
        )
        at = rng.randrange(1, len(BODY))
        plans.append(Plan(server, at, rng.random() < 0.5, subscribers))
    return plans


def respond(recorded: Recorded) -> Reply:
    """The server side of a plan, named in the request's ``X-Soak`` header."""
    server, at = recorded.headers["X-Soak"].split(":")
    if server == "ok":
        return Reply(body=BODY, piece=1024)
    if server == "gzip":
        return Reply(body=BODY, piece=2048, gzip=True)
    if server == "drop":
        return Reply(body=BODY, piece=1024, drop_after=int(at))
    if server == "stall":
        return Reply(body=BODY, piece=1024, stall_after=int(at))
    return Reply(
        status=503, body=b'{"error":{"message":"overloaded"}}', content_type="application/json"
    )


# --- the subscribers ---------------------------------------------------------------------------


def _callback(chat: rxllm.ChatStream, leave: int | None) -> concurrent.futures.Future[str]:
    """Callbacks on the stream's loop; it disposes itself from inside ``on_next``."""
    done: concurrent.futures.Future[str] = concurrent.futures.Future()
    seen = 0
    subscription: list[Any] = []
    leaving = False

    def settle(outcome: str) -> None:
        if not done.done():
            done.set_result(outcome)

    def on_next(_: Any) -> None:
        nonlocal seen, leaving
        seen += 1
        if leave is not None and seen >= leave and not leaving:
            leaving = True
            if subscription:
                subscription[0].dispose()
            settle("disposed")

    def on_error(error: Exception) -> None:
        settle(f"error:{type(error).__name__}" if isinstance(error, errors.LLMError) else "BUG")

    def on_completed() -> None:
        settle("completed" if seen == CHUNKS else f"short:{seen}")

    if leave == 0:  # in and out at once (an error it might hear is dropped, not raised)
        chat.subscribe(on_error=lambda _: None).dispose()
        settle("disposed")
        return done
    subscription.append(chat.subscribe(on_next, on_error, on_completed))
    if leaving:  # it left during the replay, before subscribe() returned
        subscription[0].dispose()
    return done


async def _async_for(chat: rxllm.ChatStream, leave: int | None) -> str:
    seen = 0
    try:
        async for _ in iterate(chat, max_buffered=8):
            if leave is not None and seen >= leave:
                return "disposed"
            seen += 1
    except errors.LLMError as error:
        return f"error:{type(error).__name__}"
    return "completed" if seen == CHUNKS else f"short:{seen}"


def _thread_for(chat: rxllm.ChatStream, leave: int | None) -> str:
    seen = 0
    try:
        with iterate(chat, max_buffered=8) as chunks:
            for _ in chunks:
                if leave is not None and seen >= leave:
                    return "disposed"
                seen += 1
    except errors.LLMError as error:
        return f"error:{type(error).__name__}"
    return "completed" if seen == CHUNKS else f"short:{seen}"


async def _ended(task: asyncio.Task[None] | None) -> None:
    if task is None or task.done():
        return
    if task.get_loop() is asyncio.get_running_loop():
        await asyncio.wait([task])
    else:
        waiting = asyncio.run_coroutine_threadsafe(asyncio.wait([task]), task.get_loop())
        await asyncio.wrap_future(waiting)


# --- the run -----------------------------------------------------------------------------------


class Progress:
    """A line each tenth of the streams, so a human watching ``make test`` sees the soak (some
    minutes, one test) is alive; ten lines keep CI logs short."""

    def __init__(self, total: int, write: Callable[[str], None]) -> None:
        self.total = total
        self.write = write
        self.done = 0
        self.started = time.perf_counter()
        self.tenths = 0  # reported so far

    def one_done(self) -> None:
        self.done += 1
        tenths = self.done * 10 // self.total
        if tenths > self.tenths:
            self.tenths = tenths
            elapsed = time.perf_counter() - self.started
            self.write(
                f"soak: {self.done}/{self.total} streams "
                f"({100 * self.done // self.total}%) in {elapsed:.0f} s"
            )


def terminal_writer(config: pytest.Config) -> Callable[[str], None]:
    """Write a line on pytest's terminal from inside a test (whose output is captured)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    def write(line: str) -> None:
        if reporter is None:
            return
        with capture.global_and_fixture_disabled() if capture is not None else nullcontext():
            reporter.ensure_newline()
            reporter.write_line(line)

    return write


class Soak:
    def __init__(
        self,
        server: FaultServer,
        pool: concurrent.futures.ThreadPoolExecutor,
        progress: Progress | None = None,
    ) -> None:
        self.base = server.base + "/v1"
        self.pool = pool
        self.alive: weakref.WeakSet[rxllm.ChatStream] = weakref.WeakSet()
        self.outcomes: Counter[str] = Counter()
        self.progress = progress

    def stream(self, plan: Plan) -> rxllm.ChatStream:
        chat = rxllm.completion(
            "openai",
            "gpt-4o",
            messages=[{"role": "user", "content": "soak"}],
            stream=True,
            api_key=API_KEY,
            api_base=self.base,
            timeout=plan.timeout,
            extra_headers={"X-Soak": f"{plan.server}:{plan.at}"},
        )
        chat.bind(_loop.background_loop() if plan.background else asyncio.get_running_loop())
        self.alive.add(chat)
        return chat

    async def one(self, plan: Plan) -> None:
        chat = self.stream(plan)
        loop = asyncio.get_running_loop()

        async def subscriber(kind: str, leave: int | None, yields: int) -> str:
            for _ in range(yields):  # join a little later than the others
                await asyncio.sleep(0)
            if kind == "callback":
                return await asyncio.wrap_future(_callback(chat, leave))
            if kind == "async_for":
                return await _async_for(chat, leave)
            return await loop.run_in_executor(self.pool, _thread_for, chat, leave)

        results = await asyncio.gather(*(subscriber(*s) for s in plan.subscribers))
        self.outcomes.update(results)
        await _ended(chat._task)  # the request itself ends too (closing, draining)
        if plan.server in ("ok", "gzip"):  # a healthy stream ends only by leaving, or because
            # every subscriber had left (then a late one hears that it was cancelled)
            allowed = {"completed", "disposed"}
            if chat.state == "cancelled":
                allowed.add("error:StreamCancelledError")
            assert set(results) <= allowed, (results, chat.state)

    async def run(self, plans: list[Plan]) -> None:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def guarded(plan: Plan) -> None:
            async with gate:
                await self.one(plan)
            if self.progress is not None:
                self.progress.one_done()

        await asyncio.gather(*(guarded(plan) for plan in plans))


def rss() -> int:
    """Resident memory, less what tracemalloc itself holds (its traces grow with the heap)."""
    with open("/proc/self/statm") as f:
        resident = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return resident - tracemalloc.get_tracemalloc_memory()


@dataclass(frozen=True)
class Mark:
    traced: int
    rss: int
    tasks: int
    threads: int


async def mark() -> Mark:
    gc.collect()
    return Mark(
        tracemalloc.get_traced_memory()[0],
        rss(),
        len(asyncio.all_tasks()),
        threading.active_count(),
    )


@pytest.mark.timeout(600)
def test_soak(_faults: FaultServer, pytestconfig: pytest.Config) -> None:
    server = _faults
    server.reset()
    server.responder = respond
    server.record = False
    plans = make_plans(STREAMS, SEED)
    tenth = max(1, len(plans) // 10)
    middle = (len(plans) + tenth) // 2
    warmup, first, second = plans[:tenth], plans[tenth:middle], plans[middle:]
    _loop.background_loop()  # started before counting: its self-pipe holds descriptors
    fds_before = probe.open_fds()
    tracemalloc.start()
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(WORKERS, thread_name_prefix="soak") as pool:
        soak = Soak(server, pool, Progress(len(plans), terminal_writer(pytestconfig)))

        async def main() -> tuple[list[Mark], probe.Snapshot, probe.Snapshot]:
            marks = []
            for part in (warmup, first, second):
                await soak.run(part)
                marks.append(await mark())
            mine = await probe.asnapshot(server.port)
            background = probe.snapshot(server.port)
            await sessions.close_session()
            return marks, mine, background

        (warm, half, end), mine, background = asyncio.run(main())
    elapsed = time.perf_counter() - started
    tracemalloc.stop()
    probe.close_background_session()
    gc.collect()
    sockets_after = probe.client_sockets(server.port)
    alive = len(soak.alive)
    fds_after = probe.open_fds()
    server.reset()

    # Two halves of equal size, so that what the driver itself keeps of a part until the next
    # one (its gather's bookkeeping) weighs the same at both marks.
    traced_growth = end.traced - half.traced
    rss_first, rss_second = half.rss - warm.rss, end.rss - half.rss
    total = sum(soak.outcomes.values())
    figures.record(
        "soak",
        f"{len(plans)} streams, {total} subscribers (seed {SEED}) in {elapsed:.1f} s; "
        f"outcomes {dict(sorted(soak.outcomes.items()))}; after: {sockets_after} open sockets, "
        f"{mine.tasks} + {background.tasks} tasks, {mine.acquired + background.acquired} "
        f"connections in use, {alive} streams alive, fds {fds_before} -> {fds_after}; traced "
        f"memory {traced_growth / 1024:+.0f} KiB over the second half ({len(second)} streams); RSS "
        f"{rss_first / 2**20:+.1f} MiB over the first half, {rss_second / 2**20:+.1f} MiB over "
        "the second",
    )
    assert server.count <= len(plans)  # one request per stream at most, however many listened
    assert not any(k.startswith(("BUG", "short")) for k in soak.outcomes), soak.outcomes
    assert (mine.tasks, background.tasks) == (0, 0)
    assert warm.tasks == half.tasks == end.tasks == 1
    assert (mine.acquired, background.acquired) == (0, 0)
    assert mine.sockets == mine.idle  # (idle: pooled in either loop's session)
    assert sockets_after == 0
    assert alive == 0
    assert fds_after <= fds_before
    assert end.threads <= warm.threads
    assert traced_growth < MEMORY_BOUND
    assert rss_second < RSS_BOUND


def test_progress_says_each_tenth_of_the_run() -> None:
    lines: list[str] = []
    progress = Progress(25, lines.append)
    for _ in range(25):
        progress.one_done()
    assert [line.split(" in ")[0] for line in lines] == [
        f"soak: {n}/25 streams ({4 * n}%)" for n in (3, 5, 8, 10, 13, 15, 18, 20, 23, 25)
    ]
