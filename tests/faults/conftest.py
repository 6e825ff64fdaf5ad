"""Fixtures of the fault suite: the fault server (and a second one, "another host"), the
provider cases, and a check that a test left no task, socket or session behind."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .cases import CASES, ProviderCase
from .server import FaultServer


@pytest.fixture(scope="session")
def _faults() -> Iterator[FaultServer]:
    server = FaultServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def _elsewhere() -> Iterator[FaultServer]:
    server = FaultServer().start()
    yield server
    server.stop()


@pytest.fixture
def faults(_faults: FaultServer) -> Iterator[FaultServer]:
    _faults.reset()
    yield _faults
    _faults.reset()


@pytest.fixture
def elsewhere(_elsewhere: FaultServer) -> Iterator[FaultServer]:
    """Another server, reached as ``localhost`` (a different host name and port)."""
    _elsewhere.reset()
    yield _elsewhere
    _elsewhere.reset()


# OpenAI's case runs in the inner loop (`make test-fast`); every other provider's in `make test`.
@pytest.fixture(
    params=[
        pytest.param(
            case, id=str(case), marks=() if case.provider == "openai" else pytest.mark.slow
        )
        for case in CASES
    ]
)
def case(request: pytest.FixtureRequest) -> ProviderCase:
    case: ProviderCase = request.param
    return case


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from .figures import FIGURES

    if FIGURES:
        terminalreporter.section("rxllm fault suite figures")
        for name, text in FIGURES.items():
            terminalreporter.write_line(f"{name}: {text}")
