"""Incremental Server-Sent Events decoder (WHATWG "event stream interpretation").

Feed it the bytes of a ``text/event-stream`` body in whatever pieces the socket delivers; it
returns the complete events. It follows the WHATWG rules: ``data``/``event``/``id``/``retry``
fields, several ``data`` lines joined with ``\\n``, ``:`` comment lines ignored, unknown fields
ignored, a single space after the colon removed, LF / CRLF / CR line ends (a CR at the end of
one read and the LF at the start of the next are one line end), a leading BOM dropped, and an
``id`` containing NUL ignored. It works on bytes, so a UTF-8 character split across reads is
never decoded half-way: the data of an event is handed on as bytes for msgspec to decode.

Two deliberate differences from the standard. At end of stream an event that was not followed
by a blank line is still dispatched (several real servers close right after the last line);
a truncated frame then fails to parse, which the provider reports as a typed error. And a block
that starts with ``{`` is not SSE at all but a bare JSON object some servers append to an event
stream to report a failure mid-stream: WHATWG would silently ignore its lines as unknown
fields, so it is dispatched whole as the data of a ``message`` event instead, for the
provider's parser to report.

Speed: when every event of a read is a single ``data: ...`` line (the usual LLM stream), one
``bytes.replace`` joins all payloads with commas and proves the shape on the way (no newline may
be left); when every event is ``event: <name>`` plus one ``data:`` line (Anthropic), one
regular-expression substitution does the same; other shapes take the
block-by-block path, and blocks other than one ``data:`` line the line-by-line path. Bytes
after the last event boundary are kept as a list of pieces and joined only once a boundary
arrives, so a large event trickled byte by byte costs linear, not quadratic, time. Every path
gives exactly the events of the field-by-field reference path (``_by_fields``), however the
bytes are cut: tests/test_sse_equivalence.py checks it against the WHATWG rules.
"""

from __future__ import annotations

import re
from typing import ClassVar

from ._events import DataEvents, NamedDataEvents, SSEEvent
from .errors import MalformedResponseError

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SSEDecoder", "SSEEvent"]

DEFAULT_MAX_EVENT_BYTES = 64 * 1024 * 1024
_BOM = b"\xef\xbb\xbf"
#: What lies between two payloads in a read of named events.
_BETWEEN_NAMED = re.compile(rb"\n\nevent: [^\n]*\ndata: ")


class SSEDecoder:
    """Turns ``text/event-stream`` bytes into :class:`SSEEvent` s, one read at a time."""

    media_type: ClassVar[str] = "text/event-stream"
    json_is_stream: ClassVar[bool] = False

    __slots__ = (
        "_head",
        "_max",
        "_pending",
        "_pending_len",
        "_skip_lf",
        "_started",
        "last_event_id",
        "retry",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self._pending: list[bytes] = []  # LF-normalised bytes after the last event boundary
        self._pending_len = 0
        self._skip_lf = False  # the previous read ended in CR: a leading LF belongs to it
        self._started = False  # the BOM check has been made
        self._head = b""  # the first bytes, held until a BOM can be ruled in or out
        self._max = max_event_bytes
        self.last_event_id: str | None = None
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> DataEvents | list[SSEEvent]:
        """Add the next bytes of the body; return the events they complete."""
        if not self._started:
            chunk = self._head + chunk
            if len(chunk) < 3 and _BOM.startswith(chunk):
                self._head = chunk
                return []
            self._started = True
            self._head = b""
            if chunk.startswith(_BOM):
                chunk = chunk[3:]
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[0] == 10:
                chunk = chunk[1:]
        if not chunk:
            return []
        if b"\r" in chunk:
            self._skip_lf = chunk[-1] == 13
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")

        pending = self._pending
        if pending:
            if b"\n\n" not in chunk and not (pending[-1][-1] == 10 and chunk[0] == 10):
                self._hold(chunk)
                return []
            pending.append(chunk)
            buf = b"".join(pending)
            pending.clear()
            self._pending_len = 0
        elif b"\n\n" not in chunk:
            self._hold(chunk)
            return []
        else:
            buf = chunk

        end = buf.rfind(b"\n\n")
        if end + 2 < len(buf):
            self._hold(buf[end + 2 :])
        return self._dispatch(buf[:end])

    def _dispatch(self, complete: bytes) -> DataEvents | list[SSEEvent]:
        """The events of ``complete`` (whole blocks, LF line ends), in bulk when the read has
        one of the two usual shapes, else block by block.

        Every event one ``data: `` line (the usual LLM stream): joining the payloads removes
        every separator ``\\n\\ndata: ``, and no newline may be left. Every event an ``event:
        <name>`` line then one ``data: `` line (Anthropic): the first block's second line is
        data, joining removes every ``\\n\\nevent: <name>\\ndata: ``, no newline left.
        """
        if complete.startswith(b"data: "):
            payloads = complete[6:].replace(b"\n\ndata: ", b",")
            if b"\n" not in payloads:
                return DataEvents(complete, payloads, self.last_event_id)
        elif complete.startswith(b"event: "):
            first = complete.find(b"\n")
            if complete.startswith(b"\ndata: ", first):
                payloads = _BETWEEN_NAMED.sub(b",", complete[first + 7 :])
                if b"\n" not in payloads:
                    return NamedDataEvents(complete, payloads, self.last_event_id)
        return self._blocks(complete)

    def _blocks(self, complete: bytes) -> list[SSEEvent]:
        """Block by block; a block of one ``data: `` line skips the field-by-field parser."""
        events: list[SSEEvent] = []
        append = events.append
        for block in complete.split(b"\n\n"):
            if block.startswith(b"data: ") and b"\n" not in block:
                append(SSEEvent(block[6:], "message", self.last_event_id))
            elif block:
                event = self._parse_block(block)
                if event is not None:
                    append(event)
        return events

    def _by_fields(self, complete: bytes) -> list[SSEEvent]:
        """The reference path: every block through the field-by-field parser. The bulk and
        block paths must give exactly its events (tests/test_sse_equivalence.py)."""
        events = (self._parse_block(block) for block in complete.split(b"\n\n") if block)
        return [event for event in events if event is not None]

    def close(self) -> list[SSEEvent]:
        """End of body: dispatch a last event that had no blank line after it, if any."""
        rest = b"".join(self._pending) if self._pending else self._head
        self._pending.clear()
        self._pending_len = 0
        self._head = b""
        if not rest:
            return []
        event = self._parse_block(rest)
        return [event] if event is not None else []

    def _hold(self, piece: bytes) -> None:
        self._pending.append(piece)
        self._pending_len += len(piece)
        if self._pending_len > self._max:
            self._pending.clear()
            self._pending_len = 0
            raise MalformedResponseError(
                f"server-sent event larger than {self._max} bytes; refusing to buffer more"
            )

    def _parse_block(self, block: bytes) -> SSEEvent | None:
        """The slow path: one event's lines, field by field."""
        if block.lstrip(b"\n")[:1] == b"{":  # a bare JSON object outside the SSE framing
            return SSEEvent(block.strip(), "message", self.last_event_id)
        data: list[bytes] = []
        event_type = ""
        retry: int | None = None
        for line in block.split(b"\n"):
            if not line or line[0] == 58:  # blank (only ever leading) or ":" comment
                continue
            name, colon, value = line.partition(b":")
            if colon and value.startswith(b" "):
                value = value[1:]
            if name == b"data":
                data.append(value)
            elif name == b"event":
                event_type = value.decode("utf-8", "replace")
            elif name == b"id":
                if b"\0" not in value:
                    self.last_event_id = value.decode("utf-8", "replace")
            elif name == b"retry" and value.isdigit():
                retry = self.retry = int(value)
        if not data:
            return None
        return SSEEvent(b"\n".join(data), event_type or "message", self.last_event_id, retry)
