"""What ``register`` stores: deployments and named configurations, validated up front.

Everything a configuration can get wrong (unknown provider, no model, no key, an unknown
setting, an unknown strategy, an empty group) raises :class:`ConfigurationError` at ``register``
time, not at the first request. Keys are held here and nowhere else; every ``repr`` and every
description masks them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import providers
from .._checks import check_verify
from .._spec import is_credential_header, masked_url
from ..errors import ConfigurationError, UnsupportedParamsError
from ._health import DeploymentState

__all__ = ["STRATEGIES", "Deployment", "RouteConfig", "describe", "make_deployment"]

#: The load-balancing strategies a group of deployments may use.
STRATEGIES = ("simple-shuffle", "least-busy", "lowest-latency")

#: Settings of a deployment that are not request parameters.
_CALL_SETTINGS = ("timeout", "drop_params", "extra_headers", "extra_body", "verify")
_DEPLOYMENT_FIELDS = ("id", "provider", "model", "api_key", "api_base", "weight", "rpm", "tpm")
_SECRET_WORDS = frozenset(
    {"key", "token", "secret", "password", "authorization", "credential", "credentials"}
)

Route = Callable[[dict[str, Any]], Any]


class Deployment:
    """One provider + model + key + base (+ limits) that a configuration can send to."""

    __slots__ = (
        "api_base",
        "api_key",
        "defaults",
        "id",
        "model",
        "provider",
        "provider_inferred",
        "rpm",
        "settings",
        "state",
        "tpm",
        "weight",
    )

    def __init__(
        self,
        *,
        id: str,
        provider: str,
        model: str,
        api_key: str | None,
        api_base: str | None,
        weight: float,
        rpm: int | None,
        tpm: int | None,
        settings: dict[str, Any],
        defaults: dict[str, Any],
        provider_inferred: bool = False,
    ) -> None:
        self.id = id
        self.provider = provider
        #: True when no provider was named and the model's name told it (``"gpt-4o"``).
        self.provider_inferred = provider_inferred
        self.model = model
        self.api_key = api_key
        self.api_base = api_base
        self.weight = weight
        self.rpm = rpm
        self.tpm = tpm
        #: ``timeout``, ``drop_params``, ``extra_headers``, ``extra_body`` for ``prepare``.
        self.settings = settings
        #: Default request parameters and provider options (the call's own win).
        self.defaults = defaults
        #: What the router has learnt about this deployment (guarded by the router's lock).
        self.state = DeploymentState()

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
        out.update(_masked(self.settings))
        out.update(_masked(self.defaults))
        return out


class RouteConfig:
    """A named configuration: a group of deployments (or a route function) and its policy."""

    __slots__ = (
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
    try:
        name, model, inferred = providers.resolve_model(spec.get("provider"), spec.get("model"))
    except ConfigurationError as exc:
        raise ConfigurationError(f"{where}: {exc.message}") from None
    info = providers.provider_info(name)
    api_key = spec.get("api_key")
    if info.key_required and providers.api_key_for(info, api_key) is None:
        variables = " or ".join(info.env_keys) or "api_key="
        raise ConfigurationError(
            f"{where}: no API key: pass api_key=... or set {variables}",
            provider=name,
        )
    settings = {k: spec[k] for k in _CALL_SETTINGS if spec.get(k) is not None}
    timeout = settings.get("timeout")
    if timeout is not None and not _positive(timeout):
        raise ConfigurationError(f"{where}: timeout must be positive seconds, not {timeout!r}")
    if settings.get("verify") is not None and settings["verify"] is not False:
        check_verify(settings["verify"])  # a CA bundle that does not load fails here
    defaults = {
        k: v for k, v in spec.items() if k not in _DEPLOYMENT_FIELDS and k not in _CALL_SETTINGS
    }
    _check_defaults(name, defaults, bool(settings.get("drop_params")), where)
    weight = spec.get("weight", 1)
    if not _positive(weight):
        raise ConfigurationError(f"{where}: weight must be a positive number, not {weight!r}")
    for limit in ("rpm", "tpm"):
        value = spec.get(limit)
        if value is not None and not (isinstance(value, int) and value > 0):
            raise ConfigurationError(f"{where}: {limit} must be a positive integer, not {value!r}")
    return Deployment(
        id=str(spec.get("id") or default_id),
        provider=name,
        model=model,
        api_key=api_key,
        api_base=spec.get("api_base"),
        weight=float(weight),
        rpm=spec.get("rpm"),
        tpm=spec.get("tpm"),
        settings=settings,
        defaults=defaults,
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


def _positive(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value > 0
        and math.isfinite(value)
    )


def check_names(names: Sequence[str] | str | None, what: str) -> tuple[str, ...]:
    """``fallbacks`` and friends: a list of configuration names."""
    if names is None:
        return ()
    if isinstance(names, str):
        return (names,)
    result = tuple(names)
    for n in result:
        if not isinstance(n, str) or not n:
            raise ConfigurationError(f"{what} must be configuration names, not {n!r}")
    return result
