"""Credentials per model host: ``MODEL_HOST_TOKENS``, a JSON file ``{"host": "token"}``.

Mount it from Secret Manager (Cloud Run ``volumes: secret``). A token is sent as
``Authorization: Bearer <token>`` to its own host only (``host`` means port 443,
``host:port`` that port), never along a redirect to another host, and never appears in a log
line, an error message or a result: ``HostTokens`` shows only the hosts it has.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

from worker.errors import ConfigError

_HOST = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:[0-9]{1,5})?")
_TOKEN = re.compile(r"[\x21-\x7e]{1,8192}")  # visible ASCII: nothing that could split a header


class HostTokens:
    def __init__(self, tokens: Mapping[str, str] | None = None) -> None:
        self._tokens = dict(tokens or {})

    def for_host(self, host: str, port: int) -> str | None:
        host = host.lower()
        return self._tokens.get(f"{host}:{port}") or (
            self._tokens.get(host) if port == 443 else None
        )

    def __repr__(self) -> str:
        return f"HostTokens(hosts={sorted(self._tokens)})"

    __str__ = __repr__


def load(path: Path | None) -> HostTokens:
    """The tokens of ``MODEL_HOST_TOKENS``; ``ConfigError`` that never quotes the file."""
    if path is None:
        return HostTokens()
    where = f"MODEL_HOST_TOKENS={path}"
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        raise ConfigError(f"{where} can't be read: {reason}") from None
    try:
        doc = json.loads(raw)
    except ValueError:
        raise ConfigError(f'{where} is not JSON: write {{"huggingface.co": "hf_..."}}') from None
    if not isinstance(doc, dict):
        raise ConfigError(f'{where} must be a JSON object {{"host": "token"}}')
    tokens: dict[str, str] = {}
    for host, token in doc.items():
        if not isinstance(host, str) or not _HOST.fullmatch(host.lower()):
            raise ConfigError(f"{where}: a key is not a host name or host:port")
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise ConfigError(
                f"{where}: the token for {host.lower()} must be a non-empty string of visible "
                "ASCII characters"
            )
        tokens[host.lower()] = token
    return HostTokens(tokens)
