# Buckets: uniform access, public access prevented, in the jobs' region.

resource "google_storage_bucket" "outputs" {
  name                        = "${var.project_id}-comfy-outputs"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  lifecycle_rule {
    condition {
      age = var.output_retention_days
    }
    action {
      type = "Delete"
    }
  }

  # The dispatcher's lock slots (create-only objects) are only useful for a few minutes.
  lifecycle_rule {
    condition {
      age            = 1
      matches_prefix = ["_dispatch/"]
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

# Model files, read by the worker (manifest download or the read-only Cloud Storage FUSE mount).
resource "google_storage_bucket" "models" {
  name                        = "${var.project_id}-comfy-models"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  versioning {
    enabled = true
  }

  # Replaced model files linger 30 days as noncurrent versions, then go.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

# JSONL manifests for batch backfills (`gcloud run jobs execute --update-env-vars MANIFEST_URI=...`).
resource "google_storage_bucket" "manifests" {
  name                        = "${var.project_id}-comfy-manifests"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  lifecycle_rule {
    condition {
      age = 90
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

# Job inputs (gs:// URIs in job messages, `submit`'s uploads: SUBMIT_INPUT_URI). Kept apart from
# the outputs so that ALLOWED_INPUT_BUCKETS never lets a job read another job's results.
resource "google_storage_bucket" "inputs" {
  name                        = "${var.project_id}-comfy-inputs"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = var.force_destroy_buckets

  lifecycle_rule {
    condition {
      age = var.output_retention_days
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}
