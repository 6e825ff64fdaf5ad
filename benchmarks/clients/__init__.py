"""The clients under test, each used the way its documentation says.

Every streaming client is ``async (ctx, cfg, on_text) -> None``: it sends one request to the
benchmark server with the settings ``cfg`` (a path prefix such as ``n20000``, see server.py)
and hands each text piece to ``on_text`` as user code would receive it. Every non-streaming
client is ``async (ctx, cfg) -> str`` and returns the answer's text.

Clients are grouped by *library* (``floor``, ``rxllm``, ``openai``, ``litellm``,
``anthropic``), one module each; a worker process (worker.py) imports one library only, so no
client pays for another's imports, heap or background threads. See floor.py for the two floors.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Awaitable, Callable
from typing import Any

OnText = Callable[[str], None]
StreamFn = Callable[["Context", str, OnText], Awaitable[None]]
FetchFn = Callable[["Context", str], Awaitable[str]]

API_KEY = "sk-bench-0000"
MESSAGES = [{"role": "user", "content": "Say hello"}]
OPENAI_MODEL = "gpt-4o"
ANTHROPIC_MODEL = "claude-haiku-4-5"
MAX_TOKENS = 1024

# litellm: use its bundled model cost map and stay offline (read when it is imported).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")

FORMATS = ("openai", "anthropic")

#: format -> streaming client -> "module:function" (modules of this package, imported on use)
STREAMING: dict[str, dict[str, str]] = {
    "openai": {
        "floor-lines": "floor:lines_openai",
        "floor-bulk": "floor:bulk_openai",
        "rxllm-extract": "rx:extract_openai",
        "rxllm-collect": "rx:collect_openai",
        "openai": "sdks:openai_stream",
        "litellm": "sdks:litellm_stream",
    },
    "anthropic": {
        "floor-lines": "floor:lines_anthropic",
        "floor-bulk": "floor:bulk_anthropic",
        "rxllm-extract": "rx:extract_anthropic",
        "rxllm-collect": "rx:collect_anthropic",
        "anthropic": "sdks:anthropic_stream",
    },
}

#: format -> non-streaming client -> "module:function"
FETCHING: dict[str, dict[str, str]] = {
    "openai": {
        "floor": "floor:fetch_openai",
        "rxllm": "rx:fetch_openai",
        "openai": "sdks:openai_fetch",
        "litellm": "sdks:litellm_fetch",
    },
    "anthropic": {
        "floor": "floor:fetch_anthropic",
        "rxllm": "rx:fetch_anthropic",
        "anthropic": "sdks:anthropic_fetch",
    },
}

#: the library (and so the worker process) of each client
LIBRARY = {
    "floor-lines": "floor",
    "floor-bulk": "floor",
    "floor": "floor",
    "rxllm-extract": "rxllm",
    "rxllm-collect": "rxllm",
    "rxllm": "rxllm",
    "openai": "openai",
    "litellm": "litellm",
    "anthropic": "anthropic",
}

#: what a library's worker imports before any measurement
IMPORTS = {
    "floor": ("aiohttp", "msgspec"),
    "rxllm": ("rxllm", "rxllm.ops"),
    "openai": ("openai",),
    "litellm": ("litellm",),
    "anthropic": ("anthropic",),
}


def load(kind: str, fmt: str, name: str) -> Any:
    """The implementation of client ``name`` (``kind`` is "stream" or "fetch")."""
    table = STREAMING if kind == "stream" else FETCHING
    module, function = table[fmt][name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), function)


class Context:
    """Per-process state: the server's root URL and each library's long-lived client."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")
        self._session: Any = None
        self._sdk: dict[tuple[str, str], Any] = {}
        self._closers: list[Callable[[], Awaitable[object]]] = []

    def openai_base(self, cfg: str) -> str:
        """What the OpenAI SDK calls its base URL (…/v1)."""
        return f"{self.root}/{cfg}/v1"

    def anthropic_base(self, cfg: str) -> str:
        """What the Anthropic SDK calls its base URL (the host, without /v1)."""
        return f"{self.root}/{cfg}"

    def session(self) -> Any:
        """The floor's aiohttp session, without aiohttp's default limit of 100 connections
        (as rxllm's own session)."""
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
            self._closers.append(self._session.close)
        return self._session

    def sdk_client(self, library: str, cfg: str) -> Any:
        """One ``AsyncOpenAI`` / ``AsyncAnthropic`` per process, as an application keeps;
        the copy for other server settings shares its HTTP connection pool."""
        key = (library, cfg)
        if key not in self._sdk:
            first = self._sdk.get((library, ""))
            base_url = self.openai_base(cfg) if library == "openai" else self.anthropic_base(cfg)
            if first is None:
                if library == "openai":
                    from openai import AsyncOpenAI as Client
                else:
                    from anthropic import AsyncAnthropic as Client  # type: ignore[assignment]
                first = Client(base_url=base_url, api_key=API_KEY, max_retries=0)
                self._sdk[library, ""] = first
                self._closers.append(first.close)
            self._sdk[key] = first.with_options(base_url=base_url)
        return self._sdk[key]

    async def close(self) -> None:
        for close in reversed(self._closers):
            await close()
        self._closers.clear()
