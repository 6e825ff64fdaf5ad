"""What a stream decoder hands a provider's stream parser: the events of one read.

The base layer under both the decoders (:mod:`rxllm._sse`, :mod:`rxllm._ndjson`) and the
providers' parsers, so neither imports the other. :data:`StreamEvents` is the one type a parser's
``parse`` takes; :class:`StreamDecoder` is what a provider's ``decoder()`` returns.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import ClassVar, Protocol, TypeAlias, overload

import msgspec

__all__ = ["DataEvents", "NamedDataEvents", "SSEEvent", "StreamDecoder", "StreamEvents"]


class SSEEvent(msgspec.Struct, gc=False):
    """One server-sent event. ``data`` is raw bytes (UTF-8 JSON for every LLM provider)."""

    data: bytes
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class DataEvents(Sequence[SSEEvent]):
    """The events of one read when every one is a single ``data:`` line (the usual LLM
    stream), kept as the raw block ``data: a\n\ndata: b...`` instead of one object each.

    It is a sequence of :class:`SSEEvent` (built on first use) for parsers that go event by
    event; a parser that decodes a whole read at once asks for :meth:`json_array`: the
    decoder that proved the shape has already joined the payloads with commas (one
    ``bytes.replace``), so there is no per-event work in Python at all.
    """

    __slots__ = ("_events", "blob", "last_id", "payloads")

    _SEPARATOR = b"\n\ndata: "

    def __init__(self, blob: bytes, payloads: bytes, last_id: str | None = None) -> None:
        self.blob = blob  # starts with b"data: ", events separated by b"\n\ndata: "
        self.payloads = payloads  # every event's data, joined with b","
        self.last_id = last_id
        self._events: list[SSEEvent] | None = None

    def _list(self) -> list[SSEEvent]:
        events = self._events
        if events is None:
            last_id = self.last_id
            events = self._events = [
                SSEEvent(data, "message", last_id) for data in self.blob[6:].split(self._SEPARATOR)
            ]
        return events

    def __len__(self) -> int:
        return self.blob.count(self._SEPARATOR) + 1

    @overload
    def __getitem__(self, index: int) -> SSEEvent: ...

    @overload
    def __getitem__(self, index: slice) -> list[SSEEvent]: ...

    def __getitem__(self, index: int | slice) -> SSEEvent | list[SSEEvent]:
        return self._list()[index]

    def __iter__(self) -> Iterator[SSEEvent]:
        return iter(self._list())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __add__(self, other: Sequence[SSEEvent]) -> list[SSEEvent]:
        return [*self._list(), *other]

    def __radd__(self, other: Sequence[SSEEvent]) -> list[SSEEvent]:
        return [*other, *self._list()]

    def __hash__(self) -> int:
        return hash(self.blob)

    def __repr__(self) -> str:
        return f"DataEvents({self._list()!r})"

    def json_array(self, end_marker: bytes) -> tuple[bytes | None, bool]:
        """The payloads as one JSON array ``[p1,p2,...]``, leaving out a last event whose data
        is ``end_marker`` (e.g. ``[DONE]``); and whether it was there. ``None`` when nothing
        is left."""
        blob, payloads = self.blob, self.payloads
        marker = b"data: " + end_marker
        if len(blob) == len(marker) and blob == marker:
            return None, True
        ends = blob.endswith(b"\n\n" + marker)
        if ends:
            payloads = payloads[: -len(end_marker) - 1]
        return b"[" + payloads + b"]", ends


class NamedDataEvents(DataEvents):
    """The events of one read when every one is exactly an ``event: <name>`` line and one
    ``data:`` line (Anthropic's stream), kept as the raw block. As :class:`DataEvents`, it is a
    sequence of :class:`SSEEvent` built on first use; the decoder that proved the shape also
    made the payloads into one JSON array (:attr:`array`), for a parser whose payloads
    name their own type."""

    __slots__ = ()

    _SEPARATOR = b"\n\nevent: "

    def _list(self) -> list[SSEEvent]:
        events = self._events
        if events is None:
            last_id = self.last_id
            events = self._events = []
            for block in self.blob[7:].split(self._SEPARATOR):
                name, _, data = block.partition(b"\ndata: ")
                # "event: " with no name is the default type, as on every other path (WHATWG)
                event = name.decode("utf-8", "replace") if name else "message"
                events.append(SSEEvent(data, event, last_id))
        return events

    def __repr__(self) -> str:
        return f"NamedDataEvents({self._list()!r})"

    @property
    def array(self) -> bytes:
        """The payloads as one JSON array ``[p1,p2,...]``, event names left out."""
        return b"[" + self.payloads + b"]"

    def json_array(self, end_marker: bytes = b"") -> tuple[bytes | None, bool]:
        """:attr:`array` (``end_marker`` is not looked for: named streams end with an event of
        their own)."""
        return self.array, False


#: The events of one read, as a decoder gives them: SSE events (bulk as :class:`DataEvents` /
#: :class:`NamedDataEvents`, else one :class:`SSEEvent` each) or NDJSON lines (bytes).
StreamEvents: TypeAlias = "DataEvents | NamedDataEvents | list[SSEEvent] | list[bytes]"


class StreamDecoder(Protocol):
    """Turns a response body's bytes into events, one read at a time; one per response.

    A provider names its framing by returning one from ``Provider.decoder()``."""

    #: The media type of the framing (for error messages).
    media_type: ClassVar[str]
    #: Whether a ``application/json`` answer may be this stream (NDJSON: yes; SSE: a JSON
    #: document is an error object or a server that ignored ``stream``, never the stream).
    json_is_stream: ClassVar[bool]

    def feed(self, chunk: bytes) -> StreamEvents:
        """The next bytes of the body -> the events they complete."""
        ...

    def close(self) -> StreamEvents:
        """The body ended -> the last event, if one was not followed by its terminator."""
        ...
