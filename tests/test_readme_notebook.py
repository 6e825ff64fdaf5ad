"""The README's examples run as written in a notebook too: the Quick start blocks and every block of
the streaming guide, executed cell by cell in a real Jupyter kernel (nbclient) whose event loop is
running - the place where blocking helpers used to hang. The kernel reads the same loopback
replay server as tests/test_guide.py, through ``OPENAI_BASE_URL``.

Each cell ends by awaiting the streams its block left in its namespace: output a stream prints
after its cell went idle shows in that cell in Jupyter, but nbclient stops listening then.

Two guide blocks end in ``asyncio.run(...)``, which no running loop allows; in a notebook one
writes ``await ...``, and so does this test.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import API_KEY, fixture_bytes
from .server import Recorded, ReplayServer, Reply
from .test_guide import TEXT, guide_blocks, respond

pytestmark = pytest.mark.slow

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

README = Path(__file__).parent.parent / "README.md"

SETTLE = """
import rxllm as _rxllm
for _value in list(globals().values()):
    if isinstance(_value, _rxllm.ChatStream):
        try:
            await _rxllm.streaming.collect(_value)
        except Exception:
            pass
"""

#: Blocks whose output shows the recorded answer.
SHOW_THE_ANSWER = {
    "Quick start: basic streaming",
    "Streaming utilities",
    "CLI application with streaming",
    "React-style progressive rendering",
    "Building the complete response",
    "Streaming with token counting",
    "Cancelling streams",
    "Streaming from several providers",
    "Error handling",
    "Best practices",
    "Performance tips",
}


def quick_start_blocks() -> list[tuple[str, str]]:
    """The python blocks of the README's "Quick start" section that use the network-free
    set-up of this test (the ``openai`` provider, through the replay server)."""
    text = README.read_text()
    section = text[text.index("\n## Quick start") :]
    section = section[: section.index("\n## ", 1)]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return [("Quick start", code) for code in blocks]


def in_a_notebook(code: str) -> str:
    """``asyncio.run(x)`` becomes ``await x``, as a notebook user writes it."""
    return re.sub(r"asyncio\.run\((.*)\)\s*$", r"await \1", code, flags=re.M)


@pytest.fixture
def kernel_env(server: ReplayServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[ReplayServer]:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base + "/v1")
    monkeypatch.setenv("RXLLM_TOKENIZER", "heuristic")
    server.responder = respond_either
    yield server


def respond_either(request: Recorded) -> Reply:
    """The guide's answers, and the recorded ``chat.completion`` to a request not streamed."""
    if request.json().get("stream"):
        return respond(request)
    return Reply(body=fixture_bytes("openai/response_text.json"), content_type="application/json")


@pytest.mark.timeout(240)
def test_readme_blocks_run_in_a_jupyter_kernel(kernel_env: ReplayServer) -> None:
    blocks = quick_start_blocks() + guide_blocks()
    notebook = nbformat.v4.new_notebook()
    for _, code in blocks:
        notebook.cells.append(nbformat.v4.new_code_cell(in_a_notebook(code) + SETTLE))
    client = nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3")
    client.execute()  # a cell that raises (or hangs past 60 s) fails the test here
    for index, (heading, code) in enumerate(blocks):
        outputs = notebook.cells[index].outputs
        printed = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
        errors = [o for o in outputs if o.output_type == "error"]
        assert not errors, (heading, errors)
        assert "Traceback" not in printed, (heading, printed)
        if heading in SHOW_THE_ANSWER and "print" in code:
            assert TEXT in printed.replace("\n", " ") or TEXT in printed, (heading, printed)
    first = notebook.cells[0].outputs
    assert "".join(o.get("text", "") for o in first) == TEXT + "\n"
