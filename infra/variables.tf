variable "project_id" {
  description = "The Google Cloud project to deploy into."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Run jobs, the buckets and Artifact Registry; it must offer L4 GPUs for Cloud Run (europe-west1, europe-west4, us-east4, asia-southeast1; us-central1 by invitation)."
  type        = string
  default     = "europe-west1"
}

variable "billing_account" {
  description = "Billing account id (XXXXXX-XXXXXX-XXXXXX) for the budget alert."
  type        = string
}

variable "monthly_budget_usd" {
  description = "Monthly budget; alerts at 50 %, 90 % and 100 % of it."
  type        = number
  default     = 500
}

variable "alert_email" {
  description = "Where alert policies and the budget send their notifications."
  type        = string
}

variable "output_retention_days" {
  description = "Outputs (images, result.json) are deleted this many days after they were written."
  type        = number
  default     = 30
}

variable "dispatch_schedule" {
  description = "Cron schedule of the dispatcher, which starts worker executions when jobs wait."
  type        = string
  default     = "*/2 * * * *"
}

variable "force_destroy_buckets" {
  description = "Let terraform destroy non-empty buckets (for throwaway projects only)."
  type        = bool
  default     = false
}

variable "enable_tracing" {
  description = "Let the worker send traces to Cloud Trace (TRACING=1 in jobs.yaml): enables the API and grants roles/cloudtrace.agent. Off by default: tracing is optional."
  type        = bool
  default     = false
}

variable "service_invokers" {
  description = "Principals allowed to call the HTTP service comfy-service (roles/run.invoker on it), e.g. [\"user:me@example.com\", \"serviceAccount:app@p.iam.gserviceaccount.com\"]. Leave empty until `gcloud run services replace service.yaml` has created the service (a binding on a service needs the service to exist), then apply again. Never allUsers: the service stays private."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for m in var.service_invokers : !contains(["allUsers", "allAuthenticatedUsers"], m)])
    error_message = "The service is private: grant roles/run.invoker to named principals, not allUsers or allAuthenticatedUsers."
  }
}
