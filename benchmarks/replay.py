"""What a stream keeps for replay, per chunk: ``python -m benchmarks.replay [N]``.

The benchmark's OpenAI stream (server.py, N text chunks) is parsed offline, as a ChatStream
parses it (64 KiB reads through rxllm's SSE decoder and OpenAI parser), and each chunk is
handed to a keeper, which is all that stays alive afterwards:

* ``list`` - a list of the ChatChunk structs (what a stream kept before ``rxllm._replay``);
* ``Replay`` - the compact replay (``rxllm._replay.Replay``);
* ``NoReplay`` - ``replay=False``: only the partial answer.

Reported: bytes still allocated (tracemalloc) per chunk beyond the UTF-8 bytes of its text;
the cost of ``append`` per chunk (the best of several passes over the parsed chunks); the cost
of iterating the kept chunks (a late subscriber's replay). Prints ``RESULT {json}``.
"""

from __future__ import annotations

import gc
import json
import sys
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from .server import openai_stream

READ = 65536
PASSES = 5


def _parse(body: bytes) -> Any:
    """The chunks of ``body``, read by read (a generator: each read's chunks are dropped
    once handed on, as the subscribers drop them)."""
    from rxllm import transport
    from rxllm.providers.openai import OpenAIStreamParser

    decoder, parser = transport.SSEDecoder(), OpenAIStreamParser("openai", "gpt-4o")
    for start in range(0, len(body), READ):
        chunks, error = parser.parse(decoder.feed(body[start : start + READ]))
        if error is not None:
            raise error
        yield from chunks
    assert parser.done


def _kept_bytes(keeper: Callable[[], Any], body: bytes) -> tuple[int, int]:
    """(bytes allocated by the keeper and what it keeps, text bytes)."""
    gc.collect()
    tracemalloc.start()
    try:
        kept, text = keeper(), 0
        for chunk in _parse(body):
            kept.append(chunk)
            if chunk.choices:
                text += len((chunk.choices[0].delta.content or "").encode())
        gc.collect()
        size, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return size, text


def _best_ns(work: Callable[[], None], count: int) -> float:
    best = float("inf")
    for _ in range(PASSES):
        gc.collect()
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best / count * 1e9


def measure(n: int) -> dict[str, Any]:
    try:
        from rxllm._replay import NoReplay, Replay
    except ImportError:
        keepers: dict[str, Callable[[], Any]] = {"list": list}
    else:
        keepers = {"list": list, "Replay": Replay, "NoReplay": NoReplay}
    head, rest = openai_stream(n)
    body = head + rest
    chunks = list(_parse(body))
    count = len(chunks)
    out: dict[str, Any] = {"chunks": count, "text_bytes": 0, "keepers": {}}
    for name, keeper in keepers.items():
        size, text = _kept_bytes(keeper, body)
        out["text_bytes"] = text

        def appending(keeper: Callable[[], Any] = keeper) -> None:
            append = keeper().append
            for chunk in chunks:
                append(chunk)

        full = keeper()
        for chunk in chunks:
            full.append(chunk)

        def iterating(full: Any = full) -> None:
            for _ in full:
                pass

        out["keepers"][name] = {
            "bytes": size,
            "bytes_per_chunk": (size - text) / count,
            "append_ns": _best_ns(appending, count),
            "iterate_ns": _best_ns(iterating, count) if name != "NoReplay" else None,
        }
        if name == "Replay":
            assert list(full) == chunks, "a replay differs from the stream"
    return out


def main(argv: list[str]) -> None:
    n = int(argv[0]) if argv else 20_000
    try:
        result = measure(n)
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
