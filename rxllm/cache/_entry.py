"""A cached answer: what is kept of it, the bytes it is kept as, and how it is played back.

A streamed answer is kept as its chunk sequence - every ``ChatChunk`` as the subscribers got it
(text, reasoning, tool-call fragments, the finish chunk, the usage chunk), grouped by the socket
read that brought it, with the time of each read - so a hit replays the same chunks with the same
boundaries, and can be paced like the original. A non-streamed answer is kept as its
``ChatResponse``. Either answers either kind of request: a stream entry assembles into a whole
response (:func:`rxllm._assemble.assemble`, as ``collect`` would), and a response entry becomes
a short stream (:func:`chunks_of`: reasoning, then content and whole tool calls, then the finish
reason, then usage) whose chunks assemble back into it.

Bytes (:func:`encode_entry`): ``rxc2`` + zlib (level 1) of the msgpack of each chunk, then of
the rest. The chunks of a stream repeat their id, model, fingerprint... in every chunk; zlib
takes that out (a 211-chunk reasoning stream: 59 KB of msgpack, under 2 KB stored, about 9 bytes
a chunk beyond its text). A stream's :class:`Recorder` writes that form as the chunks come, so
storing a long answer never stops the stream's loop to encode it all at once.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

import msgspec

from .._assemble import assemble
from ..types import (
    ChatChunk,
    ChatResponse,
    Delta,
    FunctionCallDelta,
    StreamChoice,
    ToolCallDelta,
)

__all__ = [
    "CacheEntry",
    "CachedResponse",
    "Recorder",
    "chunks_of",
    "complete",
    "decode_entry",
    "encode_entry",
]

#: The first bytes of every stored entry (a format change gets a new marker: old entries are
#: then misses, never misread).
MAGIC = b"rxc2"
#: The most a stored entry may inflate to (a corrupt or hostile value is a miss, not a bomb).
MAX_DECODED = 256 * 1024 * 1024


class CacheEntry(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One cached answer."""

    #: A streamed answer's chunks, in order (None for a non-streamed answer).
    chunks: list[ChatChunk] | None = None
    #: How many chunks each socket read brought, in order (they add up to ``len(chunks)``).
    reads: list[int] | None = None
    #: Seconds from the first read to each read (one per entry of ``reads``).
    times: list[float] | None = None
    #: A non-streamed answer (None for a streamed one: :meth:`assembled` builds it).
    response: ChatResponse | None = None
    #: When it was stored, on the storing cache's clock (seconds; ``time.time`` by default).
    stored_at: float = 0.0
    #: Seconds it lives after ``stored_at`` (None: until evicted).
    ttl: float | None = None

    @property
    def streamed(self) -> bool:
        """True when the answer was streamed (its chunks and their boundaries are kept)."""
        return self.chunks is not None

    def expired(self, now: float) -> bool:
        return self.ttl is not None and now >= self.stored_at + self.ttl

    def assembled(self) -> ChatResponse:
        """The whole answer: the response kept, or the chunks assembled."""
        if self.response is not None:
            return self.response
        return assemble(self.chunks or ())

    def stream_chunks(self) -> list[ChatChunk]:
        """The chunks a stream replays: the ones kept, or those of the response kept."""
        if self.chunks is not None:
            return self.chunks
        return chunks_of(self.response) if self.response is not None else []

    def batches(self, pace: float | str | None) -> Iterator[tuple[float, list[ChatChunk]]]:
        """(seconds to wait first, chunks to emit together), in order.

        ``pace`` None: the recorded reads, back to back; a number: one chunk at a time, that
        many seconds apart; ``"recorded"``: the recorded reads, as far apart as they came."""
        chunks = self.stream_chunks()
        if isinstance(pace, (int, float)) and not isinstance(pace, bool):
            for index, chunk in enumerate(chunks):
                yield (float(pace) if index else 0.0), [chunk]
            return
        reads = self.reads if self.chunks is not None else None
        times = self.times if pace == "recorded" else None
        if not reads or sum(reads) != len(chunks):
            reads = [1] * len(chunks)
            times = None
        start = 0
        previous = 0.0
        for index, count in enumerate(reads):
            at = times[index] if times is not None and index < len(times) else previous
            yield max(0.0, at - previous), chunks[start : start + count]
            previous = at
            start += count


class CachedResponse(ChatResponse, kw_only=True, gc=True, dict=True):
    """A ``ChatResponse`` answered from the cache: the same fields (and the same JSON) as the
    original answer, ``usage`` included - what it would have cost - plus, as attributes that
    are not fields (never encoded): ``cache_hit`` (True), ``cache_key`` and ``cached_at`` (when
    it was stored, on the cache's clock). A hit costs nothing: bill it 0.

    It is a ``ChatResponse`` subclass, so it does not compare equal (``==``) to a plain
    ``ChatResponse``; :meth:`response` gives the plain one."""

    cache_hit: ClassVar[bool] = True

    if TYPE_CHECKING:  # attributes, not fields (set by :meth:`of`)
        cache_key: str
        cached_at: float

    @classmethod
    def of(cls, response: ChatResponse, key: str, stored_at: float) -> CachedResponse:
        hit = cls(**msgspec.structs.asdict(response))
        hit.cache_key = key
        hit.cached_at = stored_at
        return hit

    def response(self) -> ChatResponse:
        """The answer as a plain ``ChatResponse`` (equal to the original)."""
        return ChatResponse(**msgspec.structs.asdict(self))


def complete(response: ChatResponse) -> bool:
    """Whether an answer may be stored: at least one choice, each with its finish reason."""
    choices = response.choices
    return bool(choices) and all(choice.finish_reason is not None for choice in choices)


def chunks_of(response: ChatResponse) -> list[ChatChunk]:
    """A whole response as a stream: per choice, its reasoning, then its content, refusal and
    whole tool calls, then its finish reason; then the usage. They assemble into ``response``."""

    def chunk(choices: list[StreamChoice], *, usage: bool = False) -> ChatChunk:
        return ChatChunk(
            id=response.id,
            created=response.created,
            model=response.model,
            choices=choices,
            usage=response.usage if usage else None,
            system_fingerprint=response.system_fingerprint,
            provider=response.provider,
            source=response.source,
        )

    out: list[ChatChunk] = []
    for choice in response.choices:
        message = choice.message
        role: str | None = message.role
        if message.reasoning_content:
            out.append(
                chunk(
                    [
                        StreamChoice(
                            index=choice.index,
                            delta=Delta(role=role, reasoning_content=message.reasoning_content),
                        )
                    ]
                )
            )
            role = None
        calls = [
            ToolCallDelta(
                index=index,
                id=call.id,
                type=call.type,
                function=FunctionCallDelta(
                    name=call.function.name, arguments=call.function.arguments
                ),
                provider_fields=call.provider_fields,
            )
            for index, call in enumerate(message.tool_calls or ())
        ]
        text = message.content if isinstance(message.content, str) else message.text
        delta = Delta(
            role=role,
            content=text or None,
            tool_calls=calls or None,
            refusal=message.refusal,
            provider_fields=message.provider_fields,
        )
        out.append(chunk([StreamChoice(index=choice.index, delta=delta)]))
        out.append(
            chunk(
                [
                    StreamChoice(
                        index=choice.index,
                        finish_reason=choice.finish_reason,
                        native_finish_reason=choice.native_finish_reason,
                    )
                ]
            )
        )
    if response.usage is not None:
        out.append(chunk([], usage=True))
    return out


class Recorder:
    """What a stream's chunks become in the cache: fed each read's chunks as the stream emits
    them (on the stream's loop thread), it encodes them at once (msgpack, then zlib in blocks of
    :attr:`BLOCK` bytes), so what it holds is about as small as what will be stored, whatever
    the stream's own ``replay``, and finishing costs next to nothing. It notes the time of each
    read and which choices got their finish reason. Past ``limit`` chunks it lets go of
    everything: an answer that long is not stored."""

    __slots__ = (
        "_buffer",
        "_compressor",
        "_count",
        "_finished",
        "_limit",
        "_parts",
        "_reads",
        "_seen",
        "_start",
        "_times",
    )

    #: Encoded chunks are compressed in blocks of about this many bytes.
    BLOCK = 65536

    def __init__(self, limit: int) -> None:
        self._buffer: bytearray | None = bytearray()
        self._compressor = zlib.compressobj(1)
        self._parts: list[bytes] = []
        self._reads: list[int] = []
        self._times: list[float] = []
        self._start: float | None = None
        self._count = 0
        self._limit = limit
        self._seen: set[int] = set()
        self._finished: set[int] = set()

    def add(self, chunks: list[ChatChunk]) -> None:
        buffer = self._buffer
        if buffer is None or not chunks:
            return
        self._count += len(chunks)
        if self._count > self._limit:
            self._buffer = None  # too long to store: keep nothing more
            self._parts = []
            return
        now = time.monotonic()
        if self._start is None:
            self._start = now
        self._reads.append(len(chunks))
        self._times.append(round(now - self._start, 4))
        encode_into = _encoder.encode_into
        for chunk in chunks:
            encode_into(chunk, buffer, -1)
            for choice in chunk.choices:
                self._seen.add(choice.index)
                if choice.finish_reason is not None:
                    self._finished.add(choice.index)
        if len(buffer) >= self.BLOCK:
            self._parts.append(self._compressor.compress(buffer))
            buffer.clear()

    @property
    def complete(self) -> bool:
        """Whether the answer so far may be stored: at least one choice, each with its finish
        reason, and not too long."""
        return self._buffer is not None and bool(self._seen) and self._seen <= self._finished

    def finish(self, stored_at: float, ttl: float | None) -> bytes | None:
        """The stored form of the answer (see :func:`encode_entry`), or None when it may not
        be kept (:attr:`complete` is false)."""
        buffer = self._buffer
        if buffer is None or not self.complete:
            return None
        header = _Header(
            chunks=self._count, reads=self._reads, times=self._times, stored_at=stored_at, ttl=ttl
        )
        compressor = self._compressor
        parts = [*self._parts, compressor.compress(buffer), compressor.compress(_tail(header))]
        self._buffer, self._parts = None, []
        return MAGIC + b"".join(parts) + compressor.flush()


class _Header(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Everything of an entry but its chunks (which come before it, see :func:`encode_entry`)."""

    #: How many chunks there are (None: a non-streamed answer, in ``response``).
    chunks: int | None = None
    reads: list[int] | None = None
    times: list[float] | None = None
    response: ChatResponse | None = None
    stored_at: float = 0.0
    ttl: float | None = None


_encoder = msgspec.msgpack.Encoder()
_decode_header = msgspec.msgpack.Decoder(_Header).decode
_decode_chunks = msgspec.msgpack.Decoder(list[ChatChunk]).decode
#: msgpack's array header for up to 2**32 - 1 items (the count follows, 4 bytes big-endian).
_ARRAY32 = b"\xdd"


def _tail(header: _Header) -> bytes:
    encoded = _encoder.encode(header)
    return encoded + len(encoded).to_bytes(4, "big")


def encode_entry(entry: CacheEntry) -> bytes:
    """An entry's stored form: ``rxc2`` and a zlib stream (level 1) of the msgpack of each
    chunk, one after the other, then of the rest of the entry, then that part's length (4
    bytes): a stream's recorder writes it chunk by chunk as they come."""
    header = _Header(
        chunks=None if entry.chunks is None else len(entry.chunks),
        reads=entry.reads,
        times=entry.times,
        response=entry.response,
        stored_at=entry.stored_at,
        ttl=entry.ttl,
    )
    body = bytearray()
    for chunk in entry.chunks or ():
        _encoder.encode_into(chunk, body, -1)
    body += _tail(header)
    return MAGIC + zlib.compress(body, 1)


def decode_entry(data: bytes) -> CacheEntry | None:
    """The entry ``data`` holds, or None when it holds none (another format, corrupt)."""
    if not data.startswith(MAGIC):
        return None
    try:
        inflate = zlib.decompressobj()
        raw = inflate.decompress(memoryview(data)[len(MAGIC) :], MAX_DECODED)
        if inflate.unconsumed_tail or not inflate.eof or len(raw) < 4:
            return None
        size = int.from_bytes(raw[-4:], "big")
        end = len(raw) - 4 - size
        if end < 0:
            return None
        header = _decode_header(memoryview(raw)[end:-4])
        chunks = None
        if header.chunks is not None:
            chunks = _decode_chunks(_ARRAY32 + header.chunks.to_bytes(4, "big") + raw[:end])
            if len(chunks) != header.chunks:
                return None
        return CacheEntry(
            chunks=chunks,
            reads=header.reads,
            times=header.times,
            response=header.response,
            stored_at=header.stored_at,
            ttl=header.ttl,
        )
    except (zlib.error, msgspec.DecodeError, RecursionError, ValueError, TypeError, OverflowError):
        return None
