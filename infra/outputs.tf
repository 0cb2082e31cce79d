output "image_repository" {
  description = "Push images here (REGION-docker.pkg.dev/PROJECT/comfy)."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "jobs_topic" {
  value = google_pubsub_topic.jobs.name
}

output "results_subscription" {
  value = google_pubsub_subscription.results.name
}

output "output_uri" {
  value = "gs://${google_storage_bucket.outputs.name}"
}

output "models_bucket" {
  value = google_storage_bucket.models.name
}

output "manifests_bucket" {
  value = google_storage_bucket.manifests.name
}

output "deployer_service_account" {
  value = google_service_account.deployer.email
}
