"""The gateway's config file: LiteLLM proxy configs (real ones, tests/fixtures/gateway/, sources
in tests/fixtures/SOURCES.md) loaded into the router's structs, and every mistake named by its
key path without a secret in sight."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from rxllm import pricing, providers
from rxllm.errors import ConfigurationError
from rxllm.gateway import _config
from rxllm.gateway._config import (
    Catalog,
    ConfigWarning,
    GatewayConfig,
    load_config,
    mock_config,
    parse_config,
)
from rxllm.router import Router

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "gateway"
SECRET = "sk-live-0123456789SECRET"
MASTER = "mk-master-9876543210SECRET"
ENV = {
    "OPENAI_API_KEY": "sk-openai-env-0001SECRET",
    "AZURE_API_KEY": "az-env-key-0002SECRET",
    "ANTHROPIC_API_KEY": "sk-ant-env-0003SECRET",
    "GROQ_API_KEY": "gsk-env-0004SECRET",
    "FAKE_OPENAI_API_BASE": "http://127.0.0.1:9/v1",
}


def loaded(make: Callable[[], GatewayConfig]) -> tuple[GatewayConfig, list[str]]:
    """A config and the texts of the ConfigWarnings its loading gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = make()
    return config, [str(w.message) for w in caught if issubclass(w.category, ConfigWarning)]


def fixture(name: str, **extra: str) -> tuple[GatewayConfig, list[str]]:
    env = {**ENV, **extra}
    return loaded(lambda: load_config(FIXTURES / name, environ=env))


def parse(data: Any, **env: str) -> GatewayConfig:
    """A config that must load without a warning."""
    config, found = loaded(lambda: parse_config(data, environ=dict(env)))
    assert found == []
    return config


def error_of(data: Any, **env: str) -> str:
    with pytest.raises(ConfigurationError) as caught:
        parse_config(data, environ=dict(env))
    return caught.value.message


def one(model: str, **params: Any) -> dict[str, Any]:
    """A config of one model_name served by ``model``."""
    return {"model_list": [{"model_name": "m", "litellm_params": {"model": model, **params}}]}


@pytest.fixture(autouse=True)
def _prices() -> Iterator[None]:
    saved = {p: dict(m) for p, m in pricing._overrides.items()}
    yield
    pricing._overrides.clear()
    pricing._overrides.update(saved)


# --- real LiteLLM configs --------------------------------------------------------------------


def test_reliability_docs_config_loads_unchanged_with_its_fallbacks_on_the_router() -> None:
    config, found = fixture("reliability_fallbacks.yaml")
    assert found == [] and config.unsupported == ()
    assert config.groups["gpt-3.5-turbo"].fallbacks == ("gpt-4",)
    assert config.groups["gpt-4"].fallbacks == ()
    router = Catalog(config).router
    assert router.list_configs() == ["gpt-3.5-turbo", "gpt-4"]
    described = router.get_config("gpt-3.5-turbo")
    assert described is not None
    assert described["fallbacks"] == ["gpt-4"]
    assert described["strategy"] == "simple-shuffle"
    assert (described["provider"], described["model"]) == ("azure", "<your-deployment-name>")
    assert described["deployments"][0]["api_base"] == "<your-azure-endpoint>"
    assert (described["deployments"][0]["rpm"], described["deployments"][0]["api_key"]) == (
        6,
        "***",
    )
    gpt4 = router.get_config("gpt-4")
    assert gpt4 is not None and gpt4["model"] == "gpt-4-ca"


def test_load_balancing_docs_config_warns_once_about_its_redis_settings() -> None:
    config, found = fixture("load_balancing.yaml")
    unsupported = ("router_settings.redis_host", "router_settings.redis_password")
    assert config.unsupported == (*unsupported, "router_settings.redis_port")
    assert len(found) == 1
    assert found[0].endswith(
        "rxllm ignores these LiteLLM settings it does not implement: router_settings.redis_host, "
        "router_settings.redis_password, router_settings.redis_port"
    )
    assert (config.router.num_retries, config.router.timeout) == (2, 30.0)
    catalog = Catalog(config)
    assert catalog.names() == ["gpt-3.5-turbo", "gpt-4"]
    assert catalog.resolve("gpt-4") == "gpt-3.5-turbo"
    described = catalog.router.get_config("gpt-3.5-turbo")
    assert described is not None
    assert (described["num_retries"], described["timeout"]) == (2, 30.0)
    deployments = described["deployments"]
    assert [d["model"] for d in deployments] == [
        "<your-deployment-name>",
        "gpt-turbo-small-ca",
        "gpt-turbo-large",
    ]
    assert [d["rpm"] for d in deployments] == [6, 6, 1440]
    assert [d["id"] for d in deployments] == [f"gpt-3.5-turbo[{i}]" for i in range(3)]


def test_configs_docs_model_params_become_default_parameters_and_provider_options() -> None:
    config, found = fixture("model_specific_params.yaml")
    assert config.unsupported == ("model_list[0].litellm_params.azure_ad_token",)
    assert len(found) == 1 and "eyJ0eXAiOiJ" not in found[0]
    team1, team2, gpt4o, mistral = (m.deployment for m in config.models)
    assert (team1.provider, team1.model) == ("azure", "chatgpt-v-2")
    assert team1.params == {"api_version": "2023-05-15", "seed": 12, "max_tokens": 20}
    assert team1.api_key == ENV["AZURE_API_KEY"]  # as LiteLLM's azure reads AZURE_API_KEY
    assert (team2.api_key, team2.params) == ("sk-123", {"temperature": 0.2})
    assert (gpt4o.provider, gpt4o.model) == ("openai", "gpt-4o")
    assert gpt4o.params == {"organization": "org-ikDc4ex8NB", "temperature": 0.2}
    assert gpt4o.extra_headers == {"AI-Resource Group": "ishaan-resource"}
    assert (mistral.provider, mistral.model, mistral.api_base) == (
        "ollama",
        "mistral",
        "your_ollama_api_base",
    )
    described = Catalog(config).router.get_config("openai-gpt-4o")
    assert described is not None and described["deployments"][0]["organization"] == "org-ikDc4ex8NB"


def test_litellm_aliases_example_loads_unchanged() -> None:
    config, found = fixture("aliases_config.yaml")
    assert found == []
    assert list(config.groups) == ["text-davinci-003", "gpt-4", "gpt-3.5-turbo"]
    specs = {m.model_name: m.deployment for m in config.models}
    assert (specs["gpt-4"].provider, specs["gpt-4"].model) == ("ollama", "llama2")
    assert specs["gpt-3.5-turbo"].params == {"temperature": 0.1, "max_tokens": 20}
    catalog = Catalog(config)
    assert catalog.names() == ["text-davinci-003", "gpt-4", "gpt-3.5-turbo"]
    assert [d.model for d in catalog.deployments("text-davinci-003")] == ["zephyr"]


def test_litellm_azure_example_warns_about_stream_timeout_and_max_retries() -> None:
    config, found = fixture("azure_config.yaml")
    assert config.unsupported == tuple(
        f"model_list[{i}].litellm_params.{key}"
        for i in (0, 1)
        for key in ("stream_timeout", "max_retries")
    )
    assert len(found) == 1
    first, second = (m.deployment for m in config.models)
    assert (first.tpm, second.tpm) == (20_000, 100_000)
    assert (first.timeout, first.params) == (5.0, {"api_version": "2023-05-15"})
    assert first.api_key == second.api_key == ENV["AZURE_API_KEY"]
    assert second.params == {}


def test_litellm_schema_example_reads_its_base_from_the_environment() -> None:
    config, found = fixture("disable_schema_update.yaml")
    assert config.unsupported == (
        "litellm_settings.callbacks",
        "general_settings.disable_prisma_schema_update",
    )
    assert len(found) == 1
    fake = config.models[0].deployment
    # openai/<model> at another server is an OpenAI-compatible server (LiteLLM's convention)
    assert (fake.provider, fake.model, fake.api_base) == (
        "openai_compatible",
        "fake",
        ENV["FAKE_OPENAI_API_BASE"],
    )
    assert fake.api_key == "fake-key"


def test_litellm_enterprise_example_keeps_ids_and_the_cache_setting() -> None:
    # `cache: true` alone is LiteLLM's Redis cache, found through REDIS_HOST / REDIS_PORT.
    with pytest.raises(ConfigurationError, match=r"litellm_settings\.cache: true asks for a Redis"):
        fixture("enterprise_config.yaml")
    config, found = fixture("enterprise_config.yaml", REDIS_HOST="10.0.0.5", REDIS_PORT="6380")
    assert config.cache is not None
    assert (config.cache.type, config.cache.redis_url) == ("redis", "redis://10.0.0.5:6380")
    assert config.unsupported == (
        "litellm_settings.callbacks",
        "router_settings.enable_tag_filtering",
        "model_list[0].litellm_params.tags",
    )
    assert len(found) == 1
    assert config.litellm_settings == {"cache": True}
    described = Catalog(config).router.get_config("gpt-4")
    assert described is not None and described["deployments"][0]["id"] == "team-a-model"
    assert config.models[0].model_info == {"id": "team-a-model"}


def test_pagerduty_docs_wildcard_config_serves_any_openai_model() -> None:
    config, found = fixture("pagerduty.yaml")
    assert config.unsupported == ("general_settings.alerting", "general_settings.alerting_args")
    assert len(found) == 1
    catalog = Catalog(config)
    assert catalog.names() == []
    assert catalog.router.list_configs() == []
    assert catalog.resolve("openai/gpt-4.1-mini") == "openai/gpt-4.1-mini"
    (spec,) = catalog.deployments("openai/gpt-4.1-mini")
    assert (spec.provider, spec.model, spec.api_key) == (
        "openai",
        "gpt-4.1-mini",
        ENV["OPENAI_API_KEY"],
    )
    assert catalog.router.list_configs() == ["openai/gpt-4.1-mini"]
    assert catalog.resolve("gpt-4.1-mini") is None


def test_wildcard_docs_config_names_its_unknown_provider() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_config(FIXTURES / "wildcard_routing.yaml", environ=dict(ENV))
    message = caught.value.message
    assert message.startswith(
        f"{FIXTURES / 'wildcard_routing.yaml'}: model_list[1].litellm_params.model: "
        "unknown provider 'groq' in 'groq/*'; rxllm's providers: anthropic, azure,"
    )
    assert "hosted_vllm" in message and ENV["GROQ_API_KEY"] not in message


def test_litellm_misc_example_fails_on_its_groq_wildcard_after_its_master_key() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_config(FIXTURES / "oai_misc_config.yaml", environ=dict(ENV))
    assert "general_settings.master_key: environment variable LITELLM_MASTER_KEY is not set" in (
        caught.value.message
    )
    with pytest.raises(ConfigurationError) as caught:
        load_config(
            FIXTURES / "oai_misc_config.yaml", environ={**ENV, "LITELLM_MASTER_KEY": MASTER}
        )
    message = caught.value.message
    # the ignored settings' variables (LANGFUSE_*, AZURE_API_BASE) were not needed
    assert "model_list[3].litellm_params.model: unknown provider 'groq'" in message
    assert MASTER not in message


def test_litellm_load_balancer_example_is_told_where_tpm_belongs() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_config(FIXTURES / "load_balancer.yaml", environ={})
    message = caught.value.message
    assert "model_list[0].tpm: unknown key (it belongs under litellm_params)" in message
    assert "sk-uj6F" not in message and "sk-Imn" not in message


# --- the sections ----------------------------------------------------------------------------


def test_router_settings_win_over_litellm_settings() -> None:
    config = parse(
        {
            "model_list": [
                {"model_name": "a", "litellm_params": {"model": "mock/x"}},
                {"model_name": "b", "litellm_params": {"model": "mock/y"}},
                {"model_name": "c", "litellm_params": {"model": "mock/z"}},
            ],
            "litellm_settings": {
                "num_retries": 5,
                "request_timeout": 600,
                "allowed_fails": 7,
                "cooldown_time": 12,
                "fallbacks": [{"a": ["c"]}],
                "context_window_fallbacks": [{"a": ["b"]}],
                "drop_params": True,
            },
            "router_settings": {
                "num_retries": 1,
                "allowed_fails": 2,
                "fallbacks": [{"a": ["b"]}],
                "routing_strategy": "latency-based-routing",
                "redis_url": "redis://:hunter2-pass@cache:6379/0",
            },
        }
    )
    settings = config.router
    assert (settings.num_retries, settings.timeout) == (1, 600.0)
    assert (settings.allowed_fails, settings.cooldown_time) == (2, 12.0)
    assert config.groups["a"].fallbacks == ("b",)
    assert config.groups["a"].context_window_fallbacks == ("b",)
    assert {g.strategy for g in config.groups.values()} == {"lowest-latency"}
    assert config.redis_url == "redis://:hunter2-pass@cache:6379/0"
    assert "hunter2-pass" not in repr(config)
    assert all(m.deployment.drop_params is True for m in config.models)
    router = Catalog(config).router
    assert router.settings.num_retries == 1 and router.settings.allowed_fails == 2
    described = router.get_config("a")
    assert described is not None and described["strategy"] == "lowest-latency"


def test_generic_and_default_fallbacks_apply_to_groups_without_their_own() -> None:
    models = [{"model_name": n, "litellm_params": {"model": f"mock/{n}"}} for n in "abc"]
    config = parse({"model_list": models, "router_settings": {"fallbacks": [{"*": ["c"]}]}})
    assert [config.groups[n].fallbacks for n in "abc"] == [("c",), ("c",), ()]
    config = parse({"model_list": models, "litellm_settings": {"default_fallbacks": ["a", "b"]}})
    assert [config.groups[n].fallbacks for n in "abc"] == [("b",), ("a",), ("a", "b")]
    config = parse(
        {
            "model_list": models,
            "router_settings": {
                "model_group_alias": {"best": {"model": "c", "hidden": True}},
                "fallbacks": ["best", {"c": ["a"]}],
            },
        }
    )
    assert [config.groups[n].fallbacks for n in "abc"] == [("c",), ("c",), ("a",)]
    catalog = Catalog(config)
    assert catalog.names() == ["a", "b", "c"]  # a hidden alias is not listed
    assert catalog.resolve("best") == "c"


def test_litellm_strategies_rxllm_lacks_fall_back_to_simple_shuffle_with_the_warning() -> None:
    config, found = loaded(
        lambda: parse_config(
            {**one("mock/x"), "router_settings": {"routing_strategy": "usage-based-routing-v2"}},
            environ={},
        )
    )
    assert config.groups["m"].strategy == "simple-shuffle"
    assert config.unsupported == ("router_settings.routing_strategy",)
    assert found == [
        "<config>: rxllm ignores these LiteLLM settings it does not implement: "
        "router_settings.routing_strategy (usage-based-routing-v2: simple-shuffle is used)"
    ]
    assert parse({**one("mock/x"), "router_settings": {"routing_strategy": "least-busy"}}).groups[
        "m"
    ].strategy == ("least-busy")


def test_general_settings_defaults_and_values() -> None:
    config = parse(one("mock/x"))
    general = config.general
    assert (general.master_key, general.database_path) == (None, "rxllm_gateway.db")
    assert (general.heartbeat_seconds, general.max_request_size_mb, general.drain_seconds) == (
        15.0,
        16.0,
        30.0,
    )
    config = parse(
        {
            **one("mock/x"),
            "general_settings": {
                "master_key": MASTER,
                "database_path": "/var/lib/rxllm/keys.db",
                "heartbeat_seconds": 5,
                "max_request_size_mb": 2,
                "drain_seconds": 0,
            },
        }
    )
    general = config.general
    assert (general.master_key, general.database_path) == (MASTER, "/var/lib/rxllm/keys.db")
    assert (general.heartbeat_seconds, general.max_request_size_mb, general.drain_seconds) == (
        5.0,
        2.0,
        0.0,
    )
    assert MASTER not in repr(general) and MASTER not in repr(config)
    assert "master_key=***" in repr(general)


def test_the_master_key_defaults_to_litellm_master_key() -> None:
    assert parse(one("mock/x"), LITELLM_MASTER_KEY=MASTER).general.master_key == MASTER
    assert mock_config().general.master_key is None


def test_params_is_an_alias_of_litellm_params() -> None:
    spelled = [
        {"model_name": "m", key: {"model": "mock/x", "rpm": 30, "temperature": 0.5}}
        for key in ("litellm_params", "params")
    ]
    first, second = (parse({"model_list": [entry]}).models[0] for entry in spelled)
    assert first == second
    assert (second.deployment.rpm, second.deployment.params) == (30, {"temperature": 0.5})
    message = error_of(
        {"model_list": [{"model_name": "m", "params": {"model": "mock/x", "rpm": 0}}]}
    )
    assert message == "<config>: model_list[0].params.rpm must be a positive integer, not 0"


def test_prices_set_per_million_tokens_when_the_catalog_is_made() -> None:
    config = parse(
        {
            "model_list": [
                {
                    "model_name": "m",
                    "litellm_params": {
                        "model": "openai/rxllm-test-priced",
                        "api_key": SECRET,
                        "input_cost_per_token": 0.000002,
                        "output_cost_per_token": 0.000008,
                    },
                    "model_info": {"cache_read_input_token_cost": 0.0000005},
                }
            ]
        }
    )
    assert config.models[0].model_info == {
        "cache_read_input_token_cost": 0.0000005,
        "input_cost_per_token": 0.000002,
        "output_cost_per_token": 0.000008,
    }
    assert pricing.price_of("openai", "rxllm-test-priced") is None
    Catalog(config)
    price = pricing.price_of("openai", "rxllm-test-priced")
    assert price is not None
    assert (price.input, price.output, price.cached_input) == pytest.approx((2.0, 8.0, 0.5))


# --- the environment -------------------------------------------------------------------------


def test_os_environ_values_are_read_anywhere() -> None:
    config = parse(
        {
            "model_list": [
                {
                    "model_name": "m",
                    "litellm_params": {
                        "model": "os.environ/MODEL",
                        "api_key": "os.environ/KEY",
                        "rpm": "os.environ/RPM",
                        "extra_headers": {"X-Team": "os.environ/TEAM"},
                    },
                    "model_info": {"id": "os.environ/DEPLOYMENT"},
                }
            ],
            "general_settings": {"master_key": "os.environ/MASTER"},
        },
        MODEL="openai/gpt-4o",
        KEY=SECRET,
        RPM="12",
        TEAM="search",
        DEPLOYMENT="eu-1",
        MASTER=MASTER,
    )
    spec = config.models[0].deployment
    assert (spec.provider, spec.model, spec.api_key) == ("openai", "gpt-4o", SECRET)
    assert (spec.extra_headers, spec.id) == ({"X-Team": "search"}, "eu-1")
    assert config.general.master_key == MASTER
    assert spec.rpm == 12  # a variable is text: "12" is read as the number


def test_a_missing_variable_is_named_with_its_key() -> None:
    message = error_of(one("openai/gpt-4o", api_key="os.environ/NOT_SET_ANYWHERE"))
    assert message == (
        "<config>: model_list[0].litellm_params.api_key: environment variable NOT_SET_ANYWHERE "
        "is not set (the config reads it with os.environ/NOT_SET_ANYWHERE)"
    )


def test_variables_of_settings_rxllm_ignores_need_not_be_set() -> None:
    config, found = loaded(
        lambda: parse_config(
            {**one("mock/x"), "general_settings": {"database_url": "os.environ/DATABASE_URL"}},
            environ={},
        )
    )
    assert config.unsupported == ("general_settings.database_url",) and len(found) == 1


def test_environment_variables_are_set_before_values_are_read() -> None:
    environ = {"ORIGINAL": "from-the-shell"}
    config = parse(
        {
            "environment_variables": {
                "OPENAI_API_KEY": SECRET,
                "COPY": "os.environ/ORIGINAL",
                "EMPTY": None,
                "PORT": 6379,
            },
            "model_list": [
                {"model_name": "implicit", "litellm_params": {"model": "gpt-4o"}},
                {
                    "model_name": "explicit",
                    "litellm_params": {"model": "gpt-4o", "api_key": "os.environ/OPENAI_API_KEY"},
                },
            ],
        },
        **environ,
    )
    assert [m.deployment.api_key for m in config.models] == [SECRET, SECRET]
    assert [m.deployment.provider for m in config.models] == ["openai", "openai"]


def test_environment_variables_go_to_the_given_mapping_or_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environ = {"ORIGINAL": "from-the-shell"}
    parse_config(
        {
            "environment_variables": {"COPY": "os.environ/ORIGINAL", "EMPTY": None, "PORT": 6379},
            **one("mock/x"),
        },
        environ=environ,
    )
    assert environ == {"ORIGINAL": "from-the-shell", "COPY": "from-the-shell", "PORT": "6379"}
    assert "COPY" not in os.environ
    monkeypatch.setenv("RXLLM_TEST_ORIGINAL", "shell")
    monkeypatch.delenv("RXLLM_TEST_COPY", raising=False)
    try:
        parse_config(
            {"environment_variables": {"RXLLM_TEST_COPY": "os.environ/RXLLM_TEST_ORIGINAL"}}
            | one("mock/x")
        )
        assert os.environ["RXLLM_TEST_COPY"] == "shell"
    finally:
        os.environ.pop("RXLLM_TEST_COPY", None)


def test_openai_at_another_server_is_not_sent_the_openai_key() -> None:
    config = parse(
        one("openai/meta-llama/Llama-3-8B", api_base="http://vllm:8000/v1"),
        OPENAI_API_KEY=SECRET,
    )
    spec = config.models[0].deployment
    assert (spec.provider, spec.model, spec.api_key) == (
        "openai_compatible",
        "meta-llama/Llama-3-8B",
        None,
    )
    at_openai = parse(
        one("openai/gpt-4o", api_base="https://api.openai.com/v1/"), OPENAI_API_KEY=SECRET
    )
    assert at_openai.models[0].deployment.provider == "openai"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"model": "ollama_chat/llama3"}, ("ollama", "llama3")),
        (
            {"model": "hosted_vllm/meta-llama/Llama-3-8B", "api_base": "http://vllm:8000/v1"},
            ("openai_compatible", "meta-llama/Llama-3-8B"),
        ),
        (
            {
                "model": "meta-llama/Llama-3-8B",
                "custom_llm_provider": "hosted_vllm",
                "api_base": "http://vllm:8000/v1",
            },
            ("openai_compatible", "meta-llama/Llama-3-8B"),
        ),
        (
            {"model": "claude-3-5-haiku-latest", "api_key": SECRET},
            ("anthropic", "claude-3-5-haiku-latest"),
        ),
        ({"model": "openrouter/openai/gpt-4o", "api_key": SECRET}, ("openrouter", "openai/gpt-4o")),
    ],
)
def test_litellm_provider_spellings_resolve_through_the_registry(
    params: dict[str, Any], expected: tuple[str, str]
) -> None:
    spec = (
        parse({"model_list": [{"model_name": "m", "litellm_params": params}]}).models[0].deployment
    )
    assert (spec.provider, spec.model) == expected


def test_the_registry_resolves_aliases_and_other_bases() -> None:
    assert providers.provider_for("ollama_chat") == "ollama"
    assert providers.provider_for("hosted_vllm") == "openai_compatible"
    assert providers.provider_for("openai") == "openai"
    assert providers.provider_for("openai", "https://api.openai.com/v1") == "openai"
    assert providers.provider_for("openai", "http://localhost:8000/v1") == "openai_compatible"
    assert providers.provider_for("anthropic", "https://proxy.example.com") == "anthropic"
    assert providers.provider_for("bedrock") is None


# --- wildcards -------------------------------------------------------------------------------


def wildcard_catalog(router: Router | None = None) -> Catalog:
    return Catalog(
        parse(
            {
                "model_list": [
                    {"model_name": "*", "litellm_params": {"model": "mock/*"}},
                    {"model_name": "team/*", "litellm_params": {"model": "mock/team-*"}},
                    {"model_name": "team/gpt-*", "litellm_params": {"model": "mock/gpt-*"}},
                    {"model_name": "team/gpt-4o", "litellm_params": {"model": "mock/exact"}},
                    {"model_name": "fo::*:static::*", "litellm_params": {"model": "mock/*-*"}},
                    {"model_name": "fixed-*", "litellm_params": {"model": "mock/always"}},
                    {"model_name": "exact", "litellm_params": {"model": "mock/exact"}},
                ],
                "router_settings": {"fallbacks": [{"team/*": ["exact"]}]},
            }
        ),
        router,
    )


@pytest.mark.parametrize(
    ("requested", "name", "model"),
    [
        ("team/gpt-4o", "team/gpt-4o", "exact"),  # an exact name wins over every pattern
        ("team/gpt-4.1", "team/gpt-4.1", "gpt-4.1"),  # the most literal characters win
        ("team/o3", "team/o3", "team-o3"),
        ("claude", "claude", "claude"),  # "*" catches the rest
        ("fo::hi::static::hi", "fo::hi::static::hi", "hi:-hi"),  # each * in order
        ("fixed-anything", "fixed-anything", "always"),  # a model without * is fixed
    ],
)
def test_wildcard_resolution_precedence(requested: str, name: str, model: str) -> None:
    catalog = wildcard_catalog()
    assert catalog.resolve(requested) == name
    assert [(d.provider, d.model) for d in catalog.deployments(requested)] == [("mock", model)]
    described = catalog.router.get_config(name)
    assert described is not None and described["model"] == model


def test_wildcard_matches_keep_their_patterns_policy_and_are_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_config, "MAX_WILDCARD_MATCHES", 2)
    catalog = wildcard_catalog()
    assert catalog.names() == ["team/gpt-4o", "exact"]
    assert catalog.resolve("team/a") == "team/a"
    described = catalog.router.get_config("team/a")
    assert described is not None and described["fallbacks"] == ["exact"]
    assert catalog.resolve("team/b") == "team/b"
    assert catalog.resolve("team/a") == "team/a"  # used again: the newest
    assert catalog.resolve("team/c") == "team/c"
    assert catalog.router.list_configs() == ["team/gpt-4o", "exact", "team/a", "team/c"]
    assert catalog.resolve("*") is None  # a pattern is not a model


def test_a_catalog_registers_on_the_router_it_is_given() -> None:
    router = Router(num_retries=0)
    catalog = wildcard_catalog(router)
    assert catalog.router is router and router.settings.num_retries == 0
    assert router.list_configs() == ["team/gpt-4o", "exact"]


def test_a_wildcard_left_to_each_request_infers_the_provider(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    catalog = Catalog(
        parse({"model_list": [{"model_name": "*", "litellm_params": {"model": "*"}}]})
    )
    assert catalog.resolve("claude-sonnet-4-5") == "claude-sonnet-4-5"
    (spec,) = catalog.deployments("claude-sonnet-4-5")
    assert (spec.provider, spec.model) == ("anthropic", "claude-sonnet-4-5")
    assert catalog.resolve("ollama_chat/llama3") == "ollama_chat/llama3"
    assert [(d.provider, d.model) for d in catalog.deployments("ollama_chat/llama3")] == [
        ("ollama", "llama3")
    ]
    with pytest.raises(ConfigurationError, match="no provider in 'no-such-model'"):
        catalog.resolve("no-such-model")


def test_mock_config_serves_any_name() -> None:
    config = mock_config()
    assert [m.model_name for m in config.models] == ["mock/*", "*"]
    catalog = Catalog(config)
    assert catalog.names() == []
    assert catalog.resolve("mock/anything") == "mock/anything"
    assert catalog.resolve("gpt-4o") == "gpt-4o"
    assert [(d.provider, d.model) for d in catalog.deployments("mock/anything")] == [
        ("mock", "anything")
    ]
    assert [(d.provider, d.model) for d in catalog.deployments("gpt-4o")] == [("mock", "gpt-4o")]
    answer = catalog.router.completion("gpt-4o", messages=[{"role": "user", "content": "echo me"}])
    assert answer.choices[0].message.content == "echo me"


# --- mistakes --------------------------------------------------------------------------------


def three_models(**third: Any) -> dict[str, Any]:
    return {
        "model_list": [
            {"model_name": "a", "litellm_params": {"model": "mock/a"}},
            {"model_name": "b", "litellm_params": {"model": "mock/b"}},
            {"model_name": "c", "litellm_params": {"model": "mock/c", **third}},
        ]
    }


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            three_models(rpm="ten"),
            "model_list[2].litellm_params.rpm must be a positive integer, not 'ten'",
        ),
        (
            three_models(weight=-1),
            "model_list[2].litellm_params.weight must be a positive number, not -1",
        ),
        (
            three_models(timeout="soon"),
            "model_list[2].litellm_params.timeout must be positive seconds, not 'soon'",
        ),
        (
            three_models(drop_params="yes"),
            "model_list[2].litellm_params.drop_params must be true or false, not 'yes'",
        ),
        (
            three_models(extra_headers=["X-A"]),
            "model_list[2].litellm_params.extra_headers must be a mapping, not ['X-A']",
        ),
        (
            three_models(input_cost_per_token=-0.1),
            "model_list[2].litellm_params.input_cost_per_token must be a price >= 0 (USD per token), "
            "not -0.1",
        ),
        (
            {**one("mock/x"), "router_settings": {"num_retries": -1}},
            "router_settings.num_retries must be an integer >= 0, not -1",
        ),
        (
            {**one("mock/x"), "litellm_settings": {"request_timeout": 0}},
            "litellm_settings.request_timeout must be positive seconds, not 0",
        ),
        (
            {**one("mock/x"), "general_settings": {"heartbeat_seconds": 0}},
            "general_settings.heartbeat_seconds must be positive seconds, not 0",
        ),
        (
            {**one("mock/x"), "general_settings": {"drain_seconds": "30s"}},
            "general_settings.drain_seconds must be seconds >= 0, not '30s'",
        ),
        (
            {**one("mock/x"), "router_settings": {"fallbacks": {"m": ["m"]}}},
            "router_settings.fallbacks must be a list of {model_name: [model_name, ...]}, "
            "not {'m': ['m']}",
        ),
        (
            {
                "model_list": [
                    {"model_name": "m", "litellm_params": {"model": "mock/x"}, "model_info": "x"}
                ]
            },
            "model_list[0].model_info must be a mapping, not 'x'",
        ),
        ({"model_list": "gpt-4o"}, "model_list must be a list, not 'gpt-4o'"),
    ],
)
def test_a_wrong_type_is_named_by_its_key_path(data: dict[str, Any], expected: str) -> None:
    assert error_of(data) == f"<config>: {expected}"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {**one("mock/x"), "model_lists": []},
            "model_lists: unknown key (did you mean 'model_list'?)",
        ),
        (
            {**one("mock/x"), "router_settings": {"num_retires": 3}},
            "router_settings.num_retires: unknown key (did you mean 'num_retries'?)",
        ),
        (
            {**one("mock/x"), "litellm_settings": {"drop_param": True}},
            "litellm_settings.drop_param: unknown key (did you mean 'drop_params'?)",
        ),
        (
            {**one("mock/x"), "general_settings": {"master_keys": "x"}},
            "general_settings.master_keys: unknown key (did you mean 'master_key'?)",
        ),
        (
            {"model_list": [{"model_name": "m", "litellm_param": {"model": "mock/x"}}]},
            "model_list[0].litellm_param: unknown key (did you mean 'litellm_params'?)",
        ),
    ],
)
def test_a_key_neither_rxllm_nor_litellm_knows_is_a_mistake(
    data: dict[str, Any], expected: str
) -> None:
    assert error_of(data).startswith(f"<config>: {expected}; ")


def test_an_unknown_request_parameter_is_the_providers_to_refuse() -> None:
    message = error_of(one("openai/gpt-4o", api_key=SECRET, temprature=0.2))
    assert message.startswith(
        "<config>: model_list[0].litellm_params: unknown setting or parameter for openai: "
        "openai does not take parameter(s) temprature"
    )
    assert SECRET not in message


@pytest.mark.parametrize(
    ("params", "env", "expected"),
    [
        (
            {"model": "llama3"},
            {},
            "model_list[0].litellm_params.model: no provider in 'llama3': write it as "
            "'<provider>/<model>'; rxllm's providers: ",
        ),
        (
            {"model": "bedrock/anthropic.claude-instant-v1"},
            {},
            "model_list[0].litellm_params.model: unknown provider 'bedrock' in "
            "'bedrock/anthropic.claude-instant-v1'; rxllm's providers: ",
        ),
        (
            {"model": "llama-3-70b", "custom_llm_provider": "groq"},
            {},
            "model_list[0].litellm_params.custom_llm_provider: unknown provider 'groq'; ",
        ),
        (
            {"model": "gpt-4o"},
            {},
            "model_list[0].litellm_params: no API key: pass api_key=... or set OPENAI_API_KEY",
        ),
        (
            {"model": "azure/gpt-4o", "api_key": SECRET},
            {},
            "model_list[0].litellm_params.api_base is required for azure",
        ),
        ({"rpm": 3}, {}, "model_list[0].litellm_params.model is required: a string"),
    ],
)
def test_a_model_rxllm_cannot_serve_is_named(
    params: dict[str, Any], env: dict[str, str], expected: str
) -> None:
    message = error_of({"model_list": [{"model_name": "m", "litellm_params": params}]}, **env)
    assert message.startswith(f"<config>: {expected}")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {**three_models(), "router_settings": {"fallbacks": [{"a": ["claude"]}]}},
            "router_settings.fallbacks[0]: no model group 'claude' to fall back to "
            "(model_names: 'a', 'b', 'c')",
        ),
        (
            {**three_models(), "litellm_settings": {"context_window_fallbacks": [{"zz": ["a"]}]}},
            "litellm_settings.context_window_fallbacks[0]: 'zz' is not a model_name of model_list",
        ),
        (
            {**three_models(), "router_settings": {"fallbacks": [{"b": ["a"]}, {"a": ["a"]}]}},
            "router_settings.fallbacks[1]: 'a' falls back to itself",
        ),
        (
            {**three_models(), "router_settings": {"default_fallbacks": ["nope"]}},
            "router_settings.default_fallbacks: no model group 'nope' to fall back to",
        ),
        (
            {**three_models(), "router_settings": {"model_group_alias": {"gpt-4": "gpt-4o"}}},
            "router_settings.model_group_alias.gpt-4: 'gpt-4o' is not a model_name",
        ),
        (
            {**three_models(), "router_settings": {"routing_strategy": "fastest"}},
            "router_settings.routing_strategy: unknown strategy 'fastest'",
        ),
    ],
)
def test_a_fallback_alias_or_strategy_naming_nothing_is_a_mistake(
    data: dict[str, Any], expected: str
) -> None:
    assert error_of(data).startswith(f"<config>: {expected}")


@pytest.mark.parametrize(
    ("name", "model", "expected"),
    [
        (
            "gpt-4o",
            "openai/*",
            "'openai/*' has 1 '*' but model_name 'gpt-4o' has 0",
        ),
        ("team/*/*", "mock/*", "'mock/*' has 1 '*' but model_name 'team/*/*' has 2"),
    ],
)
def test_a_bad_wildcard_is_a_mistake(name: str, model: str, expected: str) -> None:
    message = error_of(
        {
            "model_list": [
                {"model_name": name, "litellm_params": {"model": model, "api_key": SECRET}}
            ]
        }
    )
    assert message.startswith(f"<config>: model_list[0].litellm_params.model: {expected}")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (["model_list"], "a config is a mapping of sections"),
        ({}, "model_list: no models"),
        ({"model_list": []}, "model_list: no models"),
        ({"model_list": ["gpt-4o"]}, "model_list[0] must be a mapping"),
        (
            {"model_list": [{"litellm_params": {"model": "mock/x"}}]},
            "model_list[0].model_name is required",
        ),
        ({"model_list": [{"model_name": "m"}]}, "model_list[0].litellm_params is required"),
        (
            {
                "model_list": [
                    {"model_name": "m", "params": {"model": "mock/x"}, "litellm_params": {}}
                ]
            },
            "model_list[0]: give litellm_params or params, not both",
        ),
        (
            {
                "model_list": [
                    {
                        "model_name": "m",
                        "litellm_params": {"model": "mock/x"},
                        "model_info": {"id": 1},
                    },
                    {
                        "model_name": "m",
                        "litellm_params": {"model": "mock/y"},
                        "model_info": {"id": "1"},
                    },
                ]
            },
            "model_list[1].model_info.id '1' is model_list[0]'s too",
        ),
        (
            {"environment_variables": {"A": ["x"]}, **one("mock/x")},
            "environment_variables.A must be a string, not list",
        ),
    ],
)
def test_a_malformed_config_is_a_mistake(data: Any, expected: str) -> None:
    assert error_of(data).startswith(f"<config>: {expected}")


# --- secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        one("openai/gpt-4o", api_key=SECRET, rpm="ten"),
        one("openai/gpt-4o", api_key=12345678),
        one("openai/gpt-4o", api_key=SECRET, temprature=1),
        one("nowhere/gpt-4o", api_key=SECRET),
        {**one("mock/x"), "general_settings": {"master_key": 123456789}},
        {
            **one("openai/gpt-4o", api_key=SECRET),
            "general_settings": {"master_key": MASTER, "x": 1},
        },
        {**one("mock/x", api_base=f"https://user:{SECRET}@proxy.example.com"), "bogus": 1},
        {
            "environment_variables": {"OPENAI_API_KEY": SECRET},
            **one("gpt-4o", rpm="os.environ/OPENAI_API_KEY"),
        },
    ],
)
def test_no_error_shows_a_secret(data: dict[str, Any]) -> None:
    message = error_of(data, LITELLM_MASTER_KEY=MASTER)
    for secret in (SECRET, MASTER, "12345678", "123456789"):
        assert secret not in message


def test_no_repr_shows_a_secret() -> None:
    config = parse(
        {
            **one("openai/gpt-4o", api_key=SECRET, extra_headers={"X-Api-Key": SECRET}),
            "general_settings": {"master_key": MASTER},
        }
    )
    shown = " ".join(
        [repr(config), repr(config.general), repr(config.models[0]), repr(config.models)]
    )
    assert SECRET not in shown and MASTER not in shown
    described = Catalog(config).router.get_config("m")
    assert described is not None and SECRET not in repr(described)


# --- the file --------------------------------------------------------------------------------


def test_a_yaml_file_loads_with_dates_left_as_text(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        "model_list:\n"
        "  - model_name: az\n"
        "    litellm_params:\n"
        "      model: azure/gpt-4o\n"
        "      api_base: https://example.openai.azure.com\n"
        "      api_version: 2024-06-01\n"
        f"      api_key: {SECRET}\n",
        encoding="utf-8",
    )
    config, found = loaded(lambda: load_config(path, environ={}))
    assert found == [] and config.source == str(path)
    assert config.models[0].deployment.params == {"api_version": "2024-06-01"}


def test_a_file_that_is_not_yaml_is_named_without_its_text(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"model_list:\n  - model_name: [m\n    api_key: {SECRET}\n", encoding="utf-8")
    with pytest.raises(ConfigurationError) as caught:
        load_config(path, environ={})
    message = caught.value.message
    assert message.startswith(f"{path}: not valid YAML: ") and "(line " in message
    assert SECRET not in message
    with pytest.raises(ConfigurationError, match="not found"):
        load_config(tmp_path / "missing.yaml", environ={})


def test_without_pyyaml_the_error_says_which_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(ConfigurationError, match=r"pip install -e '\.\[gateway\]'"):
        load_config(tmp_path / "config.yaml", environ={})


def test_the_litellm_key_table_is_loaded_and_covers_the_sections() -> None:
    keys = _config._litellm_keys()
    assert {"alerting", "database_url", "store_model_in_db"} <= keys.general_settings
    assert {"redis_host", "enable_pre_call_checks", "model_group_alias"} <= keys.router_settings
    assert {"success_callback", "cache", "set_verbose", "json_logs"} <= keys.litellm_settings
    assert {"stream_timeout", "max_retries", "tags", "api_version"} <= keys.litellm_params
    assert "usage-based-routing-v2" in keys.routing_strategy
    assert msgspec.json.decode(
        (Path(_config.__file__).parent.parent / "_data" / "litellm_config_keys.json").read_bytes()
    )["about"].startswith("The keys LiteLLM's proxy reads")
