"""Google Gemini API: ``generateContent``, ``streamGenerateContent?alt=sse`` and embeddings.

URLs are ``{api_base}/v1beta/models/{model}:<method>``; the API key travels in the
``x-goog-api-key`` header, never in the URL (where it would end up in logs).

Requests: ``contents`` of ``user``/``model`` turns made of ``parts``; system messages become
``systemInstruction``; sampling parameters go into ``generationConfig``; OpenAI function tools
become ``functionDeclarations`` (their JSON Schema sent as ``parametersJsonSchema``, which takes
the full JSON Schema OpenAI callers write); assistant ``tool_calls`` become ``functionCall``
parts, with the ``thoughtSignature`` Gemini attached to them carried in the tool call's
``provider_fields``, and tool results ``functionResponse`` parts.

Streams: every SSE event is one whole ``GenerateContentResponse`` (CRLF-framed on the wire).
There is no end sentinel: the stream is complete when it closes after every candidate it
started has sent a ``finishReason`` (or the prompt was blocked); a close before that is a
truncation. An error mid-stream arrives as a bare JSON ``{"error": ...}`` object.
"""

from __future__ import annotations

import mimetypes
import time
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec

from .._events import SSEEvent
from .._provider import Call, ChatCall, EmbeddingCall, EventParser
from .._sse import SSEDecoder
from .._wire import HttpRequest
from ..errors import (
    AuthenticationError,
    BadRequestError,
    InternalServerError,
    LLMError,
    MalformedResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    StreamTruncatedError,
    error_for_status,
    refine_class,
)
from ..types import (
    ChatChunk,
    ChatResponse,
    Choice,
    CompletionTokensDetails,
    Delta,
    Embedding,
    EmbeddingResponse,
    FunctionCall,
    FunctionCallDelta,
    ImagePart,
    Index,
    Message,
    PromptTokensDetails,
    StreamChoice,
    TextPart,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ._common import (
    body_snippet,
    check_known_params,
    data_url,
    request_id_from,
    retry_after_from,
    tool_arguments,
)

__all__ = ["PROVIDER", "GeminiProvider", "GeminiStreamParser"]

API_VERSION = "v1beta"

#: ``reasoning_effort`` -> ``thinkingBudget`` (Gemini 2.5). Gemini 3 models take the effort as
#: their ``thinkingLevel`` instead.
THINKING_BUDGETS = {
    "none": 0,
    "disable": 0,
    "minimal": 512,
    "low": 1024,
    "medium": 8192,
    "high": 24576,
}

CHAT_PARAMS = frozenset(
    {
        "frequency_penalty",
        "max_completion_tokens",
        "max_tokens",
        "n",
        "presence_penalty",
        "reasoning_effort",
        "response_format",
        "safety_settings",
        "seed",
        "stop",
        "stream_options",
        "temperature",
        "tool_choice",
        "tools",
        "top_k",
        "top_p",
    }
)

#: ``dimensions`` -> ``outputDimensionality``; ``task_type`` (e.g. ``RETRIEVAL_QUERY``).
EMBEDDING_PARAMS = frozenset({"dimensions", "task_type"})

_FILTERED = "content_filter"
FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": _FILTERED,
    "RECITATION": _FILTERED,
    "BLOCKLIST": _FILTERED,
    "PROHIBITED_CONTENT": _FILTERED,
    "SPII": _FILTERED,
    "IMAGE_SAFETY": _FILTERED,
    "IMAGE_PROHIBITED_CONTENT": _FILTERED,
    "IMAGE_RECITATION": _FILTERED,
}

_STATUS_CLASSES: dict[str, type[LLMError]] = {
    "INVALID_ARGUMENT": BadRequestError,
    "FAILED_PRECONDITION": BadRequestError,
    "OUT_OF_RANGE": BadRequestError,
    "UNAUTHENTICATED": AuthenticationError,
    "PERMISSION_DENIED": PermissionDeniedError,
    "NOT_FOUND": NotFoundError,
    "RESOURCE_EXHAUSTED": RateLimitError,
    "CANCELLED": InternalServerError,
    "ABORTED": InternalServerError,
    "UNKNOWN": InternalServerError,
    "INTERNAL": InternalServerError,
    "DEADLINE_EXCEEDED": InternalServerError,
    "UNAVAILABLE": ServiceUnavailableError,
}

#: ``google.rpc.ErrorInfo`` reasons that say more than the status (a bad key is a 400).
_REASON_CLASSES: dict[str, type[LLMError]] = {
    "API_KEY_INVALID": AuthenticationError,
    "API_KEY_EXPIRED": AuthenticationError,
}

_encode = msgspec.json.Encoder().encode
_decode_json = msgspec.json.decode


# --- wire structs ------------------------------------------------------------------------------


class _FunctionCall(msgspec.Struct, gc=False):
    name: str = ""
    args: msgspec.Raw = msgspec.Raw(b"{}")
    id: str | None = None


class _Part(msgspec.Struct, rename="camel", gc=False):
    text: str | None = None
    thought: bool = False
    thought_signature: str | None = None
    function_call: _FunctionCall | None = None


class _Content(msgspec.Struct, gc=False):
    parts: list[_Part] = []


class _Candidate(msgspec.Struct, rename="camel", gc=False):
    content: _Content | None = None
    finish_reason: str | None = None
    index: Index = 0


class _UsageMetadata(msgspec.Struct, rename="camel", gc=False):
    prompt_token_count: int = 0
    candidates_token_count: int = 0
    thoughts_token_count: int = 0
    tool_use_prompt_token_count: int = 0
    cached_content_token_count: int = 0
    total_token_count: int = 0


class _PromptFeedback(msgspec.Struct, rename="camel", gc=False):
    block_reason: str | None = None


class _ErrorDetail(msgspec.Struct, rename="camel", gc=False):
    type: str = msgspec.field(default="", name="@type")
    reason: str | None = None
    retry_delay: str | None = None


class _GoogleError(msgspec.Struct, gc=False):
    code: int | None = None
    message: str = ""
    status: str | None = None
    details: list[_ErrorDetail] = []


class _Response(msgspec.Struct, rename="camel", gc=False):
    """A ``GenerateContentResponse``, or (mid-stream, or in a 200 body) an error object."""

    candidates: list[_Candidate] = []
    usage_metadata: _UsageMetadata | None = None
    model_version: str | None = None
    response_id: str | None = None
    prompt_feedback: _PromptFeedback | None = None
    error: _GoogleError | None = None


class _ErrorEnvelope(msgspec.Struct, gc=False):
    error: _GoogleError


class _Embedding(msgspec.Struct, gc=False):
    values: list[float] = []


class _EmbedResponse(msgspec.Struct, rename="camel", gc=False):
    embeddings: list[_Embedding] = []
    usage_metadata: _UsageMetadata | None = None


_decode_response = msgspec.json.Decoder(_Response).decode
_decode_error = msgspec.json.Decoder(_ErrorEnvelope).decode
_decode_errors = msgspec.json.Decoder(list[_ErrorEnvelope]).decode
_decode_embeddings = msgspec.json.Decoder(_EmbedResponse).decode


# --- errors ------------------------------------------------------------------------------------


def _seconds(duration: str) -> float | None:
    """A protobuf Duration in JSON (``"34.4s"``) -> seconds."""
    try:
        return max(0.0, float(duration.removesuffix("s")))
    except ValueError:
        return None


def _typed_error(
    error: _GoogleError,
    status: int | None,
    headers: Mapping[str, str],
    *,
    provider: str,
    model: str | None,
) -> LLMError:
    reason = next((d.reason for d in error.details if d.reason), None)
    delay = next((d.retry_delay for d in error.details if d.retry_delay), None)
    cls = (
        _REASON_CLASSES.get(reason or "")
        or _STATUS_CLASSES.get(error.status or "")
        or error_for_status(status or error.code)
    )
    cls = refine_class(cls, error.message, reason, error.status)
    retry_after = _seconds(delay) if delay else None
    return cls(
        error.message,
        provider=provider,
        model=model,
        status_code=status,
        code=reason or error.status,
        error_type=error.status,
        request_id=request_id_from(headers),
        retry_after=retry_after if retry_after is not None else retry_after_from(headers),
    )


def error_from_body(
    status: int | None,
    body: bytes,
    headers: Mapping[str, str],
    *,
    provider: str,
    model: str | None,
) -> LLMError:
    """``{"error": {code, message, status, details}}`` (or a one-element list of it) -> the
    typed error: the ``ErrorInfo`` reason, then the status name, then the HTTP code decide."""
    try:
        if body.lstrip()[:1] == b"[":
            error = _decode_errors(body)[0].error
        else:
            error = _decode_error(body).error
    except (msgspec.DecodeError, RecursionError, IndexError):
        message = body_snippet(body) or f"HTTP {status} with an empty body"
        return refine_class(error_for_status(status), message)(
            message,
            provider=provider,
            model=model,
            status_code=status,
            request_id=request_id_from(headers),
            retry_after=retry_after_from(headers),
        )
    return _typed_error(error, status, headers, provider=provider, model=model)


# --- responses ---------------------------------------------------------------------------------


def _usage(meta: _UsageMetadata) -> Usage:
    """Thought tokens are billed as output, so they count as completion tokens."""
    prompt = meta.prompt_token_count + meta.tool_use_prompt_token_count
    thoughts = meta.thoughts_token_count
    completion = meta.candidates_token_count + thoughts
    cached = meta.cached_content_token_count
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=meta.total_token_count or prompt + completion,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=cached) if cached else None,
        completion_tokens_details=(
            CompletionTokensDetails(reasoning_tokens=thoughts) if thoughts else None
        ),
    )


def _finish(reason: str | None, called_tools: bool) -> str | None:
    if reason is None:
        return None
    if reason == "STOP" and called_tools:
        return "tool_calls"
    return FINISH_REASONS.get(reason, "stop")


class _Parts:
    """What one candidate's parts say, sorted into rxllm's fields."""

    __slots__ = ("calls", "reasoning", "signature", "text")

    def __init__(self, parts: list[_Part]) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.calls: list[tuple[_FunctionCall, str | None]] = []
        self.signature: str | None = None
        for part in parts:
            if part.function_call is not None:
                self.calls.append((part.function_call, part.thought_signature))
                continue
            if part.text is not None:
                (self.reasoning if part.thought else self.text).append(part.text)
            if part.thought_signature and self.signature is None:
                self.signature = part.thought_signature


def _call_id(function_call: _FunctionCall, response_id: str, candidate: int, n: int) -> str:
    """Gemini's own id when it sends one, else a stable one made from the response id."""
    if function_call.id:
        return function_call.id
    return f"call_{response_id}_{n}" if candidate == 0 else f"call_{response_id}_{candidate}_{n}"


def _new_id() -> str:
    return f"gemini-{uuid.uuid4().hex}"


def _signature_fields(signature: str | None) -> dict[str, Any] | None:
    return {"thought_signature": signature} if signature else None


# --- the stream --------------------------------------------------------------------------------


class GeminiStreamParser(EventParser):
    """``data: {GenerateContentResponse}`` events; complete only at a clean close after every
    started candidate sent its ``finishReason`` (see :meth:`finish`).

    A ``functionCall`` part arrives whole, so it becomes one complete ``ToolCallDelta``. Usage
    is attached once the answer is finished: Gemini repeats ``usageMetadata`` on every event,
    but without the output counts until the last.
    """

    __slots__ = ("_calls", "_created", "_finished", "_id", "_model", "_name", "_open", "done")

    def __init__(self, name: str, model: str) -> None:
        self._name = name
        self._model = model
        self._id = ""
        self._created = 0
        self._calls: dict[int, int] = {}  # candidate index -> tool calls so far
        self._open: set[int] = set()  # candidates started and not finished
        self._finished = False
        self.done = False

    def feed(self, event: SSEEvent) -> ChatChunk | None:
        try:
            response = _decode_response(event.data)
        except (msgspec.DecodeError, RecursionError):
            raise MalformedResponseError(
                f"unparseable stream frame: {body_snippet(event.data, 120)!r}",
                provider=self._name,
                model=self._model,
            ) from None
        if response.error is not None:
            raise _typed_error(response.error, None, {}, provider=self._name, model=self._model)
        first = not self._id
        if first:
            self._id = response.response_id or _new_id()
            self._created = int(time.time())
        choices = [self._choice(candidate, first) for candidate in response.candidates]
        feedback = response.prompt_feedback
        if not choices and feedback is not None and feedback.block_reason:
            self._finished = True
            choices.append(
                StreamChoice(
                    delta=Delta(role="assistant") if first else Delta(),
                    finish_reason=_FILTERED,
                    native_finish_reason=feedback.block_reason,
                )
            )
        meta = response.usage_metadata
        usage = _usage(meta) if meta is not None and self._finished else None
        if not choices and usage is None:
            return None  # nothing a subscriber could use (an early usage-only event)
        return ChatChunk(
            id=self._id,
            created=self._created,
            model=response.model_version or self._model,
            choices=choices,
            usage=usage,
            provider=self._name,
        )

    def _choice(self, candidate: _Candidate, first: bool) -> StreamChoice:
        index = candidate.index
        parts = _Parts(candidate.content.parts if candidate.content is not None else [])
        tool_calls = None
        if parts.calls:
            done = self._calls.get(index, 0)
            tool_calls = [
                ToolCallDelta(
                    index=done + n,
                    id=_call_id(call, self._id, index, done + n),
                    type="function",
                    function=FunctionCallDelta(name=call.name, arguments=bytes(call.args).decode()),
                    provider_fields=_signature_fields(signature),
                )
                for n, (call, signature) in enumerate(parts.calls)
            ]
            self._calls[index] = done + len(tool_calls)
        delta = Delta(
            role="assistant" if first else None,
            content="".join(parts.text) or None,
            reasoning_content="".join(parts.reasoning) or None,
            tool_calls=tool_calls,
            provider_fields=_signature_fields(parts.signature),
        )
        reason = candidate.finish_reason
        if reason is None:
            self._open.add(index)
        else:
            self._open.discard(index)
            self._finished = True
        return StreamChoice(
            index=index,
            delta=delta,
            finish_reason=_finish(reason, index in self._calls),
            native_finish_reason=reason,
        )

    def finish(self) -> ChatChunk | None:
        """Gemini has no end marker: a close is the end only if the answer had finished."""
        if not self._finished or self._open:
            raise StreamTruncatedError(
                "the connection closed before the answer finished (no finishReason)",
                provider=self._name,
                model=self._model,
            )
        self.done = True
        return None


# --- requests ----------------------------------------------------------------------------------


def _image_part(url: str) -> dict[str, Any]:
    """``data:`` URLs are sent inline; other URLs by reference (``fileData``)."""
    inline = data_url(url)
    if inline is not None:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    guessed = mimetypes.guess_type(url.split("?", 1)[0])[0]
    return {"fileData": {"mimeType": guessed, "fileUri": url} if guessed else {"fileUri": url}}


def _parts(content: str | list[Any] | None) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    parts: list[dict[str, Any]] = []
    for part in content:
        if isinstance(part, TextPart):
            parts.append({"text": part.text})
        elif isinstance(part, ImagePart):
            parts.append(_image_part(part.image_url.url))
    return parts


def _model_parts(message: Message, names: dict[str, str]) -> list[dict[str, Any]]:
    """An assistant message -> ``model`` parts, its thought signatures put back in place."""
    parts = [part for part in _parts(message.content) if part.get("text") != ""]
    fields = message.provider_fields
    signature = fields.get("thought_signature") if fields else None
    if signature:
        for text_part in parts:
            if "text" in text_part:
                text_part["thoughtSignature"] = signature
                break
    for call in message.tool_calls or ():
        names[call.id] = call.function.name
        args = tool_arguments(call)
        part: dict[str, Any] = {"functionCall": {"name": call.function.name, "args": args}}
        call_signature = (call.provider_fields or {}).get("thought_signature")
        if call_signature:
            part["thoughtSignature"] = call_signature
        parts.append(part)
    return parts


def _function_response(message: Message, names: dict[str, str]) -> dict[str, Any]:
    """A tool result -> ``functionResponse``. Its ``response`` must be a JSON object: a result
    that is one is sent as is, anything else as ``{"result": ...}``."""
    name = names.get(message.tool_call_id or "") or message.name
    if not name:
        raise BadRequestError(
            "a role 'tool' message must answer a tool call of an earlier assistant message "
            "(tool_call_id) or name its function (name)"
        )
    text = message.text
    try:
        result: Any = _decode_json(text)
    except (msgspec.DecodeError, RecursionError):
        result = text
    response = result if isinstance(result, dict) else {"result": result}
    return {"functionResponse": {"name": name, "response": response}}


def translate_messages(
    messages: list[Message],
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """OpenAI-style messages -> ``systemInstruction`` and ``contents``; turns of one role that
    follow each other are merged (all results of parallel calls go back in one turn)."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, for the results
    for message in messages:
        role: str = message.role
        if role in ("system", "developer"):
            system.append({"text": message.text})
            continue
        if role == "assistant":
            role, parts = "model", _model_parts(message, names)
            if not parts:
                continue
        elif role == "tool":
            role, parts = "user", [_function_response(message, names)]
        else:
            parts = _parts(message.content)
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return ({"parts": system} if system else None), contents


def _tools(tools: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI function tools -> one ``functionDeclarations`` tool; Gemini's own tool entries
    (``googleSearch``, ``codeExecution``, ``functionDeclarations``...) pass as they are."""
    declarations: list[dict[str, Any]] = []
    native: list[dict[str, Any]] = []
    for tool in tools:
        if tool.get("type") != "function" or "function" not in tool:
            native.append(dict(tool))
            continue
        function = tool["function"]
        declaration: dict[str, Any] = {"name": function["name"]}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters"):
            declaration["parametersJsonSchema"] = function["parameters"]
        declarations.append(declaration)
    return ([{"functionDeclarations": declarations}] if declarations else []) + native


def _tool_config(choice: Any) -> dict[str, Any]:
    if choice == "auto":
        config: dict[str, Any] = {"mode": "AUTO"}
    elif choice == "none":
        config = {"mode": "NONE"}
    elif choice in ("required", "any"):
        config = {"mode": "ANY"}
    elif isinstance(choice, Mapping) and choice.get("type") == "function":
        config = {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}
    else:
        raise BadRequestError(
            f"tool_choice {choice!r} is not auto, none, required or a named function"
        )
    return {"functionCallingConfig": config}


def _thinking_config(model: str, effort: str) -> dict[str, Any]:
    if effort not in THINKING_BUDGETS:
        raise BadRequestError(
            f"reasoning_effort {effort!r} is not one of {', '.join(THINKING_BUDGETS)}"
        )
    off = THINKING_BUDGETS[effort] == 0
    if model.removeprefix("models/").startswith("gemini-3"):
        return {"thinkingLevel": "minimal" if off else effort, "includeThoughts": not off}
    if off:
        return {"thinkingBudget": 0}
    return {"thinkingBudget": THINKING_BUDGETS[effort], "includeThoughts": True}


def _generation_config(call: ChatCall) -> dict[str, Any]:
    params = call.params
    config: dict[str, Any] = {}
    for name, key in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("n", "candidateCount"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if params.get(name) is not None:
            config[key] = params[name]
    max_tokens = params.get("max_tokens", params.get("max_completion_tokens"))
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = params.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    response_format = params.get("response_format")
    if response_format:
        kind = response_format.get("type")
        if kind in ("json_object", "json_schema"):
            config["responseMimeType"] = "application/json"
        if kind == "json_schema":
            schema = (response_format.get("json_schema") or {}).get("schema")
            if schema:
                config["responseJsonSchema"] = schema
    effort = params.get("reasoning_effort")
    if effort is not None:
        config["thinkingConfig"] = _thinking_config(call.model, effort)
    return config


def build_body(call: ChatCall) -> dict[str, Any]:
    """The JSON body of a ``generateContent`` request (the streamed one is the same)."""
    params = call.params
    system, contents = translate_messages(call.messages)
    body: dict[str, Any] = {"contents": contents}
    if system is not None:
        body["systemInstruction"] = system
    if params.get("safety_settings"):
        body["safetySettings"] = params["safety_settings"]
    if params.get("tools"):
        body["tools"] = _tools(params["tools"])
    if params.get("tool_choice") is not None:
        body["toolConfig"] = _tool_config(params["tool_choice"])
    config = _generation_config(call)
    if config:
        body["generationConfig"] = config
    body.update(call.extra_body)
    return body


def _model_path(model: str) -> str:
    """``gemini-2.5-flash`` -> ``models/gemini-2.5-flash``; ``tunedModels/x`` stays."""
    return model if "/" in model else f"models/{model}"


class GeminiProvider:
    """The Gemini API (Google AI Studio keys)."""

    name = "gemini"
    option_names: frozenset[str] = frozenset()

    def check_params(self, params: dict[str, Any], drop: bool) -> dict[str, Any]:
        return check_known_params(self.name, params, CHAT_PARAMS, drop)

    def headers(self, call: Call) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if call.api_key:
            headers["x-goog-api-key"] = call.api_key
        headers.update(call.extra_headers)
        return headers

    def url(self, call: Call, method: str) -> str:
        return f"{call.api_base.rstrip('/')}/{API_VERSION}/{_model_path(call.model)}:{method}"

    def build_request(self, call: ChatCall) -> HttpRequest:
        method = "streamGenerateContent?alt=sse" if call.stream else "generateContent"
        try:
            body = build_body(call)
        except BadRequestError as exc:
            raise exc._with_context(provider=self.name, model=call.model, secret=None) from None
        return HttpRequest("POST", self.url(call, method), self.headers(call), _encode(body))

    def parse_response(self, body: bytes, call: ChatCall) -> ChatResponse:
        try:
            response = _decode_response(body)
        except (msgspec.DecodeError, RecursionError):
            raise MalformedResponseError(
                f"response is not a GenerateContentResponse: {body_snippet(body, 200)!r}",
                provider=self.name,
                model=call.model,
            ) from None
        if response.error is not None:
            raise _typed_error(response.error, 200, {}, provider=self.name, model=call.model)
        response_id = response.response_id or _new_id()
        choices = []
        for candidate in response.candidates:
            parts = _Parts(candidate.content.parts if candidate.content is not None else [])
            tool_calls = [
                ToolCall(
                    id=_call_id(call_part, response_id, candidate.index, n),
                    function=FunctionCall(
                        name=call_part.name, arguments=bytes(call_part.args).decode()
                    ),
                    provider_fields=_signature_fields(signature),
                )
                for n, (call_part, signature) in enumerate(parts.calls)
            ]
            message = Message(
                role="assistant",
                content="".join(parts.text) if parts.text or not tool_calls else None,
                tool_calls=tool_calls or None,
                reasoning_content="".join(parts.reasoning) or None,
                provider_fields=_signature_fields(parts.signature),
            )
            choices.append(
                Choice(
                    index=candidate.index,
                    message=message,
                    finish_reason=_finish(candidate.finish_reason, bool(tool_calls)),
                    native_finish_reason=candidate.finish_reason,
                )
            )
        feedback = response.prompt_feedback
        if not choices and feedback is not None and feedback.block_reason:
            choices.append(
                Choice(
                    message=Message(role="assistant", content=""),
                    finish_reason=_FILTERED,
                    native_finish_reason=feedback.block_reason,
                )
            )
        meta = response.usage_metadata
        return ChatResponse(
            id=response_id,
            created=int(time.time()),
            model=response.model_version or call.model,
            choices=choices,
            usage=_usage(meta) if meta is not None else None,
            provider=self.name,
        )

    def decoder(self) -> SSEDecoder:
        return SSEDecoder()

    def stream_parser(self, call: ChatCall) -> GeminiStreamParser:
        return GeminiStreamParser(self.name, call.model)

    def map_error(
        self, status: int, body: bytes, headers: Mapping[str, str], call: Call
    ) -> LLMError:
        return error_from_body(status, body, headers, provider=self.name, model=call.model)

    # --- embeddings --------------------------------------------------------------------

    def check_embedding_params(self, params: dict[str, Any], drop: bool) -> dict[str, Any]:
        return check_known_params(self.name, params, EMBEDDING_PARAMS, drop)

    def build_embedding_request(self, call: EmbeddingCall) -> HttpRequest:
        """One ``batchEmbedContents`` request embeds every input string."""
        model = _model_path(call.model)
        requests = []
        for text in call.input:
            request: dict[str, Any] = {"model": model, "content": {"parts": [{"text": text}]}}
            if call.params.get("task_type"):
                request["taskType"] = call.params["task_type"]
            if call.params.get("dimensions"):
                request["outputDimensionality"] = call.params["dimensions"]
            requests.append(request)
        body = {"requests": requests, **call.extra_body}
        url = self.url(call, "batchEmbedContents")
        return HttpRequest("POST", url, self.headers(call), _encode(body))

    def parse_embedding_response(self, body: bytes, call: EmbeddingCall) -> EmbeddingResponse:
        try:
            response = _decode_embeddings(body)
        except (msgspec.DecodeError, RecursionError):
            raise MalformedResponseError(
                f"response is not a batchEmbedContents answer: {body_snippet(body, 200)!r}",
                provider=self.name,
                model=call.model,
            ) from None
        meta = response.usage_metadata
        prompt = meta.prompt_token_count if meta is not None else 0
        return EmbeddingResponse(
            data=[
                Embedding(index=i, embedding=item.values)
                for i, item in enumerate(response.embeddings)
            ],
            model=call.model,
            usage=Usage(prompt_tokens=prompt, total_tokens=prompt) if meta is not None else None,
            provider=self.name,
        )


PROVIDER = GeminiProvider()
