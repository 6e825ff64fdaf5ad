"""The results as a Markdown table (results.md) and a chart (results.png, if matplotlib is
installed), with the machine, versions and date they were measured on.
``python -m benchmarks.report [results.json]`` re-renders both from the raw figures.

Targets are reported, never asserted: benchmarks are not tests.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import partial_json

HERE = Path(__file__).resolve().parent

PACKAGES = (
    "rxllm",
    "aiohttp",
    "msgspec",
    "reactivex",
    "openai",
    "httpx",
    "litellm",
    "anthropic",
    "jiter",
    "partial-json-parser",
    "matplotlib",
)

FLOORS = ("floor-lines", "floor-bulk")

# The performance targets (README, Performance).
PER_CHUNK_MAX = 1.5  # x the floor
TTFT_OVERHEAD_MAX_MS = 0.5
BURST_WALL_MAX = 1.5  # x the floor
BURST_RSS_MAX_MB = 70.0
RPS_MIN = 0.7  # x the floor
IMPORT_MAX_MS = 200.0
REPLAY_MAX_BYTES = 200.0  # per chunk beyond its text (docs/contracts.md, 2)

FLOOR_NOTE = """\
**The two floors.** Both are a careful hand-written client on aiohttp + msgspec that decodes
only the text it needs, calls user code straight from the reading loop, and checks nothing a
library must check (error events, truncation, finish reasons, usage). They differ in how they
find the events in the bytes:

* `floor-lines` reads with `async for line in resp.content` - aiohttp's line iterator, what
  most hand-written SSE clients do. aiohttp's line splitting costs more than everything else
  such a client does, so this floor is slow.
* `floor-bulk` reads with `resp.content.iter_any()` and splits each read into events with one
  `bytes.split(b"\\n\\n")` - the tightest plain-Python client we know, and the shape of rxllm's
  own reader. Ratios against it are the honest ones; ratios against `floor-lines` say how
  rxllm compares with the obvious hand-written client.
"""

METHOD_NOTE = """\
**Method.** One loopback server process (`benchmarks/server.py`: pre-encoded bodies written in
64 KiB blocks, so the server is never the bottleneck of one stream) serves every client. Each
client library runs in its own worker process, imported once, with one long-lived client (as an
application keeps); runs alternate between clients (A, B, C, A, B, C, ...) and every figure is
the median of the runs, with min-max in brackets. Per-chunk: wall time of one whole request
divided by its chunks. Time to first token: from calling the library to the first text in user
code, on a stream whose server writes the first content event at once and the rest a few ms
later; each run is the median of many requests. Concurrent streams: a fresh process per client
and run; after one warm-up stream, all streams start at once; CPU is the process's user + system
time during the burst; peak RSS is the process's high-water mark (`VmHWM`, imports included),
"before" its RSS just before the burst. Non-streaming: requests/s over as many requests as fit
in the run's time, so many at a time. Import: wall time of a fresh `python -c "import X"`,
interpreter start included (see the first row). Every client must produce exactly the text the
server sent.
"""


# --- the machine ---------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal"):
                    return f"{int(line.split()[1]) / 2**20:.0f} GiB"
    except OSError:
        pass
    return "?"


def _git() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=HERE.parent, capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "?"
    dirty = git("status", "--porcelain", "--", "rxllm")
    return commit + (" + uncommitted changes to rxllm/" if dirty else "")


def _command(args: list[str]) -> str:
    """The command line, with the ``--note`` text (shown above it) left out."""
    shown, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--note":
            shown.append('--note "..."')
            skip = True
        elif arg.startswith("--note="):
            shown.append('--note "..."')
        else:
            shown.append(arg)
    return " ".join(["python -m benchmarks", *shown])


def environment(note: str, *, smoke: bool) -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory": _memory(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": versions,
        "rxllm_commit": _git(),
        "load_before": os.getloadavg(),
        "command": _command(sys.argv[1:]),
        "note": note,
        "smoke": smoke,
    }


# --- numbers -------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def _span(values: list[float], scale: float = 1.0, digits: int = 2) -> str:
    """'median (min-max)' of ``values`` times ``scale``."""
    if not values:
        return "-"
    m, lo, hi = median(values) * scale, min(values) * scale, max(values) * scale
    if len(values) == 1:
        return f"{m:,.{digits}f}"
    return f"{m:,.{digits}f} ({lo:,.{digits}f}-{hi:,.{digits}f})"


def _ratio(runs: dict[str, list[float]], client: str, floor: str) -> float | None:
    if not runs.get(client) or not runs.get(floor):
        return None
    return median(runs[client]) / median(runs[floor])


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else (" **pass**" if ok else " **miss**")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _with_missing(lines: list[str], section: dict[str, Any], width: int) -> list[str]:
    for client, why in section.get("missing", {}).items():
        lines.append(f"| {client} | not available: {why} |" + " |" * (width - 2))
    return lines


# --- the sections --------------------------------------------------------------------------


def _per_chunk(section: dict[str, Any], title: str) -> list[str]:
    runs, n = section["runs"], section["chunks"]
    rows = []
    for client, values in runs.items():
        if not values:
            rows.append([client, "failed", "", "", ""])
            continue
        rows.append(
            [
                client,
                _span(values, 1e6 / n),
                f"{n / median(values):,.0f}",
                *(_x(_ratio(runs, client, floor)) for floor in FLOORS),
            ]
        )
    header = ["client", "µs/chunk", "chunks/s", "x floor-lines", "x floor-bulk"]
    lines = [f"### {title} ({n:,}-chunk stream)", "", *_table(header, rows)]
    return _with_missing(lines, section, len(header))


def _ttft(section: dict[str, Any]) -> list[str]:
    runs = section["runs"]
    rows = []
    for client, values in runs.items():
        overheads = [
            "-"
            if not values or not runs.get(floor)
            else f"{(median(values) - median(runs[floor])) * 1e3:+.3f} ms"
            for floor in FLOORS
        ]
        rows.append([client, _span(values, 1e3, 3), *overheads])
    header = ["client", "first token, ms", "over floor-lines", "over floor-bulk"]
    lines = [
        "### Time to first token (OpenAI format)",
        "",
        f"Each run is the median of {section['reps']} requests; the server writes the first "
        f"content event at once and the rest {section['gap_ms']} ms later.",
        "",
        *_table(header, rows),
    ]
    return _with_missing(lines, section, len(header))


def _burst(section: dict[str, Any]) -> list[str]:
    wall = section["wall"]
    rows = []
    for client, values in wall.items():
        rows.append(
            [
                client,
                _span(values, 1, 3),
                *(_x(_ratio(wall, client, floor)) for floor in FLOORS),
                _span(section["cpu"][client], 1, 3),
                _span(section["peak_rss_mb"][client], 1, 1),
                _span(section["setup_rss_mb"][client], 1, 1),
            ]
        )
    header = [
        "client",
        "wall, s",
        "x floor-lines",
        "x floor-bulk",
        "client CPU, s",
        "peak RSS, MB",
        "RSS before, MB",
    ]
    title = f"### {section['streams']} concurrent streams of {section['chunks']} chunks"
    lines = [title, "", *_table(header, rows)]
    return _with_missing(lines, section, len(header))


def _fetch(section: dict[str, Any], fmt: str) -> list[str]:
    levels = section["by_concurrency"]
    clients = list(next(iter(levels.values())).keys()) if levels else []
    rows = []
    for client in clients:
        row = [client]
        for runs in levels.values():
            row += [_span(runs[client], 1, 0), _x(_ratio(runs, client, "floor"))]
        rows.append(row)
    header = ["client"]
    for concurrency in levels:
        header += [f"requests/s, {concurrency} at a time", "x floor"]
    title = f"### Non-streaming requests/s ({fmt} format, {section['seconds']} s a run)"
    lines = [title, "", *_table(header, rows)]
    return _with_missing(lines, section, len(header))


def _imports(section: dict[str, Any]) -> list[str]:
    rows = [[name, _span(values, 1e3, 0)] for name, values in section["runs"].items()]
    lines = [
        '### `python -c "import X"` (fresh interpreter, start-up included)',
        "",
        *_table(["import", "ms"], rows),
    ]
    return _with_missing(lines, section, 2)


_KEEPERS = {
    "list": "list of ChatChunk (before)",
    "Replay": "`Replay` (compact)",
    "NoReplay": "`NoReplay` (`replay=False`)",
}


def _replay(section: dict[str, Any]) -> list[str]:
    title = "### What a stream keeps for replay"
    if "error" in section:
        return [title, "", f"failed: {section['error']}"]
    n, text = section["chunks"], section["text_bytes"]
    rows = []
    for name, kept in section["keepers"].items():
        iterate = kept.get("iterate_ns")
        rows.append(
            [
                _KEEPERS.get(name, name),
                f"{kept['bytes_per_chunk']:,.1f}",
                f"{kept['bytes'] / 2**20:,.2f}",
                f"{kept['append_ns']:,.0f}",
                "-" if iterate is None else f"{iterate:,.0f}",
            ]
        )
    header = [
        "kept as",
        "bytes/chunk beyond text",
        "MiB kept",
        "append, ns/chunk",
        "replay (iterate), ns/chunk",
    ]
    return [
        f"{title} ({n:,}-chunk OpenAI stream, {text:,} bytes of text)",
        "",
        *_table(header, rows),
        "",
        "Bytes still allocated (tracemalloc) once the stream has been parsed and each chunk "
        "handed to the keeper, beyond the UTF-8 bytes of the text; append and iterate: the best "
        "of 5 passes. `benchmarks/replay.py`.",
    ]


def _targets(results: dict[str, Any]) -> list[str]:
    rows: list[list[str]] = []

    def relative(
        name: str,
        runs: dict[str, list[float]],
        client: str,
        show: Callable[[list[float]], str],
        ok: Callable[[float], bool],
    ) -> None:
        if not runs.get(client):
            return
        cells = []
        for floor in FLOORS if "floor-bulk" in runs else ("floor",):
            ratio = _ratio(runs, client, floor)
            cells.append("-" if ratio is None else _x(ratio) + _verdict(ok(ratio)))
        if len(cells) == 1:
            cells *= 2
        rows.append([name, client, show(runs[client]), *cells])

    per_chunk = results.get("per_chunk")
    if per_chunk:
        n = per_chunk["chunks"]
        for client in ("rxllm-extract", "rxllm-collect"):
            relative(
                f"per-chunk ≤ {PER_CHUNK_MAX}x floor",
                per_chunk["runs"],
                client,
                lambda v, n=n: f"{median(v) * 1e6 / n:.2f} µs",
                lambda r: r <= PER_CHUNK_MAX,
            )
    anthropic = results.get("per_chunk_anthropic")
    if anthropic:
        n = anthropic["chunks"]
        relative(
            f"per-chunk, Anthropic format ≤ {PER_CHUNK_MAX}x floor",
            anthropic["runs"],
            "rxllm-extract",
            lambda v, n=n: f"{median(v) * 1e6 / n:.2f} µs",
            lambda r: r <= PER_CHUNK_MAX,
        )
    ttft = results.get("ttft")
    if ttft and ttft["runs"].get("rxllm-extract"):
        runs = ttft["runs"]
        cells = []
        for floor in FLOORS:
            if not runs.get(floor):
                cells.append("-")
                continue
            over = (median(runs["rxllm-extract"]) - median(runs[floor])) * 1e3
            cells.append(f"{over:+.3f} ms" + _verdict(over <= TTFT_OVERHEAD_MAX_MS))
        ms = f"{median(runs['rxllm-extract']) * 1e3:.3f} ms"
        rows.append([f"TTFT ≤ floor + {TTFT_OVERHEAD_MAX_MS} ms", "rxllm-extract", ms, *cells])
    burst = results.get("burst")
    if burst:
        label = f"{burst['streams']}x{burst['chunks']} wall ≤ {BURST_WALL_MAX}x floor"
        for client in ("rxllm-extract", "rxllm-collect"):
            relative(
                label,
                burst["wall"],
                client,
                lambda v: f"{median(v):.3f} s",
                lambda r: r <= BURST_WALL_MAX,
            )
        for client in ("rxllm-extract", "rxllm-collect"):
            rss = burst["peak_rss_mb"].get(client)
            if rss:
                verdict = _verdict(median(rss) <= BURST_RSS_MAX_MB)
                label = f"{burst['streams']}x{burst['chunks']} peak RSS ≤ {BURST_RSS_MAX_MB:.0f} MB"
                rows.append(
                    [
                        label,
                        client,
                        f"{median(rss):.1f} MB" + verdict,
                        "-",
                        "-",
                    ]
                )
    fetch = results.get("fetch", {}).get("openai")
    if fetch:
        for concurrency, runs in fetch["by_concurrency"].items():
            relative(
                f"non-streaming req/s ({concurrency} at a time) ≥ {RPS_MIN}x floor",
                runs,
                "rxllm",
                lambda v: f"{median(v):,.0f}/s",
                lambda r: r >= RPS_MIN,
            )
    imports = results.get("imports")
    if imports and imports["runs"].get("rxllm"):
        ms = median(imports["runs"]["rxllm"]) * 1e3
        verdict = _verdict(ms <= IMPORT_MAX_MS)
        label = f"`import rxllm` ≤ {IMPORT_MAX_MS:.0f} ms"
        rows.append([label, "rxllm", f"{ms:.0f} ms" + verdict, "-", "-"])
    replay = results.get("replay", {}).get("keepers", {}).get("Replay")
    if replay:
        per_chunk = replay["bytes_per_chunk"]
        verdict = _verdict(per_chunk <= REPLAY_MAX_BYTES)
        label = f"replay ≤ {REPLAY_MAX_BYTES:.0f} bytes/chunk beyond its text"
        rows.append([label, "rxllm", f"{per_chunk:.0f} bytes" + verdict, "-", "-"])
    goal = partial_json.goal_row(results.get("partial_json", {}))
    if goal is not None:
        label = f"partial_object ≥ {partial_json.GOAL_X:.0f}x faster than jiter re-parse at 100 KB"
        rows.append([label, "rxllm", goal, "-", "-"])
    header = ["target (issue 7)", "client", "rxllm", "vs floor-lines", "vs floor-bulk"]
    return [
        "### Targets",
        "",
        "Reported, not asserted. Non-streaming compares with the one floor (aiohttp + msgspec).",
        "",
        *_table(header, rows),
    ]


#: the client of each library whose non-streaming figure the summary shows
_FETCH_ROW = {
    "floor-bulk": "floor",
    "rxllm-extract": "rxllm",
    "openai": "openai",
    "litellm": "litellm",
    "anthropic": "anthropic",
}


def _summary(results: dict[str, Any]) -> list[str]:
    """One row per client: the headline figure of every benchmark (medians)."""
    per_chunk = results.get("per_chunk", {})
    anthropic = results.get("per_chunk_anthropic", {})
    ttft = results.get("ttft", {}).get("runs", {})
    burst = results.get("burst", {})
    fetch = results.get("fetch", {})
    clients: list[str] = []
    for section in (per_chunk.get("runs", {}), anthropic.get("runs", {}), ttft):
        clients += [c for c in section if c not in clients]

    def cell(runs: dict[str, list[float]], client: str, scale: float, digits: int) -> str:
        values = runs.get(client)
        return f"{median(values) * scale:,.{digits}f}" if values else ""

    def us(section: dict[str, Any], client: str) -> str:
        runs = section.get("runs", {})
        if not runs.get(client):
            return ""
        ratio = _ratio(runs, client, "floor-bulk")
        return f"{cell(runs, client, 1e6 / section['chunks'], 2)} ({_x(ratio)})"

    rows = []
    for client in clients:
        rps = ""
        if client in _FETCH_ROW:
            levels = fetch.get("openai" if client != "anthropic" else "anthropic", {})
            first = next(iter(levels.get("by_concurrency", {}).values()), {})
            rps = cell(first, _FETCH_ROW[client], 1, 0)
        rows.append(
            [
                client,
                us(per_chunk, client),
                us(anthropic, client),
                cell(ttft, client, 1e3, 2),
                cell(burst.get("wall", {}), client, 1, 2),
                cell(burst.get("peak_rss_mb", {}), client, 1, 0),
                rps,
            ]
        )
    header = [
        "client",
        "per-chunk, µs (x floor-bulk)",
        "Anthropic per-chunk, µs (x floor-bulk)",
        "first token, ms",
        f"{burst.get('streams', '?')}x{burst.get('chunks', '?')} wall, s",
        "peak RSS, MB",
        "non-streaming req/s",
    ]
    return ["### Summary (medians)", "", *_table(header, rows)]


def markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items())
    load = "/".join(f"{x:.2f}" for x in env["load_before"])
    load_after = "/".join(f"{x:.2f}" for x in env.get("load_after", ()))
    lines = ["# rxllm benchmarks", ""]
    if env["smoke"]:
        lines += ["> **Smoke run** (tiny sizes, one run): checks the harness, not the speed.", ""]
    if env["note"]:
        lines += [f"> {env['note']}", ""]
    lines += [
        f"- **Date**: {env['date']}; took {env.get('duration_s', '?')} s; "
        f"load average before {load}, after {load_after}",
        f"- **Machine**: {env['cpu']}, {env['cores']} cores, {env['memory']}; {env['os']}",
        f"- **Python**: {env['python']}; rxllm at {env['rxllm_commit']}",
        f"- **Packages**: {packages}",
        f"- **Command**: `{env['command']}`",
        "",
    ]
    lines += [*_summary(results), "", *_targets(results), ""]
    if "per_chunk" in results:
        lines += [*_per_chunk(results["per_chunk"], "Per-chunk cost, OpenAI format"), ""]
    if "ttft" in results:
        lines += [*_ttft(results["ttft"]), ""]
    if "burst" in results:
        lines += [*_burst(results["burst"]), ""]
    for fmt, section in results.get("fetch", {}).items():
        lines += [*_fetch(section, fmt), ""]
    if "imports" in results:
        lines += [*_imports(results["imports"]), ""]
    if "per_chunk_anthropic" in results:
        section = results["per_chunk_anthropic"]
        lines += [*_per_chunk(section, "Per-chunk cost, Anthropic format"), ""]
    if "replay" in results:
        lines += [*_replay(results["replay"]), ""]
    if "partial_json" in results:
        lines += [*partial_json.table(results["partial_json"]), ""]
    if results.get("failures"):
        lines += ["### Failures", ""] + [f"- {f}" for f in results["failures"]] + [""]
    lines += [FLOOR_NOTE, METHOD_NOTE]
    return "\n".join(lines)


# --- the chart ---------------------------------------------------------------------------------


def _colour(client: str) -> str:
    if client.startswith(("floor", "python", "aiohttp")):
        return "#9e9e9e"
    if client.startswith("rxllm"):
        return "#1f77b4"
    return "#ff7f0e"


def _bars(
    ax: Any, title: str, runs: dict[str, list[float]], scale: float, unit: str, *, ref: str = ""
) -> None:
    """Horizontal bars of the medians, min-max whiskers; labelled "x ref" when ``ref`` ran."""
    names = [c for c, v in runs.items() if v]
    if not names:
        ax.set_axis_off()
        return
    mids = [median(runs[c]) * scale for c in names]
    lows = [m - min(runs[c]) * scale for m, c in zip(mids, names, strict=True)]
    highs = [max(runs[c]) * scale - m for m, c in zip(mids, names, strict=True)]
    positions = list(range(len(names)))[::-1]
    ax.barh(positions, mids, xerr=[lows, highs], color=[_colour(c) for c in names], capsize=2)
    ax.set_yticks(positions, names, fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel(unit, fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    if max(mids) / max(min(mids), 1e-12) > 20:
        from matplotlib.ticker import FuncFormatter, NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _number(value)))
        ax.xaxis.set_minor_formatter(NullFormatter())
    for name, position, value in zip(names, positions, mids, strict=True):
        ratio = _ratio(runs, name, ref) if ref and name != ref else None
        label = f" {_number(value)}" + (f" ({ratio:.2f}x)" if ratio is not None else "")
        end = max(runs[name]) * scale  # right of the whisker
        ax.annotate(label, (end, position), va="center", fontsize=7, annotation_clip=False)


def _number(value: float) -> str:
    """Three significant digits, without exponents."""
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value >= 0.001 else f"{value:.2g}"


def chart(results: dict[str, Any], path: Path) -> Path | None:
    """Write the chart; None (and no file) if matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(2, 4, figsize=(17, 7.5))
    panels = iter(axes.flat)
    if "per_chunk" in results:
        section = results["per_chunk"]
        title = f"per-chunk cost, OpenAI ({section['chunks']:,} chunks)"
        scale = 1e6 / section["chunks"]
        _bars(next(panels), title, section["runs"], scale, "µs/chunk", ref="floor-bulk")
    if "per_chunk_anthropic" in results:
        section = results["per_chunk_anthropic"]
        title = f"per-chunk cost, Anthropic ({section['chunks']:,} chunks)"
        scale = 1e6 / section["chunks"]
        _bars(next(panels), title, section["runs"], scale, "µs/chunk", ref="floor-bulk")
    if "ttft" in results:
        _bars(next(panels), "time to first token", results["ttft"]["runs"], 1e3, "ms")
    if "burst" in results:
        section = results["burst"]
        label = f"{section['streams']}x{section['chunks']} concurrent"
        _bars(next(panels), f"{label}: wall", section["wall"], 1, "s", ref="floor-bulk")
        _bars(next(panels), f"{label}: peak RSS", section["peak_rss_mb"], 1, "MB")
    for fmt, section in results.get("fetch", {}).items():
        if fmt == "openai":
            for concurrency, runs in section["by_concurrency"].items():
                title = f"non-streaming, {concurrency} at a time"
                _bars(next(panels), title, runs, 1, "requests/s", ref="floor")
                break
    if "imports" in results:
        _bars(next(panels), 'python -c "import X"', results["imports"]["runs"], 1e3, "ms")
    env = results["environment"]
    info = next(panels, None)
    if info is not None:
        info.set_axis_off()
        versions = "\n".join(f"{k} {v}" for k, v in env["packages"].items())
        text = (
            f"{env['date']}\n{env['cpu']}, {env['cores']} cores\n{env['python']}\n"
            f"rxllm at {env['rxllm_commit']}\n\n{versions}"
        )
        info.text(0, 1, text, va="top", fontsize=8, family="monospace")
    for ax in panels:
        ax.set_axis_off()
    heading = "rxllm vs the floor (aiohttp + msgspec) and the peers, one loopback server"
    heading += " (medians, min-max whiskers; (x) = ratio to floor-bulk / floor)"
    if env["smoke"]:
        heading += " - SMOKE RUN"
    if env["note"]:
        heading += "\n" + env["note"]
    fig.suptitle(heading, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    """Re-render results.md and results.png from a results.json (no measuring)."""
    import json

    source = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results.json"
    results = json.loads(source.read_text())
    (source.parent / "results.md").write_text(markdown(results))
    chart(results, source.parent / "results.png")
    print(f"wrote {source.parent / 'results.md'} and results.png")


if __name__ == "__main__":
    main()
