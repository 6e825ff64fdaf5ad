"""`rxllm serve` as a real subprocess in front of a loopback upstream replaying transcripts.

The upstream (:class:`tests.server.ReplayServer`, on its own thread) answers by what is asked:
the request's path picks the provider's recordings (OpenAI's ``/v1/chat/completions``,
Anthropic's ``/v1/messages``, ``/v1/embeddings``), and a keyword in the last user message picks
the transcript or the misbehaviour (see :func:`respond`). The gateway is started with
``python -m rxllm serve --config FILE --port 0`` and found by the address it prints.
"""

from __future__ import annotations

import functools
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ..conftest import fixture_bytes
from ..server import Recorded, ReplayServer, Reply, sse

ROOT = Path(__file__).resolve().parents[2]
MASTER = "sk-master-test-0123456789"
UPSTREAM_KEY = "sk-upstream-secret-abcdef"
STARTUP_TIMEOUT = 30.0


def slow_stream(chunks: int = 400, word: str = "w") -> bytes:
    return sse(
        *[
            f'{{"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o",'
            f'"choices":[{{"index":0,"delta":{{"content":"{word}{i} "}}}}]}}'
            for i in range(chunks)
        ]
    )


@functools.cache
def flood() -> bytes:
    """About 40 MB of chunks: more than every socket buffer between upstream and client."""
    chunk = (
        b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o",'
        b'"choices":[{"index":0,"delta":{"content":"' + b"x" * 100 + b'"}}]}\n\n'
    )
    return chunk * 200_000 + b"data: [DONE]\n\n"


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return " ".join(
                part.get("text", "") for part in content or [] if isinstance(part, dict)
            )
    return ""


def respond(request: Recorded) -> Reply:
    """The upstream's answer to one request (see the module docstring)."""
    if request.path.endswith("/embeddings"):
        return Reply(
            body=fixture_bytes("openai/response_embedding.json"), content_type="application/json"
        )
    body = request.json()
    text = _last_user_text(body)
    stream = bool(body.get("stream"))
    if request.path.endswith("/messages"):
        return _anthropic(text, stream)
    if "fail429" in text:
        return Reply(
            status=429,
            content_type="application/json",
            headers={"retry-after": "0"},
            body=b'{"error":{"message":"Rate limit reached for gpt-4o","type":"requests",'
            b'"param":null,"code":"rate_limit_exceeded"}}',
        )
    if "stall" in text:
        return Reply(body=slow_stream(5), stall_after=0)
    if "flood" in text:
        return Reply(body=flood(), piece=65536, report_blocking=True)
    if "paced" in text:  # about 2 s
        return Reply(body=slow_stream(40), piece=60, delay=0.02)
    if "slow" in text:
        return Reply(body=slow_stream(), piece=60, delay=0.05)
    if "cut" in text:
        return Reply(body=fixture_bytes("openai/stream_text_usage.sse"), drop_after=400)
    if "parallel" in text:
        name = "stream_parallel_tool_calls.sse" if stream else "response_tool_calls.json"
    elif "weather tool" in text:
        name = "stream_tool_call_usage.sse" if stream else "response_tool_calls.json"
    else:
        name = "stream_text_usage.sse" if stream else "response_text.json"
    kind = "text/event-stream" if stream else "application/json"
    return Reply(
        body=fixture_bytes(f"openai/{name}"), content_type=kind, piece=97 if stream else None
    )


def _anthropic(text: str, stream: bool) -> Reply:
    if "overloaded" in text:
        return Reply(body=fixture_bytes("anthropic/stream_error_overloaded.sse"))
    if "think" in text:
        name = "stream_thinking.sse"
    elif "weather tool" in text:
        name = "stream_tool_use.sse" if stream else "response_tool_use.json"
    else:
        name = "stream_text.sse" if stream else "response_text.json"
    kind = "text/event-stream" if name.endswith(".sse") else "application/json"
    return Reply(body=fixture_bytes(f"anthropic/{name}"), content_type=kind, piece=83)


def config_for(upstream: ReplayServer, **general: Any) -> dict[str, Any]:
    """A LiteLLM-format config whose models all point at ``upstream``."""
    base = upstream.base
    return {
        "model_list": [
            {
                "model_name": "gpt-4o",
                "litellm_params": {
                    "model": "openai/gpt-4o",
                    "api_base": base + "/v1",
                    "api_key": "os.environ/UPSTREAM_KEY",
                },
            },
            {
                "model_name": "claude",
                "litellm_params": {
                    "model": "anthropic/claude-sonnet-4-5",
                    "api_base": base,
                    "api_key": "os.environ/UPSTREAM_KEY",
                },
            },
            {
                "model_name": "embed",
                "litellm_params": {
                    "model": "openai/text-embedding-3-small",
                    "api_base": base + "/v1",
                    "api_key": "os.environ/UPSTREAM_KEY",
                },
            },
        ],
        "router_settings": {"num_retries": 0, "timeout": 20},
        "general_settings": {"heartbeat_seconds": 0.5, **general},
    }


class Gateway:
    """One ``rxllm serve`` process."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        environ = {**os.environ, "UPSTREAM_KEY": UPSTREAM_KEY, **(env or {})}
        environ["PYTHONPATH"] = str(ROOT) + os.pathsep + environ.get("PYTHONPATH", "")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rxllm", "serve", "--port", "0", *args],
            cwd=cwd,
            env=environ,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        self._terminated = False
        self._listening = threading.Event()
        self.base = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._listening.wait(STARTUP_TIMEOUT):
            self.stop()
            raise AssertionError(f"rxllm serve did not start:\n{self.stderr}")

    def _read(self) -> None:
        assert self.process.stderr is not None
        for raw in self.process.stderr:
            line = raw.decode(errors="replace")
            self.lines.append(line)
            found = re.search(r"listening on (http://\S+?)(?:,| |$)", line)
            if found:
                self.base = found.group(1)
                self._listening.set()
        self._listening.set()

    @property
    def stderr(self) -> str:
        return "".join(self.lines)

    def url(self, path: str) -> str:
        return self.base + path

    def terminate(self) -> None:
        """SIGTERM, once."""
        if self.process.poll() is None and not self._terminated:
            self._terminated = True
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 30.0) -> int:
        self.terminate()
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            raise AssertionError(f"rxllm serve did not stop on SIGTERM:\n{self.stderr}") from None
        self._reader.join(10)
        assert self.process.stdout is not None
        self.process.stdout.close()
        assert self.process.stderr is not None
        self.process.stderr.close()
        return code


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="session")
def upstream_server() -> Iterator[ReplayServer]:
    server = ReplayServer().start()
    yield server
    server.stop()


@pytest.fixture
def upstream(upstream_server: ReplayServer) -> Iterator[ReplayServer]:
    upstream_server.reset()
    upstream_server.responder = respond
    yield upstream_server
    upstream_server.reset()


def _start(tmp: Path, upstream: ReplayServer, **general: Any) -> Gateway:
    config = write_config(tmp / "config.yaml", config_for(upstream, **general))
    return Gateway(["--config", str(config)], cwd=tmp)


@pytest.fixture(scope="session")
def gateway(
    upstream_server: ReplayServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """An open gateway (no master key) shared by the tests of a session."""
    process = _start(tmp_path_factory.mktemp("gateway"), upstream_server)
    yield process
    assert process.stop() == 0, process.stderr


@pytest.fixture(scope="session")
def keyed_gateway(
    upstream_server: ReplayServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """A gateway with a master key and virtual keys in SQLite."""
    tmp = tmp_path_factory.mktemp("keyed")
    process = _start(tmp, upstream_server, master_key=MASTER, database_path=str(tmp / "keys.db"))
    yield process
    assert process.stop() == 0, process.stderr


def sse_events(raw: bytes) -> list[tuple[str | None, str]]:
    """(event, data) of each SSE event in ``raw`` (comments left out)."""
    events = []
    for block in raw.decode().split("\n\n"):
        event, data = None, []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            events.append((event, "\n".join(data)))
    return events


def decoded(raw: bytes) -> list[Any]:
    return [json.loads(data) for _, data in sse_events(raw) if data != "[DONE]"]
