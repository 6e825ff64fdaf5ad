"""rxllm, through its public API only: ``acompletion(..., stream=True)`` piped through
``ops.extract_content()`` (text as it arrives) or ``ops.collect()`` (one ``ChatResponse``), and
``acompletion(...)`` without ``stream``."""

from __future__ import annotations

import asyncio
from typing import Any

import rxllm
from rxllm import ops

from . import ANTHROPIC_MODEL, API_KEY, MAX_TOKENS, MESSAGES, OPENAI_MODEL, Context, OnText


def _args(ctx: Context, fmt: str, cfg: str) -> dict[str, Any]:
    if fmt == "openai":
        return {"model": f"openai/{OPENAI_MODEL}", "api_base": ctx.openai_base(cfg)}
    return {
        "model": f"anthropic/{ANTHROPIC_MODEL}",
        "api_base": ctx.anthropic_base(cfg),
        "max_tokens": MAX_TOKENS,
    }


async def _extract(ctx: Context, fmt: str, cfg: str, on_text: OnText) -> None:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    stream = await rxllm.acompletion(
        messages=MESSAGES, stream=True, api_key=API_KEY, **_args(ctx, fmt, cfg)
    )
    stream.pipe(ops.extract_content()).subscribe(
        on_text, done.set_exception, lambda: done.set_result(None)
    )
    await done


async def _collect(ctx: Context, fmt: str, cfg: str, on_text: OnText) -> None:
    stream = await rxllm.acompletion(
        messages=MESSAGES, stream=True, api_key=API_KEY, **_args(ctx, fmt, cfg)
    )
    response = await stream.pipe(ops.collect())
    on_text(response.text)


async def _fetch(ctx: Context, fmt: str, cfg: str) -> str:
    response = await rxllm.acompletion(messages=MESSAGES, api_key=API_KEY, **_args(ctx, fmt, cfg))
    return response.text or ""


async def extract_openai(ctx: Context, cfg: str, on_text: OnText) -> None:
    await _extract(ctx, "openai", cfg, on_text)


async def collect_openai(ctx: Context, cfg: str, on_text: OnText) -> None:
    await _collect(ctx, "openai", cfg, on_text)


async def fetch_openai(ctx: Context, cfg: str) -> str:
    return await _fetch(ctx, "openai", cfg)


async def extract_anthropic(ctx: Context, cfg: str, on_text: OnText) -> None:
    await _extract(ctx, "anthropic", cfg, on_text)


async def collect_anthropic(ctx: Context, cfg: str, on_text: OnText) -> None:
    await _collect(ctx, "anthropic", cfg, on_text)


async def fetch_anthropic(ctx: Context, cfg: str) -> str:
    return await _fetch(ctx, "anthropic", cfg)


async def close() -> None:
    await rxllm.aclose()
