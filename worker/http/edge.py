"""The request's edge: API keys, body limits, and errors as JSON with a stable type.

Every answer this service gives is JSON: an error is ``{"error": {"type", "message"}}`` with a
type from ``ErrorKind`` and no traceback, whatever happened. Bodies are read at most
``MAX_MESSAGE_BYTES`` (a job body is a job message): a larger ``Content-Length`` is refused
before reading, a chunked body is cut off one byte past the cap. A non-empty body must be
``application/json``.

API keys (``Authorization: Bearer <key>``) are compared with ``hmac.compare_digest`` against
every configured key (no early exit, so timing says nothing about which key or prefix
matched). Neither keys nor bodies are logged.
"""

from __future__ import annotations

import hmac
from enum import StrEnum
from pathlib import Path
from typing import Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from worker.errors import ConfigError
from worker.message import jsonsafe


class ErrorKind(StrEnum):
    UNAUTHORIZED = "unauthorized"  # 401
    FORBIDDEN = "forbidden"  # 403 (a route this deployment turned off)
    NOT_FOUND = "not_found"  # 404
    METHOD_NOT_ALLOWED = "method_not_allowed"  # 405
    CONFLICT = "conflict"  # 409
    BODY_TOO_LARGE = "body_too_large"  # 413
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"  # 415
    INVALID_REQUEST = "invalid_request"  # 400 (not a job body: a bad id, a bad JSON body)
    INVALID_JOB = "invalid_job"  # 400 (the body is not a job; nothing was queued)
    BUSY = "busy"  # 429 + Retry-After
    NOT_READY = "not_ready"  # 503 + Retry-After (booting)
    UNAVAILABLE = "unavailable"  # 503 + Retry-After (GCS/Pub/Sub, or the job was handed back)
    TIMEOUT = "timeout"  # 504
    INTERNAL = "internal"  # 500, never with a traceback


class HttpError(Exception):
    def __init__(
        self, status: int, kind: ErrorKind, message: str, retry_after_s: int | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.retry_after_s = retry_after_s

    def response(self) -> Response:
        headers = {"Retry-After": str(self.retry_after_s)} if self.retry_after_s else {}
        if self.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        doc = {"error": {"type": str(self.kind), "message": self.message}}
        return json_response(doc, self.status, headers)


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        jsonsafe.dumps(doc), status=status, headers=headers, content_type="application/json"
    )


def read_body(request: Request, max_bytes: int, *, required: bool = True) -> bytes:
    """The request's body, at most ``max_bytes``; raises ``HttpError`` (413, 415, 400)."""
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        _consumed(request)
        raise _too_large(declared, max_bytes)
    try:
        body = request.stream.read(max_bytes + 1)
    except (RequestEntityTooLarge, OSError, ValueError) as exc:  # a broken or cut-off upload
        _consumed(request)
        raise HttpError(
            400, ErrorKind.INVALID_REQUEST, f"the body could not be read: {exc}"
        ) from None
    _consumed(request, body)
    if len(body) > max_bytes:
        raise _too_large(None, max_bytes)
    if not body:
        if required:
            raise HttpError(400, ErrorKind.INVALID_REQUEST, "the request needs a JSON body")
        return b""
    if request.mimetype != "application/json":
        raise HttpError(
            415,
            ErrorKind.UNSUPPORTED_MEDIA_TYPE,
            f"send the body as Content-Type: application/json (got {request.mimetype or 'none'!r})",
        )
    return body


def _consumed(request: Request, body: bytes = b"") -> None:
    # functions-framework reads the whole body after every response (its ``read_request``
    # hook) unless it is cached: cache what was read, so a huge or endless body is never
    # read into memory after a refusal.
    request._cached_data = body


def _too_large(declared: int | None, max_bytes: int) -> HttpError:
    size = f"{declared} bytes" if declared is not None else "over the limit"
    return HttpError(
        413,
        ErrorKind.BODY_TOO_LARGE,
        f"the body is {size}; the limit is {max_bytes} (MAX_MESSAGE_BYTES): put large inputs "
        'in GCS and pass them as {"name": ..., "uri": "gs://..."}',
    )


def load_keys(keys_file: Path | None, keys: tuple[str, ...]) -> tuple[bytes, ...]:
    """The API keys: from the mounted secret file (one per line) and the env list."""
    found = [k for k in keys if k]
    if keys_file is not None:
        try:
            text = keys_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"API_KEYS_FILE={keys_file} can't be read: {exc}") from exc
        found += [line.strip() for line in text.splitlines()]
        found = [k for k in found if k and not k.startswith("#")]
        if not found:
            raise ConfigError(f"API_KEYS_FILE={keys_file} holds no key")
    return tuple(k.encode("utf-8") for k in found)


class KeyCheck:
    def __init__(self, keys: tuple[bytes, ...]) -> None:
        self._keys = keys

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def check(self, request: Request) -> None:
        if not self._keys:
            return
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        candidate = given.strip().encode("utf-8", "replace") if scheme.lower() == "bearer" else b""
        matched = False
        for key in self._keys:  # every key, always: no early exit
            matched |= hmac.compare_digest(candidate, key)
        if not matched or not candidate:
            raise HttpError(
                401, ErrorKind.UNAUTHORIZED, "a valid API key is needed: Authorization: Bearer KEY"
            )
