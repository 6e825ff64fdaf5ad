"""Structured output as it streams: ``python -m benchmarks.partial_json [--smoke]``.

A JSON answer - a catalogue: an object holding an array of records with strings (escapes,
non-ASCII), numbers, booleans, short arrays and a nested object - of about 10 KB, 100 KB and
1 MB, cut into 5-character deltas (about a token each), is turned into its value so far after
every delta, then the whole value. Contenders:

* ``rxllm partial_object`` - ``ops.partial_object()`` over the deltas as ``ChatChunk`` s
  (``reactivex.from_iterable``, built beforehand), every partial value emitted to a subscriber
  that drops it, then the strict value (msgspec) at the end: the whole operator;
* ``rxllm parser, feed only`` - its incremental parser (``rxllm/_partial_json.py``) reading the
  deltas, without taking the values: the difference is the snapshots (each copies the
  containers still open - here the array of records - so they grow with the answer) and the
  operator;
* ``jiter re-parse`` - what openai-python does: after each delta, the text so far re-parsed
  with ``jiter.from_json(bytes(text, "utf-8"), partial_mode=True)``;
* ``partial-json-parser`` - after each delta, ``partial_json_parser.loads(text so far)``.

Re-parsing costs the text so far per delta, so the whole answer costs its length squared: at
100 KB and beyond that takes minutes. There the re-parsers are timed on every k-th delta only
and the total estimated as k times the sum (the cost grows smoothly with the text's length),
marked "est.". Times are CPU time of this one process (``time.process_time``: the machine may be
shared, and wall time would count other processes' turns), with the garbage collector on, as in
an application; rxllm's are the best of ``--runs`` runs.

Prints a Markdown table and ``RESULT {json}`` (for ``python -m benchmarks``).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import math
import sys
import time
from collections.abc import Callable
from typing import Any

#: CPU time of this process: CPU-bound work, timed on a machine that may be shared (wall time
#: would count other processes' turns on the cores).
_clock = time.process_time

SIZES = (10_000, 100_000, 1_000_000)
SMOKE_SIZES = (2_000, 10_000)
DELTA = 5
#: Re-parses timed per size at most (every k-th delta beyond this), and at least.
SAMPLES = 400
MIN_SAMPLES = 20
#: Seconds of re-parsing per contender and size, about, beyond which fewer deltas are sampled.
BUDGET = 15.0
#: The speed-up over the jiter re-parse wanted at 100 KB.
GOAL_X = 20.0
GOAL_SIZE = 100_000


def _record(i: int) -> dict[str, Any]:
    return {
        "id": i,
        "name": f"Item number {i}",
        "description": f'A line of prose with "quotes", a tab\t and caf\u00e9 \u2014 {i} things.',
        "price": round(i * 1.37 + 0.99, 2),
        "tags": ["alpha", "beta", "gamma"][: i % 3 + 1],
        "in_stock": i % 2 == 0,
        "dimensions": {"w": i % 17, "h": i % 13, "unit": "cm"},
    }


def document(size: int) -> str:
    """A JSON answer of about ``size`` UTF-8 bytes (as many records as fit)."""

    def dump(n: int) -> str:
        head = {"title": "Catalogue \u00e9t\u00e9 2026", "currency": "EUR"}
        return json.dumps(
            {**head, "items": [_record(i) for i in range(n)]}, ensure_ascii=False, indent=1
        )

    low, high = 1, 2
    while len(dump(high).encode()) < size:
        low, high = high, high * 2
    while low < high:  # the fewest records reaching size
        mid = (low + high) // 2
        if len(dump(mid).encode()) < size:
            low = mid + 1
        else:
            high = mid
    return dump(low)


def deltas_of(text: str) -> list[str]:
    return [text[i : i + DELTA] for i in range(0, len(text), DELTA)]


def _best(work: Callable[[], Any], runs: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(runs):
        gc.collect()
        start = _clock()
        result = work()
        best = min(best, _clock() - start)
    return best, result


def rxllm_operator(deltas: list[str], runs: int) -> tuple[float, int]:
    import reactivex
    from reactivex.disposable import Disposable

    from rxllm import ops
    from rxllm.types import ChatChunk, Delta, StreamChoice

    def chunk(text: str | None, finish: str | None = None) -> ChatChunk:
        choice = StreamChoice(delta=Delta(content=text), finish_reason=finish)
        return ChatChunk(id="c", created=0, model="m", provider="p", choices=[choice])

    chunks = [chunk(d) for d in deltas] + [chunk(None, "stop")]

    def emit(observer: Any, scheduler: Any = None) -> Any:
        # As a stream emits: one direct on_next per chunk (reactivex.from_iterable would add its
        # scheduler's cost to every chunk).
        for c in chunks:
            observer.on_next(c)
        observer.on_completed()
        return Disposable()

    source: reactivex.Observable[ChatChunk] = reactivex.Observable(emit)

    def work() -> int:
        count = [0]

        def sink(_: Any) -> None:
            count[0] += 1

        source.pipe(ops.partial_object()).subscribe(sink)
        return count[0]

    seconds, emitted = _best(work, runs)
    return seconds, emitted


def rxllm_parser(deltas: list[str], runs: int) -> tuple[float, int]:
    """The incremental parser's reading alone: ``feed`` every delta, no snapshot."""
    from rxllm._partial_json import PartialJSON

    def work() -> int:
        parser = PartialJSON()
        feed = parser.feed
        changed = 0
        for delta in deltas:
            changed += feed(delta)
        assert parser.close()
        return changed

    return _best(work, runs)


def _reparse(parse: Callable[[str], Any], deltas: list[str]) -> tuple[float, bool]:
    """(seconds for re-parsing after every delta, estimated?) - timing every k-th delta, with
    fewer samples when even those would take longer than ``BUDGET`` seconds."""
    ends = []
    end = 0
    for delta in deltas:
        end += len(delta)
        ends.append(end)
    text = "".join(deltas)
    start = _clock()
    parse(text)
    whole = _clock() - start  # the last re-parse; the average one costs about half
    samples = min(SAMPLES, max(MIN_SAMPLES, int(BUDGET / max(whole / 2, 1e-9))))
    step = max(1, math.ceil(len(deltas) / samples))
    total = 0.0
    gc.collect()
    for i in range(step - 1, len(deltas), step):
        so_far = text[: ends[i]]
        start = _clock()
        parse(so_far)
        total += _clock() - start
    return total * step, step > 1


def jiter_reparse(deltas: list[str]) -> tuple[float, bool]:
    from jiter import from_json

    return _reparse(lambda s: from_json(bytes(s, "utf-8"), partial_mode=True), deltas)


def pjp_reparse(deltas: list[str]) -> tuple[float, bool]:
    from partial_json_parser import loads

    return _reparse(loads, deltas)


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def measure(sizes: tuple[int, ...], runs: int) -> dict[str, Any]:
    out: dict[str, Any] = {"delta": DELTA, "runs": runs, "samples": SAMPLES, "sizes": []}
    for size in sizes:
        text = document(size)
        deltas = deltas_of(text)
        row: dict[str, Any] = {
            "target": size,
            "bytes": len(text.encode()),
            "deltas": len(deltas),
        }
        row["operator_s"], row["partials"] = rxllm_operator(deltas, runs)
        row["parser_s"], _ = rxllm_parser(deltas, runs)
        if _available("jiter"):
            row["jiter_s"], row["jiter_est"] = jiter_reparse(deltas)
        if _available("partial_json_parser"):
            row["pjp_s"], row["pjp_est"] = pjp_reparse(deltas)
        out["sizes"].append(row)
        print(f"  {size:>9,} bytes done", file=sys.stderr, flush=True)
    return out


def _size(n: int) -> str:
    return f"{n / 1_000_000:g} MB" if n >= 1_000_000 else f"{n / 1000:g} KB"


def _ms(seconds: float | None, estimated: bool = False) -> str:
    if seconds is None:
        return "-"
    text = f"{seconds * 1e3:,.0f}" if seconds >= 0.1 else f"{seconds * 1e3:,.1f}"
    return text + (" est." if estimated else "")


def table(result: dict[str, Any]) -> list[str]:
    """The section of results.md."""
    title = f"### Structured output: partial JSON ({result.get('delta', DELTA)}-character deltas)"
    if "error" in result:
        return [title, "", f"failed: {result['error']}"]
    rows = result["sizes"]
    header = [
        "answer",
        "deltas",
        "partial values",
        "rxllm partial_object, ms",
        "µs per KB",
        "growth (x time / x size)",
        "parser, feed only, ms",
        "feed growth",
        "jiter re-parse, ms",
        "partial-json-parser, ms",
        "vs jiter",
    ]
    lines = [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    previous: dict[str, Any] | None = None
    for row in rows:
        kb = row["bytes"] / 1000
        growth = feed_growth = "-"
        if previous is not None:
            scale = row["bytes"] / previous["bytes"]
            growth = f"{row['operator_s'] / previous['operator_s'] / scale:.2f}"
            feed_growth = f"{row['parser_s'] / previous['parser_s'] / scale:.2f}"
        jiter = row.get("jiter_s")
        cells = [
            _size(row["target"]),
            f"{row['deltas']:,}",
            f"{row['partials']:,}",
            _ms(row["operator_s"]),
            f"{row['operator_s'] * 1e6 / kb:,.0f}",
            growth,
            _ms(row["parser_s"]),
            feed_growth,
            _ms(jiter, row.get("jiter_est", False)),
            _ms(row.get("pjp_s"), row.get("pjp_est", False)),
            "-" if jiter is None else f"{jiter / row['operator_s']:,.0f}x",
        ]
        lines.append("| " + " | ".join(cells) + " |")
        previous = row
    lines += [
        "",
        "Growth 1.00 is linear (ten times the text, ten times the time). CPU time of the "
        f"process; rxllm: best of {result['runs']} runs; re-parsers: one pass, timed on every "
        f"k-th delta past {result['samples']} deltas (fewer when that would take over "
        f"{BUDGET:.0f} s) and scaled (est.). "
        "`benchmarks/partial_json.py`.",
    ]
    goal = goal_row(result)
    if goal is not None:
        lines += ["", f"Goal: ≥ {GOAL_X:.0f}x faster than the jiter re-parse at 100 KB: {goal}."]
    return lines


def goal_row(result: dict[str, Any]) -> str | None:
    """The speed-up over jiter at 100 KB with its verdict, None when not measured."""
    for row in result.get("sizes", ()):
        if row["target"] == GOAL_SIZE and row.get("jiter_s"):
            x = row["jiter_s"] / row["operator_s"]
            return f"{x:,.0f}x **{'pass' if x >= GOAL_X else 'miss'}**"
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.partial_json", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="2 KB and 10 KB, one run")
    parser.add_argument("--runs", type=int, default=5, help="runs of rxllm (the best counts)")
    parser.add_argument("--sizes", help="comma-separated answer sizes in bytes")
    args = parser.parse_args(argv)
    sizes = SMOKE_SIZES if args.smoke else SIZES
    if args.sizes:
        sizes = tuple(int(s) for s in args.sizes.split(","))
    runs = 1 if args.smoke else args.runs
    try:
        result = measure(sizes, runs)
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    print("\n".join(table(result)))
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
