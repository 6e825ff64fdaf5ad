"""What passes between the provider floor and the transport floor: the request a provider
builds (:class:`HttpRequest`), the loopback server's scripted reply, and reading a response's
headers and error body. Pure data and functions; no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec

from ._secrets import mask_headers, masked_url

__all__ = [
    "LOOPBACK_SCHEME",
    "HttpRequest",
    "ScriptedReply",
    "body_snippet",
    "header",
    "request_id_from",
]

#: URL prefix of rxllm's in-process loopback server (``rxllm.transport.loopback``): a request
#: sent there carries a :class:`ScriptedReply` as its body and gets exactly that reply back.
LOOPBACK_SCHEME = "rxllm+loopback://"


class ScriptedReply(msgspec.Struct, kw_only=True, gc=False):
    """An HTTP reply for the loopback server to play back, sent to it (msgpack) as the request
    body. A provider module that simulates a provider describes the wire with it and stays pure
    translation: the transport floor serves it, over real TCP, like any remote server."""

    status: int = 200
    headers: dict[str, str] = {}
    #: The body, written piece by piece.
    pieces: list[bytes] = []
    #: Seconds before the first piece (time to first byte) and before each later one.
    first_delay: float = 0.0
    delay: float = 0.0
    #: Cut the connection after this many pieces instead of ending the body normally.
    abort_after: int | None = None
    #: Cut the connection before answering at all (a server that cannot be reached).
    refuse: bool = False


class HttpRequest:
    """A ready-to-send HTTP request. Its repr masks credential headers."""

    __slots__ = ("body", "headers", "method", "url")

    def __init__(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None = None
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        headers = mask_headers(self.headers)
        return f"HttpRequest({self.method} {masked_url(self.url)}, headers={headers})"


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


def request_id_from(headers: Mapping[str, str]) -> str | None:
    return header(headers, "x-request-id") or header(headers, "request-id")


def body_snippet(body: bytes, limit: int = 300) -> str:
    """A short readable form of a non-JSON error body (an HTML error page, say)."""
    text = _SPACES.sub(b" ", _TAGS.sub(b" ", body)).strip()
    snippet = text[:limit].decode("utf-8", "replace")
    return snippet + ("..." if len(text) > limit else "")
