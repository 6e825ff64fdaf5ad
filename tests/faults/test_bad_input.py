"""Bad input from the caller is a clear ``BadRequestError`` / ``ConfigurationError`` raised by
the call itself, before any I/O: the server must see no request at all."""

from __future__ import annotations

from typing import Any

import pytest

import rxllm
from rxllm import errors

from ..conftest import API_KEY
from .server import FaultServer

MESSAGES = [{"role": "user", "content": "hi"}]

BAD_CALLS: list[tuple[str, dict[str, Any], type[errors.LLMError], str]] = [
    (
        "unknown provider",
        {"provider": "nope"},
        errors.ConfigurationError,
        "unknown provider 'nope'",
    ),
    ("provider not a string", {"provider": 42}, errors.ConfigurationError, "provider must be"),
    ("empty model", {"model": ""}, errors.ConfigurationError, "model must be a non-empty string"),
    ("model not a string", {"model": 123}, errors.ConfigurationError, "model must be"),
    ("no messages", {"messages": []}, errors.BadRequestError, "messages is empty"),
    ("messages is None", {"messages": None}, errors.BadRequestError, "non-empty list"),
    ("messages is a string", {"messages": "hi"}, errors.BadRequestError, "non-empty list"),
    ("messages is one dict", {"messages": MESSAGES[0]}, errors.BadRequestError, "non-empty list"),
    ("message is a string", {"messages": ["hi"]}, errors.BadRequestError, r"messages\[0\]"),
    ("message without role", {"messages": [{"content": "hi"}]}, errors.BadRequestError, "role"),
    (
        "unknown role",
        {"messages": [{"role": "wizard", "content": "hi"}]},
        errors.BadRequestError,
        "role",
    ),
    (
        "content is a number",
        {"messages": [{"role": "user", "content": 42}]},
        errors.BadRequestError,
        r"messages\[0\]",
    ),
    (
        "content is a dict",
        {"messages": [{"role": "user", "content": {"text": "hi"}}]},
        errors.BadRequestError,
        r"messages\[0\]",
    ),
    ("unknown parameter", {"temprature": 0.2}, errors.UnsupportedParamsError, "drop_params=True"),
    (
        "stream not a bool",
        {"stream": "yes"},
        errors.BadRequestError,
        "stream must be True or False",
    ),
    (
        "temperature a string",
        {"temperature": "hot"},
        errors.BadRequestError,
        "temperature must be a number",
    ),
    (
        "temperature NaN",
        {"temperature": float("nan")},
        errors.BadRequestError,
        "temperature must be a number",
    ),
    (
        "max_tokens zero",
        {"max_tokens": 0},
        errors.BadRequestError,
        "max_tokens must be a positive integer",
    ),
    (
        "max_tokens a float",
        {"max_tokens": 10.5},
        errors.BadRequestError,
        "max_tokens must be a positive integer",
    ),
    ("stop a number", {"stop": 7}, errors.BadRequestError, "stop must be a string or a list"),
    ("tools not a list", {"tools": "get_weather"}, errors.BadRequestError, "tools must be a list"),
    (
        "a value JSON cannot carry",
        {"metadata": {"when": object()}},
        errors.BadRequestError,
        "cannot be encoded as JSON",
    ),
    ("timeout zero", {"timeout": 0}, errors.ConfigurationError, "timeout must be positive seconds"),
    (
        "timeout negative",
        {"timeout": -1},
        errors.ConfigurationError,
        "timeout must be positive seconds",
    ),
    (
        "timeout a string",
        {"timeout": "10"},
        errors.ConfigurationError,
        "timeout must be positive seconds",
    ),
    (
        "timeout NaN",
        {"timeout": float("nan")},
        errors.ConfigurationError,
        "timeout must be positive seconds",
    ),
    (
        "timeout infinite",
        {"timeout": float("inf")},
        errors.ConfigurationError,
        "timeout must be positive seconds",
    ),
    (
        "timeout a bool",
        {"timeout": True},
        errors.ConfigurationError,
        "timeout must be positive seconds",
    ),
    (
        "api_base without scheme",
        {"api_base": "localhost:8080/v1"},
        errors.ConfigurationError,
        "http:// or https://",
    ),
    (
        "api_base ftp",
        {"api_base": "ftp://127.0.0.1/v1"},
        errors.ConfigurationError,
        "http:// or https://",
    ),
    (
        "api_base not a string",
        {"api_base": 8080},
        errors.ConfigurationError,
        "api_base must be a URL",
    ),
    (
        "api_key not a string",
        {"api_key": 12345},
        errors.ConfigurationError,
        "must be a string, not int",
    ),
    (
        "api_key with a line break",
        {"api_key": "sk-a\r\nX-Injected: 1"},
        errors.ConfigurationError,
        "control character",
    ),
    (
        "extra_headers a list",
        {"extra_headers": [("a", "b")]},
        errors.BadRequestError,
        "extra_headers must be a dict",
    ),
    (
        "extra_headers value not a string",
        {"extra_headers": {"X-Id": 7}},
        errors.BadRequestError,
        "must be a string",
    ),
    (
        "extra_headers with a line break",
        {"extra_headers": {"X-Id": "a\nb"}},
        errors.BadRequestError,
        "control character",
    ),
    ("extra_body a list", {"extra_body": [1]}, errors.BadRequestError, "extra_body must be a dict"),
    (
        "drop_params not a bool",
        {"drop_params": "yes"},
        errors.BadRequestError,
        "drop_params must be True or False",
    ),
    ("verify a number", {"verify": 1}, errors.ConfigurationError, "verify must be True, False"),
]


def _call(base: str, overrides: dict[str, Any]) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "provider": "openai",
        "model": "gpt-4o",
        "messages": MESSAGES,
        "stream": True,
        "api_key": API_KEY,
        "api_base": base,
    }
    arguments.update(overrides)
    return arguments


@pytest.mark.parametrize(
    ("overrides", "error", "match", "entry"),
    [
        pytest.param(o, e, m, entry, id=f"{entry}-{name}")
        for name, o, e, m in BAD_CALLS
        for entry in ("completion", "acompletion", "blocking")
        if entry != "blocking" or "stream" not in o  # a plain call sets stream=False itself
    ],
)
async def test_bad_input_fails_before_any_io(
    faults: FaultServer,
    overrides: dict[str, Any],
    error: type[errors.LLMError],
    match: str,
    entry: str,
) -> None:
    arguments = _call(faults.base + "/v1", dict(overrides))
    if entry == "blocking":
        arguments["stream"] = False
    with pytest.raises(error, match=match) as caught:
        if entry == "acompletion":
            await rxllm.acompletion(**arguments)
        else:
            rxllm.completion(**arguments)
    assert faults.requests == [], "the bad call reached the server"
    assert API_KEY not in str(caught.value) and "sk-a" not in str(caught.value)


def test_the_api_key_is_trimmed_not_refused(faults: FaultServer) -> None:
    """A key read from a file keeps its newline: trimmed, as every SDK does."""
    from rxllm._api import prepare

    _, _, request = prepare(
        "openai", "gpt-4o", messages=MESSAGES, stream=True, api_key=f"  {API_KEY}\n"
    )
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"


def test_bad_embedding_input_fails_before_any_io(faults: FaultServer) -> None:
    base = faults.base + "/v1"
    for bad in ([], [1, 2], None, [["nested"]]):
        with pytest.raises(errors.BadRequestError, match="input must be a string"):
            rxllm.embedding(
                "openai", "text-embedding-3-small", input=bad, api_key=API_KEY, api_base=base
            )  # type: ignore[arg-type]
    with pytest.raises(errors.ConfigurationError, match="timeout must be positive"):
        rxllm.embedding(
            "openai",
            "text-embedding-3-small",
            input="hi",
            api_key=API_KEY,
            api_base=base,
            timeout="5",
        )  # type: ignore[arg-type]
    assert faults.requests == []
