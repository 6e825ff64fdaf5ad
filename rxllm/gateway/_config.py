"""The gateway's config file: LiteLLM proxy's ``config.yaml``, loaded into the router's structs.

A LiteLLM config that uses only what rxllm implements loads unchanged::

    model_list:                       # repeated model_names form one load-balanced group
      - model_name: gpt-4o
        litellm_params:               # or ``params``
          model: azure/gpt-4o-eu      # "provider/model"; LiteLLM's names (ollama_chat, ...) too
          api_base: https://eu.example.com
          api_key: os.environ/AZURE_KEY_EU   # any value: read from the environment
          rpm: 60
      - model_name: "openai/*"        # wildcard: "openai/gpt-4.1" -> model "openai/gpt-4.1"
        litellm_params: {model: "openai/*", api_key: os.environ/OPENAI_API_KEY}
    router_settings: {routing_strategy: least-busy, num_retries: 2, timeout: 30,
                      fallbacks: [{gpt-4o: [claude]}], model_group_alias: {gpt-4: gpt-4o}}
    litellm_settings: {drop_params: true, request_timeout: 600}
    general_settings: {master_key: os.environ/MASTER_KEY}
    environment_variables: {OPENAI_BASE_URL: https://proxy.example.com/v1}

Each ``litellm_params`` becomes a :class:`~rxllm.router._config.DeploymentSpec` (its provider and
model resolved through the registry), each model_name a :class:`~rxllm.router._config.ConfigSpec`,
the timing a :class:`~rxllm.router.Settings`. What LiteLLM has and rxllm does not implement is
named in one :class:`ConfigWarning` (and kept in :attr:`GatewayConfig.unsupported`); a mistake (a
key neither knows, a wrong type, a model without a provider rxllm knows, a fallback to no group, a
bad wildcard, a variable that is not set) is a :class:`~rxllm.errors.ConfigurationError` naming
the key's path. No error or repr shows a secret.

Choices where LiteLLM leaves room:

* ``openai/<model>`` with an ``api_base`` other than OpenAI's is the ``openai_compatible``
  provider (the registry's ``serves_others_of``), and is not sent ``OPENAI_API_KEY`` unasked;
* a provider's own key variable (``OPENAI_API_KEY``...) is read from the same environment as
  ``os.environ/`` values, at load time;
* ``input_cost_per_token``, ``output_cost_per_token`` and ``cache_read_input_token_cost`` (in
  ``litellm_params`` or ``model_info``) set the price (:func:`rxllm.pricing.set_price`) when a
  :class:`Catalog` is made; like LiteLLM, the ones in ``litellm_params`` are moved to
  ``model_info``;
* a LiteLLM key of ``litellm_params`` that is an option of the deployment's provider
  (``api_version`` for azure, ``organization`` for openai) is passed on; any other LiteLLM key
  there is unsupported; a key LiteLLM does not know is a default request parameter, checked by
  the provider (``temperature``, ``max_tokens``...);
* wildcards: ``*`` matches any text; an exact model_name wins, then the pattern with the most
  literal characters (then fewer ``*``, then the first); each ``*`` of ``litellm_params.model`` is
  filled by what the same ``*`` of the model_name matched, so both must have as many;
* fallbacks name model_names (or aliases); ``{"*": [...]}``, a bare name and
  ``default_fallbacks`` apply to every group without its own; ``router_settings`` wins over
  ``litellm_settings`` key by key;
* ``general_settings.master_key`` defaults to ``LITELLM_MASTER_KEY``, as in LiteLLM.
"""

from __future__ import annotations

import collections
import difflib
import functools
import importlib
import os
import re
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, NamedTuple, TypeVar

import msgspec

from .. import pricing, providers
from .._secrets import is_credential_header, masked_url, url_credentials
from ..cache import CacheSettings, cache_settings_from_litellm
from ..errors import ConfigurationError, Redactor
from ..router import STRATEGIES, Router, Settings
from ..router._config import ConfigSpec, DeploymentSpec, make_deployment

__all__ = [
    "Catalog",
    "ConfigWarning",
    "GatewayConfig",
    "GeneralSettings",
    "ModelAlias",
    "ModelEntry",
    "load_config",
    "mock_config",
    "parse_config",
]

Positive = Annotated[float, msgspec.Meta(gt=0, le=sys.float_info.max)]
Seconds = Annotated[float, msgspec.Meta(ge=0, le=sys.float_info.max)]
Count = Annotated[int, msgspec.Meta(ge=0)]
Name = Annotated[str, msgspec.Meta(min_length=1)]
Price = Annotated[float, msgspec.Meta(ge=0, le=sys.float_info.max)]

S = TypeVar("S", bound=msgspec.Struct)

#: How many names a wildcard may have registered on the router at once (the oldest go first).
MAX_WILDCARD_MATCHES = 256
#: How deep a config's values may nest (YAML anchors can make a value contain itself).
_MAX_DEPTH = 64
_ENV_PREFIX = "os.environ/"
#: LiteLLM's routing strategies that rxllm has under its own name.
_STRATEGY_NAMES = {"latency-based-routing": "lowest-latency"}


class ConfigWarning(UserWarning):
    """A config file uses LiteLLM settings rxllm does not implement (they are ignored)."""


class GeneralSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``general_settings``: the server's own settings (LiteLLM's names where it has one)."""

    #: What clients must send (``Authorization: Bearer`` / ``x-api-key``); None: no auth.
    master_key: Name | None = None
    #: The SQLite file holding virtual keys.
    database_path: Name = "rxllm_gateway.db"
    #: Seconds between keep-alive comments on a quiet stream.
    heartbeat_seconds: Positive = 15.0
    #: The largest request body accepted (LiteLLM's name).
    max_request_size_mb: Positive = 16.0
    #: Seconds requests in flight may finish in after SIGTERM.
    drain_seconds: Seconds = 30.0

    def __repr__(self) -> str:
        key = "***" if self.master_key else None
        return (
            f"GeneralSettings(master_key={key}, database_path={self.database_path!r}, "
            f"heartbeat_seconds={self.heartbeat_seconds}, "
            f"max_request_size_mb={self.max_request_size_mb}, drain_seconds={self.drain_seconds})"
        )


class ModelEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One ``model_list`` entry: the name clients ask for and the deployment serving it (its
    provider None when a wildcard leaves it to each request)."""

    model_name: str
    deployment: DeploymentSpec
    model_info: dict[str, Any] = msgspec.field(default_factory=dict)

    @property
    def is_pattern(self) -> bool:
        return "*" in self.model_name


class ModelAlias(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``router_settings.model_group_alias``: another name for a model_name."""

    model: Name
    #: Left out of :meth:`Catalog.names` (``GET /v1/models``).
    hidden: bool = False


class GatewayConfig(msgspec.Struct, frozen=True, kw_only=True):
    """A loaded config file."""

    models: tuple[ModelEntry, ...]
    #: The settings of the gateway's :class:`~rxllm.router.Router` (``Router(**asdict(...))``).
    router: Settings
    #: Per model_name (wildcards included): strategy and fallbacks (retries and timeout None:
    #: the router's).
    groups: dict[str, ConfigSpec]
    general: GeneralSettings
    #: The ``litellm_settings`` rxllm reads, as written (``cache`` and ``cache_params`` too).
    litellm_settings: dict[str, Any]
    #: LiteLLM settings the file uses that rxllm ignores, as dotted paths.
    unsupported: tuple[str, ...]
    source: str
    aliases: dict[str, ModelAlias] = msgspec.field(default_factory=dict)
    #: ``router_settings.redis_url``, kept for shared state across gateways.
    redis_url: str | None = None
    #: The response cache ``litellm_settings.cache`` / ``cache_params`` ask for (None: off).
    cache: CacheSettings | None = None

    def __repr__(self) -> str:
        redis = f", redis_url={masked_url(self.redis_url)!r}" if self.redis_url else ""
        return (
            f"GatewayConfig({self.source}: groups={list(self.groups)}, "
            f"unsupported={list(self.unsupported)}{redis})"
        )


# --- what a file may hold --------------------------------------------------------------------


class _File(msgspec.Struct, kw_only=True):
    model_list: list[Any] | None = None
    router_settings: dict[str, Any] | None = None
    litellm_settings: dict[str, Any] | None = None
    general_settings: dict[str, Any] | None = None
    #: Applied before anything is read (``_Parser.apply_environment``).
    environment_variables: Any = None


class _Entry(msgspec.Struct, kw_only=True):
    model_name: Name
    litellm_params: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    model_info: dict[str, Any] | None = None


class _Prices(msgspec.Struct, kw_only=True):
    input_cost_per_token: Price | None = None
    output_cost_per_token: Price | None = None
    cache_read_input_token_cost: Price | None = None


class _ModelInfo(_Prices, kw_only=True):
    id: str | int | None = None
    #: Whether this model group's requests use the response cache (None: its ``mode``).
    cache: bool | None = None


#: ``fallbacks: [{"gpt-4o": ["claude"]}, ...]`` (a bare name: a fallback of every group).
Fallbacks = list[dict[str, list[Name]] | Name]


class _Reliability(msgspec.Struct, kw_only=True):
    """What ``router_settings`` and ``litellm_settings`` both may set."""

    num_retries: Count | None = None
    allowed_fails: Count | None = None
    cooldown_time: Seconds | None = None
    fallbacks: Fallbacks | None = None
    context_window_fallbacks: Fallbacks | None = None
    default_fallbacks: list[Name] | None = None


class _RouterSettings(_Reliability, kw_only=True):
    routing_strategy: str | None = None
    timeout: Positive | None = None
    redis_url: str | None = None
    model_group_alias: dict[str, Any] | None = None


class _LiteLLMSettings(_Reliability, kw_only=True):
    drop_params: bool | None = None
    request_timeout: Positive | None = None
    cache: Any = None
    cache_params: dict[str, Any] | None = None


class _LiteLLMKeys(msgspec.Struct, frozen=True, kw_only=True):
    """``rxllm/_data/litellm_config_keys.json``: the keys LiteLLM knows, per section."""

    about: str
    top_level: frozenset[str]
    model_list_entry: frozenset[str]
    litellm_params: frozenset[str]
    router_settings: frozenset[str]
    litellm_settings: frozenset[str]
    general_settings: frozenset[str]
    routing_strategy: frozenset[str]


@functools.cache
def _litellm_keys() -> _LiteLLMKeys:
    """LiteLLM's config keys (read once)."""
    data = resources.files("rxllm").joinpath("_data").joinpath("litellm_config_keys.json")
    return msgspec.json.decode(data.read_bytes(), type=_LiteLLMKeys)


# --- loading ---------------------------------------------------------------------------------


def load_config(
    path: str | os.PathLike[str], *, environ: MutableMapping[str, str] | None = None
) -> GatewayConfig:
    """Read a config file (YAML, needs PyYAML: the ``gateway`` extra). ``environ`` is where
    ``os.environ/`` values are read and ``environment_variables`` written: the process's
    environment when None (for the server), a dict to leave it alone."""
    return parse_config(_read_yaml(Path(path)), source=os.fspath(path), environ=environ)


def parse_config(
    data: Any, *, source: str = "<config>", environ: MutableMapping[str, str] | None = None
) -> GatewayConfig:
    """A config file's parsed contents, checked (see :func:`load_config`)."""
    env: MutableMapping[str, str] = os.environ if environ is None else environ
    parser = _Parser(source, env)
    try:
        config = parser.parse(data)
    except ConfigurationError as exc:
        secrets = Redactor(_secrets(data, env) | parser.secrets)
        raise ConfigurationError(secrets(f"{source}: {exc.message}")) from None
    if config.unsupported:
        warnings.warn(_unsupported_text(config, parser.notes), ConfigWarning, stacklevel=2)
    return config


def mock_config() -> GatewayConfig:
    """``rxllm serve --mock``: ``mock/<anything>`` is the mock provider's model ``<anything>``,
    any other name ``X`` its model ``X``; no master key."""
    entries = [
        {"model_name": name, "litellm_params": {"model": "mock/*"}} for name in ("mock/*", "*")
    ]
    return parse_config({"model_list": entries}, source="<mock>", environ={})


def _read_yaml(path: Path) -> Any:
    """The YAML document at ``path`` (dates stay strings: ``api_version: 2024-06-01``)."""
    try:
        yaml: Any = importlib.import_module("yaml")
    except ImportError:
        raise ConfigurationError(
            "reading a config file needs PyYAML: pip install -e '.[gateway]' in the clone"
        ) from None
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"config file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"config file {path} cannot be read: {exc}") from None
    try:
        return yaml.load(text, Loader=_yaml_loader(yaml))
    except yaml.MarkedYAMLError as exc:  # its snippet of the file could hold a key: not shown
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigurationError(f"{path}: not valid YAML: {exc.problem}{where}") from None
    except yaml.YAMLError:
        raise ConfigurationError(f"{path}: not valid YAML") from None


@functools.cache
def _yaml_loader(yaml: Any) -> Any:
    """PyYAML's safe loader without its timestamp resolver."""
    loader: Any = type("_Loader", (yaml.SafeLoader,), {})
    loader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if not tag.endswith(":timestamp")]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return loader


# --- parsing ---------------------------------------------------------------------------------


class _Parser:
    """One parse: the environment, and what it found unsupported (paths, with notes)."""

    def __init__(self, source: str, environ: MutableMapping[str, str]) -> None:
        self.source = source
        self.environ = environ
        self.found: list[str] = []
        self.notes: dict[str, str] = {}
        self.secrets: set[str] = set()

    def parse(self, data: Any) -> GatewayConfig:
        if not isinstance(data, Mapping):
            raise ConfigurationError(
                "a config is a mapping of sections (model_list, router_settings, "
                f"litellm_settings, general_settings...), not {type(data).__name__}"
            )
        top = self.split(data, _File, "top_level", "")
        self.apply_environment(top.pop("environment_variables", None))
        file = _convert(top, _File, "")
        lite_data = self.section(file.litellm_settings, _LiteLLMSettings, "litellm_settings")
        lite = _convert(lite_data, _LiteLLMSettings, "litellm_settings")
        routing_data = self.section(file.router_settings, _RouterSettings, "router_settings")
        routing = _convert(routing_data, _RouterSettings, "router_settings")
        general = self.general(file.general_settings or {})
        models = self.models(file.model_list, lite.drop_params)
        names = list(dict.fromkeys(m.model_name for m in models))
        aliases = _aliases(routing.model_group_alias or {}, names)
        cache = cache_settings_from_litellm(
            lite_data, redis_url=routing.redis_url, environ=self.environ
        )
        if cache is not None:
            self.found += [f"litellm_settings.{path}" for path in cache.ignored]
        groups = self.groups(names, aliases, routing, lite)
        for name, cached in _cache_choices(models).items():
            groups[name] = msgspec.structs.replace(groups[name], cache=cached)
        return GatewayConfig(
            models=models,
            router=_settings(routing, lite),
            groups=groups,
            general=general,
            litellm_settings=lite_data,
            unsupported=tuple(dict.fromkeys(self.found)),
            source=self.source,
            aliases=aliases,
            redis_url=routing.redis_url,
            cache=cache,
        )

    # --- keys --------------------------------------------------------------------------------

    def split(
        self,
        data: Mapping[str, Any],
        struct: type[msgspec.Struct],
        section: str,
        path: str | None = None,
    ) -> dict[str, Any]:
        """The keys of ``data`` rxllm implements (``struct``'s fields); LiteLLM's others are
        noted unsupported; any other key is a mistake."""
        path = section if path is None else path
        fields = struct.__struct_fields__
        known: frozenset[str] = getattr(_litellm_keys(), section)
        kept: dict[str, Any] = {}
        for key, value in data.items():
            if key in fields:
                kept[key] = value
            elif key in known:
                self.found.append(_join(path, key))
            else:
                raise ConfigurationError(_unknown_key(key, path, fields, known, section))
        return kept

    def section(
        self, data: Mapping[str, Any] | None, struct: type[msgspec.Struct], name: str
    ) -> dict[str, Any]:
        """A section's keys rxllm implements, their ``os.environ/`` values read (the ignored
        ones are not: their variables need not be set)."""
        kept: dict[str, Any] = self.resolve(self.split(data or {}, struct, name), name)
        return kept

    def unsupported(self, path: str, note: str | None = None) -> None:
        self.found.append(path)
        if note:
            self.notes[path] = note

    # --- the environment ---------------------------------------------------------------------

    def apply_environment(self, variables: Any) -> None:
        """``environment_variables``: set in the environment (their ``os.environ/`` values
        read from it first); an empty one is left unset."""
        if variables is None:
            return
        if not isinstance(variables, Mapping):
            raise ConfigurationError("environment_variables must be a mapping of NAME: value")
        for name, value in variables.items():
            where = f"environment_variables.{name}"
            if not isinstance(value, (str, int, float, bool, type(None))):
                raise ConfigurationError(f"{where} must be a string, not {type(value).__name__}")
            found = self.resolve(value, where)
            if found is not None:
                self.environ[str(name)] = str(found)

    def resolve(self, value: Any, path: str, depth: int = 0) -> Any:
        """``value`` with every ``os.environ/NAME`` string replaced by the variable."""
        if depth > _MAX_DEPTH:
            raise ConfigurationError(f"{path or 'the config'} nests too deeply")
        if isinstance(value, str) and value.startswith(_ENV_PREFIX):
            name = value[len(_ENV_PREFIX) :]
            found = self.environ.get(name) if name else None
            if found is None:
                raise ConfigurationError(
                    f"{path}: environment variable {name or '(none named)'} is not set "
                    f"(the config reads it with {value})"
                )
            if is_credential_header(path.rpartition(".")[2]):
                self.secrets.add(found)
            return found
        if isinstance(value, Mapping):
            return {k: self.resolve(v, _join(path, k), depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value)]
        return value

    # --- sections ----------------------------------------------------------------------------

    def general(self, data: Mapping[str, Any]) -> GeneralSettings:
        """``general_settings``; the master key defaults to ``LITELLM_MASTER_KEY``."""
        kept = self.section(data, GeneralSettings, "general_settings")
        if kept.get("master_key") is None and self.environ.get("LITELLM_MASTER_KEY"):
            kept["master_key"] = self.environ["LITELLM_MASTER_KEY"]
            self.secrets.add(kept["master_key"])
        return _convert(kept, GeneralSettings, "general_settings")

    def models(self, entries: list[Any] | None, drop: bool | None) -> tuple[ModelEntry, ...]:
        """``model_list``: its entries, each checked as the router will."""
        if not entries:
            raise ConfigurationError("model_list: no models; add at least one model_name")
        models = tuple(
            self.entry(entry, f"model_list[{i}]", drop) for i, entry in enumerate(entries)
        )
        _check_ids(models)
        return models

    def entry(self, data: Any, where: str, drop: bool | None) -> ModelEntry:
        """One ``model_list`` entry."""
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"{where} must be a mapping (model_name, litellm_params)")
        kept = self.split(data, _Entry, "model_list_entry", where)
        resolved = {
            k: v if k in ("litellm_params", "params") else self.resolve(v, _join(where, k))
            for k, v in kept.items()
        }
        entry = _convert(resolved, _Entry, where)
        if entry.litellm_params is not None and entry.params is not None:
            raise ConfigurationError(f"{where}: give litellm_params or params, not both")
        key = "params" if entry.params is not None else "litellm_params"
        params = entry.params if entry.params is not None else entry.litellm_params
        if params is None:
            raise ConfigurationError(f"{where}.litellm_params is required (model: provider/model)")
        info = dict(entry.model_info or {})
        model = self.resolve(params.get("model"), f"{where}.{key}.model")
        if not isinstance(model, str) or not model:
            raise ConfigurationError(f"{where}.{key}.model is required: a string, provider/model")
        spec = self.deployment(params, model, info, f"{where}.{key}", drop)
        checked = _convert(info, _ModelInfo, f"{where}.model_info")
        if checked.id is not None:
            spec = msgspec.structs.replace(spec, id=str(checked.id))
        _check_wildcard(entry.model_name, model, f"{where}.{key}.model")
        if spec.provider is not None:
            self.validate(spec, entry.model_name, f"{where}.{key}")
        return ModelEntry(model_name=entry.model_name, deployment=spec, model_info=info)

    def deployment(
        self,
        params: Mapping[str, Any],
        model: str,
        info: dict[str, Any],
        where: str,
        drop: bool | None,
    ) -> DeploymentSpec:
        """A ``litellm_params`` mapping as the router's spec: its provider and model resolved
        (None and ``model`` as written when a wildcard leaves it to each request)."""
        fields = DeploymentSpec.__struct_fields__
        spec: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        litellm: dict[str, Any] = {}
        named_by = "provider"
        if "provider" in params and "custom_llm_provider" in params:
            raise ConfigurationError(f"{where}: give provider or custom_llm_provider, not both")
        for key, raw in params.items():
            if _litellm_only(key):
                litellm[key] = raw  # its variable is read only if it is passed on
                continue
            value = model if key == "model" else self.resolve(raw, _join(where, key))
            if key == "custom_llm_provider":
                spec["provider"], named_by = value, key
            elif key in fields:
                spec[key] = value
            elif key in _Prices.__struct_fields__:
                _convert({key: value}, _Prices, where)
                info.setdefault(key, value)
            else:
                extra[key] = value
        checked = _convert(spec, DeploymentSpec, where)
        resolved = _provider(checked.provider, model, checked.api_base, where, named_by)
        provider, model = resolved if resolved else (None, model)
        options = providers.get_provider(provider).option_names if provider else frozenset()
        for key, value in litellm.items():
            if key in options:
                extra[key] = self.resolve(value, _join(where, key))
            else:
                self.unsupported(f"{where}.{key}")
        return msgspec.structs.replace(
            checked,
            provider=provider,
            model=model,
            api_key=checked.api_key or self.provider_key(provider),
            drop_params=drop if checked.drop_params is None else checked.drop_params,
            params={**checked.params, **extra},
        )

    def provider_key(self, provider: str | None) -> str | None:
        """The provider's own key variable (``OPENAI_API_KEY``...), from this environment."""
        if provider is None:
            return None
        for name in providers.provider_info(provider).env_keys:
            if self.environ.get(name):
                return self.environ[name]
        return None

    def validate(self, spec: DeploymentSpec, name: str, where: str) -> None:
        """Check a deployment as ``register`` will (key, parameters, CA bundle), and that it
        has a base URL."""
        make_deployment(_register_dict(spec), default_id=name, where=where)
        info = providers.provider_info(spec.provider or "")
        variables = info.env_api_base
        names = (variables,) if isinstance(variables, str) else variables or ()
        if not (spec.api_base or info.default_api_base or any(self.environ.get(v) for v in names)):
            raise ConfigurationError(f"{where}.api_base is required for {info.name}")

    def groups(
        self,
        names: list[str],
        aliases: Mapping[str, ModelAlias],
        routing: _RouterSettings,
        lite: _LiteLLMSettings,
    ) -> dict[str, ConfigSpec]:
        """Each model_name's policy: the strategy, its fallbacks."""
        strategy = self.strategy(routing.routing_strategy)
        exact = {n: n for n in names if "*" not in n} | {a: v.model for a, v in aliases.items()}
        tables = {}
        for key in ("fallbacks", "context_window_fallbacks"):
            section = "router_settings" if getattr(routing, key) is not None else "litellm_settings"
            value = getattr(routing, key) if section == "router_settings" else getattr(lite, key)
            tables[key] = _fallbacks(value, f"{section}.{key}", names, exact)
        section = "router_settings" if routing.default_fallbacks is not None else "litellm_settings"
        default = _first(routing.default_fallbacks, lite.default_fallbacks) or []
        tables["fallbacks"].setdefault(
            "*", tuple(_target(t, f"{section}.default_fallbacks", exact) for t in default)
        )
        return {
            name: ConfigSpec(
                strategy=strategy,
                fallbacks=_chain(tables["fallbacks"], name),
                context_window_fallbacks=_chain(tables["context_window_fallbacks"], name),
            )
            for name in names
        }

    def strategy(self, name: str | None) -> Any:
        """rxllm's strategy for LiteLLM's ``routing_strategy`` (simple-shuffle for the ones
        rxllm lacks)."""
        if name is None:
            return "simple-shuffle"
        chosen = _STRATEGY_NAMES.get(name, name)
        if chosen in STRATEGIES:
            return chosen
        if name in _litellm_keys().routing_strategy:
            self.unsupported("router_settings.routing_strategy", f"{name}: simple-shuffle is used")
            return "simple-shuffle"
        raise ConfigurationError(
            f"router_settings.routing_strategy: unknown strategy {name!r}; choose one of "
            "simple-shuffle, least-busy, latency-based-routing (rxllm's lowest-latency)"
        )


# --- helpers of the parse --------------------------------------------------------------------


def _provider(
    provider: str | None, model: str, api_base: str | None, where: str, named_by: str
) -> tuple[str, str] | None:
    """(provider, model) as LiteLLM reads ``model`` (and ``custom_llm_provider``), through the
    registry; None when a ``*`` stands where the provider goes (decided per request)."""
    if provider is not None:
        found = providers.provider_for(provider, api_base)
        if found is None:
            raise ConfigurationError(
                f"{where}.{named_by}: unknown provider {provider!r}; {_known_providers()}"
            )
        head, sep, tail = model.partition("/")
        named = sep and tail and providers.provider_for(head, api_base) == found
        return found, tail if named else model
    head, sep, tail = model.partition("/")
    if sep and tail:
        found = providers.provider_for(head, api_base)
        if found is not None:
            return found, tail
    if "*" in head:
        return None
    try:
        name, model_name, _ = providers.resolve_model(None, model)
    except ConfigurationError:
        what = (
            f"unknown provider {head!r} in {model!r}"
            if sep
            else f"no provider in {model!r}: write it as '<provider>/<model>'"
        )
        raise ConfigurationError(f"{where}.model: {what}; {_known_providers()}") from None
    return providers.provider_for(name, api_base) or name, model_name


def _litellm_only(key: str) -> bool:
    """A LiteLLM key of ``litellm_params`` that rxllm's spec has not (passed on only as an
    option of the provider): ``stream_timeout``, ``tags``, ``api_version``, a price..."""
    if key in DeploymentSpec.__struct_fields__ or key in _Prices.__struct_fields__:
        return False
    known = key in _litellm_keys().litellm_params and key != "custom_llm_provider"
    return known or "cost" in key or "pricing" in key


def _known_providers() -> str:
    names = providers.list_providers()
    aliases = sorted(a for n in names for a in providers.provider_info(n).aliases)
    return f"rxllm's providers: {', '.join(names)} (and LiteLLM's {', '.join(aliases)})"


def _check_wildcard(name: str, model: str, where: str) -> None:
    """Each ``*`` of the model is filled by what the same ``*`` of the model_name matched."""
    stars = model.count("*")
    if stars and stars != name.count("*"):
        raise ConfigurationError(
            f"{where}: {model!r} has {stars} '*' but model_name {name!r} has {name.count('*')}: "
            "each '*' of the model is filled by what the same '*' of the model_name matched"
        )


def _check_ids(models: Sequence[ModelEntry]) -> None:
    """Deployment ids (``model_info.id``) differ within a group."""
    seen: dict[tuple[str, str], int] = {}
    for i, entry in enumerate(models):
        if entry.deployment.id is None:
            continue
        key = (entry.model_name, str(entry.deployment.id))
        if key in seen:
            raise ConfigurationError(
                f"model_list[{i}].model_info.id {key[1]!r} is model_list[{seen[key]}]'s too"
            )
        seen[key] = i


def _aliases(data: Mapping[str, Any], names: list[str]) -> dict[str, ModelAlias]:
    """``model_group_alias``: each alias names an exact model_name and is not one itself."""
    aliases = {}
    for alias, value in data.items():
        where = f"router_settings.model_group_alias.{alias}"
        target = {"model": value} if isinstance(value, str) else value
        checked = _convert(target, ModelAlias, where)
        if checked.model not in names or "*" in checked.model:
            raise ConfigurationError(f"{where}: {checked.model!r} is not a model_name")
        if alias in names:
            raise ConfigurationError(f"{where}: {alias!r} is a model_name already")
        aliases[alias] = checked
    return aliases


def _fallbacks(
    value: Fallbacks | None, where: str, names: list[str], exact: Mapping[str, str]
) -> dict[str, tuple[str, ...]]:
    """A fallbacks list as ``{model_name or "*": (groups...)}``, every name checked."""
    table: dict[str, tuple[str, ...]] = {}
    for i, item in enumerate(value or ()):
        here = f"{where}[{i}]"
        pairs = {"*": [item]} if isinstance(item, str) else item
        for group, targets in pairs.items():
            if group != "*" and group not in names:
                raise ConfigurationError(f"{here}: {group!r} is not a model_name of model_list")
            chain = tuple(_target(t, here, exact) for t in targets)
            if group in chain:
                raise ConfigurationError(f"{here}: {group!r} falls back to itself")
            table[group] = table.get(group, ()) + chain
    return table


def _target(name: str, where: str, exact: Mapping[str, str]) -> str:
    """The group a fallback names (an exact model_name, or an alias of one)."""
    if name not in exact:
        known = ", ".join(repr(n) for n in exact) or "none"
        raise ConfigurationError(
            f"{where}: no model group {name!r} to fall back to (model_names: {known})"
        )
    return exact[name]


def _chain(table: Mapping[str, tuple[str, ...]], name: str) -> tuple[str, ...]:
    """A group's fallbacks: its own, else the ones for every group (without itself)."""
    own = table.get(name)
    if own is not None:
        return own
    return tuple(t for t in table.get("*", ()) if t != name)


def _settings(routing: _RouterSettings, lite: _LiteLLMSettings) -> Settings:
    """The router's settings: ``router_settings`` over ``litellm_settings`` over rxllm's."""
    chosen = {
        "num_retries": _first(routing.num_retries, lite.num_retries),
        "timeout": _first(routing.timeout, lite.request_timeout),
        "allowed_fails": _first(routing.allowed_fails, lite.allowed_fails),
        "cooldown_time": _first(routing.cooldown_time, lite.cooldown_time),
    }
    return msgspec.structs.replace(
        Settings(), **{k: v for k, v in chosen.items() if v is not None}
    ).checked()


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def _cache_choices(models: Sequence[ModelEntry]) -> dict[str, bool]:
    """Model groups whose ``model_info.cache`` opts them in or out of the response cache."""
    chosen: dict[str, bool] = {}
    for entry in models:
        cached = entry.model_info.get("cache")
        if isinstance(cached, bool):
            chosen.setdefault(entry.model_name, cached)
    return chosen


def _register_dict(spec: DeploymentSpec) -> dict[str, Any]:
    """A spec as ``register(deployments=[...])`` takes it (default parameters flat)."""
    fields = {f: getattr(spec, f) for f in spec.__struct_fields__ if f != "params"}
    return {**spec.params, **{k: v for k, v in fields.items() if v is not None}}


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _unknown_key(
    key: Any, path: str, fields: Sequence[str], known: frozenset[str], section: str
) -> str:
    """The error for a key neither rxllm nor LiteLLM has (a typo, likely)."""
    close = difflib.get_close_matches(str(key), [*fields, *known], n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    if section == "model_list_entry" and not _is_entry_key(str(key)):
        hint = " (it belongs under litellm_params)"
    where = path or "the top level"
    return (
        f"{_join(path, key)}: unknown key{hint}; {where} takes {', '.join(fields)} "
        "(and LiteLLM's keys, which rxllm ignores with a warning)"
    )


def _is_entry_key(key: str) -> bool:
    """Whether a key is no deployment setting (misplaced beside ``litellm_params``)."""
    return key not in DeploymentSpec.__struct_fields__ and key not in _litellm_keys().litellm_params


def _unsupported_text(config: GatewayConfig, notes: Mapping[str, str]) -> str:
    listed = ", ".join(
        f"{path} ({notes[path]})" if path in notes else path for path in config.unsupported
    )
    return f"{config.source}: rxllm ignores these LiteLLM settings it does not implement: {listed}"


def _secrets(value: Any, environ: Mapping[str, str], key: str = "", depth: int = 0) -> set[str]:
    """The secrets in a config: strings under credential-like keys, a URL's user info, and
    the master key variable."""
    found = {environ["LITELLM_MASTER_KEY"]} if environ.get("LITELLM_MASTER_KEY") else set()
    if depth > _MAX_DEPTH:
        return found
    if isinstance(value, str) and not value.startswith(_ENV_PREFIX):
        secret = {value} if is_credential_header(key) else set()
        return found | set(url_credentials(value)) | secret
    if isinstance(value, Mapping):
        items: Iterator[tuple[str, Any]] = ((str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        items = ((key, v) for v in value)
    else:
        return found
    for k, v in items:
        found |= _secrets(v, {}, k, depth + 1)
    return found


# --- msgspec errors as key paths -------------------------------------------------------------

#: What a field must be, for errors (others are described from msgspec's words).
_EXPECTED = {
    "rpm": "a positive integer",
    "tpm": "a positive integer",
    "weight": "a positive number",
    "timeout": "positive seconds",
    "request_timeout": "positive seconds",
    "heartbeat_seconds": "positive seconds",
    "drain_seconds": "seconds >= 0",
    "cooldown_time": "seconds >= 0",
    "num_retries": "an integer >= 0",
    "allowed_fails": "an integer >= 0",
    "max_request_size_mb": "a positive number of megabytes",
    "drop_params": "true or false",
    "fallbacks": "a list of {model_name: [model_name, ...]}",
    "context_window_fallbacks": "a list of {model_name: [model_name, ...]}",
    "default_fallbacks": "a list of model_names",
    "input_cost_per_token": "a price >= 0 (USD per token)",
    "output_cost_per_token": "a price >= 0 (USD per token)",
    "cache_read_input_token_cost": "a price >= 0 (USD per token)",
}
_TYPES = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "object": "a mapping",
    "array": "a list",
}
_AT = re.compile(r" - at `\$(.*)`$")
_STEP = re.compile(r"\.(\w+)|\[(\d+)\]|\[\.\.\.\]")
_EXPECTED_TYPE = re.compile(r"^Expected `([^`]+)`(?:, got `[^`]+`)?(.*)$")
_MISSING = re.compile(r"^Object missing required field `(\w+)`")
_UNKNOWN = re.compile(r"^Object contains unknown field `([^`]+)`")
_MISSING_VALUE = object()


def _convert(data: Any, cls: type[S], where: str) -> S:
    """``msgspec.convert`` (numbers and booleans may be text, as environment variables are);
    its error becomes a ``ConfigurationError`` naming the key's path (and the value, unless the
    key could hold a secret)."""
    try:
        return msgspec.convert(data, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigurationError(_explain(str(exc), data, where)) from None


def _explain(message: str, data: Any, where: str) -> str:
    found = _AT.search(message)
    detail = message[: found.start()] if found else message
    steps = found.group(1) if found else ""
    path = where + steps if where else steps.lstrip(".")
    missing = _MISSING.match(detail)
    if missing:
        return f"{_join(path, missing.group(1))} is required"
    unknown = _UNKNOWN.match(detail)
    if unknown:
        return f"{_join(path, unknown.group(1))}: unknown key"
    names = [m.group(1) for m in _STEP.finditer(steps) if m.group(1)]
    field = names[-1] if names else ""
    expected = _EXPECTED.get(field) or _describe(detail)
    if expected is None:
        return f"{path}: {detail}"
    value = _lookup(data, steps)
    if value is _MISSING_VALUE or (field not in _EXPECTED and is_credential_header(field)):
        return f"{path} must be {expected}"
    return f"{path} must be {expected}, not {value!r}"


def _describe(detail: str) -> str | None:
    """msgspec's "Expected `int | null` >= 1" as "an integer >= 1"."""
    found = _EXPECTED_TYPE.match(detail)
    if found is None:
        return None
    kinds = [_TYPES.get(t, t) for t in found.group(1).split(" | ") if t != "null"]
    return " or ".join(kinds) + found.group(2)


def _lookup(data: Any, steps: str) -> Any:
    """The value at msgspec's path ``.a[0].b`` in ``data`` (unknown for a mapping's key)."""
    for step in _STEP.finditer(steps):
        key, index = step.group(1), step.group(2)
        if key is not None and isinstance(data, Mapping) and key in data:
            data = data[key]
        elif index is not None and isinstance(data, list) and int(index) < len(data):
            data = data[int(index)]
        else:
            return _MISSING_VALUE
    return data


# --- the configured models as the server sees them -------------------------------------------


class _Pattern(NamedTuple):
    name: str
    regex: re.Pattern[str]
    entries: tuple[ModelEntry, ...]


class Catalog:
    """The configured models as the server sees them."""

    def __init__(self, config: GatewayConfig, router: Router | None = None) -> None:
        """Register every model_name (but wildcards, registered per match) on ``router``, a new
        :class:`~rxllm.router.Router` with the config's settings when None; set the prices."""
        self.config = config
        cache = config.cache.build() if config.cache is not None else None
        self.router = router or Router(
            **msgspec.structs.asdict(config.router), cache=cache, redis_url=config.redis_url
        )
        groups: dict[str, list[ModelEntry]] = {}
        for entry in config.models:
            groups.setdefault(entry.model_name, []).append(entry)
        self._exact = {n: tuple(e) for n, e in groups.items() if "*" not in n}
        self._patterns = sorted(
            (_Pattern(n, _wildcard_regex(n), tuple(e)) for n, e in groups.items() if "*" in n),
            key=lambda p: (p.name.count("*") - len(p.name), p.name.count("*")),
        )
        self._matched: collections.OrderedDict[str, tuple[DeploymentSpec, ...]] = (
            collections.OrderedDict()
        )
        self._lock = threading.Lock()
        for name, entries in self._exact.items():
            self._register(name, name, tuple(e.deployment for e in entries))
            for entry in entries:
                _set_price(entry.deployment, entry.model_info)

    def names(self) -> list[str]:
        """The exact model_names and the aliases not hidden, for ``GET /v1/models``."""
        visible = [a for a, v in self.config.aliases.items() if not v.hidden]
        return [*self._exact, *visible]

    def resolve(self, model: str) -> str | None:
        """The router configuration serving ``model``: its model_name, an alias's, or a
        wildcard's match (registered on first use; at most ``MAX_WILDCARD_MATCHES`` at once);
        None for an unknown model. A match that cannot be served (no provider, no key) is a
        ``ConfigurationError`` saying why."""
        if model in self._exact:
            return model
        alias = self.config.aliases.get(model)
        if alias is not None:
            return alias.model
        if "*" in model:  # a pattern is no model
            return None
        with self._lock:
            if model in self._matched:
                self._matched.move_to_end(model)
                return model
            match = self._match(model)
            if match is None:
                return None
            pattern, groups = match
            specs = tuple(_filled(e, groups, model) for e in pattern.entries)
            self._register(model, pattern.name, specs)
            for spec, entry in zip(specs, pattern.entries, strict=True):
                _set_price(spec, entry.model_info)
            self._matched[model] = specs
            while len(self._matched) > MAX_WILDCARD_MATCHES:
                self.router.unregister(self._matched.popitem(last=False)[0])
        return model

    def deployments(self, name: str) -> list[DeploymentSpec]:
        """The deployments serving ``name`` (any name :meth:`resolve` takes); [] if none."""
        resolved = self.resolve(name)
        if resolved is None:
            return []
        if resolved in self._exact:
            return [e.deployment for e in self._exact[resolved]]
        return list(self._matched.get(resolved, ()))

    def _match(self, model: str) -> tuple[_Pattern, tuple[str, ...]] | None:
        """The most specific pattern matching ``model``, and what its ``*`` matched."""
        for pattern in self._patterns:
            found = pattern.regex.fullmatch(model)
            if found is not None:
                return pattern, found.groups()
        return None

    def _register(self, name: str, group: str, specs: tuple[DeploymentSpec, ...]) -> None:
        policy = self.config.groups[group]
        self.router.register(
            name,
            deployments=[_register_dict(s) for s in specs],
            strategy=policy.strategy,
            num_retries=policy.num_retries,
            timeout=policy.timeout,
            fallbacks=list(policy.fallbacks),
            context_window_fallbacks=list(policy.context_window_fallbacks),
            cache=policy.cache,
        )


def _wildcard_regex(pattern: str) -> re.Pattern[str]:
    """``*`` matches any text (each one a group); everything else is literal."""
    return re.compile("(.*)".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def _filled(entry: ModelEntry, groups: Sequence[str], requested: str) -> DeploymentSpec:
    """An entry's deployment for one match: each ``*`` of its model filled in order."""
    spec = entry.deployment
    model = spec.model or ""
    for text in groups:
        model = model.replace("*", text, 1)
    where = f"model_name {entry.model_name!r} matching {requested!r}: litellm_params"
    if spec.provider is not None:
        return msgspec.structs.replace(spec, model=model)
    resolved = _provider(None, model, spec.api_base, where, "provider")
    if resolved is None:
        raise ConfigurationError(f"{where}: no provider in {model!r}")
    return msgspec.structs.replace(spec, provider=resolved[0], model=resolved[1])


def _set_price(spec: DeploymentSpec, info: Mapping[str, Any]) -> None:
    """``input_cost_per_token``... of ``model_info`` as the deployment's price (per million)."""
    prices = msgspec.convert({k: info[k] for k in _Prices.__struct_fields__ if k in info}, _Prices)
    if prices.input_cost_per_token is None and prices.output_cost_per_token is None:
        return
    if spec.provider is None or spec.model is None or "*" in spec.model:
        return
    shipped = pricing.price_of(spec.provider, spec.model)
    per_token = (prices.input_cost_per_token, prices.output_cost_per_token)
    given = [None if p is None else p * 1_000_000 for p in per_token]
    cached = prices.cache_read_input_token_cost
    pricing.set_price(
        spec.provider,
        spec.model,
        input=given[0] if given[0] is not None else (shipped.input if shipped else 0.0),
        output=given[1] if given[1] is not None else (shipped.output if shipped else 0.0),
        cached_input=None if cached is None else cached * 1_000_000,
    )
