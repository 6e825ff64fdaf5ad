"""Sending a request and turning aiohttp's failures into rxllm's typed errors.

Redirects: a 307 or 308 to the same origin (scheme, host and port) is followed, with the same
method, body and headers, up to :data:`MAX_REDIRECTS` times. Every other redirect - to another
host, port or scheme, or a 301/302/303, which would turn the POST into a GET - is a
:class:`RedirectError` naming where it pointed: the request, its credential headers and its
prompt are never sent anywhere the caller did not configure.

TLS: ``verify`` is aiohttp's ``ssl=``: True (the system's CAs), False, or an ``ssl.SSLContext``
(the entry layer builds it from a CA bundle and warns about False).
"""

from __future__ import annotations

import asyncio
import ssl

import aiohttp
from aiohttp.http_exceptions import ContentEncodingError
from yarl import URL

from .._wire import LOOPBACK_SCHEME, HttpRequest
from ..errors import (
    APIConnectionError,
    APITimeoutError,
    LLMError,
    MalformedResponseError,
    RedirectError,
    StreamTruncatedError,
)
from .session import get_session

__all__ = ["ERROR_BODY_LIMIT", "MAX_REDIRECTS", "body_reader_error", "read_capped", "send"]

#: Same-origin 307/308 redirects followed in a row before giving up.
MAX_REDIRECTS = 5
#: Bytes of an error body read at most (an HTML page from a proxy can be any size).
ERROR_BODY_LIMIT = 1 << 20

_KEEPS_METHOD = (307, 308)


def _timeouts(timeout: float | None, stream: bool) -> aiohttp.ClientTimeout:
    if timeout is None:
        return aiohttp.ClientTimeout(total=None)
    if stream:
        # A stream may run for minutes: limit connecting and each wait for data, not the total.
        return aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout)
    return aiohttp.ClientTimeout(total=timeout)


async def send(
    request: HttpRequest,
    *,
    timeout: float | None,
    stream: bool,
    verify: bool | ssl.SSLContext = True,
) -> aiohttp.ClientResponse:
    """Send ``request`` on the running loop's session; the response's body is not read yet.

    A URL of rxllm's loopback server (``rxllm+loopback://``) is sent to it on 127.0.0.1."""
    url = request.url
    for _ in range(MAX_REDIRECTS + 1):
        response = await _send_once(request, url, timeout, stream, verify)
        status = response.status
        if not 300 <= status < 400 or status == 304:
            return response
        location = response.headers.get("Location")
        response.close()
        target = _resolve(url, location)
        if target is None or status not in _KEEPS_METHOD or not _same_origin(url, target):
            raise RedirectError(
                _refusal(status, url, target), status_code=status, location=_shown(target)
            )
        url = target
    raise RedirectError(
        f"more than {MAX_REDIRECTS} redirects in a row (last to {_shown(url)})",
        status_code=status,
        location=_shown(url),
    )


async def _send_once(
    request: HttpRequest,
    url: str,
    timeout: float | None,
    stream: bool,
    verify: bool | ssl.SSLContext,
) -> aiohttp.ClientResponse:
    try:
        if url.startswith(LOOPBACK_SCHEME):
            from .loopback import resolve

            url = await resolve(url)
        return await get_session().request(
            request.method,
            url,
            headers=request.headers,
            data=request.body,
            timeout=_timeouts(timeout, stream),
            allow_redirects=False,
            ssl=verify,
        )
    except asyncio.TimeoutError as exc:
        raise APITimeoutError(f"no response within {timeout} s") from exc
    except aiohttp.ClientConnectorCertificateError as exc:
        raise APIConnectionError(
            f"TLS certificate verification failed for {_origin(url)}: {exc.certificate_error}; "
            "pass verify='/path/to/ca-bundle.pem' to trust a private CA",
            recoverable=False,
        ) from exc
    except (aiohttp.ClientError, OSError) as exc:
        undecodable = _undecodable_body(exc)
        if undecodable is not None:  # it was reached: what came back cannot be read
            raise undecodable from exc
        raise APIConnectionError(f"could not reach {_origin(url)}: {exc}") from exc


async def read_capped(response: aiohttp.ClientResponse, limit: int = ERROR_BODY_LIMIT) -> bytes:
    """Up to ``limit`` bytes of the body (an error page, say); the connection is closed if
    more was left unread."""
    pieces: list[bytes] = []
    size = 0
    content = response.content
    while size < limit:
        piece = await content.read(limit - size)
        if not piece:
            return b"".join(pieces)
        pieces.append(piece)
        size += len(piece)
    if not content.at_eof():
        response.close()
    return b"".join(pieces)


def body_reader_error(exc: BaseException, timeout: float | None) -> LLMError:
    """The typed error for a failure while reading a response body."""
    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, asyncio.TimeoutError):
        return APITimeoutError(f"no data for {timeout} s")
    undecodable = _undecodable_body(exc)
    if undecodable is not None:
        return undecodable
    if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
        return StreamTruncatedError(f"the connection broke mid-response: {exc}")
    if isinstance(exc, aiohttp.ClientError | ConnectionError):
        return APIConnectionError(f"the connection failed mid-response: {exc}")
    return LLMError(f"unexpected error while reading the response: {exc!r}")


#: How far down a chain of causes aiohttp's own decoding error is looked for.
_CAUSE_DEPTH = 8


def _undecodable_body(exc: BaseException) -> MalformedResponseError | None:
    """The typed error when aiohttp failed because the body's ``Content-Encoding`` cannot be
    decoded - an encoding the request did not accept (``br``, ``zstd`` without their
    libraries) or a corrupt compressed body - else None. The server was reached and answered:
    that is a malformed response, not a connection failure. aiohttp wraps its
    ``ContentEncodingError`` (in a ``ClientResponseError`` when the headers arrive with the
    first bytes, in a ``ClientPayloadError`` mid-body), so the chain of causes is searched."""
    current: BaseException | None = exc
    for _ in range(_CAUSE_DEPTH):
        if current is None:
            return None
        if isinstance(current, ContentEncodingError):
            reason = current.message.strip() or "Can not decode content-encoding"
            return MalformedResponseError(
                f"the response body cannot be decoded ({reason}): the server compressed it in a "
                "way the request did not accept (Accept-Encoding), or the compressed body is "
                "corrupt"
            )
        current = current.__cause__ or current.__context__
    return None


# --- redirects ---------------------------------------------------------------------------------


def _resolve(url: str, location: str | None) -> str | None:
    if not location:
        return None
    try:
        return str(URL(url).join(URL(location)))
    except (ValueError, TypeError):
        return None


def _same_origin(a: str, b: str) -> bool:
    first, second = URL(a), URL(b)
    return (first.scheme, first.host, first.port) == (second.scheme, second.host, second.port)


def _shown(url: str | None) -> str | None:
    """A URL fit for a message: no credentials, no query string (it may hold a token)."""
    if url is None:
        return None
    return str(URL(url).with_user(None).with_query(None).with_fragment(None))


def _refusal(status: int, url: str, target: str | None) -> str:
    if target is None:
        return f"the server answered HTTP {status} without a usable Location"
    if not _same_origin(url, target):
        return (
            f"redirected to another origin, {_shown(target)}, which rxllm does not follow: "
            "the request and its credentials were not sent there (set api_base to the new "
            "address if you trust it)"
        )
    return (
        f"redirected to {_shown(target)} with HTTP {status}, which would turn the POST into a "
        "GET; not followed (set api_base to the new address)"
    )


def _origin(url: str) -> str:
    parsed = URL(url)
    return str(parsed.origin()) if parsed.absolute else url
