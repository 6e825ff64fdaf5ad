"""Third-party providers: a package registers one through the ``rxllm.providers`` entry-point
group. Each test writes a throwaway plugin (a package plus its ``*.dist-info`` with
``entry_points.txt``, which ``importlib.metadata`` finds on ``sys.path``) into a temporary
directory and runs rxllm in a subprocess that has it on its path: nothing is installed, and
nothing leaves the machine (the plugin's provider points at the loopback test server)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .server import ReplayServer, Reply, sse

ENTRY_POINTS = """\
[rxllm.providers]
myplugin = myplugin_pkg:ROW
second = myplugin_pkg.second
broken = myplugin_pkg.missing:ROW
notarow = myplugin_pkg:NOT_A_ROW
openai = myplugin_pkg:SHADOW
"""

CHUNK = (
    '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"some-model",'
    '"choices":[{"index":0,"delta":{"role":"assistant","content":"%s"},"finish_reason":null}]}'
)
LAST = (
    '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"some-model",'
    '"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}'
)
RESPONSE = (
    b'{"id":"c2","object":"chat.completion","created":1,"model":"some-model","choices":'
    b'[{"index":0,"message":{"role":"assistant","content":"Hello, plainly"},'
    b'"finish_reason":"stop"}]}'
)


def write_plugin(site: Path, api_base: str) -> None:
    """A package ``myplugin_pkg`` registering ``myplugin`` (an OpenAI-compatible server at
    ``api_base``) and ``second`` (a module exposing ``PROVIDER_INFO``), plus three entry
    points that must only warn: one that fails to import, one that is no row, and one that
    claims the built-in name ``openai``."""
    package = site / "myplugin_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(
        textwrap.dedent(
            f"""\
            from rxllm.providers import ProviderInfo

            ROW = ProviderInfo(
                name="myplugin",
                module="myplugin_pkg.provider",
                default_api_base={api_base!r},
                env_keys=("MYPLUGIN_API_KEY",),
                key_required=False,
                tools=True,
            )
            SHADOW = ProviderInfo(name="openai", module="myplugin_pkg.provider",
                                  default_api_base={api_base!r})
            NOT_A_ROW = "myplugin"
            """
        )
    )
    (package / "second.py").write_text(
        textwrap.dedent(
            f"""\
            from rxllm.providers import ProviderInfo

            PROVIDER_INFO = ProviderInfo(name="second", module="myplugin_pkg.provider",
                                         default_api_base={api_base!r}, key_required=False)
            """
        )
    )
    (package / "provider.py").write_text(
        "from rxllm.providers.openai_compatible import GenericProvider\n\n"
        "PROVIDER = GenericProvider('myplugin', option_names=frozenset(), base_required=True)\n"
    )
    dist_info = site / "myplugin_pkg-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin-pkg\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(ENTRY_POINTS)


def run(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *sys.path])
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=60, env=env
    )


@pytest.fixture
def site(tmp_path: Path, server: ReplayServer) -> Path:
    write_plugin(tmp_path / "site", server.base + "/v1")
    return tmp_path / "site"


def test_a_plugin_provider_streams_and_answers(site: Path, server: ReplayServer) -> None:
    server.queue(
        Reply(body=sse(CHUNK % "Hello from ", CHUNK % "a plugin", LAST)),
        Reply(body=RESPONSE, content_type="application/json"),
    )
    probe = textwrap.dedent(
        """\
        import warnings
        import rxllm
        from rxllm import providers
        from rxllm.streaming import collect_sync

        assert providers._REGISTRY._pending, "import rxllm must not read package metadata"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hi = [{"role": "user", "content": "Hi"}]
            stream = rxllm.completion("myplugin/some-model", messages=hi, stream=True)
            print(collect_sync(stream, timeout=10).text)
            print(rxllm.completion("second", "some-model", messages=hi).text)
        print(providers.plugin_providers())
        print(rxllm.provider_info("openai").module)
        for warning in caught:
            print("WARNING", warning.category.__name__, warning.message)
        """
    )
    result = run(site, "-c", probe)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        "Hello from a plugin",
        "Hello, plainly",
        "{'myplugin': 'myplugin-pkg', 'second': 'myplugin-pkg'}",
        "rxllm.providers.openai",  # the built-in row wins
    ]
    warnings = "\n".join(lines[4:])
    assert "RuntimeWarning rxllm provider plugin 'broken'" in warnings
    assert "from myplugin-pkg) could not be loaded: ModuleNotFoundError" in warnings
    assert "'notarow' (myplugin_pkg:NOT_A_ROW, from myplugin-pkg) is a str" in warnings
    assert "names provider 'openai', which is built in: ignored" in warnings
    assert len(lines[4:]) == 3
    first, second = server.requests
    assert first.path == second.path == "/v1/chat/completions"
    assert first.json()["model"] == "some-model" and first.json()["stream"] is True


def test_the_cli_lists_plugin_providers_marked_as_such(site: Path) -> None:
    table = run(site, "-m", "rxllm", "providers")
    assert table.returncode == 0, table.stderr
    rows = {line.split()[0]: line for line in table.stdout.splitlines()[1:]}
    assert rows["myplugin"].startswith("myplugin (plugin: myplugin-pkg)")
    assert "MYPLUGIN_API_KEY" in rows["myplugin"]
    assert "plugin" not in rows["openai"]
    assert "plugin 'broken'" in table.stderr  # a warning, not a crash
    records = json.loads(run(site, "-m", "rxllm", "providers", "--json").stdout)
    by_name = {r["name"]: r for r in records}
    assert by_name["myplugin"]["plugin"] == "myplugin-pkg"
    assert by_name["second"]["plugin"] == "myplugin-pkg"
    assert by_name["openai"]["plugin"] is None
