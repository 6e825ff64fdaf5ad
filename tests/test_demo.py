"""The README's main job: `rxllm demo` streams a recorded answer over loopback HTTP."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


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


def make_dry_run(target: str, tmp_path: Path) -> list[str]:
    """The commands ``make <target>`` would run on a fresh machine (a new venv under tmp)."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    result = subprocess.run(
        [make, "-n", target, f"VENV={tmp_path / 'venv'}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if "pip install" in line]


def test_make_demo_installs_only_the_package(tmp_path: Path) -> None:
    """The first command of the README installs what the demo needs, not the dev tools."""
    installs = make_dry_run("demo", tmp_path)
    assert installs[-1].endswith("-m pip install -q -e .")
    assert not any("[dev" in line for line in installs)


def test_make_test_installs_the_development_tools(tmp_path: Path) -> None:
    installs = make_dry_run("test", tmp_path)
    assert installs[-1].endswith("-m pip install -q -e '.[dev]'")


def pip_installs() -> list[tuple[str, str]]:
    """(file, line) of every ``pip install`` the README, the notebooks and the code suggest."""
    files = [ROOT / "README.md", *ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("rxllm/**/*.py")]
    return [
        (path.name, line.strip())
        for path in files
        for line in path.read_text().splitlines()
        if "pip install" in line
    ]


def test_every_suggested_install_works_from_a_clone() -> None:
    """rxllm is not on PyPI yet: ``pip install rxllm`` (or ``'rxllm[cli]'``) would fail (or
    fetch someone else's package). Every suggestion installs from the clone's path."""
    from_pypi = re.compile(r"pip install\b[^#]*?(?<![\w./-])['\"]?rxllm\b(?!/)")
    installs = pip_installs()
    assert any("pip install -e" in line for _, line in installs)
    assert [(name, line) for name, line in installs if from_pypi.search(line)] == []
