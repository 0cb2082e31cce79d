# Service accounts, each with only what it uses, granted on the resource itself where it can be.

resource "google_service_account" "worker" {
  account_id   = "comfy-worker"
  display_name = "ComfyUI worker (Cloud Run job comfy-worker)"
  depends_on   = [google_project_service.enabled]
}

resource "google_service_account" "dispatcher" {
  account_id   = "comfy-dispatcher"
  display_name = "Dispatcher (Cloud Run job comfy-dispatch, started by Cloud Scheduler)"
  depends_on   = [google_project_service.enabled]
}

resource "google_service_account" "deployer" {
  account_id   = "comfy-deployer"
  display_name = "Build pipeline: pushes the image, replaces the Cloud Run jobs"
  depends_on   = [google_project_service.enabled]
}

# --- worker: pull its subscription, publish results, write outputs, read inputs and models.
resource "google_pubsub_subscription_iam_member" "worker_pulls_jobs" {
  subscription = google_pubsub_subscription.jobs.id
  role         = "roles/pubsub.subscriber"
  member       = local.worker_member
}

resource "google_pubsub_topic_iam_member" "worker_publishes_results" {
  topic  = google_pubsub_topic.results.id
  role   = "roles/pubsub.publisher"
  member = local.worker_member
}

# Create-only: the worker never overwrites (if_generation_match=0) nor deletes an object; and
# never beside the dispatcher's lock objects (a worker could otherwise take or fake a slot).
resource "google_storage_bucket_iam_member" "worker_creates_outputs" {
  bucket = google_storage_bucket.outputs.name
  role   = "roles/storage.objectCreator"
  member = local.worker_member
  condition {
    title      = "not-dispatch-locks"
    expression = "!resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.outputs.name}/objects/_dispatch/\")"
  }
}

# Reads result.json (redelivered jobs) and the job folders' markers.
resource "google_storage_bucket_iam_member" "worker_reads_outputs" {
  bucket = google_storage_bucket.outputs.name
  role   = "roles/storage.objectViewer"
  member = local.worker_member
}

# Inputs come from their own bucket (ALLOWED_INPUT_BUCKETS in jobs.yaml and service.yaml), not
# from the outputs: a job can't name another job's outputs as its input.
resource "google_storage_bucket_iam_member" "worker_reads_inputs" {
  bucket = google_storage_bucket.inputs.name
  role   = "roles/storage.objectViewer"
  member = local.worker_member
}

resource "google_storage_bucket_iam_member" "worker_reads_models" {
  bucket = google_storage_bucket.models.name
  role   = "roles/storage.objectViewer"
  member = local.worker_member
}

resource "google_storage_bucket_iam_member" "worker_reads_manifests" {
  bucket = google_storage_bucket.manifests.name
  role   = "roles/storage.objectViewer"
  member = local.worker_member
}

# Optional (var.enable_tracing): write spans to Cloud Trace when the job runs with TRACING=1.
resource "google_project_iam_member" "worker_writes_traces" {
  count   = var.enable_tracing ? 1 : 0
  project = var.project_id
  role    = "roles/cloudtrace.agent"
  member  = local.worker_member
}

# --- dispatcher: read the backlog metric, start worker executions, hold its lock objects.
resource "google_project_iam_member" "dispatcher_reads_backlog" {
  project = var.project_id
  role    = "roles/monitoring.viewer"
  member  = local.dispatch_member
}

# Granted on the project, because the jobs are created by `gcloud run jobs replace` after this
# apply and a binding on a job needs the job to exist; an IAM condition limits it to the worker
# job (and its executions). The role can run a job (with overrides), not change it.
resource "google_project_iam_member" "dispatcher_runs_jobs" {
  project = var.project_id
  role    = "roles/run.jobsExecutorWithOverrides"
  member  = local.dispatch_member
  condition {
    title      = "worker-job-only"
    expression = "resource.name.startsWith(\"projects/${var.project_id}/locations/${var.region}/jobs/comfy-worker\")"
  }
}

resource "google_storage_bucket_iam_member" "dispatcher_creates_locks" {
  bucket = google_storage_bucket.outputs.name
  role   = "roles/storage.objectCreator"
  member = local.dispatch_member
  condition {
    title      = "dispatch-lock-only"
    expression = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.outputs.name}/objects/_dispatch/\")"
  }
}

resource "google_storage_bucket_iam_member" "dispatcher_reads_locks" {
  bucket = google_storage_bucket.outputs.name
  role   = "roles/storage.objectViewer"
  member = local.dispatch_member
  condition {
    title      = "dispatch-lock-only"
    expression = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.outputs.name}/objects/_dispatch/\")"
  }
}

# --- deployer (Cloud Build): push images, replace the jobs, act as the jobs' service accounts.
resource "google_artifact_registry_repository_iam_member" "deployer_pushes" {
  location   = google_artifact_registry_repository.images.location
  repository = google_artifact_registry_repository.images.name
  role       = "roles/artifactregistry.writer"
  member     = local.deploy_member
}

resource "google_project_iam_member" "deployer_deploys_jobs" {
  project = var.project_id
  role    = "roles/run.developer"
  member  = local.deploy_member
}

resource "google_project_iam_member" "deployer_writes_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = local.deploy_member
}

resource "google_service_account_iam_member" "deployer_acts_as_worker" {
  service_account_id = google_service_account.worker.name
  role               = "roles/iam.serviceAccountUser"
  member             = local.deploy_member
}

resource "google_service_account_iam_member" "deployer_acts_as_dispatcher" {
  service_account_id = google_service_account.dispatcher.name
  role               = "roles/iam.serviceAccountUser"
  member             = local.deploy_member
}

resource "google_service_account_iam_member" "deployer_acts_as_service" {
  service_account_id = google_service_account.service.name
  role               = "roles/iam.serviceAccountUser"
  member             = local.deploy_member
}
