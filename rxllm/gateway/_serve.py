"""Running the gateway: one process, or ``--workers N`` processes on one listening socket.

The parent binds the socket (so ``--port 0`` works and every worker shares one accept queue)
and, with several workers, starts each as ``python -m rxllm serve ... --worker-fd FD`` with the
socket inherited. SIGTERM (or Ctrl-C) drains: the socket stops accepting, readiness answers
503, open requests and streams have ``drain_seconds`` to finish, then the streams still open
end with an error event and their upstream requests are cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web

from ..transport.session import close_session
from ._app import Gateway
from ._config import GatewayConfig

__all__ = ["bind", "run_worker", "supervise"]

#: Seconds an aiohttp handler still gets after the drain's own grace period.
_LAST_WORDS = 2.0


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (IPv6 when ``host`` is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def run_worker(config: GatewayConfig, sock: socket.socket, *, loop: str = "auto") -> None:
    """Serve on ``sock`` in this process until SIGTERM / SIGINT, then drain. ``loop``:
    ``uvloop`` (libuv's event loop: about half the gateway's own latency), ``asyncio``, or
    ``auto`` (uvloop when it is installed: the ``gateway`` extra brings it where it builds)."""
    factory = _loop_factory(loop)
    if factory is None:
        asyncio.run(_serve(config, sock))
    else:
        with _Runner(factory) as runner:
            runner.run(_serve(config, sock))
    # Drained: a second SIGTERM now (a supervisor repeating itself) must not turn a clean
    # exit into a kill.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop the worker runs (None: asyncio's own)."""
    if choice == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


class _Runner:
    """Run coroutines on a loop from ``factory`` (``asyncio.Runner``'s job, which Python 3.10
    lacks)."""

    def __init__(self, factory: Callable[[], asyncio.AbstractEventLoop]) -> None:
        self._loop = factory()

    def __enter__(self) -> _Runner:
        asyncio.set_event_loop(self._loop)
        return self

    def run(self, main: Any) -> Any:
        return self._loop.run_until_complete(main)

    def __exit__(self, *_: object) -> None:
        loop = self._loop
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


async def _serve(config: GatewayConfig, sock: socket.socket) -> None:
    gateway = Gateway(config)
    runner = web.AppRunner(
        gateway.app(),
        handler_cancellation=True,
        shutdown_timeout=_LAST_WORDS,
        access_log=None,
    )
    await runner.setup()
    site = web.SockSite(runner, sock)
    await site.start()
    # What start-up made lives as long as the process: out of the collector's sight, full
    # collections (pauses in the tail latency) have less to walk.
    gc.collect()
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        gateway.draining = True
        await site.stop()  # no new connections; open ones go on
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(gateway.drained(), config.general.drain_seconds)
        gateway.drain_expired = True
        for task in list(gateway.inflight):
            task.cancel()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(gateway.drained(), _LAST_WORDS)
    finally:
        await runner.cleanup()
        await close_session()


def supervise(
    argv: Sequence[str],
    sock: socket.socket,
    workers: int,
    drain_seconds: float,
    say: Callable[[str], None],
) -> int:
    """Run ``workers`` worker processes on ``sock`` (each ``argv`` + ``--worker-fd``), restart
    one that dies, and pass SIGTERM / SIGINT on; returns the exit code."""
    env = dict(os.environ)
    metrics_dir = None
    if not env.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.TemporaryDirectory(prefix="rxllm-metrics-")
        env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir.name
    fd = sock.fileno()
    command = [sys.executable, "-m", "rxllm", *argv, "--worker-fd", str(fd)]
    stopping = False

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(command, pass_fds=(fd,), env=env)

    def on_signal(signum: int, _: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    children = [start() for _ in range(workers)]
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stopping:
            for index, child in enumerate(children):
                code = child.poll()
                if code is not None and not stopping:
                    say(f"worker {child.pid} exited with {code}; starting another")
                    time.sleep(0.5)  # a worker that cannot start must not spin the CPU
                    children[index] = start()
            with contextlib.suppress(subprocess.TimeoutExpired):
                children[0].wait(timeout=0.2)
        deadline = time.monotonic() + drain_seconds + _LAST_WORDS + 5
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sock.close()
        if metrics_dir is not None:
            metrics_dir.cleanup()
