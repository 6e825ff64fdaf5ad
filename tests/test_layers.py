"""The layers of rxllm, as data, checked against every import in the package.

Every module under ``rxllm/`` is parsed with :mod:`ast`; every import - absolute or relative, at
module level, inside a function or under ``if TYPE_CHECKING`` - is an arrow from its module's
layer to the imported module's layer, and an arrow the table does not allow fails the test.
A new module must be placed in a layer (an unplaced one fails too).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rxllm

ROOT = Path(rxllm.__file__).parent

#: Layer -> the modules in it (a name also covers the modules below it: ``rxllm.transport``
#: is the package and everything in it). The longest matching name decides.
LAYERS: dict[str, tuple[str, ...]] = {
    # Pure data and functions every other layer shares: no I/O, no Rx, no providers.
    "base": (
        "rxllm.types",
        "rxllm.errors",
        "rxllm._loop",
        "rxllm._events",
        "rxllm._wire",
        "rxllm._secrets",
        "rxllm._sse",
        "rxllm._ndjson",
        "rxllm._replay",
        "rxllm._assemble",
        "rxllm._partial_json",  # the incremental JSON parser of ops.partial_object
        "rxllm._schema",  # a Struct type's JSON Schema as a response_format
        "rxllm._sse_frames",
        "rxllm.pricing",
        "rxllm.tokens",
        "rxllm._telemetry",
    ),
    # Where code runs and how a consumer holds the producer back (schedulers, holds).
    "places": ("rxllm._places", "rxllm._flow"),
    # What a provider module implements.
    "contract": ("rxllm._provider",),
    # HTTP: the aiohttp session, sending, the loopback server.
    "transport": ("rxllm.transport",),
    # Pure translation between rxllm's types and each provider's wire; the registry.
    "providers": ("rxllm.providers",),
    # One request as a hot Observable: sends through transport, parses with a Provider.
    "stream": ("rxllm.stream",),
    # Rx operators over chunks.
    "ops": ("rxllm.ops",),
    # The calls users make: completion(), the streaming helpers, argument checks.
    "entry": ("rxllm._api", "rxllm.streaming", "rxllm._checks"),
    # The response cache: keys, stores (memory, Redis), the stream that replays a hit. Above
    # entry (it calls like completion() does), below router (a router may have one).
    "cache": ("rxllm.cache",),
    # Deployments, fallbacks, retries over the entry layer.
    "router": ("rxllm.router",),
    # The server: OpenAI and Anthropic wire formats over the router (`rxllm serve`).
    "gateway": ("rxllm.gateway",),
    # What the user sees first: the package namespace, the command line, the demo.
    "face": ("rxllm", "rxllm.__main__", "rxllm.cli", "rxllm._cli_", "rxllm._demo"),
}

#: Layer -> the layers it may import besides itself, with why.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "base": frozenset(),  # the bottom: imports nothing of rxllm's above it
    "places": frozenset({"base"}),  # schedulers know the loop, nothing about requests
    "contract": frozenset({"base"}),  # the protocol names base types only
    "transport": frozenset({"base"}),  # sends HttpRequests; knows no provider
    "providers": frozenset({"base", "contract"}),  # translate; never send, stream or route
    "stream": frozenset({"base", "places", "contract", "transport"}),  # no provider module
    "ops": frozenset({"base", "places"}),  # operate on chunks, whatever made them
    "entry": frozenset({"base", "places", "contract", "transport", "providers", "stream", "ops"}),
    "cache": frozenset(
        {"base", "places", "contract", "transport", "providers", "stream", "ops", "entry"}
    ),
    "router": frozenset(
        {"base", "places", "contract", "transport", "providers", "stream", "ops", "entry", "cache"}
    ),
    "gateway": frozenset(
        {
            "base",
            "places",
            "contract",
            "transport",
            "providers",
            "stream",
            "ops",
            "entry",
            "cache",
            "router",
        }
    ),
    "face": frozenset(
        {
            "base",
            "places",
            "contract",
            "transport",
            "providers",
            "stream",
            "ops",
            "entry",
            "cache",
            "router",
            "gateway",
        }
    ),
}

#: (importer, imported) arrows allowed against the table, each with why. Keep it (near) empty.
EXCEPTIONS: dict[tuple[str, str], str] = {}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ("rxllm", *path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def layer_of(module: str) -> str | None:
    best: tuple[int, str] | None = None
    for layer, names in LAYERS.items():
        for name in names:
            covers = module == name or module.startswith(name + ".")
            if name.endswith("_"):  # a prefix of module names (rxllm._cli_*)
                covers = module.startswith(name)
            if covers and (best is None or len(name) > best[0]):
                best = (len(name), layer)
    return None if best is None else best[1]


def imports_of(module: str, source: str | None = None) -> set[str]:
    """The rxllm modules ``module`` imports (``from pkg import sub`` names ``pkg.sub``)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "rxllm")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if target.split(".")[0] != "rxllm":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    found.discard(module)
    return found


def test_every_module_has_a_layer() -> None:
    assert [m for m in MODULES if layer_of(m) is None] == []


def test_the_table_names_only_layers() -> None:
    assert set(MAY_IMPORT) == set(LAYERS)
    for allowed in MAY_IMPORT.values():
        assert allowed <= set(LAYERS)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down(module: str) -> None:
    layer = layer_of(module)
    assert layer is not None
    wrong = []
    for target in sorted(imports_of(module)):
        target_layer = layer_of(target)
        if target_layer == layer or target_layer in MAY_IMPORT[layer]:
            continue
        if (module, target) not in EXCEPTIONS:
            wrong.append(f"{module} ({layer}) -> {target} ({target_layer})")
    assert wrong == []


def test_the_checker_sees_every_kind_of_import() -> None:
    """Relative, absolute, ``from pkg import module``, and imports inside functions or under
    ``TYPE_CHECKING`` all count."""
    source = """
from typing import TYPE_CHECKING
from . import _common
from .. import errors
from .._events import SSEEvent
import rxllm.transport.http
if TYPE_CHECKING:
    from ..stream import ChatStream
def later():
    from rxllm.router import Router
    import rxllm
"""
    assert imports_of("rxllm.providers.openai", source) == {
        "rxllm.providers._common",
        "rxllm.errors",
        "rxllm._events",
        "rxllm.transport.http",
        "rxllm.stream",
        "rxllm.router",
        "rxllm",
    }
    assert "rxllm.transport" in imports_of("rxllm.stream")  # from . import transport
    assert layer_of("rxllm._cli_render") == "face"
    assert layer_of("rxllm.transport.loopback") == "transport"
    assert layer_of("rxllm.providers.openai") == "providers"
