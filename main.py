"""HTTP mode's entry point: the Cloud Run service (``service.yaml``).

    functions-framework --target=app --source=main.py --port=8080

``app`` is the HTTP function (``worker.http.app``): ``/``, ``/healthz`` and ``/ready``,
``POST /predict``, and the Runpod-compatible API under ``/v2/{endpoint}/``. It runs jobs on this
instance's embedded ComfyUI through the job worker's own core. Settings come from the
environment (``worker.config``; docs/configuration.md lists them); nothing starts before the
first request.

    python main.py --test

starts the Pub/Sub emulator and fake-gcs-server, serves this app with functions-framework on a
free port, and checks ``/healthz`` (and, with ``COMFYUI_DIR`` set, ``/ready`` and one
``/predict`` of the model-free ``demo-invert`` pipeline); it prints what it measured.
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    from worker.local.http_selftest import main

    sys.exit(main(sys.argv[1:]))

import functions_framework
from werkzeug.exceptions import HTTPException

from worker.http.app import create_app, framework_error

app = create_app(os.environ)  # the environment is read here, once, as worker/cli.py does
# Errors raised by functions-framework's own routing, before ``app`` runs, answer JSON as well.
functions_framework.errorhandler(HTTPException)(framework_error)
