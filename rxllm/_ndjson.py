"""Incremental newline-delimited JSON decoder (``application/x-ndjson``, Ollama's stream format).

Feed it body bytes in any pieces; it returns each complete, non-blank line as bytes (CRLF
tolerated) for msgspec to decode. At end of stream a last line without a newline is still
returned: Ollama's own examples end that way, and a truncated line fails to parse anyway.
"""

from __future__ import annotations

from typing import ClassVar

from ._sse import DEFAULT_MAX_EVENT_BYTES
from .errors import MalformedResponseError

__all__ = ["NDJSONDecoder"]


class NDJSONDecoder:
    media_type: ClassVar[str] = "application/x-ndjson"
    json_is_stream: ClassVar[bool] = True

    __slots__ = ("_max", "_pending", "_pending_len")

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._pending: list[bytes] = []
        self._pending_len = 0
        self._max = max_line_bytes

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add the next bytes of the body; return the lines they complete."""
        if b"\n" not in chunk:
            if chunk:
                self._hold(chunk)
            return []
        if self._pending:
            self._pending.append(chunk)
            chunk = b"".join(self._pending)
            self._pending.clear()
            self._pending_len = 0
        lines = chunk.split(b"\n")
        tail = lines.pop()
        if tail:
            self._hold(tail)
        return [line for line in map(bytes.strip, lines) if line]

    def close(self) -> list[bytes]:
        """End of body: the last line, if it had no newline after it."""
        rest = b"".join(self._pending).strip()
        self._pending.clear()
        self._pending_len = 0
        return [rest] if rest else []

    def _hold(self, piece: bytes) -> None:
        self._pending.append(piece)
        self._pending_len += len(piece)
        if self._pending_len > self._max:
            self._pending.clear()
            self._pending_len = 0
            raise MalformedResponseError(
                f"NDJSON line larger than {self._max} bytes; refusing to buffer more"
            )
