"""The gateway's Prometheus metrics (``GET /metrics``), with the ``prometheus-client`` library.

One :class:`Metrics` per process. With ``--workers N`` the processes share a directory
(``PROMETHEUS_MULTIPROC_DIR``, set by ``rxllm serve``) and any worker's ``/metrics`` reports the
sum over all of them. Names follow Prometheus' conventions (``_total`` counters, ``_seconds``
histograms); labels are the requested model name and the endpoint.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from typing import Any

from .._telemetry import Listener, RequestTelemetry, add_sink

__all__ = ["CONTENT_TYPE", "Metrics", "RequestMetrics", "measuring"]

#: The gateway request whose upstream request is being made in this context (a handler's).
_measuring: ContextVar[RequestMetrics | None] = ContextVar("rxllm_gateway_request", default=None)


def measuring(measured: RequestMetrics) -> None:
    """From a handler, before it makes the upstream request: rxllm's telemetry measures that
    request once (time to first chunk, the chunks' intervals) and reports it to ``measured``."""
    _measuring.set(measured)


class _Sink:
    """rxllm's telemetry sink (:mod:`rxllm._telemetry`) feeding the gateway's histograms: the
    same measurements OpenTelemetry gets, one source of truth."""

    def request(self, request: RequestTelemetry) -> Listener | None:
        measured = _measuring.get()
        return None if measured is None else _Timing(measured)


class _Timing(Listener):
    __slots__ = ("_measured",)

    def __init__(self, measured: RequestMetrics) -> None:
        self._measured = measured

    def first_chunk(self, request: RequestTelemetry) -> None:
        seconds = request.time_to_first_chunk
        if seconds is not None:
            self._measured.first_token(seconds)

    def finished(self, request: RequestTelemetry) -> None:
        measured = self._measured
        for seconds in request.chunk_intervals():
            measured.chunk_interval(seconds)


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Seconds: time to first token and whole requests (a reasoning model may think for minutes).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
#: Seconds between two chunks of a stream.
_CHUNK_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)


class Metrics:
    """The gateway's counters and histograms."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self._multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        registry = CollectorRegistry(auto_describe=True)
        self._registry = registry
        self.requests = Counter(
            "rxllm_requests",
            "Requests answered, by endpoint, model and HTTP status.",
            ["endpoint", "model", "status"],
            registry=registry,
        )
        self.errors = Counter(
            "rxllm_errors",
            "Failed requests, by endpoint, model and rxllm error class.",
            ["endpoint", "model", "error"],
            registry=registry,
        )
        self.time_to_first_token = Histogram(
            "rxllm_time_to_first_token_seconds",
            "Seconds from sending a streamed request upstream to its first chunk (rxllm's "
            "telemetry: the same measurement OpenTelemetry gets).",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.chunk_interval = Histogram(
            "rxllm_chunk_interval_seconds",
            "Seconds between consecutive chunks of a stream.",
            ["model"],
            buckets=_CHUNK_BUCKETS,
            registry=registry,
        )
        self.duration = Histogram(
            "rxllm_request_duration_seconds",
            "Seconds from a request's arrival to its last byte.",
            ["endpoint", "model"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "rxllm_tokens",
            "Tokens reported by the upstreams, by model and kind (prompt, completion).",
            ["model", "kind"],
            registry=registry,
        )
        self.cost = Counter(
            "rxllm_cost_usd",
            "Cost in USD at the price table's rates, by model.",
            ["model"],
            registry=registry,
        )
        self.open_streams = Gauge(
            "rxllm_open_streams",
            "Streams being relayed now.",
            registry=registry,
            multiprocess_mode="livesum",
        )

        self.cache = Counter(
            "rxllm_cache_requests",
            "Requests that could use the response cache, by result (hit, miss).",
            ["result"],
            registry=registry,
        )
        self.redis_up = Gauge(
            "rxllm_redis_up",
            "1 while the shared state on Redis answers, 0 while this instance goes on alone.",
            ["instance_pid"],
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.redis_outages = Counter(
            "rxllm_redis_outages",
            "Times Redis stopped answering and this instance went on with its own state.",
            registry=registry,
        )

        self.redis_round_trips = Counter(
            "rxllm_redis_path_round_trips",
            "Redis round trips made on requests' paths (the key's check, the router's "
            "admission), before their answers.",
            registry=registry,
        )
        self.router_redis_up = Gauge(
            "rxllm_router_redis_up",
            "1 while the router's shared state on Redis answers, 0 while it routes alone.",
            ["instance_pid"],
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.router_redis_fallbacks = Counter(
            "rxllm_router_redis_fallbacks",
            "Router operations done on this instance's own state because Redis did not answer.",
            registry=registry,
        )
        self._router_seen = {"path_round_trips": 0, "fallbacks": 0}
        add_sink(_SINK)

    def router_shared(self, status: dict[str, Any]) -> None:
        """Bring the router's Redis figures up to date (``Router.shared_status()``)."""
        if not status.get("enabled"):
            return
        seen = self._router_seen
        trips = status["path_round_trips"] - seen["path_round_trips"]
        fallbacks = status["fallbacks"] - seen["fallbacks"]
        if trips > 0:
            self.redis_round_trips.inc(trips)
        if fallbacks > 0:
            self.router_redis_fallbacks.inc(fallbacks)
        seen["path_round_trips"], seen["fallbacks"] = (
            status["path_round_trips"],
            status["fallbacks"],
        )
        self.router_redis_up.labels(str(os.getpid())).set(1 if status["connected"] else 0)

    def redis_state(self, up: bool) -> None:
        """Redis came back (``up``) or went away."""
        self.redis_up.labels(str(os.getpid())).set(1 if up else 0)
        if not up:
            self.redis_outages.inc()

    def request(self, endpoint: str, model: str) -> RequestMetrics:
        """The measurements of one request."""
        return RequestMetrics(self, endpoint, model)

    def exposition(self) -> bytes:
        """The text ``/metrics`` answers with (every worker's sum in multiprocess mode)."""
        from prometheus_client import CollectorRegistry, generate_latest

        if not self._multiprocess:
            return generate_latest(self._registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


_SINK = _Sink()


class RequestMetrics:
    """One request's measurements: its children of the labelled metrics, looked up once."""

    __slots__ = ("_chunk", "_endpoint", "_metrics", "_model", "last")

    def __init__(self, metrics: Metrics, endpoint: str, model: str) -> None:
        self._metrics = metrics
        self._endpoint = endpoint
        self._model = model
        self._chunk: Any = None
        #: When the previous chunk left (loop time), for the chunk interval.
        self.last: float | None = None

    def first_token(self, seconds: float) -> None:
        self._metrics.time_to_first_token.labels(self._model).observe(seconds)

    def chunk_interval(self, seconds: float) -> None:
        if self._chunk is None:
            self._chunk = self._metrics.chunk_interval.labels(self._model)
        self._chunk.observe(seconds)

    def finished(self, status: int, seconds: float, error: str | None = None) -> None:
        metrics, endpoint, model = self._metrics, self._endpoint, self._model
        metrics.requests.labels(endpoint, model, str(status)).inc()
        metrics.duration.labels(endpoint, model).observe(seconds)
        if error is not None:
            metrics.errors.labels(endpoint, model, error).inc()

    def usage(self, prompt_tokens: int, completion_tokens: int, cost: float | None) -> None:
        metrics, model = self._metrics, self._model
        if prompt_tokens:
            metrics.tokens.labels(model, "prompt").inc(prompt_tokens)
        if completion_tokens:
            metrics.tokens.labels(model, "completion").inc(completion_tokens)
        if cost:
            metrics.cost.labels(model).inc(cost)
