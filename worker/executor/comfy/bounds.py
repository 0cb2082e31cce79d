"""Memory bounds checked before a workflow runs, so that one job can't exhaust the host.

ComfyUI's own limits are per input (``EmptyImage`` accepts 16384 x 16384 x 4096): a single node
could ask for terabytes and drive the host into an OOM kill, which looks like ``kill -9`` and
fails every job that happens to be in flight. Two checks run before ComfyUI sees the job:

- ``check_sizes``: every image, latent or audio a node makes is at most ``MAX_PIXELS_PER_JOB``
  pixels (or audio samples), estimated along the links in graph order. A node with literal
  ``width`` and ``height`` (or ``target_``/``final_``/``output_``/``cell_`` ones: the empty latent
  and image nodes, ``ImageScale``, ``LatentUpscale``, ...) makes that size, times its batch,
  frame and layer inputs, times the batch it receives; any other node passes on the largest
  input it receives, multiplied by its own ``amount``/``multiplier`` (``RepeatImageBatch``,
  ``RepeatLatentBatch``, ``FrameInterpolate``), scaled by ``scale_by``/``upscale_by``, padded by
  ``left``/``right``/``top``/``bottom``, set to ``megapixels``; the batching nodes
  (``ImageBatch``, ``LatentBatch``, ``ImageStitch``, ...) add up what they receive, so a chain of
  them doubling a batch is counted as it grows. ``EmptyAudio`` makes duration x rate x channels
  samples. A number that comes through a link from a primitive node (``PrimitiveInt``) counts as
  literal; one computed while running is not known here and is not counted (nor is a model's
  own scale, as in ``ImageUpscaleWithModel``).
- ``check_images``: every staged input that is an image decodes to at most ``MAX_INPUT_PIXELS``
  pixels, all its frames together (``LoadImage`` loads every frame of a GIF, APNG, WebP or
  TIFF), read from the file's headers; nothing is decoded. Every staged file is then probed with
  PyAV (``media.check``), since ComfyUI's loaders decode whatever PyAV reads, whatever the name:
  a video stream holds at most ``MAX_INPUT_PIXELS`` pixels over all its frames, an audio stream
  ``3 x MAX_INPUT_PIXELS`` samples over all its channels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.errors import ErrorType, JobFailed
from worker.executor.comfy import graph, media
from worker.message.bounded import clip, echo

BIG = 2**62  # past any limit; literals beyond it count as this
# Inputs that multiply a sized node's width x height (batches, frames, layers).
MULTIPLIERS = ("batch_size", "length", "frames", "num_frames", "video_frames", "amount", "layers")
WIDTHS = ("width", "target_width", "final_width", "output_width", "cell_width")
HEIGHTS = ("height", "target_height", "final_height", "output_height", "cell_height")
REPEATS = ("amount", "multiplier")  # a node that passes its input on, this many times over
SCALES = ("scale_by", "upscale_by")
PADS = (("left", "right"), ("top", "bottom"))
BATCHING = frozenset(  # nodes whose output holds all of what they receive
    {
        "ImageBatch",
        "LatentBatch",
        "LatentConcat",
        "ImageStitch",
        "BatchImagesNode",
        "BatchLatentsNode",
        "BatchMasksNode",
        "AudioConcat",
        "MergeImageLists",
    }
)


@dataclass(frozen=True)
class Size:
    """What a node makes: width x height per item, ``count`` items (batch x frames)."""

    width: float
    height: float
    count: float = 1

    @property
    def total(self) -> int:
        product = self.width * self.height * self.count
        return int(product) if product < BIG else BIG  # inf and NaN count as BIG


def _count(value: Any) -> float | None:
    """A literal number (bools and links are not)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return float(max(min(value, BIG), -BIG))  # float(10**400) would raise
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def _literal(workflow: Mapping[str, Any], value: Any) -> float | None:
    """A literal, or the literal ``value`` of a primitive node that a link comes from."""
    if isinstance(value, list) and len(value) == 2:
        source = workflow.get(str(value[0]))
        inputs = source.get("inputs") if isinstance(source, Mapping) else None
        if isinstance(inputs, Mapping) and set(inputs) == {"value"}:
            return _count(inputs["value"])
        return None
    return _count(value)


def pixels(inputs: Mapping[str, Any]) -> int | None:
    """width x height x batch x frames for a node's literal inputs, or None if not sized."""
    own = _own({"n": {"inputs": inputs}}, inputs)
    return None if own is None else own[0].total


def _first(workflow: Mapping[str, Any], inputs: Mapping[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        n = _literal(workflow, inputs.get(name))
        if n is not None:
            return n
    return None


def _own(workflow: Mapping[str, Any], inputs: Mapping[str, Any]) -> tuple[Size, bool] | None:
    """The size a node's own inputs ask for (width x height x multipliers, or audio samples),
    and whether they say how many items (else it makes as many as it receives)."""
    width, height = _first(workflow, inputs, WIDTHS), _first(workflow, inputs, HEIGHTS)
    if width is not None and height is not None:
        count, counted = 1.0, False
        for name in MULTIPLIERS:
            n = _literal(workflow, inputs.get(name))
            if n is not None:
                count, counted = count * max(n, 1), True
        return Size(max(width, 0), max(height, 0), count), counted
    seconds = _first(workflow, inputs, ("duration", "seconds"))
    rate = _literal(workflow, inputs.get("sample_rate"))
    if seconds is not None and rate is not None:
        channels = _literal(workflow, inputs.get("channels")) or 1
        return Size(max(seconds, 0) * max(rate, 0), max(channels, 1)), True
    return None


def _received(sizes: list[Size], batching: bool) -> Size | None:
    if not sizes:
        return None
    if batching:
        return Size(
            max(s.width for s in sizes), max(s.height for s in sizes), sum(s.count for s in sizes)
        )
    return max(sizes, key=lambda s: s.total)


def _passed_on(workflow: Mapping[str, Any], inputs: Mapping[str, Any], size: Size) -> Size:
    width, height, count = size.width, size.height, size.count
    for name in REPEATS:
        n = _literal(workflow, inputs.get(name))
        count *= max(n, 1) if n is not None else 1
    for name in SCALES:
        n = _literal(workflow, inputs.get(name))
        if n is not None and n > 1:
            width, height = width * n, height * n
    (left, right), (top, bottom) = (
        [_literal(workflow, inputs.get(k)) or 0 for k in p] for p in PADS
    )
    width += max(left, 0) + max(right, 0)
    height += max(top, 0) + max(bottom, 0)
    megapixels = _literal(workflow, inputs.get("megapixels"))
    if megapixels is not None:
        width, height = max(megapixels, 0) * 1024 * 1024, 1.0
    return Size(width, height, count)


def sizes(workflow: Mapping[str, Any]) -> dict[str, Size]:
    """node id -> the estimated size of what it makes (nodes that make nothing sized: absent)."""
    links = graph.parents(workflow)
    out: dict[str, Size] = {}
    for node_id in graph.topological(links):
        node = workflow[node_id]
        inputs = node.get("inputs") or {}
        batching = node.get("class_type") in BATCHING
        got = [out[p] for p in links[node_id] if p in out]
        if batching:  # the same node linked twice counts twice
            got = [
                out[str(v[0])]
                for v in inputs.values()
                if isinstance(v, list) and len(v) == 2 and str(v[0]) in out
            ]
        received = _received(got, batching)
        own = _own(workflow, inputs)
        if own is not None:
            size, counted = own
            count = size.count if counted or received is None else received.count
            out[node_id] = Size(size.width, size.height, count)
        elif received is not None:
            out[node_id] = _passed_on(workflow, inputs, received)
    return out


def check_sizes(workflow: Mapping[str, Any], max_pixels: int) -> None:
    """Raise ``JobFailed(invalid_workflow)`` for the first node (in graph order) over
    ``max_pixels``."""
    for node_id, size in sizes(workflow).items():
        count = size.total
        if count > max_pixels:
            node = workflow[node_id]
            raise JobFailed(
                ErrorType.INVALID_WORKFLOW,
                f"node {clip(str(node_id), 100)} ({clip(str(node.get('class_type')), 100)}) "
                f"would make {count} "
                f"pixels (width x height x batch x frames, counting what it receives); the "
                f"limit is {max_pixels} (MAX_PIXELS_PER_JOB): use a smaller size or batch",
                node_id=str(node_id),
            )


def check_images(input_dir: Path, max_pixels: int) -> None:
    """Raise ``JobFailed(input_error)`` for a staged image, video or audio file that decodes to
    too many pixels (or samples)."""
    for root, _dirs, files in os.walk(input_dir):
        for name in sorted(files):
            path = Path(root) / name
            rel = path.relative_to(input_dir).as_posix()
            _check_image(path, rel, max_pixels)
            media.check(path, rel, max_pixels)  # PIL may see one frame where PyAV sees many


def _check_image(path: Path, rel: str, max_pixels: int) -> None:
    from PIL import Image, UnidentifiedImageError

    frames = 1
    try:
        with Image.open(path) as image:  # reads the headers only
            width, height = image.size
            # LoadImage loads every frame (MPO: the first only); n_frames walks the
            # frames' headers (GIF, TIFF) or reads a count (APNG, WebP).
            if image.format != "MPO" and width * height <= max_pixels:
                frames = max(int(getattr(image, "n_frames", 1)), 1)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        width, height = max_pixels + 1, 1  # PIL's own guard fired (it is set to ours)
    except UnidentifiedImageError:
        return  # not an image (a mask in another format, audio, ...)
    except (OSError, ValueError, SyntaxError, EOFError):
        return  # PIL can't read it: the loader that uses it will say why
    if width * height * frames > max_pixels:
        size = f"of {width} x {height} pixels" if height > 1 else "too large"
        if frames > 1:
            size = f"of {frames} frames of {width} x {height} pixels"
        raise JobFailed(
            ErrorType.INPUT_ERROR,
            f"input {echo(rel)} is an image {size}; the limit is {max_pixels} pixels, "
            "all frames together (MAX_INPUT_PIXELS): send a smaller image or fewer "
            "frames",
        )
