"""The mock provider: scripted text or recorded transcripts, delays and injected errors, served
over real loopback HTTP by rxllm's loopback server - so every stream contract
(docs/contracts.md, 2-6) still holds."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

import rxllm
from rxllm import errors, ops
from rxllm._wire import LOOPBACK_SCHEME, HttpRequest, ScriptedReply
from rxllm.streaming import collect, collect_sync
from rxllm.transport import loopback, send

from .conftest import FIXTURES, fixture_bytes
from .test_stream import Recorder

MESSAGES = [{"role": "user", "content": "Tell me about foxes"}]
FOX = "The quick brown fox."
WEATHER = (
    "I'm unable to provide real-time weather updates. To get the current weather in San "
    "Francisco, I recommend checking a reliable weather website or a weather app."
)


def mock(**options: object) -> rxllm.ChatStream:
    return rxllm.completion("mock", "any-model", messages=MESSAGES, stream=True, **options)  # type: ignore[arg-type]


def texts(chunks: list[rxllm.ChatChunk]) -> list[str | None]:
    return [c.choices[0].delta.content for c in chunks if c.choices]


@pytest.fixture
def served() -> Iterator[loopback.LoopbackServer]:
    yield loopback.server()


# --- answers -------------------------------------------------------------------------------------


def test_mock_response_streams_word_sized_deltas() -> None:
    recorder = Recorder()
    mock(mock_response=FOX).subscribe(recorder)
    chunks = recorder.wait().items
    assert texts(chunks) == ["The", " quick", " brown", " fox.", None]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert {c.provider for c in chunks} == {"mock"} and {c.model for c in chunks} == {"any-model"}
    assert recorder.completed == 1 and not recorder.errors


def test_without_a_response_the_mock_echoes_the_last_user_message() -> None:
    assert collect_sync(mock(), timeout=10).text == "Tell me about foxes"
    assert rxllm.completion(model="mock/m", messages=MESSAGES).text == "Tell me about foxes"


def test_non_streaming_mock_response() -> None:
    response = rxllm.completion("mock", "any-model", messages=MESSAGES, mock_response=FOX)
    assert response.text == FOX
    assert response.finish_reason == "stop"
    assert response.provider == "mock" and response.model == "any-model"
    assert response.usage is not None and response.usage.completion_tokens == 4


@pytest.mark.parametrize("as_path", [True, False])
def test_recorded_transcript_is_replayed(as_path: bool) -> None:
    name = "openai/stream_text_usage.sse"
    transcript = FIXTURES / name if as_path else fixture_bytes(name)
    response = collect_sync(mock(mock_transcript=transcript), timeout=10)
    assert response.text == WEATHER
    assert response.model == "gpt-4o-2024-08-06" and response.provider == "mock"
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (14, 30)


def test_recorded_tool_call_transcript() -> None:
    stream = mock(mock_transcript=FIXTURES / "openai/stream_tool_call_usage.sse")
    (call,) = collect_sync(stream, timeout=10).tool_calls
    assert call.function.name == "get_weather"
    assert call.parsed_arguments() == {"city": "New York City"}


def test_non_streaming_transcripts_sse_or_json() -> None:
    from_sse = rxllm.completion(
        "mock", "m", messages=MESSAGES, mock_transcript=FIXTURES / "openai/stream_text_usage.sse"
    )
    assert from_sse.text == WEATHER and from_sse.finish_reason == "stop"
    from_json = rxllm.completion(
        "mock", "m", messages=MESSAGES, mock_transcript=FIXTURES / "openai/response_text.json"
    )
    assert from_json.text == "You are a dog, which is a type of mammal."
    assert from_json.usage is not None and from_json.usage.total_tokens == 34


def test_mock_delay_sets_time_to_first_token_and_gaps() -> None:
    metrics = mock(mock_response="a b c", mock_delay=(0.3, 0.0)).pipe(ops.metrics()).run()
    assert metrics.time_to_first_token is not None and metrics.time_to_first_token >= 0.3
    paced = mock(mock_response="a b c d", mock_delay=0.05).pipe(ops.metrics()).run()
    assert paced.duration >= 0.05 * 7  # four words, finish, usage, [DONE]: each after 50 ms


# --- injected errors -----------------------------------------------------------------------------

ERROR_CASES = [
    # mock_error, mock_error_after, expected class, status, partial text
    (429, 0, errors.RateLimitError, 429, ""),
    (429, 2, errors.RateLimitError, 429, "The quick"),
    (500, 1, errors.InternalServerError, 500, "The"),
    (errors.RateLimitError, 0, errors.RateLimitError, 429, ""),
    (errors.ContextWindowExceededError, 0, errors.ContextWindowExceededError, 400, ""),
    (errors.AuthenticationError, 3, errors.AuthenticationError, 401, "The quick brown"),
    (errors.APITimeoutError, 1, errors.APITimeoutError, None, "The"),
    (errors.StreamTruncatedError, 2, errors.StreamTruncatedError, None, "The quick"),
    (errors.StreamTruncatedError, 0, errors.StreamTruncatedError, None, ""),
    (errors.MalformedResponseError, 1, errors.MalformedResponseError, None, "The"),
    (errors.APIConnectionError, 0, errors.APIConnectionError, None, ""),
    (errors.APIConnectionError, 2, errors.APIConnectionError, None, "The quick"),
]


@pytest.mark.parametrize(("kind", "after", "cls", "status", "partial"), ERROR_CASES)
def test_injected_stream_errors(
    kind: object, after: int, cls: type[errors.LLMError], status: int | None, partial: str
) -> None:
    recorder = Recorder()
    mock(mock_response=FOX, mock_error=kind, mock_error_after=after).subscribe(recorder)
    recorder.wait()
    (error,) = recorder.errors
    assert type(error) is cls
    assert isinstance(error, errors.LLMError)
    assert error.status_code == status
    assert error.provider == "mock" and error.model == "any-model"
    assert error.partial_text == partial
    assert len(texts(recorder.items)) == after
    assert recorder.completed == 0


@pytest.mark.parametrize(
    ("kind", "cls", "status"),
    [
        (404, errors.NotFoundError, 404),
        (errors.QuotaExceededError, errors.QuotaExceededError, 429),
        (errors.ServiceUnavailableError, errors.ServiceUnavailableError, 503),
        (errors.APITimeoutError, errors.APITimeoutError, None),
        (errors.StreamTruncatedError, errors.StreamTruncatedError, None),
        # an unparseable body names the status that brought it
        (errors.MalformedResponseError, errors.MalformedResponseError, 200),
        (errors.APIConnectionError, errors.APIConnectionError, None),
    ],
)
def test_injected_errors_without_streaming(
    kind: object, cls: type[errors.LLMError], status: int | None
) -> None:
    with pytest.raises(cls) as caught:
        rxllm.completion("mock", "m", messages=MESSAGES, mock_response=FOX, mock_error=kind)
    assert type(caught.value) is cls
    assert caught.value.status_code == status and caught.value.provider == "mock"


def test_bad_options_raise_at_call_time_without_a_request(
    served: loopback.LoopbackServer, tmp_path: object
) -> None:
    before = served.requests
    cases: list[tuple[dict[str, object], str]] = [
        ({"mock_error": "boom"}, "mock_error must be an HTTP status"),
        ({"mock_error": 200}, "mock_error must be an HTTP status"),
        ({"mock_error": errors.FanOutError}, "mock_error must be an HTTP status"),
        ({"mock_error": 429, "mock_error_after": -1}, "mock_error_after must be"),
        ({"mock_delay": -1}, "mock_delay must be"),
        ({"mock_delay": (1, 2, 3)}, "mock_delay must be"),
        ({"mock_response": "a", "mock_transcript": b"data: [DONE]\n\n"}, "not both"),
        ({"mock_transcript": "/no/such/file.sse"}, "cannot read mock_transcript"),
        ({"mock_transcript": fixture_bytes("openai/response_text.json")}, "a stream needs"),
        ({"temprature": 1}, "mock does not take parameter"),
    ]
    for options, message in cases:
        with pytest.raises(errors.BadRequestError, match=message) as caught:
            mock(**options)
        assert caught.value.provider == "mock"
    assert served.requests == before


def test_no_api_key_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in rxllm.list_providers():
        for variable in rxllm.provider_info(name).env_keys:
            monkeypatch.delenv(variable, raising=False)
    assert collect_sync(mock(mock_response="ok"), timeout=10).text == "ok"


# --- the stream contracts hold (docs/contracts.md, 2-6): the bytes come over real HTTP -----------


def test_lazy_shared_and_replayed(served: loopback.LoopbackServer) -> None:
    before = served.requests
    stream = mock(mock_response=FOX, mock_delay=0.01)
    assert stream.state == "pending" and served.requests == before
    a, b = Recorder(), Recorder()
    stream.subscribe(a)
    stream.subscribe(b)
    a.wait(), b.wait()
    late = Recorder()
    stream.subscribe(late)
    late.wait()
    assert served.requests == before + 1
    assert a.items == b.items == late.items and texts(a.items)[:4] == [
        "The",
        " quick",
        " brown",
        " fox.",
    ]
    assert a.completed == b.completed == late.completed == 1


def test_dispose_closes_the_loopback_connection(served: loopback.LoopbackServer) -> None:
    before = served.disconnected
    stream = mock(mock_response=" ".join(f"w{i}" for i in range(200)), mock_delay=0.02)
    recorder = Recorder()
    subscription = stream.subscribe(recorder)
    assert recorder.first.wait(10)
    subscription.dispose()
    assert served.wait(lambda s: s.disconnected > before, 10), "the server never saw the client go"
    assert stream.state == "cancelled"


async def test_inside_asyncio() -> None:
    stream = await rxllm.acompletion(
        "mock", "m", messages=MESSAGES, stream=True, mock_response=FOX, mock_delay=0.01
    )
    words = [text async for text in rxllm.streaming.iterate(stream.pipe(ops.extract_content()))]
    assert words == ["The", " quick", " brown", " fox."]
    assert stream.loop is asyncio.get_running_loop()
    assert (await collect(stream)).text == FOX
    response = await rxllm.acompletion("mock", "m", messages=MESSAGES, mock_response=FOX)
    assert response.text == FOX


# --- the loopback server itself: a generic piece of the transport floor --------------------------


async def test_loopback_server_plays_back_a_scripted_reply() -> None:
    script = ScriptedReply(
        status=418, headers={"x-thing": "yes"}, pieces=[b"one ", b"two"], delay=0.01
    )
    request = HttpRequest(
        "POST", LOOPBACK_SCHEME + "anything/some/path", {}, msgspec.msgpack.encode(script)
    )
    response = await send(request, timeout=10, stream=False)
    try:
        assert response.status == 418 and response.headers["x-thing"] == "yes"
        assert response.url.host == "127.0.0.1" and response.url.path == "/some/path"
        assert await response.read() == b"one two"
    finally:
        response.release()
    not_a_script = HttpRequest("POST", LOOPBACK_SCHEME + "x/", {}, b"hello")
    response = await send(not_a_script, timeout=10, stream=False)
    try:
        assert response.status == 400
    finally:
        response.release()


# --- the README's section on the mock provider runs as written -----------------------------------


def readme_mock_blocks() -> list[str]:
    text = (Path(__file__).parent.parent / "README.md").read_text()
    section = text[text.index("\n## Testing your code with the mock provider") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_mock_examples_run() -> None:
    blocks = readme_mock_blocks()
    assert len(blocks) == 2
    tests_run = 0
    for code in blocks:
        namespace: dict[str, Any] = {"__name__": "__readme__"}
        exec(compile(code, "README.md", "exec"), namespace)
        for name, function in namespace.items():
            if name.startswith("test_") and callable(function):
                function()
                tests_run += 1
    assert tests_run == 2
