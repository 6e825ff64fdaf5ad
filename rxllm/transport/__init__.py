"""HTTP for rxllm: the per-loop aiohttp session, sending requests, and the stream decoders."""

from __future__ import annotations

from .http import body_reader_error, read_capped, send
from .ndjson import NDJSONDecoder
from .session import close_session, get_session
from .sse import SSEDecoder

__all__ = [
    "NDJSONDecoder",
    "SSEDecoder",
    "body_reader_error",
    "close_session",
    "get_session",
    "read_capped",
    "send",
]
