"""What sharing the router's state on Redis adds to a request.

    python benchmarks/router_redis.py [--requests N] [--blocks K] [--redis URL]


The same routed requests go to a loopback upstream (benchmarks/server.py, in its own process)
through a ``Router`` with its state in memory and through one with ``redis_url`` (a
``redis-server`` started here on a free port, or ``--redis URL``), in alternating blocks so
that noise on the machine spreads over both. The configuration is the costliest for Redis:
two deployments, ``least-busy``, each with rpm and tpm limits, so every admission checks both
candidates' cooldown, pause, rpm window, tpm buckets and in-flight set.

Printed: p50/p99 latency of a whole non-streaming request (sequential, then 16 at once), the
difference, and the Redis round trips per request on its path (the router's own counter,
``shared_status()["path_round_trips"]``) and in all. Times are this machine's, loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from rxllm.router import Router  # noqa: E402

MESSAGES = [{"role": "user", "content": "Say hello."}]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_redis(directory: str) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("no redis-server on PATH: install it, or pass --redis redis://host:port/0")
    port = free_port()
    options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory]
    process = subprocess.Popen(
        [binary, "--port", str(port), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.02)  # waiting for the server to listen
    process.kill()
    sys.exit("redis-server did not start")


def start_upstream() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, str(HERE / "server.py")], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline().split()
    if line[:1] != ["PORT"]:
        process.kill()
        sys.exit("the upstream did not start")
    return process, f"http://127.0.0.1:{line[1]}/n1/v1"


def make_router(base: str, redis_url: str | None) -> Router:
    router = Router(redis_url=redis_url, num_retries=0, token_estimator=lambda t: len(t) // 4)
    deployment = {"provider": "openai", "model": "gpt-4o", "api_key": "sk-bench"}
    router.register(
        "bench",
        deployments=[
            {**deployment, "id": "one", "api_base": base, "rpm": 10**6, "tpm": 10**9},
            {**deployment, "id": "two", "api_base": base, "rpm": 10**6, "tpm": 10**9},
        ],
        strategy="least-busy",
    )
    return router


async def one(router: Router) -> float:
    started = time.perf_counter()
    await router.acompletion("bench", messages=MESSAGES)
    return time.perf_counter() - started


async def block(router: Router, requests: int, concurrency: int) -> list[float]:
    if concurrency == 1:
        return [await one(router) for _ in range(requests)]
    times: list[float] = []
    for _ in range(requests // concurrency):
        times += await asyncio.gather(*(one(router) for _ in range(concurrency)))
    return times


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(args: argparse.Namespace, base: str, url: str) -> dict[str, Any]:
    memory, shared = make_router(base, None), make_router(base, url)
    if not await shared.aconnect(wait=5):
        sys.exit(f"could not reach Redis at {url}")
    results: dict[str, Any] = {}
    for concurrency in (1, 16):
        for router in (memory, shared):  # warm up: connections, the script loaded
            await block(router, 64, concurrency)
        times: dict[str, list[float]] = {"memory": [], "redis": []}
        status = shared.shared_status()
        trips, path = status["round_trips"], status["path_round_trips"]
        per_block = max(concurrency, args.requests // args.blocks)
        for _ in range(args.blocks):
            times["memory"] += await block(memory, per_block, concurrency)
            times["redis"] += await block(shared, per_block, concurrency)
        await asyncio.sleep(0.2)  # let the releases (after each answer) finish
        status = shared.shared_status()
        count = len(times["redis"])
        results[f"concurrency {concurrency}"] = {
            "requests": count,
            "memory": (quantile(times["memory"], 0.5), quantile(times["memory"], 0.99)),
            "redis": (quantile(times["redis"], 0.5), quantile(times["redis"], 0.99)),
            "path_round_trips": (status["path_round_trips"] - path) / count,
            "round_trips": (status["round_trips"] - trips) / count,
            "errors": status["errors"],
        }
    await shared.aclose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="per router and mode")
    parser.add_argument("--blocks", type=int, default=10, help="alternations per mode")
    parser.add_argument("--redis", help="use this Redis instead of starting one")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="rxllm-bench-redis-")
    redis_process = None
    if args.redis:
        url = args.redis
    else:
        redis_process, url = start_redis(directory)
    upstream, base = start_upstream()
    try:
        results = asyncio.run(measure(args, base, url))
    finally:
        upstream.kill()
        upstream.wait()
        if redis_process is not None:
            redis_process.kill()
            redis_process.wait()
        shutil.rmtree(directory, ignore_errors=True)
    print(f"router state in memory vs on Redis ({os.cpu_count()} cores, loopback upstream)")
    header = "mode", "requests", "memory p50/p99 ms", "redis p50/p99 ms", "added p50/p99 ms"
    print("{:<15} {:>8} {:>19} {:>19} {:>18} {:>11} {:>9}".format(*header, "path trips", "trips"))
    for mode, r in results.items():
        (mp50, mp99), (rp50, rp99) = r["memory"], r["redis"]
        print(
            f"{mode:<15} {r['requests']:>8} {mp50 * 1e3:>9.3f}/{mp99 * 1e3:<9.3f}"
            f"{rp50 * 1e3:>9.3f}/{rp99 * 1e3:<9.3f} {(rp50 - mp50) * 1e3:>8.3f}/"
            f"{(rp99 - mp99) * 1e3:<9.3f} {r['path_round_trips']:>11.2f} "
            f"{r['round_trips']:>9.2f}"
        )
        if r["errors"]:
            print(f"  ({r['errors']} Redis errors: some requests ran on local state)")


if __name__ == "__main__":
    main()
