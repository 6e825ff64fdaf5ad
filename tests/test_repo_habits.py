"""The repository's habits: comments cite only what is in the repository, the documents a
newcomer reads exist and name files that exist, the version is written once, and the slow tests
are marked so that ``make test-fast`` leaves them out."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("rxllm", "tests", "benchmarks")
DOCUMENTS = ("ARCHITECTURE.md", "CONTRIBUTING.md", "docs/contracts.md", "CHANGELOG.md")

#: A citation of a document that is not in the repository: the design notes ("DESIGN contract
#: 5", "DESIGN's ..."), a bare "contract N" (cite "docs/contracts.md, N"), an issue number, the
#: seed guide. A random seed is not one.
OUTSIDE = re.compile(
    r"(?-i:\bDESIGN\b)"
    r"|\bcontracts? \d"
    r"|\bissues? #?\d"
    r"|(?<!random )\bthe seed\b|\bseed's\b|\bseed guide\b",
    re.IGNORECASE,
)

#: A path in backticks that names a file or folder of the repository (not a template such as
#: ``rxllm/providers/<name>.py``).
BACKTICKED = re.compile(r"`((?:rxllm|tests|benchmarks|docs|notebooks|\.ci)/[\w./-]*)`")
#: A relative Markdown link.
LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)\s]+)\)")


def python_files() -> Iterator[Path]:
    """Every Python file of the sources but this one (whose comments quote the pattern)."""
    here = Path(__file__).resolve()
    for top in SOURCES:
        yield from (path for path in sorted((ROOT / top).rglob("*.py")) if path != here)


def comments_and_docstrings(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of every comment and docstring of a Python file."""
    source = path.read_text(encoding="utf-8")
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                yield body[0].lineno, body[0].value.value


def test_the_citation_pattern_catches_what_it_should() -> None:
    for bad in (
        "(DESIGN contract 8)",
        "DESIGN's honest errors",
        "Contract 5's matrix",
        "# --- contract 2: lazy",
        "the router (issue 5)",
        "the seed's ``estimate-tokens``",
        "The seed guide's example",
    ):
        assert OUTSIDE.search(bad), bad
    for good in (
        "(docs/contracts.md, 8)",
        "docs/contracts.md, 2-6",
        "every stream contract (docs/contracts.md, 2-6) still holds",
        "``RXLLM_SOAK_SEED`` the random seed",
        "designed against raw aiohttp",
    ):
        assert not OUTSIDE.search(good), good


def test_no_comment_cites_a_document_outside_the_repository() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}: {match.group(0)!r}"
        for path in python_files()
        for line, text in comments_and_docstrings(path)
        for match in OUTSIDE.finditer(text)
    ]
    assert not found, "cite docs/contracts.md instead:\n" + "\n".join(found)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_a_newcomers_documents_exist_and_name_files_that_exist(name: str) -> None:
    document = ROOT / name
    assert document.is_file(), f"{name} is missing"
    text = document.read_text(encoding="utf-8")
    named = {match.group(1) for match in BACKTICKED.finditer(text)}
    missing = sorted(path for path in named if not (ROOT / path).exists())
    assert not missing, f"{name} names files that do not exist: {missing}"
    links = {match.group(1).split("#")[0] for match in LINK.finditer(text)}
    broken = sorted(
        link for link in links if link and not (document.parent / link).resolve().exists()
    )
    assert not broken, f"{name} links to files that do not exist: {broken}"


def test_architecture_answers_the_newcomers_questions() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    for question in (
        "Where is a chunk decoded?",
        "Where is it replayed?",
        "Where does a retry happen?",
        "Where are callbacks marshalled to the subscriber's thread?",
    ):
        assert question in text


def test_contracts_are_numbered_one_to_eleven() -> None:
    text = (ROOT / "docs/contracts.md").read_text(encoding="utf-8")
    numbers = [int(n) for n in re.findall(r"^(\d+)\. \*\*", text, flags=re.MULTILINE)]
    assert numbers == list(range(1, 12))


def test_the_version_is_written_once() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    project = pyproject.split("[project]", 1)[1].split("\n[", 1)[0]
    assert not re.search(r"^version\s*=", project, flags=re.MULTILINE), "pyproject: dynamic"
    assert re.search(r'^dynamic\s*=\s*\[[^\]]*"version"', project, flags=re.MULTILINE)
    assert re.search(
        r'^\[tool\.setuptools\.dynamic\]\s*\nversion\s*=\s*\{\s*attr\s*=\s*"rxllm\.__version__"',
        pyproject,
        flags=re.MULTILINE,
    )
    written = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in sorted((ROOT / "rxllm").rglob("*.py"))
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.match(r"\s*__version__\s*=", line)
    ]
    assert written == ["rxllm/__init__.py:" + written[0].rsplit(":", 1)[1]], written
    import rxllm

    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", rxllm.__version__)


SLOW = (
    "tests/faults/test_soak.py",
    "tests/test_notebooks.py",
    "tests/test_readme_notebook.py",
    "tests/test_matrix.py",
    "tests/test_bench_smoke.py",
)


def test_the_slow_tests_are_marked_and_make_test_fast_leaves_them_out() -> None:
    for name in SLOW:
        source = (ROOT / name).read_text(encoding="utf-8")
        assert re.search(r"^pytestmark = pytest\.mark\.slow$", source, flags=re.MULTILINE), name
    assert re.search(r'^\s*"slow: ', (ROOT / "pyproject.toml").read_text(), flags=re.MULTILINE)
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r'^test-fast:.*\n\t.*pytest -m "not slow"', makefile, flags=re.MULTILINE)
    assert "ruff format --check rxllm tests benchmarks" in makefile
