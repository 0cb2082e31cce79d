"""HTTP mode: the Cloud Run service (``main.py``) over the same core as the job worker."""
