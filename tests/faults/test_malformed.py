"""Malformed input from a server stays typed: a frame nested deeper than the JSON decoder
follows, an index below zero, a body compressed in a way the request did not accept (or a
corrupt one) are each a ``MalformedResponseError`` - never a bare ``LLMError``, an
``APIConnectionError`` claiming the server could not be reached, or a silent completion - and
the chunks that came before still reach the subscriber."""

from __future__ import annotations

import zlib
from typing import Any

import pytest

import rxllm
from rxllm import errors

from ..conftest import API_KEY, failure_of
from ..server import Reply
from .cases import OPENAI
from .server import FaultServer

MESSAGES = [{"role": "user", "content": "hi"}]
#: JSON nested 5,000 deep: valid, but deeper than msgspec follows (it raises RecursionError).
DEEP = b"[" * 5000 + b"]" * 5000


def chat(faults: FaultServer, provider: str, *, stream: bool = True, path: str = "/v1") -> Any:
    return rxllm.completion(
        provider,
        "m",
        messages=MESSAGES,
        stream=stream,
        api_key=API_KEY,
        api_base=faults.base + path,
    )


def sse_frames(*payloads: bytes) -> bytes:
    return b"".join(b"data: " + p + b"\n\n" for p in payloads)


def openai_chunk(content: str = "Hel", index: int = 0, **delta: Any) -> bytes:
    import json

    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "m",
            "choices": [{"index": index, "delta": {"content": content, **delta}}],
        }
    ).encode()


ANTHROPIC_TEXT = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",'
    b'"model":"m","content":[],"stop_reason":null,"usage":{"input_tokens":3,"output_tokens":1}}}'
    b"\n\n"
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hel"}}'
    b"\n\n"
)

#: Per provider: its api_base path, a stream body whose text is "Hel", then a deep frame.
DEEP_STREAMS: dict[str, tuple[str, bytes, str]] = {
    "openai": (
        "/v1",
        sse_frames(openai_chunk(), b'{"id":"x","choices":[],"x":' + DEEP + b"}"),
        "sse",
    ),
    "openai_compatible": (
        "/v1",
        sse_frames(openai_chunk(), b'{"id":"x","choices":[],"x":' + DEEP + b"}"),
        "sse",
    ),
    "anthropic": (
        "",
        ANTHROPIC_TEXT
        + b'event: content_block_delta\ndata: {"type":"content_block_delta","x":'
        + DEEP
        + b"}\n\n",
        "sse",
    ),
    "gemini": (
        "",
        sse_frames(
            b'{"candidates":[{"content":{"parts":[{"text":"Hel"}],"role":"model"},"index":0}],'
            b'"modelVersion":"m","responseId":"r"}',
            b'{"candidates":' + DEEP + b"}",
        ),
        "sse",
    ),
    "ollama": (
        "",
        b'{"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant",'
        b'"content":"Hel"},"done":false}\n{"model":"m","x":' + DEEP + b"}\n",
        "ndjson",
    ),
}


@pytest.mark.parametrize("provider", list(DEEP_STREAMS))
def test_a_frame_nested_too_deeply_is_malformed_and_the_frame_before_it_arrives(
    faults: FaultServer, provider: str
) -> None:
    path, body, kind = DEEP_STREAMS[provider]
    content_type = "text/event-stream" if kind == "sse" else "application/x-ndjson"
    faults.queue(Reply(body=body, content_type=content_type))  # one write: one read
    error = failure_of(chat(faults, provider, path=path))
    assert type(error) is errors.MalformedResponseError, repr(error)
    assert error.partial_text == "Hel"
    assert error.provider == provider


def test_a_response_nested_too_deeply_is_malformed(faults: FaultServer) -> None:
    body = b'{"id":"x","object":"chat.completion","choices":[],"x":' + DEEP + b"}"
    faults.queue(Reply(body=body, content_type="application/json"))
    with pytest.raises(errors.MalformedResponseError, match="nested too deeply"):
        chat(faults, "openai", stream=False)


@pytest.mark.parametrize("provider", ["openai", "openai_compatible", "deepseek"])
@pytest.mark.parametrize(
    "bad",
    [
        openai_chunk("", index=-1),
        openai_chunk(
            "", tool_calls=[{"index": -1, "id": "c", "function": {"name": "f", "arguments": ""}}]
        ),
    ],
    ids=["choice", "tool_call"],
)
def test_a_negative_index_in_a_stream_is_malformed(
    faults: FaultServer, provider: str, bad: bytes
) -> None:
    finish = openai_chunk("", finish_reason="stop")
    faults.queue(Reply(body=sse_frames(openai_chunk(), bad, finish, b"[DONE]")))
    error = failure_of(chat(faults, provider))
    assert type(error) is errors.MalformedResponseError, repr(error)
    assert error.partial_text == "Hel"


def test_a_negative_index_in_a_response_is_malformed(faults: FaultServer) -> None:
    body = (
        b'{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":-1,'
        b'"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}]}'
    )
    faults.queue(Reply(body=body, content_type="application/json"))
    with pytest.raises(errors.MalformedResponseError):
        chat(faults, "openai", stream=False)


def test_a_negative_content_block_index_is_malformed(faults: FaultServer) -> None:
    bad = (
        b"event: content_block_start\n"
        b'data: {"type":"content_block_start","index":-1,"content_block":{"type":"tool_use",'
        b'"id":"t","name":"f","input":{}}}\n\n'
    )
    faults.queue(Reply(body=ANTHROPIC_TEXT + bad))
    error = failure_of(chat(faults, "anthropic", path=""))
    assert type(error) is errors.MalformedResponseError and error.partial_text == "Hel"


#: Bodies compressed in ways the request did not accept (aiohttp asks for gzip and deflate, and
#: zstd or br when their libraries are installed), or corrupt: brotli and zstandard magic
#: numbers, and a "gzip" that is not. Either way the body cannot be decoded.
UNDECODABLE = {
    "br": b"\x1b\x07\x00\xf8\xa5\x5b\x8e" * 20,
    "zstd": b"\x28\xb5\x2f\xfd" + b"x" * 60,
    "gzip": b"this is not gzip at all " * 8,
}


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "response"])
@pytest.mark.parametrize("encoding", list(UNDECODABLE))
def test_a_body_in_an_encoding_not_asked_for_is_malformed_not_unreachable(
    faults: FaultServer, encoding: str, stream: bool
) -> None:
    content_type = "text/event-stream" if stream else "application/json"
    faults.queue(
        Reply(
            body=UNDECODABLE[encoding],
            content_type=content_type,
            headers={"Content-Encoding": encoding},
        )
    )
    if stream:
        error = failure_of(chat(faults, "openai"))
    else:
        with pytest.raises(errors.LLMError) as caught:
            chat(faults, "openai", stream=False)
        error = caught.value
    assert type(error) is errors.MalformedResponseError, repr(error)
    assert "could not reach" not in str(error) and "cannot be decoded" in str(error)


def test_a_gzip_stream_that_turns_corrupt_keeps_what_came_before(faults: FaultServer) -> None:
    t = OPENAI.transcript
    good = t.body[: t.body.index(b"\n\n", t.body.index(b"unable")) + 2]
    compressor = zlib.compressobj(wbits=31)
    first = compressor.compress(good) + compressor.flush(zlib.Z_SYNC_FLUSH)
    # Two writes, paced apart, so the good part is read (and decoded) before the corrupt one.
    reply = Reply(body=first + b"\xff" * len(first), piece=len(first), delay=0.2)
    reply.headers["Content-Encoding"] = "gzip"
    faults.queue(reply)
    error = failure_of(chat(faults, "openai"))
    assert type(error) is errors.MalformedResponseError, repr(error)
    assert error.partial_text == OPENAI.text_of_three_frames
