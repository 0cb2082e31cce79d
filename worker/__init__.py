"""ComfyUI batch worker for Cloud Run Jobs: Pub/Sub in, GCS outputs and completion events out."""
