"""rxllm: one API over many LLM providers, with streaming as hot Rx Observables.

    import rxllm
    from rxllm import ops

    stream = rxllm.completion("openai", "gpt-4o-mini",
                              messages=[{"role": "user", "content": "Write a haiku"}],
                              stream=True)
    stream.pipe(ops.extract_content()).subscribe(lambda text: print(text, end="", flush=True))

Names are imported on first use, so ``import rxllm`` stays fast; aiohttp is loaded only
when a request is made. ``RXLLM_OTEL=1`` in the environment turns OpenTelemetry on at import
(``rxllm.telemetry.instrument()``); otherwise nothing of OpenTelemetry is imported.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# The one place the version is written: pyproject.toml reads it ([tool.setuptools.dynamic]).
__version__ = "0.1.0"

# name -> module that defines it (imported lazily by __getattr__)
_LAZY = {
    "completion": "rxllm._api",
    "acompletion": "rxllm._api",
    "embedding": "rxllm._api",
    "aembedding": "rxllm._api",
    "EmbeddingResponse": "rxllm.types",
    "ChatStream": "rxllm.stream",
    "ChatChunk": "rxllm.types",
    "ChatResponse": "rxllm.types",
    "Message": "rxllm.types",
    "ToolCall": "rxllm.types",
    "Usage": "rxllm.types",
    "LLMError": "rxllm.errors",
    "is_llm_error": "rxllm.errors",
    "error_summary": "rxllm.errors",
    "list_providers": "rxllm.providers",
    "provider_info": "rxllm.providers",
    "supports_streaming": "rxllm.providers",
    "supports_tools": "rxllm.providers",
    "supports_vision": "rxllm.providers",
    "supports_reasoning": "rxllm.providers",
    "supports_embeddings": "rxllm.providers",
    "estimate_tokens": "rxllm.tokens",
    "estimate_request_tokens": "rxllm.tokens",
    "calculate_cost": "rxllm.pricing",
    "ResponseCache": "rxllm.cache",
}
_SUBMODULES = {
    "cache",
    "errors",
    "ops",
    "pricing",
    "providers",
    "router",
    "streaming",
    "stream",
    "telemetry",
    "tokens",
    "types",
    "transport",
}

__all__ = [
    "ChatChunk",
    "ChatResponse",
    "ChatStream",
    "EmbeddingResponse",
    "LLMError",
    "Message",
    "ResponseCache",
    "ToolCall",
    "Usage",
    "__version__",
    "aclose",
    "acompletion",
    "aembedding",
    "cache",
    "calculate_cost",
    "completion",
    "embedding",
    "error_summary",
    "errors",
    "estimate_request_tokens",
    "estimate_tokens",
    "is_llm_error",
    "list_providers",
    "ops",
    "pricing",
    "provider_info",
    "providers",
    "router",
    "stream",
    "streaming",
    "supports_embeddings",
    "supports_reasoning",
    "supports_streaming",
    "supports_tools",
    "supports_vision",
    "telemetry",
    "tokens",
    "transport",
    "types",
]

if TYPE_CHECKING:
    from . import cache as cache
    from . import errors as errors
    from . import ops as ops
    from . import pricing as pricing
    from . import providers as providers
    from . import router as router
    from . import stream as stream
    from . import streaming as streaming
    from . import telemetry as telemetry
    from . import tokens as tokens
    from . import transport as transport
    from . import types as types
    from ._api import acompletion as acompletion
    from ._api import aembedding as aembedding
    from ._api import completion as completion
    from ._api import embedding as embedding
    from .cache import ResponseCache as ResponseCache
    from .errors import LLMError as LLMError
    from .errors import error_summary as error_summary
    from .errors import is_llm_error as is_llm_error
    from .pricing import calculate_cost as calculate_cost
    from .providers import list_providers as list_providers
    from .providers import provider_info as provider_info
    from .providers import supports_embeddings as supports_embeddings
    from .providers import supports_reasoning as supports_reasoning
    from .providers import supports_streaming as supports_streaming
    from .providers import supports_tools as supports_tools
    from .providers import supports_vision as supports_vision
    from .stream import ChatStream as ChatStream
    from .tokens import estimate_request_tokens as estimate_request_tokens
    from .tokens import estimate_tokens as estimate_tokens
    from .types import ChatChunk as ChatChunk
    from .types import ChatResponse as ChatResponse
    from .types import EmbeddingResponse as EmbeddingResponse
    from .types import Message as Message
    from .types import ToolCall as ToolCall
    from .types import Usage as Usage


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"rxllm.{name}")
    else:
        raise AttributeError(f"module 'rxllm' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


async def aclose() -> None:
    """Close the HTTP session of the running event loop now (it is also closed automatically
    when the loop shuts down)."""
    from .transport.session import close_session

    await close_session()


if os.environ.get("RXLLM_OTEL", "").strip().lower() in ("1", "true", "yes", "on"):
    from .telemetry import _instrument_from_environment

    _instrument_from_environment()
