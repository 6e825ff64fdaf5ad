"""The README's streaming guide, every block, against `rxllm serve --mock` (a real subprocess):
``OPENAI_BASE_URL`` points at the gateway, whose mock provider answers every model by echoing
the question. tests/test_guide.py checks each block's exact output against recorded streams;
here each block must run to its end through the gateway, and the streamed ones print the echo.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ..test_guide import guide_blocks, run_block
from .conftest import Gateway

pytestmark = pytest.mark.timeout(60)

#: Block heading -> what its output must contain (the mock echoes the last user message).
ECHOES = {
    "Quick start: basic streaming": "Write a story\n",
    "Streaming utilities": "Explain quantum physics",
    "CLI application with streaming": "Explain machine learning",
    "Building the complete response": "stop",
    "Error handling": "Setup error: unknown provider 'no-such-provider'",
    "Performance tips": "Write a story",
}


@pytest.fixture(scope="module")
def mock_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    process = Gateway(["--mock"], cwd=tmp_path_factory.mktemp("mock"))
    yield process
    assert process.stop() == 0, process.stderr


@pytest.mark.parametrize("index", range(len(guide_blocks())))
def test_guide_block_through_the_gateway(
    index: int,
    mock_gateway: Gateway,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    heading, code = guide_blocks()[index]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-anything")
    monkeypatch.setenv("OPENAI_BASE_URL", mock_gateway.url("/v1"))
    monkeypatch.setenv("RXLLM_TOKENIZER", "heuristic")
    monkeypatch.chdir(tmp_path)
    out, _ = run_block(code, capsys)
    assert heading not in ECHOES or ECHOES[heading] in out, out
    assert "Traceback" not in out
