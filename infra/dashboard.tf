# The operators' dashboard: backlog, running tasks, throughput, execution p50/p95, failures by
# type, GPU and memory, dead letters, spend per hour. Its JSON is a template so that the names
# match this deployment; tests/deploy/test_dashboard.py renders it offline, validates it against
# the Monitoring API's own Dashboard schema and checks every metric it charts exists.
# docs/dashboard.png is a sketch of its layout, drawn from the same JSON.

variable "task_usd_per_hour" {
  description = "List price of one worker task-hour (L4 + 8 vCPU + 32 GiB, no zonal redundancy: 0.0003947 USD/s, see worker/obs/cost.py) for the dashboard's spend estimate from running tasks."
  type        = number
  default     = 1.42092
}

resource "google_monitoring_dashboard" "worker" {
  dashboard_json = templatefile("${path.module}/dashboard.json.tftpl", {
    worker_job_name          = "comfy-worker"
    jobs_subscription        = google_pubsub_subscription.jobs.name
    dead_letter_subscription = google_pubsub_subscription.dead_letter.name
    task_usd_per_hour        = var.task_usd_per_hour
  })
  depends_on = [google_logging_metric.comfy_jobs, google_project_service.enabled]
}
