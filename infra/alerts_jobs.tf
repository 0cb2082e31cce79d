# Alerts on the job flow, next to monitoring.tf's resource alerts. docs/observability.md
# says what each one means and what to do.

# Jobs wait and nothing takes them: the dispatcher isn't starting executions (scheduler, quota,
# DISPATCH_MAX_TASKS, the daily task budget) or every task is failing to boot.
resource "google_monitoring_alert_policy" "stale_backlog" {
  display_name          = "comfy: oldest job waiting over 30 min"
  combiner              = "OR"
  notification_channels = [google_monitoring_notification_channel.email.id]
  conditions {
    display_name = "Oldest unacked job message > 1800 s for 10 min"
    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.jobs.name}\" AND metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""
      comparison      = "COMPARISON_GT"
      threshold_value = 1800
      duration        = "600s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }
}

# A task gave a message back because the worker broke (CUDA error, ComfyUI crashed, an executor
# that ignored an interrupt) or Pub/Sub/GCS stayed unreachable: it exited non-zero.
resource "google_monitoring_alert_policy" "worker_broken" {
  display_name          = "comfy-worker: a task broke or lost Pub/Sub/GCS"
  combiner              = "OR"
  notification_channels = [google_monitoring_notification_channel.email.id]
  conditions {
    display_name = "Messages nacked with halt broken/unavailable > 0 in 5 min"
    condition_threshold {
      filter          = "resource.type = \"cloud_run_job\" AND metric.type = \"logging.googleapis.com/user/${google_logging_metric.comfy_nacked.name}\" AND metric.labels.halt = monitoring.regex.full_match(\"broken|unavailable\")"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }
}
