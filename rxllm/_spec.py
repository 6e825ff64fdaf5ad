"""Compatibility re-exports: what ``rxllm._spec`` held now lives by what it is.

* :mod:`rxllm._provider` - the provider protocol and the calls (``Provider``, ``ChatCall``...);
* :mod:`rxllm._events` - the stream events decoders give parsers (``SSEEvent``, ``DataEvents``...);
* :mod:`rxllm._wire` - ``HttpRequest``, the loopback ``ScriptedReply`` and ``LOOPBACK_SCHEME``;
* :mod:`rxllm._secrets` - which headers and URL parts are credentials, and masking them.

Kept for code that still imports from here (``_api``, ``_checks``, ``router``); new code imports
from the modules above.
"""

from __future__ import annotations

from ._events import DataEvents, NamedDataEvents, SSEEvent
from ._provider import (
    Call,
    ChatCall,
    EmbeddingCall,
    EmbeddingProvider,
    EventParser,
    Provider,
    StreamParser,
)
from ._secrets import (
    SENSITIVE_HEADERS,
    header_credentials,
    is_credential_header,
    masked_url,
    url_credentials,
)
from ._wire import LOOPBACK_SCHEME, HttpRequest, ScriptedReply

__all__ = [
    "LOOPBACK_SCHEME",
    "SENSITIVE_HEADERS",
    "Call",
    "ChatCall",
    "DataEvents",
    "EmbeddingCall",
    "EmbeddingProvider",
    "EventParser",
    "HttpRequest",
    "NamedDataEvents",
    "Provider",
    "SSEEvent",
    "ScriptedReply",
    "StreamParser",
    "header_credentials",
    "is_credential_header",
    "masked_url",
    "url_credentials",
]
