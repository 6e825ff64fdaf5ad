"""A response cache that understands streams.

    from rxllm.cache import ResponseCache

    cache = ResponseCache(ttl=3600)                     # in this process (bounded, LRU)
    cache = ResponseCache(redis_url="redis://...")      # shared through Redis
    stream = cache.completion("openai", "gpt-4o-mini", messages=[...], stream=True)
    answer = cache.completion("openai", "gpt-4o-mini", messages=[...])   # a whole response

    router = rxllm.router.Router(cache=ResponseCache())         # or router.cache = ...
    router.register("fast", ..., cache=True)                    # opt in per configuration
    router.completion("fast", messages=[...], cache=True)       # ... or per request

**What is cached.** Complete, successful answers only: a stream that completed after the
provider's end marker with a finish reason, or a whole response with one. Errors, streams cut
short and streams whose last subscriber left are not stored. A streamed answer is kept as its
chunk sequence (text, reasoning, tool-call fragments, finish reason, usage), recorded as the
stream emits it - the one request, never a second.

**Keys.** Exact match on the normalized request (:meth:`ResponseCache.key`): provider and model
(a router: its configuration's name), the messages, and the parameters that change the answer;
``stream``, ``stream_options``, ``user``, ``metadata``, timeouts, keys and the other
:data:`IGNORED_PARAMS` are left out, so a streamed request and a plain one share an entry.

**Hits.** A streamed request replays the entry's chunks - the very chunks, with their read
boundaries - through a ``ChatStream`` that sends no request, so it is lazy, shared, replaying and
cancellable like any other; ``pace`` spaces them (seconds between chunks, or ``"recorded"``: as
the original came). A plain request gets the assembled answer, a :class:`CachedResponse`. An
answer stored from a plain request serves a streamed one too, as a few chunks (reasoning,
content and tool calls, finish, usage). A hit says so - ``cache_hit`` is True on the stream or
the response (:func:`is_cache_hit`) - and keeps the original ``usage`` (what it would have
cost); it costs nothing, and the router counts no attempt, no rpm, no tokens for it.

**Where.** In memory, or Redis (``redis_url``; the ``redis`` extra): Redis unreachable makes
lookups miss and stores be skipped, with one warning; a request never fails for it.

**Per request.** ``cache=True``, ``False``, or LiteLLM's controls ``{"no-cache", "no-store",
"ttl", "s-maxage", "use-cache", "namespace"}`` (and rxllm's ``pace``):
:func:`parse_cache_control`. LiteLLM's proxy configuration (``litellm_settings.cache`` and
``cache_params``) is read by :func:`cache_settings_from_litellm`.
"""

from __future__ import annotations

from ._cache import (
    IGNORED_PARAMS,
    CacheStats,
    CacheUse,
    CachingStream,
    CachingStreamMixin,
    ResponseCache,
    is_cache_hit,
)
from ._control import CacheControl, CacheRequest, Pace, parse_cache_control
from ._entry import CachedResponse, CacheEntry, chunks_of
from ._litellm import CacheSettings, cache_settings_from_litellm

__all__ = [
    "CACHE_HEADER",
    "IGNORED_PARAMS",
    "CacheControl",
    "CacheEntry",
    "CacheRequest",
    "CacheSettings",
    "CacheStats",
    "CacheUse",
    "CachedResponse",
    "CachingStream",
    "CachingStreamMixin",
    "Pace",
    "ResponseCache",
    "cache_settings_from_litellm",
    "chunks_of",
    "is_cache_hit",
    "parse_cache_control",
]

#: The response header a gateway answers a cached request with (``hit``, else ``miss``).
CACHE_HEADER = "x-rxllm-cache"
