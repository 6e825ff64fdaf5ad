"""The SSE decoder: WHATWG event-stream rules, and identical events however the bytes are cut."""

from __future__ import annotations

import hashlib
import itertools
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rxllm._events import NamedDataEvents, SSEEvent
from rxllm._ndjson import NDJSONDecoder
from rxllm._sse import SSEDecoder
from rxllm.errors import MalformedResponseError

from .conftest import FIXTURES

SSE_TRANSCRIPTS = sorted(FIXTURES.glob("*/*.sse"))
NDJSON_TRANSCRIPTS = sorted(FIXTURES.glob("*/*.ndjson"))


def decode(pieces: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for piece in pieces:
        events += decoder.feed(piece)
    return events + decoder.close()


def cut(data: bytes, positions: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(positions)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def test_fixture_hashes_match_sources() -> None:
    sources = (FIXTURES / "SOURCES.md").read_text()
    listed = dict(
        re.findall(r"### `([^`]+)`.*?sha256:\*\* \d+ bytes, `([0-9a-f]{64})`", sources, re.S)
    )
    files = [p for p in FIXTURES.glob("*/*") if p.is_file()]
    assert files
    for path in files:
        name = f"{path.parent.name}/{path.name}"
        assert name in listed, f"{name} has no entry in tests/fixtures/SOURCES.md"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == listed[name], name


# --- the WHATWG rules, one by one ------------------------------------------------------------


def test_single_data_event() -> None:
    assert decode([b"data: hello\n\n"]) == [SSEEvent(b"hello")]


def test_event_id_retry_fields() -> None:
    events = decode([b"event: ping\nid: 7\nretry: 1500\ndata: {}\n\n"])
    assert events == [SSEEvent(b"{}", "ping", "7", 1500)]


def test_last_event_id_persists_and_nul_id_is_ignored() -> None:
    decoder = SSEDecoder()
    events = decoder.feed(b"id: a\ndata: 1\n\ndata: 2\n\nid: b\x00c\ndata: 3\n\n")
    assert [e.id for e in events] == ["a", "a", "a"]
    assert decoder.last_event_id == "a"


def test_multiline_data_joined_with_newline() -> None:
    assert decode([b"data: one\ndata: two\ndata:\n\n"]) == [SSEEvent(b"one\ntwo\n")]


def test_comments_and_unknown_fields_are_ignored() -> None:
    body = b": OPENROUTER PROCESSING\n\n:keep-alive\nfoo: bar\ndata: x\n\n"
    assert decode([body]) == [SSEEvent(b"x")]


def test_only_one_leading_space_is_removed() -> None:
    assert decode([b"data:  two spaces\n\ndata:none\n\n"]) == [
        SSEEvent(b" two spaces"),
        SSEEvent(b"none"),
    ]


def test_field_without_colon_and_empty_event_name() -> None:
    # "data" alone is a data field with an empty value; an empty event name means "message".
    assert decode([b"event:\ndata\n\n"]) == [SSEEvent(b"")]


def test_event_without_data_is_not_dispatched() -> None:
    assert decode([b"event: ping\n\nid: 3\n\n"]) == []


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_all_line_endings(newline: bytes) -> None:
    body = b"event: e" + newline + b"data: 1" + newline + newline + b"data: 2" + newline * 2
    assert decode([body]) == [SSEEvent(b"1", "e"), SSEEvent(b"2")]


def test_cr_and_lf_split_across_reads_are_one_line_end() -> None:
    assert decode([b"data: 1\r", b"\n\r", b"\ndata: 2\r\n\r\n"]) == [SSEEvent(b"1"), SSEEvent(b"2")]


def test_bom_is_dropped_even_split_across_reads() -> None:
    assert decode([b"\xef", b"\xbb", b"\xbfdata: x\n\n"]) == [SSEEvent(b"x")]
    assert decode([b"\xef\xbb\xbfdata: x\n\n"]) == [SSEEvent(b"x")]


def test_utf8_character_split_across_reads_stays_whole() -> None:
    body = 'data: {"t":"h\u00e9llo \U0001f642"}\n\n'.encode()
    split = body.index(b"\xf0") + 2  # inside the 4-byte emoji
    assert decode([body[:split], body[split:]]) == decode([body])
    assert decode([body])[0].data.decode() == '{"t":"h\u00e9llo \U0001f642"}'


def test_unterminated_last_event_is_dispatched_at_close() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: 1\n\ndata: [DONE]") == [SSEEvent(b"1")]
    assert decoder.close() == [SSEEvent(b"[DONE]")]
    assert decoder.close() == []


def test_bare_json_object_outside_the_framing_is_dispatched() -> None:
    # A server that appends a plain (pretty-printed) JSON error to an event stream: WHATWG
    # would drop those lines as unknown fields and the failure would go unseen.
    body = b'data: {"a":1}\r\n\r\n{\n  "error": {\n    "code": 499\n  }\n}\n'
    assert decode([body]) == [
        SSEEvent(b'{"a":1}'),
        SSEEvent(b'{\n  "error": {\n    "code": 499\n  }\n}'),
    ]
    assert decode([body + b"\n"]) == decode([body])
    # Unknown fields that are not a bare JSON object are still ignored, as WHATWG says.
    assert decode([b"foo: bar\n\ndata: x\n\n"]) == [SSEEvent(b"x")]


def test_oversized_event_is_refused() -> None:
    decoder = SSEDecoder(max_event_bytes=1000)
    with pytest.raises(MalformedResponseError):
        for _ in range(20):
            decoder.feed(b"data: " + b"x" * 100)


def test_large_event_trickled_byte_by_byte() -> None:
    body = b"data: " + b"y" * 200_000 + b"\n\n"
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for i in range(len(body)):
        events += decoder.feed(body[i : i + 1])
    assert events == [SSEEvent(b"y" * 200_000)]


def test_bulk_and_block_paths_agree() -> None:
    # Many one-line data events (bulk path) with one odd event in the middle (block path).
    body = b"".join(b"data: %d\n\n" % i for i in range(50))
    odd = body + b"event: x\ndata: odd\n\n" + body
    events = decode([odd])
    assert len(events) == 101
    assert events[50] == SSEEvent(b"odd", "x")
    assert [e.data for e in events[:50]] == [b"%d" % i for i in range(50)]


def block_by_block(body: bytes) -> list[SSEEvent]:
    """The reference: each blank-line-separated block through the field-by-field parser."""
    decoder = SSEDecoder()
    events = (decoder._parse_block(block) for block in body.split(b"\n\n") if block)
    return [event for event in events if event is not None]


NAMED = b'event: a\ndata: 1\n\nevent: b\ndata: {"x": 2}\n\nevent: c\ndata: \n\n'


@pytest.mark.parametrize(
    "body",
    [
        NAMED,
        b"event: a\n\nevent: b\ndata: 1\ndata: 2\n\n",  # as many data lines as events
        b"event: a\ndata: 1\ndata: 2\n\nevent: b\n\n",
        b"event: a\ndata: 1\n\n\nevent: b\ndata: 2\n\n",  # an extra blank line
        b"event: a\ndata: 1\nid: 5\n\nevent: b\ndata: 2\n\n",
        b"event: a\ndata:1\n\nevent: b\ndata: 2\n\n",  # no space after the colon
        b"event: a\ndata: 1\n\nevent: b\n: comment\n\n",
        b"event: a\ndata: 1\n\nevent: b\nevent: c\n\n",
        b"event: a\ndata: 1\n\ndata: 2\n\n",  # named, then unnamed
        b"event:  a\ndata:  1\n\n",  # a second space is part of the value
    ],
)
def test_named_events_bulk_path_agrees_with_block_by_block(body: bytes) -> None:
    assert decode([body]) == block_by_block(body)


def test_named_events_bulk_path_gives_one_json_array() -> None:
    events = SSEDecoder().feed(NAMED)
    assert type(events) is NamedDataEvents
    assert events.array == b'[1,{"x": 2},]'  # the empty payload stays visible (and invalid)
    assert [e.event for e in events] == ["a", "b", "c"] and len(events) == 3
    lopsided = b"event: a\n\nevent: b\ndata: 1\ndata: 2\n\n"
    assert type(SSEDecoder().feed(lopsided)) is not NamedDataEvents


# --- real transcripts, every way of cutting them ----------------------------------------------


#: Transcripts longer than this are cut at every ``len // EVERY_CUT_LIMIT``-th byte instead of
#: every byte (the test is quadratic in a transcript's size; the hypothesis tests below still
#: cut those anywhere).
EVERY_CUT_LIMIT = 40_000


@pytest.mark.slow  # every cut of every transcript: quadratic in its size (15 s in all)
@pytest.mark.parametrize("path", SSE_TRANSCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_single_cut_of_each_transcript(path: Path) -> None:
    data = path.read_bytes()
    whole = decode([data])
    assert whole, "a transcript decodes to at least one event"
    step = 1 if len(data) <= EVERY_CUT_LIMIT else len(data) // EVERY_CUT_LIMIT * 7 + 1
    for position in range(1, len(data), step):
        assert decode([data[:position], data[position:]]) == whole


@pytest.mark.parametrize("path", SSE_TRANSCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_cuts_of_each_transcript(path: Path, data: st.DataObject) -> None:
    body = path.read_bytes()
    positions = data.draw(st.lists(st.integers(1, max(1, len(body) - 1)), max_size=60))
    assert decode(cut(body, positions)) == decode([body])


@pytest.mark.parametrize("path", SSE_TRANSCRIPTS, ids=lambda p: f"{p.parent.name}/{p.name}")
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_cuts_with_crlf_and_cr_line_ends(path: Path, data: st.DataObject) -> None:
    body = path.read_bytes().replace(b"\r\n", b"\n")
    newline = data.draw(st.sampled_from([b"\r\n", b"\r"]))
    converted = body.replace(b"\n", newline)
    positions = data.draw(st.lists(st.integers(1, len(converted) - 1), max_size=60))
    assert decode(cut(converted, positions)) == decode([body])


# --- NDJSON ------------------------------------------------------------------------------------


def ndjson(pieces: list[bytes]) -> list[bytes]:
    decoder = NDJSONDecoder()
    lines: list[bytes] = []
    for piece in pieces:
        lines += decoder.feed(piece)
    return lines + decoder.close()


def test_ndjson_lines_crlf_blank_and_unterminated_last() -> None:
    assert ndjson([b'{"a":1}\r\n\n{"b"', b':2}\n{"c":3}']) == [b'{"a":1}', b'{"b":2}', b'{"c":3}']


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_ndjson_any_cuts(data: st.DataObject) -> None:
    body = b"".join(b'{"i":%d,"t":"\xc3\xa9\xf0\x9f\x99\x82"}\n' % i for i in range(30))
    positions = data.draw(st.lists(st.integers(1, len(body) - 1), max_size=40))
    assert ndjson(cut(body, positions)) == ndjson([body])
    for path in NDJSON_TRANSCRIPTS:
        raw = path.read_bytes()
        cuts = data.draw(st.lists(st.integers(1, len(raw) - 1), max_size=40))
        assert ndjson(cut(raw, cuts)) == ndjson([raw])
