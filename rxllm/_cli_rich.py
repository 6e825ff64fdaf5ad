"""Live terminal views for ``rxllm chat`` with `rich <https://github.com/Textualize/rich>`_
(the ``cli`` extra: ``pip install -e '.[cli]'``; imported only on a terminal, and only when
installed).

While the answer streams, a transient live view shows its tail (Markdown rendered), redrawn at
most ten times a second on rich's own refresh thread, so a fast stream is never held back by
the terminal; when it ends, the whole answer is printed once, normally, so the scrollback holds
it. ``--compare`` shows one column per model, side by side, the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.markdown import Markdown
from rich.panel import Panel
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from ._cli_render import Failed, Outcome, one_line, summary_rows, tool_call_lines
from .ops import StreamMetrics
from .types import ChatChunk

__all__ = ["AnswerView", "ColumnsView"]

_REFRESH_PER_SECOND = 10


class _Tail:
    """The last ``height`` lines of a renderable: a live view that follows the end.

    Trailing spaces are cut from each line: a line padded to the terminal's width leaves the
    cursor at the margin, where the ``^C`` the terminal echoes on Ctrl-C wraps onto a new line
    that the live view does not know about and cannot erase."""

    def __init__(self, renderable: RenderableType, height: int) -> None:
        self.renderable = renderable
        self.height = max(1, height)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        lines = console.render_lines(self.renderable, options, pad=False)
        for line in lines[-self.height :]:
            yield from _rstrip(line)
            yield Segment.line()


def _rstrip(line: list[Segment]) -> list[Segment]:
    """A rendered line without its trailing spaces."""
    line = list(line)
    while line and not line[-1].control and not line[-1].text.rstrip():
        line.pop()
    if line and not line[-1].control:
        last = line[-1]
        line[-1] = Segment(last.text.rstrip(), last.style)
    return line


class _Answer:
    """The text (and visible reasoning) of one stream so far."""

    def __init__(self) -> None:
        self.text = ""
        self.reasoning = ""
        self.status = ""

    def add(self, chunk: ChatChunk) -> None:
        if chunk.choices:
            delta = chunk.choices[0].delta
            if delta.reasoning_content:
                self.reasoning += delta.reasoning_content
            if delta.content:
                self.text += delta.content

    def renderable(self, outcome: Outcome = None) -> RenderableType:
        parts: list[RenderableType] = []
        if self.reasoning:
            parts.append(Text(self.reasoning, style="dim italic"))
        parts.append(Markdown(self.text))
        if isinstance(outcome, StreamMetrics):
            parts.extend(Text(line, style="cyan") for line in tool_call_lines(outcome.response))
        elif isinstance(outcome, Failed):
            parts.append(Text(one_line(outcome.error), style="red"))
        return Group(*parts)


class _LiveView:
    def __init__(self) -> None:
        self.console = Console()
        self.live = Live(
            console=self.console,
            get_renderable=self.render,
            refresh_per_second=_REFRESH_PER_SECOND,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )

    def render(self) -> RenderableType:
        raise NotImplementedError

    def __enter__(self) -> _LiveView:
        self.live.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.live.stop()

    def error(self, error: BaseException) -> None:
        pass

    def summary(self, outcomes: Mapping[str, Outcome], err: bool) -> None:
        rows = summary_rows(outcomes)
        table = Table(*rows[0], header_style="bold")
        for column in table.columns[1:]:
            column.justify = "right"
        for row in rows[1:]:
            table.add_row(*row, style=None if row[-1] == "ok" else "red")
        (Console(stderr=True) if err else self.console).print(table)


class AnswerView(_LiveView):
    """One answer: its tail live, then the whole of it."""

    def __init__(self) -> None:
        self.answer = _Answer()
        super().__init__()

    def render(self) -> RenderableType:
        return _Tail(self.answer.renderable(), self.console.height - 1)

    def add(self, chunk: ChatChunk) -> None:
        self.answer.add(chunk)

    def finish(self, outcomes: Mapping[str, Outcome]) -> None:
        (outcome,) = outcomes.values()
        self.console.print(self.answer.renderable(outcome))


class ColumnsView(_LiveView):
    """Several answers side by side, one column per model."""

    def __init__(self, labels: list[str]) -> None:
        self.answers = {label: _Answer() for label in labels}
        super().__init__()

    def _columns(self, outcomes: Mapping[str, Outcome] | None) -> Table:
        # Live, a column short of the margin (see _Tail: the ^C echo must not wrap).
        width = self.console.width - (2 if outcomes is None else 0)
        grid = Table.grid(expand=True, padding=(0, 1))
        grid.width = width
        for _ in self.answers:
            grid.add_column(ratio=1)
        height = self.console.height - 3
        panels = []
        for label, answer in self.answers.items():
            if outcomes is None:
                body: RenderableType = _Tail(answer.renderable(), height)
            else:
                body = answer.renderable(outcomes.get(label))
            panels.append(Panel(body, title=label, title_align="left"))
        grid.add_row(*panels)
        return grid

    def render(self) -> RenderableType:
        return self._columns(None)

    def add(self, chunk: ChatChunk) -> None:
        if chunk.source is not None:
            self.answers[chunk.source].add(chunk)

    def finish(self, outcomes: Mapping[str, Outcome]) -> None:
        self.console.print(self._columns(outcomes))
