"""Token estimates, for text and for whole requests (docs/contracts.md, API table).

With `tiktoken <https://github.com/openai/tiktoken>`_ installed (the ``tokens`` extra:
``pip install -e '.[tokens]'`` in a clone) text is counted with OpenAI's ``o200k_base``
encoding (or the model's own, when ``model`` names one tiktoken knows): exact for OpenAI's
current models, a close estimate for others.

Without it - or when its encoding files cannot be had (tiktoken downloads them on first use, so
an offline machine without a cache cannot load them) - a documented heuristic is used: **one
token per 4 bytes of UTF-8**, rounded up. That is OpenAI's "about 4 characters per token" rule
of thumb for English, and it counts the multi-byte characters of other scripts (CJK, emoji),
which take more tokens per character, proportionally more. The first failed load is logged once
and the heuristic is used for the rest of the process; ``RXLLM_TOKENIZER=heuristic`` skips
tiktoken altogether. :func:`tokenizer` tells which one is in use.

Providers count tokens their own way: prefer the ``usage`` a response reports; estimate when
there is none (while streaming, or for providers that do not report it).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["estimate_request_tokens", "estimate_tokens", "tokenizer"]

log = logging.getLogger("rxllm")

#: OpenAI's published per-message overhead for chat models (the "How to count tokens with
#: tiktoken" cookbook): each message costs 3 tokens besides its content, a name 1 more, and every
#: reply is primed with 3.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
#: An image part, counted as OpenAI's base cost of a low-detail image.
TOKENS_PER_IMAGE = 85

_DEFAULT_ENCODING = "o200k_base"
_encoders: dict[str, Callable[[str], int] | None] = {}


def _heuristic(text: str) -> int:
    if text.isascii():
        return (len(text) + 3) // 4
    return (len(text.encode("utf-8")) + 3) // 4


def _encoder(model: str | None) -> Callable[[str], int] | None:
    """The tiktoken counter for ``model`` (None: use the heuristic). Loaded once, cached."""
    if os.environ.get("RXLLM_TOKENIZER", "").lower() == "heuristic":
        return None
    try:
        import tiktoken
    except ImportError:
        return None
    name = _DEFAULT_ENCODING
    if model:
        with contextlib.suppress(KeyError):
            name = tiktoken.encoding_name_for_model(model)
    if name in _encoders:
        return _encoders[name]
    try:
        encoding = tiktoken.get_encoding(name)
    except Exception as exc:  # offline without a cache, a broken install...
        log.warning("tiktoken could not load %s (%s); estimating tokens heuristically", name, exc)
        counter = None
    else:

        def counter(text: str) -> int:
            return len(encoding.encode(text, disallowed_special=()))

    _encoders[name] = counter
    return counter


def tokenizer(model: str | None = None) -> str:
    """What :func:`estimate_tokens` uses: ``"tiktoken"`` or ``"heuristic"``."""
    return "tiktoken" if _encoder(model) is not None else "heuristic"


def estimate_tokens(text: str | None, model: str | None = None) -> int:
    """About how many tokens ``text`` is (0 for empty text). See the module doc for how."""
    if not text:
        return 0
    counter = _encoder(model)
    return counter(text) if counter is not None else _heuristic(text)


def _content_tokens(content: Any, count: Callable[[str], int]) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return count(content)
    total = 0
    for part in content:
        kind = part.get("type") if isinstance(part, Mapping) else getattr(part, "type", None)
        text = part.get("text") if isinstance(part, Mapping) else getattr(part, "text", None)
        if text is not None:
            total += count(text)
        elif kind is not None and kind != "text":
            total += TOKENS_PER_IMAGE
    return total


def _field(message: Any, name: str) -> Any:
    return message.get(name) if isinstance(message, Mapping) else getattr(message, name, None)


def estimate_request_tokens(request: Any, model: str | None = None) -> int:
    """About how many prompt tokens a request costs.

    ``request`` is a list of messages (dicts or :class:`~rxllm.types.Message`), or a request body
    / object with ``messages`` (and optionally ``tools``, counted as their JSON). Each message
    adds OpenAI's fixed overhead (:data:`TOKENS_PER_MESSAGE`) to its role, content, name and tool
    calls; images count :data:`TOKENS_PER_IMAGE` each.
    """
    import msgspec

    if model is None:
        model = _field(request, "model") if not isinstance(request, Sequence) else None
    messages: Sequence[Any] = (
        request if isinstance(request, Sequence) else _field(request, "messages") or ()
    )
    tools = None if isinstance(request, Sequence) else _field(request, "tools")
    if tools is None and not isinstance(request, Sequence):
        params = _field(request, "params")
        tools = params.get("tools") if isinstance(params, Mapping) else None

    def count(text: str) -> int:
        return estimate_tokens(text, model)

    total = REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE + count(str(_field(message, "role") or ""))
        total += _content_tokens(_field(message, "content"), count)
        name = _field(message, "name")
        if name:
            total += TOKENS_PER_NAME + count(name)
        tool_calls = _field(message, "tool_calls")
        if tool_calls:
            total += count(msgspec.json.encode(tool_calls).decode())
        tool_call_id = _field(message, "tool_call_id")
        if tool_call_id:
            total += count(tool_call_id)
    if tools:
        total += count(msgspec.json.encode(tools).decode())
    return total
