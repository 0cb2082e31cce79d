"""Invariants of infra/ (Terraform, parsed with python-hcl2): dead-lettering, retry policy, least
privilege, buckets, alerts, and agreement with the names jobs.yaml uses."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.deploy import hcl, jobfiles

WORKER = "${local.worker_member}"
DISPATCHER = "${local.dispatch_member}"
AGENT = "${local.pubsub_agent}"


@pytest.fixture(scope="module")
def infra() -> hcl.Infra:
    return hcl.load()


def _seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match, f"{duration!r} is not a duration in seconds"
    return int(match.group(1))


def bindings(infra: hcl.Infra, member: str) -> set[tuple[str, str, str]]:
    """(resource type, target, role) of every IAM grant to ``member``."""
    found = set()
    for (rtype, _), body in infra.resources.items():
        if rtype.endswith("_iam_member") and body.get("member") == member:
            target = next(
                str(body[k])
                for k in (
                    "subscription",
                    "topic",
                    "bucket",
                    "project",
                    "repository",
                    "service_account_id",
                    "secret_id",
                )
                if k in body
            )
            found.add((rtype, target, body["role"]))
    return found


def test_job_subscription_dead_letters_after_five_attempts_with_backoff(infra: hcl.Infra) -> None:
    sub = infra.get("google_pubsub_subscription", "jobs")
    assert sub["topic"] == "${google_pubsub_topic.jobs.id}"
    assert sub["ack_deadline_seconds"] == 600
    dead = hcl.one(sub, "dead_letter_policy")
    assert dead["dead_letter_topic"] == "${google_pubsub_topic.dead_letter.id}"
    assert dead["max_delivery_attempts"] == 5
    retry = hcl.one(sub, "retry_policy")
    assert 10 <= _seconds(retry["minimum_backoff"]) < _seconds(retry["maximum_backoff"]) <= 600
    assert hcl.one(sub, "expiration_policy")["ttl"] == "", "the subscription never expires"


def test_pubsub_service_agent_can_dead_letter(infra: hcl.Infra) -> None:
    assert infra.locals()["pubsub_agent"] == (
        "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
    )
    assert bindings(infra, AGENT) == {
        (
            "google_pubsub_topic_iam_member",
            "${google_pubsub_topic.dead_letter.id}",
            "roles/pubsub.publisher",
        ),
        (
            "google_pubsub_subscription_iam_member",
            "${google_pubsub_subscription.jobs.id}",
            "roles/pubsub.subscriber",
        ),
    }


def test_worker_has_least_privilege(infra: hcl.Infra) -> None:
    optional = {
        name: body
        for (rtype, name), body in infra.resources.items()
        if rtype == "google_project_iam_member" and body.get("member") == WORKER
    }
    # The only project-wide grant is the optional trace writer, off unless enable_tracing.
    assert {name: (b["role"], b["count"]) for name, b in optional.items()} == {
        "worker_writes_traces": ("roles/cloudtrace.agent", "${var.enable_tracing ? 1 : 0}")
    }
    variables = {k: v for block in infra.blocks["variable"] for k, v in block.items()}
    assert variables["enable_tracing"]["default"] is False
    per_resource = {b for b in bindings(infra, WORKER) if b[0] != "google_project_iam_member"}
    assert per_resource == {
        (
            "google_pubsub_subscription_iam_member",
            "${google_pubsub_subscription.jobs.id}",
            "roles/pubsub.subscriber",
        ),
        (
            "google_pubsub_topic_iam_member",
            "${google_pubsub_topic.results.id}",
            "roles/pubsub.publisher",
        ),
        (
            "google_storage_bucket_iam_member",
            "${google_storage_bucket.outputs.name}",
            "roles/storage.objectCreator",
        ),
        (
            "google_storage_bucket_iam_member",
            "${google_storage_bucket.outputs.name}",
            "roles/storage.objectViewer",
        ),
        (
            "google_storage_bucket_iam_member",
            "${google_storage_bucket.models.name}",
            "roles/storage.objectViewer",
        ),
        (
            "google_storage_bucket_iam_member",
            "${google_storage_bucket.manifests.name}",
            "roles/storage.objectViewer",
        ),
        (
            "google_storage_bucket_iam_member",
            "${google_storage_bucket.inputs.name}",
            "roles/storage.objectViewer",
        ),
    }
    creates = infra.get("google_storage_bucket_iam_member", "worker_creates_outputs")
    assert hcl.one(creates, "condition")["expression"].startswith("!resource.name.startsWith(")
    assert "/objects/_dispatch/" in hcl.one(creates, "condition")["expression"]


def test_dispatcher_lock_grants_are_limited_to_the_lock_prefix(infra: hcl.Infra) -> None:
    bucket_grants = {
        name: body
        for name, body in infra.of_type("google_storage_bucket_iam_member").items()
        if body["member"] == DISPATCHER
    }
    assert {b["role"] for b in bucket_grants.values()} == {
        "roles/storage.objectCreator",
        "roles/storage.objectViewer",
    }
    for body in bucket_grants.values():
        assert "/objects/_dispatch/" in hcl.one(body, "condition")["expression"]
    project_roles = {
        role
        for rtype, _, role in bindings(infra, DISPATCHER)
        if rtype == "google_project_iam_member"
    }
    assert project_roles == {"roles/monitoring.viewer", "roles/run.jobsExecutorWithOverrides"}
    runs = infra.get("google_project_iam_member", "dispatcher_runs_jobs")
    worker_job = jobfiles.load("jobs.yaml")["metadata"]["name"]
    expression = hcl.one(runs, "condition")["expression"].replace('\\"', '"')
    assert expression == (
        'resource.name.startsWith("projects/${var.project_id}/locations/${var.region}'
        f'/jobs/{worker_job}")'
    ), "it may run the worker job only"


SERVICE = "${local.service_member}"


def test_the_service_account_has_the_workers_grants_and_queues_jobs(infra: hcl.Infra) -> None:
    assert bindings(infra, SERVICE) == {
        ("google_pubsub_topic_iam_member", "${google_pubsub_topic.results.id}",
         "roles/pubsub.publisher"),
        ("google_pubsub_topic_iam_member", "${google_pubsub_topic.jobs.id}",
         "roles/pubsub.publisher"),
        ("google_storage_bucket_iam_member", "${google_storage_bucket.outputs.name}",
         "roles/storage.objectCreator"),
        ("google_storage_bucket_iam_member", "${google_storage_bucket.outputs.name}",
         "roles/storage.objectViewer"),
        ("google_storage_bucket_iam_member", "${google_storage_bucket.inputs.name}",
         "roles/storage.objectViewer"),
        ("google_storage_bucket_iam_member", "${google_storage_bucket.models.name}",
         "roles/storage.objectViewer"),
        ("google_secret_manager_secret_iam_member",
         "${google_secret_manager_secret.api_keys.id}", "roles/secretmanager.secretAccessor"),
    }  # fmt: skip
    creates = infra.get("google_storage_bucket_iam_member", "service_creates_outputs")
    assert "/objects/_dispatch/" in hcl.one(creates, "condition")["expression"]
    secret = infra.get("google_secret_manager_secret_iam_member", "service_reads_api_keys")
    assert secret["secret_id"] == "${google_secret_manager_secret.api_keys.id}"
    assert (secret["role"], secret["member"]) == ("roles/secretmanager.secretAccessor", SERVICE)


def test_the_service_is_invoked_only_by_named_principals(infra: hcl.Infra) -> None:
    invokers = infra.get("google_cloud_run_v2_service_iam_member", "invokers")
    assert invokers["for_each"] == "${toset(var.service_invokers)}"
    assert invokers["role"] == "roles/run.invoker"
    assert invokers["name"] == jobfiles.load("service.yaml")["metadata"]["name"]
    variables = {k: v for block in infra.blocks["variable"] for k, v in block.items()}
    assert variables["service_invokers"]["default"] == []
    rule = variables["service_invokers"]["validation"][0]["condition"]
    assert "allUsers" in rule and "allAuthenticatedUsers" in rule


def test_inputs_have_their_own_bucket_and_the_default_allow_list_is_it(infra: hcl.Infra) -> None:
    bucket = str(infra.get("google_storage_bucket", "inputs")["name"])
    name = bucket.replace("${var.project_id}", jobfiles.PROJECT)
    for file in ("jobs.yaml", "service.yaml"):
        env = (
            jobfiles.env_of(jobfiles.load(file))
            if file == "jobs.yaml"
            else {
                e["name"]: e["value"]
                for e in jobfiles.load(file)["spec"]["template"]["spec"]["containers"][0]["env"]
            }
        )
        assert env["ALLOWED_INPUT_BUCKETS"] == name, file
        assert not env["OUTPUT_URI"].startswith(f"gs://{name}"), file


def test_no_broad_roles_and_nothing_public(infra: hcl.Infra) -> None:
    for (rtype, name), body in infra.resources.items():
        if rtype.endswith(("_iam_member", "_iam_binding")):
            assert body["role"] not in ("roles/owner", "roles/editor", "roles/viewer"), name
            members = [body.get("member", ""), *body.get("members", [])]
            assert not any(m in ("allUsers", "allAuthenticatedUsers") for m in members), name


def test_buckets_are_private_uniform_and_outputs_expire(infra: hcl.Infra) -> None:
    buckets = infra.of_type("google_storage_bucket")
    assert set(buckets) == {"outputs", "models", "manifests", "inputs"}
    for name, body in buckets.items():
        assert body["uniform_bucket_level_access"] is True, name
        assert body["public_access_prevention"] == "enforced", name
        assert body["location"] == "${var.region}", name
    rules = buckets["outputs"]["lifecycle_rule"]
    assert any(
        hcl.one(r, "action")["type"] == "Delete"
        and hcl.one(r, "condition").get("age") == "${var.output_retention_days}"
        for r in rules
    )
    assert any(hcl.one(r, "condition").get("matches_prefix") == ["_dispatch/"] for r in rules), (
        "old dispatch lock slots are removed"
    )


def _job_env(file: str) -> dict[str, str]:
    return jobfiles.env_of(jobfiles.load(file))


def test_names_match_jobs_yaml(infra: hcl.Infra) -> None:
    env = _job_env("jobs.yaml")
    assert infra.get("google_pubsub_subscription", "jobs")["name"] == env["JOBS_SUBSCRIPTION"]
    assert infra.get("google_pubsub_topic", "results")["name"] == env["RESULTS_TOPIC"]
    assert infra.get("google_pubsub_topic", "jobs")["name"] == env["JOBS_TOPIC"]
    project = jobfiles.PROJECT

    def bucket(name: str) -> str:
        return str(infra.get("google_storage_bucket", name)["name"]).replace(
            "${var.project_id}", project
        )

    assert env["OUTPUT_URI"] == f"gs://{bucket('outputs')}"
    assert env["MODEL_MANIFEST"].startswith(f"gs://{bucket('models')}/")
    worker = jobfiles.load("jobs.yaml")
    task = worker["spec"]["template"]["spec"]["template"]["spec"]
    accounts = infra.of_type("google_service_account")
    assert task["serviceAccountName"].split("@")[0] == accounts["worker"]["account_id"]
    dispatch = jobfiles.load("jobs-dispatch.yaml")
    dtask = dispatch["spec"]["template"]["spec"]["template"]["spec"]
    assert dtask["serviceAccountName"].split("@")[0] == accounts["dispatcher"]["account_id"]


def test_scheduler_starts_the_dispatch_job_as_the_dispatcher(infra: hcl.Infra) -> None:
    job = infra.get("google_cloud_scheduler_job", "dispatch")
    target = hcl.one(job, "http_target")
    name = jobfiles.load("jobs-dispatch.yaml")["metadata"]["name"]
    assert target["http_method"] == "POST"
    assert target["uri"] == (
        "https://run.googleapis.com/v2/projects/${var.project_id}/locations/${var.region}"
        f"/jobs/{name}:run"
    )
    token = hcl.one(target, "oauth_token")
    assert token["service_account_email"] == "${google_service_account.dispatcher.email}"


def _alert(infra: hcl.Infra, name: str) -> dict[str, Any]:
    policy = infra.get("google_monitoring_alert_policy", name)
    condition = hcl.one(hcl.one(policy, "conditions"), "condition_threshold")
    assert policy["notification_channels"] == ["${google_monitoring_notification_channel.email.id}"]
    return condition


def test_alert_policies_of_the_seed_plan(infra: hcl.Infra) -> None:
    gpu = _alert(infra, "gpu_busy")
    assert "gpu/utilizations" in gpu["filter"] and "${local.worker_job}" in gpu["filter"]
    assert 'job_name = \\"comfy-worker\\"' in infra.locals()["worker_job"]
    assert (gpu["comparison"], gpu["threshold_value"]) == ("COMPARISON_GT", 0.9)
    memory = _alert(infra, "memory_high")
    limit_gib = 32  # jobs.yaml's memory limit
    assert jobfiles.container(jobfiles.load("jobs.yaml"))["resources"]["limits"]["memory"] == "32Gi"
    assert memory["threshold_value"] == pytest.approx(28 / limit_gib)
    dead = _alert(infra, "dead_letters")
    assert "num_undelivered_messages" in dead["filter"]
    assert "${google_pubsub_subscription.dead_letter.name}" in dead["filter"]
    assert (dead["comparison"], dead["threshold_value"]) == ("COMPARISON_GT", 0)
    dl_sub = infra.get("google_pubsub_subscription", "dead_letter")
    assert dl_sub["topic"] == "${google_pubsub_topic.dead_letter.id}"


def test_budget_and_pinned_provider(infra: hcl.Infra) -> None:
    budget = infra.get("google_billing_budget", "monthly")
    thresholds = [t["threshold_percent"] for t in budget["threshold_rules"]]
    assert thresholds and max(thresholds) >= 1.0
    providers = infra.blocks["terraform"][0]["required_providers"][0]
    assert providers["google"]["version"] == "= 6.50.0", "tfschema checks against 6.50.0"


def test_artifact_registry_and_required_apis(infra: hcl.Infra) -> None:
    repo = infra.get("google_artifact_registry_repository", "images")
    assert repo["format"] == "DOCKER"
    services = set(infra.locals()["services"])
    for api in ("run", "pubsub", "storage", "artifactregistry", "cloudscheduler", "monitoring"):
        assert f"{api}.googleapis.com" in services
