"""Mistral (``POST https://api.mistral.ai/v1/chat/completions`` and ``/v1/embeddings``).

Chat Completions in Mistral's dialect, read by the family's tolerant reader: chunks carry a
random-length ``"p"`` padding field (ignored); reasoning models stream ``delta.content`` as a
list of ``{"type": "thinking", "thinking": [{"type": "text", ...}]}`` parts
(-> ``reasoning_content``); tool calls arrive whole in one chunk without ``index`` (numbered
in arrival order); finish reason and usage share the last chunk; non-streaming tool calls have
no ``type``.

Mistral's API forbids fields it does not know (HTTP 422 ``extra_forbidden``), so requests
carry only its own: ``seed`` is sent as ``random_seed``, ``max_completion_tokens`` as
``max_tokens``, no ``stream_options`` (usage always comes with the last chunk), and messages
lose ``reasoning_content`` and a ``name`` outside tool messages. ``safe_prompt``,
``prompt_mode`` and ``random_seed`` pass through as Mistral's own parameters.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from .._provider import Call
from ..errors import (
    ContextWindowExceededError,
    LLMError,
    UnsupportedParamsError,
    error_for_status,
    refine_class,
)
from ..types import Message
from ._common import body_snippet, request_id_from, retry_after_from
from .openai import error_from_body, strip_message
from .openai_compatible import CompatibleProvider

__all__ = ["PROVIDER", "MistralProvider", "error_from_mistral_body"]

#: Request parameters of Mistral's chat completions (its SDK's ``ChatCompletionRequest``).
CHAT_PARAMS = frozenset(
    {
        "frequency_penalty",
        "max_tokens",
        "metadata",
        "n",
        "parallel_tool_calls",
        "prediction",
        "presence_penalty",
        "prompt_mode",
        "random_seed",
        "response_format",
        "safe_prompt",
        "stop",
        "temperature",
        "tool_choice",
        "tools",
        "top_p",
    }
)

#: Request parameters of Mistral's embeddings (``input`` and ``model`` aside).
EMBEDDING_PARAMS = frozenset({"encoding_format", "metadata", "output_dimension", "output_dtype"})


class _MistralError(msgspec.Struct):
    """Mistral's error bodies: ``message`` is text, or ``{"detail": [...]}``, or absent with a
    top-level ``detail`` list (FastAPI validation errors)."""

    message: Any = None
    detail: Any = None
    type: str | None = None
    param: str | None = None
    code: str | int | None = None
    error: Any = None


_decode_error = msgspec.json.Decoder(_MistralError).decode


def _details(value: Any) -> list[dict[str, Any]]:
    """The validation entries of ``detail`` wherever they are."""
    if isinstance(value, dict):
        value = value.get("detail")
    elif isinstance(value, str) and value.startswith("{"):
        try:
            value = msgspec.json.decode(value).get("detail")
        except (msgspec.DecodeError, RecursionError, AttributeError):
            return []
    if isinstance(value, list):
        return [entry for entry in value if isinstance(entry, dict)]
    return []


def _location(entry: dict[str, Any]) -> str:
    return ".".join(str(part) for part in entry.get("loc") or () if part != "body")


def error_from_mistral_body(
    status: int | None, body: bytes, headers: Mapping[str, str], *, model: str | None
) -> LLMError:
    """A Mistral error body -> typed error; an OpenAI-style ``{"error": ...}`` body (from a
    gateway in front of it) is read as such."""
    try:
        wire = _decode_error(body)
    except (msgspec.DecodeError, RecursionError):
        return error_from_body(status, body, headers, provider="mistral", model=model)
    if wire.error is not None and wire.message is None and wire.detail is None:
        return error_from_body(status, body, headers, provider="mistral", model=model)
    entries = _details(wire.detail) or _details(wire.message)
    if entries:
        message = "; ".join(f"{_location(e)}: {e.get('msg', '')}" for e in entries)
    elif isinstance(wire.message, str) and wire.message:
        message = wire.message
    else:
        message = body_snippet(body) or f"HTTP {status} with an empty body"
    cls: type[LLMError] = error_for_status(status)
    param = wire.param
    if entries and all(e.get("type") == "extra_forbidden" for e in entries):
        cls = UnsupportedParamsError
        param = param or _location(entries[0])
    elif "context length" in message:
        cls = ContextWindowExceededError
    else:
        cls = refine_class(cls, message, wire.type)
    return cls(
        message,
        provider="mistral",
        model=model,
        status_code=status,
        code=None if wire.code is None else str(wire.code),
        error_type=wire.type,
        param=param,
        request_id=request_id_from(headers),
        retry_after=retry_after_from(headers),
    )


def _wire_message(message: Message) -> Message:
    message = strip_message(message)
    if message.name is not None and message.role != "tool":
        message = msgspec.structs.replace(message, name=None)
    return message


class MistralProvider(CompatibleProvider):
    def wire_messages(self, messages: list[Message]) -> list[Any]:
        return [_wire_message(m) for m in messages]

    def map_error(
        self, status: int, body: bytes, headers: Mapping[str, str], call: Call
    ) -> LLMError:
        return error_from_mistral_body(status, body, headers, model=call.model)


PROVIDER = MistralProvider(
    "mistral",
    params=CHAT_PARAMS,
    embedding_params=EMBEDDING_PARAMS,
    option_names=frozenset(),
    renames={"seed": "random_seed", "max_completion_tokens": "max_tokens"},
    embedding_renames={"dimensions": "output_dimension"},
    stream_usage=False,
)
