"""Structured output as a stream: ``response_format=T`` (a msgspec Struct type) sent in each
provider's own form, ``ops.partial_object`` / ``ops.partial_tool_calls`` over recorded
transcripts, the incremental JSON parser (``rxllm/_partial_json.py``) against msgspec on any JSON
cut anywhere, its linear work, and the typed errors."""

from __future__ import annotations

import itertools
import json
import pickle
from collections.abc import Iterator
from typing import Any, Literal

import msgspec
import pytest
import reactivex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reactivex import operators as rx_ops
from reactivex.subject import Subject

import rxllm
from rxllm import _partial_json, errors, ops
from rxllm._api import prepare
from rxllm._partial_json import NOTHING, JSONSyntaxError, PartialJSON
from rxllm._schema import response_format, strict_compatible, struct_schema
from rxllm.types import (
    ChatChunk,
    Delta,
    FunctionCallDelta,
    StreamChoice,
    ToolCallDelta,
)

from .conftest import API_KEY, fixture_bytes
from .server import ReplayServer, Reply, sse

USER = [{"role": "user", "content": "Where?"}]


class City(msgspec.Struct):
    city: str
    country: str


class Location(msgspec.Struct):
    """Where, and how warm."""

    city: str
    temperature: int
    units: Literal["c", "f"]


class Element(msgspec.Struct):
    location: str
    temperature: int
    condition: str


class Elements(msgspec.Struct):
    elements: list[Element]


class Node(msgspec.Struct):
    name: str
    children: list[Node]
    properties: dict[str, int]  # a field named like a keyword, and a free-form dict


class Recipe(msgspec.Struct):
    title: str
    minutes: int
    steps: list[str]
    notes: str | None = None  # a default: not strict-compatible


def stream(
    server: ReplayServer, provider: str, model: str, body: bytes, **params: Any
) -> rxllm.ChatStream:
    server.queue(Reply(body=body, piece=29))
    base = server.base + ("/v1" if provider == "openai" else "")
    return rxllm.completion(
        provider, model, messages=USER, stream=True, api_key=API_KEY, api_base=base, **params
    )


def emitted(observable: Any) -> list[Any]:
    result: list[Any] = observable.pipe(rx_ops.to_list()).run()
    return result


def failure(observable: Any) -> tuple[list[Any], Exception]:
    """The items an observable emitted before it failed, and its error."""
    notes = observable.pipe(rx_ops.materialize(), rx_ops.to_list()).run()
    *items, end = notes
    assert end.kind == "E", notes
    return [note.value for note in items], end.exception


def sent_body(provider: str, model: str, **params: Any) -> dict[str, Any]:
    _, _, request = prepare(
        provider,
        model,
        messages=USER,
        stream=True,
        api_key=API_KEY,
        api_base="http://127.0.0.1:9",
        params=params,
    )
    assert request.body is not None
    body: dict[str, Any] = json.loads(request.body)
    return body


# --- the request: a Struct type in each provider's own form ----------------------------------

LOCATION_SCHEMA = {
    "title": "Location",
    "description": "Where, and how warm.",
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "temperature": {"type": "integer"},
        "units": {"enum": ["c", "f"], "type": "string"},
    },
    "required": ["city", "temperature", "units"],
    "additionalProperties": False,
}


def test_a_struct_becomes_openais_json_schema_with_strict() -> None:
    body = sent_body("openai", "gpt-4o", response_format=Location)
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "Location", "schema": LOCATION_SCHEMA, "strict": True},
    }


def test_a_struct_with_defaults_is_sent_without_strict() -> None:
    spec = response_format(Recipe)["json_schema"]
    assert spec["strict"] is False
    assert spec["schema"]["required"] == ["title", "minutes", "steps"]
    assert spec["schema"]["additionalProperties"] is False


def test_compatible_servers_inherit_the_translation() -> None:
    for provider, model in (("mistral", "mistral-small"), ("openrouter", "openai/gpt-4o")):
        body = sent_body(provider, model, response_format=Location)
        assert body["response_format"]["json_schema"]["schema"] == LOCATION_SCHEMA


def test_gemini_gets_response_mime_type_and_json_schema() -> None:
    body = sent_body("gemini", "gemini-2.5-flash", response_format=Location)
    assert body["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": LOCATION_SCHEMA,
    }


def test_ollama_gets_the_schema_as_format() -> None:
    assert sent_body("ollama", "llama3.2", response_format=Location)["format"] == LOCATION_SCHEMA


def test_anthropic_gets_a_forced_tool() -> None:
    body = sent_body("anthropic", "claude-haiku-4-5", response_format=Location)
    assert body["tools"] == [
        {
            "name": "Location",
            "description": "Give your answer by calling this tool: its input is the answer.",
            "input_schema": LOCATION_SCHEMA,
        }
    ]
    assert body["tool_choice"] == {
        "type": "tool",
        "name": "Location",
        "disable_parallel_tool_use": True,
    }
    assert "output_config" not in body and "response_format" not in body


@pytest.mark.parametrize(
    "params",
    [
        {"reasoning_effort": "low"},
        {"thinking": {"type": "adaptive"}},
        {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]},
        {"tool_choice": "auto"},
    ],
)
def test_anthropic_uses_output_config_where_a_forced_tool_cannot_go(
    params: dict[str, Any],
) -> None:
    body = sent_body("anthropic", "claude-sonnet-4-5", response_format=Location, **params)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": LOCATION_SCHEMA}}
    assert body.get("tool_choice", {}).get("name") != "Location"
    assert all(tool.get("name") != "Location" for tool in body.get("tools", []))


def test_anthropic_takes_a_dict_json_schema_too_and_refuses_json_object() -> None:
    schema = {"type": "array", "items": {"type": "integer"}}
    body = sent_body(
        "anthropic",
        "claude-sonnet-4-5",
        response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": schema}},
    )
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    with pytest.raises(errors.UnsupportedParamsError) as caught:
        sent_body("anthropic", "claude-sonnet-4-5", response_format={"type": "json_object"})
    assert caught.value.param == "response_format"
    assert "tools" not in sent_body(
        "anthropic", "claude-sonnet-4-5", response_format={"type": "text"}
    )


def test_dict_response_formats_pass_as_before() -> None:
    given_format = {"type": "json_object"}
    assert sent_body("openai", "gpt-4o", response_format=given_format)["response_format"] == {
        "type": "json_object"
    }
    assert sent_body("ollama", "llama3.2", response_format=given_format)["format"] == "json"


@pytest.mark.parametrize("bad", [Location(city="x", temperature=1, units="c"), "json", int])
def test_a_response_format_that_is_neither_dict_nor_struct_type_fails_before_io(
    bad: Any,
) -> None:
    with pytest.raises(errors.BadRequestError, match=r"a dict or a msgspec\.Struct type"):
        sent_body("openai", "gpt-4o", response_format=bad)


def test_the_schema_inlines_the_root_and_keeps_recursion() -> None:
    schema = struct_schema(Node)
    assert schema["type"] == "object" and "$ref" not in schema and "$defs" not in schema
    assert schema["properties"]["children"] == {"type": "array", "items": {"$ref": "#"}}
    assert schema["properties"]["properties"] == {
        "type": "object",
        "additionalProperties": {"type": "integer"},
    }
    assert "additionalProperties" not in schema["properties"]  # property names left alone
    assert not strict_compatible(schema)  # a free-form dict
    nested = struct_schema(Elements)
    assert nested["properties"]["elements"]["items"] == {"$ref": "#/$defs/Element"}
    assert nested["$defs"]["Element"]["additionalProperties"] is False
    assert strict_compatible(nested)


# --- real transcripts --------------------------------------------------------------------------


def test_gemini_structured_stream(server: ReplayServer) -> None:
    chat = stream(
        server,
        "gemini",
        "gemini-3-flash-preview",
        fixture_bytes("gemini/stream_structured_output.sse"),
        response_format=City,
    )
    values = emitted(chat.pipe(ops.partial_object(City)))
    assert values == [{"city": "Mexico"}, City(city="Mexico City", country="Mexico")]
    assert server.requests[0].json()["generationConfig"]["responseJsonSchema"]["required"] == [
        "city",
        "country",
    ]


def test_anthropic_output_config_stream_in_four_deltas(server: ReplayServer) -> None:
    chat = stream(
        server,
        "anthropic",
        "claude-sonnet-4-5",
        fixture_bytes("anthropic/stream_structured_output_json.sse"),
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "ids",
                "schema": {"type": "array", "items": {"type": "integer"}},
            },
        },
    )
    # '[' shows an empty list, '12' nothing (a number may go on), '345,' the number, '67890]'
    # completes the value: the strict one comes at the end.
    assert emitted(chat.pipe(ops.partial_object(list[int]))) == [[], [12345], [12345, 67890]]


def test_anthropic_forced_tool_reads_as_text(server: ReplayServer) -> None:
    schema = struct_schema(Elements)
    chat = stream(
        server,
        "anthropic",
        "claude-haiku-4-5",
        sse(
            *fixture_bytes("anthropic/stream_forced_tool_json.chunks.txt").splitlines(), done=False
        ),
        response_format={"type": "json_schema", "json_schema": {"name": "json", "schema": schema}},
    )
    values = emitted(chat.pipe(ops.partial_object(Elements)))
    element = {"location": "San Francisco", "temperature": 58, "condition": "sunny"}
    assert values == [
        {"elements": [element]},
        Elements(elements=[Element(**element)]),
    ]
    assert server.requests[0].json()["tool_choice"]["name"] == "json"
    response = chat.pipe(ops.collect()).run()  # the same stream, replayed
    assert response.text == '{"elements": [{"location": "San Francisco", "temperature": 58, "condition": "sunny"}]}'  # fmt: skip
    assert response.tool_calls == []
    assert (response.finish_reason, response.choices[0].native_finish_reason) == (
        "stop",
        "tool_use",
    )


def test_anthropic_forced_tool_answer_without_streaming() -> None:
    call, spec, _ = prepare(
        "anthropic",
        "claude-haiku-4-5",
        messages=USER,
        stream=False,
        api_key=API_KEY,
        params={"response_format": Elements},
    )
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "Elements", "input": {"elements": []}}
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 1, "output_tokens": 2},
    }
    response = spec.parse_response(json.dumps(body).encode(), call)
    assert response.text == '{"elements": []}' or json.loads(response.text) == {"elements": []}
    assert response.tool_calls == [] and response.finish_reason == "stop"


def test_openai_structured_stream_in_fourteen_deltas(server: ReplayServer) -> None:
    chat = stream(
        server,
        "openai",
        "gpt-4o",
        fixture_bytes("openai/stream_structured_output_json_schema.sse"),
        response_format=Location,
    )
    values = emitted(chat.pipe(ops.partial_object(Location)))
    assert values == [
        {},
        {"city": ""},
        {"city": "San"},
        {"city": "San Francisco"},
        {"city": "San Francisco", "temperature": 61},
        {"city": "San Francisco", "temperature": 61, "units": ""},
        {"city": "San Francisco", "temperature": 61, "units": "f"},
        Location(city="San Francisco", temperature=61, units="f"),
    ]
    sent = server.requests[0].json()["response_format"]
    assert sent["json_schema"]["strict"] is True


def test_openai_tool_arguments_as_they_stream(server: ReplayServer) -> None:
    class GetWeatherArgs(msgspec.Struct):
        city: str
        country: str
        units: str

    class StockPrice(msgspec.Struct):
        ticker: str
        exchange: str

    chat = stream(
        server, "openai", "gpt-4o", fixture_bytes("openai/stream_parallel_tool_calls.sse")
    )
    items = emitted(
        chat.pipe(
            ops.partial_tool_calls(
                {"GetWeatherArgs": GetWeatherArgs, "get_stock_price": StockPrice}
            )
        )
    )
    first = [i.arguments for i in items if i.index == 0 and not i.complete]
    assert first == [  # fragments: '{"ci', 'ty": ', '"Edinb', 'urgh', '", "c', 'ountry', ...
        {},
        {"city": "Edinb"},
        {"city": "Edinburgh"},
        {"city": "Edinburgh", "country": ""},
        {"city": "Edinburgh", "country": "GB"},
        {"city": "Edinburgh", "country": "GB", "units": ""},
    ]
    done = [i for i in items if i.complete]
    assert [(i.index, i.name, i.id) for i in done] == [
        (0, "GetWeatherArgs", "call_JMW1whyEaYG438VE1OIflxA2"),
        (1, "get_stock_price", "call_DNYTawLBoN8fj3KN6qU9N1Ou"),
    ]
    assert done[0].arguments == GetWeatherArgs(city="Edinburgh", country="GB", units="c")
    assert done[1].arguments == StockPrice(ticker="AAPL", exchange="NASDAQ")
    # the first call completes as soon as the second starts
    assert items.index(done[0]) < min(items.index(i) for i in items if i.index == 1)


def test_openai_single_tool_call_plain_json(server: ReplayServer) -> None:
    chat = stream(server, "openai", "gpt-4o", fixture_bytes("openai/stream_tool_call_usage.sse"))
    items = emitted(chat.pipe(ops.partial_tool_calls()))
    assert items[-1].complete and items[-1].name == "get_weather"
    final = items[-1].arguments
    assert isinstance(final, dict) and final["city"] == "New York City"
    for item in items[:-1]:
        assert not item.complete and _is_prefix(item.arguments, final)


def test_openai_refusal_is_a_typed_error(server: ReplayServer) -> None:
    chat = stream(server, "openai", "gpt-4o", fixture_bytes("openai/stream_refusal.sse"))
    items, error = failure(chat.pipe(ops.partial_object(Location)))
    assert items == []
    assert isinstance(error, errors.StructuredOutputError)
    assert error.refusal == "I'm sorry, I can't assist with that request."
    assert error.provider == "openai" and error.model
    assert errors.error_summary(error)["refusal"] == error.refusal


# --- errors ------------------------------------------------------------------------------------


def chunk(
    text: str | None = None,
    finish: str | None = None,
    tool: ToolCallDelta | None = None,
    index: int = 0,
) -> ChatChunk:
    delta = Delta(content=text, tool_calls=[tool] if tool else None)
    return ChatChunk(
        id="c",
        created=0,
        model="m",
        provider="p",
        choices=[StreamChoice(index=index, delta=delta, finish_reason=finish)],
    )


def texts(*pieces: str, finish: str = "stop") -> reactivex.Observable[ChatChunk]:
    return reactivex.of(*[chunk(p) for p in pieces], chunk(finish=finish))


def test_a_value_the_type_refuses_is_a_validation_error_with_its_cause() -> None:
    items, error = failure(
        texts('{"city": "X", "temperature": "warm", ', '"units": "c"}').pipe(
            ops.partial_object(Location)
        )
    )
    assert items == [{"city": "X", "temperature": "warm"}]
    assert type(error) is errors.StructuredOutputError
    assert isinstance(error.__cause__, msgspec.ValidationError)
    assert "Expected `int`, got `str` - at `$.temperature`" in str(error)
    assert error.text == error.partial_text == '{"city": "X", "temperature": "warm", "units": "c"}'
    assert (error.provider, error.model, error.category) == ("p", "m", "response")


def test_a_length_finish_is_truncation_not_a_bad_object() -> None:
    items, error = failure(
        texts('{"city": "San', " Fran", finish="length").pipe(ops.partial_object(Location))
    )
    assert items == [{"city": "San"}, {"city": "San Fran"}]
    assert type(error) is errors.OutputTruncatedError
    assert isinstance(error, errors.StructuredOutputError)
    assert error.recoverable is False and error.text == '{"city": "San Fran'
    assert "max_tokens" in str(error)


def test_a_complete_value_with_a_length_finish_is_still_the_value() -> None:
    values = emitted(texts("[1, 2]", finish="length").pipe(ops.partial_object(list[int])))
    assert values == [[1, 2]]


def test_an_answer_that_stops_inside_its_json_is_not_complete_json() -> None:
    _, error = failure(texts('{"a": [1, ').pipe(ops.partial_object()))
    assert type(error) is errors.StructuredOutputError
    assert "is not complete JSON" in str(error)
    assert isinstance(error.__cause__, msgspec.DecodeError)


def test_no_text_at_all() -> None:
    _, error = failure(texts().pipe(ops.partial_object()))
    assert type(error) is errors.StructuredOutputError and "holds no JSON" in str(error)


def test_invalid_json_fails_at_once_and_cancels_upstream() -> None:
    subject: Subject[ChatChunk] = Subject()
    seen: list[Any] = []
    failures: list[Exception] = []
    subject.pipe(ops.partial_object()).subscribe(seen.append, failures.append)
    subject.on_next(chunk('{"a": 1'))
    subject.on_next(chunk(", "))
    assert not failures and subject.observers
    subject.on_next(chunk("Sure! Here is"))
    (error,) = failures
    assert isinstance(error, errors.StructuredOutputError)
    assert isinstance(error.__cause__, JSONSyntaxError)
    assert isinstance(error.__cause__, msgspec.DecodeError)
    assert "at character 9" in str(error)
    assert error.text == '{"a": 1, Sure! Here is'
    assert not subject.observers  # disposed: the request is cancelled
    subject.on_next(chunk("more"))
    subject.on_completed()
    assert seen == [{}, {"a": 1}] and len(failures) == 1


def test_upstream_errors_pass_through() -> None:
    boom = errors.StreamTruncatedError("cut")
    source = reactivex.concat(reactivex.of(chunk('{"a": "b')), reactivex.throw(boom))
    items, error = failure(source.pipe(ops.partial_object()))
    assert items == [{"a": "b"}] and error is boom


def test_other_choices_whitespace_and_keys_emit_nothing() -> None:
    source = reactivex.of(
        chunk("  \n"),
        chunk('{ "long'),
        chunk("er_key"),
        chunk('" :'),
        chunk("[1", index=1),  # another choice's text: ignored
        chunk(" 12"),
        chunk("3 "),
        chunk("}"),
        chunk(finish="stop"),
    )
    assert emitted(source.pipe(ops.partial_object())) == [
        {},
        {"longer_key": 123},  # the number once complete
        {"longer_key": 123},  # the strict value, always last
    ]


def test_tool_arguments_errors_name_the_tool() -> None:
    def fragment(arguments: str, name: str | None = None, index: int = 0) -> ToolCallDelta:
        return ToolCallDelta(
            index=index,
            id="t1" if name else None,
            function=FunctionCallDelta(name=name, arguments=arguments),
        )

    source = reactivex.of(chunk(tool=fragment('{"a": tru', "f")), chunk(tool=fragment("x")))
    _, error = failure(source.pipe(ops.partial_tool_calls()))
    assert isinstance(error, errors.StructuredOutputError) and error.tool == "f"
    assert isinstance(error.__cause__, JSONSyntaxError)
    assert error.text == '{"a": trux'
    cut = reactivex.of(chunk(tool=fragment('{"a": [', "f")), chunk(finish="length"))
    _, error = failure(cut.pipe(ops.partial_tool_calls()))
    assert type(error) is errors.OutputTruncatedError and error.tool == "f"
    empty = reactivex.of(chunk(tool=fragment("", "g")), chunk(finish="tool_calls"))
    (only,) = emitted(empty.pipe(ops.partial_tool_calls()))
    assert only == ops.PartialToolCall(index=0, id="t1", name="g", arguments={}, complete=True)


def test_structured_errors_pickle_and_summarise() -> None:
    error = errors.OutputTruncatedError("cut", text='{"a', tool="f", provider="p", model="m")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is errors.OutputTruncatedError
    assert (copy.text, copy.tool, copy.recoverable) == ('{"a', "f", False)
    summary = errors.error_summary(copy)
    assert summary["partial_text"] == '{"a' and summary["tool"] == "f"


# --- the parser against msgspec -----------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner, max_size=5)
    ),
    max_leaves=30,
)


@st.composite
def texts_and_cuts(draw: st.DrawFn) -> tuple[Any, str, list[str]]:
    value = draw(_values)
    text = json.dumps(
        value,
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.sampled_from([None, 0, 2])),
        separators=draw(st.sampled_from([None, (",", ":"), (" , ", " : ")])),
    )
    text = draw(st.sampled_from(["", " ", "\n"])) + text + draw(st.sampled_from(["", " ", "\r\n"]))
    cuts = sorted(set(draw(st.lists(st.integers(0, len(text)), max_size=len(text)))))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True) if b > a]
    return value, text, pieces


def _is_prefix(partial: Any, final: Any) -> bool:
    """``partial`` is the start of ``final``: strings it extends, containers whose members are
    equal but for the last, itself a prefix; anything else equal."""
    if isinstance(partial, str):
        return isinstance(final, str) and final.startswith(partial)
    if isinstance(partial, list):
        if not isinstance(final, list) or len(partial) > len(final):
            return False
        *done, last = partial or [None]
        return not partial or (final[: len(done)] == done and _is_prefix(last, final[len(done)]))
    if isinstance(partial, dict):
        if not isinstance(final, dict) or list(partial) != list(final)[: len(partial)]:
            return False
        keys = list(partial)
        return all(partial[k] == final[k] for k in keys[:-1]) and (
            not keys or _is_prefix(partial[keys[-1]], final[keys[-1]])
        )
    return type(partial) is type(final) and bool(partial == final)


def _same(a: Any, b: Any) -> bool:
    """Equal, with types (``1 == 1.0 == True`` in Python, not in JSON)."""
    if a is NOTHING or b is NOTHING:
        return a is b
    return json.dumps(a) == json.dumps(b)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts_and_cuts())
def test_any_json_cut_anywhere_parses_to_what_msgspec_decodes(
    case: tuple[Any, str, list[str]],
) -> None:
    _, text, pieces = case
    final = msgspec.json.decode(text)
    parser = PartialJSON()
    previous = NOTHING
    for piece in pieces:
        changed = parser.feed(piece)
        now = parser.snapshot()
        assert changed == (not _same(now, previous))
        if now is not NOTHING:
            assert _is_prefix(now, final), (now, final)
        previous = now
    assert parser.close()
    assert _same(parser.snapshot(), final)
    assert parser.scanned <= len(text) + 11 * len(pieces)


_JSONISH = st.text(alphabet='{}[]",:0123456789.-+eEtruefalsn \n\\u/dDa8c', max_size=30)


@settings(max_examples=600, deadline=None)
@given(_JSONISH, st.lists(st.integers(0, 30), max_size=6))
def test_the_parser_accepts_exactly_what_msgspec_accepts(text: str, cuts: list[int]) -> None:
    try:
        expected: Any = msgspec.json.decode(text)
    except msgspec.DecodeError:
        expected = msgspec.DecodeError
    points = sorted({c for c in cuts if c < len(text)})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True) if b > a]
    parser = PartialJSON()
    try:
        for piece in pieces:
            parser.feed(piece)
        complete = parser.close()
    except JSONSyntaxError:
        assert expected is msgspec.DecodeError, text
        return
    if expected is msgspec.DecodeError:
        assert not complete, text  # valid so far: only the end is missing
    else:
        assert complete and _same(parser.snapshot(), expected), text


def test_escapes_and_surrogates_cut_anywhere() -> None:
    text = json.dumps(['é\\"/\b\f\n\r\t😀\u2028', {"k\u00e9y": "\x7f"}], ensure_ascii=True)
    text = text.replace("\\\\", "\\/")  # a \/ escape too
    final = msgspec.json.decode(text)
    for size in range(1, 14):
        parser = PartialJSON()
        for start in range(0, len(text), size):
            parser.feed(text[start : start + size])
            assert _is_prefix(parser.snapshot(), final) or parser.snapshot() is NOTHING
        assert parser.close() and parser.snapshot() == final
    for bad in ('"\\ud800"', '"\\udc00"', '"\\ud800\\u0041"', '"\\x"', '"\x01"', "01", "1.", "-",
                "[1,]", '{"a" 1}', "{,}", "tru e", "[1] 2", "1e400", '{"a":1,}'):  # fmt: skip
        with pytest.raises(msgspec.DecodeError):
            msgspec.json.decode(bad)
        with pytest.raises(JSONSyntaxError):
            parser = PartialJSON()
            for c in bad:
                parser.feed(c)
            parser.close()


def test_a_root_number_ends_with_the_text() -> None:
    parser = PartialJSON()
    assert not parser.feed("12") and not parser.feed("3")
    assert parser.snapshot() is NOTHING and not parser.complete
    assert parser.close() and parser.snapshot() == 123


# --- linear work and cheap snapshots -----------------------------------------------------------


def _document(records: int) -> str:
    rows = [
        {
            "id": i,
            "name": f"item {i} \u00e9\\n",
            "tags": ["a", "b"],
            "score": i / 7,
            "ok": i % 2 == 0,
        }
        for i in range(records)
    ]
    return json.dumps({"title": "x" * 50, "rows": rows, "done": True}, ensure_ascii=False)


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Counts the calls of the parser's run matchers and the characters they consume."""
    work = {"calls": 0, "chars": 0}
    for name in ("_STRING_RUN", "_WHITESPACE", "_NUMBER_RUN"):
        matcher = getattr(_partial_json, name)

        def counting(s: str, pos: int, matcher: Any = matcher) -> Any:
            match = matcher(s, pos)
            work["calls"] += 1
            work["chars"] += match.end() - pos
            return match

        monkeypatch.setattr(_partial_json, name, counting)
    yield work


@pytest.mark.parametrize("size", [1, 5])
def test_parsing_is_linear_in_the_text(counted: dict[str, int], size: int) -> None:
    per_char = []
    for records in (50, 500):
        counted.update(calls=0, chars=0)
        text = _document(records)
        parser = PartialJSON()
        pieces = 0
        for start in range(0, len(text), size):
            parser.feed(text[start : start + size])
            pieces += 1
        assert parser.close()
        assert parser.scanned <= len(text) + 11 * pieces  # each character read once
        assert counted["chars"] <= parser.scanned
        assert counted["calls"] <= 2 * pieces + len(text) // 2  # per piece and per token
        per_char.append(counted["calls"] / len(text))
    assert per_char[1] <= per_char[0] * 1.1  # ten times the text: ten times the work


def test_snapshots_share_completed_members() -> None:
    text = _document(20)
    parser = PartialJSON()
    pieces = [text[start : start + 7] for start in range(0, len(text), 7)]
    snapshots = [parser.snapshot() for piece in pieces if parser.feed(piece)]
    final = msgspec.json.decode(text)
    rows = [s["rows"] for s in snapshots if len(s.get("rows", ())) > 3]
    assert rows and all(r[0] is rows[0][0] for r in rows)  # the same object, never copied
    assert all(r[0] == final["rows"][0] for r in rows)  # and never changed
    assert all(_is_prefix(s, final) for s in snapshots)
    assert len({id(s) for s in snapshots}) == len(snapshots)  # each emission a new value


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts_and_cuts())
def test_the_operator_emits_growing_prefixes_then_the_strict_value(
    case: tuple[Any, str, list[str]],
) -> None:
    _, text, pieces = case
    final = msgspec.json.decode(text)
    *partials, last = emitted(texts(*pieces).pipe(ops.partial_object()))
    assert _same(last, final)
    for before, after in itertools.pairwise(partials):
        assert not _same(before, after)  # a new value only when it changed
    assert all(_is_prefix(p, final) for p in partials)
    assert len(partials) <= len(pieces)  # at most one per chunk


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"story": "word " * 40_000}),  # one long string
        json.dumps({"rows": [{"i": i} for i in range(20_000)]}),  # one long array
    ],
    ids=["long-string", "long-array"],
)
def test_emissions_copy_at_most_a_constant_times_the_text(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the operator's snapshots copy stays linear in the text: each costs at most 64
    times the characters read since the previous one (a long string or array is emitted
    less often as it grows, not copied at every 5-character delta)."""
    copied = {"cost": 0, "snapshots": 0}
    real_snapshot = PartialJSON.snapshot

    def counting(self: PartialJSON) -> Any:
        copied["cost"] += self.snapshot_cost()
        copied["snapshots"] += 1
        return real_snapshot(self)

    monkeypatch.setattr(PartialJSON, "snapshot", counting)
    pieces = [text[i : i + 5] for i in range(0, len(text), 5)]
    *_partials, last = emitted(texts(*pieces).pipe(ops.partial_object()))
    assert last == json.loads(text)
    assert copied["cost"] <= 64 * len(text) + 100
    assert 50 < copied["snapshots"] < len(pieces) // 10  # still a live view, just thinner
