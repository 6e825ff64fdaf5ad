"""Which price-table rows bill a request: one look-up for the gateway's spend and the
playground's rates, so the two never disagree."""

from __future__ import annotations

from .. import providers
from ..errors import ConfigurationError
from ..pricing import ModelPrice, cost_of, price_of
from ..types import Usage

__all__ = ["cost", "rates"]


def _priced(provider: str, model: str) -> str | None:
    """The provider whose row prices ``model``: its own, else one its registry row names in
    ``priced_as`` (an OpenAI-compatible server answering for ``gpt-4o``)."""
    try:
        others = providers.provider_info(provider).priced_as
    except ConfigurationError:
        others = ()
    return next((name for name in (provider, *others) if price_of(name, model)), None)


def rates(provider: str, model: str) -> ModelPrice | None:
    """The rates ``model`` at ``provider`` is billed at (USD per million tokens)."""
    name = _priced(provider, model)
    return None if name is None else price_of(name, model)


def cost(provider: str, model: str, usage: Usage) -> float | None:
    """The cost of ``usage``, each part at its own rate (:func:`rxllm.pricing.cost_of`)."""
    name = _priced(provider, model)
    return None if name is None else cost_of(name, model, usage)
