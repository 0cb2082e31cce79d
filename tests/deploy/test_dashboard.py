"""infra/dashboard.tf offline: the template renders to JSON that the Monitoring API's own Dashboard
schema accepts (unknown fields refused), the layout is sound, it has every panel the operators'
section promises, and each metric it charts is defined in Terraform or is Google's own."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import googleapiclient
import jsonschema
import pytest

from tests.deploy import dashboard, discovery, hcl

MONITORING_V1 = (
    Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "monitoring.v1.json"
)
GOOGLE_METRICS = {  # charted straight from the services' own metrics
    "pubsub.googleapis.com/subscription/num_undelivered_messages",
    "pubsub.googleapis.com/subscription/oldest_unacked_message_age",
    "run.googleapis.com/job/running_task_attempts",
    "run.googleapis.com/container/gpu/utilizations",
    "run.googleapis.com/container/memory/utilizations",
}
PANELS = (  # what the issue asks the dashboard to show, as words its titles must carry
    "backlog",
    "running tasks",
    "throughput",
    "p50 / p95",
    "failures by type",
    "gpu utilisation",
    "memory utilisation",
    "dead letters",
    "spend per hour",
)


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return dashboard.render()


def test_template_arguments_match_its_placeholders() -> None:
    assert dashboard.template_arguments() == dashboard.placeholders()
    assert set(dashboard.EXAMPLE) == dashboard.placeholders()


def test_the_monitoring_api_schema_accepts_it(doc: dict[str, Any]) -> None:
    schema = discovery.schema_for("Dashboard", MONITORING_V1)
    jsonschema.validate(doc, schema)
    broken = dashboard.render()
    broken["mosaicLayout"]["tiles"][1]["widget"]["xyChart"]["dataSet"] = []  # a typo
    with pytest.raises(jsonschema.ValidationError, match="dataSet"):
        jsonschema.validate(broken, schema)


def test_tiles_fit_the_grid_and_never_overlap(doc: dict[str, Any]) -> None:
    columns = doc["mosaicLayout"]["columns"]
    tiles = doc["mosaicLayout"]["tiles"]
    cells = []
    for tile in tiles:
        assert tile["xPos"] >= 0 and tile["xPos"] + tile["width"] <= columns
        assert tile["widget"]["title"]
        cells.append(
            {
                (x, y)
                for x in range(tile["xPos"], tile["xPos"] + tile["width"])
                for y in range(tile["yPos"], tile["yPos"] + tile["height"])
            }
        )
    for a, b in itertools.combinations(cells, 2):
        assert not a & b, "two tiles overlap"


def test_every_promised_panel_is_there(doc: dict[str, Any]) -> None:
    titles = [t["widget"]["title"].lower() for t in doc["mosaicLayout"]["tiles"]]
    for panel in PANELS:
        assert any(panel in title for title in titles), f"no panel for {panel!r}"


def test_every_charted_metric_exists(doc: dict[str, Any]) -> None:
    defined = set(hcl.load().of_type("google_logging_metric"))
    charted: set[str] = set()
    for tile in doc["mosaicLayout"]["tiles"]:
        for query in dashboard.queries(tile["widget"]):
            charted |= set(re.findall(r'metric\.type="([^"]+)"', query))
            # PromQL names: logging.googleapis.com/user/NAME -> logging_googleapis_com:user_NAME
            for name in re.findall(
                r"logging_googleapis_com:user_([a-z_]+?)(?:_sum|_count)?\{", query
            ):
                charted.add(f"logging.googleapis.com/user/{name}")
            for name in re.findall(r"run_googleapis_com:([a-z_]+)\{", query):
                charted.add("run.googleapis.com/" + name.replace("_", "/", 1))
    user = {m.removeprefix("logging.googleapis.com/user/") for m in charted if "/user/" in m}
    assert user <= defined, f"charted but not defined in infra/metrics.tf: {user - defined}"
    assert charted - {f"logging.googleapis.com/user/{m}" for m in user} <= GOOGLE_METRICS
    assert len(user) >= 8


def test_aligners_suit_each_metric_kind(doc: dict[str, Any]) -> None:
    """Percentiles only of distributions; counters aligned as deltas or rates."""
    kinds = {
        name: hcl.one(body, "metric_descriptor")["value_type"]
        for name, body in hcl.load().of_type("google_logging_metric").items()
    }
    for tile in doc["mosaicLayout"]["tiles"]:
        for data in tile["widget"].get("xyChart", {}).get("dataSets", []):
            query = data["timeSeriesQuery"].get("timeSeriesFilter")
            if query is None:
                continue
            match = re.search(r'logging\.googleapis\.com/user/([a-z_]+)"', query["filter"])
            if match is None:
                continue
            aggregation = query["aggregation"]
            if kinds[match.group(1)] == "DISTRIBUTION":
                assert aggregation["perSeriesAligner"] == "ALIGN_DELTA"
                assert aggregation["crossSeriesReducer"].startswith("REDUCE_PERCENTILE")
            else:
                assert aggregation["perSeriesAligner"] in ("ALIGN_DELTA", "ALIGN_RATE")
