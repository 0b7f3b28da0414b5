"""Keep credentials out of logs, events and metric labels.

Two layers: patterns (any ``scheme://user:password@``, token-only ``scheme://TOKEN@``, and secret
query parameters such as ``password``, ``token``, ``access_token``, ``apikey``, ``signature``), and
the secret values themselves, registered when the configuration is loaded
(:func:`register_secret`), which are replaced wherever they appear — a password with spaces, ``@``
or ``/`` in it included.
"""

from __future__ import annotations

import logging
import re
import threading

MASK = "***"

# userinfo: everything up to the last "@" of the run (passwords may hold "@", "/" or ":")
_USERINFO = re.compile(
    r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^\s@]*(?:@[^\s@]*)*?)@(?=[^\s@/?#]*(?:[/?#\s]|$))"
)
_QUERY_SECRET = re.compile(
    r"(?i)(?P<key>[?&;](?:[a-z0-9_.-]*?(?:pass(?:word|wd)?|pwd|token|secret|api[_-]?key|key|auth\w*|"
    r"sig(?:nature)?|credentials?))=)[^&\s#]*"
)
_secrets: set[str] = set()
_lock = threading.Lock()
_MIN_SECRET = 3  # shorter values would mask ordinary text


def register_secret(value: str | None) -> None:
    """Remember a secret value (a password, a token) so that it is masked wherever it appears."""
    if value and len(value) >= _MIN_SECRET:
        with _lock:
            _secrets.add(value)


def register_url_secrets(url: str) -> None:
    """Register the userinfo secret (password, or a token-only userinfo) of ``url``."""
    match = _USERINFO.search(url)
    if match:
        user, sep, password = match["userinfo"].partition(":")
        register_secret(password if sep else user)


def _userinfo(match: re.Match[str]) -> str:
    user, sep, _password = match["userinfo"].partition(":")
    if not sep:  # token-only userinfo: the whole of it is the secret
        return f"{match['scheme']}{MASK}@"
    return f"{match['scheme']}{user}:{MASK}@"


def redact_text(text: str) -> str:
    """Mask registered secrets, URL userinfo secrets and secret query parameters in free text."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _USERINFO.sub(_userinfo, text)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}{MASK}", text)


def redact_url(url: str) -> str:
    """A URL with its password (or token-only userinfo) and secret query values replaced by ``***``."""
    return redact_text(url)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts credentials in every record, whatever the caller passed."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not break logging
            return True
        redacted = redact_text(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
