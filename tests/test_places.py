"""docs/contracts.md, 5: callbacks run where the subscriber lives, one stream never starves another, and
exits, interrupts, forks and closed loops end cleanly. Script-level behaviour (exit, Ctrl-C,
fork) runs in subprocesses with timeouts."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from reactivex import operators as rx_ops

import rxllm
from rxllm import errors, ops
from rxllm.streaming import collect, collect_sync, iterate

from .server import ReplayServer

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [{"role": "user", "content": "count"}]


def mock(answer: str = "one two three four", **options: object) -> rxllm.ChatStream:
    return rxllm.completion(
        "mock", "m", messages=MESSAGES, stream=True, mock_response=answer, **options
    )  # type: ignore[call-overload, no-any-return]


def run_script(code: str, timeout: float = 30, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


# --- isolation ------------------------------------------------------------------------------------


def test_a_slow_callback_holds_back_only_its_own_stream() -> None:
    release = threading.Event()
    slow_started = threading.Event()

    def slow(_: object) -> None:
        slow_started.set()
        release.wait(2.0)  # a callback that blocks for 2 s (or until the test lets it go)

    x = mock("a b c d")
    x.subscribe(slow)
    assert slow_started.wait(10)

    arrivals: list[float] = []
    y_done = threading.Event()
    y_errors: list[Exception] = []
    y = mock(" ".join(f"w{i}" for i in range(12)), mock_delay=0.05)
    y.pipe(ops.timeout(idle=1.0)).subscribe(
        lambda _: arrivals.append(time.monotonic()),
        lambda e: (y_errors.append(e), y_done.set()),
        y_done.set,
    )
    assert y_done.wait(10)
    still_blocked = not release.is_set()
    release.set()
    assert y_errors == []
    assert still_blocked, "stream Y had to wait for X's callback"
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert max(gaps) < 0.05 + 0.05, gaps  # chunks every 50 ms, each within 50 ms of time
    assert x.pipe(ops.collect()).run().text == "a b c d"


def test_plain_code_subscribers_get_a_thread_each_not_the_io_loop() -> None:
    threads: dict[str, set[str]] = {"a": set(), "b": set()}
    done = [threading.Event(), threading.Event()]
    for name, event in zip(threads, done, strict=False):
        mock().subscribe(
            lambda _, n=name: threads[n].add(threading.current_thread().name),
            on_completed=event.set,
        )
    assert all(event.wait(10) for event in done)
    assert threads["a"] == threads["b"] == {"rxllm-callbacks"}


async def test_a_stream_on_another_loop_calls_back_on_this_loop() -> None:
    chat = mock()
    collect_sync(chat)  # runs (and ends) on rxllm's background loop
    live = mock(mock_delay=0.01)
    live.bind(rxllm._loop.background_loop())
    here = threading.current_thread().name
    seen: set[str] = set()
    response = await live.pipe(
        rx_ops.do_action(lambda _: seen.add(threading.current_thread().name)), ops.collect()
    )
    assert response.text == "one two three four"
    assert seen == {here}
    assert (await collect(chat)).text == "one two three four"


# --- exceptions in callbacks ------------------------------------------------------------------


def test_any_exception_in_a_callback_ends_that_subscriber_alone() -> None:
    chat = mock(mock_delay=0.01)
    failures: list[Exception] = []
    ended = threading.Event()

    def exits(_: object) -> None:
        sys.exit(3)

    chat.subscribe(exits, lambda e: (failures.append(e), ended.set()))
    response = collect_sync(chat, timeout=10)
    assert response.text == "one two three four"
    assert ended.wait(10)
    (failure,) = failures
    assert isinstance(failure, errors.LLMError) and "SystemExit" in str(failure)
    assert collect_sync(mock(), timeout=10).text == "one two three four"  # the loop goes on


async def test_base_exception_in_a_loop_callback_ends_that_subscriber_alone() -> None:
    chat = mock(mock_delay=0.01)
    failures: list[Exception] = []

    def exits(_: object) -> None:
        raise SystemExit(3)

    chat.subscribe(exits, failures.append)
    assert (await collect(chat)).text == "one two three four"
    assert len(failures) == 1 and "SystemExit" in str(failures[0])


# --- time -----------------------------------------------------------------------------------------


def test_timeout_idle_bound_applies_after_a_generous_first_token() -> None:
    # First chunk at once, then 3 s between chunks: idle=0.3 must fire after ~0.3 s, not 5 s.
    chat = mock("one two three", mock_delay=(0.0, 3.0))
    started = time.monotonic()
    with pytest.raises(errors.APITimeoutError, match=r"no chunk for 0\.3 s"):
        collect_sync(chat.pipe(ops.timeout(first_token=5, idle=0.3)), timeout=10)
    assert time.monotonic() - started < 2.5


def test_reactivex_time_operators_run_on_the_subscribers_thread_in_plain_code() -> None:
    names: set[str] = set()
    done = threading.Event()
    before = {t.ident for t in threading.enumerate()}
    mock(mock_delay=0.01).pipe(
        ops.extract_content(),
        rx_ops.buffer_with_time(0.02),
        rx_ops.debounce(0.005),
        rx_ops.timeout(5),
    ).subscribe(lambda _: names.add(threading.current_thread().name), on_completed=done.set)
    assert done.wait(10)
    assert names == {"rxllm-callbacks"}
    strays = [
        t.name
        for t in threading.enumerate()
        if t.ident not in before and t.name not in ("rxllm-callbacks", "rxllm-loop")
    ]
    assert strays == []


async def test_reactivex_time_operators_run_on_the_running_loop() -> None:
    here = threading.current_thread().name
    names: set[str] = set()
    windows = await mock(mock_delay=0.01).pipe(
        ops.extract_content(),
        rx_ops.buffer_with_time(0.02),
        rx_ops.do_action(lambda _: names.add(threading.current_thread().name)),
        rx_ops.to_list(),
    )
    assert "".join("".join(w) for w in windows) == "one two three four"
    assert names == {here}


# --- loops that stopped or closed, and fork ---------------------------------------------------


def test_a_finished_stream_replays_after_its_loop_closed() -> None:
    async def run() -> rxllm.ChatStream:
        chat = mock()
        await collect(chat)
        return chat

    chat = asyncio.run(run())  # the loop it ran on is closed now
    assert collect_sync(chat, timeout=10).text == "one two three four"
    assert "".join(rxllm.streaming.extract_content(c) or "" for c in iterate(chat)) == (
        "one two three four"
    )
    assert chat.pipe(ops.collect()).run().text == "one two three four"


def test_a_stream_made_on_a_loop_that_stopped_runs_elsewhere() -> None:
    loop = asyncio.new_event_loop()
    try:
        chat = loop.run_until_complete(
            rxllm.acompletion("mock", "m", messages=MESSAGES, stream=True, mock_response="hi")
        )
    finally:
        loop.close()
    assert collect_sync(chat, timeout=10).text == "hi"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_replays_finished_streams_and_refuses_running_ones() -> None:
    done = run_script(
        """
        import os, sys, warnings
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads
        import rxllm
        from rxllm.streaming import collect_sync
        M = [{"role": "user", "content": "x"}]
        def mock(**o):
            return rxllm.completion("mock", "m", messages=M, stream=True, **o)
        finished = mock(mock_response="done before")
        collect_sync(finished)
        import threading
        running = mock(mock_response=" ".join(["w"] * 40), mock_delay=0.05)
        under_way = threading.Event()
        running.subscribe(lambda c: under_way.set())
        assert under_way.wait(10)
        pending = mock(mock_response="fresh in the child")
        pid = os.fork()
        if pid == 0:
            out = [collect_sync(finished, timeout=10).text]
            try:
                collect_sync(running, timeout=10)
            except rxllm.errors.StreamCancelledError as e:
                out.append("refused: fork" if "fork" in str(e) else str(e))
            out.append(collect_sync(pending, timeout=10).text)
            print("|".join(out), flush=True)
            os._exit(0)
        os.waitpid(pid, 0)
        """
    )
    assert done.stdout.strip() == "done before|refused: fork|fresh in the child", done.stderr


# --- exit and interrupt ------------------------------------------------------------------------


def test_a_script_that_subscribes_and_ends_still_gets_its_answer() -> None:
    done = run_script(
        """
        import rxllm
        from rxllm import ops
        stream = rxllm.completion("mock", "m", messages=[{"role": "user", "content": "x"}],
                                  stream=True, mock_response="all of it, word by word",
                                  mock_delay=0.02)
        stream.pipe(ops.extract_content()).subscribe(
            on_next=lambda text: print(text, end="", flush=True),
            on_error=lambda error: print("Error:", error),
            on_completed=lambda: print(),
        )
        """
    )
    assert done.stdout == "all of it, word by word\n"
    assert done.stderr == ""


def test_readme_quick_start_runs_as_a_script(server: ReplayServer) -> None:
    from .conftest import fixture_bytes
    from .test_guide import TEXT

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("\n## Quick start") :]
    code = section[section.index("```python\n") + 10 :]
    code = code[: code.index("```")]
    server.responder = lambda _: __import__("tests.server", fromlist=["Reply"]).Reply(
        body=fixture_bytes("openai/stream_text_usage.sse"), piece=200, delay=0.002
    )
    done = run_script(code, OPENAI_BASE_URL=server.base + "/v1")
    assert done.stdout == TEXT + "\n"
    assert done.stderr == ""


def test_ctrl_c_in_a_blocking_helper_cancels_the_request() -> None:
    done = run_script(
        """
        import asyncio, os, signal, threading
        import rxllm
        from reactivex import operators as rx_ops
        from rxllm.streaming import collect_sync
        chat = rxllm.completion("mock", "m", messages=[{"role": "user", "content": "x"}],
                                stream=True, mock_response=" ".join(["w"] * 500),
                                mock_delay=0.05)
        first = threading.Event()
        threading.Thread(
            target=lambda: first.wait(10) and os.kill(os.getpid(), signal.SIGINT), daemon=True
        ).start()
        try:
            collect_sync(chat.pipe(rx_ops.do_action(lambda _: first.set())))
        except KeyboardInterrupt:
            print("interrupted")
        rxllm._loop.run_sync(asyncio.sleep(0))  # after the disposal queued on the stream's loop
        print(chat.state)
        """
    )
    assert done.stdout.split() == ["interrupted", "cancelled"], done.stderr


# --- replay=False ----------------------------------------------------------------------------------


async def test_replay_off_serves_every_current_subscriber_and_refuses_late_ones() -> None:
    chat = rxllm.completion(
        "mock", "m", messages=MESSAGES, stream=True, mock_response="a b c d", replay=False
    )
    first, second = rxllm.streaming.consume(chat), rxllm.streaming.consume(chat)
    assert (await first).text == (await second).text == "a b c d"  # type: ignore[union-attr]
    assert len(list(chat._chunks)) == 0  # nothing kept
    with pytest.raises(errors.ReplayUnavailableError, match="replay=False"):
        await collect(chat)
    with pytest.raises(errors.ReplayUnavailableError, match="replay=False"):
        collect_sync(chat, timeout=10)


def test_replay_off_keeps_the_partial_answer_for_errors() -> None:
    chat = rxllm.completion(
        "mock",
        "m",
        messages=MESSAGES,
        stream=True,
        mock_response="a b c d",
        mock_error=503,
        mock_error_after=2,
        replay=False,
    )
    with pytest.raises(errors.ServiceUnavailableError) as caught:
        collect_sync(chat, timeout=10)
    assert caught.value.partial_text == "a b"


def test_a_running_stream_whose_loop_stopped_fails_at_once() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        chat = mock(" ".join(["w"] * 100), mock_delay=0.05)
        chat.bind(loop)
        first = threading.Event()
        chat.subscribe(lambda _: first.set())
        assert first.wait(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        started = time.monotonic()
        with pytest.raises(errors.StreamCancelledError, match="stopped or closed"):
            collect_sync(chat, timeout=10)
        assert time.monotonic() - started < 1
    finally:
        loop.call_soon(loop.stop)
        loop.run_forever()  # let the stream's task end, then close cleanly
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.run_until_complete(loop.shutdown_asyncgens())  # closes rxllm's session there
        loop.close()


def test_ctrl_c_at_exit_cancels_the_streams_it_waits_for() -> None:
    done = run_script(
        """
        import os, signal, threading
        import rxllm
        chat = rxllm.completion("mock", "m", messages=[{"role": "user", "content": "x"}],
                                stream=True, mock_response=" ".join(["w"] * 400),
                                mock_delay=0.05)
        first = threading.Event()
        chat.subscribe(lambda _: first.set())
        threading.Thread(
            target=lambda: first.wait(10) and os.kill(os.getpid(), signal.SIGINT), daemon=True
        ).start()
        print("end of script", flush=True)
        """,
        timeout=15,  # the whole answer would take 20 s
    )
    assert done.stdout == "end of script\n"
    assert "Traceback" not in done.stderr, done.stderr


def test_a_blocking_for_that_leaves_early_never_holds_back_the_other_subscribers() -> None:
    # The `for` leaves while a read is queued for it: that read is dropped with the iterator,
    # and the stream must not wait for it (the other subscriber would wait forever).
    chat = mock(" ".join(f"w{i}" for i in range(30)), mock_delay=0.01)
    seen = threading.Semaphore(0)
    other = rxllm.streaming.consume(chat, on_chunk=lambda _: seen.release())
    for _chunk in iterate(chat):
        # Once the other subscriber has two more reads, one is queued here, unread.
        assert seen.acquire(timeout=10) and seen.acquire(timeout=10)
        break
    assert other.wait(10) is not None


def test_a_subscriber_whose_loop_closed_never_holds_back_the_others() -> None:
    chat = mock(" ".join(f"w{i}" for i in range(40)), mock_delay=0.01)
    other = rxllm.streaming.consume(chat)  # plain code: the stream runs on the background loop

    async def subscribe_and_leave() -> None:
        chat.subscribe(lambda _: None)  # never disposed: its loop just closes

    asyncio.run(subscribe_and_leave())
    assert other.wait(15) is not None
