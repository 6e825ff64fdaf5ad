"""``rxllm serve`` on Redis: what the shared state costs, one short run.

    python -m benchmarks.gateway.redis            # the full run (a few minutes)
    python -m benchmarks.gateway.redis --quick    # under a minute: rough figures

Three configs (LiteLLM's format, one model on the benchmark's upstream, a master key; the load
uses a virtual key from ``POST /key/generate``, so every request's path has the key's check):

* **A**, in-memory: no ``redis_url``;
* **B**, Redis: ``router_settings.redis_url`` (keys, limits, spend and router state on Redis);
* **C**, B plus the response cache on Redis (``litellm_settings.cache``, ``cache_params``).

Measured: the latency the gateway adds (sequential requests alternating with direct calls to
the upstream; non-streaming, and streamed: time to the first byte), for A and B with one worker;
the sustained rate of a closed loop (``clients`` concurrent clients) on two workers, A and B
(both B workers on one Redis); the latency of a cache hit for a streamed answer (C) against the
same stream through B; and the Redis round trips on requests' paths per request
(``rxllm_redis_path_round_trips_total`` from B's ``/metrics``). The processes are the gateway
benchmark's own (upstream.py, load.py, run.py's Gateway); Redis is tests/redis_server.py's.
Writes ``redis_results.md`` and ``redis_results.json`` beside this file (or in ``--out``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.redis_server import RedisServer

from . import report
from .run import (
    MASTER_KEY,
    UPSTREAM_KEY,
    Gateway,
    LoadGen,
    log,
    machine_busy,
    own_cpu,
    start_upstream,
)

HERE = Path(__file__).resolve().parent
MODEL = "bench"
PROFILE = "n10-g0-t0"  # streams of 10 content chunks, no gaps (upstream.py)


@dataclasses.dataclass(frozen=True)
class Settings:
    seq_reps: int = 1000  # sequential requests per target, non-streaming and streamed
    warmup: int = 50
    clients: int = 16  # the closed loop's concurrent clients
    closed_seconds: float = 10.0
    closed_warmup: float = 1.0  # the closed loop's first second is not counted
    cache_reps: int = 500  # streamed cache hits (and as many streams through B)


QUICK = Settings(seq_reps=200, warmup=20, closed_seconds=3.0, cache_reps=100)

VARIANTS = {
    "A": "in-memory",
    "B": "Redis (router_settings.redis_url)",
    "C": "Redis + response cache on Redis",
}


def config_text(upstream_port: int, redis_url: str | None, cache: bool) -> str:
    lines = [
        "model_list:",
        f"  - model_name: {MODEL}",
        "    litellm_params:",
        "      model: openai/bench",
        f"      api_base: http://127.0.0.1:{upstream_port}/{PROFILE}/v1",
        f"      api_key: {UPSTREAM_KEY}",
        "general_settings:",
        f"  master_key: {MASTER_KEY}",
    ]
    if redis_url:
        lines += ["router_settings:", f"  redis_url: {redis_url}"]
    if cache:
        lines += [
            "litellm_settings:",
            "  cache: true",
            "  cache_params:",
            "    type: redis",
            "    ttl: 600",
        ]
    return "\n".join(lines) + "\n"


def _call(url: str, data: bytes | None = None, timeout: float = 10.0) -> bytes:
    request = urllib.request.Request(
        url,
        data=data,
        headers={"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        body: bytes = resp.read()
        return body


def virtual_key(gateway: Gateway) -> str:
    """A new virtual key (``POST /key/generate`` with the master key, body ``{}``)."""
    key: str = json.loads(_call(gateway.url + "/key/generate", b"{}"))["key"]
    return key


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def metrics(gateway: Gateway) -> dict[str, float]:
    """Some of ``/metrics``, summed over their labels: Redis round trips on requests' paths,
    requests, cache results."""
    wanted = {
        "rxllm_redis_path_round_trips_total",
        "rxllm_requests_total",
        "rxllm_cache_requests_total",
        "rxllm_redis_outages_total",
        "rxllm_router_redis_fallbacks_total",
    }
    out = dict.fromkeys(wanted, 0.0)
    for line in _call(gateway.url + "/metrics").decode().splitlines():
        found = _SAMPLE.match(line)
        if found and found.group(1) in wanted:
            out[found.group(1)] += float(found.group(3))
    return out


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in after}


class Run:
    def __init__(self, s: Settings, folder: Path, upstream_port: int, redis_url: str) -> None:
        self.s = s
        self.folder = folder
        self.upstream_port = upstream_port
        self.redis_url = redis_url
        self.load = LoadGen()
        self.failures: list[str] = []
        self.gateways: list[Gateway] = []
        self.configs: dict[str, str] = {}

    @property
    def direct(self) -> dict[str, Any]:
        return {"name": "direct", "url": f"http://127.0.0.1:{self.upstream_port}/{PROFILE}"}

    def start(self, variant: str, workers: int) -> tuple[Gateway, dict[str, Any]]:
        """A gateway of ``variant`` in a folder of its own (its own key database), warm, and
        the target that reaches it with a new virtual key."""
        folder = self.folder / f"{variant}-{workers}w"
        folder.mkdir()
        text = config_text(
            self.upstream_port, self.redis_url if variant in "BC" else None, variant == "C"
        )
        self.configs[variant] = text.replace(str(self.upstream_port), "<upstream port>").replace(
            self.redis_url, "<redis url>"
        )
        config = folder / "config.yaml"
        config.write_text(text)
        log(f"starting {variant} ({VARIANTS[variant]}), {workers} worker(s)")
        gateway = Gateway("rxllm", config, workers, folder)
        self.gateways.append(gateway)
        target = {"name": variant, "url": gateway.url, "key": virtual_key(gateway)}
        if variant != "C":  # C's first request is the cache's miss, measured on its own
            self.ask(f"warm {variant}", "sequential", targets=[target], model=MODEL,
                     stream=False, reps=0, warmup=self.s.warmup)  # fmt: skip
        return gateway, target

    def stop(self, gateway: Gateway) -> None:
        gateway.stop()
        self.gateways.remove(gateway)

    def ask(self, what: str, op: str, **command: Any) -> dict[str, Any]:
        result = self.load.ask(op, **command)
        if "error" in result:
            self.failures.append(f"{what}: {result['error']}")
        for name, error in (result.get("errors") or {}).items():
            self.failures.append(f"{what} / {name}: {error}")
        return result

    def added(self, target: dict[str, Any]) -> dict[str, Any]:
        """Sequential non-streaming requests and streams, alternating with the direct upstream."""
        name = target["name"]
        log(f"added latency, {name}: {self.s.seq_reps} non-streaming requests each")
        plain = self.ask(
            f"non-streaming / {name}",
            "sequential",
            targets=[self.direct, target],
            model=MODEL,
            stream=False,
            reps=self.s.seq_reps,
            warmup=self.s.warmup,
        )
        log(f"added latency, {name}: {self.s.seq_reps} streams each")
        streamed = self.ask(
            f"streamed / {name}",
            "streams",
            targets=[self.direct, target],
            model=MODEL,
            reps=self.s.seq_reps,
            warmup=self.s.warmup,
        )
        plain.pop("raw", None)
        streamed.pop("raw", None)
        return {"non_streaming": plain, "streamed": streamed}

    def closed(self, target: dict[str, Any]) -> dict[str, Any]:
        s = self.s
        log(f"closed loop, {target['name']}: {s.clients} clients, {s.closed_seconds:.0f} s")
        result = self.ask(
            f"closed loop / {target['name']}",
            "closed",
            target=target,
            model=MODEL,
            clients=s.clients,
            seconds=s.closed_seconds,
            warmup=s.closed_warmup,
        )
        if result.get("errors"):
            self.failures.append(
                f"closed loop / {target['name']}: {result['errors']} errors"
                f" ({result.get('first_error')})"
            )
        return result

    def close(self) -> None:
        for gateway in list(self.gateways):
            self.stop(gateway)
        self.load.stop()


def run(s: Settings) -> dict[str, Any]:
    results: dict[str, Any] = {"settings": dataclasses.asdict(s)}
    folder = Path(tempfile.mkdtemp(prefix="rxllm-bench-redis-"))
    redis = RedisServer().start()
    upstream, upstream_port = start_upstream()
    bench = Run(s, folder, upstream_port, redis.url)
    started = time.perf_counter()
    busy_before, own_before = machine_busy(), own_cpu()
    try:
        # --- added latency, one worker: A, then B (its Redis round trips from /metrics) ----
        gateway, target = bench.start("A", 1)
        results["added_A"] = bench.added(target)
        bench.stop(gateway)

        b_gateway, b_target = bench.start("B", 1)
        before = metrics(b_gateway)
        results["added_B"] = bench.added(b_target)
        after = metrics(b_gateway)
        sent = 2 * (s.seq_reps + s.warmup)
        results["round_trips_B"] = {"metrics": _delta(before, after), "sent": sent}

        # --- a cached stream (C) against the same stream through B -------------------------
        c_gateway, c_target = bench.start("C", 1)
        log("cache: one streamed miss")
        miss = bench.ask("cache miss", "streams", targets=[c_target], model=MODEL, reps=1,
                         warmup=0)  # fmt: skip
        log(f"cache: {s.cache_reps} streamed hits, alternating with B's stream and direct")
        hits = bench.ask(
            "cache hits",
            "streams",
            targets=[bench.direct, b_target, c_target],
            model=MODEL,
            reps=s.cache_reps,
            warmup=0,
        )
        miss.pop("raw", None)
        hits.pop("raw", None)
        results["cache"] = {"miss": miss, "hits": hits, "metrics": metrics(c_gateway)}
        if hits.get("cache", {}).get("C", {}).get("hit", 0) != s.cache_reps:
            bench.failures.append(f"cache: C's x-rxllm-cache headers {hits.get('cache')}")
        bench.stop(c_gateway)
        bench.stop(b_gateway)

        # --- the sustained rate on two workers: direct (the harness's ceiling), A, B -------
        results["closed"] = {"direct": bench.closed(bench.direct)}
        for variant in ("A", "B"):
            gateway, target = bench.start(variant, 2)
            before = metrics(gateway)
            results["closed"][variant] = bench.closed(target)
            time.sleep(1.5)  # each worker adds its router's round trips to /metrics each second
            results["closed"][variant]["metrics"] = _delta(before, metrics(gateway))
            bench.stop(gateway)
    finally:
        bench.close()
        upstream.terminate()
        upstream.wait()
        redis.close()
    results["duration_s"] = round(time.perf_counter() - started, 1)
    others = (machine_busy() - busy_before) - (own_cpu() - own_before)
    results["others_busy"] = max(0.0, others) / (results["duration_s"] * (os.cpu_count() or 1))
    results["configs"] = bench.configs
    results["failures"] = bench.failures
    results["logs"] = str(folder)
    return results


# --- the report ------------------------------------------------------------------------------


def _ms(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value * 1e3:,.{digits}f}"


def _added_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for variant in ("A", "B"):
        section = results.get(f"added_{variant}")
        if not section:
            continue
        plain = section["non_streaming"].get("samples", {})
        streamed = section["streamed"].get("samples", {})
        measures = [
            ("non-streaming, whole answer", plain.get(variant), plain.get("direct")),
            (
                "streamed, first byte",
                streamed.get(variant, {}).get("ttfb"),
                streamed.get("direct", {}).get("ttfb"),
            ),
            (
                "streamed, first content event",
                streamed.get(variant, {}).get("ttft"),
                streamed.get("direct", {}).get("ttft"),
            ),
        ]
        for what, gw, direct in measures:
            if not gw or not direct or "p50" not in gw or "p50" not in direct:
                continue
            rows.append(
                [
                    f"{variant} ({VARIANTS[variant]})",
                    what,
                    str(gw["n"]),
                    _ms(direct["p50"]),
                    _ms(gw["p50"]),
                    f"**{_ms(gw['p50'] - direct['p50'])}**",
                    _ms(direct["p99"]),
                    _ms(gw["p99"]),
                    f"**{_ms(gw['p99'] - direct['p99'])}**",
                ]
            )
    return rows


def markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    s = results["settings"]
    load = "/".join(f"{x:.2f}" for x in env["load_before"])
    load_after = "/".join(f"{x:.2f}" for x in env.get("load_after", ()))
    share = results.get("others_busy")
    lines = ["# rxllm serve on Redis: gateway benchmark", ""]
    if env.get("quick"):
        lines += ["> **Quick run** (small sizes): checks the harness; rough figures.", ""]
    if env.get("note"):
        lines += [f"> {env['note']}", ""]
    lines += [
        f"- **Date**: {env['date']}; took {results.get('duration_s', '?')} s; load average "
        f"before {load}, after {load_after}"
        + (f"; other processes used {share:.0%} of the CPU meanwhile" if share is not None else ""),
        f"- **Machine**: {env['cpu']}, {env['cores']} cores, {env['memory']}; {env['os']}",
        f"- **Python**: {env['python']}; rxllm at {env['rxllm_commit']}; Redis: "
        f"{env.get('redis', '?')}",
        f"- **Command**: `{env['command']}`",
        "",
        "All on one machine: the upstream (benchmarks/gateway/upstream.py), the load generator"
        " (load.py), Redis and the gateway, each its own process, over loopback. A: no"
        " `redis_url`; B: `router_settings.redis_url` (keys, limits, spend, router state);"
        " C: B plus `litellm_settings.cache` on Redis. Every request carries a virtual key from"
        " `/key/generate`, so its path has the key's check. Latency in milliseconds.",
        "",
    ]
    rows = _added_rows(results)
    if rows:
        lines += [
            "## Added latency (1 worker, sequential)",
            "",
            f"{s['seq_reps']:,} requests per target after {s['warmup']} unmeasured, each"
            " alternating with the same request sent directly to the upstream; added ="
            " the gateway's percentile minus the direct upstream's in the same pass.",
            "",
            *report._table(
                [
                    "config",
                    "measure",
                    "n",
                    "direct p50",
                    "gateway p50",
                    "added p50",
                    "direct p99",
                    "gateway p99",
                    "added p99",
                ],
                rows,
            ),
            "",
        ]
    closed = results.get("closed", {})
    if closed:
        rows = []
        for name, label in (
            ("direct", "upstream directly (the harness's ceiling)"),
            ("A", "A, in-memory, 2 workers"),
            ("B", "B, Redis, 2 workers on one Redis"),
        ):
            c = closed.get(name)
            if not c or "latency" not in c:
                continue
            lat = c["latency"]
            rows.append(
                [
                    label,
                    f"**{c['rate']:,.0f}**",
                    _ms(lat.get("p50"), 2),
                    f"**{_ms(lat.get('p99'), 2)}**",
                    str(c["requests"]),
                    str(c["errors"]),
                ]
            )
        lines += [
            "## Sustained rate (closed loop, 2 workers)",
            "",
            f"{s['clients']} concurrent clients, each sending its next non-streaming request"
            f" as soon as the last is answered, for {s['closed_seconds']:.0f} s (after"
            f" {s['closed_warmup']:.0f} s unmeasured). The load generator is one process on the"
            " same 2 cores, so these are the machine's figures, not the gateway's ceiling.",
            "",
            *report._table(
                ["target", "requests/s", "p50", "p99", "requests", "errors"],
                rows,
            ),
            "",
        ]
    cache = results.get("cache")
    if cache:
        hits = cache["hits"].get("samples", {})
        miss = cache["miss"].get("samples", {}).get("C", {})
        rows = []
        for name, label in (
            ("direct", "upstream directly"),
            ("B", "B, no cache (upstream through the gateway)"),
            ("C", "C, cache hits"),
        ):
            h = hits.get(name)
            if not h or "p50" not in h.get("ttfb", {}):
                continue
            rows.append(
                [
                    label,
                    str(h["ttfb"]["n"]),
                    _ms(h["ttfb"]["p50"]),
                    _ms(h["ttfb"]["p99"]),
                    _ms(h["end"]["p50"]),
                    _ms(h["end"]["p99"]),
                ]
            )
        if miss.get("ttfb", {}).get("n"):
            rows.append(
                [
                    "C, the first request (miss, stored)",
                    "1",
                    _ms(miss["ttfb"]["p50"]),
                    "",
                    _ms(miss["end"]["p50"]),
                    "",
                ]
            )
        headers = cache["hits"].get("cache", {}).get("C", {})
        miss_header = cache["miss"].get("cache", {}).get("C", {})
        lines += [
            "## A cache hit for a streamed answer (1 worker)",
            "",
            f"One streamed request to C (a miss: stored), then {s['cache_reps']} identical"
            " streamed requests to C, alternating with the same stream through B (no cache)"
            " and directly to the upstream (10 content chunks, usage, `[DONE]`). First byte:"
            " of the body; end: the last byte. C's `x-rxllm-cache` headers: "
            + ", ".join(f"{k} x{v}" for k, v in headers.items())
            + " (the first request: "
            + ", ".join(f"{k}" for k in miss_header)
            + ").",
            "",
            *report._table(
                ["target", "n", "first byte p50", "first byte p99", "end p50", "end p99"],
                rows,
            ),
            "",
        ]
    trips = []
    seq = results.get("round_trips_B")
    if seq:
        m = seq["metrics"]
        trips.append(
            [
                "B, 1 worker, the sequential passes",
                f"{m['rxllm_requests_total']:,.0f} ({seq['sent']:,} sent)",
                f"{m['rxllm_redis_path_round_trips_total']:,.0f}",
                _per(m),
            ]
        )
    b2 = closed.get("B", {}).get("metrics")
    if b2:
        trips.append(
            [
                "B, 2 workers, the closed loop",
                f"{b2['rxllm_requests_total']:,.0f}",
                f"{b2['rxllm_redis_path_round_trips_total']:,.0f}",
                _per(b2),
            ]
        )
    c = (cache or {}).get("metrics")
    if c:
        trips.append(
            [
                "C, 1 worker, the miss and the cache hits",
                f"{c['rxllm_requests_total']:,.0f}",
                f"{c['rxllm_redis_path_round_trips_total']:,.0f}",
                _per(c),
            ]
        )
    if trips:
        lines += [
            "## Redis round trips on a request's path (B, C)",
            "",
            "`rxllm_redis_path_round_trips_total` over `rxllm_requests_total` (both from"
            " `/metrics`, differences over the pass; the goal: at most 2 a request). The"
            " counter holds the key's check and the router's admission; a cache hit makes no"
            " admission, and its cache read (one more round trip, a GET) is not counted, so a"
            " hit's path has 2 round trips where C's row says 1.",
            "",
            *report._table(["pass", "requests", "round trips", "per request"], trips),
            "",
        ]
    lines += [
        "## Configs",
        "",
        *(
            line
            for variant, text in results.get("configs", {}).items()
            for line in [
                f"{variant} ({VARIANTS[variant]}):",
                "",
                "```yaml",
                text.rstrip(),
                "```",
                "",
            ]
        ),
    ]
    if results.get("failures"):
        lines += ["## Failures", "", *(f"- {f}" for f in results["failures"]), ""]
    return "\n".join(lines).rstrip() + "\n"


def _per(m: dict[str, float]) -> str:
    requests = m["rxllm_requests_total"]
    return f"**{m['rxllm_redis_path_round_trips_total'] / requests:.2f}**" if requests else "-"


def _redis_version() -> str:
    import subprocess

    done = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    )
    found = re.search(r"v=(\S+)", done.stdout)
    return f"redis-server {found.group(1)}" if found else "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gateway.redis", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: under a minute")
    parser.add_argument("--out", type=Path, default=HERE, help="where to write redis_results.*")
    parser.add_argument("--note", default="", help="a line for the results' header")
    args = parser.parse_args(argv)
    s = QUICK if args.quick else Settings()

    environment = report.environment(args.note, quick=args.quick)
    environment["command"] = "python -m benchmarks.gateway.redis" + (
        " --quick" if args.quick else ""
    )
    environment["redis"] = _redis_version()
    results: dict[str, Any] = {"environment": environment}
    results.update(run(s))
    environment["load_after"] = os.getloadavg()

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "redis_results.json").write_text(json.dumps(results, indent=1) + "\n")
    text = markdown(results)
    (args.out / "redis_results.md").write_text(text)
    print(text)
    log(f"gateway logs in {results['logs']}")
    log(f"wrote {args.out / 'redis_results.md'} and redis_results.json")
    for failure in results["failures"]:
        log(f"FAILED: {failure}")
    return 1 if results["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
