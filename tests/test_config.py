"""Settings are read once, validated at start, and every bad value is named."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker import configspec
from worker.config import Settings
from worker.errors import ConfigError


def test_defaults_and_resource_names() -> None:
    s = Settings.from_env(
        {
            "GOOGLE_CLOUD_PROJECT": "p",
            "JOBS_SUBSCRIPTION": "jobs-sub",
            "RESULTS_TOPIC": "projects/other/topics/results",
            "OUTPUT_URI": "gs://bkt/out/",
        }
    )
    assert s.jobs_subscription == "projects/p/subscriptions/jobs-sub"
    assert s.results_topic == "projects/other/topics/results"
    assert s.output_uri == "gs://bkt/out" and s.output_bucket == "bkt"
    assert s.timeouts.job_s == 1800 and s.timeouts.idle_exit_s == 60
    assert s.limits.max_message_bytes == 10_000_000


def test_every_problem_is_reported_at_once_with_its_variable() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env(
            {
                "JOBS_SUBSCRIPTION": "short-without-project",
                "OUTPUT_URI": "s3://bucket",
                "MAX_JOBS": "many",
                "IDLE_EXIT_S": "-5",
                "LEASE_EXTENSION_S": "5000",
                "PNG_METADATA": "maybe",
                "LOG_LEVEL": "chatty",
                "TASK_TIMEOUT_S": "100",
                "STOP_MARGIN_S": "200",
            }
        )
    text = str(info.value)
    for fragment in (
        "JOBS_SUBSCRIPTION='short-without-project' is a short name: set GOOGLE_CLOUD_PROJECT",
        "OUTPUT_URI='s3://bucket' must look like gs://bucket[/path]",
        "MAX_JOBS='many' is not a whole number",
        "IDLE_EXIT_S=-5.0 must be at least 0.0",
        "LEASE_EXTENSION_S=5000.0 must be between 10.0 and 600.0",
        "PNG_METADATA='maybe'",
        "LOG_LEVEL='CHATTY'",
        "STOP_MARGIN_S=200.0 must be below TASK_TIMEOUT_S",
    ):
        assert fragment in text


def test_required_settings_are_named() -> None:
    with pytest.raises(ConfigError, match="JOBS_SUBSCRIPTION, RESULTS_TOPIC, OUTPUT_URI"):
        Settings.from_env({}).require("JOBS_SUBSCRIPTION", "RESULTS_TOPIC", "OUTPUT_URI")


def test_task_index_must_fit_the_task_count() -> None:
    with pytest.raises(ConfigError, match="CLOUD_RUN_TASK_INDEX"):
        Settings.from_env({"CLOUD_RUN_TASK_INDEX": "3", "CLOUD_RUN_TASK_COUNT": "3"})


def test_model_settings() -> None:
    s = Settings.from_env(
        {
            "ALLOWED_MODEL_BUCKETS": "team-models, more-models",
            "ALLOWED_MODEL_HOSTS": "HuggingFace.co,*.hf.co,mirror.internal:8443",
            "MODEL_CACHE_MAX_GB": "0.5",
            "MODEL_FETCH_ALLOWED_NETWORKS": "10.8.0.0/16",
            "MODEL_HOST_TOKENS": "/secrets/tokens.json",
        }
    )
    assert s.limits.allowed_model_buckets == ("team-models", "more-models")
    assert s.limits.allowed_model_hosts == ("huggingface.co", "*.hf.co", "mirror.internal:8443")
    assert s.models.cache_max_bytes == 500_000_000
    assert str(s.models.host_tokens) == "/secrets/tokens.json"
    defaults = Settings.from_env({})
    assert defaults.limits.allowed_model_hosts == () == defaults.limits.allowed_model_buckets
    assert defaults.models.cache_max_bytes == 12_000_000_000
    with pytest.raises(ConfigError) as info:
        Settings.from_env(
            {
                "ALLOWED_MODEL_HOSTS": "https://huggingface.co,ok.com",
                "MODEL_CACHE_MAX_GB": "0",
                "MODEL_FETCH_ALLOWED_NETWORKS": "10.0.0.300/8",
            }
        )
    text = str(info.value)
    assert "ALLOWED_MODEL_HOSTS: 'https://huggingface.co' is not a host name" in text
    assert "MODEL_CACHE_MAX_GB=0.0 must be above 0" in text
    assert "MODEL_FETCH_ALLOWED_NETWORKS: '10.0.0.300/8' is not a CIDR" in text


def test_require_knows_every_declared_variable() -> None:
    s = Settings.from_env({"OUTPUT_URI": "gs://bkt/out", "API_KEYS": "a,b"})
    s.require("OUTPUT_URI", "API_KEYS", "WORK_DIR")  # set, or with a default: nothing missing
    with pytest.raises(ConfigError, match="missing required setting\\(s\\): COMFYUI_DIR"):
        s.require("OUTPUT_URI", "COMFYUI_DIR")
    with pytest.raises(KeyError, match="NOT_A_SETTING"):
        s.require("NOT_A_SETTING")


def test_a_service_names_itself_where_a_job_would() -> None:
    s = Settings.from_env({"K_SERVICE": "comfy-service", "K_REVISION": "comfy-service-00007"})
    assert (s.identity.job, s.identity.execution) == ("comfy-service", "comfy-service-00007")
    both = Settings.from_env({"CLOUD_RUN_JOB": "comfy-worker-l4", "K_SERVICE": "svc"})
    assert both.identity.job == "comfy-worker-l4"
    assert both.observability.service_name(both.identity) == "comfy-worker-l4"
    assert Settings().observability.service_name(Settings().identity) == "comfy-worker"


def test_derived_defaults_follow_the_settings_they_derive_from() -> None:
    s = Settings.from_env({"OUTPUT_URI": "gs://bkt/out/", "WORK_DIR": "/w"})
    assert s.submit_input_uri == "gs://bkt/out/_inputs"
    assert s.dispatch_lock_uri == "gs://bkt/out/_dispatch"
    assert str(s.model_cache_dir) == "/w/models"
    assert str(s.in_slot(s.work_dir / "worker-1").model_cache_dir) == "/w/models"  # shared
    assert Settings().submit_input_uri is None and Settings().dispatch_lock_uri is None
    own = Settings.from_env(
        {
            "SUBMIT_INPUT_URI": "gs://inb/x",
            "DISPATCH_LOCK_URI": "gs://lock",
            "MODEL_CACHE_DIR": "/c",
        }
    )
    assert (own.submit_input_uri, own.dispatch_lock_uri) == ("gs://inb/x", "gs://lock")
    assert str(own.model_cache_dir) == "/c"


def test_the_defaults_are_the_declared_ones() -> None:
    read = Settings.from_env({})
    assert read == Settings()
    for attrs, setting in configspec.walk(Settings):
        value: object = read
        for attr in attrs:
            value = getattr(value, attr)
        assert value == setting.field_value(setting.default) or setting.env == "PIPELINES_DIR"


@given(
    name=st.sampled_from(sorted(n for _, s in configspec.walk(Settings) for n in s.names)),
    value=st.text(max_size=40),
)
@settings(max_examples=300, deadline=None)
def test_any_text_in_any_variable_is_read_or_named(name: str, value: str) -> None:
    try:
        Settings.from_env({name: value, "GOOGLE_CLOUD_PROJECT": "p", "REGION": "r"})
    except ConfigError as exc:
        lines = str(exc).splitlines()[1:]
        assert lines and all(name in line or "CLOUD_RUN_TASK" in line for line in lines), exc
