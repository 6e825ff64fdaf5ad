"""The notebooks in ``notebooks/`` run, offline, in a real Jupyter kernel (nbclient), and show
what their text says they show. They are committed without outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"

WEATHER = (
    "I'm unable to provide real-time weather updates. To get the current weather in San "
    "Francisco, I recommend checking a reliable weather website or a weather app."
)

# What a reader sees in each notebook's printed output (lines or parts of lines).
EXPECTED = {
    "01_quickstart.ipynb": [
        "Streams are Observables: subscribe, and the answer arrives word by word.",
        "ChatStream(mock/gpt-4o-mini, state=pending, chunks=0)",
        "ChatStream(mock/gpt-4o-mini, state=completed, chunks=13)",
        "get_weather {'city': 'New York City'}",
        "tool_calls",
        "RateLimitError - mock/gpt-4o-mini HTTP 429 [mock_error]: mock error: HTTP 429",
        "partial answer: 'Streams are Observables:'",
    ],
    "02_pipelines.ipynb": [
        "'Once upon a'",
        "31 redraws",
        "redraws instead of 31",
        "APITimeoutError: no chunk for 0.1 s",
        "partial answer: 'Once'",
        "stream state: cancelled",
        "reactivex timeout: Timeout",
        "Once upon a time [unavailable: ServiceUnavailableError]",
        "A shorter story from the backup model.",
        "... (stopped: APITimeoutError)",
    ],
    "03_fan_out.ipynb": [
        f"  fast: {WEATHER}",
        "steady: It is usually mild and foggy in San Francisco; check a forecast for today.",
        "  slow: I cannot see live weather, but San Francisco summers are cool and foggy.",
        "tokens",
        "fastest first: fast",
    ],
}


def test_every_notebook_is_checked() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_is_committed_without_outputs(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_offline(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RXLLM_TOKENIZER", "heuristic")
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    for variable in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(variable, raising=False)
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=60,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    client.execute()  # raises CellExecutionError, with the traceback, if a cell fails
    printed = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "stream" and output.name == "stdout"
    )
    for expected in EXPECTED[name]:
        assert expected in printed, f"{expected!r} not in the output:\n{printed}"
    if name == "03_fan_out.ipynb":
        images = [
            output
            for cell in notebook.cells
            for output in cell.get("outputs", [])
            if "image/png" in output.get("data", {})
        ]
        assert len(images) == 1  # the chart: token arrival and time to first token
