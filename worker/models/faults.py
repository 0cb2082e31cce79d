"""How fetching a job's model can fail, before it becomes the job's error class.

``ModelRefused``: the job is wrong (the file is missing or forbidden, too large, not what its
hash says, on a host or address it may not come from): ``model_error``, acked. ``ModelUnreachable``:
a fault a later try may not meet (a 5xx, a timeout, a cut connection): retried, then transient.
Messages never hold a query string or a credential.
"""

from __future__ import annotations


class ModelRefused(Exception):
    """The model can't be fetched as the job asks; retrying would not help."""


class ModelUnreachable(Exception):
    """The source failed in a way that may pass (a 5xx, a timeout, a truncated transfer)."""
