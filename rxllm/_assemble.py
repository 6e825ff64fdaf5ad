"""Assembling streamed chunks into one ``ChatResponse``.

Text and reasoning fragments are collected per choice and joined once at the end; tool-call
fragments are grouped by their ``index`` (the id and name arrive with the first fragment, the
JSON arguments in pieces). Usage is taken from the last chunk that carries it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .types import (
    ChatChunk,
    ChatResponse,
    Choice,
    Delta,
    FunctionCall,
    Message,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = ["Assembler", "ToolCallParts", "assemble", "extract_content", "merge_fields"]


def merge_fields(into: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """Provider fields of later chunks win, except that lists are concatenated."""
    merged = dict(into) if into else {}
    for key, value in new.items():
        old = merged.get(key)
        merged[key] = old + value if isinstance(old, list) and isinstance(value, list) else value
    return merged


class ToolCallParts:
    """The fragments of one streamed tool call, gathered until it is complete."""

    __slots__ = ("arguments", "fields", "id", "name", "type")

    def __init__(self) -> None:
        self.id = ""
        self.name = ""
        self.type = "function"
        self.arguments: list[str] = []
        self.fields: dict[str, Any] | None = None

    def add(self, fragment: ToolCallDelta) -> None:
        if fragment.id:
            self.id = fragment.id
        if fragment.type:
            self.type = fragment.type
        function = fragment.function
        if function is not None:
            if function.name and not self.name:
                self.name = function.name
            if function.arguments:
                self.arguments.append(function.arguments)
        if fragment.provider_fields:
            self.fields = merge_fields(self.fields, fragment.provider_fields)

    def build(self) -> ToolCall:
        return ToolCall(
            id=self.id,
            type=self.type,
            function=FunctionCall(name=self.name, arguments="".join(self.arguments)),
            provider_fields=self.fields,
        )


class _ChoiceParts:
    __slots__ = (
        "fields",
        "finish_reason",
        "native_finish_reason",
        "reasoning",
        "refusal",
        "role",
        "text",
        "tools",
    )

    def __init__(self) -> None:
        self.role = "assistant"
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.tools: dict[int, ToolCallParts] = {}
        self.finish_reason: str | None = None
        self.native_finish_reason: str | None = None
        self.fields: dict[str, Any] | None = None


class Assembler:
    """Feed chunks with :meth:`add`; :meth:`result` builds the response (any time, any number
    of times: a partial result is what arrived so far)."""

    __slots__ = (
        "_choices",
        "_last",
        "_meta",
        "created",
        "id",
        "model",
        "provider",
        "source",
        "system_fingerprint",
        "usage",
    )

    def __init__(self) -> None:
        self.id = ""
        self.created = 0
        self.model = ""
        self.provider = ""
        self.source: str | None = None
        self.system_fingerprint: str | None = None
        self.usage: Usage | None = None
        self._choices: dict[int, _ChoiceParts] = {}
        self._last: tuple[int, _ChoiceParts] | None = None  # the choice the last chunk fed
        self._meta = True  # id, model or provider still to be taken from a chunk

    def add(self, chunk: ChatChunk) -> Assembler:
        """Take one chunk in. The usual chunk (one choice, text only) costs a few attribute
        reads: this runs once per chunk of every collected stream."""
        if self._meta:
            self._take_meta(chunk)
        if chunk.usage is not None:
            self.usage = chunk.usage
        if chunk.system_fingerprint is not None:
            self.system_fingerprint = chunk.system_fingerprint
        for choice in chunk.choices:
            last = self._last
            if last is not None and last[0] == choice.index:
                parts = last[1]
            else:
                parts = self._choice(choice.index)
            delta = choice.delta
            content = delta.content
            if content:
                parts.text.append(content)
            if (
                delta.reasoning_content
                or delta.tool_calls
                or delta.role
                or delta.refusal
                or delta.provider_fields
            ):
                self._add_rare(parts, delta)
            if choice.finish_reason is not None:
                parts.finish_reason = choice.finish_reason
                parts.native_finish_reason = choice.native_finish_reason
        return self

    def _take_meta(self, chunk: ChatChunk) -> None:
        if not self.id and chunk.id:
            self.id = chunk.id
            self.created = chunk.created
        if not self.model and chunk.model:
            self.model = chunk.model
        if not self.provider:
            self.provider = chunk.provider
            self.source = chunk.source
        self._meta = not (self.id and self.model and self.provider)

    def _choice(self, index: int) -> _ChoiceParts:
        parts = self._choices.get(index)
        if parts is None:
            parts = self._choices[index] = _ChoiceParts()
        self._last = (index, parts)
        return parts

    @staticmethod
    def _add_rare(parts: _ChoiceParts, delta: Delta) -> None:
        if delta.reasoning_content:
            parts.reasoning.append(delta.reasoning_content)
        if delta.tool_calls:
            for fragment in delta.tool_calls:
                call = parts.tools.get(fragment.index)
                if call is None:
                    call = parts.tools[fragment.index] = ToolCallParts()
                call.add(fragment)
        if delta.refusal:
            parts.refusal.append(delta.refusal)
        if delta.role:
            parts.role = delta.role
        if delta.provider_fields:
            parts.fields = merge_fields(parts.fields, delta.provider_fields)

    def result(self) -> ChatResponse:
        choices = []
        for index in sorted(self._choices):
            parts = self._choices[index]
            tool_calls = [call.build() for _, call in sorted(parts.tools.items())]
            message = Message(
                role=parts.role,  # type: ignore[arg-type]
                content="".join(parts.text) if parts.text or not tool_calls else None,
                tool_calls=tool_calls or None,
                reasoning_content="".join(parts.reasoning) if parts.reasoning else None,
                refusal="".join(parts.refusal) if parts.refusal else None,
                provider_fields=parts.fields,
            )
            choices.append(
                Choice(
                    index=index,
                    message=message,
                    finish_reason=parts.finish_reason,
                    native_finish_reason=parts.native_finish_reason,
                )
            )
        return ChatResponse(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=choices,
            usage=self.usage,
            system_fingerprint=self.system_fingerprint,
            provider=self.provider,
            source=self.source,
        )


def assemble(chunks: Iterable[ChatChunk]) -> ChatResponse:
    """One response from a sequence of chunks."""
    assembler = Assembler()
    for chunk in chunks:
        assembler.add(chunk)
    return assembler.result()


def extract_content(chunk: ChatChunk) -> str | None:
    """The text a chunk adds to the first choice, or None for metadata-only chunks."""
    choices = chunk.choices
    if choices:
        return choices[0].delta.content or None
    return None
