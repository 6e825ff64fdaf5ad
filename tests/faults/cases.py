"""The providers the fault suite runs against: one :class:`ProviderCase` each, made of a recorded
transcript, the provider's name and the literals a human reads in that transcript.

Adding a provider to the suite is adding a case here (its transcript copied into
``tests/fixtures/<provider>/``); the faults and the assertions are shared.
"""

from __future__ import annotations

from dataclasses import dataclass

from rxllm import errors

from ..conftest import fixture_bytes
from .server import Transcript

__all__ = ["CASES", "OPENAI", "ProviderCase"]


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

    def __str__(self) -> str:
        return self.provider


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
)

CASES = [OPENAI]
