"""The one shape every provider is translated into: messages, stream chunks and responses.

Shapes follow OpenAI's ``chat.completion`` / ``chat.completion.chunk`` so code written against
OpenAI reads naturally, plus ``provider`` (who produced it) and ``source`` (a fan-out label).
All structs are ``gc=False``: they never form reference cycles, and a long stream keeps
thousands of them alive for replay, which the cyclic GC would otherwise rescan again and again.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "ChatChunk",
    "ChatResponse",
    "Choice",
    "CompletionTokensDetails",
    "ContentPart",
    "Delta",
    "Embedding",
    "EmbeddingResponse",
    "FunctionCall",
    "FunctionCallDelta",
    "ImagePart",
    "Index",
    "ImageURL",
    "Message",
    "PromptTokensDetails",
    "StreamChoice",
    "TextPart",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
    "FINISH_REASONS",
]

#: The normalised finish reasons; a provider's own value is kept in ``native_finish_reason``.
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")


#: A position in a list (a choice, a tool call, an embedding): never negative. A frame that
#: says ``"index": -1`` fails to decode and is a ``MalformedResponseError``, instead of landing
#: in Python's "last item" and completing with an empty answer.
Index = Annotated[int, msgspec.Meta(ge=0)]


class _Omit(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """Base for request-side structs: unset optional fields are left out of the JSON."""


# --- content parts -------------------------------------------------------------------------


class ImageURL(_Omit):
    url: str
    detail: str | None = None


class TextPart(_Omit, tag="text", tag_field="type"):
    text: str
    #: A prompt-caching breakpoint (``{"type": "ephemeral"}``, optionally ``"ttl": "1h"``),
    #: as Anthropic and LiteLLM write it: the Anthropic provider sends it on this block;
    #: providers without it leave it out.
    cache_control: dict[str, Any] | None = None


class ImagePart(_Omit, tag="image_url", tag_field="type"):
    image_url: ImageURL
    cache_control: dict[str, Any] | None = None


ContentPart = TextPart | ImagePart


# --- tool calls ----------------------------------------------------------------------------


class FunctionCall(msgspec.Struct, kw_only=True, gc=False):
    name: str
    arguments: str = ""


class ToolCall(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    """A complete tool call; ``function.arguments`` is the JSON text the model produced."""

    id: str
    type: str = ""
    function: FunctionCall
    #: Opaque provider data that must go back with the call next turn (a thought signature).
    provider_fields: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        # Not a field default: omit_defaults would then leave "type" out of the JSON.
        if not self.type:
            self.type = "function"

    def parsed_arguments(self) -> Any:
        """The arguments decoded from JSON (``{}`` when the model sent none)."""
        return msgspec.json.decode(self.function.arguments) if self.function.arguments else {}


class FunctionCallDelta(_Omit):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(_Omit):
    """A fragment of a streamed tool call; fragments with the same ``index`` belong together."""

    # Always in the JSON, as OpenAI writes it (the openai SDK indexes with it): omit_defaults
    # never leaves out a field whose default comes from a factory.
    index: Index = msgspec.field(default_factory=int)
    id: str | None = None
    type: str | None = None
    function: FunctionCallDelta | None = None
    provider_fields: dict[str, Any] | None = None


# --- messages ------------------------------------------------------------------------------


class Message(_Omit):
    """A chat message, request or response side. ``content`` is text or a list of parts."""

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning_content: str | None = None
    refusal: str | None = None
    #: Opaque provider data that must round-trip with this message (e.g. a signed thinking
    #: block); rxllm's provider modules read it back when the message is sent again.
    provider_fields: dict[str, Any] | None = None
    #: A prompt-caching breakpoint on the whole message (LiteLLM's form): the Anthropic
    #: provider puts it on the message's last block; providers without it leave it out.
    cache_control: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """The text of ``content`` whether it is a string or a list of parts."""
        content = self.content
        if content is None:
            return ""
        if isinstance(content, str):
            return content
        return "".join(p.text for p in content if isinstance(p, TextPart))


# --- usage ---------------------------------------------------------------------------------


class PromptTokensDetails(_Omit):
    """What the prompt tokens were made of; every count is a part of ``prompt_tokens``.

    ``cached_tokens`` and ``audio_tokens`` are OpenAI's fields. ``cache_creation_tokens`` (and
    its part ``cache_creation_1h_tokens``) are rxllm's, named as LiteLLM names them: an OpenAI
    client reading rxllm's JSON ignores them.
    """

    #: Prompt tokens read from the provider's prompt cache (OpenAI ``cached_tokens``,
    #: Anthropic ``cache_read_input_tokens``, Gemini ``cachedContentTokenCount``, DeepSeek
    #: ``prompt_cache_hit_tokens``).
    cached_tokens: int | None = None
    audio_tokens: int | None = None
    #: Prompt tokens written to the prompt cache by this call (Anthropic
    #: ``cache_creation_input_tokens``), which some providers bill at a premium.
    cache_creation_tokens: int | None = None
    #: The part of ``cache_creation_tokens`` written with a 1-hour lifetime (Anthropic
    #: ``cache_creation.ephemeral_1h_input_tokens``), billed at a higher premium than the
    #: default 5 minutes.
    cache_creation_1h_tokens: int | None = None


class CompletionTokensDetails(_Omit):
    """What the completion tokens were made of; every count is a part of
    ``completion_tokens`` (OpenAI's fields)."""

    #: Thinking tokens (OpenAI ``reasoning_tokens``, Gemini ``thoughtsTokenCount``, DeepSeek
    #: ``reasoning_tokens``, Anthropic ``output_tokens_details.thinking_tokens`` where its API
    #: reports it; older Anthropic answers count thinking inside ``completion_tokens`` only).
    reasoning_tokens: int | None = None
    audio_tokens: int | None = None
    accepted_prediction_tokens: int | None = None
    rejected_prediction_tokens: int | None = None


class Usage(msgspec.Struct, kw_only=True, gc=False):
    """Token counts of one call, shaped like OpenAI's ``usage``.

    As in OpenAI's, ``prompt_tokens`` counts *all* input tokens: those read from the prompt
    cache and those written to it included (Anthropic's ``input_tokens`` leaves both out; rxllm
    adds them back). ``completion_tokens`` counts all output tokens, thinking included. The
    details say what those totals were made of, each part *inside* its total:

    - ``prompt_tokens_details.cached_tokens``: read from the cache (cheaper);
    - ``prompt_tokens_details.cache_creation_tokens``: written to the cache (dearer at
      Anthropic), of which ``cache_creation_1h_tokens`` with the 1-hour lifetime;
    - ``completion_tokens_details.reasoning_tokens``: thinking.

    So the prompt tokens billed at the plain input price are ``prompt_tokens - cached_tokens -
    cache_creation_tokens`` (:attr:`uncached_prompt_tokens`). A usage is reported once per call,
    in the chunk that carries it (for a stream, usually the last); it is never a sum over
    chunks. :func:`rxllm.pricing.cost_of` bills each part at its own rate.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails | None = None
    completion_tokens_details: CompletionTokensDetails | None = None

    @property
    def cache_read_tokens(self) -> int:
        """Prompt tokens read from the cache (0 when not reported)."""
        details = self.prompt_tokens_details
        return (details.cached_tokens or 0) if details is not None else 0

    @property
    def cache_write_tokens(self) -> int:
        """Prompt tokens written to the cache (0 when not reported)."""
        details = self.prompt_tokens_details
        return (details.cache_creation_tokens or 0) if details is not None else 0

    @property
    def uncached_prompt_tokens(self) -> int:
        """Prompt tokens neither read from nor written to the cache."""
        return max(self.prompt_tokens - self.cache_read_tokens - self.cache_write_tokens, 0)

    @property
    def reasoning_tokens(self) -> int:
        """Completion tokens spent thinking (0 when not reported apart)."""
        details = self.completion_tokens_details
        return (details.reasoning_tokens or 0) if details is not None else 0


# --- streaming -----------------------------------------------------------------------------


class Delta(_Omit):
    role: str | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None
    refusal: str | None = None
    provider_fields: dict[str, Any] | None = None


class StreamChoice(msgspec.Struct, kw_only=True, gc=False):
    index: Index = 0
    delta: Delta = msgspec.field(default_factory=Delta)
    finish_reason: str | None = None
    native_finish_reason: str | None = None


class ChatChunk(msgspec.Struct, kw_only=True, gc=False):
    """One streamed chunk, shaped like OpenAI's ``chat.completion.chunk``."""

    id: str
    # A Literal, not str: msgspec then hands every chunk the same string object instead of
    # allocating one per chunk (a long stream keeps every chunk for replay). "" is Azure's
    # opening chunk.
    object: Literal["chat.completion.chunk", ""] = "chat.completion.chunk"
    created: int = 0
    model: str = ""
    choices: list[StreamChoice] = []
    usage: Usage | None = None
    system_fingerprint: str | None = None
    provider: str = ""
    source: str | None = None


# --- complete responses --------------------------------------------------------------------


class Choice(msgspec.Struct, kw_only=True, gc=False):
    index: Index = 0
    message: Message
    finish_reason: str | None = None
    native_finish_reason: str | None = None


class ChatResponse(msgspec.Struct, kw_only=True, gc=False):
    """A complete answer, shaped like OpenAI's ``chat.completion``."""

    id: str
    object: str = "chat.completion"
    created: int = 0
    model: str = ""
    choices: list[Choice] = []
    usage: Usage | None = None
    system_fingerprint: str | None = None
    provider: str = ""
    source: str | None = None

    @property
    def message(self) -> Message | None:
        """The first choice's message, if any."""
        return self.choices[0].message if self.choices else None

    @property
    def text(self) -> str:
        """The first choice's text ("" when the model only called tools)."""
        return self.choices[0].message.text if self.choices else ""

    @property
    def reasoning_content(self) -> str | None:
        return self.choices[0].message.reasoning_content if self.choices else None

    @property
    def tool_calls(self) -> list[ToolCall]:
        if not self.choices:
            return []
        return self.choices[0].message.tool_calls or []

    @property
    def finish_reason(self) -> str | None:
        return self.choices[0].finish_reason if self.choices else None


# --- embeddings ----------------------------------------------------------------------------


class Embedding(msgspec.Struct, kw_only=True, gc=False):
    index: Index = 0
    embedding: list[float]
    object: str = "embedding"


class EmbeddingResponse(msgspec.Struct, kw_only=True, gc=False):
    """Vectors for each input, in input order, shaped like OpenAI's embeddings response."""

    data: list[Embedding]
    model: str = ""
    usage: Usage | None = None
    provider: str = ""
    object: str = "list"

    @property
    def vectors(self) -> list[list[float]]:
        """The embeddings alone, in input order."""
        return [item.embedding for item in sorted(self.data, key=lambda item: item.index)]
