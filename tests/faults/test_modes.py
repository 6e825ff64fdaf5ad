"""Every fault mode, against every provider case, from plain synchronous code (rxllm's
background loop, two subscribers) and from asyncio (``asyncio.run``: one ``collect`` and one
``async for`` on the same stream), and - for the faults a plain request can meet - without
streaming too.

Each run must end with the documented typed error (naming provider, model and status, holding
the partial text, never the key) or with the right recovery, and leave nothing behind: no
asyncio task, no connection handed out by the connector, no client socket other than idle
keep-alive connections in the pool, no session of a loop that has finished.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

import rxllm
from rxllm import errors, ops
from rxllm.streaming import collect, consume
from rxllm.transport import session as sessions

from ..conftest import API_KEY, fixture_bytes
from ..server import Reply
from . import probe
from .cases import ProviderCase
from .server import FaultServer, closed_port

MESSAGES = [{"role": "user", "content": "What is the weather in San Francisco?"}]
FAST = 0.3  # seconds: the timeout of the stall modes
FILLER = b"lorem ipsum " * (3 << 17)  # 4.5 MiB of text inside one frame


@dataclass
class Env:
    case: ProviderCase
    server: FaultServer
    elsewhere: FaultServer

    @property
    def base(self) -> str:
        return self.server.base + self.case.path

    def inject(self, mode: str, **options: Any) -> None:
        self.server.inject(mode, self.case.transcript, **options)


@dataclass
class Outcome:
    text: str | None = None
    error: errors.LLMError | None = None
    snapshot: probe.Snapshot | None = None
    other: list[Any] = field(default_factory=list)  # what the other subscriber got


@dataclass(frozen=True)
class Mode:
    name: str
    arrange: Callable[[Env], str | None]  # queue the replies; may return another api_base
    error: type[errors.LLMError] | None  # None: the stream must complete
    status: int | None = None
    partial: Callable[[ProviderCase], str] = lambda case: ""
    text: Callable[[ProviderCase], str] = lambda case: case.text
    recoverable: bool | None = None
    check: Callable[[Outcome, Env], None] = lambda outcome, env: None
    timeout: float = 10.0
    pipe: Callable[[Any], Any] | None = None  # an operator on the stream, for both subscribers
    blocking: bool = False  # also run as a plain (non-streaming) request
    sse_only: str | None = None  # why the mode has no meaning for another framing (NDJSON)


# --- the modes ---------------------------------------------------------------------------------


def _refused(env: Env) -> str:
    return f"http://127.0.0.1:{closed_port()}{env.case.path}"


def _seen_by(count: int) -> Callable[[Outcome, Env], None]:
    def check(outcome: Outcome, env: Env) -> None:
        assert len(env.server.requests) == count

    return check


def _message(*parts: str) -> Callable[[Outcome, Env], None]:
    def check(outcome: Outcome, env: Env) -> None:
        assert outcome.error is not None
        for part in parts:
            assert part in outcome.error.message

    return check


def _all(*checks: Callable[[Outcome, Env], None]) -> Callable[[Outcome, Env], None]:
    def check(outcome: Outcome, env: Env) -> None:
        for c in checks:
            c(outcome, env)

    return check


def _left(outcome: Outcome, env: Env) -> None:
    """The server saw the client go away (the stalled response was not left hanging)."""
    assert env.server.disconnected.wait(10)


def _rate_limit(outcome: Outcome, env: Env) -> None:
    error = outcome.error
    assert isinstance(error, errors.RateLimitError)
    assert error.retry_after == 7.0
    assert error.code == env.case.rate_limit_code
    assert error.request_id == "req_fault_429"


def _stream_error(outcome: Outcome, env: Env) -> None:
    error = outcome.error
    assert error is not None
    assert (error.message, error.code) == (
        env.case.stream_error_message,
        env.case.stream_error_code,
    )


def _retry_at_date(outcome: Outcome, env: Env) -> None:
    error = outcome.error
    assert error is not None and error.retry_after is not None
    assert 20 <= error.retry_after <= 30  # the date was 30 s ahead when the reply was made


def _no_request_elsewhere(outcome: Outcome, env: Env) -> None:
    assert env.elsewhere.requests == []
    error = outcome.error
    assert isinstance(error, errors.RedirectError)
    assert error.location == f"http://localhost:{env.elsewhere.port}/v1/chat/completions"
    assert "?" not in error.message and "token" not in error.message


def _followed(outcome: Outcome, env: Env) -> None:
    first, second = env.server.requests
    assert (first.path, second.path) == (env.case.endpoint, "/v2/chat/completions")
    assert second.method == "POST" and second.body == first.body
    assert API_KEY in second.headers[env.case.key_header]


def _gzip_was_offered(outcome: Outcome, env: Env) -> None:
    assert "gzip" in env.server.requests[0].headers.get("Accept-Encoding", "")


def _all_written(outcome: Outcome, env: Env) -> None:
    assert env.server.written == len(env.case.transcript.body)


def _capped(outcome: Outcome, env: Env) -> None:
    """Only the first MiB was read: the client hung up on the rest."""
    assert outcome.error is not None
    assert len(outcome.error.message) < 400
    assert env.server.disconnected.wait(10) and not env.server.completed.is_set()


def _big_text(case: ProviderCase) -> str:
    word = case.big_frame_after.decode()
    head, _, tail = case.text.partition(word)
    return head + word + FILLER.decode() + tail


def _frame_start(case: ProviderCase) -> int:
    """The first byte of the frame that holds the marker."""
    body, separator = case.transcript.body, case.transcript.separator
    return body.rindex(separator, 0, body.index(case.marker)) + len(separator)


HUGE_PAGE = b"<html>" + b"x" * (16 << 20)


def _huge_error_page(env: Env) -> None:
    env.server.queue(Reply(status=500, body=HUGE_PAGE, content_type="text/html"))


def _redirect_then_serve(env: Env) -> None:
    env.inject("redirect", location="/v2/chat/completions")
    env.server.queue(Reply(body=env.case.transcript.body))


def _redirect_loop(env: Env) -> None:
    for _ in range(7):
        env.inject("redirect", location="/v1/chat/completions")


def _date_in(seconds: float) -> str:
    return email.utils.formatdate(time.time() + seconds, usegmt=True)


MODES = [
    Mode(
        "connection refused",
        _refused,
        errors.APIConnectionError,
        recoverable=True,
        check=_message("could not reach http://127.0.0.1:"),
        blocking=True,
    ),
    Mode(
        "reset before headers",
        lambda env: env.inject("reset"),
        errors.APIConnectionError,
        recoverable=True,
        check=_all(_message("Server disconnected"), _seen_by(1)),
        blocking=True,
    ),
    Mode(
        "drop mid-frame",
        lambda env: env.inject("drop", at=env.case.transcript.body.index(env.case.marker) + 3),
        errors.StreamTruncatedError,
        partial=lambda case: case.text_before_marker,
        recoverable=True,
    ),
    Mode(
        "drop at a frame boundary",
        lambda env: env.inject("drop", at=_frame_start(env.case)),
        errors.StreamTruncatedError,
        partial=lambda case: case.text_before_marker,
    ),
    Mode(
        "drop before the end marker",
        lambda env: env.inject("drop", at=len(env.case.transcript.body) - 8),
        errors.StreamTruncatedError,
        partial=lambda case: case.text if case.text_before_end is None else case.text_before_end,
    ),
    Mode(
        "stall before the first byte",
        lambda env: env.inject("stall_first_byte"),
        errors.APITimeoutError,
        recoverable=True,
        check=_all(_message("no response within 0.3 s"), _left),
        timeout=FAST,
        blocking=True,
    ),
    Mode(
        "stall after the headers",
        lambda env: env.inject("stall_body", at=0),
        errors.APITimeoutError,
        check=_all(_message("no data for 0.3 s"), _left),
        timeout=FAST,
    ),
    Mode(
        "stall between chunks",
        lambda env: env.inject("stall_body", at=env.case.transcript.body.index(env.case.marker)),
        errors.APITimeoutError,
        partial=lambda case: case.text_before_marker,
        check=_left,
        timeout=FAST,
    ),
    Mode(
        "stall between chunks, ops.timeout(idle=)",
        lambda env: env.inject("stall_body", at=env.case.transcript.body.index(env.case.marker)),
        errors.APITimeoutError,
        partial=lambda case: case.text_before_marker,
        check=_all(_message("no chunk for 0.3 s"), _left),
        pipe=ops.timeout(idle=FAST),
    ),
    Mode(
        "trickle, one byte per write", lambda env: env.inject("trickle"), None, check=_all_written
    ),
    Mode(
        "429 with Retry-After seconds",
        lambda env: env.inject("rate_limited", error_body=env.case.rate_limit_body),
        errors.RateLimitError,
        status=429,
        recoverable=True,
        check=_rate_limit,
        blocking=True,
    ),
    Mode(
        "429 with Retry-After date",
        lambda env: env.inject(
            "rate_limited", error_body=env.case.rate_limit_body, retry_after=_date_in(30)
        ),
        errors.RateLimitError,
        status=429,
        check=_retry_at_date,
    ),
    Mode(
        "502 HTML page",
        lambda env: env.inject("html_error", status=502),
        errors.InternalServerError,
        status=502,
        recoverable=True,
        check=_message("502 Bad Gateway", "nginx"),
        blocking=True,
    ),
    Mode(
        "503 HTML page",
        lambda env: env.inject("html_error", status=503),
        errors.ServiceUnavailableError,
        status=503,
        recoverable=True,
    ),
    Mode(
        "500 with a 16 MiB body",
        _huge_error_page,
        errors.InternalServerError,
        status=500,
        check=_capped,
        blocking=True,
    ),
    Mode(
        "200 with a JSON error body",
        lambda env: env.inject("json_error_200", error_body=env.case.error_200_body),
        errors.InternalServerError,  # the case's error_200_class, checked in the test
        status=200,
        recoverable=True,
        check=lambda outcome, env: _message(env.case.error_200_message)(outcome, env),
        blocking=True,
    ),
    Mode(
        "error event mid-stream",
        lambda env: env.inject(
            "error_event", at=_frame_start(env.case), error=env.case.stream_error
        ),
        errors.LLMError,  # the case's stream_error_class, checked in the test
        partial=lambda case: case.text_before_marker,
        check=_stream_error,
    ),
    Mode(
        "invalid JSON in a frame",
        lambda env: env.inject("invalid_frame", after_frames=3),
        errors.MalformedResponseError,
        partial=lambda case: case.text_of_three_frames,
        check=lambda outcome, env: _message(env.case.bad_frame_message)(outcome, env),
    ),
    Mode(
        "unknown SSE event types",
        lambda env: env.inject("unknown_events"),
        None,
        sse_only="NDJSON has no event types, comments or fields to leave unknown",
    ),
    Mode(
        "frame larger than 1 MiB (4.5 MiB)",
        lambda env: env.inject("big_frame", marker=env.case.big_frame_after, filler=FILLER),
        None,
        text=_big_text,
    ),
    Mode("gzip-encoded body", lambda env: env.inject("gzip"), None, check=_gzip_was_offered),
    Mode(
        "text/html 200 for a stream (a portal page)",
        lambda env: env.inject(
            "content_type",
            value="text/html",
            body=b"<html><body><h1>Please log in to the hotel wifi</h1></body></html>",
        ),
        errors.MalformedResponseError,
        status=200,
        check=_message("Please log in to the hotel wifi"),
        blocking=True,
    ),
    Mode(
        "application/json 200 for a stream (stream ignored)",
        lambda env: env.inject(
            "content_type",
            value="application/json",
            body=fixture_bytes("openai/response_text.json"),
        ),
        errors.MalformedResponseError,
        status=200,
        check=_message("expected a stream", "got application/json"),
        sse_only="NDJSON may come as application/json (Ollama's proxies): a JSON document is "
        "read as the stream",
    ),
    Mode(
        "text/plain 200 with a real stream",
        lambda env: env.inject("content_type", value="text/plain"),
        None,
    ),
    Mode(
        "redirect to another host",
        lambda env: env.inject(
            "redirect",
            location=f"http://localhost:{env.elsewhere.port}/v1/chat/completions?token=abc",
        ),
        errors.RedirectError,
        status=307,
        recoverable=False,
        check=_no_request_elsewhere,
        blocking=True,
    ),
    Mode(
        "redirect 307 within the same origin",
        _redirect_then_serve,
        None,
        check=_followed,
    ),
    Mode(
        "redirect 302 within the same origin",
        lambda env: env.inject("redirect", location="/v2/chat/completions", status=302),
        errors.RedirectError,
        status=302,
        check=_all(_message("would turn the POST into a GET"), _seen_by(1)),
    ),
    Mode(
        "redirect loop",
        _redirect_loop,
        errors.RedirectError,
        status=307,
        check=_all(_message("more than 5 redirects"), _seen_by(6)),
    ),
]


# --- running a mode ----------------------------------------------------------------------------


def _stream(env: Env, base: str, timeout: float) -> rxllm.ChatStream:
    return rxllm.completion(
        env.case.provider,
        env.case.model,
        messages=MESSAGES,
        stream=True,
        api_key=API_KEY,
        api_base=base,
        timeout=timeout,
    )


def _settled(handle: Any) -> tuple[str | None, errors.LLMError | None]:
    try:
        response = handle.wait(30)
    except errors.LLMError as error:
        return None, error
    return response.text, None


def run_sync(env: Env, mode: Mode, base: str) -> Outcome:
    """Two subscribers from this thread; the stream runs on rxllm's background loop."""
    chat = _stream(env, base, mode.timeout)
    source = chat.pipe(mode.pipe) if mode.pipe is not None else chat
    first, second = consume(source), consume(source)
    text, error = _settled(first)
    outcome = Outcome(text, error, other=list(_settled(second)))
    outcome.snapshot = probe.snapshot(env.server.port)
    return outcome


def run_async(env: Env, mode: Mode, base: str) -> Outcome:
    """``asyncio.run``: one ``collect`` and one ``async for`` on the stream."""

    async def iterate(source: Any) -> tuple[str | None, errors.LLMError | None]:
        try:
            pieces = [
                rxllm.streaming.extract_content(chunk) or ""
                async for chunk in rxllm.streaming.iterate(source)
            ]
        except errors.LLMError as error:
            return None, error
        return "".join(pieces), None

    async def main() -> Outcome:
        chat = await rxllm.acompletion(
            env.case.provider,
            env.case.model,
            messages=MESSAGES,
            stream=True,
            api_key=API_KEY,
            api_base=base,
            timeout=mode.timeout,
        )
        source = chat.pipe(mode.pipe) if mode.pipe is not None else chat
        collected, iterated = await asyncio.gather(
            collect(source), iterate(source), return_exceptions=True
        )
        outcome = Outcome(other=list(iterated))
        if isinstance(collected, errors.LLMError):
            outcome.error = collected
        else:
            assert not isinstance(collected, BaseException), collected
            outcome.text = collected.text
        outcome.snapshot = await probe.asnapshot(env.server.port)
        return outcome

    before = len(sessions._sessions)
    outcome = asyncio.run(main())
    assert len(sessions._sessions) <= before, "the finished loop's session is still open"
    return outcome


def run_blocking(env: Env, mode: Mode, base: str) -> Outcome:
    """A plain request: ``completion()`` without ``stream``."""
    try:
        response = rxllm.completion(
            env.case.provider,
            env.case.model,
            messages=MESSAGES,
            api_key=API_KEY,
            api_base=base,
            timeout=mode.timeout,
        )
    except errors.LLMError as error:
        outcome = Outcome(error=error)
    else:
        outcome = Outcome(text=response.text)
    outcome.snapshot = probe.snapshot(env.server.port)
    return outcome


RUNNERS = {"sync": run_sync, "async": run_async, "blocking": run_blocking}


def _check_error(error: errors.LLMError, mode: Mode, case: ProviderCase, streaming: bool) -> None:
    expected, status, recoverable = mode.error, mode.status, mode.recoverable
    if mode.name == "error event mid-stream":
        expected, status = case.stream_error_class, case.stream_error_status
        recoverable = case.stream_error_recoverable
    if mode.name.startswith("200 with a JSON error"):
        expected, recoverable = case.error_200_class, case.error_200_recoverable
        status = case.error_200_status
        if streaming and not case.sse:  # NDJSON reads the body as a stream: a mid-stream line
            status = None
    assert type(error) is expected, f"{type(error).__name__}: {error}"
    assert (error.provider, error.model, error.status_code) == (case.provider, case.model, status)
    assert f"{case.provider}/{case.model}" in str(error)
    if status is not None:
        assert f"HTTP {status}" in str(error)
    if streaming:
        assert error.partial_text == mode.partial(case)
    if recoverable is not None:
        assert error.recoverable is recoverable
    assert API_KEY not in str(error) and API_KEY not in repr(error)


def _check_clean(snapshot: probe.Snapshot | None) -> None:
    assert snapshot is not None
    assert snapshot.tasks == 0, "a task was left running"
    assert snapshot.acquired == 0, "a connection is still handed out"
    assert snapshot.sockets == snapshot.idle, "a socket is open that is not an idle pooled one"


CASES_OF_MODES = [
    pytest.param(mode, runner, id=f"{mode.name} [{runner}]")
    for mode in MODES
    for runner in ("sync", "async", "blocking")
    if runner != "blocking" or mode.blocking
]


@pytest.mark.parametrize(("mode", "runner"), CASES_OF_MODES)
def test_fault_mode(
    mode: Mode, runner: str, case: ProviderCase, faults: FaultServer, elsewhere: FaultServer
) -> None:
    if mode.sse_only is not None and not case.sse:
        pytest.skip(mode.sse_only)
    env = Env(case, faults, elsewhere)
    base = mode.arrange(env) or env.base
    outcome = RUNNERS[runner](env, mode, base)
    streaming = runner != "blocking"
    if mode.error is None:
        assert outcome.error is None, f"{type(outcome.error).__name__}: {outcome.error}"
        assert outcome.text == mode.text(case)
        if streaming:
            assert outcome.other == [mode.text(case), None]
    else:
        assert outcome.error is not None, "the fault went unnoticed"
        _check_error(outcome.error, mode, case, streaming)
        if streaming and mode.pipe is None:  # the other subscriber got the very same error
            assert outcome.other == [None, outcome.error]
        elif streaming:  # each subscription of the pipeline has its own operator
            assert type(outcome.other[1]) is type(outcome.error)
    mode.check(outcome, env)
    _check_clean(outcome.snapshot)
