"""What a call costs, from the price table shipped with rxllm (``rxllm/_data/prices.json``).

The table is data: standard API prices in USD per million tokens, with the date they were taken
from each provider's public pricing page (:func:`price_table` shows both). Model names are matched
exactly first, then without a trailing version or date (``gpt-4o-2024-08-06`` -> ``gpt-4o``,
``claude-3-5-sonnet-20241022`` -> ``claude-3-5-sonnet``, ``mistral-small-latest`` ->
``mistral-small``). A provider or model that is not in the table has no price: :func:`price_of`,
:func:`calculate_cost` and :func:`cost_of` return ``None`` (so a cost dashboard can show
"unknown" rather than a wrong $0); they never guess.

:func:`cost_of` bills a :class:`~rxllm.types.Usage` part by part (:func:`cost_breakdown` shows
the parts): prompt tokens read from the cache at the ``cached_input`` price, tokens written to
it at the ``cache_write`` price (``cache_write_1h`` for the 1-hour lifetime), the rest of the
prompt at ``input``; thinking tokens at ``reasoning`` where a price says so, else (as every
provider in the table bills them) at ``output`` with the rest of the completion. A part whose
price the table does not give is billed at the plain price it is a part of (``input`` or
``output``): that is what OpenAI, Gemini and DeepSeek charge for a cache write, and what a
provider without a cache discount charges for a cache read.

Prices change, and the shipped table ages: :func:`set_price` adds or corrects a model's price
at run time (your negotiated rate, a new model, today's list price).
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from .types import Usage

__all__ = [
    "CostBreakdown",
    "ModelPrice",
    "PriceTable",
    "calculate_cost",
    "cost_breakdown",
    "cost_of",
    "price_of",
    "price_table",
    "set_price",
]

#: Prices set at run time (provider -> model -> price), consulted before the shipped table.
_overrides: dict[str, dict[str, ModelPrice]] = {}
#: Provider -> the providers whose prices its models take (:func:`price_as`).
_aliases: dict[str, tuple[str, ...]] = {}

_VERSION_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4}|\d{3}|latest|v\d+(?::\d+)?)$")


class ModelPrice(msgspec.Struct, frozen=True, kw_only=True):
    """USD per million tokens."""

    input: float
    output: float
    #: Prompt tokens served from the provider's prompt cache (part of ``prompt_tokens``).
    cached_input: float | None = None
    #: Prompt tokens written to the prompt cache (default lifetime: 5 minutes at Anthropic).
    #: None: billed at ``input``.
    cache_write: float | None = None
    #: Prompt tokens written to the cache with a 1-hour lifetime. None: at ``cache_write``.
    cache_write_1h: float | None = None
    #: Thinking tokens (part of the completion). None: at ``output``, as OpenAI, Anthropic,
    #: Gemini and DeepSeek bill them; set it for a provider that prices thinking apart.
    reasoning: float | None = None
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
    cache_write: float | None = None,
    cache_write_1h: float | None = None,
    reasoning: float | None = None,
) -> None:
    """Add or correct the price (USD per million tokens) of ``model`` at ``provider``; it wins
    over the shipped table for that exact name and its dated/versioned variants. The optional
    prices are those of :class:`ModelPrice` (None: the part is billed at the plain price)."""
    optional = (cached_input, cache_write, cache_write_1h, reasoning)
    if min(input, output, *(p or 0.0 for p in optional)) < 0:
        raise ValueError("prices cannot be negative")
    _overrides.setdefault(provider, {})[model] = ModelPrice(
        input=input,
        output=output,
        cached_input=cached_input,
        cache_write=cache_write,
        cache_write_1h=cache_write_1h,
        reasoning=reasoning,
    )


def price_as(provider: str, others: tuple[str, ...]) -> None:
    """Price ``provider``'s models as ``others``' when it has no row of its own for them (an
    OpenAI-compatible server answering for ``gpt-4o``). The provider registry says this for
    its rows (``ProviderInfo.priced_as``)."""
    if others:
        _aliases[provider] = others
    else:
        _aliases.pop(provider, None)


def price_of(provider: str, model: str) -> ModelPrice | None:
    """The price of ``model`` at ``provider`` (else at a provider it is priced as, see
    :func:`price_as`), or None when the table does not list it."""
    price = _own_price(provider, model)
    if price is None:
        for other in _aliases.get(provider, ()):
            price = _own_price(other, model)
            if price is not None:
                break
    return price


def _own_price(provider: str, model: str) -> ModelPrice | None:
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


class CostBreakdown(msgspec.Struct, frozen=True, kw_only=True):
    """What a call cost, part by part, in USD (:func:`cost_breakdown`); ``total`` is their sum.

    ``input`` is the prompt neither read from nor written to the cache, ``cache_read`` and
    ``cache_write`` the cached parts (1-hour writes included), ``output`` the completion but
    its thinking, ``reasoning`` the thinking."""

    input: float
    cache_read: float
    cache_write: float
    output: float
    reasoning: float
    total: float


def _clamp(value: int, upper: int) -> int:
    return min(max(value, 0), max(upper, 0))


def _breakdown(
    price: ModelPrice,
    prompt_tokens: int,
    completion_tokens: int,
    *,
    cached_tokens: int,
    cache_creation_tokens: int,
    cache_creation_1h_tokens: int,
    reasoning_tokens: int,
) -> CostBreakdown:
    input_price, output_price = price.input, price.output
    threshold = price.long_context_threshold
    if threshold is not None and prompt_tokens > threshold:
        input_price = price.long_context_input or input_price
        output_price = price.long_context_output or output_price
    read = _clamp(cached_tokens, prompt_tokens)
    written = _clamp(cache_creation_tokens, prompt_tokens - read)
    written_1h = _clamp(cache_creation_1h_tokens, written)
    thinking = _clamp(reasoning_tokens, completion_tokens)
    write_price = input_price if price.cache_write is None else price.cache_write
    write_1h_price = write_price if price.cache_write_1h is None else price.cache_write_1h
    read_price = input_price if price.cached_input is None else price.cached_input
    thinking_price = output_price if price.reasoning is None else price.reasoning
    # USD-millionths per part, each divided once: a total equals the sum of its parts exactly
    # as often as floating point lets it.
    parts = (
        (prompt_tokens - read - written) * input_price,
        read * read_price,
        (written - written_1h) * write_price + written_1h * write_1h_price,
        (completion_tokens - thinking) * output_price,
        thinking * thinking_price,
    )
    plain, cache_read, cache_write, output, reasoning = (part / 1_000_000 for part in parts)
    return CostBreakdown(
        input=plain,
        cache_read=cache_read,
        cache_write=cache_write,
        output=output,
        reasoning=reasoning,
        total=sum(parts) / 1_000_000,
    )


def calculate_cost(
    provider: str,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    *,
    cached_tokens: int = 0,
    cache_creation_tokens: int = 0,
    cache_creation_1h_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> float | None:
    """The cost in USD of a call, or None when the model is not in the price table.

    ``cached_tokens`` are the prompt tokens the provider served from its cache and
    ``cache_creation_tokens`` those it wrote to it (of which ``cache_creation_1h_tokens`` with a
    1-hour lifetime); both are part of ``prompt_tokens``, as in
    ``usage.prompt_tokens_details``. ``reasoning_tokens`` are part of ``completion_tokens``.
    Each part is billed at its own price where the table has one, else at the plain input or
    output price. :func:`cost_of` takes a whole ``Usage``.
    """
    price = price_of(provider, model)
    if price is None:
        return None
    return _breakdown(
        price,
        prompt_tokens,
        completion_tokens,
        cached_tokens=cached_tokens,
        cache_creation_tokens=cache_creation_tokens,
        cache_creation_1h_tokens=cache_creation_1h_tokens,
        reasoning_tokens=reasoning_tokens,
    ).total


def cost_breakdown(provider: str, model: str, usage: Usage) -> CostBreakdown | None:
    """What ``usage`` cost at ``provider``'s price of ``model``, part by part (None when the
    table has no price for it)."""
    price = price_of(provider, model)
    if price is None:
        return None
    prompt = usage.prompt_tokens_details
    return _breakdown(
        price,
        usage.prompt_tokens,
        usage.completion_tokens,
        cached_tokens=usage.cache_read_tokens,
        cache_creation_tokens=usage.cache_write_tokens,
        cache_creation_1h_tokens=(
            (prompt.cache_creation_1h_tokens or 0) if prompt is not None else 0
        ),
        reasoning_tokens=usage.reasoning_tokens,
    )


def cost_of(provider: str, model: str, usage: Usage) -> float | None:
    """The cost in USD of a call that reported ``usage``, each part at its own rate (see the
    module's docstring); None when the table has no price for the model."""
    breakdown = cost_breakdown(provider, model, usage)
    return None if breakdown is None else breakdown.total
