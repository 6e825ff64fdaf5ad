"""The provider registry: the one table that names every provider.

Each row gives the module that implements the provider (imported on first use, so
``import rxllm`` stays fast), its default ``api_base``, the environment variables it reads, and
what it can do. Adding a provider is one module plus one row here; nothing else changes.
"""

from __future__ import annotations

import fnmatch
import importlib
import os
from collections.abc import Iterator
from typing import Any

import msgspec

from .. import pricing
from .._provider import Provider
from ..errors import ConfigurationError

__all__ = [
    "ENTRY_POINT_GROUP",
    "ProviderInfo",
    "api_base_for",
    "api_key_for",
    "get_provider",
    "infer_provider",
    "list_providers",
    "load_plugins",
    "plugin_providers",
    "provider_for",
    "provider_info",
    "register_provider",
    "resolve_model",
    "split_model",
    "supports_embeddings",
    "supports_reasoning",
    "supports_streaming",
    "supports_tools",
    "supports_vision",
    "unregister_provider",
]


class ProviderInfo(msgspec.Struct, frozen=True, kw_only=True):
    """One row of the registry."""

    name: str
    module: str
    default_api_base: str
    #: Environment variables holding the API key, first match wins.
    env_keys: tuple[str, ...] = ()
    #: Environment variable(s) that may override ``default_api_base``, first match wins.
    env_api_base: str | tuple[str, ...] | None = None
    #: Provider options read from the environment when not passed: option -> variable.
    env_options: dict[str, str] = msgspec.field(default_factory=dict)
    #: A sensible model for quick setups (the router's ``quick_setup``).
    default_model: str | None = None
    #: Shell-style patterns (``fnmatch``, case-insensitive) of the provider's well-known model
    #: names: a model named alone (``"gpt-4o"``) is sent to the one provider whose pattern
    #: matches. Leave empty for providers that serve other providers' models.
    model_patterns: tuple[str, ...] = ()
    #: Other names configuration files give the provider (LiteLLM's ``ollama_chat/llama3``,
    #: ``hosted_vllm/...``): :func:`provider_for` resolves them to this row.
    aliases: tuple[str, ...] = ()
    #: Providers whose wire format this one serves at any ``api_base`` but theirs: a
    #: configuration file naming ``openai/<model>`` with a vLLM server's URL means this provider
    #: (LiteLLM's convention), see :func:`provider_for`.
    serves_others_of: tuple[str, ...] = ()
    #: Providers whose price-table rows price this one's models when it has none of its own
    #: (an OpenAI-compatible server answering for ``gpt-4o``; the Responses API's models).
    priced_as: tuple[str, ...] = ()
    #: The provider's name in OpenTelemetry's GenAI semantic conventions
    #: (``gen_ai.provider.name``: ``openai``, ``gcp.gemini``, ``azure.ai.openai``...), when it
    #: differs from ``name`` or ``name`` is a well-known value there; None: ``name`` is used.
    otel_name: str | None = None
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
            otel_name="openai",
            default_api_base="https://api.openai.com/v1",
            env_keys=("OPENAI_API_KEY",),
            env_api_base="OPENAI_BASE_URL",
            default_model="gpt-4o-mini",
            model_patterns=("gpt-*", "chatgpt-*", "ft:gpt-*", "o[134]", "o[134]-*"),
            tools=True,
            vision=True,
            reasoning=False,
            embeddings=True,
        ),
        ProviderInfo(
            name="openai_responses",
            module="rxllm.providers.openai_responses",
            # OpenAI's Responses API, or any Open Responses server at another api_base. No
            # model patterns (a bare "gpt-5" stays with "openai") and no default model (quick
            # setups keep one configuration per key): name it, openai_responses/<model>.
            default_api_base="https://api.openai.com/v1",
            env_keys=("OPENAI_API_KEY",),
            env_api_base="OPENAI_BASE_URL",
            priced_as=("openai",),
            otel_name="openai",
            tools=True,
            vision=True,
            reasoning=True,
        ),
        ProviderInfo(
            name="anthropic",
            module="rxllm.providers.anthropic",
            otel_name="anthropic",
            default_api_base="https://api.anthropic.com",
            env_keys=("ANTHROPIC_API_KEY",),
            env_api_base="ANTHROPIC_BASE_URL",
            default_model="claude-sonnet-4-5",
            model_patterns=("claude-*",),
            tools=True,
            vision=True,
            reasoning=True,
        ),
        ProviderInfo(
            name="gemini",
            module="rxllm.providers.gemini",
            otel_name="gcp.gemini",
            default_api_base="https://generativelanguage.googleapis.com",
            env_keys=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
            default_model="gemini-2.5-flash",
            model_patterns=("gemini-*",),
            tools=True,
            vision=True,
            reasoning=True,
            embeddings=True,
        ),
        ProviderInfo(
            name="azure",
            module="rxllm.providers.azure",
            otel_name="azure.ai.openai",
            default_api_base="",  # per resource: https://<resource>.openai.azure.com
            env_keys=("AZURE_API_KEY", "AZURE_OPENAI_API_KEY"),
            env_api_base=("AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT"),
            env_options={"api_version": "AZURE_API_VERSION"},
            tools=True,
            vision=True,
            embeddings=True,
        ),
        ProviderInfo(
            name="deepseek",
            module="rxllm.providers.deepseek",
            otel_name="deepseek",
            default_api_base="https://api.deepseek.com",
            env_keys=("DEEPSEEK_API_KEY",),
            env_api_base="DEEPSEEK_API_BASE",
            default_model="deepseek-chat",
            model_patterns=("deepseek-*",),
            tools=True,
            reasoning=True,
        ),
        ProviderInfo(
            name="mistral",
            module="rxllm.providers.mistral",
            otel_name="mistral_ai",
            default_api_base="https://api.mistral.ai/v1",
            env_keys=("MISTRAL_API_KEY",),
            env_api_base="MISTRAL_API_BASE",
            default_model="mistral-small-latest",
            model_patterns=("mistral-*", "magistral-*", "codestral-*", "ministral-*", "pixtral-*"),
            tools=True,
            vision=True,
            reasoning=True,
            embeddings=True,
        ),
        ProviderInfo(
            name="ollama",
            module="rxllm.providers.ollama",
            default_api_base="http://localhost:11434",
            env_keys=("OLLAMA_API_KEY",),
            env_api_base=("OLLAMA_API_BASE", "OLLAMA_HOST"),
            default_model="llama3.2",
            aliases=("ollama_chat",),
            key_required=False,
            tools=True,
            vision=True,
            reasoning=True,
            embeddings=True,
        ),
        ProviderInfo(
            name="openai_compatible",
            module="rxllm.providers.openai_compatible",
            default_api_base="",  # vLLM, llama.cpp, LM Studio, Groq, Together...: pass api_base
            env_keys=("OPENAI_COMPATIBLE_API_KEY",),
            env_api_base="OPENAI_COMPATIBLE_API_BASE",
            aliases=(
                "hosted_vllm",
                "openai_like",
                "custom_openai",
                "litellm_proxy",
                "lm_studio",
                "llamafile",
            ),
            serves_others_of=("openai",),
            priced_as=("openai",),
            key_required=False,
            tools=True,
            vision=True,
            reasoning=True,
            embeddings=True,
        ),
        ProviderInfo(
            name="openrouter",
            module="rxllm.providers.openrouter",
            default_api_base="https://openrouter.ai/api/v1",
            env_keys=("OPENROUTER_API_KEY",),
            env_api_base="OPENROUTER_API_BASE",
            env_options={"http_referer": "OR_SITE_URL", "x_title": "OR_APP_NAME"},
            default_model="openai/gpt-4o-mini",
            tools=True,
            vision=True,
            reasoning=True,
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


def register_provider(info: ProviderInfo) -> None:
    """Add a provider: ``info.module`` exposes ``PROVIDER`` (imported on first use, as for the
    built-ins). A name already registered is refused."""
    if info.name in _REGISTRY:
        raise ConfigurationError(f"a provider named {info.name!r} is already registered")
    _REGISTRY[info.name] = info
    pricing.price_as(info.name, info.priced_as)


def unregister_provider(name: str) -> None:
    """Remove a provider added with :func:`register_provider` (or any other)."""
    provider_info(name)
    del _REGISTRY[name]
    _loaded.pop(name, None)
    pricing.price_as(name, ())


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


def supports_reasoning(name: str) -> bool:
    """Whether the provider's reasoning/thinking text reaches ``reasoning_content``."""
    return provider_info(name).reasoning


def supports_embeddings(name: str) -> bool:
    return provider_info(name).embeddings


def get_provider(name: str) -> Provider:
    """The provider implementation (its module's ``PROVIDER``), imported on first use."""
    provider = _loaded.get(name)
    if provider is None:
        info = provider_info(name)
        module = importlib.import_module(info.module)
        found = getattr(module, "PROVIDER", None)
        if not isinstance(found, Provider):
            raise ConfigurationError(
                f"{info.module}.PROVIDER does not implement rxllm's provider protocol "
                f"(rxllm._provider.Provider): {found!r}"
            )
        provider = _loaded[name] = found
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


def api_base_for(info: ProviderInfo, explicit: str | None) -> str:
    """The base URL from the call, else from the provider's environment variables (a bare
    ``host:port`` there means ``http://host:port``), else its default ("" when it has none:
    the provider module then asks for one)."""
    if explicit:
        return explicit
    variables = info.env_api_base
    for var in (variables,) if isinstance(variables, str) else variables or ():
        value = os.environ.get(var)
        if value:
            # Environment conventions such as OLLAMA_HOST give a bare host:port.
            return value if "://" in value else "http://" + value
    return info.default_api_base


def provider_for(name: str, api_base: str | None = None) -> str | None:
    """The registered provider a configuration file means by ``name``: the provider of that
    name or the one listing it in ``aliases``, else None. With an ``api_base`` other than that
    provider's default, the provider listing it in ``serves_others_of`` (``openai`` at a vLLM
    server is ``openai_compatible``)."""
    row = _REGISTRY.get(name) or next((r for r in _REGISTRY.values() if name in r.aliases), None)
    if row is None:
        return None
    if api_base and api_base.rstrip("/") != row.default_api_base.rstrip("/"):
        for other in _REGISTRY.values():
            if row.name in other.serves_others_of:
                return other.name
    return row.name


def infer_provider(model: str) -> list[str]:
    """The providers whose ``model_patterns`` match ``model`` (one name when it is clear)."""
    name = model.lower()
    return [
        row.name
        for row in _REGISTRY.values()
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in row.model_patterns)
    ]


def resolve_model(provider: str | None, model: str | None) -> tuple[str, str, bool]:
    """:func:`split_model`, and whether the provider was inferred from the model's name
    (``"gpt-4o"`` alone -> openai), for configurations to say so."""
    if provider and model:
        return provider, model, False
    combined = model or provider
    if not combined:
        raise ConfigurationError("name a provider and a model, e.g. completion('openai', 'gpt-4o')")
    head, sep, tail = combined.partition("/")
    if sep and head in _REGISTRY and tail:
        return head, tail, False
    if combined in _REGISTRY:
        raise ConfigurationError(
            f"{combined!r} is a provider: name its model too, e.g. model='{combined}/<model>'"
        )
    candidates = infer_provider(combined)
    if len(candidates) == 1:
        return candidates[0], combined, True
    could = f" (it could be {' or '.join(candidates)})" if candidates else ""
    raise ConfigurationError(
        f"cannot tell the provider of model {combined!r}{could}: pass provider= or a "
        f"'provider/model' string (known providers: {', '.join(sorted(_REGISTRY))})"
    )


def split_model(provider: str | None, model: str | None) -> tuple[str, str]:
    """Accept ``("openai", "gpt-4o")``, ``(None, "openai/gpt-4o")``, ``("openai/gpt-4o",
    None)`` and a well-known model alone, ``(None, "gpt-4o")`` (its provider inferred from the
    registry's ``model_patterns``). Only a known provider prefix is split off, so
    ``"meta-llama/Llama-3"`` stays whole (and needs a provider)."""
    name, model_name, _ = resolve_model(provider, model)
    return name, model_name


# --- third-party providers: entry points ----------------------------------------------------

#: The entry-point group a package registers providers under (as ``llm`` plugins do)::
#:
#:     [project.entry-points."rxllm.providers"]
#:     myprovider = "my_package.rxllm_provider:ROW"
#:
#: Each entry point loads to a :class:`ProviderInfo` (its ``module`` exposes ``PROVIDER``, the
#: implementation), or to a module holding one as ``PROVIDER_INFO``.
ENTRY_POINT_GROUP = "rxllm.providers"

#: Providers registered by plugins: name -> the distribution (package) that registered it.
_PLUGINS: dict[str, str] = {}


def plugin_providers() -> dict[str, str]:
    """The providers that plugins registered (name -> the distribution that provides it)."""
    _REGISTRY.get("")  # the first lookup loads them
    return dict(_PLUGINS)


def load_plugins(registry: dict[str, ProviderInfo]) -> None:
    """Add every provider registered under :data:`ENTRY_POINT_GROUP` to ``registry``. A plugin
    that fails to load, or loads to something else than a row, is a ``RuntimeWarning`` naming
    it, never an error; a name the registry has already (a built-in provider) keeps its row."""
    import importlib.metadata
    import warnings

    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry.dist.name if entry.dist is not None else "?"
        where = f"rxllm provider plugin {entry.name!r} ({entry.value}, from {dist})"
        try:
            row = entry.load()
            row = getattr(row, "PROVIDER_INFO", row)
        except Exception as exc:
            warnings.warn(f"{where} could not be loaded: {exc!r}", RuntimeWarning, stacklevel=2)
            continue
        if not isinstance(row, ProviderInfo):
            warnings.warn(
                f"{where} is a {type(row).__name__}, not a ProviderInfo: ignored",
                RuntimeWarning,
                stacklevel=2,
            )
        elif row.name in registry:
            owner = f"the plugin from {_PLUGINS[row.name]}" if row.name in _PLUGINS else "built in"
            warnings.warn(
                f"{where} names provider {row.name!r}, which is {owner}: ignored",
                RuntimeWarning,
                stacklevel=2,
            )
        else:
            registry[row.name] = row
            _PLUGINS[row.name] = dist


class _Registry(dict[str, ProviderInfo]):
    """The registry table, which loads plugin providers at its first lookup (so that
    ``import rxllm`` reads no package metadata)."""

    _pending = True

    def _load(self) -> None:
        if self._pending:
            self._pending = False
            load_plugins(self)

    def get(self, key: str, default: Any = None, /) -> Any:
        self._load()
        return super().get(key, default)

    def __getitem__(self, key: str) -> ProviderInfo:
        self._load()
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self._load()
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        self._load()
        return super().__iter__()

    def __len__(self) -> int:
        self._load()
        return super().__len__()

    def keys(self) -> Any:
        self._load()
        return super().keys()

    def values(self) -> Any:
        self._load()
        return super().values()

    def items(self) -> Any:
        self._load()
        return super().items()


for _row in _REGISTRY.values():
    pricing.price_as(_row.name, _row.priced_as)
_REGISTRY = _Registry(_REGISTRY)
