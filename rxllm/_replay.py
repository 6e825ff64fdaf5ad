"""What a stream keeps of its chunks: a compact replay (:class:`Replay`) or only the partial
answer (:class:`NoReplay`, for ``replay=False``).

**Replay.** Most chunks of a stream differ only in their text: the same id, model, created,
system_fingerprint, provider and source, one choice whose delta carries just ``content`` (or
just ``reasoning_content``, or just the ``arguments`` of one tool-call fragment), no finish
reason, no usage. Such a chunk is kept as its text alone; the rest of it (the *template*) is
kept once. Every other chunk is kept as it came. Iterating rebuilds each compact chunk from
its template: a fresh ``ChatChunk`` equal (``==``) to the original, field for field.

The per-chunk test is one comparison done in C by msgspec: the chunk against a *probe*, a
ChatChunk holding the template whose delta is given the chunk's own text first. Equal means
the chunk is exactly "template + this text", so rebuilding it from the template gives an
equal chunk - whatever the template holds. A chunk that differs but could be a template (the
first text chunk, a new id or model mid-stream, the fragments of another tool call) starts a
new template, recorded at its position.

The kept list holds, in order, one entry per chunk plus one per template change:

* a ``str`` - a chunk whose delta ``content`` is this, built from the template;
* a 1-tuple ``(text,)`` - a chunk whose delta ``reasoning_content`` is ``text`` (``None``
  for a chunk without text);
* a 1-list ``[text]`` - a chunk whose tool-call fragment's ``function.arguments`` is ``text``;
* :class:`_Template` - from here on, the template is this (not a chunk);
* a ``ChatChunk`` - a chunk kept as it came (its own object, as the subscribers got it);
* :class:`_Whole` - a value appended that is no chunk but has one of the types above.

Threading: :meth:`Replay.append` is meant to be called from one thread (the stream's loop
thread). Iteration may run on that thread between appends (it then yields what was appended
in the meantime too: a late subscriber replays, then follows) or, once appends have stopped,
anywhere. Under the GIL an iteration on another thread during appends is also safe: entries
are only ever appended, and a template entry always precedes the chunks built from it.
"""

from __future__ import annotations

from collections.abc import Iterator

from ._assemble import Assembler
from .types import (
    ChatChunk,
    ChatResponse,
    Delta,
    FunctionCallDelta,
    StreamChoice,
    ToolCallDelta,
    Usage,
)

__all__ = ["NoReplay", "Replay"]


class _Template:
    """A template change in the kept list: the chunk (texts taken out) that the compact
    entries after it are rebuilt from."""

    __slots__ = ("chunk",)

    def __init__(self, chunk: ChatChunk) -> None:
        self.chunk = chunk


class _Whole:
    """A value kept as it came whose type is that of a compact entry (a ``str``, a tuple...):
    no chunk a parser makes, but wrapped so that no value appended can confuse the replay."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value


def _whole(chunk: object) -> object:
    """The entry of a chunk kept as it came: the chunk itself (the usual case)."""
    return _Whole(chunk) if type(chunk) in _ENTRY_TYPES else chunk


def _template_of(chunk: ChatChunk) -> ChatChunk:
    """A fresh chunk equal to ``chunk`` with its texts taken out (``content``,
    ``reasoning_content``, a fragment's ``arguments``). Owned by the replay, never handed out,
    so no subscriber can change it. ``chunk`` is one that :func:`_fits`."""
    return _build(chunk, None, None, None)


def _fits(chunk: ChatChunk) -> bool:
    """Whether ``chunk`` can be a template: one plain choice whose delta carries at most one
    text (``content``, ``reasoning_content`` or one tool-call fragment's ``arguments``) and
    perhaps a ``role``; no finish reason, no usage, no provider fields. (Only chunks like this
    start a template, so that a one-off chunk - the finish chunk, the usage chunk - does not
    replace the template the stream goes on using.)"""
    if type(chunk) is not ChatChunk or chunk.usage is not None:
        return False
    choices = chunk.choices
    if type(choices) is not list or len(choices) != 1:
        return False
    choice = choices[0]
    if type(choice) is not StreamChoice:
        return False
    delta = choice.delta
    if not (
        type(delta) is Delta
        and choice.finish_reason is None
        and choice.native_finish_reason is None
        and (delta.role is None or type(delta.role) is str)
        and delta.refusal is None
        and delta.provider_fields is None
    ):
        return False
    calls = delta.tool_calls
    texts = (delta.content is not None) + (delta.reasoning_content is not None)
    if calls is None:
        return texts <= 1
    if texts or type(calls) is not list or len(calls) != 1:
        return False
    call = calls[0]
    function = call.function
    return (
        type(call) is ToolCallDelta
        and type(call.index) is int
        and call.id is None
        and call.type is None
        and call.provider_fields is None
        and type(function) is FunctionCallDelta
        and function.name is None
    )


def _build(
    template: ChatChunk, content: str | None, reasoning: str | None, arguments: str | None
) -> ChatChunk:
    """The chunk ``template`` + these texts: equal to the original that was kept as its text.
    (Only ``template``'s immutable values are shared with the new chunk.)"""
    choice = template.choices[0]
    delta = choice.delta
    calls = delta.tool_calls
    if calls is not None:
        calls = [
            ToolCallDelta(index=calls[0].index, function=FunctionCallDelta(arguments=arguments))
        ]
    return ChatChunk(
        id=template.id,
        object=template.object,
        created=template.created,
        model=template.model,
        choices=[
            StreamChoice(
                index=choice.index,
                delta=Delta(
                    role=delta.role,
                    content=content,
                    reasoning_content=reasoning,
                    tool_calls=calls,
                ),
                finish_reason=choice.finish_reason,
                native_finish_reason=choice.native_finish_reason,
            )
        ],
        usage=template.usage,
        system_fingerprint=template.system_fingerprint,
        provider=template.provider,
        source=template.source,
    )


def _last_usage(items: list[object]) -> Usage | None:
    """The usage of the last chunk kept whole in ``items`` that has one."""
    for item in reversed(items):
        usage = getattr(item, "usage", None) if type(item) not in _ENTRY_TYPES else None
        if usage is not None:
            return usage  # type: ignore[no-any-return]
    return None


def _arguments_of(delta: Delta) -> str | None:
    """The ``arguments`` of the delta's first tool-call fragment (None if it has none)."""
    try:
        return delta.tool_calls[0].function.arguments  # type: ignore[index, union-attr]
    except (TypeError, IndexError, AttributeError):
        return None


#: The template before the first one: its id matches no real chunk's (and, were one ever
#: equal to it, rebuilding from it would still give an equal chunk).
_NO_TEMPLATE = ChatChunk(id="\x00rxllm: no template yet", choices=[StreamChoice()])


#: The types of the compact entries and template changes in a replay's list.
_ENTRY_TYPES = (str, tuple, list, _Template, _Whole)


class _Probes:
    """A template's three probes: copies of it whose delta the hot path fills in with a chunk's
    ``content``, ``reasoning_content`` or fragment ``arguments`` before comparing."""

    __slots__ = ("arguments", "arguments_call", "content", "reasoning")

    def __init__(self, template: ChatChunk) -> None:
        self.content = _build(template, None, None, None)
        self.reasoning = _build(template, None, None, None)
        self.arguments = _build(template, None, None, None)
        calls = self.arguments.choices[0].delta.tool_calls
        self.arguments_call = None if calls is None else calls[0].function


class _Feed:
    """Feeds an :class:`Assembler` runs of compact chunks as one chunk per run (their texts
    joined): the same result as feeding each, at a fraction of the cost."""

    __slots__ = ("arguments", "assembler", "content", "count", "reasoning", "template")

    def __init__(self) -> None:
        self.assembler = Assembler()
        self.template = _NO_TEMPLATE
        self.content: list[str] = []
        self.reasoning: list[str] = []
        self.arguments: list[str] = []
        self.count = 0  # chunks in the run beyond those in ``content``

    def flush(self) -> None:
        """Feed the pending run (if any) as one chunk."""
        content, reasoning, arguments = self.content, self.reasoning, self.arguments
        if not (content or self.count):
            return
        self.assembler.add(
            _build(
                self.template,
                "".join(content) or None,
                "".join(reasoning) or None,
                "".join(arguments) or None,
            )
        )
        content.clear()
        reasoning.clear()
        arguments.clear()
        self.count = 0

    def chunk(self, chunk: ChatChunk) -> None:
        """A chunk that is not part of a run."""
        self.flush()
        self.assembler.add(chunk)

    def take(self, items: list[object]) -> None:
        """Feed the entries of a :class:`Replay`'s kept list."""
        content, reasoning, arguments = self.content, self.reasoning, self.arguments
        for item in items:
            kind = type(item)
            if kind is str:
                content.append(item)  # type: ignore[arg-type]
            elif kind is tuple:
                self.count += 1
                text = item[0]  # type: ignore[index]
                if text:
                    reasoning.append(text)
            elif kind is list:
                self.count += 1
                text = item[0]  # type: ignore[index]
                if text:
                    arguments.append(text)
            elif kind is _Template:
                self.switch(item.chunk)  # type: ignore[attr-defined]
            elif kind is _Whole:
                self.chunk(item.value)  # type: ignore[attr-defined]
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

    __slots__ = ("_content", "_content_delta", "_items", "_probes", "_templates")

    def __init__(self) -> None:
        self._items: list[object] = []
        self._templates = 0  # _Template entries in _items
        self._use(_NO_TEMPLATE)

    def _use(self, template: ChatChunk) -> None:
        """Compare chunks with ``template`` from now on."""
        probes = self._probes = _Probes(template)
        self._content = probes.content  # the hot path's probe, one attribute away
        self._content_delta = probes.content.choices[0].delta

    def append(self, chunk: ChatChunk) -> None:
        """Keep ``chunk``. Runs once per chunk of every stream: the usual chunk costs one
        comparison in C and one list append."""
        try:
            text = chunk.choices[0].delta.content
            self._content_delta.content = text
            same = chunk == self._content
        except Exception:  # no choice (the usage chunk), or not built as parsers build chunks
            self._items.append(_whole(chunk))
            return
        self._items.append(text if same and type(text) is str else self._other(chunk))

    def _other(self, chunk: ChatChunk) -> object:
        """The entry for a chunk that is not the template's content chunk: reasoning or
        arguments text, else (after a template change, if it starts one) its text, else the
        chunk itself."""
        try:
            return self._other_entry(chunk)
        except Exception:  # a chunk not built as parsers build them: kept as it is
            return _whole(chunk)

    def _other_entry(self, chunk: ChatChunk) -> object:
        probes = self._probes
        delta = chunk.choices[0].delta
        text = delta.reasoning_content
        probes.reasoning.choices[0].delta.reasoning_content = text
        if chunk == probes.reasoning:
            return (text,)
        call = probes.arguments_call
        if call is not None:
            text = call.arguments = _arguments_of(delta)
            if chunk == probes.arguments:
                return [text]
        if not _fits(chunk):
            return _whole(chunk)
        template = _template_of(chunk)
        self._use(template)
        self._templates += 1  # before the entry: len() may lag, never run ahead
        self._items.append(_Template(template))
        return self._compact(chunk)

    def _compact(self, chunk: ChatChunk) -> object:
        """The entry of a chunk that fits the template just made from it: its text."""
        delta = chunk.choices[0].delta
        self._content_delta.content = delta.content
        if chunk == self._content and type(delta.content) is str:
            return delta.content
        probes = self._probes
        probes.reasoning.choices[0].delta.reasoning_content = delta.reasoning_content
        if chunk == probes.reasoning:
            return (delta.reasoning_content,)
        call = probes.arguments_call
        if call is not None:
            call.arguments = _arguments_of(delta)
            if chunk == probes.arguments:
                return [call.arguments]
        return _whole(chunk)  # not reached for a chunk that fits: kept whole should it ever be

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
            if kind is str:
                yield _build(template, item, None, None)  # type: ignore[arg-type]
            elif kind is tuple:
                yield _build(template, None, item[0], None)  # type: ignore[index]
            elif kind is list:
                yield _build(template, None, None, item[0])  # type: ignore[index]
            elif kind is _Template:
                template = item.chunk  # type: ignore[attr-defined]
            elif kind is _Whole:
                yield item.value  # type: ignore[attr-defined]
            else:
                yield item  # type: ignore[misc]

    def chunks(self) -> list[ChatChunk]:
        """A list of the chunks kept so far."""
        return list(self)

    def usage(self) -> Usage | None:
        """The ``usage`` of the last chunk that carries one (None if none does). Only chunks
        kept whole can: a compact chunk has none."""
        return _last_usage(self._items)

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
            text = chunk.choices[0].delta.content
            self._content_delta.content = text
            same = chunk == self._content
        except Exception:
            items.append(_whole(chunk))
        else:
            items.append(text if same and type(text) is str else self._other(chunk))
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

    def usage(self) -> Usage | None:
        """The ``usage`` of the last chunk seen that carries one (None if none does)."""
        return _last_usage(self._items) or self._feed.assembler.usage

    def assemble(self) -> ChatResponse:
        """The response the chunks seen so far assemble into."""
        self._fold()
        return self._feed.result()

    def __repr__(self) -> str:
        return f"NoReplay({len(self)} chunks seen)"
