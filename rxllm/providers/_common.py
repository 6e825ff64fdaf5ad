"""Helpers every provider module shares: reading error responses and their headers."""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Mapping

__all__ = ["body_snippet", "header", "request_id_from", "retry_after_from"]

_TAGS = re.compile(rb"<[^>]+>")
_SPACES = re.compile(rb"\s+")


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup that also works on plain dicts."""
    value = headers.get(name)
    if value is not None:
        return value
    lower = name.lower()
    for key, value in headers.items():
        if key.lower() == lower:
            return value
    return None


def retry_after_from(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    millis = header(headers, "retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000.0)
        except ValueError:
            pass
    value = header(headers, "retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def request_id_from(headers: Mapping[str, str]) -> str | None:
    return header(headers, "x-request-id") or header(headers, "request-id")


def body_snippet(body: bytes, limit: int = 300) -> str:
    """A short readable form of a non-JSON error body (an HTML error page, say)."""
    text = _SPACES.sub(b" ", _TAGS.sub(b" ", body)).strip()
    snippet = text[:limit].decode("utf-8", "replace")
    return snippet + ("..." if len(text) > limit else "")
