"""The ``rxllm`` command, run as a user runs it: a subprocess talking to the loopback replay
server (or to the mock provider), its output checked against the recorded transcripts."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

import rxllm

from .conftest import API_KEY, fixture_bytes
from .server import Recorded, ReplayServer, Reply, sse

TEXT = (
    "I'm unable to provide real-time weather updates. To get the current weather in San "
    "Francisco, I recommend checking a reliable weather website or a weather app."
)
QUESTION = "What's the weather like in San Francisco?"


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.pop("OPENAI_BASE_URL", None)
    env.pop("RXLLM_MODEL", None)
    env.update({"RXLLM_TOKENIZER": "heuristic", "PYTHONUNBUFFERED": "1", **extra})
    return env


def rxllm_cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-X", "dev", "-m", "rxllm", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        env=env if env is not None else cli_env(OPENAI_API_KEY=API_KEY),
    )


def clean(result: subprocess.CompletedProcess[str]) -> None:
    for noise in ("Traceback", "Unclosed", "Task was destroyed", "Exception ignored"):
        assert noise not in result.stderr, result.stderr
    assert API_KEY not in result.stdout + result.stderr


def chat(base: str, *extra: str) -> list[str]:
    """``chat "Hi" -m openai/gpt-4o --api-base <base> <extra>``."""
    return ["chat", "Hi", "-m", "openai/gpt-4o", "--api-base", base, *extra]


def weather(piece: int = 200, delay: float = 0.002) -> Reply:
    return Reply(body=fixture_bytes("openai/stream_text_usage.sse"), piece=piece, delay=delay)


def slow_essay() -> bytes:
    return sse(
        *[
            f'{{"id":"c","choices":[{{"index":0,"delta":{{"content":"w{i} "}}}}]}}'
            for i in range(400)
        ]
    )


@pytest.fixture
def base(server: ReplayServer) -> str:
    return server.base + "/v1"


# --- chat ----------------------------------------------------------------------------------------


def test_chat_streams_the_answer_as_plain_text_when_piped(server: ReplayServer, base: str) -> None:
    server.queue(weather())
    result = rxllm_cli(
        "chat",
        QUESTION,
        "-m",
        "openai/gpt-4o",
        "--api-base",
        base,
        "-s",
        "Be brief.",
        "-p",
        "temperature=0.2",
    )
    clean(result)
    assert result.returncode == 0
    assert result.stdout == TEXT + "\n"
    assert result.stderr == ""
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    body = request.json()
    assert body["model"] == "gpt-4o" and body["stream"] is True and body["temperature"] == 0.2
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": QUESTION},
    ]


def test_exiting_right_after_the_answer_leaves_nothing_pending(
    server: ReplayServer, base: str
) -> None:
    """The server sends [DONE] but ends the body only later: the command prints the answer and
    exits at once, cancelling the drain of that connection cleanly."""
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse"), delay=5))
    started = time.monotonic()
    result = rxllm_cli("chat", QUESTION, "-m", "openai/gpt-4o", "--api-base", base)
    clean(result)
    assert result.returncode == 0 and result.stdout == TEXT + "\n"
    assert time.monotonic() - started < 5


def test_chat_reads_the_question_and_base_url_from_stdin_and_environment(
    server: ReplayServer, base: str
) -> None:
    server.queue(weather())
    env = cli_env(OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=base, RXLLM_MODEL="openai/gpt-4o")
    result = rxllm_cli("chat", env=env, stdin=QUESTION + "\n")
    clean(result)
    assert result.returncode == 0 and result.stdout == TEXT + "\n"
    assert server.requests[0].json()["messages"] == [{"role": "user", "content": QUESTION}]


def test_without_a_model_the_first_provider_with_a_key_answers(
    server: ReplayServer, base: str
) -> None:
    server.queue(weather())
    env = cli_env(OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=base)
    result = rxllm_cli("chat", QUESTION, env=env)
    clean(result)
    assert result.returncode == 0 and result.stdout == TEXT + "\n"
    assert server.requests[0].json()["model"] == "gpt-4o-mini"  # the registry's default
    nothing = rxllm_cli("chat", QUESTION, env=cli_env())
    assert nothing.returncode == 2
    assert nothing.stderr == (
        "rxllm: name a model with -m provider/model (or set RXLLM_MODEL): no provider's API key "
        "is set (see `rxllm providers`)\n"
    )
    assert len(server.requests) == 1


def test_chat_json_prints_every_chunk_as_a_json_line(server: ReplayServer, base: str) -> None:
    server.queue(weather())
    result = rxllm_cli("chat", QUESTION, "-m", "openai/gpt-4o", "--api-base", base, "--json")
    clean(result)
    assert result.returncode == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == fixture_bytes("openai/stream_text_usage.sse").count(b"data: {")
    assert lines[0]["object"] == "chat.completion.chunk"
    assert lines[0]["model"] == "gpt-4o-2024-08-06" and lines[0]["provider"] == "openai"
    assert lines[0]["choices"][0]["delta"]["role"] == "assistant"
    assert (
        "".join(c["choices"][0]["delta"].get("content") or "" for c in lines if c["choices"])
        == TEXT
    )
    assert lines[-2]["choices"][0]["finish_reason"] == "stop"
    assert lines[-1]["usage"]["prompt_tokens"] == 14
    assert lines[-1]["usage"]["completion_tokens"] == 30


def test_chat_stats_summarise_on_stderr(server: ReplayServer, base: str) -> None:
    server.queue(weather())
    result = rxllm_cli("chat", QUESTION, "-m", "openai/gpt-4o", "--api-base", base, "--stats")
    clean(result)
    assert result.stdout == TEXT + "\n"
    header, row = result.stderr.splitlines()
    assert header.split() == ["model", "first", "token", "tokens/s", "tokens", "cost", "status"]
    # 14 prompt tokens at $2.50/M + 30 completion tokens at $10/M (gpt-4o in the price table)
    assert re.fullmatch(r"openai/gpt-4o\s+\d+ ms\s+[\d.]+\s+30\s+\$0\.000335\s+ok", row), row


def compare_responder(request: Recorded) -> Reply:
    if request.json()["model"] == "gpt-4o-mini":
        return Reply(
            status=429,
            body=b'{"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}}',
        )
    return weather(piece=100, delay=0.002)


def test_compare_interleaves_labelled_lines_then_summarises(
    server: ReplayServer, base: str
) -> None:
    server.responder = lambda request: weather(piece=100, delay=0.002)
    result = rxllm_cli(
        "chat",
        QUESTION,
        "--compare",
        "openai/gpt-4o",
        "openai/gpt-4o-2024-08-06",
        "--api-base",
        base,
    )
    clean(result)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # Each answer in lines of at most 80 characters, broken at spaces, labelled with its model
    assert sorted(lines[:4]) == [
        "openai/gpt-4o            | I'm unable to provide real-time weather updates. To get the current weather in",
        "openai/gpt-4o            | San Francisco, I recommend checking a reliable weather website or a weather app.",
        "openai/gpt-4o-2024-08-06 | I'm unable to provide real-time weather updates. To get the current weather in",
        "openai/gpt-4o-2024-08-06 | San Francisco, I recommend checking a reliable weather website or a weather app.",
    ]
    assert lines[4] == ""
    assert lines[5].split() == ["model", "first", "token", "tokens/s", "tokens", "cost", "status"]
    for model, row in zip(["openai/gpt-4o", "openai/gpt-4o-2024-08-06"], lines[6:], strict=True):
        assert re.fullmatch(rf"{model}\s+\d+ ms\s+[\d.]+\s+30\s+\$0\.000335\s+ok", row), row
    assert sorted(r.json()["model"] for r in server.requests) == ["gpt-4o", "gpt-4o-2024-08-06"]


def test_compare_reports_each_failure_and_exits_1(server: ReplayServer, base: str) -> None:
    server.responder = compare_responder
    result = rxllm_cli(
        "chat", QUESTION, "--compare", "openai/gpt-4o", "openai/gpt-4o-mini", "--api-base", base
    )
    clean(result)
    assert result.returncode == 1
    assert (
        "openai/gpt-4o      | San Francisco, I recommend checking a reliable weather website or "
        "a weather app." in result.stdout.splitlines()
    )
    assert "openai/gpt-4o-mini | [RateLimitError: openai/gpt-4o-mini HTTP 429" in result.stdout
    row = result.stdout.splitlines()[-1]
    assert row.split() == ["openai/gpt-4o-mini", "-", "-", "-", "-", "RateLimitError"]
    assert result.stderr == (
        "rxllm: openai/gpt-4o-mini: RateLimitError: openai/gpt-4o-mini HTTP 429 "
        "[rate_limit_exceeded]: Rate limit reached\n"
    )


def test_compare_leaves_a_setting_out_where_it_is_not_taken(
    server: ReplayServer, base: str
) -> None:
    """``-m A --compare B -p x=...``: A and B both answer; a setting only B's provider takes
    is left out for A, with a note. A setting nobody takes (a typo) is still an error."""
    server.queue(weather())
    env = cli_env(OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=base)
    models = ["-m", "openai/gpt-4o", "--compare", "mock/echo"]
    result = rxllm_cli("chat", "Hi", *models, "-p", "mock_response=Hello", "-p", "seed=7", env=env)
    clean(result)
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "rxllm: openai/gpt-4o: leaving out -p mock_response (openai does not take it)\n"
    )
    assert "mock/echo     | Hello" in result.stdout.splitlines()
    (request,) = server.requests
    assert request.json()["seed"] == 7 and "mock_response" not in request.json()
    typo = rxllm_cli("chat", "Hi", *models, "-p", "temprature=1", env=env)
    assert typo.returncode == 2
    assert "does not take parameter(s) temprature" in typo.stderr
    assert len(server.requests) == 1


def test_a_failed_stream_shows_its_first_token_time(server: ReplayServer, base: str) -> None:
    body = fixture_bytes("openai/stream_text_usage.sse")
    cut = body.rindex(b"data: ", 0, body.index(b'"content":" weather"'))
    server.queue(Reply(body=body, drop_after=cut))
    result = rxllm_cli(*chat(base, "--stats"))
    clean(result)
    assert result.returncode == 1
    row = result.stderr.splitlines()[1]
    assert re.fullmatch(r"openai/gpt-4o\s+\d+ ms\s+-\s+-\s+-\s+StreamTruncatedError", row), row


def test_compare_json_labels_chunks_and_adds_summary_records(
    server: ReplayServer, base: str
) -> None:
    server.responder = compare_responder
    result = rxllm_cli(
        "chat",
        QUESTION,
        "--compare",
        "openai/gpt-4o",
        "openai/gpt-4o-mini",
        "--api-base",
        base,
        "--json",
    )
    clean(result)
    assert result.returncode == 1
    records = [json.loads(line) for line in result.stdout.splitlines()]
    chunks = [r for r in records if r["object"] == "chat.completion.chunk"]
    assert {c["source"] for c in chunks} == {"openai/gpt-4o"}
    summaries = {r["source"]: r for r in records if r["object"] == "rxllm.summary"}
    assert summaries["openai/gpt-4o"]["completion_tokens"] == 30
    assert summaries["openai/gpt-4o"]["cost"] == pytest.approx(0.000335)
    assert summaries["openai/gpt-4o-mini"]["error"]["type"] == "RateLimitError"
    assert summaries["openai/gpt-4o-mini"]["error"]["status_code"] == 429


def test_typed_error_is_one_line_and_exit_1(server: ReplayServer, base: str) -> None:
    server.queue(
        Reply(
            status=404,
            body=fixture_bytes("openai/error_404_model_not_found.json"),
            content_type="application/json",
        )
    )
    result = rxllm_cli("chat", "Hi", "-m", "openai/gpt-3.5-turbo-0613", "--api-base", base)
    clean(result)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "rxllm: NotFoundError: openai/gpt-3.5-turbo-0613 HTTP 404 [model_not_found]: The model "
        "`gpt-3.5-turbo-0613` has been deprecated, learn more here: "
        "https://platform.openai.com/docs/deprecations\n"
    )


def test_error_mid_stream_keeps_the_partial_answer_on_stdout(
    server: ReplayServer, base: str
) -> None:
    body = fixture_bytes("openai/stream_text_usage.sse")
    cut = body.rindex(b"data: ", 0, body.index(b'"content":" weather"'))  # before " weather"
    server.queue(Reply(body=body, drop_after=cut))
    result = rxllm_cli(*chat(base))
    clean(result)
    assert result.returncode == 1
    assert result.stdout == "I'm unable to provide real-time\n"
    assert result.stderr.startswith("rxllm: StreamTruncatedError: openai/gpt-4o: ")
    assert result.stderr.count("\n") == 1


def test_missing_key_is_a_clear_message_and_exit_2(server: ReplayServer, base: str) -> None:
    result = rxllm_cli(*chat(base), env=cli_env())
    clean(result)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == "rxllm: no API key for openai: set OPENAI_API_KEY (or pass --api-key)\n"
    assert server.requests == []


def test_a_well_known_model_alone_goes_to_its_provider(server: ReplayServer, base: str) -> None:
    """``-m gpt-4o``: the registry's model patterns tell the provider, as LiteLLM users expect."""
    server.queue(weather())
    result = rxllm_cli("chat", "Hi", "-m", "gpt-4o", "--api-base", base)
    clean(result)
    assert result.returncode == 0, result.stderr
    assert result.stdout == TEXT + "\n"
    assert server.requests[0].json()["model"] == "gpt-4o"
    keyless = rxllm_cli("chat", "Hi", "-m", "gpt-4o", "--api-base", base, env=cli_env())
    assert keyless.returncode == 2
    assert (
        keyless.stderr == "rxllm: no API key for openai: set OPENAI_API_KEY (or pass --api-key)\n"
    )


def test_api_key_option_and_usage_errors(server: ReplayServer, base: str) -> None:
    server.queue(weather())
    result = rxllm_cli(*chat(base, "--api-key", "sk-flag"), env=cli_env())
    assert result.returncode == 0 and result.stdout == TEXT + "\n"
    assert server.requests[0].headers["Authorization"] == "Bearer sk-flag"
    unknown = rxllm_cli("chat", "Hi", "-m", "my-own-model")
    assert unknown.returncode == 2
    assert unknown.stderr.startswith(
        "rxllm: cannot tell the provider of 'my-own-model': write provider/model"
    )
    bad_param = rxllm_cli("chat", "Hi", "-m", "openai/gpt-4o", "-p", "temprature=1")
    assert bad_param.returncode == 2
    assert "openai does not take parameter(s) temprature" in bad_param.stderr
    assert rxllm_cli("chat", "Hi", "-p", "oops").returncode == 2
    assert len(server.requests) == 1


def test_chat_with_the_mock_provider_is_offline() -> None:
    result = rxllm_cli("chat", "Hello, offline world", "-m", "mock/anything", env=cli_env())
    clean(result)
    assert result.returncode == 0 and result.stdout == "Hello, offline world\n"
    failing = rxllm_cli(
        "chat",
        "Hi",
        "-m",
        "mock/x",
        "-p",
        "mock_error=503",
        "-p",
        "mock_error_after=0",
        env=cli_env(),
    )
    assert failing.returncode == 1
    assert failing.stderr == (
        "rxllm: ServiceUnavailableError: mock/x HTTP 503 [mock_error]: mock error: HTTP 503\n"
    )


# --- Ctrl-C --------------------------------------------------------------------------------------


def read_until(stream: int, pattern: bytes, timeout: float) -> bytes:
    """Read a pipe until ``pattern`` shows up (or fail after ``timeout`` seconds)."""
    seen = b""
    deadline = time.monotonic() + timeout
    while pattern not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"{pattern!r} never came; got {seen!r}"
        ready, _, _ = select.select([stream], [], [], left)
        if ready:
            data = os.read(stream, 65536)
            assert data, f"the pipe closed before {pattern!r}; got {seen!r}"
            seen += data
    return seen


@pytest.mark.parametrize("compare", [False, True])
def test_ctrl_c_cancels_the_stream_and_closes_the_connection(
    server: ReplayServer, base: str, compare: bool
) -> None:
    server.responder = lambda request: Reply(body=slow_essay(), piece=60, delay=0.05)
    models = (
        ["--compare", "openai/gpt-4o", "openai/gpt-4o-mini"] if compare else ["-m", "openai/gpt-4o"]
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-X",
            "dev",
            "-m",
            "rxllm",
            "chat",
            "Write a long essay",
            *models,
            "--api-base",
            base,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(OPENAI_API_KEY=API_KEY),
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        read_until(process.stdout.fileno(), b"w3 " if not compare else b"w3 w4", 30)
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 130
        stderr = process.stderr.read().decode()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()  # type: ignore[union-attr]
        process.stderr.close()  # type: ignore[union-attr]
    assert stderr == "rxllm: cancelled\n"
    assert server.disconnected.wait(10), "the server never saw the client leave"
    assert not server.completed.is_set()
    assert len(server.requests) == (2 if compare else 1)


# --- providers, help, version --------------------------------------------------------------------


def test_providers_lists_every_registered_provider_with_its_capabilities() -> None:
    result = rxllm_cli("providers", env=cli_env(OPENAI_API_KEY=API_KEY))
    clean(result)
    assert result.returncode == 0
    header, *rows = result.stdout.splitlines()
    assert header.split()[:6] == [
        "provider",
        "streaming",
        "tools",
        "vision",
        "reasoning",
        "embeddings",
    ]
    assert [row.split()[0] for row in rows] == rxllm.list_providers()
    openai = next(row for row in rows if row.startswith("openai "))
    assert openai.split()[1:6] == ["yes", "yes", "yes", "-", "yes"]
    assert "OPENAI_API_KEY (set)" in openai and "https://api.openai.com/v1" in openai
    mock = next(row for row in rows if row.startswith("mock "))
    assert "not needed" in mock
    without_key = rxllm_cli("providers", env=cli_env())
    assert "OPENAI_API_KEY (not set)" in without_key.stdout
    assert API_KEY not in result.stdout


def test_providers_json() -> None:
    result = rxllm_cli("providers", "--json")
    records = json.loads(result.stdout)
    assert [r["name"] for r in records] == rxllm.list_providers()
    openai = next(r for r in records if r["name"] == "openai")
    assert openai["streaming"] is True and openai["embeddings"] is True
    assert openai["env_keys"] == ["OPENAI_API_KEY"] and openai["key_set"] is True


def test_help_and_providers_import_nothing_heavy() -> None:
    probe = (
        "import sys, contextlib, io\n"
        "from rxllm.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "    main(['providers'])\n"
        "    main(['--version'])\n"
        "heavy = {'aiohttp', 'reactivex', 'rich', 'rxllm.stream'}\n"
        "print(sorted(m for m in sys.modules if m in heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=cli_env()
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"
    version = rxllm_cli("--version")
    assert version.stdout == f"rxllm {rxllm.__version__}\n"


# --- a terminal: rich rendering, and the plain fallback without rich -----------------------------


def run_in_terminal(
    *args: str, env: dict[str, str], launch: tuple[str, ...] = ("-m", "rxllm"), timeout: float = 30
) -> tuple[int, str]:
    """Run the CLI with a pseudo-terminal as its stdout; return its exit code and screen text."""
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    command = [sys.executable, *launch, *args]
    process = subprocess.Popen(
        command, stdout=slave, stderr=slave, stdin=subprocess.DEVNULL, env=env
    )
    os.close(slave)
    output = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            assert ready, f"no output for {timeout} s; got {output!r}"
            try:
                data = os.read(master, 65536)
            except OSError:  # the terminal closed: the process is done
                break
            if not data:
                break
            output += data
        code = process.wait(timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    return code, output.decode("utf-8", "replace")


def screen_text(raw: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", raw)


@pytest.fixture
def terminal_env() -> Iterator[dict[str, str]]:
    yield cli_env(OPENAI_API_KEY=API_KEY, TERM="xterm-256color", COLUMNS="200", LINES="40")


def test_on_a_terminal_the_answer_is_rendered_with_rich(
    server: ReplayServer, base: str, terminal_env: dict[str, str]
) -> None:
    pytest.importorskip("rich")
    server.queue(weather())
    code, raw = run_in_terminal(*chat(base, "--stats"), env=terminal_env)
    assert code == 0, raw
    assert "\x1b[" in raw  # rich drew a live view
    text = screen_text(raw)
    assert " ".join(TEXT.split()) in " ".join(text.split())
    assert "┃ model" in text and "$0.000335" in text


def test_compare_on_a_terminal_shows_columns(
    server: ReplayServer, base: str, terminal_env: dict[str, str]
) -> None:
    pytest.importorskip("rich")
    server.responder = lambda request: weather()
    models = ["--compare", "openai/gpt-4o", "openai/gpt-4o-mini"]
    code, raw = run_in_terminal("chat", "Hi", *models, "--api-base", base, env=terminal_env)
    assert code == 0, raw
    text = screen_text(raw)
    assert "╭─ openai/gpt-4o " in text and "╭─ openai/gpt-4o-mini " in text
    assert text.count("$0.000335") == 2


def test_without_rich_a_terminal_gets_plain_text(
    server: ReplayServer, base: str, terminal_env: dict[str, str]
) -> None:
    server.queue(weather())
    no_rich = (
        "import sys; sys.modules['rich'] = None\n"
        "from rxllm.cli import main\n"
        "raise SystemExit(main(sys.argv[1:]))\n"
    )
    code, raw = run_in_terminal(*chat(base), env=terminal_env, launch=("-c", no_rich))
    assert code == 0, raw
    assert raw.replace("\r\n", "\n") == TEXT + "\n"
