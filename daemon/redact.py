"""Keep credentials in source URLs out of everything shown: logs, ``config show``,
error messages and ffmpeg's own messages.

A URL's secrets are the password of its user info (``http://user:PASSWORD@host``)
and the values of query parameters whose names say they are secrets
(``?token=...``, ``api_key``, ``password``, ``sig``, ...). Each is shown as
:data:`REDACTED`; the user name, host and path stay, so a log line still says which
stream it is about.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlsplit

REDACTED = "********"

#: Query parameter names that hold secrets (matched case-insensitively, whole name,
#: optionally with a prefix such as ``x-amz-`` or ``api_``).
_SECRET_PARAM = re.compile(
    r"(?i)^(?:.*[_\-.])?(?:token|access_?token|api_?key|apikey|key|password|passwd|pass|pwd|secret|auth|"
    r"authorization|sig|signature|credential|credentials|session)$"
)
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>]+")


def url_secrets(url: str) -> list[str]:
    """The secret parts of ``url`` as they appear in it (and percent-decoded), longest first."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: set[str] = set()
    if parts.password:
        found.add(parts.password)
    for raw in parts.query.split("&"):
        name, sep, value = raw.partition("=")
        if sep and value and _SECRET_PARAM.match(unquote(name)):
            found.add(value)
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if value and _SECRET_PARAM.match(name):
            found.add(value)
    found |= {unquote(s) for s in found}
    return sorted((s for s in found if s), key=len, reverse=True)


def has_secret(url: str) -> bool:
    """True when ``url`` carries a password or a secret query parameter."""
    return bool(url_secrets(url))


def redact_url(url: str) -> str:
    """``url`` with its password and secret query values replaced by :data:`REDACTED`;
    text that is not a URL comes back unchanged."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.scheme or not parts.netloc:
        return url
    netloc = parts.netloc
    if parts.password is not None:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}:{REDACTED}@{hostport}"
    query = "&".join(
        f"{name}={REDACTED}" if sep and value and _SECRET_PARAM.match(unquote(name)) else name + sep + value
        for name, sep, value in (item.partition("=") for item in parts.query.split("&"))
    ) if parts.query else ""
    rebuilt = f"{parts.scheme}://{netloc}{parts.path}"
    if parts.query:
        rebuilt += "?" + query
    if parts.fragment:
        rebuilt += "#" + parts.fragment
    return rebuilt


def redact_text(text: str, secrets: list[str] | tuple[str, ...] = ()) -> str:
    """``text`` with every URL in it redacted and every string of ``secrets`` replaced."""
    text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text
