"""Rx operators over streams of ``ChatChunk`` s, to compose with ``stream.pipe(...)``.

Each is a small function returning ``Callable[[Observable], Observable]``, built from
reactivex's own operators, so they mix freely with ``reactivex.operators``::

    from reactivex import operators as rx_ops
    from rxllm import ops

    stream.pipe(ops.extract_content(), rx_ops.buffer_with_time(0.05)).subscribe(render)
    stream.pipe(ops.collect()).subscribe(lambda response: print(response.text))
"""

from __future__ import annotations

from collections.abc import Callable

import reactivex
from reactivex import Observable, abc
from reactivex import operators as rx_ops

from ._assemble import Assembler
from .types import ChatChunk, ChatResponse

__all__ = ["collect", "extract_content"]


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
