"""The embedding API over real HTTP (OpenAI wire format)."""

from __future__ import annotations

import pytest

import rxllm
from rxllm import errors

from .conftest import API_KEY, fixture_bytes
from .server import ReplayServer, Reply

# Shape of POST /v1/embeddings as documented by OpenAI (a short hand-written body: the vectors
# of a real recording are thousands of floats long).
BODY = (
    b'{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.1,-0.2,0.3]},'
    b'{"object":"embedding","index":1,"embedding":[0.4,0.5,-0.6]}],'
    b'"model":"text-embedding-3-small","usage":{"prompt_tokens":4,"total_tokens":4}}'
)


def test_embedding_request_and_response(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=BODY, content_type="application/json"))
    response = rxllm.embedding(
        "openai",
        "text-embedding-3-small",
        input=["hello", "world"],
        dimensions=3,
        api_key=API_KEY,
        api_base=openai_base,
    )
    assert response.vectors == [[0.1, -0.2, 0.3], [0.4, 0.5, -0.6]]
    assert response.provider == "openai" and response.model == "text-embedding-3-small"
    assert response.usage is not None and response.usage.prompt_tokens == 4
    (request,) = server.requests
    assert request.path == "/v1/embeddings"
    assert request.json() == {
        "model": "text-embedding-3-small",
        "input": ["hello", "world"],
        "dimensions": 3,
    }


async def test_aembedding_single_string_and_errors(server: ReplayServer, openai_base: str) -> None:
    server.queue(Reply(body=BODY, content_type="application/json"))
    response = await rxllm.aembedding(
        model="openai/text-embedding-3-small", input="hello", api_key=API_KEY, api_base=openai_base
    )
    assert len(response.data) == 2 and server.requests[0].json()["input"] == ["hello"]
    server.queue(
        Reply(status=404, body=b'{"error":{"message":"no such model","code":"model_not_found"}}')
    )
    with pytest.raises(errors.NotFoundError):
        await rxllm.aembedding("openai", "nope", input="x", api_key=API_KEY, api_base=openai_base)
    with pytest.raises(errors.BadRequestError):
        await rxllm.aembedding("openai", "m", input=[], api_key=API_KEY)
    with pytest.raises(errors.UnsupportedParamsError):
        await rxllm.aembedding("openai", "m", input="x", temperature=1, api_key=API_KEY)


def test_recorded_openai_embeddings(server: ReplayServer, openai_base: str) -> None:
    server.queue(
        Reply(body=fixture_bytes("openai/response_embedding.json"), content_type="application/json")
    )
    response = rxllm.embedding(
        "openai",
        "text-embedding-3-small",
        input=["sunny day", "rainy day"],
        api_key=API_KEY,
        api_base=openai_base,
    )
    assert response.vectors == [
        [0.0057293195, -0.012727811, 0.020042092, -0.013437585, 0.022833068],
        [-0.037104916, -0.05178114, -0.008340587, 0.001164541, -0.0035253682],
    ]
    assert response.model == "text-embedding-3-small"
    assert response.usage is not None
    assert (response.usage.prompt_tokens, response.usage.total_tokens) == (12, 12)
