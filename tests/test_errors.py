"""The error taxonomy (docs/contracts.md, 7) and its helpers."""

from __future__ import annotations

import pickle

import pytest

from rxllm import errors
from rxllm.errors import error_for_status, error_summary, is_llm_error


@pytest.mark.parametrize(
    ("status", "cls", "category", "recoverable"),
    [
        (400, errors.BadRequestError, "client", False),
        (401, errors.AuthenticationError, "client", False),
        (403, errors.PermissionDeniedError, "client", False),
        (404, errors.NotFoundError, "client", False),
        (422, errors.UnprocessableEntityError, "client", False),
        (429, errors.RateLimitError, "provider", True),
        (500, errors.InternalServerError, "provider", True),
        (502, errors.InternalServerError, "provider", True),
        (503, errors.ServiceUnavailableError, "provider", True),
        (529, errors.ServiceUnavailableError, "provider", True),
    ],
)
def test_status_classes(
    status: int, cls: type[errors.LLMError], category: str, recoverable: bool
) -> None:
    assert error_for_status(status) is cls
    error = cls("m", status_code=status)
    assert (error.category, error.recoverable) == (category, recoverable)
    assert isinstance(error, errors.APIStatusError) and is_llm_error(error)


def test_categories_of_other_errors() -> None:
    assert errors.APIConnectionError("x").category == "system"
    assert errors.APITimeoutError("x").recoverable
    assert isinstance(errors.APITimeoutError("x"), errors.APIConnectionError)
    assert errors.StreamTruncatedError("x").category == "response"
    assert errors.MalformedResponseError("x").recoverable
    assert not errors.QuotaExceededError("x").recoverable
    assert isinstance(errors.QuotaExceededError("x"), errors.RateLimitError)
    assert isinstance(errors.ContextWindowExceededError("x"), errors.BadRequestError)
    assert isinstance(errors.ConfigurationError("x"), ValueError)
    assert not is_llm_error(ValueError("plain"))


def test_str_names_provider_model_status_code() -> None:
    error = errors.RateLimitError(
        "slow down",
        provider="openai",
        model="gpt-4o",
        status_code=429,
        code="rate_limit_exceeded",
        retry_after=2.0,
    )
    assert str(error) == "openai/gpt-4o HTTP 429 [rate_limit_exceeded]: slow down"
    assert "RateLimitError" in repr(error)


def test_summary_is_plain_data() -> None:
    error = errors.NotFoundError(
        "gone",
        provider="openai",
        model="m",
        status_code=404,
        code="model_not_found",
        request_id="req_1",
    )
    assert error_summary(error) == {
        "type": "NotFoundError",
        "category": "client",
        "message": "gone",
        "provider": "openai",
        "model": "m",
        "status_code": 404,
        "code": "model_not_found",
        "request_id": "req_1",
        "retry_after": None,
        "recoverable": False,
    }
    assert error_summary(KeyError("k"))["type"] == "KeyError"


def test_context_scrubs_the_key_and_pickles() -> None:
    error = errors.AuthenticationError("bad key sk-abc123")
    error._with_context(provider="openai", model="m", secret="sk-abc123")
    assert "sk-abc123" not in str(error) and error.provider == "openai"
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is errors.AuthenticationError
    assert (copy.message, copy.provider, copy.model) == (error.message, "openai", "m")
