"""One SSE decoder, whatever path a read takes.

``SSEDecoder`` answers most reads through bulk paths (``DataEvents``, ``NamedDataEvents``) and
the rest block by block. Arbitrary streams of field lines - every field, comments, empty values,
with and without the space after the colon, CR / LF / CRLF line ends, a BOM - fed in arbitrary
pieces must give exactly the events of the reference field-by-field path, which must in turn
give exactly what the WHATWG "event stream interpretation" rules say (written out again here,
line by line, as the independent oracle). Then the consumers' view: the OpenAI parser reads an
OpenAI stream the same whatever ``event:`` / ``id:`` / comment lines a proxy adds to it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import msgspec
from hypothesis import example, given, settings
from hypothesis import strategies as st

import rxllm
from rxllm._events import DataEvents, NamedDataEvents, SSEEvent
from rxllm._sse import SSEDecoder
from rxllm.providers.openai import OpenAIStreamParser
from rxllm.streaming import collect_sync
from rxllm.types import ChatChunk

from .conftest import API_KEY, fixture_bytes
from .server import ReplayServer, Reply

Event = tuple[str, bytes, str | None]


class ReferenceDecoder(SSEDecoder):
    """The decoder with its bulk and single-line paths turned off: every block field by field."""

    _dispatch = SSEDecoder._by_fields


def whatwg(body: bytes) -> tuple[list[Event], str | None, int | None]:
    """The WHATWG rules, line by line: the events, then the last event ID and the retry time.

    As rxllm does on purpose, an event still pending at the end of the body is dispatched.
    """
    text = body.decode()
    text = text.removeprefix("\ufeff")
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    tail = lines.pop()  # after the last line end: an unterminated line, read at the end
    events: list[Event] = []
    data: list[str] = []
    event_type, last_id, retry = "", None, None
    seen_data = False

    def dispatch() -> None:
        nonlocal event_type, seen_data
        if seen_data:
            events.append((event_type or "message", "\n".join(data).encode(), last_id))
        data.clear()
        event_type, seen_data = "", False

    for line in [*lines, tail] if tail else lines:
        if line == "":
            dispatch()
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
            seen_data = True
        elif name == "event":
            event_type = value
        elif name == "id":
            if "\0" not in value:
                last_id = value
        elif name == "retry" and value and all("0" <= c <= "9" for c in value):
            retry = int(value)
    dispatch()  # rxllm: the end of the body ends a pending event too
    return events, last_id, retry


def as_tuples(events: Sequence[SSEEvent]) -> list[Event]:
    return [(e.event, e.data, e.id) for e in events]


def check_bulk_view(events: Sequence[SSEEvent]) -> None:
    """What a bulk consumer reads (joined payloads, a JSON array) is what it would read event
    by event."""
    if not isinstance(events, DataEvents):
        return
    datas = [e.data for e in events]
    assert len(events) == len(datas)
    assert events.payloads == b",".join(datas)
    if type(events) is NamedDataEvents:
        assert events.array == b"[" + b",".join(datas) + b"]"
        return
    ends = datas[-1] == b"[DONE]"
    body = datas[:-1] if ends else datas
    expected = (b"[" + b",".join(body) + b"]") if body else None
    assert events.json_array(b"[DONE]") == (expected, ends)


def decode(decoder: SSEDecoder, pieces: list[bytes]) -> list[SSEEvent]:
    events: list[SSEEvent] = []
    for piece in pieces:
        read = decoder.feed(piece)
        check_bulk_view(read)
        events += read
    return events + decoder.close()


def cut(data: bytes, positions: list[int]) -> list[bytes]:
    bounds = [0, *sorted({p % (len(data) + 1) for p in positions}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# --- arbitrary streams -----------------------------------------------------------------------

#: Field names: the four the standard defines (the usual ones more often) and near misses.
NAMES = st.sampled_from(
    [
        "data",
        "data",
        "data",
        "event",
        "event",
        "id",
        "retry",
        "Data",
        "data ",
        "dat",
        "x",
        "",
        "\ufeffdata",
    ]
)
VALUES = st.one_of(
    st.sampled_from(["", " ", "message", "error", "[DONE]", '{"a": 1}', "12", "7\x00", " x"]),
    st.text(alphabet='ab{}":, 09\x00é[]', max_size=6),
)


@st.composite
def field_line(draw: st.DrawFn) -> str:
    """``name`` alone, ``name:value`` or ``name: value``; never a line starting with ``{``
    (rxllm reads a block that starts with one as a bare JSON error object, on purpose)."""
    name = draw(NAMES)
    form = draw(st.sampled_from(["name", "colon", "colon space", "colon space"]))
    if form == "name":
        return name or "data"
    value = draw(VALUES)
    return f"{name}:{value}" if form == "colon" else f"{name}: {value}"


#: Whole events in the shapes the bulk paths take, so that reads of them are common.
USUAL_BLOCKS = st.one_of(
    st.builds(lambda v: [f"data: {v}"], VALUES),
    st.builds(lambda n, v: [f"event: {n}", f"data: {v}"], VALUES, VALUES),
    st.builds(lambda n, v: [f"event:{n}", f"data: {v}"], VALUES, VALUES),
)
ODD_BLOCKS = st.lists(
    st.one_of(field_line(), st.builds(lambda t: ":" + t, VALUES)), min_size=0, max_size=4
)


@st.composite
def streams(draw: st.DrawFn) -> bytes:
    """Blocks of lines, usually ended by a blank line, each line by CR, LF or CRLF."""
    blocks = draw(st.lists(st.one_of(USUAL_BLOCKS, USUAL_BLOCKS, ODD_BLOCKS), max_size=12))
    uniform = draw(st.sampled_from([None, "\n", "\r\n", "\r"]))
    ends = st.sampled_from(["\n", "\r", "\r\n"]) if uniform is None else st.just(uniform)
    out = ["\ufeff"] if draw(st.booleans()) else []
    for block in blocks:
        for line in block:
            out += [line, draw(ends)]
        if draw(st.integers(0, 5)):  # mostly a blank line; sometimes two blocks run together
            out.append(draw(ends))
    if out and draw(st.booleans()):  # sometimes the body stops mid-line
        out.pop()
    return "".join(out).encode()


# --- the properties --------------------------------------------------------------------------


def test_an_empty_event_name_on_the_named_bulk_path_is_the_default_type() -> None:
    events = SSEDecoder().feed(b"event: \ndata: 1\n\nevent: message\ndata: 2\n\n")
    assert type(events) is NamedDataEvents
    assert as_tuples(events) == [("message", b"1", None), ("message", b"2", None)]


def test_the_oracle_reads_the_standard_examples() -> None:
    body = b"data: YHOO\ndata: +2\ndata: 10\n\n: c\nevent:add\nid: 1\ndata\n\nevent\ndata:x\n\n"
    events, last_id, _ = whatwg(body)
    assert events == [("message", b"YHOO\n+2\n10", None), ("add", b"", "1"), ("message", b"x", "1")]
    assert last_id == "1"


@settings(max_examples=600, deadline=None)
@given(body=streams(), positions=st.lists(st.integers(0, 10_000), max_size=8))
@example(body=b"event: \ndata: 1\n\nevent: \ndata: 2\n\n", positions=[])
@example(body=b"event: \r\ndata: 1\r\n\r\n", positions=[7])
@example(body=b"event: x\ndata: 1\n\nevent: \ndata: 2\n\n", positions=[])
def test_every_path_gives_the_reference_events(body: bytes, positions: list[int]) -> None:
    expected, last_id, retry = whatwg(body)
    reference = ReferenceDecoder()
    assert as_tuples(decode(reference, [body])) == expected
    production = SSEDecoder()
    assert as_tuples(decode(production, cut(body, positions))) == expected
    assert (production.last_event_id, production.retry) == (last_id, retry)
    assert (reference.last_event_id, reference.retry) == (last_id, retry)


@settings(max_examples=200, deadline=None)
@given(body=streams())
def test_byte_by_byte_gives_the_reference_events(body: bytes) -> None:
    events = decode(SSEDecoder(), [body[i : i + 1] for i in range(len(body))])
    assert as_tuples(events) == whatwg(body)[0]


# --- the OpenAI parser over decorated streams ------------------------------------------------

_encode = msgspec.json.Encoder().encode


def openai_payload(i: int) -> bytes:
    delta = {"role": "assistant", "content": ""} if i == 0 else {"content": f"w{i} "}
    return _encode(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
        }
    )


#: What proxies and servers add around an OpenAI ``data:`` line: the default event named (with
#: or without a value), an id, a comment, a retry.
DECORATIONS = st.lists(
    st.sampled_from(
        ["event: ", "event:", "event: message", "event:message", "id: 3", ": hi", "retry: 10"]
    ),
    max_size=2,
)


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(1, 30),
    decorations=st.data(),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    positions=st.lists(st.integers(0, 100_000), max_size=10),
)
def test_openai_parser_reads_decorated_streams(
    n: int, decorations: st.DataObject, newline: str, positions: list[int]
) -> None:
    """``event: message`` / ``event: `` lines (some proxies write them), ids, comments: the
    same chunks as the bare stream, and ``[DONE]`` still ends it."""
    lines: list[bytes] = []
    for payload in [*map(openai_payload, range(n)), b"[DONE]"]:
        lines.extend(extra.encode() for extra in decorations.draw(DECORATIONS))
        lines += [b"data: " + payload, b""]
    body = b"".join(line + newline.encode() for line in lines)
    decoder, parser = SSEDecoder(), OpenAIStreamParser("openai", "m")
    chunks: list[ChatChunk] = []
    for piece in cut(body, positions):
        parsed, error = parser.parse(decoder.feed(piece))
        assert error is None
        chunks += parsed
    parsed, error = parser.parse(decoder.close())
    assert error is None and parser.done and parser.finish() is None
    text = "".join(c.choices[0].delta.content or "" for c in chunks + parsed)
    assert text == "".join(f"w{i} " for i in range(1, n))


def test_openai_stream_with_empty_event_lines_end_to_end(
    server: ReplayServer, openai_base: str
) -> None:
    """A real OpenAI transcript as a proxy that names every event ``event: `` relays it: read
    over HTTP by rxllm, it is the same answer (it used to end in StreamTruncatedError)."""
    body = fixture_bytes("openai/stream_text_usage.sse").replace(b"data: ", b"event: \ndata: ")
    server.queue(Reply(body=body, piece=200))
    chat = rxllm.completion(
        "openai",
        "gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        api_key=API_KEY,
        api_base=openai_base,
    )
    response = collect_sync(chat, timeout=10)
    assert response.text.startswith("I'm unable to provide real-time weather updates.")
    assert response.usage is not None and response.usage.total_tokens == 44
