"""The provider registry: the one table that names every provider.

Each row gives the module that implements the provider (imported on first use, so
``import rxllm`` stays fast), its default ``api_base``, the environment variables it reads, and
what it can do. Adding a provider is one module plus one row here; nothing else changes.
"""

from __future__ import annotations

import importlib
import os
from typing import cast

import msgspec

from .._spec import Provider
from ..errors import ConfigurationError

__all__ = [
    "ProviderInfo",
    "api_key_for",
    "get_provider",
    "list_providers",
    "provider_info",
    "split_model",
    "supports_streaming",
    "supports_tools",
    "supports_vision",
]


class ProviderInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the registry."""

    name: str
    module: str
    default_api_base: str
    #: Environment variables holding the API key, first match wins.
    env_keys: tuple[str, ...] = ()
    #: Environment variable that may override ``default_api_base``.
    env_api_base: str | None = None
    #: Provider options read from the environment when not passed: option -> variable.
    env_options: dict[str, str] = msgspec.field(default_factory=dict)
    #: A sensible model for quick setups (the router's ``quick_setup``).
    default_model: str | None = None
    key_required: bool = True
    streaming: bool = True
    tools: bool = False
    vision: bool = False
    reasoning: bool = False
    embeddings: bool = False


_REGISTRY: dict[str, ProviderInfo] = {
    row.name: row
    for row in (
        ProviderInfo(
            name="openai",
            module="rxllm.providers.openai",
            default_api_base="https://api.openai.com/v1",
            env_keys=("OPENAI_API_KEY",),
            env_api_base="OPENAI_BASE_URL",
            default_model="gpt-4o-mini",
            tools=True,
            vision=True,
            reasoning=False,
            embeddings=True,
        ),
        ProviderInfo(
            name="mock",
            module="rxllm.providers.mock",
            default_api_base="rxllm+loopback://mock",
            key_required=False,
            tools=True,
        ),
    )
}

_loaded: dict[str, Provider] = {}


def list_providers() -> list[str]:
    """The names of every registered provider."""
    return sorted(_REGISTRY)


def provider_info(name: str) -> ProviderInfo:
    """The registry row of ``name``; :class:`ConfigurationError` if there is none."""
    info = _REGISTRY.get(name)
    if info is None:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigurationError(f"unknown provider {name!r}; known providers: {known}")
    return info


def supports_streaming(name: str) -> bool:
    return provider_info(name).streaming


def supports_tools(name: str) -> bool:
    return provider_info(name).tools


def supports_vision(name: str) -> bool:
    return provider_info(name).vision


def get_provider(name: str) -> Provider:
    """The provider implementation (its module's ``PROVIDER``), imported on first use."""
    provider = _loaded.get(name)
    if provider is None:
        info = provider_info(name)
        module = importlib.import_module(info.module)
        provider = cast(Provider, module.PROVIDER)
        _loaded[name] = provider
    return provider


def api_key_for(info: ProviderInfo, explicit: str | None) -> str | None:
    """The key from the call, else from the provider's environment variables."""
    if explicit:
        return explicit
    for var in info.env_keys:
        value = os.environ.get(var)
        if value:
            return value
    return None


def split_model(provider: str | None, model: str | None) -> tuple[str, str]:
    """Accept ``("openai", "gpt-4o")``, ``(None, "openai/gpt-4o")`` and ``("openai/gpt-4o",
    None)``. Only a known provider prefix is split off, so ``"meta-llama/Llama-3"`` stays whole."""
    if provider and model:
        return provider, model
    combined = model or provider
    if not combined:
        raise ConfigurationError("name a provider and a model, e.g. completion('openai', 'gpt-4o')")
    head, sep, tail = combined.partition("/")
    if sep and head in _REGISTRY and tail:
        return head, tail
    raise ConfigurationError(
        f"cannot tell the provider of model {combined!r}: pass provider= or a "
        f"'provider/model' string (known providers: {', '.join(sorted(_REGISTRY))})"
    )
