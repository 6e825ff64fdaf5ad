"""What a stream keeps of its chunks: a compact replay (:class:`Replay`) or only the partial
answer (:class:`NoReplay`, for ``replay=False``).

**Replay.** Most chunks of a stream differ only in their text: the same id, model, created,
system_fingerprint, provider and source, one choice whose delta carries just ``content`` (or
just ``reasoning_content``), no finish reason, no usage. Such a chunk is kept as its text
alone; the rest of it (the *template*) is kept once. Every other chunk is kept as it came.
Iterating rebuilds each compact chunk from its template: a fresh ``ChatChunk`` equal (``==``)
to the original, field for field.

The per-chunk test is one comparison done in C by msgspec: the chunk against a *probe*, a
ChatChunk holding the template whose delta is given the chunk's own text first. Equal means
the chunk is exactly "template + this text", so rebuilding it from the template gives an
equal chunk - whatever the template holds. A chunk that differs but could be a template (a
new id or model mid-stream) starts a new template, recorded at its position.

The kept list holds, in order, one entry per chunk plus one per template change:

* ``str`` or ``None`` - a chunk whose delta ``content`` is this, built from the template;
* a 1-tuple ``(text,)`` - a chunk whose delta ``reasoning_content`` is ``text``;
* :class:`_Template` - from here on, the template is this (not a chunk);
* a ``ChatChunk`` - a chunk kept as it came.

Threading: :meth:`Replay.append` is meant to be called from one thread (the stream's loop
thread). Iteration may run on that thread between appends (it then yields what was appended
in the meantime too: a late subscriber replays, then follows) or, once appends have stopped,
anywhere. Under the GIL an iteration on another thread during appends is also safe: entries
are only ever appended, and a template entry always precedes the chunks built from it.
"""

from __future__ import annotations

from collections.abc import Iterator

from ._assemble import Assembler
from .types import ChatChunk, ChatResponse, Delta, StreamChoice

__all__ = ["NoReplay", "Replay"]


class _Template:
    """A template change in the kept list: the probe chunk that compact chunks are built from."""

    __slots__ = ("chunk",)

    def __init__(self, chunk: ChatChunk) -> None:
        self.chunk = chunk


def _probe_of(chunk: ChatChunk) -> ChatChunk:
    """A fresh chunk with ``chunk``'s header and first choice, its delta empty. Owned by the
    replay (never handed out), so no subscriber can change it."""
    choice = chunk.choices[0]
    return ChatChunk(
        id=chunk.id,
        object=chunk.object,
        created=chunk.created,
        model=chunk.model,
        choices=[
            StreamChoice(
                index=choice.index,
                delta=Delta(),
                finish_reason=choice.finish_reason,
                native_finish_reason=choice.native_finish_reason,
            )
        ],
        usage=chunk.usage,
        system_fingerprint=chunk.system_fingerprint,
        provider=chunk.provider,
        source=chunk.source,
    )


def _fits(chunk: ChatChunk) -> bool:
    """Whether ``chunk`` can be a template: one plain choice whose delta carries at most one of
    ``content`` and ``reasoning_content``, no finish reason, no usage. (Only chunks like
    this start a template, so that a one-off chunk - the role chunk, the finish chunk -
    does not replace the template the stream goes on using.)"""
    if type(chunk) is not ChatChunk or chunk.usage is not None:
        return False
    choices = chunk.choices
    if type(choices) is not list or len(choices) != 1:
        return False
    choice = choices[0]
    if type(choice) is not StreamChoice:
        return False
    delta = choice.delta
    return (
        type(delta) is Delta
        and choice.finish_reason is None
        and choice.native_finish_reason is None
        and delta.role is None
        and delta.tool_calls is None
        and delta.refusal is None
        and delta.provider_fields is None
        and (delta.content is None or delta.reasoning_content is None)
    )


def _build(template: ChatChunk, content: str | None, reasoning: str | None) -> ChatChunk:
    """The chunk ``template`` + this text: equal to the original that was kept as its text."""
    choice = template.choices[0]
    return ChatChunk(
        id=template.id,
        object=template.object,
        created=template.created,
        model=template.model,
        choices=[
            StreamChoice(
                index=choice.index,
                delta=Delta(content=content, reasoning_content=reasoning),
                finish_reason=choice.finish_reason,
                native_finish_reason=choice.native_finish_reason,
            )
        ],
        usage=template.usage,
        system_fingerprint=template.system_fingerprint,
        provider=template.provider,
        source=template.source,
    )


#: The template before the first one: its id matches no real chunk's (and, were one ever
#: equal to it, rebuilding from it would still give an equal chunk).
_NO_TEMPLATE = ChatChunk(id="\x00rxllm: no template yet", choices=[StreamChoice()])


class _Feed:
    """Feeds an :class:`Assembler` runs of compact chunks as one chunk per run (their texts
    joined): the same result as feeding each, at a fraction of the cost."""

    __slots__ = ("assembler", "content", "count", "reasoning", "template")

    def __init__(self) -> None:
        self.assembler = Assembler()
        self.template = _NO_TEMPLATE
        self.content: list[str | None] = []
        self.reasoning: list[str] = []
        self.count = 0  # chunks in the run beyond those in the two lists

    def flush(self) -> None:
        """Feed the pending run (if any) as one chunk."""
        content, reasoning = self.content, self.reasoning
        if not (content or reasoning or self.count):
            return
        joined = "".join(filter(None, content))
        self.assembler.add(
            _build(self.template, joined or None, "".join(reasoning) if reasoning else None)
        )
        content.clear()
        reasoning.clear()
        self.count = 0

    def chunk(self, chunk: ChatChunk) -> None:
        """A chunk that is not part of a run."""
        self.flush()
        self.assembler.add(chunk)

    def take(self, items: list[object]) -> None:
        """Feed the entries of a :class:`Replay`'s kept list."""
        content, reasoning = self.content, self.reasoning
        for item in items:
            kind = type(item)
            if kind is str or item is None:
                content.append(item)  # type: ignore[arg-type]
            elif kind is tuple:
                self.count += 1
                text = item[0]  # type: ignore[index]
                if text:
                    reasoning.append(text)
            elif kind is _Template:
                self.switch(item.chunk)  # type: ignore[attr-defined]
            else:
                self.chunk(item)  # type: ignore[arg-type]

    def switch(self, template: ChatChunk) -> None:
        self.flush()
        self.template = template

    def result(self) -> ChatResponse:
        self.flush()
        return self.assembler.result()


class Replay:
    """Every chunk of a stream, kept compactly, in order: :meth:`append` each chunk as it
    arrives; iterate (any number of times, also while appends continue) to get chunks equal
    to the originals."""

    __slots__ = (
        "_content",
        "_content_delta",
        "_items",
        "_reasoning",
        "_reasoning_delta",
        "_templates",
    )

    def __init__(self) -> None:
        self._items: list[object] = []
        self._templates = 0  # _Template entries in _items
        self._use(_NO_TEMPLATE)

    def _use(self, template: ChatChunk) -> None:
        """Compare chunks with ``template`` from now on: its two probes (one to be given a
        chunk's ``content``, one its ``reasoning_content``), owned here, never handed out."""
        self._content = _probe_of(template)
        self._content_delta = self._content.choices[0].delta
        self._reasoning = _probe_of(template)
        self._reasoning_delta = self._reasoning.choices[0].delta

    def append(self, chunk: ChatChunk) -> None:
        """Keep ``chunk``. Runs once per chunk of every stream: the usual chunk costs one
        comparison in C and one list append."""
        try:
            delta = chunk.choices[0].delta
        except (IndexError, AttributeError, TypeError):
            self._odd(chunk)
            return
        text = delta.content
        self._content_delta.content = text
        if chunk == self._content:
            self._items.append(text)
            return
        text = delta.reasoning_content
        self._reasoning_delta.reasoning_content = text
        if chunk == self._reasoning:
            self._items.append((text,))
            return
        self._odd(chunk)

    def _odd(self, chunk: ChatChunk) -> None:
        """A chunk that does not match the template: it starts a new one, or is kept whole."""
        if not _fits(chunk):
            self._items.append(chunk)
            return
        template = _probe_of(chunk)
        delta = chunk.choices[0].delta
        if chunk == _build(template, delta.content, None):
            entry: object = delta.content
        elif chunk == _build(template, None, delta.reasoning_content):
            entry = (delta.reasoning_content,)
        else:  # not reached for a chunk that fits; kept whole should it ever be
            self._items.append(chunk)
            return
        self._use(template)
        self._templates += 1  # before the entry: len() may lag, never run ahead
        self._items.append(_Template(template))
        self._items.append(entry)

    def __len__(self) -> int:
        """The number of chunks kept."""
        return len(self._items) - self._templates

    def __bool__(self) -> bool:
        return len(self._items) > self._templates

    def __iter__(self) -> Iterator[ChatChunk]:
        """The chunks in order, rebuilt where kept compactly; chunks appended while this runs
        are yielded too."""
        items = self._items
        template = _NO_TEMPLATE
        index = 0
        while index < len(items):
            item = items[index]
            index += 1
            kind = type(item)
            if kind is str or item is None:
                yield _build(template, item, None)  # type: ignore[arg-type]
            elif kind is tuple:
                yield _build(template, None, item[0])  # type: ignore[index]
            elif kind is _Template:
                template = item.chunk  # type: ignore[attr-defined]
            else:
                yield item  # type: ignore[misc]

    def chunks(self) -> list[ChatChunk]:
        """A list of the chunks kept so far."""
        return list(self)

    def assemble(self) -> ChatResponse:
        """The response the chunks so far assemble into (``rxllm._assemble.assemble`` of them),
        without rebuilding each compact chunk."""
        feed = _Feed()
        feed.take(self._items)
        return feed.result()

    def __repr__(self) -> str:
        return f"Replay({len(self)} chunks, {self._templates} templates)"


class NoReplay(Replay):
    """For ``replay=False``: keeps no chunks, only the answer so far (for an error's
    ``partial_response``), in memory proportional to its text. Same interface as
    :class:`Replay`, but iterating yields nothing: a stream that did not keep its chunks must
    not offer a late subscriber a partial sequence (the stream raises instead).

    Chunks are kept as :class:`Replay` keeps them until there are :attr:`FOLD_AT` entries,
    then folded into an :class:`Assembler` (the texts of a run joined into one string)."""

    __slots__ = ("_feed", "_folded")

    #: Kept entries are folded into the partial answer when there are this many.
    FOLD_AT = 4096

    def __init__(self) -> None:
        super().__init__()
        self._feed = _Feed()
        self._folded = 0  # chunks folded into the feed

    def append(self, chunk: ChatChunk) -> None:
        """Take ``chunk`` into the partial answer (the same hot path as :meth:`Replay.append`,
        plus a length check)."""
        items = self._items
        try:
            delta = chunk.choices[0].delta
        except (IndexError, AttributeError, TypeError):
            self._odd(chunk)
        else:
            text = delta.content
            self._content_delta.content = text
            if chunk == self._content:
                items.append(text)
            else:
                text = delta.reasoning_content
                self._reasoning_delta.reasoning_content = text
                if chunk == self._reasoning:
                    items.append((text,))
                else:
                    self._odd(chunk)
        if len(items) >= self.FOLD_AT:
            self._fold()

    def _fold(self) -> None:
        items = self._items
        self._feed.take(items)
        self._feed.flush()
        self._folded += len(items) - self._templates
        self._templates = 0
        items.clear()

    def __len__(self) -> int:
        """The number of chunks seen."""
        return self._folded + len(self._items) - self._templates

    def __bool__(self) -> bool:
        return len(self) > 0

    def __iter__(self) -> Iterator[ChatChunk]:
        """Nothing: no chunk is kept."""
        return iter(())

    def assemble(self) -> ChatResponse:
        """The response the chunks seen so far assemble into."""
        self._fold()
        return self._feed.result()

    def __repr__(self) -> str:
        return f"NoReplay({len(self)} chunks seen)"
