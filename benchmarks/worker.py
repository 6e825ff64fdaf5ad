"""One client library in its own process, driven by the runner (run.py).

``python -m benchmarks.worker serve LIBRARY ROOT`` imports that library, then reads one JSON
command per line from stdin and answers each with a line ``RESULT {json}`` on stdout (other
output, which some libraries print, is ignored). It keeps one event loop and the library's
long-lived client for its whole life, as an application would.

``python -m benchmarks.worker burst LIBRARY ROOT FMT CLIENT STREAMS CHUNKS`` is one run of the
concurrency benchmark in a fresh process, so that its peak RSS is that client's alone.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import importlib
import json
import resource
import sys
import time
from typing import Any

from .clients import IMPORTS, Context, load

# --- what a command measures -----------------------------------------------------------------


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


async def _text_of(function: Any, ctx: Context, cfg: str) -> str:
    parts: list[str] = []
    await function(ctx, cfg, parts.append)
    return "".join(parts)


async def op_stream(ctx: Context, fmt: str, client: str, cfg: str) -> dict[str, Any]:
    """Wall time of one whole streamed request (request start to stream end)."""
    function = load("stream", fmt, client)
    parts: list[str] = []
    gc.collect()
    start = time.perf_counter()
    await function(ctx, cfg, parts.append)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "text": digest("".join(parts))}


async def op_ttft(ctx: Context, fmt: str, client: str, cfg: str, reps: int) -> dict[str, Any]:
    """Request start to the first text piece in user code, ``reps`` times."""
    function = load("stream", fmt, client)
    samples: list[float] = []
    text = ""
    for _ in range(reps):
        parts: list[str] = []
        first: list[float] = []

        def on_text(piece: str, parts: list[str] = parts, first: list[float] = first) -> None:
            if not first:
                first.append(time.perf_counter())
            parts.append(piece)

        gc.collect()
        start = time.perf_counter()
        await function(ctx, cfg, on_text)
        samples.append(first[0] - start)
        text = "".join(parts)
    return {"samples": samples, "text": digest(text)}


async def op_fetch(
    ctx: Context, fmt: str, client: str, cfg: str, *, seconds: float, concurrency: int
) -> dict[str, Any]:
    """Non-streaming requests, ``concurrency`` at a time, for about ``seconds``: requests/s."""
    function = load("fetch", fmt, client)
    texts: set[str] = set()
    done = 0

    async def lane(deadline: float) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            texts.add(await function(ctx, cfg))
            done += 1

    gc.collect()
    start = time.perf_counter()
    await asyncio.gather(*(lane(start + seconds) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    text = digest(texts.pop()) if len(texts) == 1 else "differs"
    return {"rps": done / elapsed, "requests": done, "text": text}


OPS = {"stream": op_stream, "ttft": op_ttft, "fetch": op_fetch}


def _status_mb(field: str) -> float | None:
    """A memory figure of this process from /proc/self/status (Linux), in MB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """The current resident set size."""
    return _status_mb("VmRSS") or 0.0


def peak_rss_mb() -> float:
    """The peak resident set size of this process.

    ``VmHWM`` (the high-water mark of this address space) rather than ``ru_maxrss``: Linux keeps
    ``ru_maxrss`` across ``execve``, so a child started by a bigger parent would report the
    parent's peak."""
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024  # bytes / KiB


async def burst(ctx: Context, fmt: str, client: str, streams: int, chunks: int) -> dict[str, Any]:
    """``streams`` concurrent streams of ``chunks`` pieces: wall, CPU, peak RSS."""
    function = load("stream", fmt, client)
    cfg = f"n{chunks}"
    await _text_of(function, ctx, cfg)  # lazy imports, first connection
    gc.collect()
    setup_rss = rss_mb()
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    texts = await asyncio.gather(*(_text_of(function, ctx, cfg) for _ in range(streams)))
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "wall": wall,
        "cpu": cpu,
        "peak_rss_mb": peak_rss_mb(),
        "setup_rss_mb": setup_rss,
        "text": digest(texts[0]) if len(set(texts)) == 1 else "differs",
    }


# --- the process ---------------------------------------------------------------------------


def _answer(result: dict[str, Any]) -> None:
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


async def _close(ctx: Context, library: str) -> None:
    await ctx.close()
    if library == "rxllm":
        from .clients import rx

        await rx.close()


def _run(library: str, root: str, commands: Any) -> None:
    for module in IMPORTS[library]:
        importlib.import_module(module)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    ctx = Context(root)
    try:
        commands(loop, ctx)
    finally:
        loop.run_until_complete(_close(ctx, library))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def serve(library: str, root: str) -> None:
    def commands(loop: asyncio.AbstractEventLoop, ctx: Context) -> None:
        _answer({"ready": True})
        for line in sys.stdin:
            command = json.loads(line)
            op = command.pop("op")
            if op == "quit":
                break
            try:
                result = loop.run_until_complete(OPS[op](ctx, **command))
            except Exception as exc:
                result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
            _answer(result)

    _run(library, root, commands)


def main(argv: list[str]) -> None:
    mode, library, root, *rest = argv
    if mode == "serve":
        serve(library, root)
        return
    fmt, client, streams, chunks = rest

    def commands(loop: asyncio.AbstractEventLoop, ctx: Context) -> None:
        try:
            result = loop.run_until_complete(burst(ctx, fmt, client, int(streams), int(chunks)))
        except Exception as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        _answer(result)

    _run(library, root, commands)


if __name__ == "__main__":
    main(sys.argv[1:])
