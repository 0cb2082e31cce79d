"""How many jobs wait in the subscription: the number ``dispatch`` sizes executions by.

Production reads Cloud Monitoring's ``pubsub.googleapis.com/subscription/num_undelivered_messages``
(the REST ``timeSeries.list`` call, so no extra client library). The metric counts messages not
yet acknowledged, including the ones tasks are working on, and lags by one to three minutes.
``FixedBacklog`` is the seam for tests and for ``dispatch --backlog N``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from worker.errors import ConfigError, Transient
from worker.obs import logs

log = logging.getLogger(__name__)

METRIC = "pubsub.googleapis.com/subscription/num_undelivered_messages"
MONITORING_ENDPOINT = "https://monitoring.googleapis.com"
WINDOW = timedelta(minutes=10)  # the metric is sampled every minute; take the newest point


class Backlog(Protocol):
    def undelivered(self) -> int:
        """Messages waiting or in flight. Raises ``Transient`` when it can't be read."""
        ...


class FixedBacklog:
    def __init__(self, count: int) -> None:
        self.count = count

    def undelivered(self) -> int:
        return self.count


class MonitoringBacklog:
    """The newest ``num_undelivered_messages`` point of one subscription."""

    def __init__(self, subscription: str, endpoint: str | None = None) -> None:
        parts = subscription.split("/")  # projects/P/subscriptions/S
        self.project, self.subscription_id = parts[1], parts[3]
        self.endpoint = (endpoint or MONITORING_ENDPOINT).rstrip("/")

    def _session(self) -> Any:
        if self.endpoint.startswith("http://"):  # a local stand-in: no credentials
            import requests

            return requests.Session()
        import google.auth
        import google.auth.exceptions
        from google.auth.transport.requests import AuthorizedSession

        try:
            credentials, _ = google.auth.default(
                scopes=["https://www.googleapis.com/auth/monitoring.read"]
            )
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise ConfigError(f"no Google credentials to read Cloud Monitoring: {exc}") from exc
        return AuthorizedSession(credentials)  # type: ignore[no-untyped-call]

    def undelivered(self) -> int:
        now = datetime.now(UTC)
        params = {
            "filter": (
                f'metric.type = "{METRIC}" AND '
                f'resource.labels.subscription_id = "{self.subscription_id}"'
            ),
            "interval.startTime": (now - WINDOW).isoformat().replace("+00:00", "Z"),
            "interval.endTime": now.isoformat().replace("+00:00", "Z"),
        }
        url = f"{self.endpoint}/v3/projects/{self.project}/timeSeries"
        try:
            response = self._session().get(url, params=params, timeout=30)
        except OSError as exc:  # requests' errors derive from IOError
            raise Transient(f"Cloud Monitoring unreachable: {exc}") from exc
        if response.status_code != 200:
            raise Transient(
                f"Cloud Monitoring answered {response.status_code}: {response.text[:300]}"
            )
        return self._newest(response.json())

    def _newest(self, doc: dict[str, Any]) -> int:
        points = [p for series in doc.get("timeSeries", []) for p in series.get("points", [])]
        if not points:
            # No point in the window: the subscription is new or has seen no traffic.
            logs.event(log, "dispatch.no_backlog_data", subscription=self.subscription_id)
            return 0
        newest = max(points, key=lambda p: p["interval"]["endTime"])
        return int(newest["value"].get("int64Value", 0))
