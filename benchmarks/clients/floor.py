"""The floor: what a careful hand-written client does with aiohttp + msgspec.

It decodes only the fields it reads, into msgspec Structs, and calls ``on_text`` straight from
the reading loop. There are two floors, because aiohttp's line reader costs more than the rest
of such a client put together:

* ``floor-lines``: ``async for line in resp.content`` (aiohttp's line iterator) - the obvious
  hand-written SSE client;
* ``floor-bulk``: ``resp.content.iter_any()`` + one ``bytes.split(b"\\n\\n")`` per read - the
  tightest plain-Python floor, and the shape of rxllm's own reader.

Neither checks what a library must (error events, truncation, finish reasons, usage): they are
the cost of moving the bytes and decoding the text, which no client can go below.
"""

from __future__ import annotations

from typing import Any

import msgspec

from . import (
    ANTHROPIC_MODEL,
    API_KEY,
    MAX_TOKENS,
    MESSAGES,
    OPENAI_MODEL,
    Context,
    OnText,
)


class _Delta(msgspec.Struct):
    content: str | None = None


class _Choice(msgspec.Struct):
    delta: _Delta


class _Chunk(msgspec.Struct):
    choices: list[_Choice]


class _Message(msgspec.Struct):
    content: str | None = None


class _ResponseChoice(msgspec.Struct):
    message: _Message


class _Response(msgspec.Struct):
    choices: list[_ResponseChoice]


class _TextDelta(msgspec.Struct):
    text: str | None = None


class _Event(msgspec.Struct):
    type: str
    delta: _TextDelta | None = None


class _Block(msgspec.Struct):
    text: str | None = None


class _Message2(msgspec.Struct):
    content: list[_Block]


_decode_chunk = msgspec.json.Decoder(_Chunk).decode
_decode_response = msgspec.json.Decoder(_Response).decode
_decode_event = msgspec.json.Decoder(_Event).decode
_decode_message = msgspec.json.Decoder(_Message2).decode
_encode = msgspec.json.encode

_OPENAI_HEADERS = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
_ANTHROPIC_HEADERS = {
    "x-api-key": API_KEY,
    "anthropic-version": "2023-06-01",
    "Content-Type": "application/json",
}


def _openai(ctx: Context, cfg: str, stream: bool) -> Any:
    body = _encode({"model": OPENAI_MODEL, "messages": MESSAGES, "stream": stream})
    url = ctx.openai_base(cfg) + "/chat/completions"
    return ctx.session().post(url, data=body, headers=_OPENAI_HEADERS)


def _anthropic(ctx: Context, cfg: str, stream: bool) -> Any:
    body = _encode(
        {"model": ANTHROPIC_MODEL, "max_tokens": MAX_TOKENS, "messages": MESSAGES, "stream": stream}
    )
    url = ctx.anthropic_base(cfg) + "/v1/messages"
    return ctx.session().post(url, data=body, headers=_ANTHROPIC_HEADERS)


async def lines_openai(ctx: Context, cfg: str, on_text: OnText) -> None:
    async with _openai(ctx, cfg, True) as resp:
        resp.raise_for_status()
        async for line in resp.content:
            if line.startswith(b"data: "):
                payload = line[6:].rstrip()
                if payload == b"[DONE]":
                    break
                choices = _decode_chunk(payload).choices
                if choices and choices[0].delta.content:
                    on_text(choices[0].delta.content)


async def bulk_openai(ctx: Context, cfg: str, on_text: OnText) -> None:
    tail = b""
    async with _openai(ctx, cfg, True) as resp:
        resp.raise_for_status()
        async for data in resp.content.iter_any():
            events = (tail + data).split(b"\n\n")
            tail = events.pop()
            for event in events:
                payload = event[6:]
                if payload == b"[DONE]":
                    return
                choices = _decode_chunk(payload).choices
                if choices and choices[0].delta.content:
                    on_text(choices[0].delta.content)


async def lines_anthropic(ctx: Context, cfg: str, on_text: OnText) -> None:
    async with _anthropic(ctx, cfg, True) as resp:
        resp.raise_for_status()
        async for line in resp.content:
            if line.startswith(b"data: "):
                event = _decode_event(line[6:])
                if event.delta is not None and event.delta.text:
                    on_text(event.delta.text)
                elif event.type == "message_stop":
                    break


async def bulk_anthropic(ctx: Context, cfg: str, on_text: OnText) -> None:
    tail = b""
    async with _anthropic(ctx, cfg, True) as resp:
        resp.raise_for_status()
        async for data in resp.content.iter_any():
            events = (tail + data).split(b"\n\n")
            tail = events.pop()
            for raw in events:
                event = _decode_event(raw[raw.index(b"data: ") + 6 :])
                if event.delta is not None and event.delta.text:
                    on_text(event.delta.text)
                elif event.type == "message_stop":
                    return


async def fetch_openai(ctx: Context, cfg: str) -> str:
    async with _openai(ctx, cfg, False) as resp:
        resp.raise_for_status()
        return _decode_response(await resp.read()).choices[0].message.content or ""


async def fetch_anthropic(ctx: Context, cfg: str) -> str:
    async with _anthropic(ctx, cfg, False) as resp:
        resp.raise_for_status()
        return "".join(block.text or "" for block in _decode_message(await resp.read()).content)
