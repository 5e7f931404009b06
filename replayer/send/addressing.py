"""Request addressing and what outputs may show of it: the server root, `-H` headers, request ids,
and the redaction of credentials in URLs and headers."""

from __future__ import annotations

import re
import uuid
from urllib.parse import urlsplit

from replayer.errors import ConfigError

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CREDENTIAL_NAME = re.compile(r"auth|key|token|secret|passw|cookie|session|signature|credential", re.IGNORECASE)
REDACTED = "<redacted>"


def parse_header(text: str) -> tuple[str, str]:
    """`-H 'Name: value'` → (name, value), as curl takes it."""
    name, colon, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not _HEADER_NAME.fullmatch(name):
        raise ConfigError("-H: expected 'Name: value' with a valid header name (the text is not shown: it may "
                          "hold a secret)")
    if "\r" in value or "\n" in value:
        raise ConfigError(f"-H {name}: the value must be one line")
    if name.lower() in ("content-length", "host", "transfer-encoding", "connection", "x-request-id"):
        raise ConfigError(f"-H {name}: set by replayer itself and cannot be replaced")
    return name, value


def redact_headers(headers: tuple[tuple[str, str], ...]) -> list[str]:
    """Headers as written into outputs: the values of credential-like ones (by name, or a value that
    looks like a token scheme) replaced by `<redacted>`."""
    shown = []
    for name, value in headers:
        secret = _CREDENTIAL_NAME.search(name) or value.split(" ", 1)[0].lower() in ("bearer", "basic", "token")
        shown.append(f"{name}: {REDACTED if secret else value}")
    return shown


def request_id_prefix() -> bytes:
    """A random UUID (version 4) without its last 12 hex digits. Each request's X-Request-Id is this
    plus its trace row id in 12 hex digits: a valid UUID (llama-cpp-python's server refuses any other
    form with HTTP 400), unique across runs, and mapped back to the row by `row_of_request_id`."""
    return str(uuid.uuid4())[:24].encode()


def row_of_request_id(request_id: str) -> int:
    """The trace row id in an X-Request-Id that replayer sent."""
    return int(request_id[-12:], 16)


def redact_url(url: str) -> str:
    """`url` as written into outputs: a password in it (`http://user:secret@host`) replaced."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:{REDACTED}@{parts.netloc.rpartition('@')[2]}"
    return parts._replace(netloc=netloc).geturl()


def root_url(base_url: str) -> str:
    """The server root: users pass either `http://host:port` or `http://host:port/v1`. Credentials in
    the URL are taken out (they travel as an Authorization header, see `ClientConfig.headers`)."""
    parts = urlsplit(base_url)
    if parts.username is not None:
        base_url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    base = base_url.rstrip("/")
    return base[:-3] if base.endswith("/v1") else base


