locals {
  services = [
    "artifactregistry.googleapis.com",
    "billingbudgets.googleapis.com",
    "cloudbuild.googleapis.com",
    "cloudresourcemanager.googleapis.com",
    "cloudscheduler.googleapis.com",
    "iam.googleapis.com",
    "logging.googleapis.com",
    "monitoring.googleapis.com",
    "pubsub.googleapis.com",
    "run.googleapis.com",
    "secretmanager.googleapis.com",
    "storage.googleapis.com",
  ]
  tracing_services = var.enable_tracing ? ["cloudtrace.googleapis.com"] : []
}

resource "google_project_service" "enabled" {
  for_each           = toset(concat(local.services, local.tracing_services))
  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}
