"""The README's "Structured output as it streams" block, run offline (the mock provider)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"


def test_the_structured_output_example_prints_the_object_growing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = README.read_text()
    start = text.index("### Structured output as it streams")
    code = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert code is not None
    exec(compile(code.group(1), "README.md", "exec"), {"__name__": "__readme__"})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "{}"
    assert lines[1] == "{'title': 'Pancakes'}"
    assert "{'title': 'Pancakes', 'minutes': 15}" in lines
    assert lines[-2] == (
        "{'title': 'Pancakes', 'minutes': 15, 'steps': ['Whisk flour, egg and milk', 'Fry in']}"
    )
    assert lines[-1] == (
        "Recipe(title='Pancakes', minutes=15, steps=['Whisk flour, egg and milk', 'Fry in butter'])"
    )
