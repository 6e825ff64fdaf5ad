"""The providers the fault suite runs against: one :class:`ProviderCase` each, made of a recorded
transcript, the provider's name and the literals a human reads in that transcript.

Adding a provider to the suite is adding a case here (its transcript copied into
``tests/fixtures/<provider>/``); the faults and the assertions are shared.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from rxllm import errors

from ..conftest import fixture_bytes
from .server import Transcript

__all__ = ["CASES", "OPENAI", "ProviderCase"]

NDJSON = "application/x-ndjson"


@dataclass(frozen=True)
class ProviderCase:
    provider: str
    model: str
    transcript: Transcript
    #: Appended to the server's address to make ``api_base``.
    path: str
    #: The whole answer in the transcript.
    text: str
    #: Bytes inside the answer: a cut just before them leaves ``text_before_marker``.
    marker: bytes
    text_before_marker: str
    #: The answer's text in the transcript's first three frames.
    text_of_three_frames: str
    #: A word inside one frame's text, after which ``big_frame`` puts its filler.
    big_frame_after: bytes
    #: The provider's error body for a 429, and one for an error sent with a 200.
    rate_limit_body: bytes
    rate_limit_code: str | None
    error_200_body: bytes
    error_200_class: type[errors.LLMError]
    error_200_message: str
    #: The provider's error as it comes mid-stream (framed), the class it makes and its message.
    stream_error: bytes
    stream_error_class: type[errors.LLMError]
    stream_error_message: str
    #: The path the provider's chat request reaches on the server (``api_base`` + ``path`` + it).
    endpoint: str = "/v1/chat/completions"
    #: The request header that carries the API key.
    key_header: str = "Authorization"
    #: The code that mid-stream error carries, its status, and whether it is worth a retry.
    stream_error_code: str | None = None
    stream_error_status: int | None = None
    stream_error_recoverable: bool | None = None
    #: The answer's text when the cut falls 8 bytes before the body's end (``None``: all of
    #: ``text``; a stream without an end marker loses its last frame's text).
    text_before_end: str | None = None
    #: What the error of an unparseable frame says.
    bad_frame_message: str = "unparseable stream frame"
    #: The status a 200 carrying ``error_200_body`` is reported with.
    error_200_status: int = 200
    #: Whether that error is worth a retry (an error of no known kind is not).
    error_200_recoverable: bool = True

    @property
    def sse(self) -> bool:
        return self.transcript.content_type == "text/event-stream"

    def __str__(self) -> str:
        return self.provider


_GEMINI_ERROR = fixture_bytes("gemini/stream_midstream_error.txt")
_OPENROUTER_ERROR = fixture_bytes("openrouter/stream_midstream_error.sse")

OPENAI = ProviderCase(
    provider="openai",
    model="gpt-4o",
    transcript=Transcript(fixture_bytes("openai/stream_text_usage.sse")),
    path="/v1",
    text=(
        "I'm unable to provide real-time weather updates. To get the current weather in San "
        "Francisco, I recommend checking a reliable weather website or a weather app."
    ),
    marker=b" weather",
    text_before_marker="I'm unable to provide real-time",
    text_of_three_frames="I'm unable",
    big_frame_after=b" unable",
    # OpenAI's documented error envelope (the messages are theirs, the numbers made up).
    rate_limit_body=(
        b'{"error":{"message":"Rate limit reached for gpt-4o in organization org-abc on '
        b'requests per min (RPM): Limit 500, Used 500, Requested 1. Please try again in 7s.",'
        b'"type":"requests","param":null,"code":"rate_limit_exceeded"}}'
    ),
    rate_limit_code="rate_limit_exceeded",
    error_200_body=(
        b'{"error":{"message":"The server had an error while processing your request. Sorry '
        b'about that!","type":"server_error","param":null,"code":null}}'
    ),
    error_200_class=errors.InternalServerError,
    error_200_message="The server had an error while processing your request. Sorry about that!",
    # An error object mid-stream, as OpenAI sends one (no [DONE] after it).
    stream_error=(
        b'data: {"error":{"message":"The server had an error while processing your request.",'
        b'"type":"server_error","param":null,"code":"server_error"}}\n\n'
    ),
    stream_error_class=errors.InternalServerError,
    stream_error_message="The server had an error while processing your request.",
    stream_error_code="server_error",
)

# The OpenAI envelope again, at a server of the family (vLLM, llama.cpp, Groq...).
OPENAI_COMPATIBLE = replace(
    OPENAI,
    provider="openai_compatible",
    model="llama-3.1-8b-instant",
    # vLLM's error object (older servers): its numeric code and text make the class.
    stream_error=(
        b'data: {"object":"error","message":"This model\'s maximum context length is 131072 '
        b"tokens. However, you requested 156632 tokens (152536 in the messages, 4096 in the "
        b'completion). Please reduce the length of the messages or completion.",'
        b'"type":"BadRequestError","param":null,"code":400}\n\n'
    ),
    stream_error_class=errors.ContextWindowExceededError,
    stream_error_message=(
        "This model's maximum context length is 131072 tokens. However, you requested 156632 "
        "tokens (152536 in the messages, 4096 in the completion). Please reduce the length of "
        "the messages or completion."
    ),
    stream_error_code="400",
    stream_error_status=400,  # the error's numeric code
)

ANTHROPIC = ProviderCase(
    provider="anthropic",
    model="claude-haiku-4-5",
    transcript=Transcript(fixture_bytes("anthropic/stream_text.sse")),
    path="",
    endpoint="/v1/messages",
    key_header="x-api-key",
    text="Hello",
    marker=b"Hello",
    text_before_marker="",
    # message_start, content_block_start and a ping: no text yet.
    text_of_three_frames="",
    big_frame_after=b"Hello",
    # The recorded 429 (tests/fixtures/anthropic/error_429_rate_limit.json).
    rate_limit_body=fixture_bytes("anthropic/error_429_rate_limit.json"),
    rate_limit_code="rate_limit_error",
    # The "api_error" of Anthropic's errors page ("An unexpected error has occurred").
    error_200_body=(
        b'{"type":"error","error":{"type":"api_error","message":"Internal server error"},'
        b'"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}'
    ),
    error_200_class=errors.InternalServerError,
    error_200_message="Internal server error",
    # tests/fixtures/anthropic/stream_error_overloaded.sse (the documented error event).
    stream_error=fixture_bytes("anthropic/stream_error_overloaded.sse"),
    stream_error_class=errors.ServiceUnavailableError,
    stream_error_message="Overloaded",
    stream_error_code="overloaded_error",
    stream_error_recoverable=True,
)

GEMINI = ProviderCase(
    provider="gemini",
    model="gemini-2.0-flash-exp",
    # Gemini frames its SSE with CRLF.
    transcript=Transcript(
        fixture_bytes("gemini/stream_text.sse"),
        separator=b"\r\n\r\n",
        frame=lambda payload: b"data: " + payload + b"\r\n\r\n",
    ),
    path="",
    endpoint="/v1beta/models/gemini-2.0-flash-exp:streamGenerateContent",
    key_header="x-goog-api-key",
    text="The capital of France is Paris.\n",
    marker=b" is Paris",
    text_before_marker="The capital of France",
    # The transcript has three frames: the bad frame comes after all of them.
    text_of_three_frames="The capital of France is Paris.\n",
    big_frame_after=b" capital",
    # No end marker: a cut inside the last frame loses its text.
    text_before_end="The capital of France",
    # The recorded 429 (tests/fixtures/gemini/error_429_resource_exhausted.json).
    rate_limit_body=fixture_bytes("gemini/error_429_resource_exhausted.json"),
    # rxllm's code is the ErrorInfo reason, the more precise of the two.
    rate_limit_code="RATE_LIMIT_EXCEEDED",
    # Google's INTERNAL error, as its troubleshooting page quotes it.
    error_200_body=(
        b'{"error":{"code":500,"message":"An internal error has occurred. Please retry or '
        b'report in https://developers.generativeai.google/guide/troubleshooting",'
        b'"status":"INTERNAL"}}'
    ),
    error_200_class=errors.InternalServerError,
    error_200_message="An internal error has occurred.",
    # The bare JSON error of tests/fixtures/gemini/stream_midstream_error.txt.
    stream_error=_GEMINI_ERROR[_GEMINI_ERROR.index(b'{\n  "error"') :],
    stream_error_class=errors.InternalServerError,
    stream_error_message="The operation was cancelled.",
    stream_error_code="CANCELLED",
)

MISTRAL = ProviderCase(
    provider="mistral",
    model="mistral-tiny",
    transcript=Transcript(fixture_bytes("mistral/stream_text_usage.sse")),
    path="/v1",
    text=(
        "Here's a light-hearted joke that combines OpenTelemetry with a bit of humor:\n\n"
        "Why did the OpenTelemetry trace cross the road?\n\nTo get to the other service call, "
        "of course! But it got so caught up in gathering metadata, it didn't realize a bus had "
        "hit it! (I hope this brings a smile to your face.)"
    ),
    marker=b'"Why"',
    text_before_marker=(
        "Here's a light-hearted joke that combines OpenTelemetry with a bit of humor:\n\n"
    ),
    text_of_three_frames="Here'",
    big_frame_after=b" light",
    # Mistral's envelope (as in tests/test_mistral.py's quoted bodies); no recording was found.
    rate_limit_body=(
        b'{"object":"error","message":"Requests rate limit exceeded",'
        b'"type":"rate_limited","param":null,"code":"1300"}'
    ),
    rate_limit_code="1300",
    error_200_body=(
        b'{"object":"error","message":"Service unavailable.",'
        b'"type":"internal_server_error","param":null,"code":"1000"}'
    ),
    # Code "1000" says nothing of the kind: a generic status error (the HTTP status, 200,
    # cannot say it either).
    error_200_class=errors.APIStatusError,
    error_200_message="Service unavailable.",
    error_200_recoverable=False,
    stream_error=(
        b'data: {"object":"error","message":"Service unavailable.","type":"internal_server_error",'
        b'"param":null,"code":"3000"}\n\n'
    ),
    stream_error_class=errors.APIStatusError,
    stream_error_message="Service unavailable.",
    stream_error_code="3000",
)

OPENROUTER = ProviderCase(
    provider="openrouter",
    model="meta-llama/llama-3.2-3b-instruct:free",
    transcript=Transcript(fixture_bytes("openrouter/stream_text_usage.sse")),
    path="/api/v1",
    endpoint="/api/v1/chat/completions",
    text="OK",
    marker=b'"OK"',
    text_before_marker="",
    # A ": OPENROUTER PROCESSING" comment and two empty deltas.
    text_of_three_frames="",
    big_frame_after=b"OK",
    # OpenRouter's error documentation: {"error": {"code", "message", "metadata"}}.
    rate_limit_body=(
        b'{"error":{"code":429,"message":"Rate limit exceeded: free-models-per-min."}}'
    ),
    rate_limit_code="429",
    error_200_body=(
        b'{"error":{"code":502,"message":"Provider returned error",'
        b'"metadata":{"provider_name":"Venice","raw":"upstream timeout"}}}'
    ),
    error_200_class=errors.InternalServerError,
    error_200_message="Provider returned error (upstream provider: Venice)",
    # The body's code is the status OpenRouter meant.
    error_200_status=502,
    # The error chunk of tests/fixtures/openrouter/stream_midstream_error.sse.
    stream_error=_OPENROUTER_ERROR[_OPENROUTER_ERROR.rindex(b"data: {") :].replace(
        b"data: [DONE]\n\n", b""
    ),
    stream_error_class=errors.BadRequestError,
    stream_error_message="Token limit reached",
    stream_error_code="400",
    stream_error_status=400,  # the error's numeric code
)

DEEPSEEK = ProviderCase(
    provider="deepseek",
    model="deepseek-reasoner",
    transcript=Transcript(fixture_bytes("deepseek/stream_reasoning_usage.sse")),
    path="",
    endpoint="/chat/completions",
    # The answer after the reasoning (the reasoning is not the text).
    text="Hello there! \U0001f60a How can I help you today?",
    marker=b'"content":" there',
    text_before_marker="Hello",
    # The first frames are reasoning.
    text_of_three_frames="",
    big_frame_after=b" How",  # " help", " today"... are in the reasoning too
    # DeepSeek's errors are OpenAI's envelope (its error-code table names 429 and 500).
    rate_limit_body=(
        b'{"error":{"message":"Rate Limit Reached","type":"rate_limit_error",'
        b'"param":null,"code":"rate_limit_reached"}}'
    ),
    rate_limit_code="rate_limit_reached",
    error_200_body=(
        b'{"error":{"message":"Server Error","type":"server_error","param":null,"code":null}}'
    ),
    error_200_class=errors.InternalServerError,
    error_200_message="Server Error",
    stream_error=(
        b'data: {"error":{"message":"Server Error","type":"server_error","param":null,'
        b'"code":null}}\n\n'
    ),
    stream_error_class=errors.InternalServerError,
    stream_error_message="Server Error",
)

AZURE = ProviderCase(
    provider="azure",
    model="gpt-35-turbo",  # the deployment
    transcript=Transcript(fixture_bytes("azure/stream_text.sse")),
    path="",
    endpoint="/openai/deployments/gpt-35-turbo/chat/completions",
    key_header="api-key",
    text=(
        "Why did the Opentelemetry developer bring a ladder to the coding competition? \n\n"
        "Because they wanted to reach new traces!"
    ),
    marker=b'"content":" Op"',
    text_before_marker="Why did the",
    # The prompt-filter chunk and an empty delta first.
    text_of_three_frames="Why",
    big_frame_after=b" ladder",
    # Azure's envelope: {"error": {"code", "message"}} (code "429" in its docs).
    rate_limit_body=(
        b'{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation '
        b"under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your "
        b'current OpenAI S0 pricing tier. Please retry after 7 seconds."}}'
    ),
    rate_limit_code="429",
    # Azure's 500, as quoted in public issue threads: OpenAI's envelope with an Azure message.
    error_200_body=(
        b'{"error":{"message":"The server had an error processing your request. Sorry about '
        b"that! You can retry your request, or contact us through an Azure support request at: "
        b'https://go.microsoft.com/fwlink/?linkid=2213926 if you keep seeing this error.",'
        b'"type":"server_error","param":null,"code":null}}'
    ),
    error_200_class=errors.InternalServerError,
    error_200_message="The server had an error processing your request.",
    stream_error=(
        b'data: {"error":{"message":"The server had an error processing your request.",'
        b'"type":"server_error","param":null,"code":null}}\n\n'
    ),
    stream_error_class=errors.InternalServerError,
    stream_error_message="The server had an error processing your request.",
)

OLLAMA = ProviderCase(
    provider="ollama",
    model="gemma3:1b",
    transcript=Transcript(
        fixture_bytes("ollama/stream_chat.ndjson"),
        content_type=NDJSON,
        separator=b"\n",
        frame=lambda payload: payload + b"\n",
    ),
    path="",
    endpoint="/api/chat",
    text="Okay, here we go!\n\n1, 2, 3, 4, 5\n",
    marker=b'"content":"1"',
    text_before_marker="Okay, here we go!\n\n",
    text_of_three_frames="Okay, here",
    bad_frame_message="unparseable NDJSON line",
    big_frame_after=b" here",
    # Ollama's errors are {"error": "<message>"} (its docs/api/errors.mdx).
    rate_limit_body=b'{"error":"too many requests, please slow down"}',
    rate_limit_code=None,
    # tests/fixtures/ollama/error.json on one line, as the server writes it.
    error_200_body=b'{"error":"the model failed to generate a response"}',
    error_200_class=errors.InternalServerError,
    error_200_message="the model failed to generate a response",
    # The error line of tests/fixtures/ollama/stream_midstream_error.ndjson.
    stream_error=b'{"error":"an error was encountered while running the model"}\n',
    stream_error_class=errors.InternalServerError,
    stream_error_message="an error was encountered while running the model",
)

CASES = [OPENAI, OPENAI_COMPATIBLE, ANTHROPIC, GEMINI, MISTRAL, OPENROUTER, DEEPSEEK, AZURE, OLLAMA]
