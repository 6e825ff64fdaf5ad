"""docs/contracts.md, 2-5 and 8, on a real loopback connection: hot, shared, lazy, replaying
streams; real cancellation; honest termination; threads and loops; secrets kept out."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time
import traceback

import pytest

import rxllm
from rxllm import errors, ops
from rxllm.streaming import collect_sync, consume

from .conftest import API_KEY, FIXTURES, fixture_bytes
from .server import ReplayServer, Reply, sse

MESSAGES = [{"role": "user", "content": "hi"}]
TRANSCRIPT = "openai/stream_text_usage.sse"


def stream(base: str, **kwargs: object) -> rxllm.ChatStream:
    return rxllm.completion(
        "openai",
        "gpt-4o",
        messages=MESSAGES,
        stream=True,
        api_key=API_KEY,
        api_base=base,
        **kwargs,  # type: ignore[arg-type]
    )


class Recorder:
    """A thread-safe observer that records everything and signals its end."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.items: list[rxllm.ChatChunk] = []
        self.errors: list[Exception] = []
        self.completed = 0
        self.ended = threading.Event()
        self.first = threading.Event()
        self.threads: set[str] = set()
        self.n = threading.Event()
        self._stop_after = stop_after

    def on_next(self, chunk: rxllm.ChatChunk) -> None:
        self.threads.add(threading.current_thread().name)
        self.items.append(chunk)
        self.first.set()
        if self._stop_after is not None and len(self.items) >= self._stop_after:
            self.n.set()

    def on_error(self, error: Exception) -> None:
        self.errors.append(error)
        self.ended.set()

    def on_completed(self) -> None:
        self.completed += 1
        self.ended.set()

    def wait(self, timeout: float = 10) -> Recorder:
        assert self.ended.wait(timeout), "the stream did not end in time"
        return self


def expected_chunk_count() -> int:
    return fixture_bytes(TRANSCRIPT).count(b"data: {")


# --- docs/contracts.md, 2: lazy, shared, replaying ------------------------------------------------


def test_bad_arguments_raise_before_any_stream_exists(
    openai_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(errors.ConfigurationError, match="unknown provider 'nope'"):
        rxllm.completion("nope", "m", messages=MESSAGES, stream=True)
    with pytest.raises(errors.BadRequestError, match="messages is empty"):
        rxllm.completion("openai", "gpt-4o", messages=[], stream=True, api_key=API_KEY)
    with pytest.raises(errors.BadRequestError, match=r"messages\[0\]"):
        rxllm.completion("openai", "gpt-4o", messages=[{"content": "no role"}], api_key=API_KEY)
    with pytest.raises(errors.UnsupportedParamsError, match="temprature"):
        rxllm.completion("openai", "gpt-4o", messages=MESSAGES, temprature=1, api_key=API_KEY)
    with pytest.raises(errors.ConfigurationError, match="cannot tell the provider"):
        rxllm.completion(model="my-own-model", messages=MESSAGES)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(errors.ConfigurationError, match="OPENAI_API_KEY"):
        rxllm.completion("openai", "gpt-4o", messages=MESSAGES, stream=True)


def test_key_from_environment_and_drop_params(
    server: ReplayServer, openai_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    server.queue(Reply(body=fixture_bytes(TRANSCRIPT)))
    chat = rxllm.completion(
        "openai/gpt-4o",
        messages=MESSAGES,
        stream=True,
        api_base=openai_base,
        drop_params=True,
        temprature=1,
    )
    collect_sync(chat, timeout=10)
    (request,) = server.requests
    assert request.headers["Authorization"] == "Bearer sk-from-env"
    assert "temprature" not in request.json()


def test_lazy_no_request_until_subscribed(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=fixture_bytes(TRANSCRIPT)))
    chat = stream(openai_base)
    assert chat.state == "pending" and chat.loop is None  # nothing scheduled anywhere
    assert server.requests == []
    recorder = Recorder()
    chat.subscribe(recorder)
    recorder.wait()
    assert len(server.requests) == 1


def test_two_subscribers_one_request_same_chunks(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=fixture_bytes(TRANSCRIPT), piece=200, delay=0.002))
    chat = stream(openai_base)
    a, b = Recorder(), Recorder()
    chat.subscribe(a)
    chat.subscribe(b)
    a.wait(), b.wait()
    assert len(server.requests) == 1
    assert a.items == b.items and len(a.items) == expected_chunk_count()
    assert a.completed == b.completed == 1 and not a.errors


def test_late_subscriber_gets_replay_then_live(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=fixture_bytes(TRANSCRIPT), piece=300, delay=0.01))
    chat = stream(openai_base)
    early = Recorder(stop_after=3)
    chat.subscribe(early)
    assert early.n.wait(10)
    late = Recorder()
    chat.subscribe(late)
    early.wait(), late.wait()
    assert len(server.requests) == 1
    assert [c.choices for c in late.items] == [c.choices for c in early.items]
    assert late.items == early.items


def test_subscriber_after_the_end_gets_full_replay_without_new_request(
    server: ReplayServer, openai_base: str
) -> None:
    server.queue(Reply(body=fixture_bytes(TRANSCRIPT)))
    chat = stream(openai_base)
    first = collect_sync(chat, timeout=10)
    again = Recorder()
    chat.subscribe(again)
    again.wait()
    assert len(server.requests) == 1
    assert again.completed == 1 and len(again.items) == expected_chunk_count()
    assert collect_sync(chat, timeout=10) == first


def test_failed_stream_replays_the_same_error(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(status=500, body=b'{"error":{"message":"boom"}}'))
    chat = stream(openai_base)
    a = Recorder()
    chat.subscribe(a)
    a.wait()
    b = Recorder()
    chat.subscribe(b)
    b.wait()
    assert a.errors[0] is b.errors[0]
    assert isinstance(a.errors[0], errors.InternalServerError)
    assert len(server.requests) == 1


def test_raising_a_replayed_error_again_and_again_keeps_its_traceback_short(
    server: ReplayServer, openai_base: str
) -> None:
    server.queue(Reply(status=500, body=b'{"error":{"message":"boom"}}'))
    chat = stream(openai_base)
    lengths = set()
    for _ in range(5):
        with pytest.raises(errors.InternalServerError) as caught:
            collect_sync(chat, timeout=10)
        lengths.add(len(traceback.format_exception(caught.value)))
    assert len(lengths) == 1 and len(server.requests) == 1


# --- docs/contracts.md, 3: cancellation is real ---------------------------------------------------


def slow_body() -> bytes:
    body = sse(
        *[
            f'{{"id":"c","choices":[{{"index":0,"delta":{{"content":"w{i} "}}}}]}}'
            for i in range(400)
        ]
    )
    return body


def test_dispose_closes_the_connection(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=slow_body(), piece=60, delay=0.01))
    chat = stream(openai_base)
    recorder = Recorder()
    subscription = chat.subscribe(recorder)
    assert recorder.first.wait(10)
    subscription.dispose()
    assert server.disconnected.wait(10), "the server never saw the client leave"
    assert not server.completed.is_set()
    late = Recorder()
    chat.subscribe(late)
    late.wait()
    assert chat.state == "cancelled"
    assert isinstance(late.errors[0], errors.StreamCancelledError)
    assert late.errors[0].partial_text.startswith("w0 ")
    assert not recorder.ended.is_set()  # a disposed subscriber hears nothing more


def test_one_of_two_disposing_keeps_the_stream(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=slow_body(), piece=2000, delay=0.005))
    chat = stream(openai_base)
    leaving, staying = Recorder(), Recorder()
    subscription = chat.subscribe(leaving)
    chat.subscribe(staying)
    assert leaving.first.wait(10)
    subscription.dispose()
    staying.wait()
    assert staying.completed == 1 and len(staying.items) == 400
    assert server.completed.wait(10) and not server.disconnected.is_set()


async def test_take_disposes_upstream_inside_asyncio(
    server: ReplayServer, openai_base: str
) -> None:
    from reactivex import operators as rx_ops

    server.queue(Reply(body=slow_body(), piece=60, delay=0.01))
    chat = stream(openai_base)
    texts = await chat.pipe(ops.extract_content(), rx_ops.take(3), rx_ops.to_list())
    assert texts == ["w0 ", "w1 ", "w2 "]
    assert await asyncio.to_thread(server.disconnected.wait, 10)


# --- docs/contracts.md, 4: honest termination -----------------------------------------------------


def test_drop_before_done_is_an_error_with_partial_text(
    server: ReplayServer, openai_base: str
) -> None:
    body = fixture_bytes(TRANSCRIPT)
    server.queue(Reply(body=body, drop_after=body.index(b" weather"), piece=100))
    recorder = Recorder()
    stream(openai_base).subscribe(recorder)
    recorder.wait()
    assert recorder.completed == 0
    (error,) = recorder.errors
    assert isinstance(error, errors.StreamTruncatedError)
    assert error.partial_text == "I'm unable to provide real-time"
    assert (error.provider, error.model) == ("openai", "gpt-4o")


def test_clean_close_without_done_is_truncation(server: ReplayServer, openai_base: str) -> None:
    body = fixture_bytes(TRANSCRIPT)
    server.queue(Reply(body=body[: body.index(b"data: [DONE]")]))
    with pytest.raises(errors.StreamTruncatedError) as caught:
        collect_sync(stream(openai_base), timeout=10)
    assert caught.value.partial_text.endswith("weather app.")


def test_stall_hits_the_timeout(server: ReplayServer, openai_base: str) -> None:
    body = fixture_bytes(TRANSCRIPT)
    server.queue(Reply(body=body, stall_after=body.index(b" weather")))
    with pytest.raises(errors.APITimeoutError) as caught:
        collect_sync(stream(openai_base, timeout=0.3), timeout=10)
    assert caught.value.partial_text == "I'm unable to provide real-time"
    assert server.disconnected.wait(10)


def test_connection_refused_is_a_connection_error() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(errors.APIConnectionError, match="could not reach"):
        collect_sync(stream(f"http://127.0.0.1:{port}/v1"), timeout=10)


def test_exactly_one_termination_per_subscriber(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=fixture_bytes(TRANSCRIPT), piece=64))
    chat = stream(openai_base)
    recorders = [Recorder() for _ in range(5)]
    for r in recorders:
        chat.subscribe(r)
    for r in recorders:
        r.wait()
        assert r.completed + len(r.errors) == 1


def test_raising_subscriber_gets_on_error_others_continue(
    server: ReplayServer, openai_base: str
) -> None:
    server.queue(Reply(body=fixture_bytes(TRANSCRIPT)))
    chat = stream(openai_base)
    bad_errors: list[Exception] = []
    ended = threading.Event()

    def explode(_: rxllm.ChatChunk) -> None:
        raise ValueError("subscriber bug")

    # The good subscriber comes first: were the raising one alone when the first chunk arrives,
    # its leaving would (rightly) cancel the stream before the good one attached.
    good = Recorder()
    chat.subscribe(good)
    chat.subscribe(explode, lambda e: (bad_errors.append(e), ended.set()))
    good.wait()
    assert ended.wait(10)
    assert isinstance(bad_errors[0], ValueError)
    assert good.completed == 1 and len(good.items) == expected_chunk_count()


# --- docs/contracts.md, 5: threads and loops ------------------------------------------------------


def test_sync_code_runs_on_the_background_thread(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=fixture_bytes(TRANSCRIPT)))
    recorder = Recorder()
    stream(openai_base).subscribe(recorder)
    recorder.wait()
    assert recorder.threads == {"rxllm-callbacks"}  # a thread of its own, not the I/O loop


async def test_asyncio_code_runs_on_the_running_loop(
    server: ReplayServer, openai_base: str
) -> None:
    server.queue(Reply(body=fixture_bytes(TRANSCRIPT)))
    chat = stream(openai_base)
    recorder = Recorder()
    chat.subscribe(recorder)
    assert chat.loop is asyncio.get_running_loop()
    response = await consume(chat)
    assert response is not None and response.text.startswith("I'm unable")
    assert recorder.threads == {threading.current_thread().name}


async def test_blocking_wait_on_own_loop_moves_a_stream_not_started_yet(
    server: ReplayServer, openai_base: str
) -> None:
    # A notebook cell: consume(...) then .wait() while the kernel's loop runs. The request had
    # not started, so it moves to the background loop; the callbacks still run on this thread.
    server.queue(Reply(body=fixture_bytes(TRANSCRIPT)))
    chat = stream(openai_base)
    threads: set[str] = set()
    handle = consume(chat, on_chunk=lambda _: threads.add(threading.current_thread().name))
    response = handle.wait(10)
    assert response is not None and response.text.endswith("weather app.")
    assert threads == {threading.current_thread().name}
    assert chat.loop is not asyncio.get_running_loop()


async def test_blocking_wait_on_own_loop_once_started_is_refused_at_once(
    server: ReplayServer, openai_base: str
) -> None:
    server.queue(Reply(body=fixture_bytes(TRANSCRIPT), piece=400, delay=0.02))
    chat = stream(openai_base)
    handle = consume(chat)
    async for _ in chat:  # the request is under way on this very loop
        break
    started = time.monotonic()
    with pytest.raises(errors.WouldBlockError, match="await"):
        handle.wait(10)
    assert time.monotonic() - started < 1
    assert (await handle) is not None


async def test_blocking_helper_inside_a_running_loop_uses_background_loop(
    server: ReplayServer, openai_base: str
) -> None:
    # What a Jupyter cell does: call a blocking helper while the kernel's loop is running.
    server.queue(Reply(body=fixture_bytes(TRANSCRIPT)))
    response = collect_sync(stream(openai_base), timeout=10)
    assert response.text.endswith("weather app.")
    server.queue(Reply(body=fixture_bytes("openai/response_text.json")))
    assert rxllm.completion(
        "openai", "gpt-4o", messages=MESSAGES, api_key=API_KEY, api_base=openai_base
    ).text


SHUTDOWN_SCRIPT = """
import asyncio, gc, sys, warnings
warnings.simplefilter("error")
sys.path.insert(0, {tests!r})
from server import ReplayServer, Reply
import rxllm
from rxllm import ops
server = ReplayServer().start()
import pathlib; body = pathlib.Path({transcript!r}).read_bytes()
base = server.base + "/v1"
def chat():
    return rxllm.completion("openai", "gpt-4o", messages=[{{"role": "user", "content": "hi"}}],
                            stream=True, api_key="sk-x", api_base=base)
async def main():
    server.queue(Reply(body=body))
    response = await chat().pipe(ops.collect())
    print("async", len(response.text))
asyncio.run(main())
gc.collect()
from rxllm.transport import session
print("open-sessions", len(session._sessions))
server.queue(Reply(body=body))
print("sync", len(rxllm.streaming.collect_sync(chat(), timeout=10).text))
server.stop()
"""


def test_sessions_close_cleanly_for_asyncio_run_and_at_exit() -> None:
    script = SHUTDOWN_SCRIPT.format(
        tests=str(FIXTURES.parent), transcript=str(FIXTURES / TRANSCRIPT)
    )
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["async", "159", "open-sessions", "0", "sync", "159"]
    assert "Unclosed" not in result.stderr and "Traceback" not in result.stderr, result.stderr


# --- docs/contracts.md, 8: secrets ----------------------------------------------------------------


def test_api_key_never_in_reprs_or_errors(server: ReplayServer, openai_base: str) -> None:
    from rxllm._api import prepare

    call, _, request = prepare(
        "openai", "gpt-4o", messages=MESSAGES, stream=True, api_key=API_KEY, api_base=openai_base
    )
    chat = stream(openai_base)
    for text in (repr(call), repr(request), repr(chat), str(chat)):
        assert API_KEY not in text
    echo = f'{{"error":{{"message":"bad key {API_KEY}","code":"invalid_api_key"}}}}'.encode()
    server.queue(Reply(status=401, body=echo))
    with pytest.raises(errors.AuthenticationError) as caught:
        collect_sync(chat, timeout=10)
    assert API_KEY not in str(caught.value) and API_KEY not in repr(caught.value)
    assert API_KEY not in str(errors.error_summary(caught.value))
    assert "bad key ***" in caught.value.message
