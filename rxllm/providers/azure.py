"""Azure OpenAI (``POST {api_base}/openai/deployments/{deployment}/chat/completions``).

``rxllm.completion("azure", "<deployment>", api_base="https://<resource>.openai.azure.com",
api_version="2024-10-21", ...)``: the model argument names the deployment, the API version is
the ``api-version`` query parameter (option ``api_version``, env ``AZURE_API_VERSION``,
default :data:`DEFAULT_API_VERSION`), and the key goes in the ``api-key`` header (env
``AZURE_API_KEY`` or ``AZURE_OPENAI_API_KEY``; base URL from ``AZURE_API_BASE`` or
``AZURE_OPENAI_ENDPOINT``). Embeddings use the deployment's ``/embeddings``.

The wire is OpenAI's, with Azure's content filtering around it: the stream opens with a chunk
of empty ``id``/``model`` and ``"choices": []`` that only carries ``prompt_filter_results``
(dropped: it holds nothing of the answer), every chunk has ``content_filter_results``, filter
chunks may follow the finish, and an answer cut by the filter ends with finish reason
``content_filter``. When a filter result says ``"filtered": true`` the results are kept in
``provider_fields["content_filter_results"]`` of that delta (of the message, non-streaming).
A prompt refused by the filter is HTTP 400 ``code: content_filter`` ->
``ContentPolicyViolationError``.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from .._events import StreamEvents
from .._provider import Call, ChatCall, EmbeddingCall
from ..errors import LLMError
from ..types import ChatChunk
from .openai import CHAT_PARAMS, EMBEDDING_PARAMS, OpenAIStreamParser
from .openai_compatible import (
    CompatibleProvider,
    CompatibleStreamParser,
    WireChoice,
    WireReader,
)

__all__ = ["DEFAULT_API_VERSION", "PROVIDER", "AzureProvider"]

#: The API version used when none is given (a GA version of the data-plane inference API).
DEFAULT_API_VERSION = "2024-10-21"


def _flagged(results: Any) -> bool:
    """Whether any category of a filter result says ``filtered: true``."""
    if isinstance(results, dict):
        return results.get("filtered") is True or any(_flagged(v) for v in results.values())
    return False


class _FilterReader(WireReader):
    __slots__ = ()

    def choice_fields(self, choice: WireChoice) -> dict[str, Any] | None:
        results = choice.content_filter_results
        if results and _flagged(results):
            return {"content_filter_results": results}
        return None


class _AzureStreamParser(CompatibleStreamParser):
    """Drops the opening prompt-filter chunk (no id, no choices, no usage)."""

    __slots__ = ()

    def parse(self, events: StreamEvents) -> tuple[list[ChatChunk], LLMError | None]:
        chunks, error = super().parse(events)
        if chunks and not chunks[0].id:
            chunks = [c for c in chunks if c.id or c.choices or c.usage is not None]
        return chunks, error


class AzureProvider(CompatibleProvider):
    keep_when = (("filtered", True),)

    def reader(self) -> WireReader:
        return _FilterReader(self.name, self.keep)

    def stream_parser(self, call: ChatCall) -> OpenAIStreamParser:
        return _AzureStreamParser(self.name, call.model, self.reader(), self.markers)

    def auth_headers(self, call: Call) -> dict[str, str]:
        return {"api-key": call.api_key} if call.api_key else {}

    def deployment_url(self, call: Call, path: str) -> str:
        version = call.options.get("api_version") or DEFAULT_API_VERSION
        deployment = urllib.parse.quote(call.model, safe="")
        query = urllib.parse.urlencode({"api-version": version})
        return f"{self.base(call)}/openai/deployments/{deployment}/{path}?{query}"

    def url(self, call: ChatCall) -> str:
        return self.deployment_url(call, "chat/completions")

    def embedding_url(self, call: EmbeddingCall) -> str:
        return self.deployment_url(call, "embeddings")


PROVIDER = AzureProvider(
    "azure",
    params=CHAT_PARAMS,
    embedding_params=EMBEDDING_PARAMS,
    option_names=frozenset({"api_version"}),
    base_required=True,
)
