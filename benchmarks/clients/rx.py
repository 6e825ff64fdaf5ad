"""rxllm, through its public API only: ``acompletion(..., stream=True)`` piped through
``ops.extract_content()`` (text as it arrives) or ``ops.collect()`` (one ``ChatResponse``), and
``acompletion(...)`` without ``stream``."""

from __future__ import annotations

import asyncio
import functools
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


async def _extract(fmt: str, ctx: Context, cfg: str, on_text: OnText) -> None:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    stream = await rxllm.acompletion(
        messages=MESSAGES, stream=True, api_key=API_KEY, **_args(ctx, fmt, cfg)
    )
    stream.pipe(ops.extract_content()).subscribe(
        on_text, done.set_exception, lambda: done.set_result(None)
    )
    await done


async def _collect(fmt: str, ctx: Context, cfg: str, on_text: OnText) -> None:
    stream = await rxllm.acompletion(
        messages=MESSAGES, stream=True, api_key=API_KEY, **_args(ctx, fmt, cfg)
    )
    response = await stream.pipe(ops.collect())
    on_text(response.text)


async def _fetch(fmt: str, ctx: Context, cfg: str) -> str:
    response = await rxllm.acompletion(messages=MESSAGES, api_key=API_KEY, **_args(ctx, fmt, cfg))
    return response.text or ""


extract_openai = functools.partial(_extract, "openai")
collect_openai = functools.partial(_collect, "openai")
fetch_openai = functools.partial(_fetch, "openai")
extract_anthropic = functools.partial(_extract, "anthropic")
collect_anthropic = functools.partial(_collect, "anthropic")
fetch_anthropic = functools.partial(_fetch, "anthropic")


async def close() -> None:
    await rxllm.aclose()
