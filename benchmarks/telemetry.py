"""What telemetry costs: rxllm's per-chunk and per-request cost with OpenTelemetry off and on.

    python -m benchmarks.telemetry                      # 20,000-chunk streams, 7 runs a mode
    python -m benchmarks.telemetry --smoke              # a few hundred chunks, one run
    python -m benchmarks.telemetry --baseline DIR       # also rxllm from DIR (e.g. a checkout
                                                        # from before telemetry existed)

Modes, each in its own worker process per run, alternating (off, on, off, on, ...) so noise
spreads over all of them:

* ``off`` - telemetry never turned on: the stream holds no measurement and its reading task
  does nothing more per socket read; the worker checks that no module of OpenTelemetry was
  imported;
* ``on`` - ``rxllm.telemetry.instrument()`` with the OpenTelemetry SDK's providers: every span
  goes to an in-memory exporter, every metric to an in-memory reader (what the SDK does per
  span and per data point is counted, no network);
* ``on-no-chunk-metric`` - the same with ``chunk_intervals=False``: no
  ``time_per_output_chunk`` data point per chunk;
* ``before`` (``--baseline DIR``) - the rxllm found in DIR.

Each run times one ``acompletion(stream=True)`` piped through ``ops.extract_content()`` over
the benchmark server (server.py), as ``rxllm-extract`` in the main suite does: µs per chunk.
Then ``requests`` short streams (20 chunks) and plain requests one after the other: µs per
request, where telemetry's per-request work (a span, four histograms) shows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TREE = HERE.parent

API_KEY = "sk-bench-0000"
MESSAGES = [{"role": "user", "content": "Say hello"}]


# --- the worker (run as a script, so ``rxllm`` comes from PYTHONPATH) ---------------------------


def _instrument(chunk_intervals: bool = True) -> Any:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    import rxllm.telemetry

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    rxllm.telemetry.instrument(
        tracer_provider=tracer_provider,
        meter_provider=MeterProvider(metric_readers=[reader]),
        chunk_intervals=chunk_intervals,
    )
    return spans, reader


async def _stream(root: str, chunks: int) -> tuple[float, int]:
    import rxllm
    from rxllm import ops

    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    pieces = [0]

    def on_text(_: str) -> None:
        pieces[0] += 1

    start = time.perf_counter()
    stream = await rxllm.acompletion(
        model="openai/gpt-4o",
        api_base=f"{root}/n{chunks}/v1",
        api_key=API_KEY,
        messages=MESSAGES,
        stream=True,
    )
    stream.pipe(ops.extract_content()).subscribe(
        on_text, done.set_exception, lambda: done.set_result(None)
    )
    await done
    return time.perf_counter() - start, pieces[0]


async def _fetch(root: str) -> float:
    import rxllm

    start = time.perf_counter()
    response = await rxllm.acompletion(
        model="openai/gpt-4o", api_base=f"{root}/n20/v1", api_key=API_KEY, messages=MESSAGES
    )
    assert response.text
    return time.perf_counter() - start


async def _work(root: str, chunks: int, requests: int) -> dict[str, Any]:
    import gc

    import rxllm

    await _stream(root, 200)  # warm: connection pool, imports, caches
    await _fetch(root)
    gc.collect()
    seconds, pieces = await _stream(root, chunks)
    assert pieces == chunks, (pieces, chunks)
    short = [(await _stream(root, 20))[0] for _ in range(requests)]
    plain = [await _fetch(root) for _ in range(requests)]
    await rxllm.aclose()
    return {
        "per_chunk_us": seconds / chunks * 1e6,
        "stream_request_us": statistics.median(short) * 1e6,
        "plain_request_us": statistics.median(plain) * 1e6,
    }


def worker(mode: str, root: str, chunks: int, requests: int) -> dict[str, Any]:
    exported: Any = None
    if mode.startswith("on"):
        exported = _instrument(chunk_intervals=mode == "on")
    result = asyncio.run(_work(root, chunks, requests))
    result["otel_imported"] = any(m.startswith("opentelemetry") for m in sys.modules)
    if exported is not None:
        spans, reader = exported
        result["spans"] = len(spans.get_finished_spans())
        reader.get_metrics_data()
    return result


# --- the runner -------------------------------------------------------------------------------


def _start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "server.py")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split()[1])
    return proc, f"http://127.0.0.1:{port}"


def _run(mode: str, tree: Path, root: str, chunks: int, requests: int) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RXLLM_", "OTEL_"))}
    env["PYTHONPATH"] = str(tree)
    done = subprocess.run(
        [sys.executable, str(Path(__file__)), "worker", mode, root, str(chunks), str(requests)],
        env=env,
        cwd="/",
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} worker failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _figure(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def report(results: dict[str, list[dict[str, Any]]], chunks: int, requests: int) -> str:
    load = os.getloadavg()
    lines = [
        f"# Telemetry's cost ({chunks:,}-chunk stream; {requests} short streams and {requests} "
        f"plain requests a run; {len(next(iter(results.values())))} runs a mode)",
        "",
        f"Python {sys.version.split()[0]}, {os.cpu_count()} cores, load average after "
        f"{load[0]:.2f}; medians (min-max).",
        "",
        "| mode | per-chunk, µs | 20-chunk stream, µs | plain request, µs | imports otel |",
        "|---|---|---|---|---|",
    ]
    for mode, runs in results.items():
        lines.append(
            f"| {mode} | {_figure([r['per_chunk_us'] for r in runs])} "
            f"| {_figure([r['stream_request_us'] for r in runs])} "
            f"| {_figure([r['plain_request_us'] for r in runs])} "
            f"| {'yes' if any(r['otel_imported'] for r in runs) else 'no'} |"
        )
    lines.append("")
    off = results["off"]
    for mode, runs in results.items():
        if mode == "off":
            continue

        def delta(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return statistics.median(r[key] for r in runs) - statistics.median(r[key] for r in off)

        lines.append(
            f"- {mode} minus off: {delta('per_chunk_us'):+.2f} µs per chunk, "
            f"{delta('stream_request_us'):+.0f} µs per short stream, "
            f"{delta('plain_request_us'):+.0f} µs per plain request."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--smoke", action="store_true", help="300 chunks, 1 run, 3 requests")
    parser.add_argument("--baseline", type=Path, help="also rxllm from this source tree")
    args = parser.parse_args(argv)
    if args.smoke:
        args.chunks, args.runs, args.requests = 300, 1, 3
    modes = {"off": TREE, "on": TREE, "on-no-chunk-metric": TREE}
    if args.baseline is not None:
        modes = {"before": args.baseline.resolve(), **modes}
    server, root = _start_server()
    try:
        results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
        for i in range(args.runs):
            print(f"run {i + 1}/{args.runs}", file=sys.stderr, flush=True)
            for mode, tree in modes.items():
                results[mode].append(_run(mode, tree, root, args.chunks, args.requests))
    finally:
        server.terminate()
        server.wait()
    if any(r["otel_imported"] for r in results["off"]):
        print("telemetry off imported OpenTelemetry", file=sys.stderr)
        return 1
    if any(r.get("spans", 0) < 1 + 2 * args.requests for r in results["on"]):
        print("telemetry on made fewer spans than requests", file=sys.stderr)
        return 1
    print(report(results, args.chunks, args.requests), end="")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        _, _, mode, root, chunks, requests = sys.argv
        print(json.dumps(worker(mode, root, int(chunks), int(requests))))
    else:
        sys.exit(main())
