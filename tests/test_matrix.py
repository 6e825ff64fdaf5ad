"""The matrix of docs/contracts.md, 5: every way a stream comes to be x every place it is first run x every way
it is consumed, each case in a subprocess of its own under a watchdog. A case passes with the
right answer, or with a clear ``WouldBlockError`` raised at once; a hang fails it.

The cases run a few at a time in the background as soon as the first is asked for, so the
whole matrix costs about a minute of wall time on two cores.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.matrix_case import (
    ASYNC_CONSUMERS,
    CONSUMERS,
    CONTEXTS,
    EXPECTED,
    SOURCES,
    SYNC_CONSUMERS,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
WATCHDOG = 40.0  # seconds: far beyond any case (each takes well under a second)
#: Time within which an impossible combination must say so.
AT_ONCE = 2.0


def _applies(context: str, consumer: str) -> bool:
    # Inside a running loop an async consumer is awaited; in plain code every consumer works
    # (an async one on a loop of its own); a blocking ``callbacks`` waiting on an event would
    # block a loop, so inside loops ``callbacks`` is the awaiting form.
    return consumer in SYNC_CONSUMERS or consumer in ASYNC_CONSUMERS or context == "plain"


CASES = [
    (source, context, consumer)
    for source in SOURCES
    for context in CONTEXTS
    for consumer in CONSUMERS
    if _applies(context, consumer)
]


def _run(case: tuple[str, str, str]) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.matrix_case", *case],
            capture_output=True,
            text=True,
            timeout=WATCHDOG,
            cwd=ROOT,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return {"hang": True}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return {"crash": done.returncode, "stderr": done.stderr[-2000:]}
    result: dict[str, object] = json.loads(lines[-1])
    result["stderr"] = done.stderr[-2000:]
    return result


@pytest.fixture(scope="module")
def results() -> dict[tuple[str, str, str], concurrent.futures.Future[dict[str, object]]]:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=3)
    futures = {case: pool.submit(_run, case) for case in CASES}
    yield futures
    pool.shutdown(wait=False, cancel_futures=True)


@pytest.mark.timeout(600)
@pytest.mark.parametrize("case", CASES, ids=["-".join(case) for case in CASES])
def test_no_hang(
    case: tuple[str, str, str],
    results: dict[tuple[str, str, str], concurrent.futures.Future[dict[str, object]]],
) -> None:
    result = results[case].result(timeout=600)
    assert "hang" not in result, f"{case} hung (no answer within {WATCHDOG} s)"
    assert "crash" not in result, f"{case} crashed: {result}"
    if "error" in result:
        assert result["error"] == "WouldBlockError", result
        assert float(result["seconds"]) < AT_ONCE, result  # type: ignore[arg-type]
        return
    source = case[0]
    # fan_out interleaves two answers: the same characters, in some order.
    assert collections.Counter(str(result["text"])) == collections.Counter(EXPECTED[source])
    assert "Traceback" not in str(result["stderr"]), result["stderr"]
