# Alerts from the seed plan, sent to one e-mail channel, and a budget on the billing account.

resource "google_monitoring_notification_channel" "email" {
  display_name = "ComfyUI worker alerts"
  type         = "email"
  labels = {
    email_address = var.alert_email
  }
  depends_on = [google_project_service.enabled]
}

locals {
  worker_job = "resource.type = \"cloud_run_job\" AND resource.labels.job_name = \"comfy-worker\""
}

# The GPU is saturated: more tasks (dispatcher, parallelism) or a lighter workflow.
resource "google_monitoring_alert_policy" "gpu_busy" {
  display_name          = "comfy-worker: GPU utilisation above 90 %"
  combiner              = "OR"
  notification_channels = [google_monitoring_notification_channel.email.id]
  conditions {
    display_name = "GPU utilisation > 90 % for 10 min"
    condition_threshold {
      filter          = "${local.worker_job} AND metric.type = \"run.googleapis.com/container/gpu/utilizations\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0.9
      duration        = "600s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_PERCENTILE_99"
      }
    }
  }
}

# 28 GiB of the task's 32 GiB: the in-memory disk (inputs, downloaded models) plus the process
# are close to an out-of-memory kill.
resource "google_monitoring_alert_policy" "memory_high" {
  display_name          = "comfy-worker: memory above 28 GiB"
  combiner              = "OR"
  notification_channels = [google_monitoring_notification_channel.email.id]
  conditions {
    display_name = "Container memory > 87.5 % (28 of 32 GiB) for 5 min"
    condition_threshold {
      filter          = "${local.worker_job} AND metric.type = \"run.googleapis.com/container/memory/utilizations\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0.875
      duration        = "300s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_PERCENTILE_99"
      }
    }
  }
}

# Any dead letter means a job failed five deliveries: someone should look at it.
resource "google_monitoring_alert_policy" "dead_letters" {
  display_name          = "comfy: dead-lettered jobs waiting"
  combiner              = "OR"
  notification_channels = [google_monitoring_notification_channel.email.id]
  conditions {
    display_name = "Dead-letter backlog > 0"
    condition_threshold {
      filter          = "resource.type = \"pubsub_subscription\" AND resource.labels.subscription_id = \"${google_pubsub_subscription.dead_letter.name}\" AND metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "60s"
      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }
}

resource "google_billing_budget" "monthly" {
  billing_account = var.billing_account
  display_name    = "comfy-worker ${var.project_id}"

  budget_filter {
    projects = ["projects/${data.google_project.this.number}"]
  }

  amount {
    specified_amount {
      currency_code = "USD"
      units         = tostring(var.monthly_budget_usd)
    }
  }

  threshold_rules {
    threshold_percent = 0.5
  }
  threshold_rules {
    threshold_percent = 0.9
  }
  threshold_rules {
    threshold_percent = 1.0
  }

  all_updates_rule {
    monitoring_notification_channels = [google_monitoring_notification_channel.email.id]
    disable_default_iam_recipients   = false
  }

  depends_on = [google_project_service.enabled]
}
