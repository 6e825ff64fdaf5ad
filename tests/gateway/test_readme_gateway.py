"""The README's Gateway section: its config loads as it stands, with no warning."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import yaml

from rxllm.gateway._config import Catalog, parse_config

README = Path(__file__).resolve().parents[2] / "README.md"


def section() -> str:
    text = README.read_text()
    start = text.index("\n## Gateway")
    return text[start : text.index("\n## ", start + 1)]


def test_the_readme_config_loads_unchanged() -> None:
    config_block = re.findall(r"```yaml\n(.*?)```", section(), re.S)[0]
    environ = {
        "OPENAI_API_KEY": "sk-a",
        "AZURE_API_KEY": "az",
        "ANTHROPIC_API_KEY": "sk-ant",
        "RXLLM_MASTER_KEY": "sk-master",
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        config = parse_config(yaml.safe_load(config_block), source="README", environ=environ)
    catalog = Catalog(config)
    assert catalog.names() == ["gpt-4o", "claude"]
    assert config.general.master_key == "sk-master"
    described = catalog.router.get_config("gpt-4o")
    assert described is not None
    assert [d["provider"] for d in described["deployments"]] == ["openai", "azure"]
    assert described["fallbacks"] == ["claude"]
    wildcard = catalog.resolve("local/llama3")
    assert wildcard is not None
    assert [d.model for d in catalog.deployments(wildcard)] == ["llama3"]


def test_the_readme_python_compiles() -> None:
    for block in re.findall(r"```python\n(.*?)```", section(), re.S):
        compile(block, "README.md", "exec")
