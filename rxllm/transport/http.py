"""Sending a request and turning aiohttp's failures into rxllm's typed errors."""

from __future__ import annotations

import asyncio

import aiohttp

from .._spec import LOOPBACK_SCHEME, HttpRequest
from ..errors import APIConnectionError, APITimeoutError, LLMError, StreamTruncatedError
from .session import get_session

__all__ = ["body_reader_error", "send"]


def _timeouts(timeout: float | None, stream: bool) -> aiohttp.ClientTimeout:
    if timeout is None:
        return aiohttp.ClientTimeout(total=None)
    if stream:
        # A stream may run for minutes: limit connecting and each wait for data, not the total.
        return aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout)
    return aiohttp.ClientTimeout(total=timeout)


async def send(
    request: HttpRequest, *, timeout: float | None, stream: bool
) -> aiohttp.ClientResponse:
    """Send ``request`` on the running loop's session; the response's body is not read yet.

    A URL of rxllm's loopback server (``rxllm+loopback://``) is sent to it on 127.0.0.1."""
    url = request.url
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
        )
    except asyncio.TimeoutError as exc:
        raise APITimeoutError(f"no response within {timeout} s") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise APIConnectionError(f"could not reach {_origin(request.url)}: {exc}") from exc


def body_reader_error(exc: BaseException, timeout: float | None) -> LLMError:
    """The typed error for a failure while reading a response body."""
    if isinstance(exc, LLMError):
        return exc
    if isinstance(exc, asyncio.TimeoutError):
        return APITimeoutError(f"no data for {timeout} s")
    if isinstance(exc, (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError)):
        return StreamTruncatedError(f"the connection broke mid-response: {exc}")
    if isinstance(exc, aiohttp.ClientError | ConnectionError):
        return APIConnectionError(f"the connection failed mid-response: {exc}")
    return LLMError(f"unexpected error while reading the response: {exc!r}")


def _origin(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"
