"""Process helpers shared by the runner and the load generator: RSS of a process tree, free
ports, percentiles."""

from __future__ import annotations

import math
import os
import socket
from pathlib import Path


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc, when psutil is not installed)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        tasks = Path(f"/proc/{parent}/task")
        try:
            threads = list(tasks.iterdir())
        except OSError:
            continue
        for thread in threads:
            try:
                kids = [int(k) for k in (thread / "children").read_text().split()]
            except OSError:
                continue
            found += kids
            todo += kids
    return found


def tree(pid: int) -> list[int]:
    """``pid`` and every process under it (a gateway's workers)."""
    try:
        import psutil
    except ImportError:
        return [pid, *_children(pid)]
    try:
        process = psutil.Process(pid)
        return [pid, *(child.pid for child in process.children(recursive=True))]
    except psutil.Error:
        return []


def rss_bytes(pid: int) -> int:
    """Resident set size of one process, 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(pid: int) -> tuple[int, int]:
    """(summed RSS in bytes, number of processes) of ``pid`` and its descendants."""
    pids = tree(pid)
    return sum(rss_bytes(p) for p in pids), len(pids)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(ordered: list[float], q: float) -> float:
    """The ``q`` (0-100) percentile of sorted values, linearly interpolated; nan if empty."""
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: list[float]) -> dict[str, float]:
    """n, mean, p50, p90, p99, p99.9, min and max of ``values`` (seconds stay seconds)."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    return {
        "n": len(ordered),
        "mean": sum(ordered) / len(ordered),
        "min": ordered[0],
        "p50": percentile(ordered, 50),
        "p90": percentile(ordered, 90),
        "p99": percentile(ordered, 99),
        "p999": percentile(ordered, 99.9),
        "max": ordered[-1],
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants so far (0 if unreadable)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total
