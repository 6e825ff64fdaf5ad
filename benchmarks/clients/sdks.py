"""The peers: the official ``openai`` and ``anthropic`` SDKs (one async client per process,
``stream=True``) and ``litellm.acompletion`` (pointed at the server with ``api_base``, its
cost-map download and callbacks off). Each library is imported only by its own worker."""

from __future__ import annotations

from typing import Any

from . import ANTHROPIC_MODEL, API_KEY, MAX_TOKENS, MESSAGES, OPENAI_MODEL, Context, OnText


async def openai_stream(ctx: Context, cfg: str, on_text: OnText) -> None:
    stream = await ctx.sdk_client("openai", cfg).chat.completions.create(
        model=OPENAI_MODEL, messages=MESSAGES, stream=True
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            on_text(chunk.choices[0].delta.content)


async def openai_fetch(ctx: Context, cfg: str) -> str:
    response = await ctx.sdk_client("openai", cfg).chat.completions.create(
        model=OPENAI_MODEL, messages=MESSAGES
    )
    return str(response.choices[0].message.content)


async def anthropic_stream(ctx: Context, cfg: str, on_text: OnText) -> None:
    stream = await ctx.sdk_client("anthropic", cfg).messages.create(
        model=ANTHROPIC_MODEL, max_tokens=MAX_TOKENS, messages=MESSAGES, stream=True
    )
    async for event in stream:
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            on_text(event.delta.text)


async def anthropic_fetch(ctx: Context, cfg: str) -> str:
    message = await ctx.sdk_client("anthropic", cfg).messages.create(
        model=ANTHROPIC_MODEL, max_tokens=MAX_TOKENS, messages=MESSAGES
    )
    return "".join(block.text for block in message.content if block.type == "text")


_litellm: Any = None


def litellm() -> Any:
    """litellm, imported once, with every callback and telemetry switch off."""
    global _litellm  # noqa: PLW0603
    if _litellm is None:
        import litellm as module

        module.telemetry = False
        module.suppress_debug_info = True
        module.success_callback = []
        module.failure_callback = []
        module.callbacks = []
        _litellm = module
    return _litellm


async def litellm_stream(ctx: Context, cfg: str, on_text: OnText) -> None:
    response = await litellm().acompletion(
        model=f"openai/{OPENAI_MODEL}",
        messages=MESSAGES,
        stream=True,
        api_base=ctx.openai_base(cfg),
        api_key=API_KEY,
    )
    async for chunk in response:
        if chunk.choices and chunk.choices[0].delta.content:
            on_text(chunk.choices[0].delta.content)


async def litellm_fetch(ctx: Context, cfg: str) -> str:
    response = await litellm().acompletion(
        model=f"openai/{OPENAI_MODEL}",
        messages=MESSAGES,
        api_base=ctx.openai_base(cfg),
        api_key=API_KEY,
    )
    return str(response.choices[0].message.content)
