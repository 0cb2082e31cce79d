"""A job's own models (``models`` in its message), visible to ComfyUI under ``folder/name`` for
that job alone.

One folder per ComfyUI model folder, ``<work>/job-models/<folder>``, is registered first in
ComfyUI's search paths (the job's file wins over a manifest or ``MODELS_DIR`` file of the same
name: the job asked for it). Before each job the folder holds symbolic links to exactly that
job's cached files: ComfyUI's own validation ("value not in list") then sees them, the next job
does not. ComfyUI's file-list cache is dropped for the folders that changed.

ComfyUI caches node outputs by their inputs, and a loader's input is a file name: if a name now
stands for other bytes than when a loader last read it (another job's file under the same name,
or a job's file shadowing a manifest file and then gone), the cached outputs are stale. Then the
executor's caches are reset (``PromptExecutor.reset``): the next run loads its models again.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from worker.errors import ErrorType, JobFailed
from worker.message.bounded import echo
from worker.message.job import ModelFile
from worker.obs import logs

log = logging.getLogger(__name__)
BASE = "base"  # a name that resolves to a file outside the job folders (manifest, MODELS_DIR)


class JobModelFolders:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._shown: dict[tuple[str, str], str] = {}  # linked now: (folder, name) -> sha256
        self._meant: dict[tuple[str, str], str] = {}  # what a name last stood for: sha or BASE

    def show(self, comfy: Any, models: tuple[ModelFile, ...]) -> None:
        """Link exactly ``models`` (nothing, when the job brings none) before validation."""
        if not models and not self._shown:
            return
        fp = comfy.folder_paths
        wanted = {(str(fp.map_legacy(m.folder)), m.name): m for m in models}
        for folder, name in wanted:
            self._check_folder(fp, folder, name)
        stale = self._meaning_changes(fp, wanted)
        touched = {f for f, _ in set(self._shown) ^ set(wanted)}
        for key in [k for k in self._shown if k not in wanted]:
            (self._root / key[0] / key[1]).unlink(missing_ok=True)
            del self._shown[key]
        for key, model in wanted.items():
            if self._shown.get(key) != model.sha256:
                _link(model.path, self._root / key[0] / key[1])
                self._shown[key] = model.sha256
                touched.add(key[0])
        for folder in touched:  # ComfyUI's listing would otherwise miss a same-tick change
            fp.filename_list_cache.pop(folder, None)
        if stale:
            comfy.prompt_executor.reset()
            names = sorted(f"{f}/{n}" for f, n in stale)[:20]
            logs.event(
                log, "comfyui.cache_reset", reason="a model name changed its file", names=names
            )

    def _check_folder(self, fp: Any, folder: str, name: str) -> None:
        known = fp.folder_names_and_paths
        if folder not in known:
            raise JobFailed(
                ErrorType.INVALID_JOB,
                f"models: ComfyUI has no model folder {echo(folder)}; it has "
                f"{', '.join(sorted(known))}",
            )
        directory = self._root / folder
        if str(directory) not in known[folder][0]:
            directory.mkdir(parents=True, exist_ok=True)
            fp.add_model_folder_path(folder, str(directory), True)
        extensions = known[folder][1]
        suffix = os.path.splitext(name)[1].lower()
        if extensions and "folder" not in extensions and suffix not in extensions:
            raise JobFailed(
                ErrorType.INVALID_JOB,
                f"models: ComfyUI lists only {', '.join(sorted(extensions))} files in "
                f"{folder!r}, so {echo(name)} would not be seen",
            )

    def _meaning_changes(
        self, fp: Any, wanted: dict[tuple[str, str], ModelFile]
    ) -> list[tuple[str, str]]:
        """Names that stand for other bytes than when ComfyUI last could have loaded them."""
        stale: list[tuple[str, str]] = []
        for key in set(self._meant) | set(wanted):
            now: str | None
            if key in wanted:
                now = wanted[key].sha256
            else:
                now = BASE if self._elsewhere(fp, key) else None
            before = self._meant.get(key)
            if before is None and key in wanted and self._elsewhere(fp, key):
                before = BASE  # the job's file shadows one ComfyUI may have loaded
            if now is None:
                continue  # unresolvable now: no job can reach a stale output by this name
            if before is not None and before != now:
                stale.append(key)
            self._meant[key] = now
        return stale

    def _elsewhere(self, fp: Any, key: tuple[str, str]) -> bool:
        folder, name = key
        mine = str(self._root / folder)
        paths = fp.folder_names_and_paths.get(folder, ([], set()))[0]
        return any(os.path.isfile(os.path.join(p, name)) for p in paths if p != mine)


def _link(target: Path, link: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, link)
