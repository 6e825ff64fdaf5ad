"""docs/contracts.md, 8 under faults: the API key never appears in the ``repr``/``str`` of a public
object, in log output at DEBUG (rxllm's, aiohttp's, asyncio's: every logger), in exception text
or a formatted traceback chain, or in the SSE bridge's output; and no credential header is ever
sent to a host the caller did not configure."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import threading
import traceback
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from reactivex import operators as rx_ops

import rxllm
from rxllm import errors, ops
from rxllm._api import prepare, prepare_embedding
from rxllm.router import Router
from rxllm.streaming import collect_sync, consume, iterate, to_sse

from ..conftest import API_KEY
from ..server import Recorded, Reply
from ..test_stream import stream
from .cases import OPENAI
from .server import FaultServer, closed_port

MESSAGES = [{"role": "user", "content": "hi"}]
#: The same key under every header name a provider uses for it.
KEY_HEADERS = {"x-api-key": API_KEY, "api-key": API_KEY, "x-goog-api-key": API_KEY}
#: A provider that echoes the key back, in an error body and in a broken frame.
ECHO_401 = (
    b'{"error":{"message":"Incorrect API key provided: ' + API_KEY.encode() + b'",'
    b'"type":"invalid_request_error","param":null,"code":"invalid_api_key"}}'
)
ECHO_FRAME = b'data: {"id": "' + API_KEY.encode() + b'", "choices": [\n\n'


def assert_hidden(*texts: str) -> None:
    for text in texts:
        assert API_KEY not in text, f"the API key leaked: {text[:300]}"


def shown(obj: Any) -> list[str]:
    """Every way an object is commonly shown: repr, str, and JSON for Structs."""
    forms = [repr(obj), str(obj)]
    if isinstance(obj, msgspec.Struct):
        # A Struct holding an exception (Attempt.error) has no JSON form: its repr suffices.
        with contextlib.suppress(TypeError):
            forms.append(msgspec.json.encode(obj).decode())
    return forms


def chained_traceback(error: BaseException) -> str:
    """The whole chain (``__cause__`` / ``__context__``), as ``logging`` and Python print it."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def failure(chat: Any) -> errors.LLMError:
    with pytest.raises(errors.LLMError) as caught:
        collect_sync(chat, timeout=20)
    return caught.value


def failing_runs(faults: FaultServer, elsewhere: FaultServer) -> list[errors.LLMError]:
    """One typed error from each way a request can fail, each made with the key."""
    base, t = faults.base + "/v1", OPENAI.transcript
    found = []
    faults.queue(Reply(status=401, body=ECHO_401, content_type="application/json"))
    found.append(failure(stream(base)))
    faults.queue(Reply(status=401, body=ECHO_401, content_type="application/json"))
    with pytest.raises(errors.AuthenticationError) as caught:
        rxllm.completion("openai", "gpt-4o", messages=MESSAGES, api_key=API_KEY, api_base=base)
    found.append(caught.value)
    faults.queue(Reply(body=t.insert_after_frame(2, ECHO_FRAME)))
    found.append(failure(stream(base)))
    faults.queue(Reply(body=t.body, content_type="text/html"))
    found.append(failure(stream(base)))
    found.append(failure(stream(f"http://127.0.0.1:{closed_port()}/v1")))
    faults.inject("reset", t)
    found.append(failure(stream(base)))
    faults.inject("drop", t, at=t.body.index(OPENAI.marker))
    found.append(failure(stream(base)))
    faults.inject("stall_body", t, at=100)
    found.append(failure(stream(base, timeout=0.2)))
    faults.inject("stall_body", t, at=t.body.index(OPENAI.marker))
    found.append(failure(stream(base, timeout=30).pipe(ops.timeout(idle=0.2))))
    faults.inject("redirect", t, location=f"http://localhost:{elsewhere.port}/v1?key={API_KEY}")
    found.append(failure(stream(base, extra_headers=KEY_HEADERS)))
    faults.inject("rate_limited", t, error_body=ECHO_401)
    found.append(failure(stream(base)))
    chat = stream(base)
    faults.inject("stall_body", t, at=t.body.index(OPENAI.marker))
    first = threading.Event()
    subscription = chat.subscribe(lambda _: first.set(), lambda _: None)
    assert first.wait(10)
    subscription.dispose()
    found.append(failure(chat))  # cancelled: a late subscriber gets StreamCancelledError
    return found


@pytest.fixture
def debug_logs() -> Iterator[list[str]]:
    """Everything every logger says at DEBUG, formatted with its traceback."""
    lines: list[str] = []
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(formatter.format(record))

    handler = Capture(logging.DEBUG)
    root = logging.getLogger()
    names = ("rxllm", "rxllm.router", "aiohttp", "aiohttp.client", "aiohttp.internal", "asyncio")
    saved = [(root, root.level)] + [
        (logging.getLogger(n), logging.getLogger(n).level) for n in names
    ]
    for logger, _ in saved:
        logger.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        for logger, level in saved:
            logger.setLevel(level)


# --- the tests ---------------------------------------------------------------------------------


def test_no_public_object_shows_the_key(faults: FaultServer, elsewhere: FaultServer) -> None:
    base = faults.base + "/v1"
    call, _, request = prepare(
        "openai",
        "gpt-4o",
        messages=MESSAGES,
        stream=True,
        api_key=API_KEY,
        api_base=base,
        extra_headers=KEY_HEADERS,
    )
    embedding_call, _, embedding_request = prepare_embedding(
        "openai", "text-embedding-3-small", input="hi", api_key=API_KEY, api_base=base
    )
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"  # it is there to hide
    objects: list[Any] = [call, request, embedding_call, embedding_request]

    pending = stream(base)
    objects.append(pending)
    faults.inject("gzip", OPENAI.transcript)
    completed = stream(base)
    handle = consume(completed)
    response = handle.wait(10)
    objects += [completed, handle, response, iterate(completed)]
    objects += completed.pipe(ops.metrics(), rx_ops.to_list()).run()

    attempts: list[Any] = []
    router = Router(num_retries=1, retry_delay=0.01, on_attempt=attempts.append)
    router.register(
        "pair",
        deployments=[
            {
                "provider": "openai",
                "model": "gpt-4o",
                "api_key": API_KEY,
                "api_base": base,
                "extra_headers": KEY_HEADERS,
            },
            {"provider": "openai", "model": "gpt-4o-mini", "api_key": API_KEY, "api_base": base},
        ],
    )
    faults.queue(Reply(status=500, body=ECHO_401, content_type="application/json"))
    faults.inject("gzip", OPENAI.transcript)
    routed = router.completion("pair", MESSAGES, stream=True)
    collect_sync(routed, timeout=10)
    assert len(attempts) == 2
    objects += [router, routed, router.get_config("pair"), router.status("pair"), *attempts]
    objects += list(router._configs.values()) + list(router._configs["pair"].deployments)

    failed = failing_runs(faults, elsewhere)
    objects += failed
    objects.append(errors.FanOutError({"a": failed[0], "b": failed[1]}, ["c"]))
    for obj in objects:
        assert_hidden(*shown(obj))
    for error in failed:
        assert_hidden(str(errors.error_summary(error)), repr(pickle.loads(pickle.dumps(error))))


def test_exception_text_and_tracebacks_never_show_the_key(
    faults: FaultServer, elsewhere: FaultServer
) -> None:
    failed = failing_runs(faults, elsewhere)
    kinds = {type(e).__name__ for e in failed}
    assert kinds >= {
        "AuthenticationError",
        "MalformedResponseError",
        "APIConnectionError",
        "StreamTruncatedError",
        "APITimeoutError",
        "RedirectError",
        "RateLimitError",
        "StreamCancelledError",
    }
    for error in failed:
        text = chained_traceback(error)
        assert "Traceback" in text
        assert_hidden(text, error.message, *map(str, error.args))
    echoed = failed[0]
    assert "Incorrect API key provided: ***" in str(echoed)
    assert "***" in failed[2].message  # the broken frame that held the key
    assert elsewhere.requests == []


def test_debug_logs_of_failing_and_succeeding_runs_never_show_the_key(
    faults: FaultServer, elsewhere: FaultServer, debug_logs: list[str]
) -> None:
    base = faults.base + "/v1"
    faults.inject("trickle", OPENAI.transcript)
    assert collect_sync(stream(base), timeout=20).text == OPENAI.text
    failing_runs(faults, elsewhere)

    def explode(_: Any) -> None:
        raise ValueError("a subscriber's bug")

    faults.inject("gzip", OPENAI.transcript)
    chat = stream(base)
    handle = rxllm.streaming.consume(chat)  # keeps the request going when explode leaves
    chat.subscribe(explode)  # no on_error: the error it raises again is logged
    handle.wait(10)

    router = Router(num_retries=1, retry_delay=0.01)
    router.register("flaky", provider="openai", model="gpt-4o", api_key=API_KEY, api_base=base)
    faults.queue(Reply(status=500, body=ECHO_401, content_type="application/json"))
    faults.inject("gzip", OPENAI.transcript)
    assert collect_sync(router.completion("flaky", MESSAGES, stream=True), 10).text == OPENAI.text

    async def in_asyncio() -> None:
        faults.inject("unknown_events", OPENAI.transcript)
        assert (await rxllm.streaming.collect(stream(base))).text == OPENAI.text
        faults.queue(Reply(status=401, body=ECHO_401, content_type="application/json"))
        with pytest.raises(errors.AuthenticationError):
            await rxllm.acompletion(
                "openai", "gpt-4o", messages=MESSAGES, api_key=API_KEY, api_base=base
            )

    asyncio.run(in_asyncio(), debug=True)

    text = "\n".join(debug_logs)
    assert "an rxllm stream subscriber's callback raised" in text  # the capture works ...
    assert "ValueError: a subscriber's bug" in text  # ... with tracebacks
    assert "router 'flaky'" in text or "rxllm.router" in text
    assert_hidden(text)


def test_sse_bridge_output_never_shows_the_key(faults: FaultServer) -> None:
    base = faults.base + "/v1"

    async def frames(chat: rxllm.ChatStream) -> bytes:
        return b"".join([frame async for frame in to_sse(chat)])

    async def main() -> list[bytes]:
        out = []
        for reply in (
            Reply(status=401, body=ECHO_401, content_type="application/json"),
            Reply(body=OPENAI.transcript.insert_after_frame(2, ECHO_FRAME)),
            Reply(body=OPENAI.transcript.body),
        ):
            faults.queue(reply)
            out.append(await frames(stream(base)))
        return out

    unauthorised, broken, fine = asyncio.run(main())
    assert unauthorised.startswith(b"event: error\ndata: ")
    assert b'"type":"AuthenticationError"' in unauthorised and b"***" in unauthorised
    assert b'"type":"MalformedResponseError"' in broken
    assert fine.endswith(b"data: [DONE]\n\n")
    assert_hidden(unauthorised.decode(), broken.decode(), fine.decode())


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_no_credential_header_crosses_to_another_host(
    faults: FaultServer, elsewhere: FaultServer, status: int
) -> None:
    base = faults.base + "/v1"
    elsewhere.queue(Reply(body=OPENAI.transcript.body), Reply(body=b"{}", status=200))
    for target in (
        f"http://localhost:{elsewhere.port}/v1/chat/completions",
        f"{elsewhere.base}/v1/chat/completions",
        f"https://127.0.0.1:{faults.port}/v1/chat/completions",
    ):
        faults.inject("redirect", OPENAI.transcript, location=target, status=status)
        error = failure(stream(base, extra_headers=KEY_HEADERS))
        assert isinstance(error, errors.RedirectError) and error.status_code == status
        faults.inject("redirect", OPENAI.transcript, location=target, status=status)
        with pytest.raises(errors.RedirectError):
            rxllm.completion(
                "openai",
                "gpt-4o",
                messages=MESSAGES,
                api_key=API_KEY,
                api_base=base,
                extra_headers=KEY_HEADERS,
            )
    assert elsewhere.requests == []  # nothing at all was sent there, credentials or not


def test_same_origin_307_keeps_every_credential_header(faults: FaultServer) -> None:
    faults.inject("redirect", OPENAI.transcript, location="/v2/chat/completions", status=308)
    faults.queue(Reply(body=OPENAI.transcript.body))
    response = collect_sync(stream(faults.base + "/v1", extra_headers=KEY_HEADERS), timeout=10)
    assert response.text == OPENAI.text
    moved = faults.requests[1]
    assert moved.path == "/v2/chat/completions"
    assert moved.headers["Authorization"] == f"Bearer {API_KEY}"
    assert {h: moved.headers[h] for h in KEY_HEADERS} == KEY_HEADERS


def test_credentials_in_api_base_are_masked_wherever_it_is_shown() -> None:
    secret, port = "pw-in-the-url-0000", closed_port()
    base = f"http://alice:{secret}@127.0.0.1:{port}"
    # Anthropic sends its key in x-api-key, so the URL's credentials can go as Basic auth.
    call, _, request = prepare(
        "anthropic",
        "claude-haiku-4-5",
        messages=MESSAGES,
        stream=False,
        api_key=API_KEY,
        api_base=base,
    )
    assert request.url.startswith(base)  # sent as given: aiohttp makes it Basic auth
    attempts: list[Any] = []
    router = Router(num_retries=0, on_attempt=attempts.append)
    router.register(
        "proxy", provider="anthropic", model="claude-haiku-4-5", api_key=API_KEY, api_base=base
    )
    with pytest.raises(errors.APIConnectionError) as caught:
        router.completion("proxy", MESSAGES)
    (attempt,) = attempts
    assert attempt.api_base == f"http://***@127.0.0.1:{port}"
    shown_forms = [
        *shown(call),
        *shown(request),
        *shown(attempt),
        *shown(router),
        repr(router.get_config("proxy")),
        *map(repr, router._configs["proxy"].deployments),
        str(caught.value),
        chained_traceback(caught.value),
    ]
    for text in shown_forms:
        assert secret not in text and API_KEY not in text, text[:300]
    assert "//***@127.0.0.1" in repr(call) and "//***@127.0.0.1" in repr(request)


def test_credentials_in_api_base_beside_an_authorization_header_fail_before_io() -> None:
    secret = "pw-in-the-url-0000"
    base = f"http://alice:{secret}@127.0.0.1:{closed_port()}/v1"
    with pytest.raises(errors.ConfigurationError, match="cannot send both") as caught:
        rxllm.completion("openai", "gpt-4o", messages=MESSAGES, api_key=API_KEY, api_base=base)
    assert caught.value.provider == "openai"
    assert secret not in str(caught.value) and API_KEY not in str(caught.value)


# --- a server that echoes every credential in every field (docs/contracts.md, 8) --------------

#: Credentials gateways take in headers of their own, passed as ``extra_headers``.
GATEWAY_HEADERS = {
    "Helicone-Auth": "Bearer sk-helicone-0123456789abcdef",
    "Ocp-Apim-Subscription-Key": "apim0123456789abcdef0123456789ab",
    "cf-aig-authorization": "Bearer cf-aig-0123456789abcdef0123",
    "x-portkey-api-key": "pk-0123456789abcdefPORTKEY",
}
BASIC_PASSWORD = "pw-basic-0123"


def gateway_secrets() -> list[str]:
    values = [v.removeprefix("Bearer ") for v in GATEWAY_HEADERS.values()]
    return [API_KEY, *values, BASIC_PASSWORD]


def echo_reply(recorded: Recorded, *, stream: bool = False) -> Reply:
    """Every header the server was sent (the key, gateway credentials, a Basic credential in
    base64) echoed back in the message, and the key in ``type``, ``param``, ``code`` and the
    ``x-request-id`` header: as a 401 body, or as an error frame after one good chunk."""
    echoed = " | ".join(f"{k}: {v}" for k, v in recorded.headers.items())
    detail = {"message": f"rejected: {echoed}", "type": API_KEY, "param": API_KEY, "code": API_KEY}
    body = msgspec.json.encode({"error": detail})
    headers = {"x-request-id": API_KEY}
    if not stream:
        return Reply(status=401, body=body, content_type="application/json", headers=headers)
    frames = b"\n\n".join(OPENAI.transcript.body.split(b"\n\n")[:3]) + b"\n\n"
    return Reply(body=frames + b"data: " + body + b"\n\n", headers=headers)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in gateway_secrets():
            assert secret not in text, f"{secret!r} leaked: {text[:400]}"


def every_form(error: errors.LLMError) -> list[str]:
    """How an error is shown: str, repr, summary, its attributes, pickled copy, traceback."""
    attributes = [repr(v) for k, v in vars(error).items() if k != "partial_response"]
    return [
        str(error),
        repr(error),
        str(errors.error_summary(error)),
        *attributes,
        repr(pickle.loads(pickle.dumps(error))),
        chained_traceback(error),
    ]


def test_a_key_echoed_in_every_field_shows_nowhere(faults: FaultServer) -> None:
    base = faults.base + "/v1"
    faults.responder = echo_reply
    with pytest.raises(errors.AuthenticationError) as caught:
        rxllm.completion("openai", "gpt-4o", messages=MESSAGES, api_key=API_KEY, api_base=base)
    refused = caught.value
    streamed = failure(stream(base))
    faults.responder = lambda recorded: echo_reply(recorded, stream=True)
    cut = failure(stream(base))
    assert cut.partial_text and cut.request_id == "***" and cut.code == "***"
    assert refused.param == "***" and refused.error_type == "***" and refused.request_id == "***"
    assert "rejected: " in refused.message and "Bearer ***" in refused.message
    for error in (refused, streamed, cut):
        assert_hidden(*every_form(error))

    async def bridged() -> bytes:
        return b"".join([frame async for frame in to_sse(stream(base))])

    sse_bytes = asyncio.run(bridged())
    assert b"event: error" in sse_bytes
    assert_hidden(sse_bytes.decode())


def test_gateway_credentials_and_basic_auth_are_masked_everywhere(
    faults: FaultServer, debug_logs: list[str]
) -> None:
    faults.responder = echo_reply
    host = faults.base.removeprefix("http://")
    basic_base = f"http://alice:{BASIC_PASSWORD}@{host}"  # aiohttp sends it as Basic auth
    router = Router(num_retries=0)
    router.register(
        "gateway",
        provider="openai",
        model="gpt-4o",
        api_key=API_KEY,
        api_base=faults.base + "/v1",
        extra_headers=GATEWAY_HEADERS,
    )
    router.register(
        "basic",
        provider="anthropic",
        model="claude-haiku-4-5",
        api_key=API_KEY,
        api_base=basic_base,
    )
    found: list[errors.LLMError] = []
    for name in ("gateway", "basic"):
        with pytest.raises(errors.AuthenticationError) as caught:
            router.completion(name, MESSAGES)
        found.append(caught.value)
        found.append(failure(router.completion(name, MESSAGES, stream=True)))
    with pytest.raises(errors.AuthenticationError) as caught:
        rxllm.completion(
            "anthropic", "claude-haiku-4-5", messages=MESSAGES, api_key=API_KEY, api_base=basic_base
        )
    found.append(caught.value)
    basic = faults.requests[-1].headers["Authorization"]
    assert basic.startswith("Basic ")  # sent, and echoed back by the server ...
    assert all("Basic ***" in e.message for e in found[2:])  # ... masked
    _, _, request = prepare(
        "openai",
        "gpt-4o",
        messages=MESSAGES,
        stream=True,
        api_key=API_KEY,
        extra_headers=GATEWAY_HEADERS,
    )
    shown_forms = [
        repr(router.get_config("gateway")),
        repr(router.get_config("basic")),
        repr(router),
        repr(request),
        "\n".join(debug_logs),
    ]
    for error in found:
        shown_forms += every_form(error)
    assert_no_secret(*shown_forms)
    described = router.get_config("gateway")
    assert described is not None
    assert described["deployments"][0]["extra_headers"] == dict.fromkeys(GATEWAY_HEADERS, "***")


@pytest.mark.parametrize("key", ["none", "EMPTY", "sk-no-key-required", "abc"])
def test_placeholder_and_short_keys_leave_other_text_intact(faults: FaultServer, key: str) -> None:
    message = "none of EMPTY abc nonexistent.invalid sk-no-key-required-ish"
    faults.queue(
        Reply(
            status=400,
            body=msgspec.json.encode({"error": {"message": message}}),
            content_type="application/json",
        )
    )
    with pytest.raises(errors.BadRequestError) as caught:
        rxllm.completion(
            "openai_compatible", "m", messages=MESSAGES, api_key=key, api_base=faults.base
        )
    assert caught.value.message == message
    with pytest.raises(errors.APIConnectionError) as unreachable:
        rxllm.completion(
            "openai_compatible",
            "m",
            messages=MESSAGES,
            api_key=key,
            api_base="http://nonexistent.invalid/v1",
            timeout=10,
        )
    assert "http://nonexistent.invalid" in str(unreachable.value)


def test_short_keys_are_masked_as_whole_tokens_only() -> None:
    error = errors.AuthenticationError("key k3y-42 refused; k3y-42x and xk3y-42 are other words")
    error._with_context(provider="p", model="m", secret="k3y-42")
    assert error.message == "key *** refused; k3y-42x and xk3y-42 are other words"
    long_key = "sk-live-0123456789abcdef"
    glued = errors.APIStatusError(f"token={long_key}abc")
    glued._with_context(provider=None, model=None, secret=long_key)
    assert glued.message == "token=***abc"  # a long key is hidden even glued to other text


def test_a_plain_stream_masks_every_credential_of_its_call(faults: FaultServer) -> None:
    faults.responder = echo_reply
    host = faults.base.removeprefix("http://")
    chat = rxllm.completion(
        "anthropic",
        "claude-haiku-4-5",
        messages=MESSAGES,
        stream=True,
        api_key=API_KEY,
        api_base=f"http://alice:{BASIC_PASSWORD}@{host}",
        extra_headers=GATEWAY_HEADERS,
    )
    assert_no_secret(*every_form(failure(chat)))
