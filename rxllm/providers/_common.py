"""Helpers every provider module shares: reading error responses and their headers, checking
parameters, and the pieces of OpenAI-style messages each provider re-encodes. (``header``,
``request_id_from`` and ``body_snippet`` live in :mod:`rxllm._wire`, for the stream floor too.)"""

from __future__ import annotations

import datetime
import email.utils
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from .._wire import body_snippet, header, request_id_from
from ..errors import BadRequestError, LLMError, MalformedResponseError, UnsupportedParamsError
from ..types import ToolCall

__all__ = [
    "body_snippet",
    "check_known_params",
    "data_url",
    "header",
    "request_id_from",
    "retry_after_from",
    "tool_arguments",
]


def retry_after_from(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date).

    What makes no sense as a wait - NaN, a negative number, words - is None (the caller's
    default applies), as if the header were absent. A huge value (``inf``, an epoch sent by
    mistake) is kept as said: the router caps what it honours (``max_cooldown``)."""
    millis = _seconds(header(headers, "retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    value = header(headers, "retry-after")
    if not value:
        return None
    seconds = _seconds(value)
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a zone-less one is read so too
        when = when.replace(tzinfo=datetime.timezone.utc)
    return max(0.0, when.timestamp() - time.time())


def _seconds(value: str | None) -> float | None:
    """A delay in a header as a number >= 0, or None (absent, not a number, NaN, negative)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None  # NaN fails the comparison too


def check_known_params(
    provider: str, params: dict[str, Any], known: frozenset[str], drop: bool
) -> dict[str, Any]:
    """``params`` if all are ``known``; else drop the unknown ones (``drop``) or refuse them."""
    unknown = [k for k in params if k not in known]
    if not unknown:
        return params
    if drop:
        return {k: v for k, v in params.items() if k in known}
    raise UnsupportedParamsError(
        f"{provider} does not take parameter(s) {', '.join(sorted(unknown))}; "
        "pass drop_params=True to leave them out, or extra_body={...} to send them anyway",
        provider=provider,
        param=unknown[0],
    )


def data_url(url: str) -> tuple[str, str] | None:
    """``(media type, base64 data)`` of a ``data:`` URL; None for any other URL."""
    if not url.startswith("data:"):
        return None
    head, comma, data = url.partition(",")
    media_type, _, encoding = head[5:].partition(";")
    if not comma or encoding != "base64":
        raise BadRequestError("image data URLs must look like data:<media type>;base64,<data>")
    return media_type, data


def tool_arguments(call: ToolCall) -> Any:
    """A tool call's arguments decoded, for providers that send them as a JSON object."""
    arguments = call.function.arguments
    try:
        return msgspec.json.decode(arguments) if arguments else {}
    except (msgspec.DecodeError, RecursionError):
        raise BadRequestError(
            f"tool call {call.id} has arguments that are not JSON: {arguments[:80]!r}"
        ) from None


def frame_error(
    data: bytes,
    decode_error: Callable[[bytes], object],
    error_from_body: Callable[..., LLMError],
    *,
    provider: str,
    model: str,
) -> LLMError:
    """A stream frame that is no chunk: the provider's (or a gateway's) error when it decodes as
    an error body, else a malformed frame."""
    try:
        decode_error(data)
    except (msgspec.DecodeError, RecursionError):
        return MalformedResponseError(
            f"unparseable stream frame: {body_snippet(data, 120)!r}",
            provider=provider,
            model=model,
        )
    return error_from_body(None, data, {}, provider=provider, model=model)
