"""The README's main job: `rxllm demo` streams a recorded answer over loopback HTTP."""

from __future__ import annotations

import subprocess
import sys


def test_demo_streams_offline() -> None:
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-m", "rxllm", "demo", "--pace", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Assistant: I'm unable to provide real-time weather updates." in out
    assert "recommend checking a reliable weather website or a weather app." in out
    assert "14 prompt + 30 completion = 44 tokens" in out
    assert "HTTP requests : 1 (two subscribers, one hot stream)" in out
    assert 'get_weather({"city":"New York City"})' in out
    assert "Unclosed" not in result.stderr and "Traceback" not in result.stderr, result.stderr
