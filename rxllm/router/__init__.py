"""Named configurations that keep working when a provider does not (docs/contracts.md, API table).

    from rxllm import router

    router.register("fast", provider="openai", model="gpt-4o-mini")   # key from OPENAI_API_KEY
    router.register("smart", deployments=[{"provider": "openai", "model": "gpt-4o"},
                                          {"provider": "openai", "model": "gpt-4o",
                                           "api_base": "https://eu.example.com/v1"}],
                    strategy="least-busy", num_retries=2, fallbacks=["fast"], timeout=30)
    stream = router.completion("smart", messages=[...], stream=True)  # like rxllm.completion

A configuration is one deployment, a group of deployments balanced by a strategy, or a route
function of the request. Requests are retried (recoverable errors only, with backoff and
``Retry-After``), sent to other deployments and fallback configurations, and failing
deployments cool down; a stream does all of that only until its first chunk. The functions
here use one default :class:`Router`; ``Router()`` makes an isolated one with the same methods.
``setup_<provider>(model=None, **config)`` exists for every provider in the registry.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from .. import providers
from ._config import STRATEGIES
from ._execution import Attempt
from ._router import Router, Settings, create_router
from ._shared import SharedSettings
from ._stream import RouterStream

__all__ = [
    "STRATEGIES",
    "Attempt",
    "Router",
    "RouterStream",
    "Settings",
    "SharedSettings",
    "achat",
    "acompletion",
    "chat",
    "clear",
    "completion",
    "configure",
    "create_router",
    "default_router",
    "get_config",
    "list_configs",
    "on_attempt",
    "quick_setup",
    "register",
    "setup",
    "status",
    "unregister",
]

_default = Router()


def default_router() -> Router:
    """The router behind this module's functions."""
    return _default


register = _default.register
unregister = _default.unregister
list_configs = _default.list_configs
get_config = _default.get_config
clear = _default.clear
status = _default.status
configure = _default.configure
on_attempt = _default.on_attempt
completion = _default.completion
acompletion = _default.acompletion
chat = _default.chat
achat = _default.achat
setup = _default.setup
quick_setup = _default.quick_setup


def __getattr__(name: str) -> Callable[..., str]:
    """``setup_<provider>`` for every provider in the registry."""
    if name.startswith("setup_") and name[len("setup_") :] in providers.list_providers():
        return functools.partial(_default.setup, name[len("setup_") :])
    raise AttributeError(f"module 'rxllm.router' has no attribute {name!r}")


def __dir__() -> list[str]:
    return [*__all__, *(f"setup_{p}" for p in providers.list_providers())]
