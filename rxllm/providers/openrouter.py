"""OpenRouter (``POST https://openrouter.ai/api/v1/chat/completions``).

Chat Completions with OpenRouter's additions, read by the family's tolerant reader:

* ``: OPENROUTER PROCESSING`` SSE comments keep the connection alive (the decoder drops them);
* reasoning streams as ``delta.reasoning`` (-> ``reasoning_content``) with structured
  ``reasoning_details`` (kept in ``provider_fields`` and sent back with the assistant message
  next turn, fragments of one block merged, as OpenRouter requires for signed thinking);
* an error that happens after the stream started arrives as a top-level ``"error"`` inside an
  otherwise normal chunk of the 200 response: the chunk is emitted, then the typed error (its
  class from the error's numeric ``code``) ends the stream;
* ``native_finish_reason`` is the upstream model's own value and is kept as such;
* error bodies carry a numeric ``code`` and ``metadata`` (rate-limit headers of the upstream,
  its ``provider_name``); 402 is out of credits.

``model="openrouter/anthropic/claude-3.5-sonnet"`` splits at the first ``/`` only. Options
``http_referer`` and ``x_title`` (env ``OR_SITE_URL`` / ``OR_APP_NAME``) set OpenRouter's
app-attribution headers. ``reasoning_effort`` is sent as ``reasoning: {"effort": ...}``.
OpenRouter's routing preferences (its ``provider`` field, a name ``completion`` already takes)
go in ``extra_body={"provider": {...}}``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import msgspec

from .._provider import Call
from ..errors import LLMError
from ..types import Message
from ._common import header
from .openai import CHAT_PARAMS, strip_message
from .openai_compatible import CompatibleProvider, compatible_error

__all__ = ["PROVIDER", "OpenRouterProvider", "merge_reasoning_details"]

#: OpenAI's parameters plus OpenRouter's own (its API reference, "Request" parameters).
OPENROUTER_PARAMS = CHAT_PARAMS | {
    "debug",
    "include_reasoning",
    "min_p",
    "models",
    "plugins",
    "reasoning",
    "repetition_penalty",
    "route",
    "top_a",
    "top_k",
    "transforms",
    "usage",
}

_TEXT_KEYS = ("text", "summary", "data")


def merge_reasoning_details(details: list[Any]) -> list[Any]:
    """Streamed ``reasoning_details`` fragments -> whole blocks: consecutive fragments of the
    same ``type`` and ``index`` are one block (text joined, later metadata such as the
    ``signature`` kept); entries without ``index`` stay as they are."""
    merged: list[Any] = []
    for item in details:
        last = merged[-1] if merged else None
        if (
            isinstance(item, dict)
            and isinstance(last, dict)
            and item.get("index") is not None
            and item.get("index") == last.get("index")
            and item.get("type") == last.get("type")
        ):
            for key, value in item.items():
                if key in _TEXT_KEYS and isinstance(value, str):
                    last[key] = (last.get(key) or "") + value
                elif value not in (None, ""):
                    last[key] = value
        else:
            merged.append(dict(item) if isinstance(item, dict) else item)
    return merged


class _Metadata(msgspec.Struct):
    headers: dict[str, str] | None = None
    provider_name: str | None = None


class _Detail(msgspec.Struct):
    metadata: _Metadata | None = None


class _Envelope(msgspec.Struct):
    error: _Detail | None = None


_decode_envelope = msgspec.json.Decoder(_Envelope).decode


def _upstream(body: bytes) -> _Metadata | None:
    try:
        detail = _decode_envelope(body).error
    except (msgspec.DecodeError, RecursionError):
        return None
    return detail.metadata if detail is not None else None


class OpenRouterProvider(CompatibleProvider):
    keep = frozenset({"reasoning_details"})

    def translate_params(self, params: dict[str, Any]) -> dict[str, Any]:
        if "reasoning_effort" not in params:
            return params
        params = dict(params)
        effort = params.pop("reasoning_effort")
        params["reasoning"] = {"effort": effort, **(params.get("reasoning") or {})}
        return params

    def headers(self, call: Call, *, stream: bool = False) -> dict[str, str]:
        headers = super().headers(call, stream=stream)
        for option, name in (("http_referer", "HTTP-Referer"), ("x_title", "X-Title")):
            value = call.options.get(option)
            if value and name not in call.extra_headers:
                headers[name] = str(value)
        return headers

    def wire_messages(self, messages: list[Message]) -> list[Any]:
        wire: list[Any] = []
        for message in messages:
            details = (message.provider_fields or {}).get("reasoning_details")
            stripped = strip_message(message)
            if details and message.role == "assistant":
                as_dict = msgspec.to_builtins(stripped)
                as_dict["reasoning_details"] = merge_reasoning_details(details)
                wire.append(as_dict)
            else:
                wire.append(stripped)
        return wire

    def map_error(
        self, status: int, body: bytes, headers: Mapping[str, str], call: Call
    ) -> LLMError:
        error = compatible_error(status, body, headers, provider=self.name, model=call.model)
        metadata = _upstream(body)
        if metadata is not None:
            if metadata.provider_name:
                error.message = f"{error.message} (upstream provider: {metadata.provider_name})"
                error.args = (error.message,)
            if error.retry_after is None and metadata.headers:
                error.retry_after = _reset_in(metadata.headers)
        return error


def _reset_in(headers: Mapping[str, str]) -> float | None:
    """Seconds until ``X-RateLimit-Reset`` (epoch milliseconds) of the upstream's limit."""
    reset = header(headers, "X-RateLimit-Reset")
    if not reset:
        return None
    try:
        return max(0.0, float(reset) / 1000.0 - time.time())
    except ValueError:
        return None


PROVIDER = OpenRouterProvider(
    "openrouter",
    params=OPENROUTER_PARAMS,
    option_names=frozenset({"http_referer", "x_title"}),
)
