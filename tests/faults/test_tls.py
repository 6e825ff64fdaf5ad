"""TLS against a loopback HTTPS server whose certificate comes from a private CA made here:
verification is on by default (the request fails before any byte of it is sent), a CA bundle
(``verify=path``) or an ``ssl.SSLContext`` trusts the server, and ``verify=False`` works only
when asked for, with a ``RuntimeWarning``."""

from __future__ import annotations

import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import rxllm
from rxllm import errors
from rxllm.router import Router
from rxllm.streaming import collect_sync

from ..conftest import API_KEY
from ..test_stream import stream as open_stream
from . import probe
from .cases import OPENAI
from .server import FaultServer
from .tls import PrivateCA, make_private_ca

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    return make_private_ca(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def _https(private_ca: PrivateCA) -> Iterator[FaultServer]:
    server = FaultServer(ssl_context=private_ca.server_context()).start()
    yield server
    # Hang up the pooled TLS connections first: a TLS server stopped under an idle client
    # waits for close_notify answers that never come, and leaves its transports unclosed.
    probe.close_background_session()
    server.stop()


@pytest.fixture
def https(_https: FaultServer) -> Iterator[FaultServer]:
    _https.reset()
    yield _https
    _https.reset()


def stream(server: FaultServer, **kwargs: object) -> rxllm.ChatStream:
    return open_stream(server.base + "/v1", timeout=10, **kwargs)


def test_verification_is_on_by_default(https: FaultServer) -> None:
    assert https.base.startswith("https://127.0.0.1:")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning on the default path
        chat = stream(https)
    with pytest.raises(errors.APIConnectionError) as caught:
        collect_sync(chat, timeout=10)
    error = caught.value
    assert "TLS certificate verification failed" in error.message
    assert "certificate verify failed" in error.message
    assert "verify='/path/to/ca-bundle.pem'" in error.message
    assert (error.provider, error.model, error.status_code) == ("openai", "gpt-4o", None)
    assert error.recoverable is False  # retrying will not make the certificate trusted
    assert https.requests == []  # the handshake failed: not one byte of the request was sent
    with pytest.raises(errors.APIConnectionError, match="TLS certificate verification failed"):
        rxllm.completion(
            "openai", "gpt-4o", messages=MESSAGES, api_key=API_KEY, api_base=https.base + "/v1"
        )
    assert https.requests == []
    snapshot = probe.snapshot(https.port)
    assert (snapshot.tasks, snapshot.acquired, snapshot.sockets) == (0, 0, 0)


@pytest.mark.parametrize("form", ["str", "Path", "SSLContext"])
def test_a_private_ca_bundle_is_trusted_when_given(
    https: FaultServer, private_ca: PrivateCA, form: str
) -> None:
    verify: object = {
        "str": str(private_ca.ca_file),
        "Path": Path(private_ca.ca_file),
        "SSLContext": ssl.create_default_context(cafile=str(private_ca.ca_file)),
    }[form]
    https.inject("gzip", OPENAI.transcript)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        response = collect_sync(stream(https, verify=verify), timeout=10)
    assert response.text == OPENAI.text
    assert https.requests[0].headers["Authorization"] == f"Bearer {API_KEY}"


def test_verify_false_works_only_with_a_warning(https: FaultServer) -> None:
    https.inject("trickle", OPENAI.transcript)
    with pytest.warns(RuntimeWarning, match=r"verification is disabled \(verify=False\)"):
        chat = stream(https, verify=False)
    assert collect_sync(chat, timeout=20).text == OPENAI.text


def test_a_bad_verify_fails_before_any_io(https: FaultServer, tmp_path: Path) -> None:
    not_a_pem = tmp_path / "not-a-ca.pem"
    not_a_pem.write_text("hello")
    with pytest.raises(errors.ConfigurationError, match="cannot load the CA bundle"):
        stream(https, verify=str(tmp_path / "missing.pem"))
    with pytest.raises(errors.ConfigurationError, match="cannot load the CA bundle"):
        stream(https, verify=str(not_a_pem))
    with pytest.raises(errors.ConfigurationError, match="verify must be True, False"):
        stream(https, verify=1)
    assert https.requests == []


def test_router_deployments_take_verify(https: FaultServer, private_ca: PrivateCA) -> None:
    router = Router(num_retries=0)
    with pytest.raises(errors.ConfigurationError, match="cannot load the CA bundle"):
        router.register(
            "bad",
            provider="openai",
            model="gpt-4o",
            api_key=API_KEY,
            api_base=https.base + "/v1",
            verify="/nonexistent/ca.pem",
        )
    router.register(
        "private",
        provider="openai",
        model="gpt-4o",
        api_key=API_KEY,
        api_base=https.base + "/v1",
        verify=str(private_ca.ca_file),
    )
    assert router.get_config("private")["deployments"][0]["verify"] == str(private_ca.ca_file)
    https.inject("gzip", OPENAI.transcript)
    assert collect_sync(router.completion("private", MESSAGES, stream=True), 10).text == OPENAI.text
    with pytest.raises(errors.ConfigurationError, match="belongs to a deployment"):
        router.completion("private", MESSAGES, verify=False)
