"""Usage with all its parts, and what each part costs, on recorded transcripts.

Each transcript is replayed over loopback HTTP; the test reads the ``Usage`` rxllm reports
(``prompt_tokens`` counts all input, the details say what it was made of) and prices it with
:func:`rxllm.pricing.cost_of`. Every expected cost is worked out by hand in the comments, in
USD-millionths (tokens x USD per million tokens), from the rows of ``rxllm/_data/prices.json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

import rxllm
from rxllm import pricing
from rxllm.gateway._anthropic import _usage_out
from rxllm.ops import metrics
from rxllm.pricing import CostBreakdown, cost_breakdown, cost_of
from rxllm.pricing import cost_of as _cost
from rxllm.streaming import collect_sync
from rxllm.types import (
    ChatResponse,
    CompletionTokensDetails,
    PromptTokensDetails,
    Usage,
)

from .conftest import API_KEY, fixture_bytes
from .server import ReplayServer, Reply, sse

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(autouse=True)
def _no_custom_prices(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Prices a test sets with set_price do not outlive it."""
    monkeypatch.setattr(pricing, "_overrides", {})
    yield


def streamed(server: ReplayServer, provider: str, model: str, body: bytes) -> ChatResponse:
    server.queue(Reply(body=body, piece=211))
    chat = rxllm.completion(
        provider, model, messages=USER, stream=True, api_key=API_KEY, api_base=server.base
    )
    return collect_sync(chat, timeout=10)


def answered(server: ReplayServer, provider: str, model: str, body: bytes) -> ChatResponse:
    server.queue(Reply(body=body, content_type="application/json"))
    return rxllm.completion(provider, model, messages=USER, api_key=API_KEY, api_base=server.base)


def usage_of(response: ChatResponse) -> Usage:
    assert response.usage is not None
    return response.usage


def parts(breakdown: CostBreakdown | None) -> tuple[float, ...]:
    assert breakdown is not None
    assert breakdown.total == pytest.approx(
        breakdown.input
        + breakdown.cache_read
        + breakdown.cache_write
        + breakdown.output
        + breakdown.reasoning
    )
    return (
        breakdown.input,
        breakdown.cache_read,
        breakdown.cache_write,
        breakdown.output,
        breakdown.reasoning,
    )


# --- Anthropic ---------------------------------------------------------------------------------


def test_anthropic_cache_write_is_kept_apart_and_billed_at_its_premium(
    server: ReplayServer,
) -> None:
    # message_start: input 4, cache_creation 1165, cache_read 0; message_delta: output 201 only
    response = streamed(
        server,
        "anthropic",
        "claude-3-5-sonnet-20240620",
        fixture_bytes("anthropic/stream_cache_creation.sse"),
    )
    usage = usage_of(response)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        4 + 1165,
        201,
        4 + 1165 + 201,
    )
    assert usage.prompt_tokens_details == PromptTokensDetails(cache_creation_tokens=1165)
    assert (usage.cache_write_tokens, usage.cache_read_tokens) == (1165, 0)
    assert usage.uncached_prompt_tokens == 4
    assert response.model == "claude-3-5-sonnet-20240620"
    # claude-3-5-sonnet: input $3, 5-minute cache write $3.75 (1.25 x 3), output $15 per 1M
    #   4 x 3 = 12;  1165 x 3.75 = 4368.75;  201 x 15 = 3015  ->  7395.75 millionths
    assert cost_of("anthropic", response.model, usage) == pytest.approx(0.00739575)
    assert parts(cost_breakdown("anthropic", response.model, usage)) == pytest.approx(
        (12e-6, 0.0, 4368.75e-6, 3015e-6, 0.0)
    )
    # Before, the write was billed as plain input: 1169 x 3 + 3015 = 6522 millionths.
    assert pricing.calculate_cost("anthropic", response.model, 1169, 201) == pytest.approx(0.006522)
    assert pricing.calculate_cost(
        "anthropic", response.model, 1169, 201, cache_creation_tokens=1165
    ) == pytest.approx(0.00739575)


def test_anthropic_cache_read_is_billed_at_the_cached_price(server: ReplayServer) -> None:
    # message_start: input 4, cache_creation 0, cache_read 1165; message_delta: output 221
    response = streamed(
        server,
        "anthropic",
        "claude-3-5-sonnet-20240620",
        fixture_bytes("anthropic/stream_cache_read.sse"),
    )
    usage = usage_of(response)
    assert (usage.prompt_tokens, usage.completion_tokens) == (1169, 221)
    assert usage.prompt_tokens_details == PromptTokensDetails(cached_tokens=1165)
    # 4 x 3 = 12;  1165 x 0.30 = 349.5;  221 x 15 = 3315  ->  3676.5 millionths
    assert cost_of("anthropic", response.model, usage) == pytest.approx(0.0036765)
    assert parts(cost_breakdown("anthropic", response.model, usage)) == pytest.approx(
        (12e-6, 349.5e-6, 0.0, 3315e-6, 0.0)
    )


def test_anthropic_compaction_is_the_sum_of_its_iterations(server: ReplayServer) -> None:
    # message_delta's top level (input 181, cache_read 0, output 8) is the final step only;
    # its iterations are what the call is billed:
    #   compaction: input 100, cache_read 55096, output 83
    #   message:    input 181, cache_read 0,     output 8
    response = streamed(
        server,
        "anthropic",
        "claude-sonnet-4-6",
        fixture_bytes("anthropic/stream_compaction_cache_read.sse"),
    )
    assert response.text == "Hello! 👋"
    usage = usage_of(response)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        100 + 181 + 55096,
        83 + 8,
        100 + 181 + 55096 + 83 + 8,
    )
    assert usage.prompt_tokens_details == PromptTokensDetails(cached_tokens=55096)
    # claude-sonnet-4-6 is newer than the shipped table: no price, no guess.
    assert cost_of("anthropic", "claude-sonnet-4-6", usage) is None
    pricing.set_price(
        "anthropic", "claude-sonnet-4-6", input=3.0, output=15.0, cached_input=0.3, cache_write=3.75
    )
    # 281 x 3 = 843;  55096 x 0.30 = 16528.8;  91 x 15 = 1365  ->  18736.8 millionths
    assert cost_of("anthropic", "claude-sonnet-4-6", usage) == pytest.approx(0.0187368)


def test_anthropic_usage_of_two_events_is_taken_once(server: ReplayServer) -> None:
    # message_start says output 88 (a running count), message_delta 189 (the final one): the
    # final count is taken, not their sum.
    response = streamed(
        server,
        "anthropic",
        "claude-3-7-sonnet-20250219",
        fixture_bytes("anthropic/stream_redacted_thinking.sse"),
    )
    usage = usage_of(response)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (92, 189, 281)
    assert usage.prompt_tokens_details is None  # no cache read or write
    # Anthropic reports no thinking count apart: its thinking is inside output_tokens.
    assert usage.completion_tokens_details is None
    # claude-3-7-sonnet $3 / $15:  92 x 3 = 276;  189 x 15 = 2835  ->  3111 millionths
    assert cost_of("anthropic", response.model, usage) == pytest.approx(0.003111)


def test_anthropic_server_tool_rounds_count_from_the_final_event(server: ReplayServer) -> None:
    # Two web searches: message_start says input 2050, message_delta 31772 (every sampling
    # round of the request). The final count is the call's.
    response = streamed(
        server,
        "anthropic",
        "claude-sonnet-4-0",
        fixture_bytes("anthropic/stream_web_search_citations.sse"),
    )
    usage = usage_of(response)
    assert (usage.prompt_tokens, usage.completion_tokens) == (31772, 644)
    # claude-sonnet-4 $3 / $15: 31772 x 3 = 95316;  644 x 15 = 9660  ->  104976 millionths
    # (the two searches themselves are billed per search, not per token: not in this cost)
    assert cost_of("anthropic", response.model, usage) == pytest.approx(0.104976)


def test_anthropic_non_streamed_cache_write_with_its_one_hour_part(server: ReplayServer) -> None:
    # The documented shape of a non-streamed answer whose prompt was partly written with the
    # 1-hour lifetime (no such recording exists): 300 written for 5 minutes, 200 for an hour.
    body = json.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": "claude-haiku-4-5-20251001",
            "content": [{"type": "text", "text": "ok"}],
            "stop_reason": "end_turn",
            "usage": {
                "input_tokens": 10,
                "cache_creation_input_tokens": 500,
                "cache_read_input_tokens": 1000,
                "cache_creation": {
                    "ephemeral_5m_input_tokens": 300,
                    "ephemeral_1h_input_tokens": 200,
                },
                "output_tokens": 20,
            },
        }
    ).encode()
    response = answered(server, "anthropic", "claude-haiku-4-5", body)
    usage = usage_of(response)
    assert (usage.prompt_tokens, usage.completion_tokens) == (10 + 500 + 1000, 20)
    assert usage.prompt_tokens_details == PromptTokensDetails(
        cached_tokens=1000, cache_creation_tokens=500, cache_creation_1h_tokens=200
    )
    # claude-haiku-4-5: input $1, cache read $0.10, write $1.25 (5 min) / $2 (1 hour), out $5
    #   10 x 1 = 10;  1000 x 0.10 = 100;  300 x 1.25 + 200 x 2 = 375 + 400 = 775;  20 x 5 = 100
    #   -> 985 millionths
    assert parts(cost_breakdown("anthropic", response.model, usage)) == pytest.approx(
        (10e-6, 100e-6, 775e-6, 100e-6, 0.0)
    )
    assert cost_of("anthropic", response.model, usage) == pytest.approx(0.000985)


def test_anthropic_thinking_tokens_are_the_reasoning_count(server: ReplayServer) -> None:
    # Recent Anthropic streams report thinking apart in message_delta's usage, as in
    # pydantic-ai's recording test_pause_turn_web_search_streaming_vcr.yaml (claude-sonnet-4-5:
    # "output_tokens": 943, "output_tokens_details": {"thinking_tokens": 261}); those counts,
    # in a stream written here around them:
    events = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "model": "claude-sonnet-4-5-20250929",
                "content": [],
                "usage": {"input_tokens": 2479, "output_tokens": 6},
            },
        },
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {
                "input_tokens": 2479,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 943,
                "output_tokens_details": {"thinking_tokens": 261},
            },
        },
        {"type": "message_stop"},
    ]
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)
    response = streamed(server, "anthropic", "claude-sonnet-4-5", body)
    usage = usage_of(response)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens) == (
        2479,
        943,
        261,
    )
    # claude-sonnet-4-5 $3 / $15, thinking billed as output:
    #   2479 x 3 = 7437;  682 x 15 = 10230;  261 x 15 = 3915  ->  21582 millionths
    assert parts(cost_breakdown("anthropic", response.model, usage)) == pytest.approx(
        (7437e-6, 0.0, 0.0, 10230e-6, 3915e-6)
    )
    assert cost_of("anthropic", response.model, usage) == pytest.approx(0.021582)


# --- Gemini ------------------------------------------------------------------------------------


def test_gemini_cached_and_thought_tokens(server: ReplayServer) -> None:
    # promptTokenCount 12013 (of which cachedContentTokenCount 11243), candidatesTokenCount 15,
    # thoughtsTokenCount 73, totalTokenCount 12101
    response = answered(
        server,
        "gemini",
        "gemini-2.5-flash",
        fixture_bytes("gemini/response_cached_content_tokens.json"),
    )
    usage = usage_of(response)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        12013,
        15 + 73,
        12101,
    )
    assert usage.prompt_tokens_details == PromptTokensDetails(cached_tokens=11243)
    assert usage.completion_tokens_details == CompletionTokensDetails(reasoning_tokens=73)
    # gemini-2.5-flash $0.30 / $2.50, thinking billed as output, and no cached price in the
    # table (so cached tokens at input):
    #   770 x 0.30 = 231;  11243 x 0.30 = 3372.9;  15 x 2.50 = 37.5;  73 x 2.50 = 182.5
    #   -> 3823.9 millionths
    assert parts(cost_breakdown("gemini", response.model, usage)) == pytest.approx(
        (231e-6, 3372.9e-6, 0.0, 37.5e-6, 182.5e-6)
    )
    assert cost_of("gemini", response.model, usage) == pytest.approx(0.0038239)
    # With a cached price set (a negotiated $0.075): 11243 x 0.075 = 843.225
    #   -> 231 + 843.225 + 37.5 + 182.5 = 1294.225 millionths
    pricing.set_price("gemini", "gemini-2.5-flash", input=0.3, output=2.5, cached_input=0.075)
    assert cost_of("gemini", response.model, usage) == pytest.approx(0.001294225)


def test_gemini_stream_usage_comes_once_at_the_end(server: ReplayServer) -> None:
    # Every event repeats usageMetadata with running counts; the last one (prompt 34,
    # candidates 469, thoughts 787, total 1290) is the call's.
    chat = rxllm.completion(
        "gemini",
        "gemini-2.5-pro",
        messages=USER,
        stream=True,
        api_key=API_KEY,
        api_base=server.base,
    )
    server.queue(
        Reply(body=fixture_bytes("gemini/stream_thinking_thought_signature.sse"), piece=211)
    )
    chunks = list(rxllm.streaming.iterate(chat))
    with_usage = [c.usage for c in chunks if c.usage is not None]
    assert len(with_usage) == 1
    (usage,) = with_usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (
        34,
        469 + 787,
        1290,
    )
    assert usage.reasoning_tokens == 787
    # gemini-2.5-pro $1.25 / $10:  34 x 1.25 = 42.5;  469 x 10 = 4690;  787 x 10 = 7870
    #   -> 12602.5 millionths
    assert parts(cost_breakdown("gemini", "gemini-2.5-pro", usage)) == pytest.approx(
        (42.5e-6, 0.0, 0.0, 4690e-6, 7870e-6)
    )


def test_gemini_3_thought_tokens_are_billed_as_output(server: ReplayServer) -> None:
    # prompt 9, candidates 23, thoughts 302, total 334 (the signature comes on an empty part)
    body = sse(
        *fixture_bytes("gemini/stream_text_thought_signature_empty_part.chunks.txt").splitlines(),
        done=False,
    )
    response = streamed(server, "gemini", "gemini-3-pro-preview", body)
    usage = usage_of(response)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (9, 325, 334)
    # gemini-3-pro-preview $2 / $12:  9 x 2 = 18;  325 x 12 = 3900  ->  3918 millionths
    assert cost_of("gemini", response.model, usage) == pytest.approx(0.003918)
    # A price for thinking apart, where a provider has one, bills the 302 at it instead:
    #   18 + 23 x 12 + 302 x 3.5 = 18 + 276 + 1057 = 1351 millionths
    pricing.set_price("gemini", "gemini-3-pro-preview", input=2.0, output=12.0, reasoning=3.5)
    assert cost_of("gemini", response.model, usage) == pytest.approx(0.001351)


# --- DeepSeek ----------------------------------------------------------------------------------


def test_deepseek_cache_hits_and_misses(server: ReplayServer) -> None:
    # prompt_tokens 339 = prompt_cache_hit_tokens 320 + prompt_cache_miss_tokens 19;
    # completion 83, of which reasoning 39
    body = sse(*fixture_bytes("deepseek/stream_tool_call.chunks.txt").splitlines())
    response = streamed(server, "deepseek", "deepseek-reasoner", body)
    usage = usage_of(response)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (339, 83, 422)
    assert (usage.cache_read_tokens, usage.uncached_prompt_tokens) == (320, 19)
    assert usage.reasoning_tokens == 39
    # deepseek-reasoner: miss $0.28, hit $0.028, output $0.42 (thinking included)
    #   19 x 0.28 = 5.32;  320 x 0.028 = 8.96;  44 x 0.42 = 18.48;  39 x 0.42 = 16.38
    #   -> 49.14 millionths
    assert parts(cost_breakdown("deepseek", response.model, usage)) == pytest.approx(
        (5.32e-6, 8.96e-6, 0.0, 18.48e-6, 16.38e-6)
    )
    assert cost_of("deepseek", response.model, usage) == pytest.approx(0.00004914)


def test_deepseek_hit_count_wins_over_prompt_tokens_details(server: ReplayServer) -> None:
    # DeepSeek bills prompt_cache_hit_tokens at the cache price: should its
    # prompt_tokens_details ever say otherwise, the hit count is the one kept.
    lines = fixture_bytes("deepseek/stream_tool_call.chunks.txt").splitlines()
    last = lines[-1].replace(
        b'"prompt_tokens_details":{"cached_tokens":320}',
        b'"prompt_tokens_details":{"cached_tokens":0}',
    )
    assert last != lines[-1]
    response = streamed(server, "deepseek", "deepseek-reasoner", sse(*lines[:-1], last))
    assert usage_of(response).cache_read_tokens == 320


def test_deepseek_reasoning_without_cache(server: ReplayServer) -> None:
    # prompt 6 (hit 0, miss 6), completion 212 of which reasoning 198
    response = streamed(
        server,
        "deepseek",
        "deepseek-reasoner",
        fixture_bytes("deepseek/stream_reasoning_usage.sse"),
    )
    usage = usage_of(response)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens) == (6, 212, 198)
    assert usage.cache_read_tokens == 0
    # 6 x 0.28 = 1.68;  212 x 0.42 = 89.04  ->  90.72 millionths
    assert cost_of("deepseek", response.model, usage) == pytest.approx(0.00009072)
    # Non-streamed: prompt 18, completion 345 (reasoning 315):
    #   18 x 0.28 = 5.04;  345 x 0.42 = 144.9  ->  149.94 millionths
    whole = answered(
        server, "deepseek", "deepseek-reasoner", fixture_bytes("deepseek/response_reasoning.json")
    )
    assert cost_of("deepseek", whole.model, usage_of(whole)) == pytest.approx(0.00014994)


# --- OpenAI ------------------------------------------------------------------------------------


def test_openai_usage_passes_through_and_prices_as_before(server: ReplayServer) -> None:
    # prompt 14, completion 30 (reasoning_tokens 0)
    response = streamed(server, "openai", "gpt-4o", fixture_bytes("openai/stream_text_usage.sse"))
    usage = usage_of(response)
    assert (usage.prompt_tokens, usage.completion_tokens) == (14, 30)
    assert usage.completion_tokens_details == CompletionTokensDetails(reasoning_tokens=0)
    # gpt-4o $2.50 / $10:  14 x 2.5 = 35;  30 x 10 = 300  ->  335 millionths
    assert cost_of("openai", response.model, usage) == pytest.approx(0.000335)
    assert cost_of("openai", response.model, usage) == pricing.calculate_cost(
        "openai", response.model, 14, 30
    )


def test_the_json_an_openai_client_reads() -> None:
    """rxllm's usage JSON keeps OpenAI's shape: its fields mean what OpenAI's mean, and the
    cache-write counts are extra fields an OpenAI client ignores."""
    openai = pytest.importorskip("openai")
    usage = Usage(
        prompt_tokens=1169,
        completion_tokens=201,
        total_tokens=1370,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=4, cache_creation_tokens=1165),
    )
    data = json.loads(msgspec.json.encode(usage))
    assert data == {
        "prompt_tokens": 1169,
        "completion_tokens": 201,
        "total_tokens": 1370,
        "prompt_tokens_details": {"cached_tokens": 4, "cache_creation_tokens": 1165},
        "completion_tokens_details": None,
    }
    parsed = openai.types.CompletionUsage.model_validate(data)
    assert (parsed.prompt_tokens, parsed.prompt_tokens_details.cached_tokens) == (1169, 4)


# --- where usage is billed ---------------------------------------------------------------------


def test_stream_metrics_bill_every_part(server: ReplayServer) -> None:
    server.queue(Reply(body=fixture_bytes("anthropic/stream_cache_creation.sse")))
    chat = rxllm.completion(
        "anthropic",
        "claude-3-5-sonnet-20240620",
        messages=USER,
        stream=True,
        api_key=API_KEY,
        api_base=server.base,
    )
    measured = chat.pipe(metrics()).run()
    assert measured.prompt_tokens == 1169
    assert measured.cost == pytest.approx(0.00739575)  # as worked out above


def test_the_gateway_bills_each_part() -> None:
    usage = Usage(
        prompt_tokens=4 + 1165,
        completion_tokens=201,
        total_tokens=1370,
        prompt_tokens_details=PromptTokensDetails(cache_creation_tokens=1165),
    )
    # the cache-write transcript's usage: 7395.75 millionths, as worked out above
    assert _cost("anthropic", "claude-3-5-sonnet-20240620", usage) == pytest.approx(0.00739575)
    # an OpenAI-compatible server answering for gpt-4o is priced as gpt-4o, part by part:
    #   (100 - 60) x 2.5 = 100;  60 x 1.25 = 75;  10 x 10 = 100  ->  275 millionths
    cached = Usage(
        prompt_tokens=100,
        completion_tokens=10,
        total_tokens=110,
        prompt_tokens_details=PromptTokensDetails(cached_tokens=60),
    )
    assert _cost("openai_compatible", "gpt-4o", cached) == pytest.approx(0.000275)


def test_the_anthropic_wire_tells_cache_writes_apart() -> None:
    usage = Usage(
        prompt_tokens=10 + 500 + 1000,
        completion_tokens=20,
        total_tokens=1530,
        prompt_tokens_details=PromptTokensDetails(
            cached_tokens=1000, cache_creation_tokens=500, cache_creation_1h_tokens=200
        ),
    )
    out: dict[str, Any] = json.loads(msgspec.json.encode(_usage_out(usage)))
    assert out == {
        "input_tokens": 10,
        "output_tokens": 20,
        "cache_creation_input_tokens": 500,
        "cache_read_input_tokens": 1000,
        "cache_creation": {"ephemeral_5m_input_tokens": 300, "ephemeral_1h_input_tokens": 200},
    }


def test_calculate_cost_keeps_its_signature_and_clamps_parts() -> None:
    # cached beyond the prompt is clamped to it; gpt-4o 1M prompt all cached: 1M x 1.25
    assert pricing.calculate_cost("openai", "gpt-4o", 1_000_000, 0, cached_tokens=2_000_000) == 1.25
    # writes cannot exceed what the reads left: 10 prompt, 8 read, 5 written -> 2 written
    #   claude-sonnet-4-5: 8 x 0.3 + 2 x 3.75 = 2.4 + 7.5 = 9.9 millionths
    assert pricing.calculate_cost(
        "anthropic", "claude-sonnet-4-5", 10, 0, cached_tokens=8, cache_creation_tokens=5
    ) == pytest.approx(9.9e-6)
    assert pricing.calculate_cost("openai", "gpt-4o", 10, 10, reasoning_tokens=99) == pytest.approx(
        (10 * 2.5 + 10 * 10) / 1e6
    )
    with pytest.raises(ValueError):
        pricing.set_price("openai", "x", input=1, output=1, cache_write=-1)
