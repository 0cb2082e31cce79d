"""Fetching https models from a local HTTPS host with a self-signed CA: ranges, redirects,
addresses, tokens, sizes, hashes and the faults a host can have, each with its failure class."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.modelhost import Certs, File, ModelHost
from tests.models.helpers import NEVER, blob, fetcher, sha, spec
from worker.errors import ErrorType, JobFailed, Transient

KiB = 1024


def model_error(fn: object) -> str:
    with pytest.raises(JobFailed) as info:
        fn()  # type: ignore[operator]
    assert info.value.error_type is ErrorType.MODEL_ERROR
    return info.value.message


def test_ranged_and_streamed_downloads_are_verified_and_cached(
    tmp_path: Path, model_host: ModelHost, model_certs: Certs
) -> None:
    big, small = blob(300 * KiB, 1), blob(10 * KiB, 2)
    model_host.files["/big.safetensors"] = File(big)
    model_host.files["/plain.safetensors"] = File(small, ranges=False, length=False)
    f = fetcher(tmp_path, model_certs, (model_host.netloc,))
    models = f.fetch(
        (
            spec(model_host.url("/big.safetensors"), big),
            spec(model_host.url("/plain.safetensors?download=true"), small, name="p.sft"),
        ),
        NEVER,
    )
    assert [(m.folder, m.name, m.sha256) for m in models.files] == [
        ("loras", "x.safetensors", sha(big)),
        ("loras", "p.sft", sha(small)),
    ]
    assert models.files[0].path.read_bytes() == big and models.files[1].path.read_bytes() == small
    assert [r["source"] for r in models.records] == ["download", "download"]
    assert models.records[1]["uri"] == model_host.url("/plain.safetensors") + "?..."
    assert model_host.gets("/big.safetensors") == 5  # the first chunk, then 4 ranged requests
    ranges = [s.headers.get("range") for s in model_host.seen if s.path == "/big.safetensors"]
    assert ranges[0] == "bytes=0-65535" and "bytes=262144-307199" in ranges
    assert all(s.headers["accept-encoding"] == "identity" for s in model_host.seen)
    models.release()

    again = f.fetch((spec(model_host.url("/big.safetensors"), big),), NEVER)
    assert again.records[0]["source"] == "cache" and model_host.gets("/big.safetensors") == 5


def test_a_token_goes_to_its_own_host_only(
    tmp_path: Path, model_host: ModelHost, model_certs: Certs
) -> None:
    other = ModelHost(model_certs, address="127.0.0.1").start()
    try:
        data = blob(5 * KiB)
        other.files["/cdn/x"] = File(data)
        model_host.files["/gated.safetensors"] = File(
            redirect=other.url("/cdn/x?sig=abc"), token="hf_s3cret"
        )
        hosts = (model_host.netloc, other.netloc)
        wanted = spec(model_host.url("/gated.safetensors"), data)
        message = model_error(
            lambda: fetcher(tmp_path / "a", model_certs, hosts).fetch((wanted,), NEVER)
        )
        assert "answered 403" in message and "MODEL_HOST_TOKENS" in message
        tokens = {model_host.netloc: "hf_s3cret"}
        got = fetcher(tmp_path / "b", model_certs, hosts, tokens=tokens).fetch((wanted,), NEVER)
        assert got.files[0].path.read_bytes() == data
        assert model_host.seen[-1].headers["authorization"] == "Bearer hf_s3cret"
        assert all("authorization" not in s.headers for s in other.seen)  # not forwarded
    finally:
        other.stop()


def test_redirects_leave_the_allow_list_never(
    tmp_path: Path, model_host: ModelHost, model_certs: Certs
) -> None:
    other = ModelHost(model_certs).start()
    try:
        other.files["/x"] = File(b"evil")
        model_host.files["/foreign"] = File(redirect=other.url("/x?token=t0p"))
        model_host.files["/plain-http"] = File(redirect=f"http://{other.netloc}/x")
        model_host.files["/loop"] = File(redirect="/loop")
        f = fetcher(tmp_path, model_certs, (model_host.netloc,))
        message = model_error(lambda: f.fetch((spec(model_host.url("/foreign"), b"x"),), NEVER))
        assert f"redirects to host '{other.netloc}', which is not on ALLOWED_MODEL_HOSTS" in message
        assert "t0p" not in message and other.seen == []
        assert "https only" in model_error(
            lambda: f.fetch((spec(model_host.url("/plain-http"), b"x"),), NEVER)
        )
        assert "more than 5 redirects" in model_error(
            lambda: f.fetch((spec(model_host.url("/loop"), b"x"),), NEVER)
        )
    finally:
        other.stop()


def test_loopback_link_local_metadata_and_changing_answers_are_refused(
    tmp_path: Path, model_host: ModelHost, model_certs: Certs
) -> None:
    data = blob(200 * KiB)
    model_host.files["/m.safetensors"] = File(data)
    port = model_host.port
    # The real resolver: localhost is loopback, refused without an exemption.
    local = fetcher(tmp_path / "a", model_certs, (f"localhost:{port}",), networks=())
    message = model_error(
        lambda: local.fetch((spec(f"https://localhost:{port}/m.safetensors", data),), NEVER)
    )
    assert "resolves to" in message and "loopback" in message and model_host.seen == []

    def answers(*seq: list[str]) -> object:
        calls: list[int] = []

        def resolve(host: str, p: int) -> list[str]:
            calls.append(p)
            return seq[min(len(calls), len(seq)) - 1]

        return resolve

    cases = {
        "169.254.169.254": [["169.254.169.254"]],  # the metadata server, even if exempted
        "10.0.0.7": [["93.184.215.14", "10.0.0.7"]],  # one private answer among public ones
        "169.254.10.1": [["169.254.10.1"]],
        "::ffff:127.0.0.2": [["::ffff:127.0.0.2"]],
        # DNS rebinding: the first connection gets the allowed address, the next a private one.
        "192.168.1.9": [["127.0.0.1"], ["192.168.1.9"]],
    }
    for bad, seq in cases.items():
        f = fetcher(
            tmp_path / bad.replace(":", "_"),
            model_certs,
            (f"models.test:{port}",),
            resolve=answers(*seq),  # type: ignore[arg-type]
            networks=("127.0.0.1/32", "169.254.169.0/24"),
        )
        message = model_error(
            lambda f=f: f.fetch((spec(f"https://models.test:{port}/m.safetensors", data),), NEVER)
        )
        assert f"resolves to {bad.removeprefix('::ffff:')}" in message, message
    with pytest.raises(JobFailed, match="metadata server"):
        f = fetcher(tmp_path / "md", model_certs, ("metadata.google.internal",))
        f.fetch((spec("https://metadata.google.internal/x.safetensors", data),), NEVER)


def test_status_sizes_and_hashes_fail_as_model_error(
    tmp_path: Path, model_host: ModelHost, model_certs: Certs
) -> None:
    data = blob(100 * KiB)
    model_host.files["/ok"] = File(data)
    model_host.files["/gone"] = File(status=404)
    model_host.files["/denied"] = File(status=403)
    model_host.files["/nolength"] = File(data, ranges=False, length=False)
    model_host.files["/gzip"] = File(data, encoding="gzip")
    f = fetcher(tmp_path, model_certs, (model_host.netloc,), max_model_bytes=50 * KiB)
    url = model_host.url
    assert "answered 404: no such file" in model_error(
        lambda: f.fetch((spec(url("/gone"), data),), NEVER)
    )
    assert "answered 403: access denied" in model_error(
        lambda: f.fetch((spec(url("/denied"), data),), NEVER)
    )
    for path in ("/ok", "/nolength"):  # told by Content-Range, or found while streaming
        message = model_error(lambda path=path: f.fetch((spec(url(path), data),), NEVER))
        assert "over 51200 bytes" in message and "MAX_MODEL_BYTES" in message
    assert "Content-Encoding gzip" in model_error(
        lambda: fetcher(tmp_path / "z", model_certs, (model_host.netloc,)).fetch(
            (spec(url("/gzip"), data),), NEVER
        )
    )
    roomy = fetcher(tmp_path / "h", model_certs, (model_host.netloc,))
    message = model_error(lambda: roomy.fetch((spec(url("/ok"), sha256="0" * 64),), NEVER))
    assert f"its SHA-256 is {sha(data)}, not the {'0' * 64}" in message
    assert "models[0] (loras/x.safetensors from https://127.0.0.1" in message
    assert list((tmp_path / "h" / ".cas" / "blobs").iterdir()) == []  # nothing kept
    assert list((tmp_path / "h" / ".cas" / "tmp").iterdir()) == []
    # A job's models together: the second one would go over MAX_TOTAL_MODEL_BYTES.
    model_host.files["/ok2"] = File(blob(100 * KiB, 3))
    capped = fetcher(
        tmp_path / "t", model_certs, (model_host.netloc,), max_total_model_bytes=150 * KiB
    )
    message = model_error(
        lambda: capped.fetch(
            (spec(url("/ok"), data), spec(url("/ok2"), blob(100 * KiB, 3), name="y.sft")),
            NEVER,
        )
    )
    assert message.startswith("models[1]") and "MAX_TOTAL_MODEL_BYTES" in message


def test_passing_faults_are_retried_then_transient(
    tmp_path: Path, model_host: ModelHost, model_certs: Certs
) -> None:
    data = {p: blob(200 * KiB, i) for i, p in enumerate(["/flaky", "/cut", "/cut-range"])}
    model_host.files["/flaky"] = File(data["/flaky"], status=503, times=2)
    model_host.files["/cut"] = File(data["/cut"], ranges=False, truncate=5000, times=1)
    model_host.files["/cut-range"] = File(data["/cut-range"], truncate=3000, times=2)
    model_host.files["/down"] = File(b"x", status=500)
    model_host.files["/stall"] = File(b"x", stall_s=3.0)
    f = fetcher(tmp_path, model_certs, (model_host.netloc,), retry_s=3.0, read_timeout_s=0.5)
    url = model_host.url
    for path, body in data.items():
        got = f.fetch((spec(url(path), body, name=f"{path[1:]}.sft"),), NEVER)
        assert got.files[0].path.read_bytes() == body  # the truncated copy was never kept
    # Two 503s, then the first chunk and 3 ranges; one cut stream, then the whole one; the
    # first chunk cut twice, then the first chunk and 3 ranges.
    assert [model_host.gets(p) for p in data] == [6, 2, 6]
    for path in ("/down", "/stall"):
        started = time.monotonic()
        with pytest.raises(Transient) as info:
            fetcher(
                tmp_path / path[1:],
                model_certs,
                (model_host.netloc,),
                retry_s=1.0,
                read_timeout_s=0.5,
            ).fetch((spec(url(path), b"x"),), NEVER)
        assert time.monotonic() - started < 10
        assert ("answered 500" if path == "/down" else "timed out") in str(info.value)


def test_a_stop_ends_a_download(tmp_path: Path, model_host: ModelHost, model_certs: Certs) -> None:
    from worker.errors import Stopped

    data = blob(400 * KiB)
    model_host.files["/slow"] = File(data, stall_s=0.3)
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    f = fetcher(tmp_path, model_certs, (model_host.netloc,), chunk=16 * KiB)
    with pytest.raises(Stopped):
        f.fetch((spec(model_host.url("/slow"), data),), stop)


def test_the_token_file_is_checked_and_never_quoted(tmp_path: Path) -> None:
    from worker.errors import ConfigError
    from worker.models import tokens

    good = tmp_path / "tokens.json"
    good.write_text('{"HuggingFace.co": "hf_abc123", "mirror.internal:8443": "m-xyz"}')
    loaded = tokens.load(good)
    assert loaded.for_host("huggingface.co", 443) == "hf_abc123"
    assert loaded.for_host("huggingface.co", 8443) is None  # a token belongs to one port
    assert loaded.for_host("mirror.internal", 8443) == "m-xyz"
    assert loaded.for_host("cdn.huggingface.co", 443) is None  # nor to subdomains
    assert "hf_abc123" not in repr(loaded) + str(loaded)
    assert tokens.load(None).for_host("huggingface.co", 443) is None
    for text in ('{"huggingface.co": "hf_secret\\r\\nX-Evil: 1"}', '["hf_secret"]', "hf_secret"):
        good.write_text(text)
        with pytest.raises(ConfigError) as info:
            tokens.load(good)
        assert "MODEL_HOST_TOKENS" in str(info.value) and "hf_secret" not in str(info.value)
    with pytest.raises(ConfigError, match="can't be read"):
        tokens.load(tmp_path / "absent.json")
