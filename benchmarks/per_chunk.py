"""Per-chunk cost of a long stream: rxllm against raw aiohttp + msgspec on the same bytes.

    python benchmarks/per_chunk.py [--chunks 20000] [--runs 9]

The server (benchmarks/server.py) runs in its own process and writes pre-encoded chunks as
fast as the socket takes them. Clients, run alternately, median of ``--runs``:

* ``floor-lines``: aiohttp's line iterator (``async for line in resp.content``) + msgspec
  decoding a minimal struct - what a careful hand-written client does;
* ``floor-bulk``:  ``iter_any()`` + ``bytes.split`` + msgspec - a tighter hand-written floor;
* ``rxllm-extract``: ``completion(stream=True).pipe(ops.extract_content())``;
* ``rxllm-collect``: ``completion(stream=True).pipe(ops.collect())``.

Every client must produce the same text; times are wall-clock per chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import msgspec

import rxllm
from rxllm import ops


class _Delta(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta
    finish_reason: str | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice]


_decode = msgspec.json.Decoder(_Chunk).decode


def request_body(n: int) -> dict[str, object]:
    return {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "n_chunks": n,
    }


async def floor_lines(session: aiohttp.ClientSession, base: str, n: int) -> str:
    parts: list[str] = []
    async with session.post(f"{base}/chat/completions", json=request_body(n)) as resp:
        async for line in resp.content:
            if line.startswith(b"data: "):
                payload = line[6:].rstrip()
                if payload == b"[DONE]":
                    break
                chunk = _decode(payload)
                if chunk.choices and chunk.choices[0].delta.content:
                    parts.append(chunk.choices[0].delta.content)
    return "".join(parts)


async def floor_bulk(session: aiohttp.ClientSession, base: str, n: int) -> str:
    parts: list[str] = []
    tail = b""
    async with session.post(f"{base}/chat/completions", json=request_body(n)) as resp:
        async for data in resp.content.iter_any():
            events = (tail + data).split(b"\n\n")
            tail = events.pop()
            for event in events:
                payload = event[6:]
                if payload == b"[DONE]":
                    break
                chunk = _decode(payload)
                if chunk.choices and chunk.choices[0].delta.content:
                    parts.append(chunk.choices[0].delta.content)
    return "".join(parts)


def _stream(base: str, n: int) -> rxllm.ChatStream:
    return rxllm.completion(
        "openai",
        "gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        api_key="sk-bench",
        api_base=base,
        extra_body={"n_chunks": n},
    )


async def rxllm_extract(_: aiohttp.ClientSession, base: str, n: int) -> str:
    parts: list[str] = []
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    _stream(base, n).pipe(ops.extract_content()).subscribe(
        parts.append, done.set_exception, lambda: done.set_result(None)
    )
    await done
    return "".join(parts)


async def rxllm_collect(_: aiohttp.ClientSession, base: str, n: int) -> str:
    response = await _stream(base, n).pipe(ops.collect())
    return response.text


CLIENTS: dict[str, Callable[[aiohttp.ClientSession, str, int], Awaitable[str]]] = {
    "floor-lines": floor_lines,
    "floor-bulk": floor_bulk,
    "rxllm-extract": rxllm_extract,
    "rxllm-collect": rxllm_collect,
}


def start_server() -> tuple[subprocess.Popen[str], str]:
    server = Path(__file__).with_name("server.py")
    proc = subprocess.Popen([sys.executable, str(server)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline().split()[1])
    return proc, f"http://127.0.0.1:{port}/v1"


async def measure(n: int, runs: int) -> dict[str, list[float]]:
    proc, base = start_server()
    times: dict[str, list[float]] = {name: [] for name in CLIENTS}
    try:
        async with aiohttp.ClientSession() as session:
            expected = await floor_lines(session, base, n)
            for _ in range(runs):
                for name, client in CLIENTS.items():
                    start = time.perf_counter()
                    text = await client(session, base, n)
                    times[name].append(time.perf_counter() - start)
                    assert text == expected, f"{name} produced different text"
    finally:
        proc.terminate()
        proc.wait()
        await rxllm.aclose()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    times = asyncio.run(measure(args.chunks, args.runs))
    floors = {k: statistics.median(times[k]) for k in ("floor-lines", "floor-bulk")}
    version = sys.version.split()[0]
    print(f"{args.chunks} chunks, median of {args.runs} runs (min-max), Python {version}")
    print("| client | us/chunk | chunks/s | vs floor-lines | vs floor-bulk |")
    print("|---|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        per = median / args.chunks * 1e6
        print(
            f"| {name} | {per:.2f} ({min(values) / args.chunks * 1e6:.2f}-"
            f"{max(values) / args.chunks * 1e6:.2f}) | {args.chunks / median:,.0f} | "
            f"{median / floors['floor-lines']:.2f}x | {median / floors['floor-bulk']:.2f}x |"
        )


if __name__ == "__main__":
    main()
