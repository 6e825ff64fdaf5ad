"""A cached answer: what is kept of it, the bytes it is kept as, and how it is played back.

A streamed answer is kept as its chunk sequence - every ``ChatChunk`` as the subscribers got it
(text, reasoning, tool-call fragments, the finish chunk, the usage chunk), grouped by the socket
read that brought it, with the time of each read - so a hit replays the same chunks with the same
boundaries, and can be paced like the original. A non-streamed answer is kept as its
``ChatResponse``. Either answers either kind of request: a stream entry assembles into a whole
response (:func:`rxllm._assemble.assemble`, as ``collect`` would), and a response entry becomes
a short stream (:func:`chunks_of`: reasoning, then content and whole tool calls, then the finish
reason, then usage) whose chunks assemble back into it.

Bytes: ``rxc1`` + zlib (level 1) of the msgpack of a :class:`CacheEntry`. The chunks of a stream
repeat their id, model, fingerprint... in every chunk; zlib takes that out (a 211-chunk
reasoning stream: 59 KB of msgpack, 1.9 KB stored, about 9 bytes a chunk beyond its text).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, ClassVar

import msgspec

from .._assemble import assemble
from .._replay import Replay
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
MAGIC = b"rxc1"
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
    them (on the stream's loop thread), it keeps them compactly (a :class:`rxllm._replay.Replay`,
    whatever the stream's own ``replay``) with the time of each read. Past ``limit`` chunks it
    lets go of them: an answer that long is not stored."""

    __slots__ = ("_count", "_limit", "_reads", "_replay", "_start", "_times")

    def __init__(self, limit: int) -> None:
        self._replay: Replay | None = Replay()
        self._reads: list[int] = []
        self._times: list[float] = []
        self._start: float | None = None
        self._count = 0
        self._limit = limit

    def add(self, chunks: list[ChatChunk]) -> None:
        replay = self._replay
        if replay is None or not chunks:
            return
        self._count += len(chunks)
        if self._count > self._limit:
            self._replay = None  # too long to store: keep nothing more
            return
        now = time.monotonic()
        if self._start is None:
            self._start = now
        self._reads.append(len(chunks))
        self._times.append(round(now - self._start, 4))
        for chunk in chunks:
            replay.append(chunk)

    def entry(self, stored_at: float, ttl: float | None) -> CacheEntry | None:
        """The entry to store, or None when the answer may not be kept (too long, or not
        complete: no choice, or a choice without its finish reason)."""
        replay = self._replay
        if replay is None or not replay or not complete(replay.assemble()):
            return None
        return CacheEntry(
            chunks=replay.chunks(),
            reads=self._reads,
            times=self._times,
            stored_at=stored_at,
            ttl=ttl,
        )


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(CacheEntry).decode


def encode_entry(entry: CacheEntry) -> bytes:
    return MAGIC + zlib.compress(_encode(entry), 1)


def decode_entry(data: bytes) -> CacheEntry | None:
    """The entry ``data`` holds, or None when it holds none (another format, corrupt)."""
    if not data.startswith(MAGIC):
        return None
    try:
        inflate = zlib.decompressobj()
        raw = inflate.decompress(memoryview(data)[len(MAGIC) :], MAX_DECODED)
        if inflate.unconsumed_tail or not inflate.eof:
            return None
        return _decode(raw)
    except (zlib.error, msgspec.DecodeError, RecursionError, ValueError, TypeError):
        return None
