"""DeepSeek (``POST https://api.deepseek.com/chat/completions``).

Chat Completions in DeepSeek's dialect, read by the family's tolerant reader: thinking streams
as ``delta.reasoning_content`` (already rxllm's field) with ``content`` null, every chunk says
``"usage": null`` until the last, and usage reports cache hits as ``prompt_cache_hit_tokens``
(-> ``prompt_tokens_details.cached_tokens``, the count DeepSeek bills at its cache price;
``prompt_cache_miss_tokens`` are the rest of ``prompt_tokens``) and reasoning as
``completion_tokens_details.reasoning_tokens``. Keep-alive ``: keep-alive`` SSE comments are
dropped by the decoder.

DeepSeek's thinking mode needs the ``reasoning_content`` of an assistant turn that called
tools sent back with it in later requests (it answers 400 otherwise); other assistant turns
go without it (it would be ignored). ``thinking`` (``{"type": "enabled"}``) and
``reasoning_effort`` pass through.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..types import Message
from .openai import strip_message
from .openai_compatible import CompatibleProvider

__all__ = ["PROVIDER", "DeepSeekProvider"]

#: Request parameters of DeepSeek's chat completions (its API reference).
CHAT_PARAMS = frozenset(
    {
        "frequency_penalty",
        "logprobs",
        "max_tokens",
        "presence_penalty",
        "reasoning_effort",
        "response_format",
        "stop",
        "stream_options",
        "temperature",
        "thinking",
        "tool_choice",
        "tools",
        "top_logprobs",
        "top_p",
    }
)


def _wire_message(message: Message) -> Message:
    """Keep ``reasoning_content`` on an assistant turn that called tools; strip the rest."""
    if message.role == "assistant" and message.tool_calls and message.reasoning_content:
        if message.provider_fields is None:
            return message
        return msgspec.structs.replace(message, provider_fields=None)
    return strip_message(message)


class DeepSeekProvider(CompatibleProvider):
    def wire_messages(self, messages: list[Message]) -> list[Any]:
        return [_wire_message(m) for m in messages]


PROVIDER = DeepSeekProvider(
    "deepseek",
    params=CHAT_PARAMS,
    option_names=frozenset(),
    renames={"max_completion_tokens": "max_tokens"},
)
