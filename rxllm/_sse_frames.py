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
* rxllm's own ``delta.provider_fields`` (signed thinking blocks, signatures) are written once
  per choice, merged as rxllm merges them, on its finish chunk: the SDK accumulates every
  delta key, so two thinking blocks (a list of objects without ``index``) made its stream
  helper raise, and a repeated string would be concatenated;
* a failure is an ``event: error`` whose data is ``{"error": {...}}`` with a ``message``:
  the SDK raises it as an ``APIError`` with that message.

A chunk that needs none of this (nearly every one) is encoded as it is, in one msgspec call;
chunks are never modified in place (other subscribers share them).
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec.structs import replace

from ._assemble import merge_fields
from .errors import error_summary
from .types import ChatChunk, Delta, StreamChoice, ToolCallDelta, Usage

__all__ = ["DONE", "SSEFrames"]

DONE = b"data: [DONE]\n\n"

_encode = msgspec.json.Encoder().encode


class SSEFrames:
    """Encodes one stream's chunks as ``data:`` frames, in order; one instance per stream."""

    __slots__ = ("_fields", "_fields_chunk", "_include_usage", "_roles", "_usage", "usage")

    def __init__(self, *, include_usage: bool = True) -> None:
        """``include_usage=False`` leaves the usage chunk out (a gateway's client that did not
        ask for ``stream_options.include_usage``); ``usage`` still records it."""
        self._include_usage = include_usage
        self._roles: set[int] = set()  # the choices whose first delta has been written
        self._usage: ChatChunk | None = None  # the last chunk that carried usage, held back
        #: The last usage the stream reported (None until one came).
        self.usage: Usage | None = None
        self._fields: dict[int, dict[str, Any]] = {}  # provider_fields held for a finish chunk
        self._fields_chunk: ChatChunk | None = None  # the last chunk that carried them

    def chunk(self, chunk: ChatChunk) -> bytes:
        """The frame of one chunk (``b""`` when it carried only usage, held for the end)."""
        if chunk.usage is not None:
            self._usage = chunk
            self.usage = chunk.usage
            if not chunk.choices:
                return b""
            chunk = replace(chunk, usage=None)
        roles, held = self._roles, self._fields
        for choice in chunk.choices:  # written as it is, unless OpenAI would have added to it
            delta = choice.delta
            if (
                choice.index not in roles
                or delta.provider_fields is not None
                or (held and choice.finish_reason is not None)
                or (delta.tool_calls and _untyped(delta.tool_calls))
            ):
                chunk = self._completed(chunk)
                break
        return _frame(chunk)

    def end(self) -> list[bytes]:
        """The frames that end a complete stream: held fields and usage, then ``[DONE]``."""
        return [*self._held(), DONE]

    def error(self, error: BaseException, body: dict[str, Any] | None = None) -> list[bytes]:
        """The frames that end a failed stream: held fields and usage, then the error (no
        ``[DONE]``) whose data is ``body`` (default ``{"error": error_summary(error)}``, which
        never holds an API key)."""
        data = _encode(body if body is not None else {"error": error_summary(error)})
        return [*self._held(), b"event: error\ndata: " + data + b"\n\n"]

    def _completed(self, chunk: ChatChunk) -> ChatChunk:
        if any(choice.delta.provider_fields is not None for choice in chunk.choices):
            self._fields_chunk = chunk
        return replace(chunk, choices=[self._choice(c) for c in chunk.choices])

    def _choice(self, choice: StreamChoice) -> StreamChoice:
        """``choice`` with what OpenAI would have written in it, as the module docstring says."""
        delta, index = choice.delta, choice.index
        if index not in self._roles:
            self._roles.add(index)
            if delta.role is None:
                delta = replace(delta, role="assistant")
        if delta.tool_calls and _untyped(delta.tool_calls):
            delta = replace(delta, tool_calls=[_typed(call) for call in delta.tool_calls])
        fields = delta.provider_fields
        if fields is not None:
            self._fields[index] = merge_fields(self._fields.get(index), fields)
            delta = replace(delta, provider_fields=None)
        if choice.finish_reason is not None and index in self._fields:
            delta = replace(delta, provider_fields=self._fields.pop(index))
        return choice if delta is choice.delta else replace(choice, delta=delta)

    def _held(self) -> list[bytes]:
        """Provider fields no finish chunk carried, then the usage chunk, as frames."""
        frames = []
        if self._fields and self._fields_chunk is not None:
            choices = [
                StreamChoice(index=index, delta=Delta(provider_fields=fields))
                for index, fields in sorted(self._fields.items())
            ]
            frames.append(_frame(replace(self._fields_chunk, choices=choices, usage=None)))
            self._fields.clear()
        usage, self._usage = self._usage, None
        if usage is not None and self._include_usage:
            frames.append(_frame(replace(usage, choices=[])))
        return frames


def _frame(chunk: ChatChunk) -> bytes:
    return b"data: " + _encode(chunk) + b"\n\n"


def _untyped(calls: list[ToolCallDelta]) -> bool:
    """Whether a fragment opens a call (it has an id) without saying its type."""
    for call in calls:  # noqa: SIM110 - a loop, not any(): it runs for every tool-call chunk
        if call.type is None and call.id is not None:
            return True
    return False


def _typed(call: ToolCallDelta) -> ToolCallDelta:
    """An opening fragment (it has an id) with its type; other fragments as they are."""
    if call.type is None and call.id is not None:
        return replace(call, type="function")
    return call
