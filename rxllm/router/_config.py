"""What ``register`` stores: deployments and named configurations, validated up front.

Everything a configuration can get wrong (unknown provider, no model, no key, an unknown
setting, an unknown strategy, an empty group) raises :class:`ConfigurationError` at ``register``
time, not at the first request. Keys are held here and nowhere else; every ``repr`` and every
description masks them.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar, get_args

import msgspec

from .. import providers
from .._checks import CallOptions, check_verify
from .._secrets import is_credential_header, masked_url
from ..errors import ConfigurationError, UnsupportedParamsError
from ._health import DeploymentState

__all__ = [
    "STRATEGIES",
    "ConfigSpec",
    "Deployment",
    "DeploymentSpec",
    "RouteConfig",
    "describe",
    "make_config",
    "make_deployment",
]

#: The load-balancing strategies a group of deployments may use.
Strategy = Literal["simple-shuffle", "least-busy", "lowest-latency"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)

#: Settings of a deployment that are not request parameters.
_CALL_SETTINGS = ("timeout", "drop_params", "extra_headers", "extra_body", "verify")
_SECRET_WORDS = frozenset(
    {"key", "token", "secret", "password", "authorization", "credential", "credentials"}
)

#: A positive, finite number (seconds, a weight).
Positive = Annotated[float, msgspec.Meta(gt=0, le=sys.float_info.max)]
Count = Annotated[int, msgspec.Meta(gt=0)]
Name = Annotated[str, msgspec.Meta(min_length=1)]

S = TypeVar("S", bound=msgspec.Struct)


class DeploymentSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One deployment as a configuration gives it: what ``register`` takes (keyword settings or
    a dict of ``deployments=``), and a gateway config file's ``model_list`` entry holds under
    its params (LiteLLM's ``litellm_params``). Any other key is a default request parameter
    or a provider option (``temperature``, ``api_version``...): :meth:`from_mapping` puts it
    in ``params``."""

    provider: str | None = None
    model: str | None = None
    api_key: str | None = None
    api_base: str | None = None
    id: str | int | None = None
    weight: Positive = 1.0
    rpm: Count | None = None
    tpm: Count | None = None
    #: Call settings: None leaves the configuration's (or rxllm's) default.
    timeout: Positive | None = None
    drop_params: bool | None = None
    extra_headers: Mapping[str, Any] | None = None
    extra_body: Mapping[str, Any] | None = None
    #: True, False, a CA bundle path or an ``ssl.SSLContext`` (checked by ``check_verify``).
    verify: Any = None
    #: Default request parameters and provider options (the request's own win).
    params: dict[str, Any] = msgspec.field(default_factory=dict)

    def __repr__(self) -> str:
        base = masked_url(self.api_base) if self.api_base else None
        return f"DeploymentSpec({self.provider}/{self.model} @ {base})"

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any], where: str) -> DeploymentSpec:
        """The spec of a flat dict (its unknown keys are ``params``); a field of the wrong
        type is a ``ConfigurationError`` naming it."""
        fields = cls.__struct_fields__
        known = {k: v for k, v in spec.items() if k in fields and k != "params"}
        known["params"] = {k: v for k, v in spec.items() if k not in fields or k == "params"}
        return convert(known, cls, where)


class ConfigSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A named configuration's policy (``register``'s keyword arguments besides its
    deployments): ``num_retries`` and ``timeout`` None leave the router's."""

    strategy: Strategy = "simple-shuffle"
    num_retries: Annotated[int, msgspec.Meta(ge=0)] | None = None
    timeout: Positive | None = None
    fallbacks: tuple[Name, ...] = ()
    context_window_fallbacks: tuple[Name, ...] = ()
    #: Whether requests use the router's response cache (None: as the cache's ``mode`` says).
    cache: bool | None = None


#: What a field must be, for conversion errors (others get msgspec's own words).
_EXPECTED = {
    "weight": "a positive number",
    "rpm": "a positive integer",
    "tpm": "a positive integer",
    "timeout": "positive seconds",
    "num_retries": "an integer >= 0",
    "fallbacks": "configuration names",
    "context_window_fallbacks": "configuration names",
    "cache": "true or false",
}
_PATH = re.compile(r"`\$\.(\w+)(?:\[(\d+)\])?")


def convert(data: Mapping[str, Any], cls: type[S], where: str) -> S:
    """``msgspec.convert``; its error becomes a ``ConfigurationError`` naming the field (and
    the value, for fields that cannot hold a secret)."""
    try:
        return msgspec.convert(data, cls)
    except msgspec.ValidationError as exc:
        message = str(exc)
        found = _PATH.search(message)
        if found is None:
            raise ConfigurationError(f"{where}: {message}") from None
        field, index = found.group(1), found.group(2)
        value = data.get(field)
        if index is not None and isinstance(value, Sequence):
            value = value[int(index)]
        if field == "strategy":
            raise ConfigurationError(
                f"{where}: unknown strategy {value!r}; choose one of {', '.join(STRATEGIES)}"
            ) from None
        expected = _EXPECTED.get(field)
        if expected is None:
            detail = message.partition(" - at ")[0]
            raise ConfigurationError(f"{where}: {field}: {detail}") from None
        raise ConfigurationError(f"{where}: {field} must be {expected}, not {value!r}") from None


Route = Callable[[dict[str, Any]], Any]


class Deployment:
    """One provider + model + key + base (+ limits) that a configuration can send to."""

    __slots__ = ("id", "model", "options", "provider", "provider_inferred", "spec", "state")

    def __init__(
        self,
        *,
        id: str,
        provider: str,
        model: str,
        spec: DeploymentSpec,
        provider_inferred: bool = False,
    ) -> None:
        self.id = id
        self.provider = provider
        #: True when no provider was named and the model's name told it (``"gpt-4o"``).
        self.provider_inferred = provider_inferred
        self.model = model
        #: The deployment as configured (its ``timeout`` None: the configuration's).
        self.spec = spec
        #: What each request sends with: provider, model, key, base, settings and default
        #: parameters (a request's own parameters and the timeout are added per attempt).
        self.options = CallOptions(
            provider=provider,
            model=model,
            api_key=spec.api_key,
            api_base=spec.api_base,
            drop_params=bool(spec.drop_params),
            extra_headers=spec.extra_headers,
            extra_body=spec.extra_body,
            verify=True if spec.verify is None else spec.verify,
            params=spec.params,
        )
        #: What the router has learnt about this deployment (guarded by the router's lock).
        self.state = DeploymentState()

    @property
    def api_key(self) -> str | None:
        return self.spec.api_key

    @property
    def api_base(self) -> str | None:
        return self.spec.api_base

    @property
    def weight(self) -> float:
        return self.spec.weight

    @property
    def rpm(self) -> int | None:
        return self.spec.rpm

    @property
    def tpm(self) -> int | None:
        return self.spec.tpm

    def call_options(self, timeout: float | None, params: Mapping[str, Any]) -> CallOptions:
        """The options of one attempt: this deployment's, its timeout else ``timeout`` (the
        configuration's), its default parameters overridden by the request's ``params``."""
        own = self.spec.timeout
        return msgspec.structs.replace(
            self.options,
            timeout=timeout if own is None else own,
            params={**self.spec.params, **params},
        )

    def __repr__(self) -> str:
        base = f" @ {masked_url(self.api_base)}" if self.api_base else ""
        return f"Deployment({self.id}: {self.provider}/{self.model}{base})"

    def describe(self) -> dict[str, Any]:
        """A plain dict of this deployment, safe to print or log (secrets masked)."""
        out: dict[str, Any] = {
            "id": self.id,
            "provider": self.provider,
            "provider_source": _provider_source(self.provider_inferred),
            "model": self.model,
            "api_base": masked_url(self.api_base) if self.api_base else None,
            "api_key": "***" if self.api_key else None,
            "weight": self.weight,
            "rpm": self.rpm,
            "tpm": self.tpm,
        }
        settings = {k: getattr(self.spec, k) for k in _CALL_SETTINGS}
        out.update(_masked({k: v for k, v in settings.items() if v is not None}))
        out.update(_masked(self.spec.params))
        return out


class RouteConfig:
    """A named configuration: a group of deployments (or a route function) and its policy."""

    __slots__ = (
        "cache",
        "context_window_fallbacks",
        "deployments",
        "dynamic",
        "fallbacks",
        "name",
        "num_retries",
        "route",
        "route_configs",
        "strategy",
        "timeout",
    )

    def __init__(
        self,
        *,
        name: str,
        deployments: tuple[Deployment, ...],
        route: Route | None,
        route_configs: dict[str, dict[str, Any]],
        strategy: str,
        num_retries: int | None,
        fallbacks: tuple[str, ...],
        context_window_fallbacks: tuple[str, ...],
        timeout: float | None,
        cache: bool | None = None,
    ) -> None:
        self.name = name
        self.deployments = deployments
        self.route = route
        self.route_configs = route_configs
        self.strategy = strategy
        #: None: the router's default.
        self.num_retries = num_retries
        self.fallbacks = fallbacks
        self.context_window_fallbacks = context_window_fallbacks
        #: None: the router's default.
        self.timeout = timeout
        #: Whether requests use the router's response cache (None: the cache's ``mode``).
        self.cache = cache
        #: Deployments made from a route function's answers, kept so their health is tracked.
        self.dynamic: dict[str, Deployment] = {}

    def __repr__(self) -> str:
        what = "route" if self.route is not None else f"{len(self.deployments)} deployment(s)"
        return f"RouteConfig({self.name!r}, {what}, strategy={self.strategy!r})"


def describe(config: RouteConfig) -> dict[str, Any]:
    """``get_config``'s answer: the configuration as plain data, secrets masked."""
    out: dict[str, Any] = {
        "name": config.name,
        "strategy": config.strategy,
        "num_retries": config.num_retries,
        "timeout": config.timeout,
        "fallbacks": list(config.fallbacks),
        "context_window_fallbacks": list(config.context_window_fallbacks),
        "cache": config.cache,
        "deployments": [d.describe() for d in config.deployments],
    }
    if config.route is not None:
        out["route"] = getattr(config.route, "__qualname__", repr(config.route))
        out["configs"] = {p: _masked(c) for p, c in config.route_configs.items()}
    if len(config.deployments) == 1:  # the simple form: provider and model at the top
        only = config.deployments[0]
        out["provider"] = only.provider
        out["provider_source"] = _provider_source(only.provider_inferred)
        out["model"] = only.model
    return out


def _provider_source(inferred: bool) -> str:
    """How the provider was chosen, for descriptions: a guess should say it is one."""
    return "inferred from the model name" if inferred else "given"


def _masked(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with every secret-looking value replaced by ``***``, and so every value of a
    mapping (``extra_headers``) whose name suggests a credential (auth, key, token, secret,
    signature, cookie...): a gateway's key sits in headers such as ``Helicone-Auth``."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        words = key.lower().replace("-", "_").split("_")
        if value is not None and not _SECRET_WORDS.isdisjoint(words):
            out[key] = "***"
        elif isinstance(value, Mapping):
            out[key] = {
                k: "***" if v is not None and is_credential_header(str(k)) else v
                for k, v in value.items()
            }
        else:
            out[key] = value
    return out


def make_deployment(spec: Mapping[str, Any], *, default_id: str, where: str) -> Deployment:
    """Validate one deployment spec (``provider``, ``model``, ``api_key``, ``api_base``,
    ``weight``, ``rpm``, ``tpm``, ``id``, call settings, default request parameters)."""
    if not isinstance(spec, Mapping):
        raise ConfigurationError(f"{where}: a deployment is a dict, not {type(spec).__name__}")
    if not spec.get("model") and "/" not in str(spec.get("provider") or ""):
        raise ConfigurationError(f"{where}: name a provider and a model (model=...)")
    checked = DeploymentSpec.from_mapping(spec, where)
    try:
        name, model, inferred = providers.resolve_model(checked.provider, checked.model)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc.message}") from None
    info = providers.provider_info(name)
    if info.key_required and providers.api_key_for(info, checked.api_key) is None:
        variables = " or ".join(info.env_keys) or "api_key="
        raise ConfigurationError(
            f"{where}: no API key: pass api_key=... or set {variables}",
            provider=name,
        )
    if checked.verify is not None and checked.verify is not False:
        check_verify(checked.verify)  # a CA bundle that does not load fails here
    _check_defaults(name, checked.params, bool(checked.drop_params), where)
    return Deployment(
        id=str(checked.id or default_id),
        provider=name,
        model=model,
        spec=checked,
        provider_inferred=inferred,
    )


def _check_defaults(provider: str, defaults: dict[str, Any], drop: bool, where: str) -> None:
    """Default parameters must be ones the provider takes (or its options)."""
    spec = providers.get_provider(provider)
    params = {k: v for k, v in defaults.items() if k not in spec.option_names}
    try:
        spec.check_params(dict(params), drop)
    except UnsupportedParamsError as exc:
        raise ConfigurationError(
            f"{where}: unknown setting or parameter for {provider}: {exc.message}",
            provider=provider,
        ) from None


def make_config(
    name: str,
    *,
    provider: str | None,
    model: str | None,
    deployments: Sequence[Mapping[str, Any]] | None,
    route: Route | None,
    configs: Mapping[str, Mapping[str, Any]] | None,
    policy: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> RouteConfig:
    """``register``'s arguments, checked: ``policy`` is :class:`ConfigSpec`'s fields,
    ``settings`` the keyword settings shared by every deployment."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"a configuration name is a non-empty string, not {name!r}")
    where = f"router configuration {name!r}"
    fallbacks = policy.get("fallbacks")
    windows = policy.get("context_window_fallbacks")
    config = convert(
        {
            **policy,
            "fallbacks": (fallbacks,) if isinstance(fallbacks, str) else fallbacks or (),
            "context_window_fallbacks": (windows,) if isinstance(windows, str) else windows or (),
        },
        ConfigSpec,
        where,
    )
    if sum([deployments is not None, route is not None, bool(provider or model)]) != 1:
        raise ConfigurationError(
            f"{where}: give exactly one of provider=/model=, deployments=[...] or route=fn"
        )
    group: tuple[Deployment, ...] = ()
    route_configs: dict[str, dict[str, Any]] = {}
    if route is not None:
        if not callable(route):
            raise ConfigurationError(f"{where}: route must be a function of the request")
        if settings:
            raise ConfigurationError(
                f"{where}: with route=, give provider settings in configs={{provider: {{...}}}}"
            )
        for provider_name, provider_settings in (configs or {}).items():
            providers.provider_info(provider_name)
            route_configs[provider_name] = dict(provider_settings)
    elif deployments is not None:
        if isinstance(deployments, (str, Mapping)) or not deployments:
            raise ConfigurationError(
                f"{where}: deployments must be a non-empty list of dicts "
                "(each with provider and model)"
            )
        group = tuple(
            make_deployment(
                {**settings, **spec} if isinstance(spec, Mapping) else spec,
                default_id=f"{name}[{i}]",
                where=f"{where}, deployment {i}",
            )
            for i, spec in enumerate(deployments)
        )
        ids = [d.id for d in group]
        if len(set(ids)) != len(ids):
            raise ConfigurationError(f"{where}: deployment ids must differ: {ids}")
    else:
        group = (
            make_deployment(
                {"provider": provider, "model": model, **settings}, default_id=name, where=where
            ),
        )
    if name in config.fallbacks or name in config.context_window_fallbacks:
        raise ConfigurationError(f"{where}: a configuration cannot fall back to itself")
    return RouteConfig(
        name=name,
        deployments=group,
        route=route,
        route_configs=route_configs,
        strategy=config.strategy,
        num_retries=config.num_retries,
        fallbacks=config.fallbacks,
        context_window_fallbacks=config.context_window_fallbacks,
        timeout=config.timeout,
        cache=config.cache,
    )
