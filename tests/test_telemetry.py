"""OpenTelemetry (``rxllm.telemetry``) over real loopback HTTP, checked against the GenAI
semantic conventions v1.41.0: span names, kinds, attribute names and values, metric names,
units, attributes and values, read back from the OpenTelemetry SDK's in-memory exporters.

The names and well-known values expected here are those of the conventions' registry
(``model/gen-ai/*.yaml`` at v1.41.0): ``gen_ai.provider.name`` is ``openai``, ``anthropic``,
``gcp.gemini``...; every ``gen_ai.*`` attribute emitted is also checked against the constants
of the ``opentelemetry-semantic-conventions`` package (installed with the SDK).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes
from opentelemetry.trace import SpanKind, StatusCode

import rxllm
from rxllm import _telemetry, errors, telemetry
from rxllm.router import Router
from rxllm.streaming import collect, collect_sync

from .conftest import API_KEY, fixture_bytes
from .server import ReplayServer, Reply
from .test_router import FakeTime, FirstChoice, always_500, dep, error_reply

ROOT = Path(__file__).resolve().parent.parent
MESSAGES = [{"role": "user", "content": "What's the weather in San Francisco?"}]
OPENAI_TEXT = (
    "I'm unable to provide real-time weather updates. To get the current weather in San "
    "Francisco, I recommend checking a reliable weather website or a weather app."
)
OPENAI_CHUNKS = 33  # data: events of openai/stream_text_usage.sse, [DONE] left out
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)  # fmt: skip
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)  # fmt: skip
#: Every gen_ai.* attribute the conventions' registry names (the semconv package's constants).
GEN_AI_NAMES = {
    value
    for name, value in vars(gen_ai_attributes).items()
    if name.startswith("GEN_AI_") and isinstance(value, str)
}


#: Notified whenever something a test waits for happens: a span ends, a sink hears of a request,
#: rxllm's telemetry logs. ``wait_for`` waits on it (with a timeout), never polls.
CHANGED = threading.Condition()


def _changed() -> None:
    with CHANGED:
        CHANGED.notify_all()


class _Notifying(SimpleSpanProcessor):
    def on_end(self, span: ReadableSpan) -> None:
        super().on_end(span)
        _changed()


class _LogNotifier(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        _changed()


logging.getLogger("rxllm.telemetry").addHandler(_LogNotifier())


@dataclass
class Otel:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider

    def finished(self, n: int = 1, timeout: float = 10) -> list[ReadableSpan]:
        """The ended spans, once there are at least ``n`` (a stream's span may end on its
        loop thread just after its subscriber heard of the end)."""
        wait_for(lambda: len(self.spans.get_finished_spans()) >= n, timeout)
        return list(self.spans.get_finished_spans())

    def chat_spans(self, n: int = 1) -> list[ReadableSpan]:
        return [s for s in self.finished(n) if s.name != "rxllm.router.attempt"]

    def metrics(self) -> dict[str, Any]:
        """metric name -> the metric (its unit, its data points)."""
        data = self.reader.get_metrics_data()
        found = {}
        for resource in data.resource_metrics if data is not None else ():
            for scope in resource.scope_metrics:
                assert scope.scope.name == "rxllm"
                assert scope.scope.schema_url == "https://opentelemetry.io/schemas/1.41.0"
                for metric in scope.metrics:
                    found[metric.name] = metric
        return found

    def points(self, name: str) -> list[HistogramDataPoint]:
        metric = self.metrics().get(name)
        return [] if metric is None else list(metric.data.data_points)


@pytest.fixture
def otel() -> Iterator[Otel]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(_Notifying(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield Otel(spans, reader, tracer_provider)
    telemetry.uninstrument()
    tracer_provider.shutdown()
    meter_provider.shutdown()


def openai_stream(base: str, **params: Any) -> rxllm.ChatStream:
    return rxllm.completion(
        "openai", "gpt-4o", messages=MESSAGES, stream=True, api_key=API_KEY, api_base=base, **params
    )


def attributes_of(span: ReadableSpan) -> dict[str, Any]:
    attributes = dict(span.attributes or {})
    unknown = sorted(k for k in attributes if k.startswith("gen_ai.") and k not in GEN_AI_NAMES)
    assert not unknown, f"not in the conventions: {unknown}"
    return attributes


def wait_for(condition: Any, timeout: float = 10) -> bool:
    """Wait until ``condition()`` holds, woken by :data:`CHANGED`; False after ``timeout``."""
    with CHANGED:
        return bool(CHANGED.wait_for(condition, timeout))


# --- one request, one span --------------------------------------------------------------------


def test_a_streamed_openai_call(otel: Otel, server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse"), piece=200))
    chat = openai_stream(
        openai_base, temperature=0.2, max_tokens=100, top_p=0.9, stop=["END"], seed=7
    )
    assert collect_sync(chat, timeout=10).text == OPENAI_TEXT
    (span,) = otel.chat_spans()
    assert span.name == "chat gpt-4o"
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    assert span.instrumentation_scope is not None
    assert span.instrumentation_scope.name == "rxllm"
    assert span.instrumentation_scope.schema_url == "https://opentelemetry.io/schemas/1.41.0"
    attributes = attributes_of(span)
    first_chunk = attributes.pop("gen_ai.response.time_to_first_chunk")
    assert 0 < first_chunk < (span.end_time - span.start_time) / 1e9  # type: ignore[operator]
    cost = attributes.pop("rxllm.cost_usd")
    assert cost == pytest.approx(rxllm.calculate_cost("openai", "gpt-4o-2024-08-06", 14, 30))
    assert attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.request.stream": True,
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 100,
        "gen_ai.request.top_p": 0.9,
        "gen_ai.request.stop_sequences": ("END",),
        "gen_ai.request.seed": 7,
        "gen_ai.response.id": "chatcmpl-ABfw031mOJeYCSHe4yI2ZjOA6kMJL",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 14,
        "gen_ai.usage.output_tokens": 30,
        "gen_ai.usage.reasoning.output_tokens": 0,
        "server.address": "127.0.0.1",
        "server.port": server.port,
    }
    # No content unless asked for.
    assert not any("messages" in key for key in attributes)


def test_a_streamed_call_s_metrics(otel: Otel, server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse"), piece=300))
    collect_sync(openai_stream(openai_base), timeout=10)
    (span,) = otel.chat_spans()
    metrics = otel.metrics()
    assert {name: metrics[name].unit for name in metrics} == {
        "gen_ai.client.operation.duration": "s",
        "gen_ai.client.token.usage": "{token}",
        "gen_ai.client.operation.time_to_first_chunk": "s",
        "gen_ai.client.operation.time_per_output_chunk": "s",
    }
    common = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "server.address": "127.0.0.1",
        "server.port": server.port,
    }
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert dict(duration.attributes or {}) == common
    assert duration.count == 1
    assert duration.sum == pytest.approx((span.end_time - span.start_time) / 1e9, abs=2e-3)  # type: ignore[operator]
    assert tuple(duration.explicit_bounds) == DURATION_BUCKETS
    tokens = {
        dict(p.attributes or {})["gen_ai.token.type"]: p
        for p in otel.points("gen_ai.client.token.usage")
    }
    assert {kind: (p.count, p.sum) for kind, p in tokens.items()} == {
        "input": (1, 14),
        "output": (1, 30),
    }
    assert dict(tokens["input"].attributes or {}) == {**common, "gen_ai.token.type": "input"}
    assert tuple(tokens["input"].explicit_bounds) == TOKEN_BUCKETS
    (first,) = otel.points("gen_ai.client.operation.time_to_first_chunk")
    assert dict(first.attributes or {}) == common
    assert first.count == 1
    assert first.sum == pytest.approx(
        dict(span.attributes or {})["gen_ai.response.time_to_first_chunk"]
    )
    (per_chunk,) = otel.points("gen_ai.client.operation.time_per_output_chunk")
    assert dict(per_chunk.attributes or {}) == common
    assert per_chunk.count == OPENAI_CHUNKS - 1  # every chunk after the first
    assert 0 <= per_chunk.sum <= duration.sum - first.sum + 1e-6
    assert tuple(per_chunk.explicit_bounds) == DURATION_BUCKETS


def test_chunk_intervals_can_be_left_out(
    otel: Otel, server: ReplayServer, openai_base: str
) -> None:
    reader = InMemoryMetricReader()
    telemetry.instrument(
        tracer_provider=otel.tracer_provider,
        meter_provider=MeterProvider(metric_readers=[reader]),
        chunk_intervals=False,
    )
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse")))
    collect_sync(openai_stream(openai_base), timeout=10)
    otel.chat_spans()
    data = reader.get_metrics_data()
    assert data is not None
    names = {m.name for r in data.resource_metrics for s in r.scope_metrics for m in s.metrics}
    assert names == {
        "gen_ai.client.operation.duration",
        "gen_ai.client.token.usage",
        "gen_ai.client.operation.time_to_first_chunk",
    }


def test_a_plain_anthropic_call(otel: Otel, server: ReplayServer) -> None:
    server.queue(
        Reply(body=fixture_bytes("anthropic/response_text.json"), content_type="application/json")
    )
    response = rxllm.completion(
        "anthropic",
        "claude-3-opus-20240229",
        messages=[{"role": "user", "content": "How are you?"}],
        max_tokens=1024,
        api_key=API_KEY,
        api_base=server.base,
    )
    assert response.text.startswith("Hello!")
    (span,) = otel.chat_spans()
    assert span.name == "chat claude-3-opus-20240229"
    assert span.kind is SpanKind.CLIENT
    attributes = attributes_of(span)
    attributes.pop("rxllm.cost_usd")
    # Reported as 0 where the provider's usage names its cache parts (rxllm's Usage keeps them
    # in prompt_tokens_details, where it has them).
    assert attributes.pop("gen_ai.usage.cache_read.input_tokens", 0) == 0
    assert attributes.pop("gen_ai.usage.cache_creation.input_tokens", 0) == 0
    assert attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": "claude-3-opus-20240229",
        "gen_ai.request.max_tokens": 1024,
        "gen_ai.response.id": "msg_014pVpaDLxzAdWjwpuN7rQQX",
        "gen_ai.response.model": "claude-3-opus-20240229",
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 13,
        "gen_ai.usage.output_tokens": 35,
        "server.address": "127.0.0.1",
        "server.port": server.port,
    }
    metrics = otel.metrics()
    assert "gen_ai.client.operation.time_to_first_chunk" not in metrics  # streams only
    assert "gen_ai.client.operation.time_per_output_chunk" not in metrics
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert dict(duration.attributes or {})["gen_ai.provider.name"] == "anthropic"


def test_a_gemini_stream(otel: Otel, server: ReplayServer) -> None:
    server.queue(Reply(body=fixture_bytes("gemini/stream_text.sse")))
    chat = rxllm.completion(
        "gemini",
        "gemini-2.0-flash-exp",
        messages=[{"role": "user", "content": "The capital of France?"}],
        stream=True,
        api_key=API_KEY,
        api_base=server.base,
    )
    assert "Paris" in collect_sync(chat, timeout=10).text
    (span,) = otel.chat_spans()
    assert span.name == "chat gemini-2.0-flash-exp"
    attributes = attributes_of(span)
    assert attributes["gen_ai.provider.name"] == "gcp.gemini"
    assert attributes["gen_ai.response.model"] == "gemini-2.0-flash-exp"
    assert attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (
        13,
        8,
    )
    points = otel.points("gen_ai.client.token.usage")
    assert {dict(p.attributes or {})["gen_ai.provider.name"] for p in points} == {"gcp.gemini"}


def test_every_registered_provider_has_a_conventional_name() -> None:
    well_known = {v.value for v in gen_ai_attributes.GenAiProviderNameValues}
    expected = {
        "openai": "openai",
        "anthropic": "anthropic",
        "gemini": "gcp.gemini",
        "azure": "azure.ai.openai",
        "deepseek": "deepseek",
        "mistral": "mistral_ai",
    }
    for name, otel_name in expected.items():
        assert rxllm.provider_info(name).otel_name == otel_name
        assert otel_name in well_known
    for name in rxllm.list_providers():
        info = rxllm.provider_info(name)
        assert info.otel_name is None or info.otel_name in well_known, name


def test_an_error_is_recorded_with_its_class(
    otel: Otel, server: ReplayServer, openai_base: str
) -> None:
    server.queue(
        error_reply(429, "Rate limit reached for gpt-4o", "rate_limit_exceeded"),
    )
    with pytest.raises(errors.RateLimitError):
        collect_sync(openai_stream(openai_base), timeout=10)
    (span,) = otel.chat_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description is not None
    assert span.status.description.startswith("RateLimitError: ")
    attributes = attributes_of(span)
    assert attributes["error.type"] == "RateLimitError"
    assert "gen_ai.usage.input_tokens" not in attributes
    assert "gen_ai.response.time_to_first_chunk" not in attributes
    (event,) = span.events
    assert event.name == "exception"
    assert dict(event.attributes or {})["exception.type"].endswith("RateLimitError")
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert dict(duration.attributes or {})["error.type"] == "RateLimitError"
    assert otel.points("gen_ai.client.token.usage") == []
    # A plain request fails the same way.
    server.queue(error_reply(401, "Incorrect API key provided", "invalid_api_key"))
    with pytest.raises(errors.AuthenticationError):
        rxllm.completion(
            "openai", "gpt-4o", messages=MESSAGES, api_key=API_KEY, api_base=openai_base
        )
    spans = otel.chat_spans(2)
    assert attributes_of(spans[1])["error.type"] == "AuthenticationError"


def test_a_cancelled_stream_ends_its_span_once(
    otel: Otel, server: ReplayServer, openai_base: str
) -> None:
    body = fixture_bytes("openai/stream_text_usage.sse")
    server.queue(Reply(body=body, stall_after=body.index(b" weather")))
    chat = openai_stream(openai_base)
    first = threading.Event()
    subscription = chat.subscribe(lambda _: first.set())
    assert first.wait(10)
    subscription.dispose()
    assert server.disconnected.wait(10)
    (span,) = otel.chat_spans()
    # ended exactly once: no second end within a while
    assert not wait_for(lambda: len(otel.spans.get_finished_spans()) > 1, timeout=0.2)
    attributes = attributes_of(span)
    assert attributes["error.type"] == "StreamCancelledError"
    assert span.status.status_code is StatusCode.ERROR
    assert "gen_ai.response.time_to_first_chunk" in attributes
    assert span.events == ()  # a cancellation is no exception to report
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert dict(duration.attributes or {})["error.type"] == "StreamCancelledError"
    assert chat.state == "cancelled"


def test_a_stream_never_subscribed_makes_no_span(
    otel: Otel, server: ReplayServer, openai_base: str
) -> None:
    chat = openai_stream(openai_base)
    del chat
    assert otel.finished(0) == []
    assert server.requests == []


def test_late_subscribers_and_replay_do_not_add_spans(
    otel: Otel, server: ReplayServer, openai_base: str
) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse")))
    chat = openai_stream(openai_base)
    collect_sync(chat, timeout=10)
    assert collect_sync(chat, timeout=10).text == OPENAI_TEXT  # replayed, no request
    assert len(otel.chat_spans()) == 1
    assert len(server.requests) == 1


def test_the_span_is_a_child_of_the_span_current_where_the_request_was_made(
    otel: Otel, server: ReplayServer, openai_base: str
) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse")))
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handler") as handler:
        chat = openai_stream(openai_base)
    collect_sync(chat, timeout=10)  # runs on rxllm's background loop, outside the block
    (span,) = [s for s in otel.finished(2) if s.name == "chat gpt-4o"]
    assert span.parent is not None
    assert span.parent.span_id == handler.get_span_context().span_id
    assert span.context.trace_id == handler.get_span_context().trace_id


async def test_in_asyncio_the_request_s_span_is_current_inside_it(
    otel: Otel, server: ReplayServer, openai_base: str
) -> None:
    server.queue(
        Reply(body=fixture_bytes("openai/response_text.json"), content_type="application/json")
    )
    tracer = otel.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("handler") as handler:
        await rxllm.acompletion(
            "openai", "gpt-4o", messages=MESSAGES, api_key=API_KEY, api_base=openai_base
        )
        # After the call, the caller's span is current again.
        assert trace.get_current_span() is handler
    (span, _) = otel.finished(2)
    assert span.name == "chat gpt-4o"
    assert span.parent is not None and span.parent.span_id == handler.get_span_context().span_id


def test_a_conversation_id(otel: Otel, server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse")))
    with telemetry.conversation("conv_5j66UpCpwteGg4YSxUnt7lPY"):
        chat = openai_stream(openai_base)
    collect_sync(chat, timeout=10)
    (span,) = otel.chat_spans()
    assert attributes_of(span)["gen_ai.conversation.id"] == "conv_5j66UpCpwteGg4YSxUnt7lPY"


# --- the router: one span per request, a child span per attempt -------------------------------


@pytest.fixture(scope="module")
def _other() -> Iterator[ReplayServer]:
    other = ReplayServer().start()
    yield other
    other.stop()


@pytest.fixture
def other(_other: ReplayServer) -> Iterator[ReplayServer]:
    _other.reset()
    yield _other
    _other.reset()


def routed(a: ReplayServer, b: ReplayServer) -> tuple[Router, FakeTime]:
    """ "primary" (deployment a, one retry) falls back to "backup" (deployment b)."""
    fake = FakeTime()
    router = Router(rng=FirstChoice(7), clock=fake.clock, sleep=fake.sleep)
    router.register("primary", deployments=[dep(a, "a")], num_retries=1, fallbacks=["backup"])
    router.register("backup", deployments=[dep(b, "b", model="gpt-4o-mini")])
    return router, fake


def test_a_routed_stream_with_a_retry_and_a_fallback(
    otel: Otel, server: ReplayServer, other: ReplayServer
) -> None:
    always_500(server)
    other.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse")))
    router, fake = routed(server, other)
    chat = router.completion("primary", MESSAGES, stream=True)
    assert collect_sync(chat, timeout=10).text == OPENAI_TEXT
    assert len(fake.sleeps) == 1  # the retry's backoff
    spans = otel.finished(4)
    (request,) = [s for s in spans if s.name != "rxllm.router.attempt"]
    attempts = sorted(
        (s for s in spans if s.name == "rxllm.router.attempt"), key=lambda s: s.start_time or 0
    )
    assert request.name == "chat primary"
    assert request.kind is SpanKind.CLIENT
    attributes = attributes_of(request)
    assert attributes["gen_ai.request.model"] == "primary"
    assert attributes["rxllm.router.config"] == "primary"
    assert attributes["rxllm.router.attempts"] == 3
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert attributes["server.port"] == other.port  # where the answer came from
    assert "error.type" not in attributes
    assert request.status.status_code is StatusCode.UNSET
    summary = [
        (
            dict(s.attributes or {})["rxllm.router.attempt"],
            dict(s.attributes or {})["rxllm.router.group"],
            dict(s.attributes or {})["rxllm.router.deployment"],
            dict(s.attributes or {})["rxllm.router.model"],
            dict(s.attributes or {})["rxllm.router.outcome"],
            dict(s.attributes or {}).get("error.type"),
            dict(s.attributes or {})["server.port"],
        )
        for s in attempts
    ]
    assert summary == [
        (1, "primary", "a", "gpt-4o", "error", "InternalServerError", server.port),
        (2, "primary", "a", "gpt-4o", "error", "InternalServerError", server.port),
        (3, "backup", "b", "gpt-4o-mini", "success", None, other.port),
    ]
    for span in attempts:
        assert span.kind is SpanKind.INTERNAL
        assert span.parent is not None and span.parent.span_id == request.context.span_id
        assert not any(key.startswith("gen_ai.") for key in span.attributes or {})
        assert request.start_time <= span.start_time <= span.end_time <= request.end_time  # type: ignore[operator]
    assert [s.status.status_code for s in attempts] == [
        StatusCode.ERROR,
        StatusCode.ERROR,
        StatusCode.UNSET,
    ]
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert dict(duration.attributes or {})["gen_ai.request.model"] == "primary"


def test_a_routed_stream_that_fails_everywhere(
    otel: Otel, server: ReplayServer, other: ReplayServer
) -> None:
    always_500(server)
    other.default = error_reply(503, "overloaded")
    router, _ = routed(server, other)
    with pytest.raises(errors.InternalServerError):
        collect_sync(router.completion("primary", MESSAGES, stream=True), timeout=10)
    spans = otel.finished(6)
    (request,) = [s for s in spans if s.name != "rxllm.router.attempt"]
    assert attributes_of(request)["error.type"] in {
        "InternalServerError",
        "ServiceUnavailableError",
    }
    outcomes = [
        (
            dict(s.attributes or {})["rxllm.router.deployment"],
            dict(s.attributes or {})["rxllm.router.outcome"],
        )
        for s in sorted(spans, key=lambda s: s.start_time or 0)
        if s.name == "rxllm.router.attempt"
    ]
    assert outcomes == [("a", "error")] * 2 + [("b", "error")] * 3  # backup: 2 retries


def test_a_routed_plain_request_is_one_span_with_a_child_per_attempt(
    otel: Otel, server: ReplayServer, other: ReplayServer
) -> None:
    """A plain routed request: one span for the request, one child per attempt."""
    always_500(server)
    other.queue(
        Reply(body=fixture_bytes("openai/response_text.json"), content_type="application/json")
    )
    router, _ = routed(server, other)
    response = router.completion("primary", MESSAGES)
    assert response.text
    spans = otel.finished(4)
    (request,) = [s for s in spans if s.name != "rxllm.router.attempt"]
    assert request.name == "chat primary"
    attributes = attributes_of(request)
    assert "gen_ai.request.stream" not in attributes
    assert attributes["rxllm.router.attempts"] == 3
    outcomes = [
        (
            dict(s.attributes or {})["rxllm.router.deployment"],
            dict(s.attributes or {})["rxllm.router.outcome"],
        )
        for s in sorted(spans, key=lambda s: s.start_time or 0)
        if s.name == "rxllm.router.attempt"
    ]
    assert outcomes == [("a", "error"), ("a", "error"), ("b", "success")]


# --- contents: off by default, on when asked --------------------------------------------------

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def test_content_is_captured_only_when_asked(
    otel: Otel, server: ReplayServer, openai_base: str
) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse")))
    collect_sync(openai_stream(openai_base, tools=TOOLS), timeout=10)
    (span,) = otel.chat_spans()
    for key in ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.tool.definitions"):
        assert key not in (span.attributes or {})

    telemetry.instrument(
        tracer_provider=otel.tracer_provider, meter_provider=MeterProvider(), capture_content=True
    )
    otel.spans.clear()
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse")))
    messages = [
        {"role": "system", "content": "Be brief."},
        *MESSAGES,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "SF"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "rainy, 57F"},
    ]
    collect_sync(
        rxllm.completion(
            "openai",
            "gpt-4o",
            messages=messages,
            stream=True,
            api_key=API_KEY,
            api_base=openai_base,
            tools=TOOLS,
        ),
        timeout=10,
    )
    (span,) = otel.chat_spans()
    attributes = attributes_of(span)
    assert json.loads(attributes["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text", "content": "Be brief."}]},
        {"role": "user", "parts": [{"type": "text", "content": MESSAGES[0]["content"]}]},
        {
            "role": "assistant",
            "parts": [
                {
                    "type": "tool_call",
                    "id": "call_1",
                    "name": "get_weather",
                    "arguments": {"city": "SF"},
                }
            ],
        },
        {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": "call_1", "response": "rainy, 57F"}],
        },
    ]
    assert json.loads(attributes["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": OPENAI_TEXT}],
            "finish_reason": "stop",
        }
    ]
    assert json.loads(attributes["gen_ai.tool.definitions"]) == [
        {"type": "function", **TOOLS[0]["function"]}  # type: ignore[dict-item]
    ]


def test_the_environment_variable_turns_capture_on(
    otel: Otel, server: ReplayServer, openai_base: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    telemetry.instrument(tracer_provider=otel.tracer_provider, meter_provider=MeterProvider())
    server.queue(
        Reply(body=fixture_bytes("openai/response_text.json"), content_type="application/json")
    )
    rxllm.completion("openai", "gpt-4o", messages=MESSAGES, api_key=API_KEY, api_base=openai_base)
    (span,) = otel.chat_spans()
    output = json.loads(attributes_of(span)["gen_ai.output.messages"])
    assert output[0]["role"] == "assistant" and output[0]["finish_reason"] == "stop"


# --- embeddings -------------------------------------------------------------------------------


def test_embeddings(otel: Otel, server: ReplayServer, openai_base: str) -> None:
    server.queue(
        Reply(body=fixture_bytes("openai/response_embedding.json"), content_type="application/json")
    )
    response = rxllm.embedding(
        "openai",
        "text-embedding-3-small",
        input=["hello", "world"],
        dimensions=5,
        api_key=API_KEY,
        api_base=openai_base,
    )
    assert response.usage is not None
    (span,) = otel.chat_spans()
    assert span.name == "embeddings text-embedding-3-small"
    assert span.kind is SpanKind.CLIENT
    attributes = attributes_of(span)
    attributes.pop("rxllm.cost_usd", None)
    assert attributes == {
        "gen_ai.operation.name": "embeddings",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "text-embedding-3-small",
        "gen_ai.embeddings.dimension.count": 5,
        "gen_ai.response.model": "text-embedding-3-small",
        "gen_ai.usage.input_tokens": 12,
        "server.address": "127.0.0.1",
        "server.port": server.port,
    }
    points = otel.points("gen_ai.client.token.usage")
    assert [(dict(p.attributes or {})["gen_ai.token.type"], p.sum) for p in points] == [
        ("input", 12)
    ]
    (duration,) = otel.points("gen_ai.client.operation.duration")
    assert dict(duration.attributes or {})["gen_ai.operation.name"] == "embeddings"


# --- on, off, twice ---------------------------------------------------------------------------


def test_instrument_twice_is_harmless_and_uninstrument_turns_it_off(
    otel: Otel, server: ReplayServer, openai_base: str
) -> None:
    telemetry.instrument(tracer_provider=otel.tracer_provider, meter_provider=MeterProvider())
    telemetry.instrument(tracer_provider=otel.tracer_provider, meter_provider=MeterProvider())
    assert telemetry.is_instrumented()
    assert len(_telemetry.sinks) == 1
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse")))
    collect_sync(openai_stream(openai_base), timeout=10)
    assert len(otel.chat_spans()) == 1
    telemetry.uninstrument()
    telemetry.uninstrument()
    assert not telemetry.is_instrumented() and _telemetry.sinks == ()
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse")))
    chat = openai_stream(openai_base)
    assert chat._telemetry is None
    collect_sync(chat, timeout=10)
    assert not wait_for(lambda: len(otel.spans.get_finished_spans()) > 1, timeout=0.2)
    assert len(otel.spans.get_finished_spans()) == 1


def test_a_stream_made_before_uninstrument_still_ends_its_span(
    otel: Otel, server: ReplayServer, openai_base: str
) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse")))
    chat = openai_stream(openai_base)
    telemetry.uninstrument()
    collect_sync(chat, timeout=10)
    assert len(otel.chat_spans()) == 1


def _run_python(code: str, **env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("RXLLM_", "OTEL_"))}
    environment.update(env)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


MOCK_STREAM = """
import sys, rxllm
from rxllm.streaming import collect_sync
chat = rxllm.completion("mock", "echo", messages=[{"role": "user", "content": "hi"}], stream=True)
assert collect_sync(chat, timeout=10).text
"""


def test_off_imports_nothing_of_opentelemetry() -> None:
    out = _run_python(
        MOCK_STREAM
        + "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
        + "print(chat._telemetry)\n"
    )
    assert out.split("\n")[:2] == ["[]", "None"]


def test_rxllm_otel_in_the_environment_turns_it_on_at_import() -> None:
    code = (
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import SimpleSpanProcessor\n"
        "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter\n"
        "import rxllm.telemetry\n"
        "assert rxllm.telemetry.is_instrumented()\n"
        # The application sets its provider after importing rxllm: spans still reach it.
        "exporter = InMemorySpanExporter()\n"
        "provider = TracerProvider()\n"
        "import threading\n"
        "ended = threading.Event()\n"
        "class Notifying(SimpleSpanProcessor):\n"
        "    def on_end(self, span):\n"
        "        super().on_end(span)\n"
        "        ended.set()\n"
        "provider.add_span_processor(Notifying(exporter))\n"
        "trace.set_tracer_provider(provider)\n" + MOCK_STREAM + "assert ended.wait(10)\n"
        "(span,) = exporter.get_finished_spans()\n"
        "print(span.name, dict(span.attributes)['gen_ai.provider.name'])\n"
    )
    assert _run_python(code, RXLLM_OTEL="1").strip() == "chat echo mock"


def test_without_the_api_installed_instrument_says_what_to_install() -> None:
    code = (
        "import sys, warnings\n"
        "sys.modules['opentelemetry'] = None\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import rxllm\n"
        "print(caught[0].category.__name__, '[otel]' in str(caught[0].message))\n"
        "import rxllm.telemetry\n"
        "try:\n"
        "    rxllm.telemetry.instrument()\n"
        "except rxllm.errors.ConfigurationError as exc:\n"
        "    print('opentelemetry-api' in str(exc))\n"
    )
    assert _run_python(code, RXLLM_OTEL="1").split() == ["RuntimeWarning", "True", "True"]


# --- the measurement interface other sinks use (the gateway's metrics) ------------------------


class Recording(_telemetry.Listener):
    def __init__(self, log: list[tuple[str, Any]]) -> None:
        self.log = log

    def started(self, request: _telemetry.RequestTelemetry) -> None:
        self.log.append(("started", request.started))

    def first_chunk(self, request: _telemetry.RequestTelemetry) -> None:
        self.log.append(("first_chunk", request.time_to_first_chunk))

    def finished(self, request: _telemetry.RequestTelemetry) -> None:
        self.log.append(("finished", request))
        _changed()


class RecordingSink:
    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    def finished(self, timeout: float = 10) -> _telemetry.RequestTelemetry:
        """The request that finished (reported just after its subscribers heard of the end)."""
        assert wait_for(lambda: bool(self.log) and self.log[-1][0] == "finished", timeout)
        request: _telemetry.RequestTelemetry = self.log[-1][1]
        return request

    def request(self, request: _telemetry.RequestTelemetry) -> _telemetry.Listener:
        self.log.append(("made", request))
        return Recording(self.log)


@pytest.fixture
def sink() -> Iterator[RecordingSink]:
    recording = RecordingSink()
    remove = telemetry.add_sink(recording)
    yield recording
    remove()


def test_a_sink_gets_each_measurement_once(
    sink: RecordingSink, server: ReplayServer, openai_base: str
) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse"), piece=250))
    chat = openai_stream(openai_base)
    assert [kind for kind, _ in sink.log] == ["made"]  # made, not started: nothing sent yet
    collect_sync(chat, timeout=10)
    request = sink.finished()
    assert [kind for kind, _ in sink.log] == ["made", "started", "first_chunk", "finished"]
    assert request.done and request.outcome == "success" and request.error_type is None
    assert (request.operation, request.stream, request.provider, request.model) == (
        "chat",
        True,
        "openai",
        "gpt-4o",
    )
    assert request.chunks == OPENAI_CHUNKS
    assert request.reads >= 2
    intervals = list(request.chunk_intervals())
    assert len(intervals) == OPENAI_CHUNKS - 1
    assert all(i >= 0 for i in intervals)
    assert sum(intervals) <= request.duration  # type: ignore[operator]
    assert sink.log[2][1] == request.time_to_first_chunk
    assert request.usage is not None and request.usage.total_tokens == 44
    assert request.cost == pytest.approx(
        rxllm.calculate_cost("openai", "gpt-4o-2024-08-06", 14, 30)
    )
    assert request.response_id == "chatcmpl-ABfw031mOJeYCSHe4yI2ZjOA6kMJL"
    assert request.finish_reasons == ("stop",)
    assert isinstance(request.response, rxllm.ChatResponse)
    assert request.response.text == OPENAI_TEXT
    assert (request.server_address, request.server_port) == ("127.0.0.1", server.port)


def test_chunk_intervals_follow_the_reads(
    sink: RecordingSink, server: ReplayServer, openai_base: str
) -> None:
    body = fixture_bytes("openai/stream_text_usage.sse")
    server.queue(Reply(body=body, piece=len(body) // 4 + 1, delay=0.03))
    collect_sync(openai_stream(openai_base), timeout=10)
    request = sink.finished()
    intervals = list(request.chunk_intervals())
    assert len(intervals) == request.chunks - 1 == OPENAI_CHUNKS - 1
    assert request.reads >= 2
    # The server writes four pieces 30 ms apart: the first chunk of a later read waited for
    # its piece; the other chunks of a read came with it (0 s).
    assert intervals.count(0.0) >= request.chunks - request.reads
    assert 0.045 <= sum(intervals) <= request.duration - request.time_to_first_chunk  # type: ignore[operator]


async def test_a_sink_sees_a_cancelled_plain_request(
    sink: RecordingSink, server: ReplayServer, openai_base: str
) -> None:
    server.queue(
        Reply(
            body=fixture_bytes("openai/response_text.json"),
            content_type="application/json",
            wait=5,
        )
    )
    task = asyncio.ensure_future(
        rxllm.acompletion(
            "openai", "gpt-4o", messages=MESSAGES, api_key=API_KEY, api_base=openai_base
        )
    )
    while not server.requests:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    kinds = [kind for kind, _ in sink.log]
    assert kinds == ["made", "started", "finished"]
    request: _telemetry.RequestTelemetry = sink.log[-1][1]
    assert request.outcome == "cancelled" and request.error_type == "CancelledError"
    assert _telemetry.current() is None


def test_a_raising_sink_or_listener_changes_nothing(
    server: ReplayServer, openai_base: str, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(_telemetry.Listener):
        def first_chunk(self, request: _telemetry.RequestTelemetry) -> None:
            raise RuntimeError("listener bug")

        def finished(self, request: _telemetry.RequestTelemetry) -> None:
            raise RuntimeError("listener bug")

    class BrokenSink:
        def __init__(self, listener: bool) -> None:
            self.listener = listener

        def request(self, request: _telemetry.RequestTelemetry) -> _telemetry.Listener:
            if not self.listener:
                raise RuntimeError("sink bug")
            return Broken()

    removers = [telemetry.add_sink(BrokenSink(False)), telemetry.add_sink(BrokenSink(True))]
    try:
        server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse")))
        assert collect_sync(openai_stream(openai_base), timeout=10).text == OPENAI_TEXT
    finally:
        for remove in removers:
            remove()
    assert wait_for(lambda: caplog.text.count("rxllm telemetry") == 3)


async def test_a_stream_in_asyncio(
    sink: RecordingSink, server: ReplayServer, openai_base: str
) -> None:
    server.queue(Reply(body=fixture_bytes("openai/stream_text_usage.sse")))
    chat = await rxllm.acompletion(
        "openai", "gpt-4o", messages=MESSAGES, stream=True, api_key=API_KEY, api_base=openai_base
    )
    assert (await collect(chat)).text == OPENAI_TEXT
    request = await asyncio.to_thread(sink.finished)
    assert request.outcome == "success" and request.chunks == OPENAI_CHUNKS


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_cost_benchmark_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.telemetry", "--smoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| off |" in done.stdout and "| on |" in done.stdout


# --- the gateway: RXLLM_OTEL=1 and the application's SDK, every request a span -----------------

SITECUSTOMIZE = """
import json, os
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

class ToFile(SpanExporter):
    def export(self, spans):
        with open(os.environ["RXLLM_TEST_SPANS"], "a") as out:
            for span in spans:
                attributes = {k: list(v) if isinstance(v, tuple) else v
                              for k, v in (span.attributes or {}).items()}
                out.write(json.dumps({"name": span.name, "kind": span.kind.name,
                                      "attributes": attributes}) + "\\n")
        return SpanExportResult.SUCCESS

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(ToFile()))
trace.set_tracer_provider(provider)
"""


async def test_every_gateway_request_is_a_span(tmp_path: Path, server: ReplayServer) -> None:
    import aiohttp

    from .gateway.conftest import Gateway, config_for, respond, write_config

    server.responder = respond
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    spans_file = tmp_path / "spans.jsonl"
    config = write_config(tmp_path / "config.yaml", config_for(server))
    gateway = await asyncio.to_thread(
        Gateway,
        ["--config", str(config)],
        cwd=tmp_path,
        env={"RXLLM_OTEL": "1", "RXLLM_TEST_SPANS": str(spans_file), "PYTHONPATH": str(tmp_path)},
    )
    try:
        async with aiohttp.ClientSession() as session:
            for body in (
                {"model": "gpt-4o", "messages": MESSAGES, "stream": True},
                {"model": "gpt-4o", "messages": MESSAGES},
                {"model": "gpt-4o", "messages": [{"role": "user", "content": "fail429"}]},
            ):
                async with session.post(gateway.url("/v1/chat/completions"), json=body) as response:
                    await response.read()
            async with session.post(
                gateway.url("/v1/embeddings"), json={"model": "embed", "input": "hello"}
            ) as response:
                assert response.status == 200
    finally:
        assert await asyncio.to_thread(gateway.stop) == 0, gateway.stderr
    spans = [json.loads(line) for line in spans_file.read_text().splitlines()]
    chats = [s for s in spans if s["name"].startswith("chat ")]
    assert [s["kind"] for s in chats] == ["CLIENT"] * len(chats)
    streamed = [s for s in chats if s["attributes"].get("gen_ai.request.stream")]
    (stream,) = streamed
    # openai/gpt-4o at a base URL other than OpenAI's is the openai_compatible provider (the
    # LiteLLM convention), which has no well-known name in the conventions: rxllm's is used.
    assert stream["attributes"]["gen_ai.provider.name"] == "openai_compatible"
    assert stream["attributes"]["gen_ai.usage.output_tokens"] == 30
    assert any(s["name"] == "rxllm.router.attempt" for s in spans)
    plain = [s for s in chats if not s["attributes"].get("gen_ai.request.stream")]
    assert sorted(s["attributes"].get("error.type", "") for s in plain) == ["", "RateLimitError"]
    (embeddings,) = [s for s in spans if s["name"].startswith("embeddings ")]
    assert embeddings["attributes"]["gen_ai.operation.name"] == "embeddings"
