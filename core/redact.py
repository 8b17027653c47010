"""Secrets out of text: credentials in URLs (`https://user:key@host/...`, `?api-key=...`) and known secret values."""

from __future__ import annotations

import re
import urllib.parse
from typing import Iterable

SECRET_PARAM = re.compile(r"(?i)^(?:api[-_]?key|key|token|access[-_]?token|secret|client[-_]?secret|password|passwd|"
                          r"pwd|sig|signature|auth|authorization|x-api-key|code)$")
MASK = "***"


def url_secrets(url: str | None) -> list[str]:
    """The secret parts of a URL: the user info and the values of key-like query parameters."""
    if not url:
        return []
    parts = urllib.parse.urlsplit(url)
    found = [p for p in (parts.username, parts.password) if p]
    found += [v for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=False) if SECRET_PARAM.match(k)]
    return [urllib.parse.unquote(s) for s in found] + found


def redact_url(url: str | None) -> str | None:
    """The URL with its user info and key-like query values masked (host, port and path kept)."""
    if not url:
        return url
    parts = urllib.parse.urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    if parts.username or parts.password:
        netloc = f"{MASK}@{netloc}"
    query = urllib.parse.urlencode([(k, MASK if SECRET_PARAM.match(k) else v)
                                    for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)],
                                   safe="*")
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every non-empty secret replaced by ***."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
