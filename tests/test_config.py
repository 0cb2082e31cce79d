"""Settings are read once, validated at start, and every bad value is named."""

from __future__ import annotations

import pytest

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
