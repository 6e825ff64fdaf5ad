"""HTTP for rxllm: the per-loop aiohttp session, sending requests, and the loopback server.

The stream decoders live in the base layer (:mod:`rxllm._sse`, :mod:`rxllm._ndjson`), where the
providers that name them can reach them; they are re-exported here for existing imports."""

from __future__ import annotations

from .._ndjson import NDJSONDecoder
from .._sse import SSEDecoder
from .http import body_reader_error, read_capped, send
from .session import close_session, get_session

__all__ = [
    "NDJSONDecoder",
    "SSEDecoder",
    "body_reader_error",
    "close_session",
    "get_session",
    "read_capped",
    "send",
]
