"""A local HTTPS model host for tests: a self-signed CA the tests trust, files with ranges,
redirects, tokens, and the faults a real host can have (5xx, truncation, stalls).

The CA and the server certificate (for ``localhost``, ``models.test``, ``127.0.0.1`` and
``127.0.0.2``) are made
with ``cryptography`` once per session. Each ``ModelHost`` serves on its own port and records
every request (path, headers) so that tests can count downloads and see what was sent.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Certs:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def client_context(self) -> ssl.SSLContext:
        """What the worker's default context becomes with ``SSL_CERT_FILE=ca_file``."""
        return ssl.create_default_context(cafile=str(self.ca_file))


def make_certs(directory: Path) -> Certs:
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "comfy-batch-worker test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans = [x509.DNSName("localhost"), x509.DNSName("models.test")] + [
        x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", "127.0.0.2")
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    certs = Certs(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    certs.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    certs.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    certs.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certs


@dataclass
class File:
    """What one path serves. Faults apply to the first ``times`` requests (None: all)."""

    data: bytes = b""
    status: int = 200
    redirect: str | None = None  # a Location: answered with 302
    token: str | None = None  # required as "Authorization: Bearer <token>", else 403
    ranges: bool = True  # answer Range requests with 206
    truncate: int | None = None  # send Content-Length in full, then only this many bytes
    stall_s: float = 0.0  # wait before the body
    length: bool = True  # send Content-Length on 200 answers
    encoding: str | None = None  # a Content-Encoding header
    times: int | None = None  # how many requests the fault above applies to


@dataclass
class Seen:
    path: str
    headers: dict[str, str]


@dataclass
class ModelHost:
    certs: Certs
    address: str = "127.0.0.1"
    files: dict[str, File] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> ModelHost:
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                host._serve(self)

        server = ThreadingHTTPServer((self.address, 0), Handler)
        server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.certs.cert_file, self.certs.key_file)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def netloc(self) -> str:
        return f"{self.address}:{self.port}"

    def url(self, path: str) -> str:
        return f"https://{self.netloc}{path}"

    def gets(self, path: str) -> int:
        return sum(1 for s in self.seen if s.path.split("?")[0] == path)

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?")[0]
        headers = {k.lower(): v for k, v in handler.headers.items()}
        self.seen.append(Seen(handler.path, headers))
        spec = self.files.get(path)
        if spec is None:
            return _answer(handler, 404, b"not found")
        faulty = spec.times is None or self.gets(path) <= spec.times
        if spec.token is not None and headers.get("authorization") != f"Bearer {spec.token}":
            return _answer(handler, 403, b"forbidden")
        if spec.redirect is not None:
            return _answer(handler, 302, b"", {"Location": spec.redirect})
        if spec.status != 200 and faulty:
            return _answer(handler, spec.status, b"fault")
        data, first, status = spec.data, 0, 200
        extra: dict[str, str] = {}
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", headers.get("range", ""))
        if match and spec.ranges:
            first, last = int(match[1]), min(int(match[2]), len(data) - 1)
            extra["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
            data, status = data[first : last + 1], 206
        if spec.encoding:
            extra["Content-Encoding"] = spec.encoding
        if faulty and spec.stall_s:
            time.sleep(spec.stall_s)
        cut = spec.truncate if faulty and spec.truncate is not None else None
        _answer(handler, status, data, extra, length=spec.length or status == 206, cut=cut)


def _answer(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    extra: dict[str, str] | None = None,
    *,
    length: bool = True,
    cut: int | None = None,
) -> None:
    handler.send_response(status)
    for key, value in (extra or {}).items():
        handler.send_header(key, value)
    if length:
        handler.send_header("Content-Length", str(len(body)))
    else:
        handler.send_header("Connection", "close")
    handler.end_headers()
    try:
        handler.wfile.write(body if cut is None else body[:cut])
        handler.wfile.flush()
    except OSError:
        return
    if cut is not None or not length:
        handler.close_connection = True
