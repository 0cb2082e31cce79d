"""Model files for ComfyUI: a manifest of ``gs://`` sources fetched into a local cache.

``manifest`` parses and checks the manifest, ``verify`` checks files against it, ``gcs`` reads
from Cloud Storage (parallel ranged downloads), ``sync`` puts it together for the executor and
``python -m worker check``.
"""
