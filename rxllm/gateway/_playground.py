"""The playground of ``rxllm serve``: a static page at ``GET /``, and the rates it prices with.

The page (``_static/``: HTML, CSS and JavaScript, no build step, nothing from another origin)
sends a prompt to one or several models through the gateway's own ``/v1/chat/completions``,
with the key the user types in, and shows the answers streaming side by side. It holds no
secret, and every file is served with a Content-Security-Policy that allows only this origin
(no inline script or style, no other host to connect to).

``GET /v1/rxllm/prices`` gives the price table's rates (USD per million tokens) that the gateway
bills a request with, so the page can show what a run cost:

* ``?provider=P&model=M`` - the rates of the provider and model a stream's chunks name (the
  deployment that answered), looked up as the gateway's accounting does: the provider's own
  entry, then the provider whose models it serves (an OpenAI-compatible server answering for
  ``gpt-4o``), a config's ``input_cost_per_token`` override first;
* ``?model=NAME`` - the rates of each deployment serving a model name of the config.

The answer is ``{"object": "list", "currency": "USD", "unit": ..., "checked": ..., "data":
[{"provider": ..., "model": ..., "price": {...} | null}]}``; ``price`` is null where the table
has no rates (the gateway bills that request nothing, and the page says "no price").
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from importlib import resources

import msgspec
from aiohttp import web

from ..pricing import ModelPrice, price_of, price_table
from ._config import Catalog
from ._errors import GatewayError

__all__ = ["CSP", "STATIC_FILES", "playground_routes"]

#: The files of the page, by name, with their content types (nothing else is served).
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "playground.css": "text/css; charset=utf-8",
    "playground.js": "text/javascript; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
#: Only this origin: the page's own files, and fetch() to the gateway it came from.
CSP = (
    "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
    "object-src 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_encode = msgspec.json.Encoder().encode


class _Rates(msgspec.Struct, frozen=True):
    provider: str
    model: str
    price: ModelPrice | None


@functools.cache
def _static(name: str) -> bytes:
    return resources.files("rxllm.gateway").joinpath("_static").joinpath(name).read_bytes()


def playground_routes(
    catalog: Catalog, authorize: Callable[[web.Request], Awaitable[object]]
) -> list[web.RouteDef]:
    """``GET /``, ``GET /playground/{file}`` (no key needed: the page is static and public)
    and ``GET /v1/rxllm/prices`` (the key ``authorize`` checks, as for ``/v1/models``)."""

    async def page(_: web.Request) -> web.StreamResponse:
        return _file("index.html")

    async def static(request: web.Request) -> web.StreamResponse:
        return _file(request.match_info["file"])

    async def prices(request: web.Request) -> web.StreamResponse:
        await authorize(request)
        query = request.query
        models = query.getall("model", [])
        provider = query.get("provider")
        if provider is not None and len(models) == 1:
            found = [_Rates(provider, models[0], price_of(provider, models[0]))]
        elif provider is None and models:
            found = [
                _Rates(
                    spec.provider or "",
                    spec.model or "",
                    price_of(spec.provider or "", spec.model or ""),
                )
                for name in models
                for spec in catalog.deployments(name)
            ]
        else:
            raise GatewayError(
                400, "ask for ?provider=P&model=M, or ?model=NAME (repeatable)", param="model"
            )
        table = price_table()
        body = {
            "object": "list",
            "currency": table.currency,
            "unit": table.unit,
            "checked": table.checked,
            "data": found,
        }
        return web.Response(body=_encode(body), content_type="application/json")

    return [
        web.get("/", page),
        web.get("/playground/{file}", static),
        web.get("/v1/rxllm/prices", prices),
    ]


def _file(name: str) -> web.Response:
    content_type = STATIC_FILES.get(name)
    if content_type is None:
        raise web.HTTPNotFound()
    return web.Response(body=_static(name), headers={**_HEADERS, "Content-Type": content_type})
