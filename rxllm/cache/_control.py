"""What one request says about the cache: ``cache=True``, ``False``, or LiteLLM's per-request
controls (``{"no-cache": true, "ttl": 60, ...}``, the ``cache`` field of a request body)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

import msgspec

from ..errors import BadRequestError

__all__ = ["CacheControl", "CacheRequest", "Pace", "parse_cache_control"]

#: How a hit is paced when replayed as a stream: None (at once, read by read), seconds between
#: chunks, or ``"recorded"`` (the gaps between the original's socket reads).
Pace = float | Literal["recorded"] | None


class CacheControl(msgspec.Struct, frozen=True, kw_only=True):
    """One request's cache controls (:func:`parse_cache_control` reads them)."""

    #: True: use the cache for this request (``cache=True``, LiteLLM's ``use-cache: true``);
    #: False: neither look up nor store (``cache=False``); None: as the configuration (the
    #: model group's ``cache=``) or, failing that, the cache's ``mode`` says.
    use: bool | None = None
    #: False: do not answer from the cache, call the model (the answer is still stored):
    #: LiteLLM's ``no-cache: true``.
    lookup: bool = True
    #: False: do not store this answer (LiteLLM's ``no-store: true``).
    store: bool = True
    #: Seconds to keep this answer (LiteLLM's ``ttl``); None: the cache's ``ttl``.
    ttl: float | None = None
    #: Accept only an answer stored at most this many seconds ago (LiteLLM's ``s-maxage``).
    max_age: float | None = None
    #: Keys in this namespace instead of the cache's (LiteLLM's ``namespace``).
    namespace: str | None = None
    #: How a hit is paced as a stream (rxllm's ``pace``); None: the cache's ``pace``.
    pace: Pace = None


#: What ``cache=`` takes: a bool, LiteLLM's dict of controls, or a :class:`CacheControl`.
CacheRequest = bool | Mapping[str, Any] | CacheControl | None

_KEYS = ("use-cache", "no-cache", "no-store", "ttl", "s-maxage", "s-max-age", "namespace", "pace")


def _bad(message: str) -> BadRequestError:
    return BadRequestError(message, param="cache")


def _flag(controls: Mapping[str, Any], name: str) -> bool | None:
    value = controls.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise _bad(f"cache[{name!r}] must be true or false, not {value!r}")


def _seconds(controls: Mapping[str, Any], name: str, *, zero: bool) -> float | None:
    value = controls.get(name)
    if value is None:
        return None
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and (value >= 0 if zero else value > 0)
    ):
        return float(value)
    kind = "seconds >= 0" if zero else "positive seconds"
    raise _bad(f"cache[{name!r}] must be {kind}, not {value!r}")


def check_pace(value: Any, where: str) -> Pace:
    """``value`` if it is a pace (None, seconds >= 0 or ``"recorded"``), else the error."""
    if value is None or value == "recorded":
        return value  # type: ignore[no-any-return]
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    ):
        return float(value)
    raise _bad(f"{where} must be seconds >= 0 between chunks or 'recorded', not {value!r}")


def parse_cache_control(value: CacheRequest) -> CacheControl:
    """A request's ``cache`` as :class:`CacheControl`: None (nothing said), True (use the
    cache), False (do not: neither look up nor store), or LiteLLM's dict of controls:

    * ``use-cache`` (bool): use the cache for this request (needed where the cache is
      ``default_off`` and the model group does not opt in);
    * ``no-cache`` (bool): do not answer from the cache; the answer is still stored;
    * ``no-store`` (bool): do not store the answer;
    * ``ttl`` (seconds): keep the answer this long;
    * ``s-maxage`` / ``s-max-age`` (seconds): accept only an answer at most this old;
    * ``namespace`` (str): keep and look up keys in this namespace;
    * ``pace`` (rxllm's own: seconds between chunks, or ``"recorded"``): how a hit streams.

    A value of the wrong type or an unknown control is a ``BadRequestError`` naming it (a
    typo such as ``no_cache`` must not be ignored)."""
    if value is None:
        return CacheControl()
    if isinstance(value, CacheControl):
        return value
    if isinstance(value, bool):
        return CacheControl(use=value)
    if not isinstance(value, Mapping):
        raise _bad(
            "cache must be true, false or an object of controls "
            f"({', '.join(_KEYS)}), not {type(value).__name__}"
        )
    unknown = sorted(str(k) for k in value if k not in _KEYS)
    if unknown:
        raise _bad(f"unknown cache control(s) {unknown}; known: {', '.join(_KEYS)}")
    namespace = value.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or not namespace):
        raise _bad(f"cache['namespace'] must be a non-empty string, not {namespace!r}")
    max_age = _seconds(value, "s-maxage", zero=True)
    if max_age is None:
        max_age = _seconds(value, "s-max-age", zero=True)
    return CacheControl(
        use=_flag(value, "use-cache"),
        lookup=not _flag(value, "no-cache"),
        store=not _flag(value, "no-store"),
        ttl=_seconds(value, "ttl", zero=False),
        max_age=max_age,
        namespace=namespace,
        pace=check_pace(value.get("pace"), "cache['pace']"),
    )
