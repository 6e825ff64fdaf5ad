"""Multi-turn round trips on recorded transcripts: an answer is collected (streamed or not,
directly or through the router), becomes the assistant message of the next request, and that
request - as the loopback server received it - carries what each API requires back: Anthropic's
signed (and redacted) thinking blocks, server-tool blocks, cited text and compaction blocks;
Gemini's thought signatures on the parts that had them; DeepSeek's reasoning on tool calls.

Where the recording holds the next request too (a real client's, which the provider accepted),
rxllm's next request is compared with it; elsewhere with the shape the provider documents,
built here straight from the transcript's events (independently of rxllm's parser).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

import rxllm
from rxllm._api import prepare
from rxllm.router import Router
from rxllm.streaming import collect_sync
from rxllm.types import ChatResponse

from .conftest import API_KEY, fixture_bytes
from .server import ReplayServer, Reply, sse

# --- how a turn is sent: directly or through the router, streamed or not ----------------------

Ask = Callable[..., ChatResponse]


def _direct(server: ReplayServer, provider: str, model: str) -> Ask:
    def ask(messages: list[Any], *, stream: bool, **params: Any) -> ChatResponse:
        if stream:
            chat = rxllm.completion(
                provider,
                model,
                messages=messages,
                stream=True,
                api_key=API_KEY,
                api_base=server.base,
                **params,
            )
            return collect_sync(chat, timeout=10)
        return rxllm.completion(
            provider, model, messages=messages, api_key=API_KEY, api_base=server.base, **params
        )

    return ask


def _routed(server: ReplayServer, provider: str, model: str) -> Ask:
    router = Router()
    router.register("main", provider=provider, model=model, api_key=API_KEY, api_base=server.base)

    def ask(messages: list[Any], *, stream: bool, **params: Any) -> ChatResponse:
        if stream:
            return collect_sync(
                router.completion("main", messages, stream=True, **params), timeout=10
            )
        return router.completion("main", messages, **params)

    return ask


WAYS = {"direct": _direct, "router": _routed}


def json_reply(name: str) -> Reply:
    return Reply(body=fixture_bytes(name), content_type="application/json")


def stream_reply(name: str) -> Reply:
    return Reply(body=fixture_bytes(name), piece=251)


# --- the documented shape, straight from an Anthropic transcript -------------------------------


def anthropic_blocks(body: bytes) -> list[dict[str, Any]]:
    """The content blocks of a recorded Anthropic stream, assembled as the Messages API
    documents them (and as its non-streamed answer carries them): each ``content_block_start``
    block with its deltas applied."""
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, str] = {}
    for line in body.decode().splitlines():
        if not line.startswith("data: "):
            continue
        event = json.loads(line[6:])
        if event["type"] == "content_block_start":
            blocks[event["index"]] = dict(event["content_block"])
        elif event["type"] == "content_block_delta":
            block, delta = blocks[event["index"]], event["delta"]
            kind = delta["type"]
            if kind == "text_delta":
                block["text"] += delta["text"]
            elif kind == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif kind == "signature_delta":
                block["signature"] += delta["signature"]
            elif kind == "citations_delta":
                block.setdefault("citations", []).append(delta["citation"])
            elif kind == "input_json_delta":
                partial[event["index"]] = partial.get(event["index"], "") + delta["partial_json"]
            elif kind == "compaction_delta":
                block["content"] = (block.get("content") or "") + delta["content"]
    for index, text in partial.items():
        blocks[index]["input"] = json.loads(text)
    result = []
    for index in sorted(blocks):
        block = blocks[index]
        if block["type"] == "text" and not block.get("citations"):
            block.pop("citations", None)  # an empty list: the block cites nothing
        result.append(block)
    return result


def anthropic_message(body: bytes, stop_reason: str = "end_turn") -> bytes:
    """A recorded stream's answer as a non-streamed Messages response (its ``message_start``
    message with the assembled content and the final usage)."""
    message: dict[str, Any] = {}
    usage: dict[str, Any] = {}
    for line in body.decode().splitlines():
        if line.startswith("data: "):
            event = json.loads(line[6:])
            if event["type"] == "message_start":
                message = event["message"]
            elif event["type"] == "message_delta":
                usage = event["usage"]
    return json.dumps(
        {**message, "content": anthropic_blocks(body), "stop_reason": stop_reason, "usage": usage}
    ).encode()


# --- Anthropic: thinking + a client tool, the recorded two-request loop ---------------------------


@pytest.mark.parametrize("way", sorted(WAYS))
def test_anthropic_thinking_tool_loop_sends_what_the_recording_sent(
    server: ReplayServer, way: str
) -> None:
    """Turn 1 answers with a signed thinking block, text and a tool call; turn 2 sends them
    back unchanged with the tool's result. The recording holds both requests as a real client
    sent them (Anthropic answered the second with 200)."""
    first_request = json.loads(fixture_bytes("anthropic/request_thinking_tool_use.json"))
    next_request = json.loads(fixture_bytes("anthropic/request_thinking_tool_result.json"))
    ask = WAYS[way](server, "anthropic", "claude-sonnet-4-0")
    tools = [
        {
            "type": "function",
            "function": {"name": "get_user_country", "parameters": t["input_schema"]},
        }
        for t in first_request["tools"]
    ]
    params = {"tools": tools, "tool_choice": "auto", "thinking": first_request["thinking"]}
    messages: list[Any] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": first_request["messages"][0]["content"][0]["text"]}
            ],
        }
    ]
    server.queue(json_reply("anthropic/response_thinking_tool_use.json"))
    first = ask(messages, stream=False, max_tokens=4096, **params)
    (call,) = first.tool_calls
    assert (call.id, call.function.name, first.finish_reason) == (
        "toolu_01YGzqpRE16Vricda3Aqcejo",
        "get_user_country",
        "tool_calls",
    )
    assert first.message is not None
    messages += [first.message, {"role": "tool", "tool_call_id": call.id, "content": "Mexico"}]
    server.queue(json_reply("anthropic/response_thinking_tool_result.json"))
    second = ask(messages, stream=False, max_tokens=4096, **params)
    assert second.text.startswith("Based on the information that you're from Mexico")

    sent_first, sent_next = (r.json() for r in server.requests)
    assert sent_first["messages"] == first_request["messages"]
    assert sent_first["thinking"] == first_request["thinking"]
    assert sent_first["tool_choice"] == first_request["tool_choice"]
    # The assistant turn goes back exactly as the recorded client sent it: the thinking block
    # with its signature first, then the text, then the tool_use.
    assert sent_next["messages"][:2] == next_request["messages"][:2]
    (result,) = sent_next["messages"][2]["content"]
    recorded = dict(next_request["messages"][2]["content"][0])
    assert recorded.pop("is_error") is False  # optional, false by default: rxllm leaves it out
    assert (sent_next["messages"][2]["role"], result) == ("user", recorded)


def test_anthropic_streamed_thinking_goes_back_signed(server: ReplayServer) -> None:
    body = fixture_bytes("anthropic/stream_thinking.sse")
    thinking, text = anthropic_blocks(body)
    ask = _direct(server, "anthropic", "claude-sonnet-4-0")
    question = [{"role": "user", "content": "How do I cross the street?"}]
    server.queue(Reply(body=body, piece=97))
    first = ask(question, stream=True, reasoning_effort="medium")
    assert first.reasoning_content == thinking["thinking"]
    server.queue(stream_reply("anthropic/stream_text.sse"))
    ask([*question, first.message, {"role": "user", "content": "At night?"}], stream=True)
    assert server.requests[1].json()["messages"][1] == {
        "role": "assistant",
        "content": [
            {
                "type": "thinking",
                "thinking": thinking["thinking"],
                "signature": thinking["signature"],
            },
            {"type": "text", "text": text["text"]},
        ],
    }


@pytest.mark.parametrize("way", sorted(WAYS))
def test_anthropic_redacted_thinking_goes_back_whole(server: ReplayServer, way: str) -> None:
    body = fixture_bytes("anthropic/stream_redacted_thinking.sse")
    redacted_1, redacted_2, text = anthropic_blocks(body)
    assert redacted_1["type"] == redacted_2["type"] == "redacted_thinking"
    ask = WAYS[way](server, "anthropic", "claude-3-7-sonnet-20250219")
    question = [{"role": "user", "content": "ANTHROPIC_MAGIC_STRING_TRIGGER_REDACTED_THINKING"}]
    server.queue(Reply(body=body, piece=301))
    first = ask(question, stream=True)
    assert first.reasoning_content is None  # nothing readable
    server.queue(stream_reply("anthropic/stream_text.sse"))
    ask([*question, first.message, {"role": "user", "content": "What was that?"}], stream=True)
    assert server.requests[1].json()["messages"][1]["content"] == [
        {"type": "redacted_thinking", "data": redacted_1["data"]},
        {"type": "redacted_thinking", "data": redacted_2["data"]},
        {"type": "text", "text": text["text"]},
    ]


# --- Anthropic: server tools, their results and citations ---------------------------------------

CITED = [
    "anthropic/stream_web_search_thinking_citations.sse",
    "anthropic/stream_web_search_citations.sse",
]


@pytest.mark.parametrize("way", sorted(WAYS))
@pytest.mark.parametrize("name", CITED)
def test_anthropic_web_search_answer_goes_back_as_it_came(
    server: ReplayServer, name: str, way: str
) -> None:
    """Web search results and the citations of the text must go back in later turns
    (``encrypted_content``, ``encrypted_index``), in their order: the whole content does."""
    body = fixture_bytes(name)
    documented = anthropic_blocks(body)
    kinds = [b["type"] for b in documented]
    assert "server_tool_use" in kinds and "web_search_tool_result" in kinds
    citations = [c for b in documented for c in b.get("citations", [])]
    assert len(citations) >= 7 and all(c["encrypted_index"] for c in citations)

    ask = WAYS[way](server, "anthropic", "claude-sonnet-4-0")
    question = [{"role": "user", "content": "What is the weather in San Francisco today?"}]
    server.queue(Reply(body=body, piece=509))
    first = ask(question, stream=True)
    message = first.message
    assert message is not None and message.provider_fields is not None
    # Subscribers see every citation as it streams; the text is the text blocks' text.
    assert message.provider_fields["citations"] == citations
    assert first.text == "".join(b["text"] for b in documented if b["type"] == "text")
    assert first.tool_calls == []  # server tools are not the caller's to run

    server.queue(stream_reply("anthropic/stream_text.sse"))
    ask([*question, message, {"role": "user", "content": "And tomorrow?"}], stream=True)
    sent = server.requests[1].json()["messages"]
    assert sent[1] == {"role": "assistant", "content": documented}
    assert sent[2] == {"role": "user", "content": "And tomorrow?"}


def test_anthropic_non_streamed_web_search_answer_goes_back_as_it_came(
    server: ReplayServer,
) -> None:
    body = fixture_bytes("anthropic/stream_web_search_thinking_citations.sse")
    documented = anthropic_blocks(body)
    ask = _direct(server, "anthropic", "claude-sonnet-4-0")
    question = [{"role": "user", "content": "What is the weather in San Francisco today?"}]
    server.queue(Reply(body=anthropic_message(body), content_type="application/json"))
    first = ask(question, stream=False)
    assert first.message is not None and first.message.provider_fields is not None
    fields = first.message.provider_fields
    assert fields["thinking_blocks"] == [documented[0]]
    assert len(fields["citations"]) == 7
    server.queue(json_reply("anthropic/response_text.json"))
    ask([*question, first.message, {"role": "user", "content": "Thanks"}], stream=False)
    assert server.requests[1].json()["messages"][1]["content"] == documented


def test_an_edited_answer_is_rebuilt_from_its_fields(server: ReplayServer) -> None:
    """The kept blocks go back only while they still say what the message says."""
    body = fixture_bytes("anthropic/stream_web_search_citations.sse")
    ask = _direct(server, "anthropic", "claude-sonnet-4-0")
    question = [{"role": "user", "content": "News?"}]
    server.queue(Reply(body=body))
    message = ask(question, stream=True).message
    assert message is not None
    changed = msgspec.structs.replace(message, content="In short: busy day.")
    server.queue(stream_reply("anthropic/stream_text.sse"))
    ask([*question, changed, {"role": "user", "content": "More?"}], stream=True)
    assert server.requests[1].json()["messages"][1] == {
        "role": "assistant",
        "content": "In short: busy day.",
    }


def test_anthropic_compaction_block_goes_back_first(server: ReplayServer) -> None:
    """The API drops what comes before a compaction block and wants the block itself back."""
    body = fixture_bytes("anthropic/stream_compaction_cache_read.sse")
    compaction, text = anthropic_blocks(body)
    assert compaction["type"] == "compaction" and compaction["content"].startswith("The user")
    ask = _direct(server, "anthropic", "claude-sonnet-4-6")
    question = [{"role": "user", "content": "Now say hello."}]
    server.queue(Reply(body=body))
    first = ask(question, stream=True)
    assert first.text == "Hello! 👋"
    server.queue(stream_reply("anthropic/stream_text.sse"))
    ask([*question, first.message, {"role": "user", "content": "Again"}], stream=True)
    assert server.requests[1].json()["messages"][1]["content"] == [compaction, text]


# --- Anthropic: prompt caching breakpoints ---------------------------------------------------------


def test_cache_control_reaches_the_blocks_anthropic_reads_it_on(server: ReplayServer) -> None:
    long_document = "OpenLLMetry article text. " * 200
    messages = [
        {
            "role": "system",
            "content": [
                {"type": "text", "text": "You summarise articles."},
                {"type": "text", "text": long_document, "cache_control": {"type": "ephemeral"}},
            ],
        },
        {
            "role": "user",
            "content": "Summarise them.",
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        },
    ]
    tool = {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
        "cache_control": {"type": "ephemeral"},
    }
    ask = _direct(server, "anthropic", "claude-3-5-sonnet-20240620")
    server.queue(stream_reply("anthropic/stream_cache_creation.sse"))
    first = ask(messages, stream=True, tools=[tool])
    sent = server.requests[0].json()
    assert sent["system"] == [
        {"type": "text", "text": "You summarise articles."},
        {"type": "text", "text": long_document, "cache_control": {"type": "ephemeral"}},
    ]
    assert sent["messages"] == [
        {
            "role": "user",
            "content": [
                {
                    "type": "text",
                    "text": "Summarise them.",
                    "cache_control": {"type": "ephemeral", "ttl": "1h"},
                }
            ],
        }
    ]
    assert sent["tools"][0]["cache_control"] == {"type": "ephemeral"}
    usage = first.usage
    assert usage is not None and usage.cache_write_tokens == 1165
    # Next turn: the cached prefix is sent again, breakpoints and all.
    server.queue(stream_reply("anthropic/stream_cache_read.sse"))
    again = ask(
        [*messages, first.message, {"role": "user", "content": "Shorter."}],
        stream=True,
        tools=[tool],
    )
    assert server.requests[1].json()["system"] == sent["system"]
    assert again.usage is not None and again.usage.cache_read_tokens == 1165


def test_other_providers_leave_cache_control_out() -> None:
    messages = [
        {
            "role": "system",
            "content": [
                {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}
            ],
        },
        {"role": "user", "content": "hi", "cache_control": {"type": "ephemeral"}},
    ]
    for provider, model in (
        ("openai", "gpt-4o"),
        ("deepseek", "deepseek-chat"),
        ("gemini", "gemini-2.5-flash"),
    ):
        _, _, request = prepare(provider, model, messages=messages, stream=False, api_key=API_KEY)
        assert request.body is not None and b"cache_control" not in request.body, provider


# --- Gemini: thought signatures ------------------------------------------------------------------


@pytest.mark.parametrize("way", sorted(WAYS))
def test_gemini_function_call_signature_loop_sends_what_the_recording_sent(
    server: ReplayServer, way: str
) -> None:
    """Gemini 3 refuses a function call sent back without its signature. The recording holds
    the next request as a real client sent it (Gemini answered it, streamed)."""
    recorded = json.loads(fixture_bytes("gemini/request_function_response_thought_signature.json"))
    ask = WAYS[way](server, "gemini", "gemini-3-pro-preview")
    tools = [
        {
            "type": "function",
            "function": {"name": "get_country", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    question = [{"role": "user", "content": recorded["contents"][0]["parts"][0]["text"]}]
    server.queue(stream_reply("gemini/stream_function_call_thought_signature.sse"))
    first = ask(question, stream=True, tools=tools)
    (call,) = first.tool_calls
    assert first.message is not None
    server.queue(stream_reply("gemini/stream_after_function_response.sse"))
    second = ask(
        [*question, first.message, {"role": "tool", "tool_call_id": call.id, "content": "Mexico"}],
        stream=True,
        tools=tools,
    )
    assert second.text == "The capital of Mexico is Mexico City."
    assert second.usage is not None and second.usage.prompt_tokens == 257  # the final count

    sent = server.requests[1].json()["contents"]
    assert [c["role"] for c in sent] == [c["role"] for c in recorded["contents"]]
    assert sent[0] == recorded["contents"][0]
    (ours,), (theirs,) = sent[1]["parts"], recorded["contents"][1]["parts"]
    assert ours["functionCall"] == {"name": "get_country", "args": {}}
    assert theirs["functionCall"]["name"] == "get_country" and theirs["functionCall"]["args"] == {}
    # The same signature: sent as received (the recorded client re-encoded it URL-safe).
    assert ours["thoughtSignature"] == call.provider_fields["thought_signature"]  # type: ignore[index]
    assert base64.b64decode(ours["thoughtSignature"]) == base64.urlsafe_b64decode(
        theirs["thoughtSignature"]
    )
    (result,) = sent[2]["parts"]
    assert result == {"functionResponse": {"name": "get_country", "response": {"result": "Mexico"}}}


@pytest.mark.parametrize("way", sorted(WAYS))
def test_gemini_signed_answer_text_goes_back_with_its_signature(
    server: ReplayServer, way: str
) -> None:
    """Gemini 2.5 signs the first part of the answer; thought summaries are not sent back."""
    body = fixture_bytes("gemini/stream_thinking_thought_signature.sse")
    events = [
        json.loads(line[6:]) for line in body.decode().split("\r\n") if line.startswith("data: ")
    ]
    parts = [p for e in events for p in e["candidates"][0]["content"]["parts"]]
    (signature,) = [p["thoughtSignature"] for p in parts if "thoughtSignature" in p]
    answer = "".join(p["text"] for p in parts if not p.get("thought"))
    ask = WAYS[way](server, "gemini", "gemini-2.5-pro")
    question = [{"role": "user", "content": "How do I cross the street?"}]
    server.queue(Reply(body=body, piece=401))
    first = ask(question, stream=True, reasoning_effort="medium")
    assert first.text == answer and first.reasoning_content
    server.queue(stream_reply("gemini/stream_text.sse"))
    ask([*question, first.message, {"role": "user", "content": "At night?"}], stream=True)
    assert server.requests[1].json()["contents"][1] == {
        "role": "model",
        "parts": [{"text": answer, "thoughtSignature": signature}],
    }


def test_gemini_signature_on_an_empty_last_part_is_kept(server: ReplayServer) -> None:
    """Gemini 3 may send the signature alone, on an empty part after the text: it still goes
    back, on the answer's text (an empty text part would be refused)."""
    lines = fixture_bytes("gemini/stream_text_thought_signature_empty_part.chunks.txt").splitlines()
    last = json.loads(lines[-1])["candidates"][0]["content"]["parts"]
    assert last[0]["text"] == "" and last[0]["thoughtSignature"]
    ask = _direct(server, "gemini", "gemini-3-pro-preview")
    question = [{"role": "user", "content": "How many r's are in strawberry?"}]
    server.queue(Reply(body=sse(*lines, done=False)))
    first = ask(question, stream=True)
    server.queue(stream_reply("gemini/stream_text.sse"))
    ask([*question, first.message, {"role": "user", "content": "Spell it."}], stream=True)
    assert server.requests[1].json()["contents"][1] == {
        "role": "model",
        "parts": [{"text": first.text, "thoughtSignature": last[0]["thoughtSignature"]}],
    }


def test_gemini_non_streamed_function_call_goes_back_signed(server: ReplayServer) -> None:
    recorded = json.loads(fixture_bytes("gemini/response_function_call.json"))
    (signed,) = [p for p in recorded["candidates"][0]["content"]["parts"] if "functionCall" in p]
    ask = _direct(server, "gemini", "gemini-2.5-pro")
    question = [{"role": "user", "content": "How long until New Year?"}]
    server.queue(json_reply("gemini/response_function_call.json"))
    first = ask(question, stream=False)
    (call,) = first.tool_calls
    server.queue(json_reply("gemini/response_text.json"))
    ask(
        [
            *question,
            first.message,
            {"role": "tool", "tool_call_id": call.id, "content": '{"now": "2025-12-30"}'},
        ],
        stream=False,
    )
    sent = server.requests[1].json()["contents"]
    assert sent[1] == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "now", "args": signed["functionCall"]["args"]},
                "thoughtSignature": signed["thoughtSignature"],
            }
        ],
    }
    assert sent[2]["parts"] == [
        {"functionResponse": {"name": "now", "response": {"now": "2025-12-30"}}}
    ]


# --- DeepSeek: reasoning on tool calls ------------------------------------------------------------


@pytest.mark.parametrize("way", sorted(WAYS))
def test_deepseek_reasoning_of_a_tool_call_goes_back(server: ReplayServer, way: str) -> None:
    """DeepSeek's thinking mode answers 400 unless an assistant turn that called tools comes
    back with its ``reasoning_content``."""
    lines = fixture_bytes("deepseek/stream_tool_call.chunks.txt").splitlines()
    ask = WAYS[way](server, "deepseek", "deepseek-reasoner")
    question = [{"role": "user", "content": "What's the weather?"}]
    server.queue(Reply(body=sse(*lines)))
    first = ask(question, stream=True)
    (call,) = first.tool_calls
    assert first.reasoning_content
    server.queue(stream_reply("deepseek/stream_reasoning_usage.sse"))
    ask(
        [*question, first.message, {"role": "tool", "tool_call_id": call.id, "content": "sunny"}],
        stream=True,
    )
    sent = server.requests[1].json()["messages"][1]
    assert sent["reasoning_content"] == first.reasoning_content
    assert sent["tool_calls"][0]["id"] == call.id
    assert "provider_fields" not in sent
