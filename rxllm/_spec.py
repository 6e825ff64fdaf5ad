"""What a provider module implements, and the request objects passed between the floors.

A provider is pure translation (docs/contracts.md, 9): it builds an :class:`HttpRequest` from a
:class:`ChatCall`, parses a complete response body, parses stream events into ``ChatChunk`` s,
and maps error bodies to typed errors. It never does I/O and never touches Rx.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol, overload

import msgspec

from .errors import LLMError, MalformedResponseError
from .types import ChatChunk, ChatResponse, EmbeddingResponse, Message

if TYPE_CHECKING:
    import ssl

__all__ = [
    "LOOPBACK_SCHEME",
    "SENSITIVE_HEADERS",
    "Call",
    "ChatCall",
    "DataEvents",
    "EmbeddingCall",
    "EmbeddingProvider",
    "EventParser",
    "HttpRequest",
    "NamedDataEvents",
    "Provider",
    "SSEEvent",
    "ScriptedReply",
    "StreamParser",
    "header_credentials",
    "is_credential_header",
    "masked_url",
    "url_credentials",
]

#: Header names whose values are credentials: masked in every repr.
SENSITIVE_HEADERS = frozenset(
    {"authorization", "x-api-key", "api-key", "x-goog-api-key", "proxy-authorization"}
)
#: Parts of a header name that make its value a credential: gateways' own headers
#: (``Helicone-Auth``, ``Ocp-Apim-Subscription-Key``, ``cf-aig-authorization``,
#: ``x-portkey-api-key``) as much as the providers'.
_CREDENTIAL_NAME = re.compile(r"auth|key|token|secret|signature|cookie|passw|credential", re.I)
#: ``Bearer``, ``Basic``...: the scheme word before a credential in a header's value.
_AUTH_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*\s+(\S+)$")


def is_credential_header(name: str) -> bool:
    """Whether a header's value is a credential, judged by its name (masked wherever shown)."""
    return name.lower() in SENSITIVE_HEADERS or _CREDENTIAL_NAME.search(name) is not None


#: URL prefix of rxllm's in-process loopback server (``rxllm.transport.loopback``): a request
#: sent there carries a :class:`ScriptedReply` as its body and gets exactly that reply back.
LOOPBACK_SCHEME = "rxllm+loopback://"


class ScriptedReply(msgspec.Struct, kw_only=True, gc=False):
    """An HTTP reply for the loopback server to play back, sent to it (msgpack) as the request
    body. A provider module that simulates a provider describes the wire with it and stays pure
    translation: the transport floor serves it, over real TCP, like any remote server."""

    status: int = 200
    headers: dict[str, str] = {}
    #: The body, written piece by piece.
    pieces: list[bytes] = []
    #: Seconds before the first piece (time to first byte) and before each later one.
    first_delay: float = 0.0
    delay: float = 0.0
    #: Cut the connection after this many pieces instead of ending the body normally.
    abort_after: int | None = None
    #: Cut the connection before answering at all (a server that cannot be reached).
    refuse: bool = False


class SSEEvent(msgspec.Struct, gc=False):
    """One server-sent event. ``data`` is raw bytes (UTF-8 JSON for every LLM provider)."""

    data: bytes
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class DataEvents(Sequence[SSEEvent]):
    """The events of one read when every one is a single ``data:`` line (the usual LLM
    stream), kept as the raw block ``data: a\n\ndata: b...`` instead of one object each.

    It is a sequence of :class:`SSEEvent` (built on first use) for parsers that go event by
    event; a parser that decodes a whole read at once asks for :meth:`json_array`: the
    decoder that proved the shape has already joined the payloads with commas (one
    ``bytes.replace``), so there is no per-event work in Python at all.
    """

    __slots__ = ("_events", "blob", "last_id", "payloads")

    _SEPARATOR = b"\n\ndata: "

    def __init__(self, blob: bytes, payloads: bytes, last_id: str | None = None) -> None:
        self.blob = blob  # starts with b"data: ", events separated by b"\n\ndata: "
        self.payloads = payloads  # every event's data, joined with b","
        self.last_id = last_id
        self._events: list[SSEEvent] | None = None

    def _list(self) -> list[SSEEvent]:
        events = self._events
        if events is None:
            last_id = self.last_id
            events = self._events = [
                SSEEvent(data, "message", last_id) for data in self.blob[6:].split(self._SEPARATOR)
            ]
        return events

    def __len__(self) -> int:
        return self.blob.count(self._SEPARATOR) + 1

    @overload
    def __getitem__(self, index: int) -> SSEEvent: ...

    @overload
    def __getitem__(self, index: slice) -> list[SSEEvent]: ...

    def __getitem__(self, index: int | slice) -> SSEEvent | list[SSEEvent]:
        return self._list()[index]

    def __iter__(self) -> Iterator[SSEEvent]:
        return iter(self._list())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __add__(self, other: Sequence[SSEEvent]) -> list[SSEEvent]:
        return [*self._list(), *other]

    def __radd__(self, other: Sequence[SSEEvent]) -> list[SSEEvent]:
        return [*other, *self._list()]

    def __hash__(self) -> int:
        return hash(self.blob)

    def __repr__(self) -> str:
        return f"DataEvents({self._list()!r})"

    def json_array(self, end_marker: bytes) -> tuple[bytes | None, bool]:
        """The payloads as one JSON array ``[p1,p2,...]``, leaving out a last event whose data
        is ``end_marker`` (e.g. ``[DONE]``); and whether it was there. ``None`` when nothing
        is left."""
        blob, payloads = self.blob, self.payloads
        marker = b"data: " + end_marker
        if len(blob) == len(marker) and blob == marker:
            return None, True
        ends = blob.endswith(b"\n\n" + marker)
        if ends:
            payloads = payloads[: -len(end_marker) - 1]
        return b"[" + payloads + b"]", ends


class NamedDataEvents(DataEvents):
    """The events of one read when every one is exactly an ``event: <name>`` line and one
    ``data:`` line (Anthropic's stream), kept as the raw block. As :class:`DataEvents`, it is a
    sequence of :class:`SSEEvent` built on first use; the decoder that proved the shape also
    made the payloads into one JSON array (:attr:`array`), for a parser whose payloads
    name their own type."""

    __slots__ = ()

    _SEPARATOR = b"\n\nevent: "

    def _list(self) -> list[SSEEvent]:
        events = self._events
        if events is None:
            last_id = self.last_id
            events = self._events = []
            for block in self.blob[7:].split(self._SEPARATOR):
                name, _, data = block.partition(b"\ndata: ")
                # "event: " with no name is the default type, as on every other path (WHATWG)
                event = name.decode("utf-8", "replace") if name else "message"
                events.append(SSEEvent(data, event, last_id))
        return events

    def __repr__(self) -> str:
        return f"NamedDataEvents({self._list()!r})"

    @property
    def array(self) -> bytes:
        """The payloads as one JSON array ``[p1,p2,...]``, event names left out."""
        return b"[" + self.payloads + b"]"

    def json_array(self, end_marker: bytes = b"") -> tuple[bytes | None, bool]:
        """:attr:`array` (``end_marker`` is not looked for: named streams end with an event of
        their own)."""
        return self.array, False


def _mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: ("***" if is_credential_header(k) else v) for k, v in headers.items()}


_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@]*@")
_USERINFO_PARTS = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#@]*)@")


def url_credentials(url: str | None) -> tuple[str, ...]:
    """The credentials in a URL's user info (``user:password``, and the password alone), as
    written and percent-decoded: what a server may echo back."""
    found = _USERINFO_PARTS.match(url or "")
    if found is None:
        return ()
    userinfo = found.group(1)
    out = {userinfo, urllib.parse.unquote(userinfo)}
    for info in tuple(out):
        _, colon, password = info.partition(":")
        if colon:
            out.add(password)
    return tuple(out)


def header_credentials(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The values of credential headers, and the credential alone after a scheme word
    (``Bearer <token>``)."""
    out: list[str] = []
    for name, value in headers.items():
        if isinstance(value, str) and is_credential_header(name):
            out.append(value)
            scheme = _AUTH_SCHEME.match(value.strip())
            if scheme is not None:
                out.append(scheme.group(1))
    return tuple(out)


def masked_url(url: str) -> str:
    """``url`` fit to show: credentials in it (``https://user:password@host``) become ``***``."""
    return _USERINFO.sub(r"\1***@", url)


class HttpRequest:
    """A ready-to-send HTTP request. Its repr masks credential headers."""

    __slots__ = ("body", "headers", "method", "url")

    def __init__(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None = None
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body

    def __repr__(self) -> str:
        headers = _mask_headers(self.headers)
        return f"HttpRequest({self.method} {masked_url(self.url)}, headers={headers})"


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
    """Turns one request's stream events into chunks; one instance per request."""

    #: True once the provider's end-of-stream marker has been seen: stop reading.
    done: bool

    def parse(self, events: Sequence[Any]) -> tuple[list[ChatChunk], LLMError | None]:
        """The events of one read (``SSEEvent`` s or NDJSON lines) -> their chunks, plus the
        error that stopped parsing part-way (an error event, an unparseable frame), if any.
        The chunks before the error are returned so they reach subscribers first."""
        ...

    def finish(self) -> ChatChunk | None:
        """The body ended. Return a last chunk if the format holds one back, or raise
        ``StreamTruncatedError`` when the end marker never came."""
        ...


class EventParser:
    """Base for parsers that take one event at a time: implement :meth:`feed`."""

    done: bool = False

    def feed(self, event: Any) -> ChatChunk | None:
        """One event -> a chunk, or None to skip it. Raise an ``LLMError`` to fail."""
        raise NotImplementedError

    def parse(self, events: Sequence[Any]) -> tuple[list[ChatChunk], LLMError | None]:
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


class Provider(Protocol):
    """The spec every provider module exposes as ``PROVIDER``."""

    name: str
    stream_format: Literal["sse", "ndjson"]
    #: Options the caller may pass besides request parameters (e.g. Azure's ``api_version``).
    option_names: frozenset[str]

    def check_params(self, params: dict[str, Any], drop: bool) -> dict[str, Any]:
        """Return the parameters to send; raise ``UnsupportedParamsError`` for unknown ones
        unless ``drop`` (then they are left out)."""
        ...

    def build_request(self, call: ChatCall) -> HttpRequest: ...

    def parse_response(self, body: bytes, call: ChatCall) -> ChatResponse: ...

    def stream_parser(self, call: ChatCall) -> StreamParser: ...

    def map_error(
        self, status: int, body: bytes, headers: Mapping[str, str], call: Call
    ) -> LLMError:
        """An HTTP error response -> the typed error (provider fields filled in)."""
        ...


class EmbeddingProvider(Protocol):
    """What a provider with ``embeddings=True`` in the registry also implements."""

    def check_embedding_params(self, params: dict[str, Any], drop: bool) -> dict[str, Any]: ...

    def build_embedding_request(self, call: EmbeddingCall) -> HttpRequest: ...

    def parse_embedding_response(self, body: bytes, call: EmbeddingCall) -> EmbeddingResponse: ...
