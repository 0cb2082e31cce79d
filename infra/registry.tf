resource "google_artifact_registry_repository" "images" {
  location      = var.region
  repository_id = "comfy"
  format        = "DOCKER"
  description   = "ComfyUI worker images, tagged with the git commit"

  # Images are ~3 GB: keep the newest 10, delete the rest (and untagged ones) after 7 days.
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 10
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      older_than = "604800s"
    }
  }

  depends_on = [google_project_service.enabled]
}
