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


@pytest.mark.timeout(300)
def test_gateway_smoke_run_completes_and_writes_a_table(tmp_path: Path) -> None:
    """The gateway benchmark end to end with ``rxllm serve`` alone (LiteLLM's proxy is in the
    ``bench`` extra only): upstream, gateway with 1 and 2 workers, load generator, report."""
    done = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks.gateway", "--smoke"),
            *("--gateways", "rxllm", "--out", str(tmp_path)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = (tmp_path / "results.md").read_text()
    assert table.startswith("# rxllm serve vs LiteLLM's proxy: gateway benchmark")
    assert "**Smoke run**" in table
    for section in (
        "### Goals (`rxllm serve`)",
        "### Added latency, one request at a time",
        "### Highest sustained request rate",
        "### Memory with 20 open streams",
        "### Coalescing",
    ):
        assert section in table
    for row in ("| rxllm |", "| rxllm (2 workers) |", "| direct |"):
        assert row in table
    assert "### Failures" not in table
    assert (tmp_path / "results.json").is_file()
