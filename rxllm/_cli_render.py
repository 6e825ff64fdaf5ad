"""What ``rxllm chat`` prints, and the loop that feeds it.

Views: plain text (an answer as it streams; several as interleaved labelled lines), JSON lines,
and - on a terminal with ``rich`` installed - live rich views (:mod:`rxllm._cli_rich`). The main
thread iterates the stream (``rxllm.streaming.iterate``: a slow terminal holds the socket back)
and renders; ``ops.metrics()`` measures each stream on the side. Every subscription is disposed
on the way out, whatever the way out is (Ctrl-C included), so no connection is left open.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol, TextIO

import msgspec
from reactivex import abc
from reactivex import operators as rx_ops

from . import ops
from .errors import FanOutError, LLMError, error_summary
from .ops import StreamMetrics
from .stream import ChatStream
from .streaming import fan_out, iterate
from .types import ChatChunk, ChatResponse

__all__ = [
    "Failed",
    "Meters",
    "View",
    "choose_view",
    "run_compare",
    "run_single",
    "summary_rows",
]


class Failed(NamedTuple):
    """How a failed stream ended: its error, and when its first token came (if one did)."""

    error: BaseException
    time_to_first_token: float | None


Outcome = StreamMetrics | Failed | None

_encode = msgspec.json.Encoder().encode


def _text(chunk: ChatChunk) -> str | None:
    choices = chunk.choices
    return choices[0].delta.content if choices else None


def one_line(error: BaseException) -> str:
    """``Type: message`` on one line (typed errors name provider, model, status and code)."""
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


# --- measuring -------------------------------------------------------------------------------


class Meters:
    """``ops.metrics()`` on each stream, subscribed now (so timing starts at the request).

    The time to the first token is also noted on the side: ``metrics`` reports nothing for a
    stream that fails, yet when its first token came is worth showing."""

    def __init__(self, streams: Mapping[str, ChatStream]) -> None:
        self.outcomes: dict[str, Outcome] = dict.fromkeys(streams)
        self.first_token: dict[str, float] = {}
        self._left = len(streams)
        self._lock = threading.Lock()
        self._all_done = threading.Event()
        self._start = time.perf_counter()
        self._subscriptions: list[abc.DisposableBase] = [
            stream.pipe(
                rx_ops.do_action(functools.partial(self._note_first_token, label)),
                ops.metrics(),
            ).subscribe(
                on_next=functools.partial(self._settle, label),
                on_error=functools.partial(self._settle, label),
            )
            for label, stream in streams.items()
        ]

    def _note_first_token(self, label: str, chunk: ChatChunk) -> None:
        """Seconds to the first chunk with text, reasoning or a tool call (as ``metrics``)."""
        if label in self.first_token or not chunk.choices:
            return
        delta = chunk.choices[0].delta
        if delta.content or delta.reasoning_content or delta.tool_calls:
            self.first_token[label] = time.perf_counter() - self._start

    def _settle(self, label: str, result: StreamMetrics | Exception) -> None:
        outcome: Outcome = (
            Failed(result, self.first_token.get(label)) if isinstance(result, Exception) else result
        )
        with self._lock:
            if self.outcomes[label] is None:
                self.outcomes[label] = outcome
                self._left -= 1
                if self._left == 0:
                    self._all_done.set()

    def wait(self, timeout: float = 5.0) -> dict[str, Outcome]:
        """The outcomes, once every stream has ended (they end just before the display's)."""
        self._all_done.wait(timeout)
        return dict(self.outcomes)

    def dispose(self) -> None:
        for subscription in self._subscriptions:
            subscription.dispose()

    def __enter__(self) -> Meters:
        return self

    def __exit__(self, *_: object) -> None:
        self.dispose()


def summary_rows(outcomes: Mapping[str, Outcome]) -> list[list[str]]:
    """The summary table: a header, then one row per stream."""
    rows = [["model", "first token", "tokens/s", "tokens", "cost", "status"]]
    for label, outcome in outcomes.items():
        if isinstance(outcome, StreamMetrics):
            ttft = outcome.time_to_first_token
            rate = outcome.tokens_per_second
            rows.append(
                [
                    label,
                    _ms(ttft),
                    "-" if rate is None else f"{rate:.1f}",
                    ("~" if outcome.tokens_estimated else "") + str(outcome.completion_tokens),
                    "-" if outcome.cost is None else f"${outcome.cost:.6f}",
                    "ok",
                ]
            )
        else:
            status = "cancelled" if outcome is None else type(outcome.error).__name__
            ttft = None if outcome is None else outcome.time_to_first_token
            rows.append([label, _ms(ttft), "-", "-", "-", status])
    return rows


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def summary_records(outcomes: Mapping[str, Outcome]) -> list[dict[str, Any]]:
    """The summary as JSON objects, one per stream."""
    records = []
    for label, outcome in outcomes.items():
        record: dict[str, Any] = {"object": "rxllm.summary", "source": label}
        if isinstance(outcome, StreamMetrics):
            record.update(
                time_to_first_token=outcome.time_to_first_token,
                duration=outcome.duration,
                chunks=outcome.chunks,
                prompt_tokens=outcome.prompt_tokens,
                completion_tokens=outcome.completion_tokens,
                tokens_estimated=outcome.tokens_estimated,
                tokens_per_second=outcome.tokens_per_second,
                cost=outcome.cost,
            )
        elif outcome is not None:
            record["time_to_first_token"] = outcome.time_to_first_token
            record["error"] = error_summary(outcome.error)
        records.append(record)
    return records


def plain_table(rows: list[list[str]]) -> str:
    """Aligned columns: the first left-aligned, the rest right-aligned."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


# --- views -----------------------------------------------------------------------------------


class View(Protocol):
    """How the chunks of one or several streams are shown."""

    def __enter__(self) -> object: ...

    def __exit__(self, *_: object) -> None: ...

    def add(self, chunk: ChatChunk) -> None: ...

    def finish(self, outcomes: Mapping[str, Outcome]) -> None:
        """The streams ended (or were cancelled): show the final state."""
        ...

    def summary(self, outcomes: Mapping[str, Outcome], err: bool) -> None:
        """The timings table (on stderr when ``err``)."""
        ...

    def error(self, error: BaseException) -> None:
        """A stream failed (the one-line message goes to stderr separately)."""
        ...


class _Base:
    def __init__(self, out: TextIO) -> None:
        self.out = out

    def __enter__(self) -> _Base:
        return self

    def __exit__(self, *_: object) -> None:
        pass

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def summary(self, outcomes: Mapping[str, Outcome], err: bool) -> None:
        stream = sys.stderr if err else self.out
        stream.write(("\n" if not err else "") + plain_table(summary_rows(outcomes)))
        stream.flush()

    def error(self, error: BaseException) -> None:
        pass


class TextView(_Base):
    """One answer, printed as it streams; tool calls listed at the end."""

    def __init__(self, out: TextIO) -> None:
        super().__init__(out)
        self.at_line_start = True

    def add(self, chunk: ChatChunk) -> None:
        text = _text(chunk)
        if text:
            self.write(text)
            self.at_line_start = text.endswith("\n")

    def _end_line(self) -> None:
        if not self.at_line_start:
            self.write("\n")
            self.at_line_start = True

    def finish(self, outcomes: Mapping[str, Outcome]) -> None:
        self._end_line()
        for outcome in outcomes.values():
            if isinstance(outcome, StreamMetrics):
                for line in tool_call_lines(outcome.response):
                    self.write(line + "\n")

    def error(self, error: BaseException) -> None:
        self._end_line()


class LabelledLinesView(_Base):
    """Several answers interleaved line by line, each line starting with its model. A line
    longer than :attr:`wrap` is broken at a space, so a long paragraph still streams."""

    wrap = 80

    def __init__(self, out: TextIO, labels: list[str]) -> None:
        super().__init__(out)
        self.width = max(len(label) for label in labels)
        self.pending: dict[str, str] = dict.fromkeys(labels, "")

    def _line(self, label: str, line: str) -> None:
        self.write(f"{label.ljust(self.width)} | {line}\n")

    def add(self, chunk: ChatChunk) -> None:
        text = _text(chunk)
        if not text or chunk.source is None:
            return
        buffered = self.pending[chunk.source] + text
        *lines, rest = buffered.split("\n")
        for line in lines:
            self._line(chunk.source, line)
        wrap = self.wrap
        while len(rest) > wrap:
            cut = rest.rfind(" ", 0, wrap + 1)
            if cut <= 0:
                cut = wrap
            self._line(chunk.source, rest[:cut])
            rest = rest[cut + 1 :] if rest[cut] == " " else rest[cut:]
        self.pending[chunk.source] = rest

    def finish(self, outcomes: Mapping[str, Outcome]) -> None:
        for label, rest in self.pending.items():
            if rest:
                self._line(label, rest)
            self.pending[label] = ""
            outcome = outcomes.get(label)
            if isinstance(outcome, StreamMetrics):
                for line in tool_call_lines(outcome.response):
                    self._line(label, line)
            elif isinstance(outcome, Failed):
                self._line(label, f"[{one_line(outcome.error)}]")


class JsonView(_Base):
    """Each chunk as one JSON line (OpenAI's chunk shape plus ``provider`` and ``source``);
    an error as ``{"error": {...}}``; the summary as ``{"object": "rxllm.summary", ...}``."""

    def add(self, chunk: ChatChunk) -> None:
        self.write(_encode(chunk).decode() + "\n")

    def finish(self, outcomes: Mapping[str, Outcome]) -> None:
        pass

    def summary(self, outcomes: Mapping[str, Outcome], err: bool) -> None:
        for record in summary_records(outcomes):
            self.write(_encode(record).decode() + "\n")

    def error(self, error: BaseException) -> None:
        self.write(_encode({"error": error_summary(error)}).decode() + "\n")


def tool_call_lines(response: ChatResponse) -> list[str]:
    return [
        f"tool call: {call.function.name}({call.function.arguments})"
        for call in response.tool_calls
    ]


def choose_view(
    out: TextIO, *, labels: list[str], compare: bool, as_json: bool, plain: bool
) -> View:
    """JSON lines if asked; rich live views on a terminal when rich is installed; else text."""
    if as_json:
        return JsonView(out)
    if not plain and out.isatty():
        try:
            from . import _cli_rich
        except ImportError:  # rich is the optional `cli` extra: pip install -e '.[cli]'
            pass
        else:
            if compare:
                return _cli_rich.ColumnsView(labels)
            return _cli_rich.AnswerView()
    if compare:
        return LabelledLinesView(out, labels)
    return TextView(out)


# --- running -----------------------------------------------------------------------------------


def _report(error: BaseException) -> None:
    print(f"rxllm: {one_line(error)}", file=sys.stderr, flush=True)


def run_single(streams: Mapping[str, ChatStream], view: View, *, stats: bool) -> int:
    """Stream one answer into ``view``; 0, or 1 after a one-line error."""
    ((_, stream),) = streams.items()
    failure: LLMError | None = None
    outcomes: dict[str, Outcome] | None = None
    with Meters(streams) as meters:
        try:
            with view, iterate(stream) as chunks:
                try:
                    for chunk in chunks:
                        view.add(chunk)
                except LLMError as error:
                    failure = error
                    view.error(error)
            outcomes = meters.wait()
        finally:
            view.finish(meters.outcomes if outcomes is None else outcomes)
    if stats:
        view.summary(outcomes, err=True)
    if failure is not None:
        _report(failure)
        return 1
    return 0


def run_compare(streams: Mapping[str, ChatStream], view: View) -> int:
    """Stream several answers at once (``fan_out``: merged, each chunk labelled with its
    model); then the summary. 0 when all answered, else 1 (one stderr line per failure)."""
    failures: dict[str, Exception] = {}
    outcomes: dict[str, Outcome] | None = None
    with Meters(streams) as meters:
        try:
            with view, iterate(fan_out(streams)) as chunks:
                try:
                    for chunk in chunks:
                        view.add(chunk)
                except FanOutError as error:
                    failures = error.errors
            outcomes = meters.wait()
        finally:
            view.finish(meters.outcomes if outcomes is None else outcomes)
    view.summary(outcomes, err=False)
    for label, failure in failures.items():
        print(f"rxllm: {label}: {one_line(failure)}", file=sys.stderr, flush=True)
    return 1 if failures else 0
