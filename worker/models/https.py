"""Download a model over HTTPS from an allow-listed host: parallel ranged requests, safely.

- https only, certificates verified (the system's CAs, or ``SSL_CERT_FILE``); redirects are
  followed (at most 5) only to https URLs on ``ALLOWED_MODEL_HOSTS``;
- every connection resolves its host again, checks every answer (``netpolicy``) and connects to
  an address it has just checked, so a DNS answer that changes to a private address is refused;
- a token from ``MODEL_HOST_TOKENS`` goes to its own host only, never along a redirect;
- sizes are capped (``Content-Length``, ``Content-Range`` and the bytes read), connects time out
  after 10 s, a read that waits 30 s fails, and the whole model has ``MODEL_FETCH_TIMEOUT_S``;
- the first request asks for the first chunk; a host that answers 206 gets the rest as parallel
  ranged requests (``MODEL_DOWNLOAD_WORKERS`` x ``MODEL_CHUNK_MIB``), each to the final URL of
  the redirects; a host that answers 200 streams the whole file on one connection.

The job's fault raises ``ModelRefused``, a passing fault ``ModelUnreachable``; neither message
holds a query string or a token.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from worker.errors import Stopped
from worker.models.faults import ModelRefused, ModelUnreachable
from worker.models.netpolicy import DEFAULT_PORT, AddressPolicy, AddressRefused, host_allowed
from worker.models.spec import redact
from worker.models.tokens import HostTokens

MAX_REDIRECTS = 5
READ_BYTES = 1024 * 1024
CHUNK_ATTEMPTS = 3
GROW_BYTES = 64 * 1024 * 1024  # room asked for at a time when a host sends no length
_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class HttpsPolicy:
    hosts: tuple[str, ...]
    addresses: AddressPolicy = field(default_factory=AddressPolicy)
    tokens: HostTokens = field(default_factory=HostTokens)
    context: ssl.SSLContext = field(default_factory=ssl.create_default_context)
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    chunk_bytes: int = field(kw_only=True)  # MODEL_CHUNK_MIB, from the settings
    workers: int = field(kw_only=True)  # MODEL_DOWNLOAD_WORKERS


@dataclass(frozen=True)
class Downloaded:
    size: int
    sha256: str | None  # computed while streaming; None after ranged requests (hash the file)


class _Pinned(http.client.HTTPSConnection):
    """An HTTPS connection to one checked address, with SNI and the certificate of ``host``."""

    def __init__(self, host: str, port: int, address: str, policy: HttpsPolicy) -> None:
        super().__init__(host, port, timeout=policy.connect_timeout_s, context=policy.context)
        self._address = address
        self._tls = policy.context
        self._read_timeout = policy.read_timeout_s

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        try:
            self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock.settimeout(self._read_timeout)


class _Transfer:
    """One model's download: its deadline, its stop flag, and the URL the redirects led to."""

    def __init__(self, policy: HttpsPolicy, url: str, stop: threading.Event, timeout_s: float):
        self.policy = policy
        self.url = url
        self.stop = stop
        self.deadline = time.monotonic() + timeout_s
        self.timeout_s = timeout_s

    def check(self) -> None:
        if self.stop.is_set():
            raise Stopped("stopped while downloading a model")
        if time.monotonic() > self.deadline:
            raise ModelUnreachable(
                f"{redact(self.url)} took longer than {self.timeout_s:.0f} s "
                "(MODEL_FETCH_TIMEOUT_S)"
            )

    def get(
        self, url: str, first: int, last: int | None
    ) -> tuple[http.client.HTTPResponse, _Pinned, str]:
        """GET bytes ``first``-``last`` of ``url``, following redirects; also the final URL."""
        for _ in range(MAX_REDIRECTS + 1):
            self.check()
            parts = urlsplit(url)
            host, port = _host_port(url)
            conn = self._connect(host, port)
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            headers = {"User-Agent": "comfy-batch-worker", "Accept-Encoding": "identity"}
            if last is not None:
                headers["Range"] = f"bytes={first}-{last}"
            token = self.policy.tokens.for_host(host, port)
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            try:
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise ModelUnreachable(f"{redact(url)}: {_what(exc)}") from None
            if response.status not in _REDIRECTS:
                return response, conn, url
            location = response.getheader("Location") or ""
            conn.close()
            target = urljoin(url, location)
            _check_redirect(url, target, self.policy.hosts)
            url = target
        raise ModelRefused(f"{redact(self.url)}: more than {MAX_REDIRECTS} redirects")

    def _connect(self, host: str, port: int) -> _Pinned:
        try:
            addresses = self.policy.addresses.addresses(host, port)
        except AddressRefused as exc:
            raise ModelRefused(str(exc)) from None
        except OSError as exc:
            raise ModelUnreachable(f"{host} does not resolve ({_what(exc)})") from None
        failure: BaseException | None = None
        for address in addresses:
            conn = _Pinned(host, port, address, self.policy)
            try:
                conn.connect()
                return conn
            except ssl.SSLCertVerificationError as exc:
                conn.close()
                raise ModelRefused(
                    f"{host}'s certificate is not trusted ({exc.verify_message})"
                ) from None
            except OSError as exc:
                conn.close()
                failure = exc
        raise ModelUnreachable(f"can't connect to {host}:{port} ({_what(failure)})")


def _check_redirect(url: str, target: str, hosts: tuple[str, ...]) -> None:
    shown = redact(target)
    if not target.startswith("https://"):
        raise ModelRefused(f"{redact(url)} redirects to {shown}: https only")
    try:
        host, port = _host_port(target)
    except ValueError:
        raise ModelRefused(f"{redact(url)} redirects to an invalid URL") from None
    if "@" in urlsplit(target).netloc or not host_allowed(host, port, hosts):
        where = host if port == DEFAULT_PORT else f"{host}:{port}"
        raise ModelRefused(
            f"{redact(url)} redirects to host {where!r}, which is not on ALLOWED_MODEL_HOSTS "
            "(add the host its downloads come from, e.g. a CDN)"
        )


def download(
    url: str,
    dest: Path,
    max_bytes: int,
    policy: HttpsPolicy,
    stop: threading.Event,
    timeout_s: float,
    on_size: Callable[[int], None] = lambda size: None,
) -> Downloaded:
    """Download ``url`` to ``dest`` (created or replaced); its size and maybe its SHA-256.

    ``on_size`` hears the size before any byte is written (when the host does not say, the
    size so far plus 64 MiB, again each time it is passed): the cache makes room there, or
    refuses."""
    transfer = _Transfer(policy, url, stop, timeout_s)
    response, conn, transfer.url = transfer.get(url, 0, policy.chunk_bytes - 1)
    try:
        _check_status(response, transfer.url)
        if response.status == 206:
            first = _content_range(response, transfer.url, 0, None)
            total = first[2]
            _check_size(total, max_bytes, transfer.url)
            on_size(total)
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                os.ftruncate(fd, total)
                _copy(response, fd, first[0], first[1] - first[0] + 1, transfer)
            finally:
                conn.close()
            try:
                _rest(transfer, fd, first[1] + 1, total)
            finally:
                os.close(fd)
            return Downloaded(total, None)
        return _stream(response, dest, max_bytes, transfer, on_size)
    finally:
        conn.close()


def _stream(
    response: http.client.HTTPResponse,
    dest: Path,
    max_bytes: int,
    transfer: _Transfer,
    on_size: Callable[[int], None],
) -> Downloaded:
    """A 200 answer: the whole body on this connection, hashed as it comes."""
    length = response.getheader("Content-Length")
    expected = int(length) if length and length.isdigit() else None
    if expected is not None:
        _check_size(expected, max_bytes, transfer.url)
        on_size(expected)
    digest = hashlib.sha256()
    size = announced = 0
    with dest.open("wb") as f:
        while True:
            transfer.check()
            try:
                block = response.read(READ_BYTES)
            except (OSError, http.client.HTTPException) as exc:
                raise ModelUnreachable(f"{redact(transfer.url)}: {_what(exc)}") from None
            if not block:
                break
            size += len(block)
            if size > max_bytes:
                _check_size(size, max_bytes, transfer.url)
            if expected is None and size > announced:  # no length given: room as it grows
                announced = min(max_bytes, size + GROW_BYTES)
                on_size(announced)
            digest.update(block)
            f.write(block)
    if expected is not None and size != expected:
        raise ModelUnreachable(
            f"{redact(transfer.url)}: the transfer ended after {size} of {expected} bytes"
        )
    return Downloaded(size, digest.hexdigest())


def _rest(transfer: _Transfer, fd: int, start: int, total: int) -> None:
    """Bytes ``start``..``total-1`` as parallel ranged requests into ``fd``."""
    size = transfer.policy.chunk_bytes
    ranges = [(a, min(a + size, total) - 1) for a in range(start, total, size)]
    if not ranges:
        return

    def one(span: tuple[int, int]) -> None:
        for attempt in range(1, CHUNK_ATTEMPTS + 1):
            try:
                response, conn, _ = transfer.get(transfer.url, *span)
                try:
                    _check_status(response, transfer.url)
                    got = _content_range(response, transfer.url, span[0], total)
                    if got[:2] != span:
                        raise ModelUnreachable(f"{redact(transfer.url)}: wrong range {got}")
                    _copy(response, fd, span[0], span[1] - span[0] + 1, transfer)
                finally:
                    conn.close()
                return
            except ModelUnreachable:
                if attempt == CHUNK_ATTEMPTS:
                    raise
                transfer.check()
                time.sleep(0.2 * attempt)

    workers = max(1, min(transfer.policy.workers, len(ranges)))
    with ThreadPoolExecutor(workers, "model-range") as pool:
        for future in [pool.submit(one, span) for span in ranges]:
            future.result()  # the first failure ends the download (the rest still finish)


def _copy(
    response: http.client.HTTPResponse, fd: int, offset: int, count: int, transfer: _Transfer
) -> None:
    done = 0
    while done < count:
        transfer.check()
        try:
            block = response.read(min(READ_BYTES, count - done))
        except (OSError, http.client.HTTPException) as exc:
            raise ModelUnreachable(f"{redact(transfer.url)}: {_what(exc)}") from None
        if not block:
            raise ModelUnreachable(
                f"{redact(transfer.url)}: a range ended after {done} of {count} bytes"
            )
        os.pwrite(fd, block, offset + done)
        done += len(block)


def _check_status(response: http.client.HTTPResponse, url: str) -> None:
    status, shown = response.status, redact(url)
    encoding = (response.getheader("Content-Encoding") or "identity").lower()
    if status in (200, 206) and encoding != "identity":
        raise ModelRefused(f"{shown} is served with Content-Encoding {encoding}, not the file")
    if status in (200, 206):
        return
    if status in (401, 403):
        raise ModelRefused(
            f"{shown} answered {status}: access denied (a gated or private model needs a token "
            "for its host in MODEL_HOST_TOKENS)"
        )
    if status in (404, 410):
        raise ModelRefused(f"{shown} answered {status}: no such file")
    if status == 429 or status >= 500:
        raise ModelUnreachable(f"{shown} answered {status}")
    raise ModelRefused(f"{shown} answered {status} {response.reason}")


def _content_range(
    response: http.client.HTTPResponse, url: str, first: int, total: int | None
) -> tuple[int, int, int]:
    match = _RANGE.fullmatch((response.getheader("Content-Range") or "").strip())
    if match is None:
        raise ModelUnreachable(f"{redact(url)}: a 206 answer without a valid Content-Range")
    got = (int(match[1]), int(match[2]), int(match[3]))
    if got[0] != first or got[1] < got[0] or got[1] >= got[2] or total not in (None, got[2]):
        raise ModelUnreachable(f"{redact(url)}: Content-Range {got} does not fit the request")
    return got


def _check_size(size: int, max_bytes: int, url: str) -> None:
    if size > max_bytes:
        raise ModelRefused(
            f"{redact(url)} is over {max_bytes} bytes, the most one model may be "
            "(MAX_MODEL_BYTES, MAX_TOTAL_MODEL_BYTES)"
        )


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return (parts.hostname or ""), (parts.port if parts.port is not None else DEFAULT_PORT)


def _what(exc: BaseException | None) -> str:
    if exc is None:
        return "no address"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else None
    return type(exc).__name__ + (f": {detail}" if detail else "")
