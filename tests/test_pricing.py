"""Token estimates (heuristic and tiktoken) and prices (the dated table, set_price), and
``import rxllm`` staying light."""

from __future__ import annotations

import pytest

import rxllm

# --- tokens and prices ------------------------------------------------------------------------


def test_estimate_tokens_heuristic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RXLLM_TOKENIZER", "heuristic")
    assert rxllm.tokens.tokenizer() == "heuristic"
    assert rxllm.estimate_tokens("") == 0
    assert rxllm.estimate_tokens(None) == 0  # type: ignore[arg-type]
    assert rxllm.estimate_tokens("Hello world!") == 3  # 12 bytes / 4
    assert rxllm.estimate_tokens("Hi") == 1
    assert rxllm.estimate_tokens("日本語") == 3  # 9 UTF-8 bytes / 4, rounded up
    messages = [
        {"role": "system", "content": "Be brief."},  # 3 + 2 (role) + 3
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "x"}},
            ],
        },  # 3 + 1 + 4 + 85
    ]
    assert rxllm.estimate_request_tokens(messages) == 3 + 8 + 93
    assert rxllm.estimate_request_tokens({"model": "gpt-4o", "messages": messages}) == 104


class FakeEncoding:
    def encode(self, text: str, disallowed_special: object = ()) -> list[int]:
        return text.split()


class FakeTiktoken:
    """Stands in for tiktoken (which downloads its encodings, and tests stay offline)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.loaded: list[str] = []

    def encoding_name_for_model(self, model: str) -> str:
        if model.startswith("gpt-4o"):
            return "o200k_base"
        raise KeyError(model)

    def get_encoding(self, name: str) -> FakeEncoding:
        self.loaded.append(name)
        if self.fail:
            raise ConnectionError("no network to download the encoding")
        return FakeEncoding()


def test_estimate_tokens_uses_tiktoken_and_degrades_when_it_cannot_load(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import sys

    from rxllm import tokens

    monkeypatch.delenv("RXLLM_TOKENIZER", raising=False)
    fake = FakeTiktoken()
    monkeypatch.setitem(sys.modules, "tiktoken", fake)
    monkeypatch.setattr(tokens, "_encoders", {})
    assert rxllm.estimate_tokens("one two three four five", model="gpt-4o") == 5
    assert rxllm.estimate_tokens("one two", model="unknown-model") == 2
    assert fake.loaded == ["o200k_base"]  # loaded once, cached
    offline = FakeTiktoken(fail=True)
    monkeypatch.setitem(sys.modules, "tiktoken", offline)
    monkeypatch.setattr(tokens, "_encoders", {})
    assert rxllm.estimate_tokens("one two three four five") == 6  # 23 bytes / 4: the heuristic
    assert rxllm.estimate_tokens("one two three four five") == 6
    assert offline.loaded == ["o200k_base"]  # tried once, not on every call
    assert "estimating tokens heuristically" in caplog.text
    assert tokens.tokenizer() == "heuristic"


def test_calculate_cost_from_the_price_table() -> None:
    # OpenAI gpt-4o: $2.50 / $10.00 per million tokens; a dated snapshot resolves to it
    assert rxllm.calculate_cost("openai", "gpt-4o", 1_000_000, 1_000_000) == 12.5
    assert rxllm.calculate_cost("openai", "gpt-4o-2024-08-06", 1_000_000, 0) == 2.5
    assert rxllm.calculate_cost("openai", "gpt-4o-2024-05-13", 1_000_000, 0) == 5.0  # its own row
    assert rxllm.calculate_cost("openai", "gpt-4o-mini", 2_000, 1_000) == pytest.approx(0.0009)
    # cached prompt tokens at the cached price: 500k * 1.25 + 500k * 2.50
    assert rxllm.calculate_cost("openai", "gpt-4o", 1_000_000, 0, cached_tokens=500_000) == 1.875
    assert (
        rxllm.calculate_cost("anthropic", "claude-3-5-sonnet-20241022", 1_000_000, 1_000_000)
        == 18.0
    )
    assert rxllm.calculate_cost("anthropic", "claude-sonnet-4-5", 1_000_000, 0) == 3.0
    assert rxllm.calculate_cost(
        "mistral", "mistral-small-latest", 1_000_000, 1_000_000
    ) == pytest.approx(0.4)
    assert rxllm.calculate_cost("deepseek", "deepseek-chat", 1_000_000, 1_000_000) == pytest.approx(
        0.70
    )
    # Gemini 2.5 Pro: $1.25 / $10 up to 200k prompt tokens, $2.50 / $15 above
    assert rxllm.calculate_cost("gemini", "gemini-2.5-pro", 100_000, 0) == pytest.approx(0.125)
    assert rxllm.calculate_cost("gemini", "gemini-2.5-pro", 300_000, 0) == pytest.approx(0.75)
    assert rxllm.calculate_cost("openai", "no-such-model", 10, 10) is None
    assert rxllm.calculate_cost("nobody", "gpt-4o", 10, 10) is None


def test_price_table_is_dated_and_sourced() -> None:
    table = rxllm.pricing.price_table()
    assert table.checked == "2025-11-30" and table.currency == "USD"
    assert set(table.sources) == {"openai", "anthropic", "gemini", "mistral", "deepseek"}
    assert all(url.startswith("https://") for url in table.sources.values())
    assert set(table.models) == set(table.sources)


def test_import_rxllm_stays_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, rxllm; heavy = [m for m in ('aiohttp', 'reactivex', 'msgspec', 'tiktoken') "
        "if m in sys.modules]; print(heavy); rxllm.estimate_tokens; rxllm.calculate_cost; "
        "print('aiohttp' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split("\n")[:2] == ["[]", "False"], result.stderr


def test_set_price_adds_and_overrides() -> None:
    from rxllm import pricing

    assert rxllm.calculate_cost("openai", "my-finetune-x", 1000, 1000) is None
    pricing.set_price("openai", "my-finetune-x", input=1.0, output=2.0)
    try:
        assert rxllm.calculate_cost("openai", "my-finetune-x-2025-01-01", 1_000_000, 500_000) == 2.0
    finally:
        pricing._overrides.clear()
    with pytest.raises(ValueError):
        pricing.set_price("openai", "m", input=-1, output=0)


def test_cache_write_prices_follow_anthropics_published_multipliers() -> None:
    # Anthropic's pricing page: 5-minute cache writes 1.25x the base input price, 1-hour writes
    # 2x, cache hits 0.1x (Claude Haiku 3 rounded there: $0.30 / $0.50 / $0.03 on $0.25).
    models = rxllm.pricing.price_table().models
    for name, price in models["anthropic"].items():
        assert price.cache_write is not None and price.cache_write_1h is not None, name
        assert price.cached_input is not None, name
        if name == "claude-3-haiku":
            assert (price.cache_write, price.cache_write_1h, price.cached_input) == (0.3, 0.5, 0.03)
            continue
        assert price.cache_write == pytest.approx(price.input * 1.25), name
        assert price.cache_write_1h == pytest.approx(price.input * 2), name
        assert price.cached_input == pytest.approx(price.input * 0.1), name
    # Nobody else bills a write premium or prices thinking apart from output.
    for provider, rows in models.items():
        assert all(p.reasoning is None for p in rows.values()), provider
        if provider != "anthropic":
            assert all(p.cache_write is None and p.cache_write_1h is None for p in rows.values())


def test_a_provider_priced_as_another_takes_its_rates() -> None:
    """The registry's ``priced_as``: an OpenAI-compatible server answering for ``gpt-4o``, and
    the Responses API, are billed at OpenAI's rates; a provider with no such row is not."""
    from rxllm import pricing

    openai = pricing.price_of("openai", "gpt-4o")
    assert openai is not None
    assert pricing.price_of("openai_compatible", "gpt-4o") == openai
    assert pricing.price_of("openai_responses", "gpt-4o-2024-08-06") == openai
    assert pricing.price_of("ollama", "gpt-4o") is None
