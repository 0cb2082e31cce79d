terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source = "hashicorp/google"
      # Pinned: scripts/check-deploy checks every resource against this version's schema.
      version = "= 6.50.0"
    }
  }
}

provider "google" {
  project = var.project_id
  region  = var.region
}

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  pubsub_agent    = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  worker_member   = "serviceAccount:${google_service_account.worker.email}"
  service_member  = "serviceAccount:${google_service_account.service.email}"
  dispatch_member = "serviceAccount:${google_service_account.dispatcher.email}"
  deploy_member   = "serviceAccount:${google_service_account.deployer.email}"
}
