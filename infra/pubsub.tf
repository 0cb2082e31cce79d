# Topics and the job subscription. Names match jobs.yaml and scripts/setup-pubsub.

resource "google_pubsub_topic" "jobs" {
  name                       = "comfy-jobs"
  message_retention_duration = "604800s"
  depends_on                 = [google_project_service.enabled]
}

resource "google_pubsub_topic" "results" {
  name                       = "comfy-results"
  message_retention_duration = "604800s"
  depends_on                 = [google_project_service.enabled]
}

resource "google_pubsub_topic" "dead_letter" {
  name                       = "comfy-dead-letter"
  message_retention_duration = "604800s"
  depends_on                 = [google_project_service.enabled]
}

# The worker's pull subscription. 600 s is Pub/Sub's longest ack deadline; the worker extends it
# while a job runs. Five attempts is the least Pub/Sub allows before dead-lettering.
resource "google_pubsub_subscription" "jobs" {
  name                       = "comfy-jobs-worker"
  topic                      = google_pubsub_topic.jobs.id
  ack_deadline_seconds       = 600
  message_retention_duration = "604800s"

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = 5
  }

  expiration_policy {
    ttl = "" # never expires, even when no worker has pulled for 31 days
  }
}

# Keeps dead letters for inspection (alerted on by monitoring.tf).
resource "google_pubsub_subscription" "dead_letter" {
  name                       = "comfy-dead-letter-hold"
  topic                      = google_pubsub_topic.dead_letter.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}

# For people and scripts watching completions (`gcloud pubsub subscriptions pull`).
resource "google_pubsub_subscription" "results" {
  name                       = "comfy-results-watch"
  topic                      = google_pubsub_topic.results.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}

# Dead-lettering is done by Pub/Sub's own service agent: it must publish to the dead-letter topic
# and acknowledge (subscribe) on the source subscription.
resource "google_pubsub_topic_iam_member" "agent_publishes_dead_letters" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_agent
}

resource "google_pubsub_subscription_iam_member" "agent_acks_dead_lettered" {
  subscription = google_pubsub_subscription.jobs.id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_agent
}
