"""The smallest OpenAI-compatible provider: its registry row and one call.

A server speaking Chat Completions at ``<api_base>/chat/completions`` (vLLM, llama.cpp, LM
Studio...) with no tools: the conformance suite checks it like any built-in.
"""

from __future__ import annotations

from rxllm.providers import ProviderInfo
from rxllm.providers.openai_compatible import compatible_provider

ROW = ProviderInfo(name="minimal", module=__name__, default_api_base="", key_required=False)
PROVIDER = compatible_provider(ROW)
