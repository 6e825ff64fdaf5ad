"""The benchmark harness must not rot: its smoke mode runs end to end and writes its table.

Times are never asserted (benchmarks are not tests). Third-party clients whose packages are not
installed (the ``bench`` extra) are skipped by the harness itself.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(600)
def test_smoke_run_completes_and_writes_a_table(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = (tmp_path / "results.md").read_text()
    assert table.startswith("# rxllm benchmarks")
    assert "**Smoke run**" in table
    for section in (
        "### Targets",
        "### Per-chunk cost, OpenAI format (300-chunk stream)",
        "### Time to first token (OpenAI format)",
        "### 5 concurrent streams of 20 chunks",
        "### Non-streaming requests/s (openai format, 0.02 s a run)",
        "### Per-chunk cost, Anthropic format (300-chunk stream)",
        "### What a stream keeps for replay (303-chunk OpenAI stream",
        "### Structured output: partial JSON (5-character deltas)",
    ):
        assert section in table
    for client in ("| floor-lines |", "| floor-bulk |", "| rxllm-extract |", "| rxllm-collect |"):
        assert client in table
    assert "### Failures" not in table
