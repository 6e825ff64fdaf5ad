"""Rx operators over streams of ``ChatChunk`` s, to compose with ``stream.pipe(...)``.

Each is a small function returning ``Callable[[Observable], Observable]``, built from
reactivex's own operators where one fits, so they mix freely with ``reactivex.operators``::

    from reactivex import operators as rx_ops
    from rxllm import ops

    stream.pipe(ops.extract_content()).subscribe(lambda text: print(text, end=""))
    stream.pipe(ops.buffer_text(0.05)).subscribe(render)        # UI batching
    stream.pipe(ops.timeout(first_token=10, idle=5), ops.collect()).subscribe(print)
    reactivex.merge(a.pipe(ops.label("fast")), b.pipe(ops.label("smart")))
    stream.pipe(ops.partial_object(Recipe)).subscribe(render)   # JSON as it grows, then a Recipe

Per-chunk operators (``extract_content``, ``extract_reasoning``, ``tool_calls``, ``timeout``,
``partial_object``, ``partial_tool_calls``) are written as one fused step each: the chunk path is
the hot path of a long stream.

Timers (``buffer_text``, ``timeout``, and reactivex's own time operators in a pipeline piped from
a stream) run where the subscriber's callbacks run - the running loop's thread in asyncio code,
the subscriber's own thread in plain scripts - so every callback of a pipeline comes from that
one thread.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec
import reactivex
from reactivex import Observable, abc
from reactivex import operators as rx_ops
from reactivex.disposable import CompositeDisposable, Disposable, SingleAssignmentDisposable

from ._assemble import Assembler, ToolCallParts, assemble
from ._partial_json import JSONSyntaxError, PartialJSON
from ._places import Place, PlaceScheduler, Timer, subscriber_place
from .errors import APITimeoutError, OutputTruncatedError, StructuredOutputError
from .pricing import cost_of
from .tokens import estimate_tokens
from .types import ChatChunk, ChatResponse, ToolCall

__all__ = [
    "PartialToolCall",
    "StreamMetrics",
    "accumulate",
    "buffer_text",
    "collect",
    "extract_content",
    "extract_reasoning",
    "label",
    "metrics",
    "partial_object",
    "partial_tool_calls",
    "timeout",
    "tool_calls",
]

T = TypeVar("T")

_replace = msgspec.structs.replace


def _on_place(
    scheduler: abc.SchedulerBase | None,
) -> tuple[Place, abc.SchedulerBase]:
    """The subscriber's place, and the scheduler to subscribe upstream with so the stream at
    the root delivers there too."""
    place = subscriber_place(scheduler)
    return place, scheduler if isinstance(scheduler, PlaceScheduler) else place.scheduler


# --- text ------------------------------------------------------------------------------------


def extract_content() -> Callable[[Observable[ChatChunk]], Observable[str]]:
    """Chunks -> their text deltas; chunks without text (role, usage, finish) are skipped.

    The fused form of ``map(extract_content)`` + ``filter(None)``: one operator on the hot
    path instead of two.
    """

    def _extract(source: Observable[ChatChunk]) -> Observable[str]:
        def subscribe(
            observer: abc.ObserverBase[str], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            on_next = observer.on_next

            def on_chunk(chunk: ChatChunk) -> None:
                choices = chunk.choices
                if choices:
                    text = choices[0].delta.content
                    if text:
                        on_next(text)

            return source.subscribe(
                on_chunk, observer.on_error, observer.on_completed, scheduler=scheduler
            )

        return Observable(subscribe)

    return _extract


def extract_reasoning() -> Callable[[Observable[ChatChunk]], Observable[str]]:
    """Chunks -> their reasoning deltas (``reasoning_content``: a model's visible thinking);
    chunks without any are skipped. Fused like :func:`extract_content`, whose code it repeats
    on purpose: sharing it through ``operator.attrgetter`` costs 20% more per chunk."""

    def _extract(source: Observable[ChatChunk]) -> Observable[str]:
        def subscribe(
            observer: abc.ObserverBase[str], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            on_next = observer.on_next

            def on_chunk(chunk: ChatChunk) -> None:
                choices = chunk.choices
                if choices:
                    text = choices[0].delta.reasoning_content
                    if text:
                        on_next(text)

            return source.subscribe(
                on_chunk, observer.on_error, observer.on_completed, scheduler=scheduler
            )

        return Observable(subscribe)

    return _extract


def accumulate() -> Callable[[Observable[ChatChunk]], Observable[str]]:
    """Chunks -> the text so far, after each text delta (progressive rendering: set the
    widget's text to each value). ``scan`` over :func:`extract_content`."""

    def _accumulate(source: Observable[ChatChunk]) -> Observable[str]:
        return source.pipe(extract_content(), rx_ops.scan(operator.add, ""))

    return _accumulate


def buffer_text(
    seconds: float, scheduler: abc.SchedulerBase | None = None
) -> Callable[[Observable[ChatChunk]], Observable[str]]:
    """Chunks -> the text that arrived in each ``seconds`` window, joined; empty windows are
    dropped. For UI updates at a steady rate instead of once per token (``buffer_with_time``
    over :func:`extract_content`); the last window is flushed when the stream completes."""

    def _buffer(source: Observable[ChatChunk]) -> Observable[str]:
        def subscribe(
            observer: abc.ObserverBase[str], subscribe_scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            place, upstream = _on_place(subscribe_scheduler)
            windows: Observable[list[str]] = source.pipe(
                extract_content(),
                rx_ops.buffer_with_time(seconds, scheduler=scheduler or place.scheduler),
            )
            texts = windows.pipe(rx_ops.filter(bool), rx_ops.map("".join))
            return texts.subscribe(observer, scheduler=upstream)

        return Observable(subscribe)

    return _buffer


# --- whole responses -------------------------------------------------------------------------


def collect() -> Callable[[Observable[ChatChunk]], Observable[ChatResponse]]:
    """Chunks -> one ``ChatResponse`` (text, reasoning, tool calls, usage, finish reason),
    emitted when the stream completes. ``reduce`` over a fresh assembler per subscription."""

    def _collect(source: Observable[ChatChunk]) -> Observable[ChatResponse]:
        def per_subscription(_: abc.SchedulerBase | None) -> Observable[ChatResponse]:
            return source.pipe(
                rx_ops.reduce(Assembler.add, Assembler()),
                rx_ops.map(Assembler.result),
            )

        return reactivex.defer(per_subscription)

    return _collect


class StreamMetrics(msgspec.Struct, kw_only=True, gc=False):
    """What :func:`metrics` emits when a stream completes: the response and how it streamed."""

    response: ChatResponse
    #: Seconds from subscribing to the first chunk carrying text, reasoning or a tool call
    #: (None when no such chunk came).
    time_to_first_token: float | None
    #: Seconds from subscribing to the end of the stream.
    duration: float
    #: Chunks received.
    chunks: int
    #: Prompt tokens as reported by the provider (None when it reported no usage).
    prompt_tokens: int | None
    #: Completion tokens: as reported, else estimated from the text (``tokens_estimated``).
    completion_tokens: int
    tokens_estimated: bool
    #: Completion tokens per second of generation (first token to end; whole duration when
    #: everything came at once). None when nothing was generated.
    tokens_per_second: float | None
    #: USD from rxllm's price table, when usage was reported and the model is listed.
    cost: float | None = None


class _Meter:
    __slots__ = ("assembler", "chunks", "clock", "first", "start")

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.start = clock()
        self.first: float | None = None
        self.chunks = 0
        self.assembler = Assembler()

    def add(self, chunk: ChatChunk) -> _Meter:
        self.chunks += 1
        self.assembler.add(chunk)
        if self.first is None and chunk.choices:
            delta = chunk.choices[0].delta
            if delta.content or delta.reasoning_content or delta.tool_calls:
                self.first = self.clock()
        return self

    def result(self) -> StreamMetrics:
        end = self.clock()
        response = self.assembler.result()
        usage = response.usage
        prompt_tokens: int | None = None
        cost = None
        if usage is not None and (usage.completion_tokens or usage.prompt_tokens):
            prompt_tokens, completion, estimated = (
                usage.prompt_tokens,
                usage.completion_tokens,
                False,
            )
            cost = cost_of(response.provider, response.model, usage)
        else:
            completion, estimated = _estimate_completion(response), True
        generating = end - self.first if self.first is not None else 0.0
        span = generating if generating > 0 else end - self.start
        return StreamMetrics(
            response=response,
            time_to_first_token=None if self.first is None else self.first - self.start,
            duration=end - self.start,
            chunks=self.chunks,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion,
            tokens_estimated=estimated,
            tokens_per_second=completion / span if completion and span > 0 else None,
            cost=cost,
        )


def _estimate_completion(response: ChatResponse) -> int:
    model = response.model or None
    total = estimate_tokens(response.text, model) + estimate_tokens(
        response.reasoning_content, model
    )
    for call in response.tool_calls:
        total += estimate_tokens(call.function.name + call.function.arguments, model)
    return total


def metrics(
    clock: Callable[[], float] = time.perf_counter,
) -> Callable[[Observable[ChatChunk]], Observable[StreamMetrics]]:
    """Chunks -> one :class:`StreamMetrics` when the stream completes: the assembled response,
    time to first token, chunk count, tokens (reported, else estimated), tokens per second and
    cost. Timing starts at subscription; ``reduce`` over a fresh meter per subscription."""

    def _metrics(source: Observable[ChatChunk]) -> Observable[StreamMetrics]:
        def per_subscription(_: abc.SchedulerBase | None) -> Observable[StreamMetrics]:
            return source.pipe(
                rx_ops.reduce(_Meter.add, _Meter(clock)),
                rx_ops.map(_Meter.result),
            )

        return reactivex.defer(per_subscription)

    return _metrics


def tool_calls() -> Callable[[Observable[ChatChunk]], Observable[ToolCall]]:
    """Chunks -> each complete ``ToolCall``, as soon as its arguments are complete.

    Providers stream tool calls one after another (fragments share an ``index``); a call is
    complete when a fragment of a later index starts, or when its choice finishes (or the
    stream completes). So an application can start running the first tool while the model is
    still writing the arguments of the second. A failing stream emits no incomplete call.
    """

    def _tool_calls(source: Observable[ChatChunk]) -> Observable[ToolCall]:
        def subscribe(
            observer: abc.ObserverBase[ToolCall], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            open_calls: dict[tuple[int, int], ToolCallParts] = {}
            on_next = observer.on_next

            def flush(choice: int, below: int | None) -> None:
                done = sorted(
                    key
                    for key in open_calls
                    if key[0] == choice and (below is None or key[1] < below)
                )
                for key in done:
                    on_next(open_calls.pop(key).build())

            def on_chunk(chunk: ChatChunk) -> None:
                for choice in chunk.choices:
                    fragments = choice.delta.tool_calls
                    if fragments:
                        for fragment in fragments:
                            key = (choice.index, fragment.index)
                            parts = open_calls.get(key)
                            if parts is None:
                                flush(choice.index, fragment.index)
                                parts = open_calls[key] = ToolCallParts()
                            parts.add(fragment)
                    if choice.finish_reason is not None and open_calls:
                        flush(choice.index, None)

            def on_completed() -> None:
                for key in sorted(open_calls):
                    on_next(open_calls.pop(key).build())
                observer.on_completed()

            return source.subscribe(on_chunk, observer.on_error, on_completed, scheduler=scheduler)

        return Observable(subscribe)

    return _tool_calls


# --- structured output -----------------------------------------------------------------------


def _decoder(cls: Any) -> Callable[[str], Any]:
    decode: Callable[[str], Any] = (
        msgspec.json.decode if cls is None else msgspec.json.Decoder(cls).decode
    )
    return decode


def _type_name(cls: Any) -> str:
    return "JSON" if cls is None else getattr(cls, "__name__", None) or repr(cls)


def _strict_value(
    decode: Callable[[str], Any],
    cls: Any,
    text: str,
    *,
    complete: bool,
    finish: str | None,
    tool: str | None,
    context: dict[str, Any],
) -> Any:
    """The strict value of a whole JSON text, or the typed error saying why there is none."""
    what = f"the arguments of {tool!r}" if tool is not None else "the answer"
    if finish == "length" and not complete:
        raise OutputTruncatedError(
            f"{what} reached the token limit (finish_reason='length') before its JSON was "
            "complete: raise max_tokens",
            text=text,
            tool=tool,
            **context,
        )
    try:
        return decode(text)
    except msgspec.ValidationError as exc:
        error = StructuredOutputError(
            f"{what} does not decode to {_type_name(cls)}: {exc}", text=text, tool=tool, **context
        )
        raise error from exc
    except msgspec.DecodeError as exc:
        problem = "holds no JSON" if not text.strip() else "is not complete JSON"
        if finish not in (None, "stop", "tool_calls"):
            problem += f" (finish_reason={finish!r})"
        error = StructuredOutputError(f"{what} {problem}: {exc}", text=text, tool=tool, **context)
        raise error from exc


def _not_json(
    exc: JSONSyntaxError, text: str, tool: str | None, context: dict[str, Any]
) -> StructuredOutputError:
    what = f"the arguments of {tool!r} are" if tool is not None else "the answer is"
    error = StructuredOutputError(f"{what} not JSON: {exc}", text=text, tool=tool, **context)
    error.__cause__ = exc
    return error


def _context(chunk: ChatChunk | None, source: Observable[Any]) -> dict[str, Any]:
    provider = getattr(source, "provider", None) or (chunk.provider if chunk else None)
    model = getattr(source, "model", None) or (chunk.model if chunk else None)
    return {"provider": provider or None, "model": model or None}


#: A partial value is emitted when copying it costs at most this many times the characters read
#: since the previous emission (``partial_object``: linear overall).
_COPY_RATIO = 64


def partial_object(
    cls: Any = None,
) -> Callable[[Observable[ChatChunk]], Observable[Any]]:
    """Chunks whose text is JSON -> the value so far, each time it grows, then the whole value
    decoded strictly (``cls``, e.g. a ``msgspec.Struct`` type, or plain JSON when None).

    For streams asked for structured output (``completion(..., response_format=Recipe)``, or a
    ``json_schema`` / ``json_object`` dict): every provider's answer arrives as text (Anthropic's
    forced tool is read as text by its provider module), so this works the same everywhere.

    * While the JSON is incomplete, each chunk that changes it emits the value so far as plain
      JSON values - a ``dict`` for an object - holding what is complete and the open part:
      strings as far as they came, containers with the members so far; numbers, ``true``,
      ``false``, ``null`` and keys only once complete. Each is a new object (completed members
      are shared between them, never changed), a prefix of the final value. Whitespace, a key
      still being written, or digits of a number change nothing and emit nothing.
    * When the stream completes, the whole text is decoded with msgspec into ``cls`` and that
      strict value is emitted last (always, even when equal to the last partial).

    Errors, all :class:`~rxllm.errors.StructuredOutputError` (``text`` holds the JSON text):
    text that is not JSON fails as soon as it shows (the upstream is disposed first, cancelling
    the request); a value ``cls`` refuses fails at the end with the ``msgspec.ValidationError``
    as its ``__cause__``; an answer cut by the token limit (``finish_reason="length"``) is an
    :class:`~rxllm.errors.OutputTruncatedError`; no JSON at all (a refusal: ``refusal``) too.
    Errors of the stream itself pass through unchanged.

    The parser (``rxllm/_partial_json.py``) is incremental: the text is read once, however it
    is cut. Each emission copies only the containers still open, shallowly, and an open
    string's text; to keep the whole linear, a value is emitted only when that copy costs at
    most 64 times the characters read since the previous emission. Small objects are emitted
    at every change; an answer that is one long array or one long string is emitted every
    1/64th of its size so far. Reads the first choice (index 0).
    """
    decode = _decoder(cls)

    def _partial(source: Observable[ChatChunk]) -> Observable[Any]:
        def subscribe(
            observer: abc.ObserverBase[Any], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            parser = PartialJSON()
            feed, snapshot, cost = parser.feed, parser.snapshot, parser.snapshot_cost
            pending = 0  # characters read since the last emission
            dirty = False  # the value changed since the last emission
            texts: list[str] = []
            append = texts.append
            refusals: list[str] = []
            finish: str | None = None
            last: ChatChunk | None = None
            ended = False
            upstream = SingleAssignmentDisposable()
            on_next = observer.on_next

            def fail(error: Exception) -> None:
                nonlocal ended
                ended = True
                upstream.dispose()
                observer.on_error(error)

            def on_chunk(chunk: ChatChunk) -> None:
                nonlocal finish, last, pending, dirty
                if ended:
                    return
                last = chunk
                for choice in chunk.choices:
                    if choice.index:
                        continue
                    delta = choice.delta
                    text = delta.content
                    if text:
                        append(text)
                        try:
                            changed = feed(text)
                        except JSONSyntaxError as exc:
                            fail(_not_json(exc, "".join(texts), None, _context(chunk, source)))
                            return
                        pending += len(text)
                        dirty = dirty or changed
                        # A snapshot copies the open containers: paid only when it costs at
                        # most _COPY_RATIO times the text read since the last one (linear).
                        if dirty and not parser.complete and pending * _COPY_RATIO >= cost():
                            pending, dirty = 0, False
                            on_next(snapshot())
                    if delta.refusal:
                        refusals.append(delta.refusal)
                    if choice.finish_reason is not None:
                        finish = choice.finish_reason

            def on_error(error: Exception) -> None:
                if not ended:
                    observer.on_error(error)

            def on_completed() -> None:
                if ended:
                    return
                text = "".join(texts)
                context = _context(last, source)
                try:
                    complete = parser.close()
                    if refusals and not text.strip():
                        refusal = "".join(refusals)
                        raise StructuredOutputError(
                            f"the model refused: {refusal}", refusal=refusal, **context
                        )
                    value = _strict_value(
                        decode,
                        cls,
                        text,
                        complete=complete,
                        finish=finish,
                        tool=None,
                        context=context,
                    )
                except JSONSyntaxError as exc:  # a bad number at the very end
                    observer.on_error(_not_json(exc, text, None, context))
                    return
                except StructuredOutputError as error:
                    observer.on_error(error)
                    return
                on_next(value)
                observer.on_completed()

            upstream.disposable = source.subscribe(
                on_chunk, on_error, on_completed, scheduler=scheduler
            )
            return upstream

        return Observable(subscribe)

    return _partial


class PartialToolCall(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """What :func:`partial_tool_calls` emits: one tool call's arguments so far, or, with
    ``complete``, its whole arguments decoded strictly."""

    #: The call's position among the answer's tool calls (0, 1, ...).
    index: int
    id: str
    name: str
    #: The arguments so far (plain JSON values, a ``dict`` once the object has begun), or, when
    #: ``complete``, decoded into the type given for ``name`` (plain JSON without one).
    arguments: Any
    complete: bool = False


class _ToolCallState:
    __slots__ = ("dirty", "id", "name", "parser", "pending", "texts")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.parser = PartialJSON()
        self.texts: list[str] = []
        self.pending = 0  # characters read since the last emission
        self.dirty = False  # the arguments changed since the last emission

    def worth_emitting(self, text: str, changed: bool) -> bool:
        """Whether a snapshot now is paid for (as in ``partial_object``: linear overall)."""
        self.pending += len(text)
        self.dirty = self.dirty or changed
        parser = self.parser
        if not self.dirty or parser.complete:
            return False
        if self.pending * _COPY_RATIO < parser.snapshot_cost():
            return False
        self.pending, self.dirty = 0, False
        return True


def partial_tool_calls(
    types: Mapping[str, Any] | None = None,
) -> Callable[[Observable[ChatChunk]], Observable[PartialToolCall]]:
    """Chunks -> each tool call's arguments as they stream (:class:`PartialToolCall`), then,
    once the call is complete, its arguments decoded strictly: into ``types[name]`` (e.g. a
    ``msgspec.Struct`` type) when given for the call's tool, else plain JSON.

    What :func:`partial_object` does for the answer's text, per tool call: an item with
    ``complete=False`` each time a call's arguments grow (plain JSON values so far), then one
    with ``complete=True`` when the call is complete - when a later call starts, when the choice
    finishes, or when the stream completes (as :func:`tool_calls` decides). Empty arguments are
    ``{}``. Errors (:class:`~rxllm.errors.StructuredOutputError`, ``tool`` naming the call's
    tool): arguments that are not JSON (at once, upstream disposed), that ``types`` refuses, or
    cut by the token limit (:class:`~rxllm.errors.OutputTruncatedError`). Reads the first
    choice (index 0).
    """
    decoders = {name: _decoder(cls) for name, cls in (types or {}).items()}
    plain = _decoder(None)

    def _partial(source: Observable[ChatChunk]) -> Observable[PartialToolCall]:
        def subscribe(
            observer: abc.ObserverBase[PartialToolCall],
            scheduler: abc.SchedulerBase | None = None,
        ) -> abc.DisposableBase:
            calls: dict[int, _ToolCallState] = {}
            finish: str | None = None
            last: ChatChunk | None = None
            ended = False
            upstream = SingleAssignmentDisposable()
            on_next = observer.on_next

            def fail(error: Exception) -> None:
                nonlocal ended
                ended = True
                upstream.dispose()
                observer.on_error(error)

            def complete(index: int) -> None:
                """Emit call ``index`` decoded strictly; raises StructuredOutputError."""
                call = calls.pop(index)
                text = "".join(call.texts) or "{}"
                cls = (types or {}).get(call.name)
                decode = decoders.get(call.name, plain)
                try:
                    done = call.parser.close() if call.texts else True
                except JSONSyntaxError as exc:
                    raise _not_json(exc, text, call.name, _context(last, source)) from exc
                value = _strict_value(
                    decode,
                    cls,
                    text,
                    complete=done,
                    finish=finish,
                    tool=call.name,
                    context=_context(last, source),
                )
                on_next(
                    PartialToolCall(
                        index=index, id=call.id, name=call.name, arguments=value, complete=True
                    )
                )

            def flush(below: int | None) -> None:
                for index in sorted(calls):
                    if below is None or index < below:
                        complete(index)

            def on_chunk(chunk: ChatChunk) -> None:
                nonlocal finish, last
                if ended:
                    return
                last = chunk
                try:
                    for choice in chunk.choices:
                        if choice.index:
                            continue
                        fragments = choice.delta.tool_calls
                        if fragments:
                            for fragment in fragments:
                                call = calls.get(fragment.index)
                                if call is None:
                                    flush(fragment.index)
                                    call = calls[fragment.index] = _ToolCallState()
                                if fragment.id:
                                    call.id = fragment.id
                                function = fragment.function
                                if function is None:
                                    continue
                                if function.name and not call.name:
                                    call.name = function.name
                                text = function.arguments
                                if text:
                                    call.texts.append(text)
                                    try:
                                        changed = call.parser.feed(text)
                                    except JSONSyntaxError as exc:
                                        context = _context(chunk, source)
                                        raise _not_json(
                                            exc, "".join(call.texts), call.name, context
                                        ) from exc
                                    if call.worth_emitting(text, changed):
                                        on_next(
                                            PartialToolCall(
                                                index=fragment.index,
                                                id=call.id,
                                                name=call.name,
                                                arguments=call.parser.snapshot(),
                                            )
                                        )
                        if choice.finish_reason is not None:
                            finish = choice.finish_reason
                            flush(None)
                except StructuredOutputError as error:
                    fail(error)

            def on_error(error: Exception) -> None:
                if not ended:
                    observer.on_error(error)

            def on_completed() -> None:
                if ended:
                    return
                try:
                    flush(None)
                except StructuredOutputError as error:
                    observer.on_error(error)
                    return
                observer.on_completed()

            upstream.disposable = source.subscribe(
                on_chunk, on_error, on_completed, scheduler=scheduler
            )
            return upstream

        return Observable(subscribe)

    return _partial


# --- fan-out ---------------------------------------------------------------------------------


def label(name: str) -> Callable[[Observable[ChatChunk]], Observable[ChatChunk]]:
    """Chunks -> copies whose ``source`` is ``name``, to tell merged streams apart.

    A hot stream's chunks are shared by all its subscribers, so each is copied
    (``msgspec.structs.replace``), never changed in place."""

    def relabel(chunk: ChatChunk) -> ChatChunk:
        return _replace(chunk, source=name)

    return rx_ops.map(relabel)


# --- time limits -----------------------------------------------------------------------------


def timeout(
    first_token: float | None = None,
    idle: float | None = None,
    total: float | None = None,
) -> Callable[[Observable[T]], Observable[T]]:
    """Fail with :class:`~rxllm.errors.APITimeoutError` when the stream is too slow.

    * ``first_token`` - seconds from subscribing to the first item;
    * ``idle`` - seconds allowed between two items after that;
    * ``total`` - seconds for the whole stream.

    On expiry the upstream subscription is disposed first - which cancels the request and
    closes its connection unless another subscriber still shares the stream - then the error
    goes down ``on_error``, carrying the partial response of the chunks seen so far (when the
    items are ``ChatChunk`` s). Catch it with ``reactivex.operators.catch`` to end quietly.

    Unlike ``reactivex.operators.timeout``, which re-arms a timer for every item, this keeps one
    timer where the subscriber's callbacks run and re-arms it only when it fires (or when the
    first item moves the deadline sooner): an item costs one clock read.
    An item held back by a slow consumer counts as late: place the operator where the waiting
    you want to limit happens.
    """
    limits = [x for x in (first_token, idle, total) if x is not None]
    if not limits or any(x <= 0 for x in limits):
        raise ValueError("timeout needs first_token=, idle= and/or total= as positive seconds")

    def _timeout(source: Observable[T]) -> Observable[T]:
        def subscribe(
            observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
        ) -> abc.DisposableBase:
            place, upstream_scheduler = _on_place(scheduler)
            clock = time.monotonic
            start = clock()
            seen: list[T] = []
            append = seen.append
            last: list[float] = []  # [time of the latest item], empty before the first
            ended = False
            upstream = SingleAssignmentDisposable()
            timer: list[Timer] = []

            def deadline() -> tuple[float, str]:
                candidates = []
                if total is not None:
                    candidates.append((start + total, f"the stream took longer than {total} s"))
                if last:
                    if idle is not None:
                        candidates.append((last[0] + idle, f"no chunk for {idle} s"))
                elif first_token is not None:
                    candidates.append(
                        (start + first_token, f"no first chunk within {first_token} s")
                    )
                return min(candidates) if candidates else (float("inf"), "")

            def check() -> None:
                while timer:
                    timer.pop().cancel()
                if ended:
                    return
                when, reason = deadline()
                now = clock()
                if now >= when:
                    expire(reason)
                elif when != float("inf"):
                    timer.append(place.call_later(when - now, check))

            def expire(reason: str) -> None:
                nonlocal ended
                ended = True
                upstream.dispose()
                observer.on_error(_timeout_error(reason, seen, source))

            def stop_timer() -> None:
                nonlocal ended
                ended = True
                while timer:
                    timer.pop().cancel()

            def on_next(item: T) -> None:
                if ended:
                    return
                first = not last
                if first:
                    last.append(clock())
                else:
                    last[0] = clock()
                append(item)
                # The first item moves the deadline from first_token= to idle=, which may be
                # sooner: re-arm then (later items only ever push it back; the timer re-checks).
                if first or not timer:
                    check()
                observer.on_next(item)

            def on_error(error: Exception) -> None:
                if not ended:
                    stop_timer()
                    observer.on_error(error)

            def on_completed() -> None:
                if not ended:
                    stop_timer()
                    observer.on_completed()

            place.retain()
            check()
            upstream.disposable = source.subscribe(
                on_next, on_error, on_completed, scheduler=upstream_scheduler
            )
            return CompositeDisposable(upstream, Disposable(stop_timer), Disposable(place.release))

        return Observable(subscribe)

    return _timeout


def _timeout_error(reason: str, seen: list[Any], source: Observable[Any]) -> APITimeoutError:
    chunks = [item for item in seen if isinstance(item, ChatChunk)]
    partial = assemble(chunks) if chunks else None
    # The stream's own names first (the model asked for, as in every other error), then the
    # response's, for a pipeline that hides the stream.
    provider = getattr(source, "provider", None) or (partial.provider if partial else None)
    model = getattr(source, "model", None) or (partial.model if partial else None)
    return APITimeoutError(
        reason, provider=provider or None, model=model or None, partial_response=partial
    )
