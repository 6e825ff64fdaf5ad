"""What a provider module implements, and the request objects passed between the floors.

A provider is pure translation (docs/contracts.md, 9): it builds an :class:`HttpRequest` from a
:class:`ChatCall`, parses a complete response body, parses stream events into ``ChatChunk`` s,
and maps error bodies to typed errors. It never does I/O and never touches Rx.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ._events import StreamDecoder, StreamEvents
from ._secrets import header_credentials, masked_url, url_credentials
from ._wire import HttpRequest
from .errors import LLMError, MalformedResponseError
from .types import ChatChunk, ChatResponse, EmbeddingResponse, Message

if TYPE_CHECKING:
    import ssl

__all__ = [
    "Call",
    "ChatCall",
    "EmbeddingCall",
    "EmbeddingProvider",
    "EventParser",
    "HttpRequest",
    "Provider",
    "StreamParser",
]


class Call:
    """What every validated request carries: everything known before any I/O.

    Its repr hides the API key. Provider modules read these fields; the entry layer fills them.
    """

    __slots__ = (
        "api_base",
        "api_key",
        "drop_params",
        "extra_body",
        "extra_headers",
        "model",
        "options",
        "params",
        "provider",
        "timeout",
        "verify",
    )

    def __init__(
        self,
        *,
        provider: str,
        model: str,
        params: dict[str, Any],
        api_key: str | None,
        api_base: str,
        timeout: float | None = None,
        drop_params: bool = False,
        extra_headers: dict[str, str] | None = None,
        extra_body: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        verify: bool | ssl.SSLContext = True,
    ) -> None:
        self.provider = provider
        self.model = model
        self.params = params
        self.api_key = api_key
        self.api_base = api_base
        self.timeout = timeout
        self.drop_params = drop_params
        self.extra_headers = extra_headers or {}
        self.extra_body = extra_body or {}
        self.options = options or {}
        #: TLS verification for the transport: True, False, or a context trusting a CA bundle.
        self.verify = verify

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every credential this call carries - its API key, the user info in ``api_base``, the
        values of credential headers among ``extra_headers`` - for errors and logs to mask."""
        key = (self.api_key,) if self.api_key else ()
        return (
            *key,
            *url_credentials(self.api_base),
            *header_credentials(self.extra_headers),
        )

    def __repr__(self) -> str:
        key = "***" if self.api_key else None
        return (
            f"{type(self).__name__}(provider={self.provider!r}, model={self.model!r}, "
            f"api_base={masked_url(self.api_base)!r}, api_key={key!r}, "
            f"params={sorted(self.params)})"
        )


class ChatCall(Call):
    """A validated chat request."""

    __slots__ = ("messages", "stream")

    def __init__(self, *, messages: list[Message], stream: bool, **common: Any) -> None:
        super().__init__(**common)
        self.messages = messages
        self.stream = stream


class EmbeddingCall(Call):
    """A validated embedding request: one vector per string of ``input``."""

    __slots__ = ("input",)

    def __init__(self, *, input: list[str], **common: Any) -> None:
        super().__init__(**common)
        self.input = input


class StreamParser(Protocol):
    """Turns one request's stream events into chunks; one instance per request, made by
    :meth:`Provider.stream_parser` once the response is known to be a stream."""

    #: True once the provider's end-of-stream marker has been seen: stop reading.
    done: bool

    def parse(self, events: StreamEvents) -> tuple[list[ChatChunk], LLMError | None]:
        """The events of one read (what the provider's decoder gave) -> their chunks, plus the
        error that stopped parsing part-way (an error event, an unparseable frame), if any.

        Called once per socket read, on the stream's loop (the hot path). It does not raise
        for the provider's failures: the chunks before the error are returned with it, so they
        reach subscribers first."""
        ...

    def finish(self) -> ChatChunk | None:
        """The body ended without :attr:`done`: return a last chunk if the format holds one
        back, or raise ``StreamTruncatedError`` when the end marker never came."""
        ...


class EventParser:
    """Base for parsers that take one event at a time: implement :meth:`feed`."""

    done: bool = False

    def feed(self, event: Any) -> ChatChunk | None:
        """One event -> a chunk, or None to skip it. Raise an ``LLMError`` to fail."""
        raise NotImplementedError

    def parse(self, events: StreamEvents) -> tuple[list[ChatChunk], LLMError | None]:
        chunks: list[ChatChunk] = []
        feed = self.feed
        try:
            for event in events:
                chunk = feed(event)
                if chunk is not None:
                    chunks.append(chunk)
                if self.done:
                    break
        except LLMError as error:
            return chunks, error
        except RecursionError:  # a frame nested deeper than the JSON decoder follows
            return chunks, MalformedResponseError("a stream frame is JSON nested too deeply")
        return chunks, None

    def finish(self) -> ChatChunk | None:
        return None


@runtime_checkable
class Provider(Protocol):
    """The spec every provider module exposes as ``PROVIDER`` (checked by
    ``rxllm.providers.get_provider`` when the module is first imported).

    Every method is pure translation, called on the caller's thread or the stream's loop with
    no I/O of its own; the transport floor sends what :meth:`build_request` returns.
    """

    #: The registry name (``"openai"``), used in errors and requests' context.
    name: str
    #: Options the caller may pass besides request parameters (e.g. Azure's ``api_version``);
    #: the entry layer passes them on in ``Call.options``.
    option_names: frozenset[str]

    def check_params(self, params: dict[str, Any], drop: bool) -> dict[str, Any]:
        """Return the parameters to send. Called by the entry layer before the call is built.

        Raises ``UnsupportedParamsError`` for a parameter the provider cannot take (unknown,
        or ``tools`` on a provider without them) unless ``drop`` (then it is left out)."""
        ...

    def build_request(self, call: ChatCall) -> HttpRequest:
        """The HTTP request for ``call`` (URL under ``call.api_base``, headers, JSON body).
        Called once per call, before any I/O (the router: once per deployment tried).

        Raises ``BadRequestError`` / ``ConfigurationError`` for what cannot be sent (a message
        the provider cannot express, a missing ``api_base`` or option)."""
        ...

    def parse_response(self, body: bytes, call: ChatCall) -> ChatResponse:
        """A complete 2xx body (``stream=False``) -> the response. Raises
        ``MalformedResponseError`` for a body that is no answer, or the provider's typed error
        when a 2xx body carries one."""
        ...

    def decoder(self) -> StreamDecoder:
        """A new decoder of the provider's stream framing (SSE, NDJSON...), one per streamed
        response, made once a 2xx answer arrives. Never raises."""
        ...

    def stream_parser(self, call: ChatCall) -> StreamParser:
        """A new parser of ``call``'s stream, made with :meth:`decoder` for each streamed
        response. Never raises; its ``parse`` reports the stream's failures."""
        ...

    def map_error(
        self, status: int, body: bytes, headers: Mapping[str, str], call: Call
    ) -> LLMError:
        """A non-2xx response (or a 2xx JSON error object where a stream was expected) -> the
        typed error to raise, with its provider fields (code, request id, retry-after) filled
        in. Returns, never raises, for any body (HTML, empty, not JSON)."""
        ...


@runtime_checkable
class EmbeddingProvider(Protocol):
    """What a provider with ``embeddings=True`` in the registry also implements; the same
    rules as :class:`Provider`'s chat methods."""

    def check_embedding_params(self, params: dict[str, Any], drop: bool) -> dict[str, Any]:
        """The parameters to send; ``UnsupportedParamsError`` for others unless ``drop``."""
        ...

    def build_embedding_request(self, call: EmbeddingCall) -> HttpRequest:
        """The HTTP request for an embedding call (one vector per string of ``call.input``)."""
        ...

    def parse_embedding_response(self, body: bytes, call: EmbeddingCall) -> EmbeddingResponse:
        """A complete 2xx body -> the response; ``MalformedResponseError`` if it is none."""
        ...
