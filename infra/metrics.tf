# Log-based metrics over the JSON lines the worker already writes (worker/obs/metrics.py): no client,
# no latency on the job path, nothing lost when a task dies. Every field named here is checked
# against the lines a real run emits (tests/obs/test_metrics.py). Metric types are
# logging.googleapis.com/user/<name>; the dashboard (dashboard.tf) charts them.

locals {
  dispatch_job = "resource.type = \"cloud_run_job\" AND resource.labels.job_name = \"comfy-dispatch\""
}

resource "google_logging_metric" "comfy_jobs" {
  name        = "comfy_jobs"
  description = "Finished jobs (a result.json was written), by status and error type."
  filter      = "${local.worker_job} AND jsonPayload.message = (\"job.succeeded\" OR \"job.failed\")"
  label_extractors = {
    status     = "EXTRACT(jsonPayload.status)"
    error_type = "EXTRACT(jsonPayload.error_type)"
  }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key        = "status"
      value_type = "STRING"
    }
    labels {
      key        = "error_type"
      value_type = "STRING"
    }
  }
  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "comfy_nacked" {
  name        = "comfy_nacked"
  description = "Messages given back to Pub/Sub (transient faults, stops, a broken worker), by halt reason."
  filter      = "${local.worker_job} AND jsonPayload.message = \"job.nacked\""
  label_extractors = {
    halt = "EXTRACT(jsonPayload.halt)"
  }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key        = "halt"
      value_type = "STRING"
    }
  }
  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "comfy_execution_seconds" {
  name            = "comfy_execution_seconds"
  description     = "Executor (GPU) time per finished job."
  filter          = "${local.worker_job} AND jsonPayload.message = (\"job.succeeded\" OR \"job.failed\")"
  value_extractor = "EXTRACT(jsonPayload.execution_s)"
  label_extractors = {
    status = "EXTRACT(jsonPayload.status)"
  }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "s"
    labels {
      key        = "status"
      value_type = "STRING"
    }
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 32
      growth_factor      = 1.5
      scale              = 0.05
    }
  }
  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "comfy_inputs_seconds" {
  name            = "comfy_inputs_seconds"
  description     = "Parse, result check and input staging per finished job."
  filter          = "${local.worker_job} AND jsonPayload.message = (\"job.succeeded\" OR \"job.failed\")"
  value_extractor = "EXTRACT(jsonPayload.inputs_s)"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "s"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 30
      growth_factor      = 1.6
      scale              = 0.005
    }
  }
  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "comfy_model_seconds" {
  name            = "comfy_model_seconds"
  description     = "Time in model loader nodes per finished job (about 0 when ComfyUI's cache served them)."
  filter          = "${local.worker_job} AND jsonPayload.message = (\"job.succeeded\" OR \"job.failed\")"
  value_extractor = "EXTRACT(jsonPayload.model_s)"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "s"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 30
      growth_factor      = 1.6
      scale              = 0.01
    }
  }
  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "comfy_upload_seconds" {
  name            = "comfy_upload_seconds"
  description     = "Output upload per finished job."
  filter          = "${local.worker_job} AND jsonPayload.message = (\"job.succeeded\" OR \"job.failed\")"
  value_extractor = "EXTRACT(jsonPayload.upload_s)"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "s"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 30
      growth_factor      = 1.6
      scale              = 0.005
    }
  }
  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "comfy_outputs" {
  name            = "comfy_outputs"
  description     = "Outputs per succeeded job."
  filter          = "${local.worker_job} AND jsonPayload.message = \"job.succeeded\""
  value_extractor = "EXTRACT(jsonPayload.outputs)"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "1"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 12
      growth_factor      = 2
      scale              = 1
    }
  }
  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "comfy_images" {
  name            = "comfy_images"
  description     = "Image outputs per finished job."
  filter          = "${local.worker_job} AND jsonPayload.message = (\"job.succeeded\" OR \"job.failed\")"
  value_extractor = "EXTRACT(jsonPayload.images)"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "1"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 12
      growth_factor      = 2
      scale              = 1
    }
  }
  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "comfy_output_bytes" {
  name            = "comfy_output_bytes"
  description     = "Bytes written to GCS per finished job."
  filter          = "${local.worker_job} AND jsonPayload.message = (\"job.succeeded\" OR \"job.failed\")"
  value_extractor = "EXTRACT(jsonPayload.output_bytes)"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "By"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 24
      growth_factor      = 2
      scale              = 1024
    }
  }
  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "comfy_queue_wait_seconds" {
  name            = "comfy_queue_wait_seconds"
  description     = "Publish time to execution start (Pub/Sub jobs)."
  filter          = "${local.worker_job} AND jsonPayload.message = \"job.started\" AND jsonPayload.queue_s:*"
  value_extractor = "EXTRACT(jsonPayload.queue_s)"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "s"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 32
      growth_factor      = 1.6
      scale              = 0.1
    }
  }
  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "comfy_boot_seconds" {
  name            = "comfy_boot_seconds"
  description     = "Process start to ready (imports, node registry, models, warmup)."
  filter          = "${local.worker_job} AND jsonPayload.message = \"worker.ready\""
  value_extractor = "EXTRACT(jsonPayload.boot_s)"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "s"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 24
      growth_factor      = 1.3
      scale              = 1
    }
  }
  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "comfy_gpu_seconds" {
  name            = "comfy_gpu_seconds"
  description     = "GPU-seconds per finished job (its execution)."
  filter          = "${local.worker_job} AND jsonPayload.message = (\"job.succeeded\" OR \"job.failed\")"
  value_extractor = "EXTRACT(jsonPayload.gpu_seconds)"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "s"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 32
      growth_factor      = 1.5
      scale              = 0.05
    }
  }
  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "comfy_cost_usd" {
  name            = "comfy_cost_usd"
  description     = "Estimated USD per finished job: its share of the task's time (worker/obs/cost.py)."
  filter          = "${local.worker_job} AND jsonPayload.message = (\"job.succeeded\" OR \"job.failed\")"
  value_extractor = "EXTRACT(jsonPayload.cost_usd)"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "{USD}"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 24
      growth_factor      = 2
      scale              = 0.00001
    }
  }
  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "comfy_unattributed_usd" {
  name            = "comfy_unattributed_usd"
  description     = "Estimated USD of each task's time after its last job (idle until exit), on no result."
  filter          = "${local.worker_job} AND jsonPayload.message = \"worker.exit\""
  value_extractor = "EXTRACT(jsonPayload.unattributed_usd)"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "{USD}"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 16
      growth_factor      = 2
      scale              = 0.0001
    }
  }
  depends_on = [google_project_service.enabled]
}

resource "google_logging_metric" "comfy_dispatch_started_tasks" {
  name            = "comfy_dispatch_started_tasks"
  description     = "Tasks the dispatcher started per decision."
  filter          = "${local.dispatch_job} AND jsonPayload.message = \"dispatch.plan\""
  value_extractor = "EXTRACT(jsonPayload.start_tasks)"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "1"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 10
      growth_factor      = 2
      scale              = 1
    }
  }
  depends_on = [google_project_service.enabled]
}
