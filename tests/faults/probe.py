"""The process's own counters of what a request may leave behind: asyncio tasks, open file
descriptors, client sockets (from ``/proc/self/fd`` and ``/proc/net/tcp``), the aiohttp
connector's connections in use and idle, and rxllm's sessions.

Nothing here sleeps to let things settle: :func:`flush` queues a callback behind everything the
loop already has to do (closing a transport schedules the socket's close with ``call_soon``), and
waits for it.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from rxllm import _loop
from rxllm.transport import session as sessions

__all__ = ["Snapshot", "client_sockets", "flush", "open_fds", "snapshot"]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _socket_inodes() -> set[int]:
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed while we looked
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _tcp_table() -> dict[int, tuple[int, int, str]]:
    """inode -> (local port, remote port, state) of every TCP socket on the machine."""
    table: dict[int, tuple[int, int, str]] = {}
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            inode = int(fields[9])
            if inode:
                local = int(fields[1].rsplit(":", 1)[1], 16)
                remote = int(fields[2].rsplit(":", 1)[1], 16)
                table[inode] = (local, remote, fields[3])
    return table


def client_sockets(*ports: int) -> int:
    """How many sockets this process holds that connect *to* one of ``ports`` (our client
    side; the servers' own accepted sockets have those ports as their local port)."""
    mine = _socket_inodes()
    wanted = set(ports)
    return sum(
        1
        for inode, (_, remote, _state) in _tcp_table().items()
        if inode in mine and remote in wanted
    )


def flush(loop: asyncio.AbstractEventLoop | None = None, rounds: int = 3) -> None:
    """Let ``loop`` (default: rxllm's background loop) run everything already scheduled."""
    loop = loop or _loop.background_loop()

    async def nothing() -> None:
        pass

    for _ in range(rounds):
        asyncio.run_coroutine_threadsafe(nothing(), loop).result(10)


def close_background_session() -> None:
    """Close rxllm's background loop session (its pool with it); the next request opens anew."""
    loop = _loop.background_loop()
    asyncio.run_coroutine_threadsafe(sessions.close_session(loop), loop).result(10)
    flush(loop)


async def aflush(rounds: int = 3) -> None:
    """:func:`flush` for the running loop."""
    for _ in range(rounds):
        await asyncio.sleep(0)  # one loop iteration: yields, does not wait for time


@dataclass(frozen=True)
class Snapshot:
    tasks: int  # asyncio tasks on the loop, not counting the one that looks
    sockets: int  # our client sockets to the servers' ports
    acquired: int  # connections the aiohttp connectors have handed out (every loop)
    idle: int  # keep-alive connections to the servers' ports parked in their pools
    sessions: int  # rxllm sessions alive (one per loop that used rxllm)


def _connector_counts(ports: tuple[int, ...]) -> tuple[int, int]:
    """(connections handed out, idle keep-alive connections to ``ports``) over the sessions of
    every loop; aiohttp keeps no public count, so this reads its connectors' two collections."""
    acquired = idle = 0
    for session in list(sessions._sessions.values()):
        connector = session.connector
        if session.closed or connector is None:
            continue
        acquired += len(connector._acquired)
        idle += sum(len(conns) for key, conns in connector._conns.items() if key.port in ports)
    return acquired, idle


#: A finished stream may still read the last bytes after its end marker (the chunked-encoding
#: terminator) so its connection can be reused; rxllm bounds that at one second.
DRAIN_GRACE = 2.0


async def asnapshot(*ports: int) -> Snapshot:
    """The counters of the running loop (call from a coroutine on it), once the tasks still
    running have ended or ``DRAIN_GRACE`` seconds have passed (waited on, not slept)."""
    await aflush()
    loop = asyncio.get_running_loop()
    others = asyncio.all_tasks(loop) - {asyncio.current_task()}
    if others:
        await asyncio.wait(others, timeout=DRAIN_GRACE)
        await aflush()
    acquired, idle = _connector_counts(ports)
    tasks = len(asyncio.all_tasks(loop)) - 1
    return Snapshot(tasks, client_sockets(*ports), acquired, idle, len(sessions._sessions))


def snapshot(*ports: int, loop: asyncio.AbstractEventLoop | None = None) -> Snapshot:
    """The counters of ``loop`` (default: rxllm's background loop), from any other thread."""
    loop = loop or _loop.background_loop()
    flush(loop)
    return asyncio.run_coroutine_threadsafe(asnapshot(*ports), loop).result(10)
