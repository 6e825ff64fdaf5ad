"""Run the gateway benchmark: ``rxllm serve`` and LiteLLM's proxy side by side, one run.

    python -m benchmarks.gateway            # the full run (about 17 minutes)
    python -m benchmarks.gateway --quick    # a couple of minutes: rough figures
    python -m benchmarks.gateway --smoke --gateways rxllm   # seconds: checks the harness

Every party has its own process: the upstream (upstream.py, an OpenAI-compatible aiohttp
server), each gateway (``litellm --config FILE`` and ``python -m rxllm serve --config FILE``,
the same LiteLLM-format config file for both) and the load generator (load.py). Writes
``results.md``, ``results.json`` and ``results.png`` beside this file (or in ``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from . import report
from .procs import free_port, tree_rss
from .upstream import text_of

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

MASTER_KEY = "sk-master"
UPSTREAM_KEY = "sk-bench"
#: the goal's bound on p99 added latency at a sustained rate
RATE_P99_ADDED_MAX = 0.010
#: what the non-streaming answer is made of (upstream.py's profile ``n10``)
CHUNKS = 10


def _ladder(start: float, factor: float, stop: float) -> tuple[float, ...]:
    rates, rate = [], start
    while rate <= stop:
        rates.append(float(round(rate)))
        rate *= factor
    return tuple(rates)


@dataclasses.dataclass(frozen=True)
class Settings:
    seq_reps: int = 2000  # sequential non-streaming requests per target
    ttft_reps: int = 1000  # sequential streams per target (time to first token)
    warmup: int = 50
    coalesce_chunks: int = 100
    coalesce_gap_ms: int = 5
    coalesce_reps: int = 3
    streams: int = 1000  # open streams for the memory figure
    open_timeout: float = 90.0
    ladder: tuple[float, ...] = _ladder(10, math.sqrt(2), 12_000)
    rung_seconds: float = 5.0
    rung_min_requests: int = 150
    skip: float = 0.1  # the first tenth of a rung's requests are not counted
    workers: tuple[int, ...] = (1, 2)


QUICK = Settings(
    seq_reps=300,
    ttft_reps=150,
    warmup=20,
    coalesce_chunks=40,
    coalesce_reps=1,
    streams=300,
    open_timeout=30.0,
    ladder=_ladder(10, 2, 12_000),
    rung_seconds=1.5,
    rung_min_requests=40,
    workers=(1, 2),
)


#: a few seconds: checks the harness end to end (tests/test_bench_smoke.py), no figures
SMOKE = Settings(
    seq_reps=30,
    ttft_reps=15,
    warmup=5,
    coalesce_chunks=10,
    coalesce_reps=1,
    streams=20,
    open_timeout=20.0,
    ladder=(50.0, 200.0),
    rung_seconds=0.5,
    rung_min_requests=10,
    workers=(1, 2),
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the config file -------------------------------------------------------------------------

MODELS = {
    # model name -> upstream profile (upstream.py)
    "bench": f"n{CHUNKS}",
    "bench-coalesce": "",  # set from the settings
    "bench-hold": "hold",
}


def profiles(s: Settings) -> dict[str, str]:
    return {**MODELS, "bench-coalesce": f"n{s.coalesce_chunks}-g{s.coalesce_gap_ms}"}


def config_text(upstream_port: int, s: Settings, master_key: str | None) -> str:
    """The one config file both gateways read (LiteLLM's format)."""
    lines = ["model_list:"]
    for model, profile in profiles(s).items():
        lines += [
            f"  - model_name: {model}",
            "    litellm_params:",
            "      model: openai/bench",
            f"      api_base: http://127.0.0.1:{upstream_port}/{profile}/v1",
            f"      api_key: {UPSTREAM_KEY}",
        ]
    if master_key:
        lines += ["general_settings:", f"  master_key: {master_key}"]
    return "\n".join(lines) + "\n"


# --- processes -------------------------------------------------------------------------------


def start_upstream() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.gateway.upstream"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        raise RuntimeError(f"the upstream did not start (exit status {proc.poll()})")
    return proc, int(line.split()[1])


class LoadGen:
    """The load generator's process (load.py), one JSON command a line."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.gateway.load"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("RESULT "):
                result: dict[str, Any] = json.loads(line[7:])
                return result
        return {"error": f"the load generator exited with status {self.proc.wait()}"}

    def ask(self, op: str, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        if self.proc.poll() is not None:
            return {"error": f"the load generator exited with status {self.proc.returncode}"}
        self.proc.stdin.write(json.dumps({"op": op, **command}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def stop(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.write('{"op": "quit"}\n')
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _litellm_command(config: Path, port: int, workers: int) -> list[str]:
    script = Path(sys.executable).parent / "litellm"
    binary = str(script) if script.exists() else (shutil.which("litellm") or "litellm")
    command = [binary, "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    return command + (["--num_workers", str(workers)] if workers > 1 else [])


def _rxllm_command(config: Path, port: int, workers: int) -> list[str]:
    command = [sys.executable, "-m", "rxllm", "serve", "--config", str(config)]
    command += ["--port", str(port)]
    return command + (["--workers", str(workers)] if workers > 1 else [])


def _litellm_missing() -> str | None:
    for module in ("litellm", "fastapi", "uvicorn"):
        if importlib.util.find_spec(module) is None:
            return f"`{module}` not installed (pip install -e '.[bench]')"
    return None


def _rxllm_missing() -> str | None:
    if importlib.util.find_spec("rxllm.gateway._app") is None:
        return "`rxllm serve` is not in this checkout yet (no rxllm/gateway/_app.py)"
    return None


GATEWAYS = {
    "rxllm": (_rxllm_command, _rxllm_missing),
    "litellm": (_litellm_command, _litellm_missing),
}

#: The environment of every gateway. LiteLLM's proxy fetches its model-cost map from the
#: internet at start unless told not to; and its aiohttp connector keeps at most 500
#: connections to one host (AIOHTTP_CONNECTOR_LIMIT_PER_HOST), so that, left as it is, it holds
#: 500 of the 1,000 streams open and queues the rest: raised so that both hold them all.
GATEWAY_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "AIOHTTP_CONNECTOR_LIMIT": "4000",
    "AIOHTTP_CONNECTOR_LIMIT_PER_HOST": "4000",
}


def gateway_env() -> dict[str, str]:
    """The gateways' environment: GATEWAY_ENV, and this checkout's rxllm first on the path
    (a gateway runs in a temporary folder, where ``python -m rxllm`` would otherwise import
    whichever rxllm is installed)."""
    path = os.environ.get("PYTHONPATH")
    return {
        **os.environ,
        **GATEWAY_ENV,
        "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else ""),
    }


def machine_busy() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores, /proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    """CPU seconds of this process and of its children that have ended (all of them, once
    the run is over: the upstream, the load generator, the gateways and their workers)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


class Gateway:
    """One gateway process (and its workers), its log in the run's temporary folder."""

    def __init__(self, name: str, config: Path, workers: int, folder: Path) -> None:
        self.name = name
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = GATEWAYS[name][0](config, self.port, workers)
        self.log_path = folder / f"{name}-{workers}w.log"
        self._log = self.log_path.open("w")
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            self.command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=folder,
            env=gateway_env(),
            start_new_session=True,  # its own process group: its workers stop with it
        )
        self.ready_s = self._wait_ready(started)

    def _wait_ready(self, started: float, timeout: float = 180.0) -> float:
        while time.perf_counter() - started < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with status {self.proc.returncode}: {self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + "/health/liveliness", timeout=2) as resp:
                    if resp.status == 200:
                        return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s: {self.log_tail()}")

    def log_tail(self, size: int = 1500) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace")
        return text[-size:]

    def target(self) -> dict[str, Any]:
        return {"name": self.label, "url": self.url, "key": MASTER_KEY}

    @property
    def label(self) -> str:
        return self.name if self.workers == 1 else f"{self.name} ({self.workers} workers)"

    def rss(self) -> tuple[int, int]:
        return tree_rss(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


# --- the benchmarks --------------------------------------------------------------------------


class Bench:
    def __init__(self, s: Settings, folder: Path, upstream_port: int, key: str | None) -> None:
        self.s = s
        self.folder = folder
        self.upstream = f"http://127.0.0.1:{upstream_port}"
        self.key = key
        self.load = LoadGen()
        self.failures: list[str] = []
        self.config = folder / "config.yaml"
        self.config.write_text(config_text(upstream_port, s, key))

    def direct(self, model: str) -> dict[str, Any]:
        return {"name": "direct", "url": f"{self.upstream}/{profiles(self.s)[model]}"}

    def ask(self, what: str, op: str, **command: Any) -> dict[str, Any]:
        result = self.load.ask(op, **command)
        if "error" in result:
            self.failures.append(f"{what}: {result['error']}")
        return result

    def start(self, name: str, workers: int) -> Gateway | None:
        log(f"starting {name} ({workers} worker{'s' if workers > 1 else ''})")
        try:
            gateway = Gateway(name, self.config, workers, self.folder)
        except RuntimeError as exc:
            self.failures.append(f"start {name} ({workers} workers): {exc}")
            return None
        # a few requests so that both are warm (imports, pools) before anything is measured
        self.load.ask(
            "sequential",
            targets=[self.target(gateway)],
            model="bench",
            stream=False,
            reps=0,
            warmup=20,
        )
        return gateway

    def target(self, gateway: Gateway) -> dict[str, Any]:
        target = gateway.target()
        target["key"] = self.key
        return target

    def check(self, gateways: list[Gateway]) -> tuple[dict[str, Any], list[Gateway]]:
        """Every gateway must give the upstream's text, usage and [DONE]; else it is left out."""
        targets = [self.direct("bench")] + [self.target(g) for g in gateways]
        result = self.ask("check", "check", targets=targets, model="bench")
        expected = text_of(CHUNKS)
        healthy = []
        for gateway in gateways:
            got = result.get(gateway.label, {})
            problems = []
            if "error" in got:
                problems.append(got["error"])
            else:
                if got.get("text") != expected:
                    problems.append(f"non-streaming text {got.get('text')!r}")
                if got.get("stream_text") != expected:
                    problems.append(f"streamed text {got.get('stream_text')!r}")
                if not got.get("stream_usage"):
                    problems.append("no usage chunk although stream_options.include_usage")
                if not got.get("stream_done"):
                    problems.append("the stream did not end with data: [DONE]")
            if problems:
                self.failures.append(f"check {gateway.label}: " + "; ".join(problems))
            else:
                healthy.append(gateway)
        return result, healthy

    def sequential(self, gateways: list[Gateway], stream: bool) -> dict[str, Any]:
        """One pass a gateway, its requests alternating with the direct upstream's (the other
        gateway idle: LiteLLM goes on working after it answers, which would slow whatever
        request comes next)."""
        what = "time to first token" if stream else "non-streaming latency"
        out: dict[str, Any] = {"samples": {}, "direct": {}}
        for gateway in gateways:
            log(f"sequential {what}: {gateway.label} and direct, alternating")
            result = self.ask(
                what,
                "sequential",
                targets=[self.direct("bench"), self.target(gateway)],
                model="bench",
                stream=stream,
                reps=self.s.ttft_reps if stream else self.s.seq_reps,
                warmup=self.s.warmup,
            )
            for name, error in result.get("errors", {}).items():
                self.failures.append(f"{what} / {name}: {error}")
            samples = result.get("samples", {})
            if samples.get(gateway.label, {}).get("n"):
                out["samples"][gateway.label] = samples[gateway.label]
                out["direct"][gateway.label] = samples["direct"]
        return out

    def coalescing(self, gateways: list[Gateway]) -> dict[str, Any]:
        log("coalescing")
        targets = [self.direct("bench-coalesce")] + [self.target(g) for g in gateways]
        result = self.ask(
            "coalescing",
            "coalesce",
            targets=targets,
            model="bench-coalesce",
            reps=self.s.coalesce_reps,
            gap_ms=self.s.coalesce_gap_ms,
        )
        for name, error in result.get("errors", {}).items():
            self.failures.append(f"coalescing / {name}: {error}")
        return result

    def memory(self, gateway: Gateway) -> dict[str, Any]:
        log(f"{self.s.streams} open streams through {gateway.label}")
        result = self.ask(
            f"open streams / {gateway.label}",
            "hold",
            target=self.target(gateway),
            model="bench-hold",
            streams=self.s.streams,
            pid=gateway.proc.pid,
            upstream=self.upstream,
            open_timeout=self.s.open_timeout,
        )
        if result.get("opened", 0) < self.s.streams:
            self.failures.append(
                f"open streams / {gateway.label}: {result.get('opened')} of {self.s.streams}"
                f" open after {self.s.open_timeout:.0f} s"
            )
        if result.get("hung") or result.get("errors"):
            self.failures.append(
                f"open streams / {gateway.label}: {result.get('hung')} never ended, "
                f"{result.get('errors')} failed ({result.get('first_error')})"
            )
        return result

    def _rung(self, target: dict[str, Any], pid: int | None, rate: float) -> dict[str, Any]:
        s = self.s
        return self.load.ask(
            "rate",
            target=target,
            model="bench",
            rate=rate,
            seconds=max(s.rung_seconds, s.rung_min_requests / rate),
            skip=s.skip,
            pid=pid,
        )

    def rate_ladder(self, target: dict[str, Any], pid: int | None) -> dict[str, Any]:
        """Step the rate up the ladder until the p99 stops being bounded.

        Every rung is a pair of runs at the same rate, the direct upstream's then the
        gateway's, so that a burst of noise on the machine spreads over both. Two figures:
        ``goal_rate``, the highest rate (with every lower rung) whose p99 minus the direct
        upstream's p99 is under 10 ms (the goal's criterion; None when even the lowest rung
        misses), and ``knee_rate``, the highest whose p99 stays within 10 ms of the gateway's
        own p99 at the lowest rung (how far load can go before queueing, for a gateway whose
        own latency is already over 10 ms). A rung that misses is run once more; the first
        that still misses ends the ladder. ``harness_limited``: the direct upstream itself
        missed (p99 over 10 ms or errors) at the rung that ended it.
        """
        steps: list[dict[str, Any]] = []
        base_p99: float | None = None
        goal_ok_so_far = knee_ok_so_far = True
        goal_rate = knee_rate = None
        direct_ok = True
        for rate in self.s.ladder:
            attempts = 0
            while attempts < 2:
                attempts += 1
                direct = self._rung(self.direct("bench"), None, rate)
                result = self._rung(target, pid, rate)
                for run in (direct, result):
                    if "error" in run:
                        where = f"rate {target['name']} at {rate:.0f}/s"
                        self.failures.append(f"{where}: {run['error']}")
                        return {"steps": steps, "goal_rate": goal_rate, "knee_rate": knee_rate}
                p99 = result["latency"].get("p99", math.inf)
                direct_p99 = direct["latency"].get("p99", math.inf)
                complete = result["errors"] == 0 and result["latency"].get("n") == result["counted"]
                direct_ok = (
                    direct["errors"] == 0
                    and direct["latency"].get("n") == direct["counted"]
                    and direct_p99 < RATE_P99_ADDED_MAX
                )
                added = p99 - direct_p99
                if not steps:  # the lowest rung: the knee's reference
                    base_p99 = p99
                goal_ok = complete and added < RATE_P99_ADDED_MAX
                knee_ok = complete and p99 < (base_p99 or p99) + RATE_P99_ADDED_MAX
                if (goal_ok or not goal_ok_so_far) and (knee_ok or not knee_ok_so_far):
                    break
            steps.append(
                {
                    **result,
                    "direct": {"latency": direct["latency"], "errors": direct["errors"]},
                    "attempts": attempts,
                    "added_p99": added,
                    "direct_ok": direct_ok,
                    "goal_ok": goal_ok,
                    "knee_ok": knee_ok,
                }
            )
            lat = result["latency"]
            log(
                f"  {target['name']} {rate:>6.0f}/s: p50 {lat.get('p50', math.nan) * 1e3:7.2f} ms"
                f"  p99 {p99 * 1e3:8.2f} ms (direct {direct_p99 * 1e3:7.2f})"
                f"  added p99 {added * 1e3:8.2f} ms  errors {result['errors']}"
                + ("  (retried)" if attempts == 2 else "")
            )
            goal_ok_so_far = goal_ok_so_far and goal_ok
            knee_ok_so_far = knee_ok_so_far and knee_ok
            if goal_ok_so_far:
                goal_rate = rate
            if knee_ok_so_far:
                knee_rate = rate
            if not goal_ok_so_far and not knee_ok_so_far:
                break
        return {
            "steps": steps,
            "goal_rate": goal_rate,
            "knee_rate": knee_rate,
            "base_p99": base_p99,
            "harness_limited": not direct_ok,
            "ladder_top": goal_ok_so_far or knee_ok_so_far,
        }

    def stop(self) -> None:
        self.load.stop()


def run(s: Settings, only: list[str], key: str | None) -> dict[str, Any]:
    results: dict[str, Any] = {"settings": dataclasses.asdict(s), "gateways": {}}
    available = []
    for name in only:
        missing = GATEWAYS[name][1]()
        if missing:
            results["gateways"][name] = {"missing": missing}
            log(f"{name}: not available: {missing}")
        else:
            available.append(name)
    folder = Path(tempfile.mkdtemp(prefix="rxllm-bench-gateway-"))
    upstream, upstream_port = start_upstream()
    bench = Bench(s, folder, upstream_port, key)
    results["config"] = bench.config.read_text().replace(str(upstream_port), "<upstream port>")
    gateways: list[Gateway] = []
    started = time.perf_counter()
    busy_before, own_before = machine_busy(), own_cpu()
    try:
        # --- one worker each, both up: latency, coalescing, memory, rate -------------------
        for name in available:
            gateway = bench.start(name, 1)
            if gateway is not None:
                gateways.append(gateway)
                rss, processes = gateway.rss()
                results["gateways"][name] = {
                    "command": " ".join(
                        Path(gateway.command[0]).name if i == 0 else part
                        for i, part in enumerate(gateway.command)
                    ),
                    "ready_s": gateway.ready_s,
                    "idle_rss": rss,
                    "processes": processes,
                }
        results["check"], gateways = bench.check(gateways)
        results["sequential"] = bench.sequential(gateways, stream=False)
        results["ttft"] = bench.sequential(gateways, stream=True)
        results["coalescing"] = bench.coalescing(gateways)
        results["memory"] = {g.name: bench.memory(g) for g in gateways}
        log("highest sustained rate, 1 worker")
        rates: dict[str, dict[str, Any]] = {}
        for gateway in gateways:
            rates[gateway.label] = bench.rate_ladder(bench.target(gateway), gateway.proc.pid)
            rates[gateway.label].update(gateway=gateway.name, workers=1)
        for gateway in gateways:
            gateway.stop()
        names = [g.name for g in gateways]
        gateways = []
        # --- more workers: each gateway alone ----------------------------------------------
        for workers in (w for w in s.workers if w > 1):
            log(f"highest sustained rate, {workers} workers")
            for name in names:
                gateway = bench.start(name, workers)
                if gateway is None:
                    continue
                gateways.append(gateway)
                rates[gateway.label] = bench.rate_ladder(bench.target(gateway), gateway.proc.pid)
                rates[gateway.label].update(gateway=name, workers=workers)
                results["gateways"][name][f"idle_rss_{workers}w"] = gateway.rss()[0]
                gateway.stop()
                gateways.remove(gateway)
        results["rate"] = rates
    finally:
        for gateway in gateways:
            gateway.stop()
        bench.stop()
        upstream.terminate()
        upstream.wait()
    results["duration_s"] = round(time.perf_counter() - started, 1)
    others = (machine_busy() - busy_before) - (own_cpu() - own_before)
    # the share of the machine (all cores) other processes used while this ran
    results["others_busy"] = max(0.0, others) / (results["duration_s"] * (os.cpu_count() or 1))
    results["failures"] = bench.failures
    results["logs"] = str(folder)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gateway", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a couple of minutes")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness")
    parser.add_argument("--out", type=Path, default=HERE, help="where to write results.*")
    parser.add_argument(
        "--gateways", default="rxllm,litellm", help="comma-separated: rxllm, litellm"
    )
    parser.add_argument("--workers", help="comma-separated worker counts (default 1,2)")
    parser.add_argument("--streams", type=int, help="open streams for the memory figure")
    parser.add_argument("--no-master-key", action="store_true", help="config without a key")
    parser.add_argument("--note", default="", help="a line for the results' header")
    args = parser.parse_args(argv)

    s = SMOKE if args.smoke else QUICK if args.quick else Settings()
    if args.workers:
        s = dataclasses.replace(s, workers=tuple(int(w) for w in args.workers.split(",")))
    if args.streams:
        s = dataclasses.replace(s, streams=args.streams)
    only = [g for g in args.gateways.split(",") if g]
    unknown = set(only) - set(GATEWAYS)
    if unknown:
        parser.error(f"unknown gateways: {', '.join(sorted(unknown))}")

    environment = report.environment(args.note, quick=args.quick, smoke=args.smoke)
    results = {"environment": environment}
    results.update(run(s, only, None if args.no_master_key else MASTER_KEY))
    environment["load_after"] = os.getloadavg()

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    markdown = report.markdown(results)
    (args.out / "results.md").write_text(markdown)
    chart = report.chart(results, args.out / "results.png")
    print(markdown)
    log(f"gateway logs in {results['logs']}")
    log(f"wrote {args.out / 'results.md'}, results.json" + (f" and {chart}" if chart else ""))
    for failure in results["failures"]:
        log(f"FAILED: {failure}")
    return 1 if results["failures"] else 0
