"""The ``models`` field of a job: every entry checked at parse time, generated values included."""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.config import Limits
from worker.errors import ErrorType, JobFailed
from worker.message.job import Delivery, ModelSpec
from worker.message.parse import Parser, Refused
from worker.models.netpolicy import host_allowed
from worker.models.spec import check_models, redact

SHA = "ab" * 32
LIMITS = Limits(
    allowed_model_buckets=("models-b",),
    allowed_model_hosts=("huggingface.co", "*.hf.co", "127.0.0.1:8443"),
)
WORKFLOW = {"1": {"class_type": "EmptyImage", "inputs": {}}}


def entry(**fields: Any) -> dict[str, Any]:
    return {"uri": "gs://models-b/l.safetensors", "folder": "loras", "name": "l.safetensors"} | (
        fields
    )


def invalid(raw: Any, limits: Limits = LIMITS) -> str:
    with pytest.raises(JobFailed) as info:
        check_models(raw, limits)
    assert info.value.error_type is ErrorType.INVALID_JOB
    return info.value.message


def test_gs_and_https_entries() -> None:
    https = "https://huggingface.co/org/repo/resolve/main/x.safetensors?download=true"
    specs = check_models(
        [entry(), entry(uri=https, name="x.safetensors", sha256=SHA.upper(), folder="checkpoints")],
        LIMITS,
    )
    assert specs == (
        ModelSpec("gs://models-b/l.safetensors", "loras", "l.safetensors"),
        ModelSpec(https, "checkpoints", "x.safetensors", SHA),
    )
    assert check_models([entry(uri="https://cdn.hf.co/a/b.sft", sha256=SHA, name="b.sft")], LIMITS)
    assert check_models([entry(uri="https://127.0.0.1:8443/m", sha256=SHA)], LIMITS)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"uri": "gs://other/l.safetensors"}, "bucket 'other', which models may not come from"),
        ({"uri": "https://evil.com/l.safetensors", "sha256": SHA}, "host 'evil.com'"),
        ({"uri": "https://huggingface.co:8443/x", "sha256": SHA}, "host 'huggingface.co:8443'"),
        ({"uri": "https://127.0.0.1/m", "sha256": SHA}, "host '127.0.0.1'"),
        ({"uri": "https://hf.co/x", "sha256": SHA}, "host 'hf.co'"),  # *.hf.co: subdomains only
        ({"uri": "http://huggingface.co/x", "sha256": SHA}, "neither gs://bucket/path nor"),
        ({"uri": "https://u:p@huggingface.co/x", "sha256": SHA}, "credentials go in"),
        ({"uri": "https://huggingface.co/x#f", "sha256": SHA}, "without a #fragment"),
        ({"uri": "https://huggingface.co/", "sha256": SHA}, "must be https://host/path"),
        ({"uri": "https://huggingface.co/a b", "sha256": SHA}, "spaces or control"),
        ({"uri": "https://huggingface.co/x"}, "sha256 is required for an https model"),
        ({"uri": "https://huggingface.co/x", "sha256": SHA, "name": "x.ckpt"}, "safetensors only"),
        ({"sha256": "xyz"}, "must be 64 hex digits"),
        ({"sha256": 5}, "must be 64 hex digits"),
        ({"name": "../x.safetensors"}, "is not a safe file name"),
        ({"name": "sub/x.safetensors"}, "is not a safe file name"),
        ({"name": ".hidden.safetensors"}, "is not a safe file name"),
        ({"name": "x.txt"}, "must end with one of"),
        ({"folder": "custom_nodes"}, "is not a ComfyUI model folder"),
        ({"folder": "../loras"}, "is not a ComfyUI model folder"),
        ({"extra": 1}, "unknown field(s) ['extra']"),
    ],
)
def test_refused_entries_say_what_to_fix(fields: dict[str, Any], expected: str) -> None:
    assert expected in invalid([entry(**fields)])


def test_list_shape_count_and_duplicates() -> None:
    assert "must be a list" in invalid({"uri": "x"})
    assert "must be {" in invalid([{"uri": "gs://models-b/x.safetensors"}])
    assert "limit is 16 (MAX_MODELS)" in invalid([entry(name=f"{i}.pt") for i in range(17)])
    assert "appears twice" in invalid([entry(), entry(uri="gs://models-b/other.safetensors")])
    # The same file under two names is fine (one download, two names).
    assert len(check_models([entry(), entry(name="l2.safetensors")], LIMITS)) == 2


def test_no_model_sources_by_default() -> None:
    assert "allowed: none (ALLOWED_MODEL_BUCKETS)" in invalid([entry()], Limits())
    https = entry(uri="https://huggingface.co/x", sha256=SHA)
    assert "allowed: none (ALLOWED_MODEL_HOSTS)" in invalid([https], Limits())


def test_redact_hides_query_strings() -> None:
    assert redact("https://h/p?token=s3cret&x=1") == "https://h/p?..."
    assert redact("gs://b/k") == "gs://b/k"


def test_a_message_with_models_in_both_forms() -> None:
    parser = Parser(LIMITS, "out")
    models = [entry()]
    v1 = parser.parse(_delivery({"workflow": WORKFLOW, "models": models}))
    runpod = parser.parse(_delivery({"input": {"workflow": WORKFLOW, "models": models}}))
    assert v1.models == runpod.models == (ModelSpec(*entry().values()),)
    with pytest.raises(Refused) as info:
        parser.parse(_delivery({"workflow": WORKFLOW, "models": [entry(folder="..")]}, "j-9"))
    assert info.value.job_id == "j-9" and info.value.error.error_type is ErrorType.INVALID_JOB


def _delivery(body: dict[str, Any], job_id: str | None = None) -> Delivery:
    attributes = {"job_id": job_id} if job_id else {}
    return Delivery("m-1", json.dumps(body).encode(), attributes, 1, handle=None)


# -- properties over generated values ------------------------------------------------------------

names = st.one_of(
    st.text(max_size=220),
    st.builds(
        lambda stem, ext: stem + ext,
        st.text(st.characters(codec="utf-8"), max_size=30),
        st.sampled_from([".safetensors", ".ckpt", ".SFT", ".pt", ""]),
    ),
    st.sampled_from(["..", ".", "a/..", "a\\b.pt", "x.pt\x00", "x .pt", "x.pt ", "CON.pt"]),
)
hosts = st.sampled_from(
    [
        "huggingface.co",
        "HuggingFace.co",
        "cdn.hf.co",
        "hf.co",
        "evil.com",
        "127.0.0.1",
        "127.0.0.1:8443",
        "huggingface.co.evil.com",
        "evilhf.co",
        "[::1]",
        "a.b.hf.co",
        "%68f.co",
    ]
)
uris = st.one_of(
    st.text(max_size=80),
    st.builds(
        lambda scheme, userinfo, host, path: f"{scheme}://{userinfo}{host}/{path}",
        st.sampled_from(["https", "http", "gs", "HTTPS", "file"]),
        st.sampled_from(["", "u@", "u:p@", "huggingface.co@"]),
        st.one_of(hosts, st.sampled_from(["models-b", "other", "models-b.evil"])),
        st.text(max_size=30),
    ),
)
hashes = st.one_of(st.none(), st.text(max_size=70), st.sampled_from([SHA, SHA.upper(), SHA[:-1]]))


@settings(max_examples=300, deadline=None)
@given(name=names, folder=st.one_of(st.text(max_size=70), st.sampled_from(["loras", "vae"])))
def test_accepted_names_and_folders_stay_one_level_inside(name: str, folder: str) -> None:
    try:
        (spec,) = check_models([entry(name=name, folder=folder)], LIMITS)
    except JobFailed as exc:
        assert exc.error_type is ErrorType.INVALID_JOB
        return
    path = PurePosixPath("/cache") / spec.folder / spec.name
    assert path.parent.parent == PurePosixPath("/cache")  # never a deeper or a higher folder
    assert spec.name not in (".", "..") and not spec.name.startswith(".")
    assert "/" not in spec.name + spec.folder and "\\" not in spec.name
    assert all(c.isprintable() for c in spec.name) and spec.name == spec.name.strip()


@settings(max_examples=400, deadline=None)
@given(uri=uris, sha256=hashes)
def test_accepted_uris_are_allow_listed(uri: str, sha256: str | None) -> None:
    fields: dict[str, Any] = {"uri": uri} | ({} if sha256 is None else {"sha256": sha256})
    try:
        (spec,) = check_models([entry(**fields)], LIMITS)
    except JobFailed as exc:
        assert exc.error_type is ErrorType.INVALID_JOB
        return
    parts = urlsplit(spec.uri)
    if spec.uri.startswith("gs://"):
        assert parts.netloc == "models-b"
    else:
        assert parts.scheme == "https" and "@" not in parts.netloc and not parts.fragment
        assert host_allowed(parts.hostname or "", parts.port or 443, LIMITS.allowed_model_hosts)
        assert spec.sha256 is not None
    if spec.sha256 is not None:
        assert len(spec.sha256) == 64 and set(spec.sha256) <= set("0123456789abcdef")


@settings(max_examples=200, deadline=None)
@given(
    raw=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(
                st.sampled_from(["uri", "folder", "name", "sha256", "x"]), inner, max_size=5
            )
        ),
        max_leaves=12,
    )
)
def test_any_json_is_a_model_list_or_invalid_job(raw: Any) -> None:
    try:
        check_models(raw, LIMITS)
    except JobFailed as exc:
        assert exc.error_type is ErrorType.INVALID_JOB and len(exc.message) < 2000
