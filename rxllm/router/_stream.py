"""The router's stream: a :class:`~rxllm.stream.ChatStream` whose request may be sent to
several deployments, one after the other, until one of them answers.

It keeps every promise of ``ChatStream`` (docs/contracts.md, 2-6; it *is* one: the replay list,
the subscribers, the loop binding and the cancellation are inherited): lazy, shared, replaying,
real cancellation, honest termination. Attempts run one at a time inside the stream's single
task, each reading its response straight into the shared replay list, so a chunk is never
emitted twice: once a chunk has reached the subscribers no other attempt may follow, and a
later failure is the stream's ``on_error`` (with the partial answer). Before that, a failed
attempt is retried or falls back as the configuration says, and subscribers see nothing of it.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import LLMError
from ..stream import ChatStream
from ..types import ChatChunk, Usage
from ._execution import Attempt, Execution, Pick

__all__ = ["RouterStream"]


class RouterStream(ChatStream):
    """The hot stream of one routed request (what ``router.completion(..., stream=True)``
    returns). ``provider``/``model`` name the deployment of the current (last) attempt.

    It is also the engine's ``Sender`` for the request: each attempt goes through
    ``ChatStream``'s subclass hook, ``_send``."""

    def __init__(self, execution: Execution, first: Pick, *, replay: bool = True) -> None:
        super().__init__(first.call, first.provider, first.request, replay=replay)
        self._execution = execution
        self._pick = first
        self._clock = execution.clock
        self._first_chunk_at: float | None = None
        self._received = 0
        self._usage: Usage | None = None
        self._succeeded: Callable[[], None] | None = None

    @property
    def config(self) -> str:
        """The configuration the request named."""
        return self._execution.plan.name

    @property
    def deployment(self) -> str:
        """The id of the deployment of the current (or last) attempt."""
        return self._pick.deployment.id

    @property
    def attempts(self) -> list[Attempt]:
        """Every attempt so far, in order."""
        return list(self._execution.attempts)

    def __repr__(self) -> str:
        return (
            f"RouterStream({self.config!r} -> {self.deployment}: {self.provider}/{self.model}, "
            f"state={self.state}, chunks={self._received}, "
            f"attempts={len(self._execution.attempts)})"
        )

    async def _produce(self) -> None:
        await self._execution.run(self)

    def _finish(self, error: LLMError | None) -> None:
        # The attempt that completes the stream is reported before subscribers hear of it.
        succeeded, self._succeeded = self._succeeded, None
        if error is None and succeeded is not None and self.running:
            succeeded()
        super()._finish(error)

    def _emit(self, chunks: list[ChatChunk]) -> None:
        if chunks:
            if self._first_chunk_at is None:
                self._first_chunk_at = self._clock()
            self._received += len(chunks)
            for chunk in reversed(chunks):
                if chunk.usage is not None:
                    self._usage = chunk.usage
                    break
        super()._emit(chunks)

    # --- the engine's Sender (``committed`` and ``cancelled`` are ChatStream's) ----------

    stream = True

    async def send(self, pick: Pick, succeeded: Callable[[], None]) -> None:
        """One attempt: read ``pick``'s response into this stream."""
        self._pick = pick
        self._succeeded = succeeded
        self._first_chunk_at = None
        await self._send(pick.call, pick.provider, pick.request)

    def first_chunk_at(self) -> float | None:
        return self._first_chunk_at

    def usage(self) -> Usage | None:
        return self._usage
