"""OpenTelemetry for rxllm, following the GenAI semantic conventions (v1.41.0).

    pip install -e '.[otel]'          # in the clone: the opentelemetry-api package

    import rxllm.telemetry
    rxllm.telemetry.instrument()        # or RXLLM_OTEL=1 in the environment

From then on every request - streamed or not, direct or through the router, in the library or
the gateway - is one span and a few metrics, with the application's tracer and meter providers
(the global ones unless others are given):

* a ``CLIENT`` span ``chat {gen_ai.request.model}`` (``embeddings ...`` for embeddings) from
  the start of the request to its end, with the request's parameters, the response's id, model
  and finish reasons, the usage (input, output, cache-read and reasoning tokens), the time to
  the first chunk of a stream, ``server.address``/``server.port``, and on failure ``error.type``
  (the ``rxllm.errors`` class name: ``RateLimitError``, ``APITimeoutError``,
  ``StreamCancelledError``...) with status ``ERROR``;
* for a routed request, one child span ``rxllm.router.attempt`` per request sent (deployment,
  configuration, attempt number, outcome, error): retries and fallbacks are visible;
* the histograms ``gen_ai.client.operation.duration`` (s), ``gen_ai.client.token.usage``
  (``{token}``, by ``gen_ai.token.type``), and for streams
  ``gen_ai.client.operation.time_to_first_chunk`` and
  ``gen_ai.client.operation.time_per_output_chunk`` (s), with the conventions' bucket advice.

Message contents (``gen_ai.input.messages``, ``gen_ai.output.messages``,
``gen_ai.tool.definitions``, as JSON strings on the span) are recorded only when asked:
``instrument(capture_content=True)`` or ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``.

A stream's span starts when its request starts (its first subscription) and ends exactly once,
when it completes, fails, or is cancelled (its last subscriber disposed); a stream never
subscribed sends nothing and makes no span. Its parent is the span current where the request
was *made* (where ``completion(...)`` was called), whichever thread or loop then runs it.

Off (never instrumented, or after :func:`uninstrument`), rxllm imports nothing of OpenTelemetry
and its per-chunk path does no work for telemetry at all. The measurements themselves are
made once per request by :class:`RequestTelemetry`, for every :class:`Sink` registered with
:func:`add_sink` (this exporter is one; the gateway's Prometheus metrics can be another).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from . import __version__, providers
from ._telemetry import (
    Listener,
    RequestTelemetry,
    Sent,
    Sink,
    add_sink,
    conversation,
    remove_sink,
    server_of,
)
from .errors import ConfigurationError
from .types import ChatResponse, ImagePart, Message, TextPart

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.metrics import Histogram, MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider
    from opentelemetry.util.types import AttributeValue

__all__ = [
    "Listener",
    "RequestTelemetry",
    "SEMCONV_VERSION",
    "Sent",
    "Sink",
    "add_sink",
    "conversation",
    "instrument",
    "is_instrumented",
    "remove_sink",
    "uninstrument",
]

#: The version of OpenTelemetry's semantic conventions whose GenAI names rxllm emits.
SEMCONV_VERSION = "1.41.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{SEMCONV_VERSION}"

#: The environment variable that turns content capture on (the GenAI instrumentations' own).
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"

#: Bucket advice of the conventions: seconds (duration, first chunk, per chunk) and tokens.
DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
TOKEN_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip

_ON = ("1", "true", "yes", "on")
_CAPTURE_ON = (*_ON, "span_only", "span_and_event")

#: The sink instrument() registered (None: not instrumented).
_sink: _OTelSink | None = None


def instrument(
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
    *,
    capture_content: bool | None = None,
    chunk_intervals: bool = True,
) -> None:
    """Turn OpenTelemetry on for every request made from now on.

    ``tracer_provider`` and ``meter_provider`` default to the global ones (those the application
    set with ``opentelemetry.trace.set_tracer_provider`` and
    ``opentelemetry.metrics.set_meter_provider``, also when it sets them later).
    ``capture_content`` records message contents on the spans (default: the environment
    variable ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``, else off).
    ``chunk_intervals=False`` leaves out ``gen_ai.client.operation.time_per_output_chunk``, the
    one measurement made per chunk (a data point each, which is most of what telemetry costs
    on a fast stream). Calling it again replaces the settings; it never makes two spans of one
    request."""
    global _sink  # noqa: PLW0603 - the one exporter instrument() made
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        raise ConfigurationError(
            "rxllm.telemetry needs the OpenTelemetry API (opentelemetry-api): "
            "pip install -e '.[otel]' in the clone"
        ) from None
    if capture_content is None:
        capture_content = os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() in _CAPTURE_ON
    tracer = trace.get_tracer("rxllm", __version__, tracer_provider, schema_url=SCHEMA_URL)
    meter = metrics.get_meter("rxllm", __version__, meter_provider, schema_url=SCHEMA_URL)
    instruments = _Instruments(meter, chunk_intervals=chunk_intervals)
    sink = _OTelSink(tracer, instruments, capture_content=capture_content)
    if _sink is not None:
        remove_sink(_sink)
    _sink = sink
    add_sink(sink)


def uninstrument() -> None:
    """Turn OpenTelemetry off again (requests already under way still end their spans)."""
    global _sink  # noqa: PLW0603 - the one exporter instrument() made
    if _sink is not None:
        remove_sink(_sink)
        _sink = None


def is_instrumented() -> bool:
    return _sink is not None


def _instrument_from_environment() -> None:
    """``RXLLM_OTEL=1``: instrument at import, warning (not failing) without the API."""
    try:
        instrument()
    except ConfigurationError as exc:
        warnings.warn(f"RXLLM_OTEL is set, but {exc}", RuntimeWarning, stacklevel=3)


# --- the exporter ---------------------------------------------------------------------------


class _Instruments:
    """The four GenAI client histograms."""

    def __init__(self, meter: Any, *, chunk_intervals: bool) -> None:
        self.duration: Histogram = meter.create_histogram(
            "gen_ai.client.operation.duration",
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.tokens: Histogram = meter.create_histogram(
            "gen_ai.client.token.usage",
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS,
        )
        self.first_chunk: Histogram = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            unit="s",
            description="Time to receive the first chunk, measured from when the client issues "
            "the generation request to when the first chunk is received in the response stream.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.per_chunk: Histogram | None = None
        if chunk_intervals:
            self.per_chunk = meter.create_histogram(
                "gen_ai.client.operation.time_per_output_chunk",
                unit="s",
                description="Time per output chunk, recorded for each chunk received after the "
                "first one, measured as the time elapsed from the end of the previous chunk to "
                "the end of the current chunk.",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
            )


class _OTelSink:
    """Spans and metrics of every request (one :class:`_Request` listener each)."""

    def __init__(self, tracer: Tracer, instruments: _Instruments, *, capture_content: bool):
        from opentelemetry import context

        self.tracer = tracer
        self.instruments = instruments
        self.capture_content = capture_content
        self._current_context = context.get_current
        self._names: dict[str, str] = {}

    def request(self, request: RequestTelemetry) -> Listener:
        return _Request(self, self._current_context())

    def provider_name(self, provider: str) -> str:
        """``gen_ai.provider.name`` of an rxllm provider, from the registry's ``otel_name``."""
        name = self._names.get(provider)
        if name is None:
            try:
                name = providers.provider_info(provider).otel_name or provider
            except ConfigurationError:  # a plug-in since unregistered
                name = provider
            self._names[provider] = name
        return name


class _Request(Listener):
    """One request's span: started with the request, ended (and its metrics recorded) when it
    finishes."""

    __slots__ = ("parent", "sink", "span", "task", "token")

    def __init__(self, sink: _OTelSink, parent: Context) -> None:
        self.sink = sink
        #: The context the request was made in: its current span is the parent.
        self.parent = parent
        self.span: Span | None = None
        self.token: object = None
        self.task: asyncio.Task[Any] | None = None

    def started(self, request: RequestTelemetry) -> None:
        from opentelemetry import context, trace

        sink = self.sink
        span = self.span = sink.tracer.start_span(
            _span_name(request),
            context=self.parent,
            kind=trace.SpanKind.CLIENT,
            attributes=_start_attributes(request, sink.provider_name(request.provider)),
            start_time=request.start_ns,
        )
        # The request's own work (its HTTP requests, say) happens inside its span.
        with contextlib.suppress(RuntimeError):
            self.task = asyncio.current_task()
        if self.task is not None:
            self.token = context.attach(trace.set_span_in_context(span, self.parent))

    def finished(self, request: RequestTelemetry) -> None:
        from opentelemetry import context
        from opentelemetry.trace import Status, StatusCode

        span = self.span
        if span is None:
            return
        sink = self.sink
        provider = sink.provider_name(request.provider)
        attributes = _end_attributes(request, provider)
        if sink.capture_content:
            attributes.update(_content_attributes(request))
        span.set_attributes(attributes)
        error = request.error
        if error is not None:
            if request.outcome == "error" and isinstance(error, Exception):
                span.record_exception(error, timestamp=request.end_ns)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        if request.routed:
            self._attempt_spans(request, span)
        if self.token is not None:
            token, self.token = self.token, None
            with contextlib.suppress(RuntimeError):
                if asyncio.current_task() is self.task:  # else its context ends with its task
                    context.detach(token)  # type: ignore[arg-type]
        _record_metrics(sink.instruments, request, provider)  # first: a span ended shows all
        span.end(end_time=request.end_ns)

    def _attempt_spans(self, request: RequestTelemetry, parent: Span) -> None:
        """One child span per request sent (and for a deployment whose request could not
        even be built, a last one with no duration)."""
        from opentelemetry import trace
        from opentelemetry.trace import Status, StatusCode

        tracer = self.sink.tracer
        context = trace.set_span_in_context(parent)
        attempts: list[tuple[Any, Sent | None]] = [(sent.record, sent) for sent in request.sent]
        attempts += [(record, None) for record in request.records[len(request.sent) :]]
        for record, attempt in attempts:
            attributes: dict[str, AttributeValue] = {"rxllm.router.config": request.config or ""}
            error: BaseException | None = None
            if attempt is not None:
                error = attempt.error
                attributes["rxllm.router.provider"] = attempt.provider
                attributes["rxllm.router.model"] = attempt.model
                attributes.update(_server_attributes(attempt.api_base))
            if record is not None:
                error = record.error if record.error is not None else error
                attributes.update(
                    {
                        "rxllm.router.group": record.group,
                        "rxllm.router.deployment": record.deployment,
                        "rxllm.router.attempt": record.number,
                        "rxllm.router.outcome": record.outcome,
                        "rxllm.router.provider": record.provider,
                        "rxllm.router.model": record.model,
                    }
                )
                if record.cooled_down:
                    attributes["rxllm.router.cooled_down"] = True
            if error is not None:
                attributes["error.type"] = type(error).__name__
            start = attempt.start_ns if attempt is not None else request.end_ns
            end = attempt.end_ns if attempt is not None and attempt.end_ns else request.end_ns
            span = tracer.start_span(
                "rxllm.router.attempt",
                context=context,
                kind=trace.SpanKind.INTERNAL,
                attributes=attributes,
                start_time=start,
            )
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            span.end(end_time=end)


# --- attributes ------------------------------------------------------------------------------


def _span_name(request: RequestTelemetry) -> str:
    model = request.requested_model
    return f"{request.operation} {model}" if model else request.operation


def _server_attributes(api_base: str) -> dict[str, AttributeValue]:
    address, port = server_of(api_base)
    if address is None:
        return {}
    attributes: dict[str, AttributeValue] = {"server.address": address}
    if port is not None:
        attributes["server.port"] = port
    return attributes


def _start_attributes(request: RequestTelemetry, provider: str) -> dict[str, AttributeValue]:
    """What is known when the request starts (the attributes samplers may look at first)."""
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": request.operation,
        "gen_ai.provider.name": provider,
    }
    if request.requested_model:
        attributes["gen_ai.request.model"] = request.requested_model
    if request.server_address is not None:
        attributes["server.address"] = request.server_address
        if request.server_port is not None:
            attributes["server.port"] = request.server_port
    if request.stream:
        attributes["gen_ai.request.stream"] = True
    if request.conversation_id is not None:
        attributes["gen_ai.conversation.id"] = request.conversation_id
    if request.config is not None:
        attributes["rxllm.router.config"] = request.config
    attributes.update(_parameter_attributes(request.params, request.operation))
    return attributes


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _integer(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _parameter_attributes(params: Mapping[str, Any], operation: str) -> dict[str, AttributeValue]:
    """The request's OpenAI-style parameters as ``gen_ai.request.*`` attributes."""
    attributes: dict[str, AttributeValue] = {}
    if operation == "embeddings":
        formats = params.get("encoding_format")
        if isinstance(formats, str):
            attributes["gen_ai.request.encoding_formats"] = (formats,)
        dimensions = _integer(params.get("dimensions"))
        if dimensions is not None:
            attributes["gen_ai.embeddings.dimension.count"] = dimensions
        return attributes
    max_tokens = _integer(params.get("max_completion_tokens", params.get("max_tokens")))
    if max_tokens is not None:
        attributes["gen_ai.request.max_tokens"] = max_tokens
    for name in ("temperature", "top_p", "top_k", "frequency_penalty", "presence_penalty"):
        value = _number(params.get(name))
        if value is not None:
            attributes[f"gen_ai.request.{name}"] = value
    stop = params.get("stop")
    if isinstance(stop, str):
        attributes["gen_ai.request.stop_sequences"] = (stop,)
    elif isinstance(stop, (list, tuple)) and all(isinstance(s, str) for s in stop):
        attributes["gen_ai.request.stop_sequences"] = tuple(stop)
    seed = _integer(params.get("seed"))
    if seed is not None:
        attributes["gen_ai.request.seed"] = seed
    choices = _integer(params.get("n"))
    if choices is not None and choices != 1:
        attributes["gen_ai.request.choice.count"] = choices
    response_format = params.get("response_format")
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
        if kind in ("json_object", "json_schema"):
            attributes["gen_ai.output.type"] = "json"
        elif kind == "text":
            attributes["gen_ai.output.type"] = "text"
    return attributes


def _end_attributes(request: RequestTelemetry, provider: str) -> dict[str, AttributeValue]:
    """What is known when the request ends."""
    attributes: dict[str, AttributeValue] = {"gen_ai.provider.name": provider}
    if request.server_address is not None:
        attributes["server.address"] = request.server_address
        if request.server_port is not None:
            attributes["server.port"] = request.server_port
    if request.response_id is not None:
        attributes["gen_ai.response.id"] = request.response_id
    if request.response_model is not None:
        attributes["gen_ai.response.model"] = request.response_model
    reasons = request.finish_reasons
    if reasons:
        attributes["gen_ai.response.finish_reasons"] = reasons
    first_chunk = request.time_to_first_chunk
    if first_chunk is not None:
        attributes["gen_ai.response.time_to_first_chunk"] = first_chunk
    usage = request.usage
    if usage is not None:
        attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
        if request.operation != "embeddings":
            attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens
        prompt = usage.prompt_tokens_details
        if prompt is not None:
            if prompt.cached_tokens is not None:
                attributes["gen_ai.usage.cache_read.input_tokens"] = prompt.cached_tokens
            written = getattr(prompt, "cache_creation_tokens", None)
            if isinstance(written, int):
                attributes["gen_ai.usage.cache_creation.input_tokens"] = written
        completion = usage.completion_tokens_details
        if completion is not None and completion.reasoning_tokens is not None:
            attributes["gen_ai.usage.reasoning.output_tokens"] = completion.reasoning_tokens
    cost = request.cost
    if cost is not None:
        attributes["rxllm.cost_usd"] = cost
    if request.routed:
        attributes["rxllm.router.attempts"] = len(request.records) or len(request.sent)
    if request.error_type is not None:
        attributes["error.type"] = request.error_type
    return attributes


def _metric_attributes(request: RequestTelemetry, provider: str) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": request.operation,
        "gen_ai.provider.name": provider,
    }
    if request.requested_model:
        attributes["gen_ai.request.model"] = request.requested_model
    if request.response_model is not None:
        attributes["gen_ai.response.model"] = request.response_model
    if request.server_address is not None:
        attributes["server.address"] = request.server_address
        if request.server_port is not None:
            attributes["server.port"] = request.server_port
    return attributes


def _record_metrics(instruments: _Instruments, request: RequestTelemetry, provider: str) -> None:
    attributes = _metric_attributes(request, provider)
    duration = request.duration
    if duration is not None:
        error_type = request.error_type
        instruments.duration.record(
            duration,
            attributes if error_type is None else {**attributes, "error.type": error_type},
        )
    usage = request.usage
    if usage is not None:
        instruments.tokens.record(usage.prompt_tokens, {**attributes, "gen_ai.token.type": "input"})
        if request.operation != "embeddings":
            instruments.tokens.record(
                usage.completion_tokens, {**attributes, "gen_ai.token.type": "output"}
            )
    if request.stream:
        first_chunk = request.time_to_first_chunk
        if first_chunk is not None:
            instruments.first_chunk.record(first_chunk, attributes)
        if instruments.per_chunk is not None:
            record = instruments.per_chunk.record
            for seconds in request.chunk_intervals():
                record(seconds, attributes)


# --- contents (opt-in) -----------------------------------------------------------------------

_FINISH = {"tool_calls": "tool_call"}


def _arguments(text: str | None) -> Any:
    if not text:
        return {}
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return text


def _parts(message: Message) -> Iterator[dict[str, Any]]:
    """A message's parts in the conventions' JSON schema of messages."""
    if message.reasoning_content:
        yield {"type": "reasoning", "content": message.reasoning_content}
    content = message.content
    if message.role == "tool":
        yield {
            "type": "tool_call_response",
            "id": message.tool_call_id,
            "response": message.text if content is not None else None,
        }
        return
    if isinstance(content, str):
        if content:
            yield {"type": "text", "content": content}
    elif content is not None:
        for part in content:
            if isinstance(part, TextPart):
                yield {"type": "text", "content": part.text}
            elif isinstance(part, ImagePart):
                yield {"type": "uri", "modality": "image", "uri": part.image_url.url}
    for call in message.tool_calls or ():
        yield {
            "type": "tool_call",
            "id": call.id,
            "name": call.function.name,
            "arguments": _arguments(call.function.arguments),
        }


def _input_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    result = []
    for message in messages:
        item: dict[str, Any] = {"role": message.role, "parts": list(_parts(message))}
        if message.name:
            item["name"] = message.name
        result.append(item)
    return result


def _output_messages(response: ChatResponse, failed: bool) -> list[dict[str, Any]]:
    return [
        {
            "role": choice.message.role,
            "parts": list(_parts(choice.message)),
            "finish_reason": _FINISH.get(choice.finish_reason or "", choice.finish_reason)
            or ("error" if failed else "stop"),
        }
        for choice in response.choices
    ]


def _tool_definitions(tools: Any) -> list[dict[str, Any]]:
    definitions = []
    for tool in tools if isinstance(tools, (list, tuple)) else ():
        if not isinstance(tool, Mapping):
            continue
        function = tool.get("function")
        if isinstance(function, Mapping):
            definitions.append({"type": tool.get("type", "function"), **function})
        else:
            definitions.append(dict(tool))
    return definitions


def _json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


def _content_attributes(request: RequestTelemetry) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {}
    if request.operation != "chat":
        return attributes
    if request.messages:
        attributes["gen_ai.input.messages"] = _json(_input_messages(request.messages))
    response = request.response
    if isinstance(response, ChatResponse) and response.choices:
        attributes["gen_ai.output.messages"] = _json(
            _output_messages(response, request.error is not None)
        )
    tools = _tool_definitions(request.params.get("tools"))
    if tools:
        attributes["gen_ai.tool.definitions"] = _json(tools)
    return attributes
