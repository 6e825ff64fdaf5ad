"""rxllm's in-process loopback HTTP server, which plays back replies the requests script.

A request whose URL starts with ``rxllm+loopback://`` is still sent for real - over TCP to
127.0.0.1, through the same aiohttp session, decoders and stream machinery as any other - to a
small aiohttp server started on rxllm's background loop on first use. Its body is a
:class:`~rxllm._wire.ScriptedReply` (msgpack) and the server answers with exactly that: status,
headers, the body piece by piece with pauses, or a connection cut mid-body or refused. So a
provider module that simulates a provider (the mock) describes the wire and stays pure
translation, while this floor does the serving. The server stops when the background loop does.

``server()`` gives its counters (requests, completed replies, clients that went away early) for
tests that check a connection really closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable

import msgspec
from aiohttp import web

from .. import _loop
from .._wire import LOOPBACK_SCHEME, ScriptedReply

__all__ = ["LoopbackServer", "resolve", "server"]

_decode_script = msgspec.msgpack.Decoder(ScriptedReply).decode


class LoopbackServer:
    """The loopback server of one background loop, with counters of what it served."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.port = 0
        #: Requests received, replies written to the end, and replies whose client left first.
        self.requests = 0
        self.completed = 0
        self.disconnected = 0
        self._changed = threading.Condition()
        self._runner: web.AppRunner | None = None

    def wait(self, predicate: Callable[[LoopbackServer], bool], timeout: float) -> bool:
        """Block until ``predicate(self)`` holds (checked whenever a counter changes)."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    def _count(self, counter: str) -> None:
        with self._changed:
            setattr(self, counter, getattr(self, counter) + 1)
            self._changed.notify_all()

    async def start(self) -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.1
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runner = runner
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self._count("requests")
        try:
            script = _decode_script(await request.read())
        except msgspec.DecodeError:
            return web.Response(status=400, text="send a ScriptedReply (msgpack) as the body")
        if script.refuse:
            if request.transport is not None:
                request.transport.abort()
            return web.Response()
        response = web.StreamResponse(status=script.status, headers=script.headers)
        try:
            await response.prepare(request)
            for index, piece in enumerate(script.pieces):
                if script.abort_after is not None and index >= script.abort_after:
                    break
                pause = script.first_delay if index == 0 else script.delay
                if pause:
                    await asyncio.sleep(pause)
                await response.write(piece)
            if script.abort_after is not None:
                if request.transport is not None:
                    request.transport.abort()
                return response
            await response.write_eof()
        except (asyncio.CancelledError, ConnectionError):
            # The client went away (handler cancellation, or a write to a closed socket).
            self._count("disconnected")
            raise
        self._count("completed")
        return response


_lock = threading.Lock()
_servers: dict[asyncio.AbstractEventLoop, asyncio.Future[LoopbackServer]] = {}


async def _started() -> LoopbackServer:
    """On the background loop: its server, started once."""
    loop = asyncio.get_running_loop()
    with _lock:
        future = _servers.get(loop)
        if future is None:
            future = _servers[loop] = loop.create_future()
            starting = True
        else:
            starting = False
    if starting:
        new = LoopbackServer(loop)
        try:
            await new.start()
        except BaseException as exc:
            with _lock:
                _servers.pop(loop, None)
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: waiters get it, nobody is warned at exit
            raise
        future.set_result(new)
    return await asyncio.shield(future)


def server() -> LoopbackServer:
    """The loopback server (started now if need be). Call it from outside rxllm's loop thread."""
    return _loop.run_sync(_started())


async def resolve(url: str) -> str:
    """The ``http://127.0.0.1:<port>/...`` URL a loopback URL stands for, on the running loop."""
    background = _loop.background_loop()
    if _loop.running_loop() is background:
        loopback = await _started()
    else:
        loopback = await asyncio.wrap_future(
            asyncio.run_coroutine_threadsafe(_started(), background)
        )
    rest = url[len(LOOPBACK_SCHEME) :]
    slash = rest.find("/")
    path = rest[slash:] if slash >= 0 else "/"
    return f"http://127.0.0.1:{loopback.port}{path}"


async def _stop(loop: asyncio.AbstractEventLoop) -> None:
    with _lock:
        future = _servers.pop(loop, None)
    if future is not None and future.done() and not future.exception():
        with contextlib.suppress(Exception):
            await future.result().stop()


_loop.add_shutdown_hook(_stop)
