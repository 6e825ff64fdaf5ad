"""Which headers and URL parts are credentials, and how to show a URL or headers without them.

The entry layer collects a call's secrets with these (``Call.secrets``) for :mod:`rxllm.errors`'
redactor; ``HttpRequest`` and the router mask with them in their reprs.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping

__all__ = [
    "SENSITIVE_HEADERS",
    "header_credentials",
    "is_credential_header",
    "mask_headers",
    "masked_url",
    "url_credentials",
]

#: Header names whose values are credentials: masked in every repr.
SENSITIVE_HEADERS = frozenset(
    {"authorization", "x-api-key", "api-key", "x-goog-api-key", "proxy-authorization"}
)
#: Parts of a header name that make its value a credential: gateways' own headers
#: (``Helicone-Auth``, ``Ocp-Apim-Subscription-Key``, ``cf-aig-authorization``,
#: ``x-portkey-api-key``) as much as the providers'.
_CREDENTIAL_NAME = re.compile(r"auth|key|token|secret|signature|cookie|passw|credential", re.I)
#: ``Bearer``, ``Basic``...: the scheme word before a credential in a header's value.
_AUTH_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*\s+(\S+)$")


def is_credential_header(name: str) -> bool:
    """Whether a header's value is a credential, judged by its name (masked wherever shown)."""
    return name.lower() in SENSITIVE_HEADERS or _CREDENTIAL_NAME.search(name) is not None


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: ("***" if is_credential_header(k) else v) for k, v in headers.items()}


_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@]*@")
_USERINFO_PARTS = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#@]*)@")


def url_credentials(url: str | None) -> tuple[str, ...]:
    """The credentials in a URL's user info (``user:password``, and the password alone), as
    written and percent-decoded: what a server may echo back."""
    found = _USERINFO_PARTS.match(url or "")
    if found is None:
        return ()
    userinfo = found.group(1)
    out = {userinfo, urllib.parse.unquote(userinfo)}
    for info in tuple(out):
        _, colon, password = info.partition(":")
        if colon:
            out.add(password)
    return tuple(out)


def header_credentials(headers: Mapping[str, str]) -> tuple[str, ...]:
    """The values of credential headers, and the credential alone after a scheme word
    (``Bearer <token>``)."""
    out: list[str] = []
    for name, value in headers.items():
        if isinstance(value, str) and is_credential_header(name):
            out.append(value)
            scheme = _AUTH_SCHEME.match(value.strip())
            if scheme is not None:
                out.append(scheme.group(1))
    return tuple(out)


def masked_url(url: str) -> str:
    """``url`` fit to show: credentials in it (``https://user:password@host``) become ``***``."""
    return _USERINFO.sub(r"\1***@", url)
