"""The provider-schema checker finds what ``terraform validate`` would (tested on a small schema
written here; scripts/check-deploy runs it on infra/ with the real provider 6.50.0 schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.deploy import tfschema

SCHEMA: dict[str, Any] = {
    "resource": {
        "google_pubsub_subscription": {
            "attrs": {"name": True, "topic": True, "ack_deadline_seconds": False},
            "blocks": {
                "dead_letter_policy": [
                    False,
                    False,
                    {
                        "attrs": {"dead_letter_topic": False, "max_delivery_attempts": False},
                        "blocks": {},
                    },
                ],
                "push_config": [False, False, {"attrs": {"push_endpoint": True}, "blocks": {}}],
            },
        }
    },
    "data": {},
}

GOOD = """
resource "google_pubsub_subscription" "jobs" {
  name                 = "jobs"
  topic                = google_pubsub_topic.jobs.id
  ack_deadline_seconds = 600
  depends_on           = [google_project_service.enabled]
  dead_letter_policy {
    max_delivery_attempts = 5
  }
}
"""


def run(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "main.tf"
    path.write_text(text)
    return tfschema.check(SCHEMA, [path])


def test_a_valid_file_passes(tmp_path: Path) -> None:
    assert run(tmp_path, GOOD) == []


def test_unknown_argument_and_unknown_nested_argument(tmp_path: Path) -> None:
    text = GOOD.replace("ack_deadline_seconds", "ack_deadline_second").replace(
        "max_delivery_attempts", "max_delivery_attempt"
    )
    problems = run(tmp_path, text)
    assert any("unknown argument or block 'ack_deadline_second'" in p for p in problems)
    assert any(
        ".dead_letter_policy: unknown argument or block 'max_delivery_attempt'" in p
        for p in problems
    )


def test_missing_required_argument_and_block_in_nested_block(tmp_path: Path) -> None:
    text = GOOD.replace('  name                 = "jobs"\n', "") + ""
    text = text.replace("  dead_letter_policy {", "  push_config {\n  }\n  dead_letter_policy {")
    problems = run(tmp_path, text)
    assert any("missing required argument 'name'" in p for p in problems)
    assert any(".push_config: missing required argument 'push_endpoint'" in p for p in problems)


def test_single_block_repeated_and_block_written_as_argument(tmp_path: Path) -> None:
    twice = GOOD.replace(
        "  dead_letter_policy {", "  dead_letter_policy {\n  }\n  dead_letter_policy {"
    )
    assert any("may appear once, found 2" in p for p in run(tmp_path, twice))
    as_attr = GOOD.replace("  dead_letter_policy {", "  dead_letter_policy = {")
    assert any("is a block" in p for p in run(tmp_path, as_attr))


def test_unknown_resource_type_and_meta_argument_inside_a_block(tmp_path: Path) -> None:
    text = GOOD.replace("google_pubsub_subscription", "google_pubsub_subscriptions")
    assert any(
        "the provider has no resource 'google_pubsub_subscriptions'" in p
        for p in run(tmp_path, text)
    )
    nested = GOOD.replace("    max_delivery_attempts = 5", "    count = 1")
    assert any("unknown argument or block 'count'" in p for p in run(tmp_path, nested))
