"""The gateway benchmark's results as Markdown (results.md) and a chart (results.png), with the
machine, versions and date. ``python -m benchmarks.gateway.report [results.json]`` re-renders
both from the raw figures. Goals are reported, never asserted: benchmarks are not tests.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import json
import math
import sys
from pathlib import Path
from typing import Any

from .. import report as base

HERE = Path(__file__).resolve().parent

PACKAGES = (
    "rxllm",
    "aiohttp",
    "msgspec",
    "reactivex",
    "litellm",
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "psutil",
    "matplotlib",
)

# The goals (README, Performance).
ADDED_P50_MAX_MS = 0.5
ADDED_P99_MAX_MS = 2.0
RATE_VS_LITELLM_MIN = 10.0
STREAM_KB_MAX = 30.0

TITLE = "# rxllm serve vs LiteLLM's proxy: gateway benchmark"


def environment(note: str, *, quick: bool, smoke: bool = False) -> dict[str, Any]:
    env = base.environment(note, smoke=smoke)
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    env["packages"] = versions
    env["command"] = env["command"].replace("python -m benchmarks", "python -m benchmarks.gateway")
    env["quick"] = quick
    return env


# --- numbers -------------------------------------------------------------------------------


def _ms(seconds: float | None, digits: int = 2) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    return f"{seconds * 1e3:,.{digits}f}"


def _rate(value: float | None) -> str:
    return "none" if value is None else f"{value:,.0f}/s"


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else (" **pass**" if ok else " **miss**")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return base._table(header, rows)


def gateways_run(results: dict[str, Any]) -> list[str]:
    """The gateways measured (in the latency tables), rxllm first."""
    return list(results.get("sequential", {}).get("samples", {}))


def added(results: dict[str, Any], section: str, name: str, q: str) -> float | None:
    """A gateway's percentile minus the direct upstream's in the same (alternating) pass."""
    samples = results.get(section, {}).get("samples", {})
    direct = results.get(section, {}).get("direct", {})
    if name not in samples or name not in direct or q not in samples[name]:
        return None
    value: float = samples[name][q] - direct[name][q]
    return value


def sustained(results: dict[str, Any], gateway: str, workers: int) -> dict[str, Any] | None:
    for section in results.get("rate", {}).values():
        if section.get("gateway") == gateway and section.get("workers") == workers:
            found: dict[str, Any] = section
            return found
    return None


def cpu_per_request(section: dict[str, Any]) -> float | None:
    """Gateway CPU seconds per request at the highest rung within the knee (the most
    requests, the least idle time counted)."""
    steps = [st for st in section.get("steps", []) if st.get("cpu_s") is not None]
    passed = [st for st in steps if st["knee_ok"]] or steps
    if not passed:
        return None
    top = passed[-1]
    value: float = top["cpu_s"] / top["sent"]
    return value


def per_stream_kb(results: dict[str, Any], gateway: str) -> float | None:
    section = results.get("memory", {}).get(gateway, {})
    value = section.get("per_stream_bytes")
    return None if value is None else value / 1024


def coalesced(results: dict[str, Any], name: str) -> tuple[int, int] | None:
    """(events in a shared read, events within 1 ms of the previous one)."""
    section = results.get("coalescing", {}).get("targets", {}).get(name)
    if not section:
        return None
    return section["in_a_shared_read"], section["within_1ms"]


# --- the sections --------------------------------------------------------------------------


def _goals(results: dict[str, Any]) -> list[str]:
    lines = ["### Goals (`rxllm serve`)", ""]
    if "rxllm" not in gateways_run(results):
        why = results.get("gateways", {}).get("rxllm", {}).get("missing", "not measured")
        return [*lines, f"Not measured: {why}."]
    rows = []
    for section, what in (("sequential", "non-streaming"), ("ttft", "time to first token")):
        for q, bound in (("p50", ADDED_P50_MAX_MS), ("p99", ADDED_P99_MAX_MS)):
            value = added(results, section, "rxllm", q)
            ok = None if value is None else value * 1e3 <= bound
            litellm = added(results, section, "litellm", q)
            rows.append(
                [
                    f"added {q}, {what}, ≤ {bound} ms",
                    f"{_ms(value, 3)} ms{_verdict(ok)}",
                    f"{_ms(litellm, 3)} ms" if litellm is not None else "-",
                ]
            )
    for workers in results.get("settings", {}).get("workers", (1,)):
        mine, theirs = sustained(results, "rxllm", workers), sustained(results, "litellm", workers)
        if mine is None:
            continue
        for key, what in (("goal_rate", "p99 added < 10 ms"), ("knee_rate", "knee")):
            ours, peer = mine.get(key), (theirs or {}).get(key)
            if peer:
                ratio = (ours or 0) / peer
                ok: bool | None = ratio >= RATE_VS_LITELLM_MIN
                shown = f"{_rate(ours)}: {ratio:,.1f}x{_verdict(ok)}"
            elif ours and theirs is not None:
                shown = f"{_rate(ours)}: LiteLLM sustains no rate{_verdict(True)}"
            else:
                shown = _rate(ours)
            if ours:
                shown += _limit_note(mine)
            name = "1 worker" if workers == 1 else f"{workers} workers"
            rows.append(
                [
                    f"sustained rate ({what}), {name}, ≥ {RATE_VS_LITELLM_MIN:.0f}x LiteLLM",
                    shown,
                    _rate(peer) if theirs is not None else "-",
                ]
            )
    for workers in results.get("settings", {}).get("workers", (1,)):
        mine, theirs = sustained(results, "rxllm", workers), sustained(results, "litellm", workers)
        if mine is None or cpu_per_request(mine) is None:
            continue
        name = "1 worker" if workers == 1 else f"{workers} workers"
        peer = None if theirs is None else cpu_per_request(theirs)
        rows.append(
            [
                f"(no goal) gateway CPU per request, {name}",
                f"{_ms(cpu_per_request(mine), 3)} ms",
                "-" if peer is None else f"{_ms(peer, 3)} ms",
            ]
        )
    kb = per_stream_kb(results, "rxllm")
    peer_kb = per_stream_kb(results, "litellm")
    streams = results.get("memory", {}).get("rxllm", {}).get("opened", 0)
    rows.append(
        [
            f"memory per open stream ({streams:,} open), ≤ {STREAM_KB_MAX:.0f} KB",
            "-" if kb is None else f"{kb:,.1f} KB{_verdict(kb <= STREAM_KB_MAX)}",
            "-" if peer_kb is None else f"{peer_kb:,.1f} KB",
        ]
    )
    mine_c, peer_c = coalesced(results, "rxllm"), coalesced(results, "litellm")
    if mine_c is not None:
        rows.append(
            [
                "coalesced chunks (in a shared read / within 1 ms), zero",
                f"{mine_c[0]} / {mine_c[1]}{_verdict(mine_c == (0, 0))}",
                "-" if peer_c is None else f"{peer_c[0]} / {peer_c[1]}",
            ]
        )
    return lines + _table(["goal", "rxllm serve", "LiteLLM's proxy"], rows)


def _latency(results: dict[str, Any]) -> list[str]:
    seq, ttft = results.get("sequential", {}), results.get("ttft", {})
    if not seq.get("samples"):
        return []
    s = results["settings"]
    lines = [
        f"### Added latency, one request at a time ({s['seq_reps']:,} non-streaming requests and"
        f" {s['ttft_reps']:,} streams a gateway, alternating with the direct upstream's)",
        "",
    ]
    rows = []

    def pair(section: dict[str, Any], name: str, key: str = "samples") -> str:
        sample = section.get(key, {}).get(name, {})
        return f"{_ms(sample.get('p50'), 3)} / {_ms(sample.get('p99'), 3)}"

    def extra(section: str, name: str) -> str:
        return (
            f"**{_ms(added(results, section, name, 'p50'), 3)}** / "
            f"**{_ms(added(results, section, name, 'p99'), 3)}**"
        )

    for name in seq["samples"]:
        rows.append([f"direct (alternating with {name})", pair(seq, name, "direct"), "-"])
        rows[-1] += [pair(ttft, name, "direct"), "-"]
        rows.append([name, pair(seq, name), extra("sequential", name)])
        rows[-1] += [pair(ttft, name), extra("ttft", name)]
    header = [
        "target",
        "non-streaming p50 / p99, ms",
        "added p50 / p99, ms",
        "first token p50 / p99, ms",
        "added p50 / p99, ms",
    ]
    return lines + _table(header, rows)


def _limit_note(section: dict[str, Any]) -> str:
    if section.get("ladder_top"):
        return " (the ladder's top: at least this)"
    if section.get("harness_limited"):
        return " (the direct upstream missed too: machine-limited)"
    return ""


def _rates(results: dict[str, Any]) -> list[str]:
    rates = results.get("rate", {})
    if not rates:
        return []
    lines = ["### Highest sustained request rate (open loop, non-streaming)", ""]
    rows = []
    for name, section in rates.items():
        note = _limit_note(section)
        rows.append(
            [
                name,
                _rate(section.get("goal_rate")) + (note if section.get("goal_rate") else ""),
                _rate(section.get("knee_rate")) + (note if section.get("knee_rate") else ""),
                _ms(section.get("base_p99")),
                _ms(cpu_per_request(section)),
            ]
        )
    header = [
        "gateway",
        "p99 added < 10 ms",
        "knee: p99 < own low-rate p99 + 10 ms",
        "p99 at the lowest rate, ms",
        "gateway CPU per request, ms",
    ]
    lines += _table(header, rows)
    # the ladder: p99 at every rate each ran, and the direct upstream's in the same pair
    all_rates = sorted({st["rate"] for sec in rates.values() for st in sec.get("steps", [])})
    names = list(rates)
    ladder_rows = []
    for rate in all_rates:
        row = [f"{rate:,.0f}"]
        for name in names:
            step = next((st for st in rates[name]["steps"] if st["rate"] == rate), None)
            if step is None:
                row.append("")
                continue
            mark = "" if step["goal_ok"] else (" ~" if step["knee_ok"] else " ✗")
            errors = f", {step['errors']} errors" if step["errors"] else ""
            direct = step.get("direct", {}).get("latency", {}).get("p99")
            row.append(f"{_ms(step['latency'].get('p99'))}{mark} ({_ms(direct)}{errors})")
        ladder_rows.append(row)
    lines += [
        "",
        "p99 latency in ms (counted from each request's scheduled send time) at each offered "
        "rate, and in brackets the direct upstream's in the run just before; ✗ = over both "
        "bounds, ~ = within the knee only; the first rung a gateway misses (after one retry) "
        "ends its ladder:",
        "",
        *_table(["rate/s", *names], ladder_rows),
    ]
    return lines


def _memory(results: dict[str, Any]) -> list[str]:
    memory = results.get("memory", {})
    if not memory:
        return []
    streams = results["settings"]["streams"]
    lines = [
        f"### Memory with {streams:,} open streams (gateway RSS, summed over its processes)",
        "",
    ]
    rows = []
    for name, m in memory.items():
        if "rss_before" not in m:
            rows.append([name, m.get("error", "-"), "", "", "", "", ""])
            continue
        idle = results.get("gateways", {}).get(name, {}).get("idle_rss")
        kb = per_stream_kb(results, name)
        rows.append(
            [
                name,
                "-" if idle is None else f"{idle / 2**20:,.0f}",
                f"{m['rss_before'] / 2**20:,.0f}",
                f"{m['rss_open'] / 2**20:,.0f}",
                "-" if kb is None else f"**{kb:,.1f}**",
                f"{m['opened']:,} in {m['open_s']:.1f} s",
                f"{m['completed']:,}"
                + (f", {m['hung']} hung" if m.get("hung") else "")
                + (f", {m['errors']} failed" if m.get("errors") else ""),
            ]
        )
    header = [
        "gateway",
        "RSS at start, MB",
        "before, MB",
        "streams open, MB",
        "per open stream, KB",
        "opened",
        "ended cleanly",
    ]
    return lines + _table(header, rows)


def _coalescing(results: dict[str, Any]) -> list[str]:
    section = results.get("coalescing", {})
    if not section.get("targets"):
        return []
    s = results["settings"]
    lines = [
        f"### Coalescing (upstream writes a content event every {section['gap_ms']} ms, "
        f"{s['coalesce_chunks']} a stream, {s['coalesce_reps']} stream(s) a target)",
        "",
    ]
    rows = []
    for name, c in section["targets"].items():
        gaps = c["inter_arrival"]
        rows.append(
            [
                name,
                f"{c['content_events']:,}",
                f"**{c['in_a_shared_read']}**",
                f"**{c['within_1ms']}**",
                f"{_ms(gaps.get('min'))} / {_ms(gaps.get('p50'))} / {_ms(gaps.get('max'))}",
            ]
        )
    header = [
        "target",
        "content events",
        "in a read with another",
        "within 1 ms of the previous",
        "inter-arrival min / p50 / max, ms",
    ]
    return lines + _table(header, rows)


def _gateways(results: dict[str, Any]) -> list[str]:
    rows = []
    for name, g in results.get("gateways", {}).items():
        if "missing" in g:
            rows.append([name, f"not available: {g['missing']}", "", ""])
        else:
            rows.append(
                [
                    name,
                    f"`{g['command']}`",
                    f"{g['ready_s']:.1f}",
                    f"{g['idle_rss'] / 2**20:,.0f} ({g['processes']} process(es))",
                ]
            )
    return [
        "### The gateways",
        "",
        *_table(["gateway", "command (1 worker)", "ready after, s", "RSS at start, MB"], rows),
    ]


def _checks(results: dict[str, Any]) -> list[str]:
    check = results.get("check", {})
    if not check:
        return []
    rows = []
    for name, c in check.items():
        if "error" in c:
            rows.append([name, c["error"], "", "", ""])
            continue
        rows.append(
            [
                name,
                "yes" if c.get("text") == c.get("stream_text") else "no",
                f"{c.get('stream_events')} ({c.get('stream_content_events')} with content)",
                "yes" if c.get("stream_usage") else "**no**",
                "yes" if c.get("stream_done") else "**no**",
            ]
        )
    header = ["target", "same text both ways", "stream events", "usage chunk", "[DONE]"]
    return ["### What each target returned (checked before measuring)", "", *_table(header, rows)]


METHOD = """\
**Method.** Every party has its own process: the upstream (`benchmarks/gateway/upstream.py`, an
aiohttp OpenAI-compatible server on uvloop whose bodies are encoded once; a stream writes each
event on its own), each gateway, and the load generator (`benchmarks/gateway/load.py`, one
pooled aiohttp session on uvloop). Both gateways read the same LiteLLM-format config file
(below); each model name routes to an upstream profile (`bench`: a 10-piece answer;
`bench-coalesce`: a content event every few ms; `bench-hold`: a stream held open until
released).

- *Added latency*: a gateway's percentile minus the direct upstream's, measured the same way in
  one pass whose requests alternate between the two (the other gateway idle). Non-streaming:
  request start to the whole body; time to first token: request start to the first content
  event (the stream is then read to its end).
- *Sustained rate*: open loop, each request sent at its scheduled time whatever the others are
  doing, latency counted from that time (so falling behind is counted, not hidden); the first
  tenth of each rung is not counted. Each rung is a pair of runs at the same rate: the direct
  upstream's, then the gateway's. A rung passes when every request succeeds and the gateway's
  p99 minus the direct upstream's is under 10 ms (the goal's criterion). The *knee* compares
  instead with the gateway's own p99 at the lowest rate: how far load can go before queueing,
  which says something for a gateway whose own latency is already over 10 ms. A rung that
  misses is run once more; the first rung that still misses ends the ladder. Gateway CPU per
  request: user + system time of the gateway's processes during its highest rung within the
  knee, over that rung's requests.
- *Memory*: RSS of the gateway's processes, summed (psutil, else /proc), just before opening
  the streams and while all are open (median of three samples 0.5 s apart); the difference over
  the streams open. Streams open in batches of 50 every 20 ms; each is open once its first
  content event has arrived; the upstream sends one more every second. Then the upstream ends
  them and every one must end with `[DONE]`.
- *Coalescing*: the client notes the socket read and the time each content event arrives in;
  events the upstream wrote several ms apart that share a read, or arrive within 1 ms of the
  previous, were merged on the way.

On 2 cores the upstream, the gateway (and its workers) and the load generator share the CPU: a
second worker has at most what is left of a core, and the highest rates say as much about the
machine as about the gateway.
"""


def _others(results: dict[str, Any]) -> str:
    share = results.get("others_busy")
    if share is None:
        return ""
    verdict = "a busy machine" if share > 0.1 else "a quiet machine"
    return f"; other processes used {share:.0%} of the CPU meanwhile ({verdict})"


def markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    packages = ", ".join(f"{k} {v}" for k, v in env["packages"].items())
    load = "/".join(f"{x:.2f}" for x in env["load_before"])
    load_after = "/".join(f"{x:.2f}" for x in env.get("load_after", ()))
    lines = [TITLE, ""]
    if env.get("smoke"):
        lines += ["> **Smoke run** (tiny sizes): checks the harness, not the speed.", ""]
    elif env.get("quick"):
        lines += [
            "> **Quick run** (small sizes, short rungs): checks the harness; rough figures.",
            "",
        ]
    if env["note"]:
        lines += [f"> {env['note']}", ""]
    lines += [
        f"- **Date**: {env['date']}; took {results.get('duration_s', '?')} s; "
        f"load average before {load}, after {load_after}{_others(results)}",
        f"- **Machine**: {env['cpu']}, {env['cores']} cores, {env['memory']}; {env['os']}",
        f"- **Python**: {env['python']}; rxllm at {env['rxllm_commit']}",
        f"- **Packages**: {packages}",
        f"- **Command**: `{env['command']}`",
        "",
    ]
    for section in (_goals, _latency, _rates, _memory, _coalescing, _gateways, _checks):
        part = section(results)
        if part:
            lines += [*part, ""]
    if results.get("failures"):
        lines += ["### Failures", ""] + [f"- {f}" for f in results["failures"]] + [""]
    lines += [
        METHOD,
        "The config file both gateways read:",
        "",
        "```yaml",
        results.get("config", "").rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)


# --- the chart ---------------------------------------------------------------------------------

COLOURS = {"direct": "#9e9e9e", "rxllm": "#1f77b4", "litellm": "#ff7f0e"}


def _colour(name: str) -> str:
    return COLOURS.get(name.split(" ", maxsplit=1)[0], "#2ca02c")


def chart(results: dict[str, Any], path: Path) -> Path | None:
    """Write the chart; None (and no file) if matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, NullFormatter
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.6))
    number = FuncFormatter(lambda value, _: base._number(value))
    gateways = gateways_run(results)

    # 1. added latency, p50 and p99, non-streaming and first token
    ax = axes[0]
    labels, values, colours = [], [], []
    for name in gateways:
        for section, what in (("sequential", "full"), ("ttft", "TTFT")):
            for q in ("p50", "p99"):
                value = added(results, section, name, q)
                if value is not None:
                    labels.append(f"{name} {what} {q}")
                    values.append(max(value * 1e3, 1e-3))
                    colours.append(_colour(name))
    if values:
        positions = list(range(len(values)))[::-1]
        ax.barh(positions, values, color=colours)
        ax.set_yticks(positions, labels, fontsize=8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(number)
        for position, value in zip(positions, values, strict=True):
            ax.annotate(f" {base._number(value)}", (value, position), va="center", fontsize=7)
        ax.axvline(ADDED_P50_MAX_MS, color="#1f77b4", ls=":", lw=1)
        ax.axvline(ADDED_P99_MAX_MS, color="#1f77b4", ls="--", lw=1)
    ax.set_title(
        "added latency, one at a time (ms, log)\ngoals: p50 0.5 (dotted), p99 2 (dashed)",
        fontsize=9,
    )
    ax.tick_params(axis="x", labelsize=7)

    # 2. p99 vs offered rate
    ax = axes[1]
    for name, section in results.get("rate", {}).items():
        steps = section.get("steps", [])
        if not steps:
            continue
        xs = [st["rate"] for st in steps]
        ys = [max(st["latency"].get("p99", math.nan) * 1e3, 1e-2) for st in steps]
        style = "-" if section.get("workers", 1) == 1 else "--"
        ax.plot(xs, ys, style, marker="o", ms=3, color=_colour(name), label=name)
    paired = next((sec for sec in results.get("rate", {}).values() if sec.get("steps")), None)
    if paired is not None:
        steps = [st for st in paired["steps"] if "direct" in st]
        xs = [st["rate"] for st in steps]
        ys = [max(st["direct"]["latency"].get("p99", math.nan) * 1e3, 1e-2) for st in steps]
        ax.plot(xs, ys, ":", marker=".", ms=3, color=COLOURS["direct"], label="direct upstream")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(number)
    ax.yaxis.set_major_formatter(number)
    ax.set_xlabel("offered rate, requests/s", fontsize=8)
    ax.set_ylabel("p99 latency, ms", fontsize=8)
    title = "p99 latency vs offered rate (open loop)\ngoal: p99 - direct's p99 < 10 ms"
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)

    # 3. memory per open stream
    ax = axes[2]
    names = [n for n in results.get("memory", {}) if per_stream_kb(results, n) is not None]
    if names:
        kbs = [per_stream_kb(results, n) or 0.0 for n in names]
        ax.bar(names, kbs, color=[_colour(n) for n in names])
        for i, kb in enumerate(kbs):
            ax.annotate(f"{kb:,.1f}", (i, kb), ha="center", va="bottom", fontsize=8)
        ax.axhline(STREAM_KB_MAX, color="#1f77b4", ls="--", lw=1)
    streams = results.get("settings", {}).get("streams", 0)
    ax.set_title(f"RSS per open stream, KB ({streams:,} open)\ngoal ≤ 30 KB (dashed)", fontsize=9)
    ax.tick_params(labelsize=8)

    # 4. inter-arrival times at the client, one stream each
    ax = axes[3]
    section = results.get("coalescing", {})
    for name, c in section.get("targets", {}).items():
        for arrivals in c.get("arrivals", [])[:1]:
            gaps = sorted(max((b - a) * 1e3, 0.01) for a, b in itertools.pairwise(arrivals))
            if gaps:
                ys = [(i + 1) / len(gaps) for i in range(len(gaps))]
                ax.step(gaps, ys, where="post", color=_colour(name), label=name)
    if section.get("gap_ms"):
        ax.axvline(section["gap_ms"], color="black", lw=0.8, ls=":")
        ax.axvline(1, color="red", lw=0.8, ls="--")
    ax.set_xscale("log")
    ax.set_xlim(0.01, max(4 * float(section.get("gap_ms") or 5), 20))
    ax.xaxis.set_major_formatter(number)
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(
        f"inter-arrival at the client, ms (upstream: every {section.get('gap_ms', '?')} ms)",
        fontsize=8,
    )
    ax.set_title(
        "coalescing: CDF of chunk inter-arrival\n(left of the red line = merged)", fontsize=9
    )
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)

    env = results["environment"]
    heading = (
        f"rxllm serve vs LiteLLM's proxy, same upstream and config - {env['date']}, "
        f"{env['cpu']}, {env['cores']} cores, load avg {env['load_before'][0]:.2f} before"
    )
    if results.get("others_busy") is not None:
        heading += f"; other processes used {results['others_busy']:.0%} of the CPU meanwhile"
    if env.get("smoke"):
        heading += " - SMOKE RUN"
    elif env.get("quick"):
        heading += " - QUICK RUN"
    if env["note"]:
        heading += "\n" + env["note"]
    fig.suptitle(heading, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> None:
    """Re-render results.md and results.png from a results.json (no measuring)."""
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "results.json"
    results = json.loads(source.read_text())
    (source.parent / "results.md").write_text(markdown(results))
    chart(results, source.parent / "results.png")
    print(f"wrote {source.parent / 'results.md'} and results.png")


if __name__ == "__main__":
    main()
