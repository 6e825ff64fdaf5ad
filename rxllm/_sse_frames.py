"""A stream's chunks as OpenAI writes them, for the SSE bridge (:func:`rxllm.streaming.to_sse`).

rxllm's chunks already have OpenAI's ``chat.completion.chunk`` shape. What a provider module
may leave out, and the official SDKs' stream helpers rely on, is written in here, so that an
OpenAI client reads a bridged stream exactly as it reads OpenAI's own:

* each choice's first delta names its ``role`` (the SDK builds its message from that delta);
* a tool-call fragment that opens a call (it has an ``id``) says ``type: "function"`` (the SDK
  keeps only calls of that type); ``index`` is always written by ``ToolCallDelta`` itself;
* usage comes alone, in a last chunk with ``choices: []``, as with OpenAI's
  ``stream_options.include_usage`` (the SDK keeps the usage of the last chunk only, so usage
  on an earlier chunk - DeepSeek's finish chunk, Anthropic's ``message_delta`` - was lost);
* a failure is an ``event: error`` whose data is ``{"error": {...}}`` with a ``message``:
  the SDK raises it as an ``APIError`` with that message.

A chunk that needs none of this (nearly every one) is encoded as it is, in one msgspec call;
chunks are never modified in place (other subscribers share them).
"""

from __future__ import annotations

import msgspec
from msgspec.structs import replace

from .errors import error_summary
from .types import ChatChunk, StreamChoice, ToolCallDelta

__all__ = ["DONE", "SSEFrames"]

DONE = b"data: [DONE]\n\n"

_encode = msgspec.json.Encoder().encode


class SSEFrames:
    """Encodes one stream's chunks as ``data:`` frames, in order; one instance per stream."""

    __slots__ = ("_roles", "_usage")

    def __init__(self) -> None:
        self._roles: set[int] = set()  # the choices whose first delta has been written
        self._usage: ChatChunk | None = None  # the last chunk that carried usage, held back

    def chunk(self, chunk: ChatChunk) -> bytes:
        """The frame of one chunk (``b""`` when it carried only usage, held for the end)."""
        if chunk.usage is not None:
            self._usage = chunk
            if not chunk.choices:
                return b""
            chunk = replace(chunk, usage=None)
        roles = self._roles
        for choice in chunk.choices:
            if choice.index in roles:  # not a first delta: is it a fragment without its type?
                calls = choice.delta.tool_calls
                if not calls:
                    continue
                for call in calls:
                    if call.type is None and call.id is not None:
                        break
                else:
                    continue
            chunk = replace(chunk, choices=[self._choice(c) for c in chunk.choices])
            break
        return b"data: " + _encode(chunk) + b"\n\n"

    def end(self) -> list[bytes]:
        """The frames that end a complete stream: the usage chunk, if any, and ``[DONE]``."""
        return [*self._held_usage(), DONE]

    def error(self, error: BaseException) -> list[bytes]:
        """The frames that end a failed stream: the usage chunk, if any, and the error (no
        ``[DONE]``). The summary never holds an API key."""
        frame = b"event: error\ndata: " + _encode({"error": error_summary(error)}) + b"\n\n"
        return [*self._held_usage(), frame]

    def _held_usage(self) -> list[bytes]:
        held, self._usage = self._usage, None
        if held is None:
            return []
        return [b"data: " + _encode(replace(held, choices=[])) + b"\n\n"]

    def _choice(self, choice: StreamChoice) -> StreamChoice:
        """``choice`` with the role of a first delta and the type of an opening fragment."""
        delta = choice.delta
        if choice.index not in self._roles:
            self._roles.add(choice.index)
            if delta.role is None:
                delta = replace(delta, role="assistant")
        calls = delta.tool_calls
        if calls:
            for call in calls:
                if call.type is None and call.id is not None:
                    delta = replace(delta, tool_calls=[_typed(c) for c in calls])
                    break
        return choice if delta is choice.delta else replace(choice, delta=delta)


def _typed(call: ToolCallDelta) -> ToolCallDelta:
    """An opening fragment (it has an id) with its type; other fragments as they are."""
    if call.type is None and call.id is not None:
        return replace(call, type="function")
    return call
