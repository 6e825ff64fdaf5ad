"""What a call costs, from the price table shipped with rxllm (``rxllm/_data/prices.json``).

The table is data: standard API prices in USD per million tokens, with the date they were taken
from each provider's public pricing page (:func:`price_table` shows both). Model names are matched
exactly first, then without a trailing version or date (``gpt-4o-2024-08-06`` -> ``gpt-4o``,
``claude-3-5-sonnet-20241022`` -> ``claude-3-5-sonnet``, ``mistral-small-latest`` ->
``mistral-small``). A provider or model that is not in the table has no price: :func:`price_of`
and :func:`calculate_cost` return ``None`` (so a cost dashboard can show "unknown" rather than a
wrong $0); they never guess.

Prices change, and the shipped table ages: :func:`set_price` adds or corrects a model's price
at run time (your negotiated rate, a new model, today's list price).
"""

from __future__ import annotations

import functools
import re
from importlib import resources

import msgspec

__all__ = [
    "ModelPrice",
    "PriceTable",
    "calculate_cost",
    "price_of",
    "price_table",
    "set_price",
]

#: Prices set at run time (provider -> model -> price), consulted before the shipped table.
_overrides: dict[str, dict[str, ModelPrice]] = {}

_VERSION_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|\d{3}|latest|v\d+(?::\d+)?)$")


class ModelPrice(msgspec.Struct, frozen=True, kw_only=True):
    """USD per million tokens."""

    input: float
    output: float
    #: Prompt tokens served from the provider's prompt cache (part of ``prompt_tokens``).
    cached_input: float | None = None
    #: Prompts longer than this are billed at the ``long_context_*`` prices, whole request.
    long_context_threshold: int | None = None
    long_context_input: float | None = None
    long_context_output: float | None = None


class PriceTable(msgspec.Struct, frozen=True, kw_only=True):
    checked: str
    currency: str
    unit: str
    note: str = ""
    sources: dict[str, str] = {}
    models: dict[str, dict[str, ModelPrice]] = {}


@functools.cache
def price_table() -> PriceTable:
    """The shipped price table (loaded once)."""
    data = resources.files("rxllm").joinpath("_data").joinpath("prices.json").read_bytes()
    return msgspec.json.decode(data, type=PriceTable)


def set_price(
    provider: str,
    model: str,
    *,
    input: float,
    output: float,
    cached_input: float | None = None,
) -> None:
    """Add or correct the price (USD per million tokens) of ``model`` at ``provider``; it wins
    over the shipped table for that exact name and its dated/versioned variants."""
    if min(input, output, cached_input or 0.0) < 0:
        raise ValueError("prices cannot be negative")
    _overrides.setdefault(provider, {})[model] = ModelPrice(
        input=input, output=output, cached_input=cached_input
    )


def price_of(provider: str, model: str) -> ModelPrice | None:
    """The price of ``model`` at ``provider``, or None when the table does not list it."""
    shipped = price_table().models.get(provider) or {}
    custom = _overrides.get(provider) or {}
    if not shipped and not custom:
        return None
    name = model.rsplit("models/", 1)[-1]
    while True:
        price = custom.get(name) or shipped.get(name)
        if price is not None:
            return price
        shorter = _VERSION_SUFFIX.sub("", name)
        if shorter == name:
            return None
        name = shorter


def calculate_cost(
    provider: str,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    *,
    cached_tokens: int = 0,
) -> float | None:
    """The cost in USD of a call, or None when the model is not in the price table.

    ``cached_tokens`` are the prompt tokens the provider served from its cache (they are part of
    ``prompt_tokens``, as in OpenAI's ``usage.prompt_tokens_details.cached_tokens``); they are
    billed at the cached price where the table has one.
    """
    price = price_of(provider, model)
    if price is None:
        return None
    input_price, output_price = price.input, price.output
    threshold = price.long_context_threshold
    if threshold is not None and prompt_tokens > threshold:
        input_price = price.long_context_input or input_price
        output_price = price.long_context_output or output_price
    cached = min(max(cached_tokens, 0), prompt_tokens) if price.cached_input is not None else 0
    cached_price = price.cached_input or 0.0
    total = (
        (prompt_tokens - cached) * input_price
        + cached * cached_price
        + completion_tokens * output_price
    )
    return total / 1_000_000
