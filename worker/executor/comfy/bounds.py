"""Memory bounds checked before a workflow runs, so that one job can't exhaust the host.

ComfyUI's own limits are per input (``EmptyImage`` accepts 16384 x 16384 x 4096): a single node
could ask for terabytes and drive the host into an OOM kill, which looks like ``kill -9`` and
fails every job that happens to be in flight. Two checks run before ComfyUI sees the job:

- ``check_sizes``: every node with literal ``width`` and ``height`` inputs (the core latent and
  image nodes: ``EmptyLatentImage``, ``EmptyImage``, ``EmptySD3LatentImage``, the video latents,
  ``ImageScale``, ...) makes at most ``MAX_PIXELS_PER_JOB`` pixels, counting its batch and frame
  inputs. Values that come through links are only known while running and are not counted.
- ``check_images``: every staged input that is an image decodes to at most ``MAX_INPUT_PIXELS``
  pixels (read from the file's header; nothing is decoded).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from worker.errors import ErrorType, JobFailed
from worker.message.bounded import clip, echo

# Inputs that multiply a node's width x height (batches and frames).
MULTIPLIERS = ("batch_size", "length", "frames", "num_frames", "video_frames", "amount")


def _count(value: Any) -> int | None:
    """A literal whole number (links are lists and count as unknown)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def pixels(inputs: Mapping[str, Any]) -> int | None:
    """width x height x batch x frames for a node's literal inputs, or None if not sized."""
    width, height = _count(inputs.get("width")), _count(inputs.get("height"))
    if width is None or height is None:
        return None
    total = max(width, 0) * max(height, 0)
    for name in MULTIPLIERS:
        n = _count(inputs.get(name))
        if n is not None:
            total *= max(n, 1)
    return total


def check_sizes(workflow: Mapping[str, Any], max_pixels: int) -> None:
    """Raise ``JobFailed(invalid_workflow)`` for the first node over ``max_pixels``."""
    for node_id, node in workflow.items():
        inputs = node.get("inputs") if isinstance(node, Mapping) else None
        if not isinstance(inputs, Mapping):
            continue
        count = pixels(inputs)
        if count is not None and count > max_pixels:
            raise JobFailed(
                ErrorType.INVALID_WORKFLOW,
                f"node {clip(str(node_id), 100)} ({clip(str(node.get('class_type')), 100)}) "
                f"would make {count} "
                f"pixels (width x height x batch x frames); the limit is {max_pixels} "
                "(MAX_PIXELS_PER_JOB): use a smaller size or batch",
                node_id=str(node_id),
            )


def check_images(input_dir: Path, max_pixels: int) -> None:
    """Raise ``JobFailed(input_error)`` for a staged image that decodes to too many pixels."""
    from PIL import Image, UnidentifiedImageError

    for root, _dirs, files in os.walk(input_dir):
        for name in files:
            path = Path(root) / name
            try:
                with Image.open(path) as image:  # reads the header only
                    width, height = image.size
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                width, height = max_pixels + 1, 1  # PIL's own guard fired (it is set to ours)
            except UnidentifiedImageError:
                continue  # not an image (a mask in another format, audio, ...)
            except (OSError, ValueError, SyntaxError):
                continue  # PIL can't read it: the loader that uses it will say why
            if width * height > max_pixels:
                rel = path.relative_to(input_dir).as_posix()
                size = f"of {width} x {height} pixels" if height > 1 else "too large"
                raise JobFailed(
                    ErrorType.INPUT_ERROR,
                    f"input {echo(rel)} is an image {size}; the limit is {max_pixels} pixels "
                    "(MAX_INPUT_PIXELS): send a smaller image",
                )
