"""Shared test fixtures: the loopback replay server and the recorded transcripts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import rxllm
from rxllm import errors

from .redis_server import RedisServer, redis_binary
from .server import ReplayServer

FIXTURES = Path(__file__).parent / "fixtures"
API_KEY = "sk-test-0123456789abcdefSECRET"


def failure_of(chat: rxllm.ChatStream) -> errors.LLMError:
    """The typed error a stream ends with, as ``on_error`` delivers it (it must not complete)."""
    failures: list[Exception] = []
    assert rxllm.streaming.consume(chat, on_error=failures.append).wait(10) is None
    (error,) = failures
    assert isinstance(error, errors.LLMError)
    return error


def fixture_bytes(name: str) -> bytes:
    """The recorded transcript ``tests/fixtures/<name>`` (see tests/fixtures/SOURCES.md)."""
    return (FIXTURES / name).read_bytes()


@pytest.fixture(scope="session")
def _server() -> Iterator[ReplayServer]:
    server = ReplayServer().start()
    yield server
    server.stop()


@pytest.fixture
def server(_server: ReplayServer) -> Iterator[ReplayServer]:
    _server.reset()
    yield _server
    _server.reset()


@pytest.fixture
def openai_base(server: ReplayServer) -> str:
    return server.base + "/v1"


@pytest.fixture(scope="session")
def _redis_server() -> Iterator[RedisServer]:
    if redis_binary() is None:
        pytest.skip("no redis-server binary on this machine (CI installs Debian's redis-server)")
    server = RedisServer().start()
    yield server
    server.close()


@pytest.fixture
def redis_server(_redis_server: RedisServer) -> Iterator[RedisServer]:
    """A running redis-server, emptied for each test (restarted if a test stopped it)."""
    if _redis_server.process is None:
        _redis_server.start()
    _redis_server.flush()
    yield _redis_server
    if _redis_server.process is None:
        _redis_server.start()
