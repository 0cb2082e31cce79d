# HTTP mode: the Cloud Run service comfy-service (service.yaml), its service account, the
# Secret Manager secret for its optional API keys, and who may invoke it. The service itself is
# created by `gcloud run services replace service.yaml` (as the jobs are), after this apply.

resource "google_service_account" "service" {
  account_id   = "comfy-service"
  display_name = "ComfyUI HTTP service (Cloud Run service comfy-service)"
  depends_on   = [google_project_service.enabled]
}

# Runs jobs as the worker does (same core): results topic, outputs (create-only, not beside the
# dispatch locks), reads of outputs (results, markers), inputs and models.
resource "google_pubsub_topic_iam_member" "service_publishes_results" {
  topic  = google_pubsub_topic.results.id
  role   = "roles/pubsub.publisher"
  member = local.service_member
}

# /v2/{endpoint}/run queues jobs for the worker job.
resource "google_pubsub_topic_iam_member" "service_publishes_jobs" {
  topic  = google_pubsub_topic.jobs.id
  role   = "roles/pubsub.publisher"
  member = local.service_member
}

resource "google_storage_bucket_iam_member" "service_creates_outputs" {
  bucket = google_storage_bucket.outputs.name
  role   = "roles/storage.objectCreator"
  member = local.service_member
  condition {
    title      = "not-dispatch-locks"
    expression = "!resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.outputs.name}/objects/_dispatch/\")"
  }
}

resource "google_storage_bucket_iam_member" "service_reads_outputs" {
  bucket = google_storage_bucket.outputs.name
  role   = "roles/storage.objectViewer"
  member = local.service_member
}

resource "google_storage_bucket_iam_member" "service_reads_inputs" {
  bucket = google_storage_bucket.inputs.name
  role   = "roles/storage.objectViewer"
  member = local.service_member
}

resource "google_storage_bucket_iam_member" "service_reads_models" {
  bucket = google_storage_bucket.models.name
  role   = "roles/storage.objectViewer"
  member = local.service_member
}

# Optional API keys for Runpod-style clients (Authorization: Bearer KEY), one per line. Add a
# version with `gcloud secrets versions add comfy-api-keys --data-file=keys.txt` and mount it
# (docs/deploy.md); the service reads API_KEYS_FILE. Without it, access is IAM's alone.
resource "google_secret_manager_secret" "api_keys" {
  secret_id = "comfy-api-keys"
  replication {
    auto {}
  }
  depends_on = [google_project_service.enabled]
}

resource "google_secret_manager_secret_iam_member" "service_reads_api_keys" {
  secret_id = google_secret_manager_secret.api_keys.id
  role      = "roles/secretmanager.secretAccessor"
  member    = local.service_member
}

# Private by default: only these principals may call the service (var.service_invokers).
resource "google_cloud_run_v2_service_iam_member" "invokers" {
  for_each = toset(var.service_invokers)
  project  = var.project_id
  location = var.region
  name     = "comfy-service"
  role     = "roles/run.invoker"
  member   = each.value
}
