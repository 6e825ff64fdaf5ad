"""Run every benchmark and write ``results.md``, ``results.json`` and ``results.png``.

    python -m benchmarks            # the full suite (several minutes)
    python -m benchmarks --smoke    # a few hundred chunks, one run: checks the harness works
    python -m benchmarks --only per_chunk --clients floor-bulk,rxllm-extract   # a quick look

The server (server.py) runs in its own process. Each client library runs in its own worker
process (worker.py), imported once, driven over a pipe; runs alternate between clients
(client A, B, C, A, B, C, ...) so that a burst of noise on the machine spreads over all of
them. The concurrency benchmark starts a fresh process per client and run, so its peak RSS is
that client's alone. Every figure is the median of the runs with their min and max. Every client
must produce the same text as the server sent; a client that errs or differs is reported (and
the exit status is 1). Clients whose package is not installed are reported as not available.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import report
from .clients import FETCHING, FORMATS, LIBRARY, STREAMING
from .server import text_of
from .worker import digest

HERE = Path(__file__).resolve().parent

#: the package whose absence makes a library unavailable
PACKAGE = {
    "floor": None,
    "rxllm": None,
    "openai": "openai",
    "litellm": "litellm",
    "anthropic": "anthropic",
}

#: modules whose ``python -c "import X"`` time is measured; the first is the baseline
IMPORT_TIMES = {
    "python (no import)": "pass",
    "aiohttp + msgspec (floor)": "import aiohttp, msgspec",
    "rxllm": "import rxllm",
    "rxllm + first call's imports": "import rxllm; rxllm.completion; rxllm.ops",
    "openai": "import openai",
    "anthropic": "import anthropic",
    "litellm": "import litellm",
}
IMPORT_PACKAGE = {"openai": "openai", "anthropic": "anthropic", "litellm": "litellm"}


@dataclasses.dataclass(frozen=True)
class Settings:
    runs: int = 7  # alternating runs of every in-process benchmark
    chunks: int = 20_000  # per-chunk stream length
    ttft_reps: int = 60  # requests per TTFT run (the run's figure is their median)
    ttft_chunks: int = 20
    ttft_gap_ms: int = 3  # server pause after the first content event
    streams: int = 500  # concurrent streams ...
    stream_chunks: int = 200  # ... of this many chunks
    burst_runs: int = 5  # fresh processes per client
    fetch_seconds: float = 0.5  # non-streaming: requests for this long, per run
    concurrency: tuple[int, ...] = (1, 16)
    fetch_chunks: int = 200  # the non-streaming answer's length, in stream pieces
    import_runs: int = 9
    replay_chunks: int = 20_000  # the stream whose replay memory is measured
    partial_json_smoke: bool = False  # benchmarks/partial_json.py at its smoke sizes


SMOKE = Settings(
    runs=1,
    chunks=300,
    ttft_reps=3,
    ttft_chunks=5,
    ttft_gap_ms=1,
    streams=5,
    stream_chunks=20,
    burst_runs=1,
    fetch_seconds=0.02,
    concurrency=(1, 2),
    import_runs=1,
    replay_chunks=300,
    partial_json_smoke=True,
)

BENCHMARKS = (
    "per_chunk",
    "ttft",
    "burst",
    "fetch",
    "imports",
    "anthropic",
    "replay",
    "partial_json",
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- processes -------------------------------------------------------------------------------


def start_server() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "server.py")], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split()[1])
    return proc, f"http://127.0.0.1:{port}"


def _read_result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("RESULT "):
            result: dict[str, Any] = json.loads(line[7:])
            return result
    return {"error": f"worker exited with status {proc.wait()}"}


class Worker:
    """A ``worker.py serve`` process holding one library."""

    def __init__(self, library: str, root: str) -> None:
        self.library = library
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", "serve", library, root],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=HERE.parent,
        )
        self.ready = _read_result(self.proc)

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        if self.proc.poll() is not None:
            return {"error": f"worker exited with status {self.proc.returncode}"}
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return _read_result(self.proc)

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def run_burst(library: str, root: str, fmt: str, client: str, s: Settings) -> dict[str, Any]:
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "benchmarks.worker", "burst", library, root, fmt, client),
            *(str(s.streams), str(s.stream_chunks)),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=HERE.parent,
    )
    result = _read_result(proc)
    proc.wait()
    return result


# --- availability ----------------------------------------------------------------------------


def unavailable_reason(client: str, fmt: str) -> str | None:
    """Why ``client`` cannot run here, or None."""
    package = PACKAGE[LIBRARY[client]]
    if package is not None and importlib.util.find_spec(package) is None:
        return f"`{package}` not installed (pip install -e '.[bench]')"
    if LIBRARY[client] == "rxllm" and fmt != "openai":
        import rxllm

        if fmt not in rxllm.list_providers():
            return f"rxllm has no `{fmt}` provider yet"
    return None


# --- the benchmarks --------------------------------------------------------------------------


class Suite:
    def __init__(self, settings: Settings, root: str, only_clients: set[str] | None) -> None:
        self.s = settings
        self.root = root
        self.only = only_clients
        self.workers: dict[str, Worker] = {}
        self.failures: list[str] = []

    def clients(self, table: dict[str, Any], fmt: str) -> tuple[list[str], dict[str, str]]:
        """(clients to run, clients not available -> why)."""
        run, missing = [], {}
        for client in table:
            if self.only and client not in self.only:
                continue
            reason = unavailable_reason(client, fmt)
            if reason:
                missing[client] = reason
            else:
                run.append(client)
        return run, missing

    def worker(self, client: str) -> Worker:
        library = LIBRARY[client]
        if library not in self.workers:
            self.workers[library] = Worker(library, self.root)
        return self.workers[library]

    def _check(self, what: str, client: str, result: dict[str, Any], expected: str) -> bool:
        if "error" in result:
            self.failures.append(f"{what} / {client}: {result['error']}")
            return False
        if result.get("text") != expected:
            self.failures.append(f"{what} / {client}: produced different text")
            return False
        return True

    def alternate(
        self, what: str, clients: list[str], command: dict[str, Any], expected: str, runs: int
    ) -> dict[str, list[dict[str, Any]]]:
        """One warm-up per client (checked), then ``runs`` rounds, one run of each client."""
        results: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
        healthy = []
        for client in clients:
            warm = self.worker(client).ask(client=client, **command)
            if self._check(what, client, warm, expected):
                healthy.append(client)
            else:
                results[client].append(warm)
        for i in range(runs):
            log(f"  {what}: run {i + 1}/{runs}")
            for client in healthy:
                result = self.worker(client).ask(client=client, **command)
                results[client].append(result)
                if not self._check(what, client, result, expected):
                    healthy.remove(client)
                    break
        return results

    def per_chunk(self, fmt: str) -> dict[str, Any]:
        clients, missing = self.clients(STREAMING[fmt], fmt)
        n = self.s.chunks
        command = {"op": "stream", "fmt": fmt, "cfg": f"n{n}"}
        results = self.alternate(
            f"per-chunk {fmt}", clients, command, digest(text_of(n)), self.s.runs
        )
        return {"chunks": n, "runs": _values(results, "seconds"), "missing": missing}

    def ttft(self) -> dict[str, Any]:
        table = {k: v for k, v in STREAMING["openai"].items() if k != "rxllm-collect"}
        clients, missing = self.clients(table, "openai")
        if not self.only or "rxllm-collect" in self.only:
            missing["rxllm-collect"] = "not applicable: its only text is the whole answer"
        s = self.s
        command = {
            "op": "ttft",
            "fmt": "openai",
            "cfg": f"n{s.ttft_chunks}-g{s.ttft_gap_ms}",
            "reps": s.ttft_reps,
        }
        results = self.alternate("ttft", clients, command, digest(text_of(s.ttft_chunks)), s.runs)
        runs = {
            client: [_median(r["samples"]) for r in rs if "samples" in r]
            for client, rs in results.items()
        }
        return {"reps": s.ttft_reps, "gap_ms": s.ttft_gap_ms, "runs": runs, "missing": missing}

    def fetch(self, fmt: str) -> dict[str, Any]:
        clients, missing = self.clients(FETCHING[fmt], fmt)
        s = self.s
        out: dict[str, Any] = {"seconds": s.fetch_seconds, "missing": missing}
        out["by_concurrency"] = {}
        for concurrency in s.concurrency:
            command = {
                "op": "fetch",
                "fmt": fmt,
                "cfg": f"n{s.fetch_chunks}",
                "seconds": s.fetch_seconds,
                "concurrency": concurrency,
            }
            results = self.alternate(
                f"non-streaming {fmt} c={concurrency}",
                clients,
                command,
                digest(text_of(s.fetch_chunks)),
                s.runs,
            )
            out["by_concurrency"][str(concurrency)] = {
                client: [r["rps"] for r in rs if "rps" in r] for client, rs in results.items()
            }
        return out

    def burst(self) -> dict[str, Any]:
        clients, missing = self.clients(STREAMING["openai"], "openai")
        s = self.s
        expected = digest(text_of(s.stream_chunks))
        results: dict[str, list[dict[str, Any]]] = {c: [] for c in clients}
        healthy = list(clients)
        for i in range(s.burst_runs):
            log(f"  {s.streams} concurrent streams: run {i + 1}/{s.burst_runs}")
            for client in list(healthy):
                result = run_burst(LIBRARY[client], self.root, "openai", client, s)
                results[client].append(result)
                if not self._check("concurrent streams", client, result, expected):
                    healthy.remove(client)
        return {
            "streams": s.streams,
            "chunks": s.stream_chunks,
            "wall": _values(results, "wall"),
            "cpu": _values(results, "cpu"),
            "peak_rss_mb": _values(results, "peak_rss_mb"),
            "setup_rss_mb": _values(results, "setup_rss_mb"),
            "missing": missing,
        }

    def imports(self) -> dict[str, Any]:
        runs: dict[str, list[float]] = {}
        missing = {}
        for name in IMPORT_TIMES:
            package = IMPORT_PACKAGE.get(name)
            if package and importlib.util.find_spec(package) is None:
                missing[name] = f"`{package}` not installed"
            else:
                runs[name] = []
        for i in range(self.s.import_runs):
            log(f"  import time: run {i + 1}/{self.s.import_runs}")
            for name, values in runs.items():
                start = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-c", IMPORT_TIMES[name]], capture_output=True, check=False
                )
                elapsed = time.perf_counter() - start
                if done.returncode:
                    self.failures.append(f"import {name}: {done.stderr.decode()[-300:]}")
                else:
                    values.append(elapsed)
        return {"runs": runs, "missing": missing}

    def replay(self) -> dict[str, Any]:
        """What a stream keeps for replay, per chunk (benchmarks/replay.py, a fresh process)."""
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.replay", str(self.s.replay_chunks)],
            capture_output=True,
            text=True,
            cwd=HERE.parent,
            check=False,
        )
        for line in done.stdout.splitlines():
            if line.startswith("RESULT "):
                result: dict[str, Any] = json.loads(line[7:])
                break
        else:
            result = {"error": f"exited with status {done.returncode}: {done.stderr[-300:]}"}
        if "error" in result:
            self.failures.append(f"replay memory: {result['error']}")
        return result

    def partial_json(self) -> dict[str, Any]:
        """Structured output as it streams (benchmarks/partial_json.py, a fresh process)."""
        smoke = ["--smoke"] if self.s.partial_json_smoke else []
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.partial_json", *smoke],
            capture_output=True,
            text=True,
            cwd=HERE.parent,
            check=False,
        )
        for line in done.stdout.splitlines():
            if line.startswith("RESULT "):
                result: dict[str, Any] = json.loads(line[7:])
                break
        else:
            result = {"error": f"exited with status {done.returncode}: {done.stderr[-300:]}"}
        if "error" in result:
            self.failures.append(f"partial JSON: {result['error']}")
        return result

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.stop()


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _values(results: dict[str, list[dict[str, Any]]], key: str) -> dict[str, list[float]]:
    return {client: [r[key] for r in rs if key in r] for client, rs in results.items()}


# --- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one run")
    parser.add_argument("--out", type=Path, default=HERE, help="where to write results.*")
    parser.add_argument("--only", help=f"comma-separated benchmarks out of {','.join(BENCHMARKS)}")
    parser.add_argument("--clients", help="comma-separated client names to run (default: all)")
    parser.add_argument("--runs", type=int, help="alternating runs (overrides the default)")
    parser.add_argument("--chunks", type=int, help="per-chunk stream length")
    parser.add_argument("--note", default="", help="a line for the table's header")
    args = parser.parse_args(argv)

    settings = SMOKE if args.smoke else Settings()
    if args.runs:
        settings = dataclasses.replace(settings, runs=args.runs, burst_runs=args.runs)
    if args.chunks:
        settings = dataclasses.replace(settings, chunks=args.chunks)
    only = set(args.only.split(",")) if args.only else set(BENCHMARKS)
    unknown = only - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    only_clients = set(args.clients.split(",")) if args.clients else None

    environment = report.environment(args.note, smoke=args.smoke)
    server, root = start_server()
    suite = Suite(settings, root, only_clients)
    results: dict[str, Any] = {"environment": environment, "settings": dataclasses.asdict(settings)}
    started = time.perf_counter()
    try:
        if "per_chunk" in only:
            log("per-chunk cost, OpenAI format")
            results["per_chunk"] = suite.per_chunk("openai")
        if "anthropic" in only:
            log("per-chunk cost, Anthropic format")
            results["per_chunk_anthropic"] = suite.per_chunk("anthropic")
        if "ttft" in only:
            log("time to first token")
            results["ttft"] = suite.ttft()
        if "fetch" in only:
            log("non-streaming requests")
            results["fetch"] = {fmt: suite.fetch(fmt) for fmt in FORMATS}
        if "burst" in only:
            log("concurrent streams")
            results["burst"] = suite.burst()
        if "imports" in only:
            log("import time")
            results["imports"] = suite.imports()
        if "replay" in only:
            log("replay memory")
            results["replay"] = suite.replay()
        if "partial_json" in only:
            log("structured output: partial JSON")
            results["partial_json"] = suite.partial_json()
    finally:
        suite.stop()
        server.terminate()
        server.wait()
    results["environment"]["duration_s"] = round(time.perf_counter() - started, 1)
    results["environment"]["load_after"] = os.getloadavg()
    results["failures"] = suite.failures

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    markdown = report.markdown(results)
    (args.out / "results.md").write_text(markdown)
    chart = report.chart(results, args.out / "results.png")
    print(markdown)
    log(f"wrote {args.out / 'results.md'}" + (f" and {chart}" if chart else " (no chart)"))
    for failure in suite.failures:
        log(f"FAILED: {failure}")
    return 1 if suite.failures else 0
