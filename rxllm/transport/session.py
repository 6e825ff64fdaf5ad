"""One pooled aiohttp session per event loop, closed cleanly when that loop shuts down.

aiohttp sessions belong to the loop that created them, so rxllm keeps one per loop. A session
made on a user's loop is closed by that loop's own shutdown: ``asyncio.run`` (and pytest-asyncio,
and Jupyter on exit) call ``loop.shutdown_asyncgens()``, which finalises a tiny async generator
we park on the loop. The background loop closes its session from an exit hook. Either way no
"Unclosed client session" warning is left behind; ``await rxllm.aclose()`` closes early.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncGenerator

import aiohttp

from .. import _loop

_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession] = (
    weakref.WeakKeyDictionary()
)
# Strong references to the guard generators (the loop only holds them weakly).
_guards: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncGenerator[None, None]] = (
    weakref.WeakKeyDictionary()
)


def _new_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, enable_cleanup_closed=False)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None),
        auto_decompress=True,
        raise_for_status=False,
        skip_auto_headers=("User-Agent",),
        headers={"User-Agent": "rxllm"},
    )


async def _guard(
    loop: asyncio.AbstractEventLoop, session: aiohttp.ClientSession
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        # Forget the loop too: the session refers to its loop, so a lingering entry would
        # keep both alive for good.
        if _sessions.get(loop) is session:
            del _sessions[loop]
        _guards.pop(loop, None)
        await session.close()


def get_session() -> aiohttp.ClientSession:
    """The session of the running loop (created on first use). Call it on that loop."""
    loop = asyncio.get_running_loop()
    session = _sessions.get(loop)
    if session is not None and not session.closed:
        return session
    session = _new_session()
    _sessions[loop] = session
    if loop is not _loop.background_loop_if_started():
        guard = _guard(loop, session)
        _guards[loop] = guard
        # Its first iteration (run synchronously here: it reaches ``yield`` without awaiting)
        # registers it with this loop's asyncgen hooks, so shutdown_asyncgens() finalises it.
        with contextlib.suppress(StopIteration):
            guard.asend(None).send(None)
    return session


async def close_session(loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Close the session of ``loop`` (default: the running loop), if there is one."""
    loop = loop or asyncio.get_running_loop()
    session = _sessions.pop(loop, None)
    guard = _guards.pop(loop, None)
    if session is not None and not session.closed:
        await session.close()
    if guard is not None:
        await guard.aclose()


_loop.add_shutdown_hook(close_session)
