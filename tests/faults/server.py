"""A fault-injecting provider server: the replay server of ``tests/server.py`` plus a catalogue
of the network's and the providers' worst days, each one a function that turns a recorded
transcript into the :class:`Reply` that misbehaves that way.

The faults know nothing of any provider's format: they cut, stall, trickle, compress, pad or
frame the transcript's bytes, given only how its frames are separated (:class:`Transcript`).
So a test (or a mock provider) plugs in a new provider with a transcript and its framing::

    server = FaultServer().start()
    server.inject("drop", transcript, at=transcript.body.index(b" weather"))

Modes (``FAULTS``): ``reset`` (abort before the headers), ``drop`` (abort mid-body at byte
``at``), ``stall_first_byte`` (no headers for ``seconds``), ``stall_body`` (headers and ``at``
bytes, then silence), ``trickle`` (one byte per write), ``rate_limited`` (429 with
``Retry-After``), ``html_error`` (a proxy's 5xx HTML page), ``json_error_200`` (``200`` and an
error object instead of a stream), ``error_event`` (the provider's error mid-stream, then a clean
close), ``invalid_frame`` (a frame that is not JSON), ``unknown_events``
(SSE event types, comments and fields nobody documented), ``big_frame`` (one frame over 1 MiB),
``gzip`` (``Content-Encoding: gzip``, flushed per piece), ``content_type`` (the right bytes under
the wrong ``Content-Type``, or another body entirely), ``redirect`` (a 3xx to ``location``).
Connection refused needs no server: :func:`closed_port` names a port nobody listens on.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..server import ReplayServer, Reply

__all__ = ["FAULTS", "FaultServer", "Transcript", "closed_port", "fault"]

#: A 502 as nginx serves it in front of a provider (the body is HTML, not the provider's JSON).
NGINX_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


@dataclass(frozen=True)
class Transcript:
    """A recorded stream body and how it is framed (SSE: ``\\n\\n`` between events, NDJSON:
    ``\\n`` between lines; Gemini's SSE uses ``\\r\\n\\r\\n``)."""

    body: bytes
    content_type: str = "text/event-stream"
    separator: bytes = b"\n\n"
    #: Wraps one payload as a frame of this format.
    frame: Callable[[bytes], bytes] = lambda payload: b"data: " + payload + b"\n\n"

    def insert_after_frame(self, n: int, extra: bytes) -> bytes:
        """The body with ``extra`` inserted after its ``n``-th frame."""
        at = -len(self.separator)
        for _ in range(n):
            at = self.body.index(self.separator, at + len(self.separator))
        cut = at + len(self.separator)
        return self.body[:cut] + extra + self.body[cut:]

    def every_frame_followed_by(self, extra: bytes) -> bytes:
        """The body with ``extra`` after every frame (frames themselves unchanged)."""
        return self.body.replace(self.separator, self.separator + extra)


def reset(t: Transcript) -> Reply:
    return Reply(reset=True)


def drop(t: Transcript, at: int, piece: int = 512) -> Reply:
    return Reply(body=t.body, content_type=t.content_type, drop_after=at, piece=piece)


def stall_first_byte(t: Transcript, seconds: float = 30.0) -> Reply:
    return Reply(body=t.body, content_type=t.content_type, wait=seconds)


def stall_body(t: Transcript, at: int) -> Reply:
    return Reply(body=t.body, content_type=t.content_type, stall_after=at)


def trickle(t: Transcript) -> Reply:
    return Reply(body=t.body, content_type=t.content_type, piece=1)


def rate_limited(t: Transcript, error_body: bytes, retry_after: str = "7") -> Reply:
    return Reply(
        status=429,
        body=error_body,
        content_type="application/json",
        headers={"Retry-After": retry_after, "x-request-id": "req_fault_429"},
    )


def html_error(t: Transcript, status: int = 502) -> Reply:
    return Reply(status=status, body=NGINX_502, content_type="text/html")


def json_error_200(t: Transcript, error_body: bytes) -> Reply:
    return Reply(status=200, body=error_body, content_type="application/json")


def invalid_frame(
    t: Transcript, after_frames: int = 3, payload: bytes = b'{"id": "chatcmpl-'
) -> Reply:
    body = t.insert_after_frame(after_frames, t.frame(payload))
    return Reply(body=body, content_type=t.content_type, piece=700)


#: What ``unknown_events`` adds after every frame: an event type nobody documented (with a JSON
#: payload that is no chunk), a comment, a field nobody knows, a ``retry`` and an ``id``.
UNKNOWN_SSE = (
    b'event: rxllm.fault.unknown\ndata: {"type": "surprise", "text": "ignore me"}\n\n'
    b": keep-alive comment\n\n"
    b"x-unknown-field: 1\nretry: 3000\n\n"
    b"id: 42\n\n"
)


def error_event(t: Transcript, at: int, error: bytes) -> Reply:
    """The first ``at`` bytes, then ``error`` (the provider's error, framed as it sends one
    mid-stream), then a clean close: the stream ends in an error after some of the answer."""
    return Reply(body=t.body[:at] + error, content_type=t.content_type, piece=700)


def unknown_events(t: Transcript, extra: bytes = UNKNOWN_SSE) -> Reply:
    return Reply(body=t.every_frame_followed_by(extra), content_type=t.content_type, piece=4096)


def big_frame(t: Transcript, marker: bytes, filler: bytes, piece: int = 65536) -> Reply:
    """The first occurrence of ``marker`` (a word inside the answer's text) followed by
    ``filler``: one frame grows past ``len(filler)`` bytes."""
    body = t.body.replace(marker, marker + filler, 1)
    return Reply(body=body, content_type=t.content_type, piece=piece)


def gzip(t: Transcript, piece: int = 300) -> Reply:
    return Reply(body=t.body, content_type=t.content_type, gzip=True, piece=piece)


def content_type(t: Transcript, value: str, body: bytes | None = None, status: int = 200) -> Reply:
    return Reply(status=status, body=t.body if body is None else body, content_type=value)


def redirect(t: Transcript, location: str, status: int = 307) -> Reply:
    return Reply(status=status, body=b"", content_type="text/plain", headers={"Location": location})


FAULTS: dict[str, Callable[..., Reply]] = {
    "reset": reset,
    "drop": drop,
    "stall_first_byte": stall_first_byte,
    "stall_body": stall_body,
    "trickle": trickle,
    "rate_limited": rate_limited,
    "html_error": html_error,
    "json_error_200": json_error_200,
    "invalid_frame": invalid_frame,
    "error_event": error_event,
    "unknown_events": unknown_events,
    "big_frame": big_frame,
    "gzip": gzip,
    "content_type": content_type,
    "redirect": redirect,
}


def fault(mode: str, transcript: Transcript, **options: Any) -> Reply:
    """The reply of fault ``mode`` for ``transcript``."""
    return FAULTS[mode](transcript, **options)


class FaultServer(ReplayServer):
    """The replay server, with faults by name."""

    def inject(self, mode: str, transcript: Transcript, **options: Any) -> FaultServer:
        self.queue(fault(mode, transcript, **options))
        return self


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
