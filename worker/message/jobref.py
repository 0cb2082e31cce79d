"""Job references: one URL-safe token for a job's folder, ``[prefix segments~]job_id``.

A job's folder is ``<OUTPUT_URI>/[prefix/]<job_id>``. The HTTP API (``/v2/.../status/{id}``) and
``python -m worker status|cancel`` name a job by one token: its job id, preceded by its prefix's
segments, each followed by ``~`` (prefix ``campaign-7/batch-2`` and id ``cat-7`` give
``campaign-7~batch-2~cat-7``).
``~`` appears neither in job ids (``A-Z a-z 0-9 . _ -``) nor in prefix segments (the same and
``=``), so the token maps to exactly one folder and back, and it is one URL path segment.
Everything is validated with the parser's own rules: no token names a folder outside
``OUTPUT_URI`` or a marker.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.config import Limits
from worker.errors import JobFailed
from worker.message.parse import job_id_problem
from worker.message.validate import check_prefix
from worker.record.result import job_folder

SEP = "~"
MAX_TOKEN_CHARS = 1024


class BadReference(ValueError):
    """The text is not a job reference; the message says why."""


@dataclass(frozen=True)
class JobRef:
    job_id: str
    prefix: str = ""

    @property
    def token(self) -> str:
        return SEP.join([*(s for s in self.prefix.split("/") if s), self.job_id])

    def folder(self, output_uri: str) -> str:
        return job_folder(output_uri, self.prefix, self.job_id)

    @classmethod
    def parse(cls, text: str, max_prefix_chars: int = Limits.max_prefix_chars) -> JobRef:
        if not isinstance(text, str) or not text or len(text) > MAX_TOKEN_CHARS:
            raise BadReference(f"a job id is 1-{MAX_TOKEN_CHARS} characters")
        *segments, job_id = text.split(SEP)
        problem = job_id_problem(job_id)
        if problem is not None:
            raise BadReference(f"{problem} (after its prefix's segments, each followed by ~)")
        if "" in segments:  # a~~b, ~b
            raise BadReference("the job id's prefix part has an empty segment")
        try:
            prefix = check_prefix("/".join(segments), max_prefix_chars)
        except JobFailed as exc:
            raise BadReference(f"the job id's prefix part is invalid: {exc.message}") from exc
        return cls(job_id, prefix)


def ref_of_folder(output_uri: str, folder: str) -> JobRef:
    """The job whose folder is ``folder`` (under ``output_uri``)."""
    root = output_uri.rstrip("/") + "/"
    if not folder.startswith(root):
        raise BadReference(f"{folder} is not under OUTPUT_URI ({output_uri})")
    return JobRef.parse(folder[len(root) :].replace("/", SEP))
