"""The load generator of the gateway benchmark, in its own process, driven by the runner.

``python -m benchmarks.gateway.load`` reads one JSON command per line from stdin and answers
each with a line ``RESULT {json}`` on stdout. It keeps one event loop (uvloop when installed)
and one pooled aiohttp session for its whole life. A target is ``{"name", "url", "key"}``: the
upstream itself (``direct``) or a gateway, all reached with the same request bodies.

Commands (``op``):

* ``check``: one non-streaming and one streaming request to each target; their text, usage and
  event counts (every target must give the upstream's text).
* ``sequential``: one request at a time, the targets interleaved (round-robin, the order rotated
  every round) so that drift on the machine spreads over all of them; non-streaming latency
  (request start to the whole body) or, streaming, time to the first content event.
* ``rate``: open-loop requests at a fixed rate for some seconds (each sent at its scheduled
  time, whatever the others are doing); latency counted from the scheduled time, so that a
  generator or gateway falling behind is counted, not hidden.
* ``coalesce``: streams whose upstream writes a content event every ``gap`` ms; the arrival
  time of every event and the socket read it came in.
* ``streams``: like ``sequential``, streamed, for each request the time to the first byte of
  the body, to the first content event and to the end, and the ``x-rxllm-cache`` header.
* ``closed``: a closed loop, ``clients`` concurrent clients each sending its next request when
  the last one is answered, for some seconds: requests/s and latency.
* ``hold``: ``streams`` concurrent streams of the upstream's ``hold`` profile held open while
  the gateway's RSS (summed over its processes) is sampled, then released and read to the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
import time
from typing import Any

import aiohttp
import msgspec

from .procs import cpu_seconds, summary, tree_rss

PROMPT = [{"role": "user", "content": "Say hello."}]
_decode = msgspec.json.Decoder().decode


def body(model: str, stream: bool) -> bytes:
    payload: dict[str, Any] = {"model": model, "messages": PROMPT}
    if stream:
        payload["stream"] = True
        payload["stream_options"] = {"include_usage": True}
    return json.dumps(payload).encode()


def headers(target: dict[str, Any]) -> dict[str, str]:
    out = {"Content-Type": "application/json"}
    if target.get("key"):
        out["Authorization"] = f"Bearer {target['key']}"
    return out


def url(target: dict[str, Any]) -> str:
    return str(target["url"]) + "/v1/chat/completions"


class Events:
    """SSE events of a stream as they arrive: ``(data, read index, arrival time)``."""

    def __init__(self) -> None:
        self.buffer = b""
        self.reads = 0

    def feed(self, data: bytes, now: float) -> list[tuple[bytes, int, float]]:
        self.reads += 1
        self.buffer += data
        if b"\n\n" not in self.buffer and b"\r\n\r\n" not in self.buffer:
            return []
        text = self.buffer.replace(b"\r\n", b"\n")
        *complete, self.buffer = text.split(b"\n\n")
        out = []
        for event in complete:
            out.extend(
                (line[5:].strip(), self.reads, now)
                for line in event.split(b"\n")
                if line.startswith(b"data:")
            )
        return out


def content_of(data: bytes) -> str | None:
    """The content delta of a chunk event ('' for none), None for ``[DONE]`` or non-JSON."""
    if data == b"[DONE]":
        return None
    try:
        chunk = _decode(data)
    except msgspec.DecodeError:
        return None
    if not isinstance(chunk, dict):
        return None
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content"):
            return str(delta["content"])
    return ""


def has_usage(data: bytes) -> bool:
    try:
        chunk = _decode(data)
    except msgspec.DecodeError:
        return False
    return isinstance(chunk, dict) and bool(chunk.get("usage"))


class Load:
    def __init__(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=300)
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None, sock_connect=30)
        )
        self.bodies: dict[tuple[str, bool], bytes] = {}

    def body(self, model: str, stream: bool) -> bytes:
        key = (model, stream)
        if key not in self.bodies:
            self.bodies[key] = body(model, stream)
        return self.bodies[key]

    async def close(self) -> None:
        await self.session.close()

    # --- one request ---------------------------------------------------------------------------

    async def fetch(self, target: dict[str, Any], model: str) -> tuple[float, bytes]:
        """(seconds, body) of one non-streaming request."""
        start = time.perf_counter()
        async with self.session.post(
            url(target), data=self.body(model, False), headers=headers(target)
        ) as resp:
            data = await resp.read()
            elapsed = time.perf_counter() - start
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {data[:300]!r}")
        return elapsed, data

    async def stream(
        self, target: dict[str, Any], model: str
    ) -> tuple[float, float | None, list[tuple[bytes, int, float]], float]:
        """(start, time to first content, events, end) of one streamed request."""
        events: list[tuple[bytes, int, float]] = []
        first: float | None = None
        parser = Events()
        start = time.perf_counter()
        async with self.session.post(
            url(target), data=self.body(model, True), headers=headers(target)
        ) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {(await resp.read())[:300]!r}")
            async for data in resp.content.iter_any():
                now = time.perf_counter()
                got = parser.feed(data, now)
                if got and first is None:
                    for event in got:
                        if content_of(event[0]):
                            first = now - start
                            break
                events += got
        return start, first, events, time.perf_counter()

    # --- commands --------------------------------------------------------------------------

    async def op_check(self, targets: list[dict[str, Any]], model: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for target in targets:
            result: dict[str, Any] = {}
            try:
                _, data = await self.fetch(target, model)
                message = _decode(data)["choices"][0]["message"]
                result["text"] = message.get("content")
                result["usage"] = bool(_decode(data).get("usage"))
                _, _, events, _ = await self.stream(target, model)
                contents = [content_of(e[0]) for e in events]
                result["stream_text"] = "".join(c for c in contents if c)
                result["stream_events"] = len(events)
                result["stream_content_events"] = sum(1 for c in contents if c)
                result["stream_usage"] = any(has_usage(e[0]) for e in events)
                result["stream_done"] = bool(events) and events[-1][0] == b"[DONE]"
            except Exception as exc:
                result["error"] = f"{type(exc).__name__}: {exc}"
            out[target["name"]] = result
        return out

    async def op_sequential(
        self, targets: list[dict[str, Any]], model: str, stream: bool, reps: int, warmup: int
    ) -> dict[str, Any]:
        samples: dict[str, list[float]] = {t["name"]: [] for t in targets}
        errors: dict[str, str] = {}
        live = list(targets)
        for i in range(warmup + reps):
            shift = i % len(live) if live else 0
            for target in live[shift:] + live[:shift]:
                try:
                    if stream:
                        _, first, events, _ = await self.stream(target, model)
                        if first is None:
                            raise RuntimeError("no content event in the stream")
                        if not events or events[-1][0] != b"[DONE]":
                            raise RuntimeError("stream did not end with [DONE]")
                        value = first
                    else:
                        value, _ = await self.fetch(target, model)
                except Exception as exc:
                    errors[target["name"]] = f"{type(exc).__name__}: {exc}"
                    live.remove(target)
                    break
                if i >= warmup:
                    samples[target["name"]].append(value)
        return {
            "samples": {name: summary(values) for name, values in samples.items()},
            "raw": samples,
            "errors": errors,
        }

    async def timed_stream(self, target: dict[str, Any], model: str) -> dict[str, Any]:
        """One streamed request: seconds to the first body byte, the first content event and
        the end, and the response's ``x-rxllm-cache`` header."""
        parser = Events()
        first_byte = first_content = None
        last = b""
        start = time.perf_counter()
        async with self.session.post(
            url(target), data=self.body(model, True), headers=headers(target)
        ) as resp:
            if resp.status != 200:
                raise RuntimeError(f"HTTP {resp.status}: {(await resp.read())[:300]!r}")
            cache = resp.headers.get("x-rxllm-cache")
            async for data in resp.content.iter_any():
                now = time.perf_counter()
                if first_byte is None:
                    first_byte = now - start
                for event, _, _ in parser.feed(data, now):
                    last = event
                    if first_content is None and content_of(event):
                        first_content = now - start
        end = time.perf_counter() - start
        if first_content is None or last != b"[DONE]":
            raise RuntimeError("no content event, or the stream did not end with [DONE]")
        return {"ttfb": first_byte, "ttft": first_content, "end": end, "cache": cache}

    async def op_streams(
        self, targets: list[dict[str, Any]], model: str, reps: int, warmup: int
    ) -> dict[str, Any]:
        names = [t["name"] for t in targets]
        raw: dict[str, dict[str, list[float]]] = {
            n: {"ttfb": [], "ttft": [], "end": []} for n in names
        }
        cache: dict[str, dict[str, int]] = {n: {} for n in names}
        errors: dict[str, str] = {}
        live = list(targets)
        for i in range(warmup + reps):
            shift = i % len(live) if live else 0
            for target in live[shift:] + live[:shift]:
                try:
                    got = await self.timed_stream(target, model)
                except Exception as exc:
                    errors[target["name"]] = f"{type(exc).__name__}: {exc}"
                    live.remove(target)
                    break
                if i >= warmup:
                    for what in ("ttfb", "ttft", "end"):
                        raw[target["name"]][what].append(got[what])
                    seen = cache[target["name"]]
                    seen[str(got["cache"])] = seen.get(str(got["cache"]), 0) + 1
        return {
            "samples": {n: {w: summary(v) for w, v in r.items()} for n, r in raw.items()},
            "raw": raw,
            "cache": cache,
            "errors": errors,
        }

    async def op_closed(
        self, *, target: dict[str, Any], model: str, clients: int, seconds: float, warmup: float
    ) -> dict[str, Any]:
        latencies: list[float] = []
        errors: list[str] = []
        start = time.perf_counter()
        counted_from = start + warmup
        deadline = counted_from + seconds

        async def client() -> None:
            while True:
                sent = time.perf_counter()
                if sent >= deadline:
                    return
                try:
                    async with self.session.post(
                        url(target), data=self.body(model, False), headers=headers(target)
                    ) as resp:
                        await resp.read()
                        if resp.status != 200:
                            raise RuntimeError(f"HTTP {resp.status}")
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                done = time.perf_counter()
                if sent >= counted_from and done <= deadline:
                    latencies.append(done - sent)

        await asyncio.gather(*(client() for _ in range(clients)))
        return {
            "clients": clients,
            "seconds": seconds,
            "requests": len(latencies),
            "rate": len(latencies) / seconds,
            "latency": summary(latencies),
            "errors": len(errors),
            "first_error": errors[0] if errors else None,
        }

    async def op_rate(
        self,
        *,
        target: dict[str, Any],
        model: str,
        rate: float,
        seconds: float,
        skip: float,
        pid: int | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        total = max(1, round(rate * seconds))
        interval = 1 / rate
        latencies: list[float] = []
        lags: list[float] = []
        errors: list[str] = []
        first_counted = int(total * skip)

        async def one(index: int, scheduled: float) -> None:
            lag = time.perf_counter() - scheduled
            try:
                async with self.session.post(
                    url(target), data=self.body(model, False), headers=headers(target)
                ) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise RuntimeError(f"HTTP {resp.status}")
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            if index >= first_counted:
                latencies.append(time.perf_counter() - scheduled)
                lags.append(lag)

        tasks = []
        cpu_before = cpu_seconds(pid) if pid else 0.0
        start = time.perf_counter() + 0.01
        sent = 0
        while sent < total:
            now = time.perf_counter()
            while sent < total and start + sent * interval <= now:
                tasks.append(asyncio.ensure_future(one(sent, start + sent * interval)))
                sent += 1
            if sent < total:
                await asyncio.sleep(max(0.0, start + sent * interval - time.perf_counter()))
        sending = time.perf_counter() - start
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        wall = time.perf_counter() - start
        cpu = (cpu_seconds(pid) - cpu_before) if pid else None
        return {
            "rate": rate,
            "sent": total,
            "counted": total - first_counted,
            "latency": summary(latencies),
            "lag": summary(lags),
            "errors": len(errors) + len(pending),
            "first_error": errors[0] if errors else ("timeout" if pending else None),
            "sending_s": sending,
            "wall_s": wall,
            "cpu_s": cpu,
        }

    async def op_coalesce(
        self, targets: list[dict[str, Any]], model: str, reps: int, gap_ms: float
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        runs: dict[str, list[list[tuple[int, float]]]] = {t["name"]: [] for t in targets}
        errors: dict[str, str] = {}
        for _ in range(reps):
            for target in targets:
                if target["name"] in errors:
                    continue
                try:
                    _, _, events, _ = await self.stream(target, model)
                except Exception as exc:
                    errors[target["name"]] = f"{type(exc).__name__}: {exc}"
                    continue
                runs[target["name"]].append(
                    [(read, at) for data, read, at in events if content_of(data)]
                )
        for name, streams in runs.items():
            gaps: list[float] = []
            same_read = within_1ms = total = 0
            for events in streams:
                total += len(events)
                reads = [read for read, _ in events]
                same_read += sum(1 for read in reads if reads.count(read) > 1)
                for (_, a), (_, b) in itertools.pairwise(events):
                    gaps.append(b - a)
                    within_1ms += (b - a) < 0.001
            out[name] = {
                "streams": len(streams),
                "content_events": total,
                "in_a_shared_read": same_read,
                "within_1ms": within_1ms,
                "gaps": len(gaps),
                "inter_arrival": summary(gaps),
                "arrivals": [[at - events[0][1] for _, at in events] for events in streams[:1]],
            }
        return {"targets": out, "errors": errors, "gap_ms": gap_ms}

    async def op_hold(
        self,
        *,
        target: dict[str, Any],
        model: str,
        streams: int,
        pid: int,
        upstream: str,
        open_timeout: float,
        batch: int = 50,
        batch_gap: float = 0.02,
    ) -> dict[str, Any]:
        await self.session.post(upstream + "/hold/reset")
        opened = 0
        all_open = asyncio.Event()
        errors: list[str] = []
        completed = 0
        await asyncio.sleep(0.5)
        before, processes = tree_rss(pid)

        async def one() -> None:
            nonlocal opened, completed
            parser = Events()
            seen = False
            try:
                async with self.session.post(
                    url(target), data=self.body(model, True), headers=headers(target)
                ) as resp:
                    if resp.status != 200:
                        raise RuntimeError(f"HTTP {resp.status}")
                    last = b""
                    async for data in resp.content.iter_any():
                        for event, _, _ in parser.feed(data, 0.0):
                            last = event
                            if not seen and content_of(event):
                                seen = True
                                opened += 1
                                if opened == streams:
                                    all_open.set()
                    if last != b"[DONE]":
                        raise RuntimeError("stream did not end with [DONE]")
                    completed += 1
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")

        start = time.perf_counter()
        tasks = []
        for i in range(streams):
            tasks.append(asyncio.ensure_future(one()))
            if (i + 1) % batch == 0:
                await asyncio.sleep(batch_gap)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(all_open.wait(), open_timeout)
        open_s = time.perf_counter() - start
        samples = []
        for _ in range(3):
            await asyncio.sleep(0.5)
            samples.append(tree_rss(pid)[0])
        open_count = opened
        async with self.session.post(upstream + "/hold/release") as resp:
            await resp.read()
        _done, pending = await asyncio.wait(tasks, timeout=max(60.0, open_timeout))
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        await asyncio.sleep(0.5)
        after = tree_rss(pid)[0]
        during = sorted(samples)[1]
        return {
            "streams": streams,
            "opened": open_count,
            "open_s": open_s,
            "completed": completed,
            "hung": len(pending),
            "errors": len(errors),
            "first_error": errors[0] if errors else None,
            "processes": processes,
            "rss_before": before,
            "rss_open": during,
            "rss_after": after,
            "per_stream_bytes": (during - before) / open_count if open_count else None,
        }


async def serve() -> None:
    load = Load()
    loop = asyncio.get_running_loop()
    print("RESULT " + json.dumps({"ready": True}), flush=True)
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command = json.loads(line)
            op = command.pop("op")
            if op == "quit":
                break
            try:
                result = await getattr(load, f"op_{op}")(**command)
            except Exception as exc:
                result = {"error": f"{type(exc).__name__}: {exc}"}
            print("RESULT " + json.dumps(result), flush=True)
    finally:
        await load.close()


def main() -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve())
    else:
        uvloop.run(serve())


if __name__ == "__main__":
    main()
