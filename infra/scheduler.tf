# Every few minutes Cloud Scheduler starts the CPU-only dispatcher job (jobs-dispatch.yaml), which
# starts worker executions when messages wait. Calling the Cloud Run Admin API directly, as the
# dispatcher's own service account (it may run jobs), needs no extra identity.
resource "google_cloud_scheduler_job" "dispatch" {
  name        = "comfy-dispatch"
  region      = var.region
  description = "Start comfy-dispatch, which starts comfy-worker executions for waiting jobs"
  schedule    = var.dispatch_schedule
  time_zone   = "Etc/UTC"

  retry_config {
    retry_count = 0 # the next tick is the retry
  }

  http_target {
    http_method = "POST"
    uri         = "https://run.googleapis.com/v2/projects/${var.project_id}/locations/${var.region}/jobs/comfy-dispatch:run"
    oauth_token {
      service_account_email = google_service_account.dispatcher.email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }

  depends_on = [google_project_service.enabled]
}
