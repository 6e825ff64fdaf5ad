"""A loopback aiohttp server that replays recorded provider transcripts, and misbehaves on
request: paced or stalled bodies, connections dropped mid-stream, error statuses.

It runs on its own thread and event loop, so tests drive rxllm the way users do: from plain
synchronous code (rxllm's background loop) and from inside asyncio alike. Every request is
recorded; a client that goes away before the body is finished sets ``disconnected``.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Reply:
    """What the server answers to one request."""

    body: bytes = b""
    status: int = 200
    content_type: str = "text/event-stream"
    headers: dict[str, str] = field(default_factory=dict)
    #: Write the body in pieces of this many bytes (None: in one write).
    piece: int | None = None
    #: Seconds to wait between pieces (a fake server's pacing).
    delay: float = 0.0
    #: Abort the TCP connection after writing this many bytes of the body.
    drop_after: int | None = None
    #: Stop writing after this many bytes and hold the connection open until the client leaves.
    stall_after: int | None = None
    #: Seconds to wait before answering at all (a server slow to the first byte).
    wait: float = 0.0
    #: Abort the TCP connection after reading the request, before sending any header.
    reset: bool = False
    #: Set ``ReplayServer.write_blocked`` while a write of the body waits for the client to read
    #: (TCP flow control holding the server back).
    report_blocking: bool = False
    #: Send the body gzip-encoded (``Content-Encoding: gzip``), flushed after every piece so
    #: it still streams.
    gzip: bool = False


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class ReplayServer:
    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
        self.requests: list[Recorded] = []
        self.replies: deque[Reply] = deque()
        self.default = Reply(status=500, body=b'{"error":{"message":"no reply queued"}}')
        #: Answers requests when no reply is queued (instead of ``default``), if set.
        self.responder: Callable[[Recorded], Reply] | None = None
        #: Bytes of response bodies written so far (all requests).
        self.written = 0
        #: Requests answered so far; ``requests`` keeps them only while ``record`` is true
        #: (a soak sends too many to keep).
        self.count = 0
        self.record = True
        self.disconnected = threading.Event()
        self.completed = threading.Event()
        #: Set while a body write waits for the client to read (``Reply.report_blocking``).
        self.write_blocked = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> ReplayServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    @property
    def base(self) -> str:
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    # --- scripting ---------------------------------------------------------------------

    def queue(self, *replies: Reply) -> ReplayServer:
        self.replies.extend(replies)
        return self

    def reset(self) -> None:
        self.requests.clear()
        self.replies.clear()
        self.disconnected = threading.Event()
        self.completed = threading.Event()
        self.write_blocked = threading.Event()
        self.responder = None
        self.written = 0
        self.count = 0
        self.record = True

    # --- the handler -------------------------------------------------------------------

    async def _write_reporting_blocks(
        self, request: web.Request, response: web.StreamResponse, piece: bytes
    ) -> None:
        """Write ``piece``; while the write waits for the transport to drain (the client is
        not reading), ``write_blocked`` is set."""
        write = asyncio.ensure_future(response.write(piece))
        await asyncio.sleep(0)  # one loop turn: the write has either finished or is draining
        protocol = request.protocol
        if not write.done() and protocol is not None and protocol.writing_paused:
            self.write_blocked.set()
        try:
            await write
        finally:
            self.write_blocked.clear()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        recorded = Recorded(
            request.method, request.path, dict(request.query), dict(request.headers), body
        )
        self.count += 1
        if self.record:
            self.requests.append(recorded)
        if self.replies:
            reply = self.replies.popleft()
        elif self.responder is not None:
            reply = self.responder(recorded)
        else:
            reply = self.default
        completed, disconnected = self.completed, self.disconnected
        if reply.reset:
            assert request.transport is not None
            request.transport.abort()
            disconnected.set()
            return web.Response()
        response = web.StreamResponse(status=reply.status, headers=reply.headers)
        response.content_type = reply.content_type
        data = reply.body
        compressor = None
        if reply.gzip:
            response.headers["Content-Encoding"] = "gzip"
            compressor = zlib.compressobj(wbits=31)
        limit = len(data)
        if reply.drop_after is not None:
            limit = min(limit, reply.drop_after)
        if reply.stall_after is not None:
            limit = min(limit, reply.stall_after)
        try:
            if reply.wait:
                await _wait_unless_gone(request, reply.wait)
            await response.prepare(request)
            step = reply.piece or max(limit, 1)
            for start in range(0, limit, step):
                piece = data[start : min(start + step, limit)]
                if compressor is not None:
                    await response.write(
                        compressor.compress(piece) + compressor.flush(zlib.Z_SYNC_FLUSH)
                    )
                elif reply.report_blocking:
                    await self._write_reporting_blocks(request, response, piece)
                else:
                    await response.write(piece)
                self.written += len(piece)
                if reply.delay:
                    await asyncio.sleep(reply.delay)  # pacing, not synchronisation
                if _gone(request):
                    raise ConnectionResetError
            if reply.drop_after is not None:
                assert request.transport is not None
                request.transport.abort()
                return response
            if reply.stall_after is not None:
                while not _gone(request):
                    await asyncio.sleep(0.01)  # a stalled server polls for its client leaving
                raise ConnectionResetError
            await response.write_eof(compressor.flush() if compressor is not None else b"")
            completed.set()
        except (ConnectionResetError, ConnectionError):
            disconnected.set()
        return response


async def _wait_unless_gone(request: web.Request, seconds: float) -> None:
    """A server slow to answer: wait, but stop as soon as the client leaves."""
    end = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < end:
        if _gone(request):
            raise ConnectionResetError
        await asyncio.sleep(0.01)  # pacing, not synchronisation


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def sse(*payloads: str | bytes, done: bool = True) -> bytes:
    """SSE body of ``data:`` events (and ``data: [DONE]`` unless ``done=False``)."""
    parts = [p.encode() if isinstance(p, str) else p for p in payloads]
    if done:
        parts.append(b"[DONE]")
    return b"".join(b"data: " + p + b"\n\n" for p in parts)
