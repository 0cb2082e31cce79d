"""``output.format``: image outputs as PNG (ComfyUI's own files) or converted to WebP or JPEG.

Fields next to ``output.prefix``: ``format`` (``png`` default, ``webp``, ``jpeg``), ``quality``
(1-100, default 90; for lossless WebP it is the compression effort), ``lossless`` (WebP only) and
``keep_metadata`` (WebP and JPEG). A pipeline may declare a default ``output``; a job that names
a ``format`` replaces it, one that gives only ``quality`` (say) adjusts it.

Conversion runs on the finisher's thread after execution, never on the executor's time. Only
still PNGs are converted: animated PNGs, GIFs, WebPs, videos, audio and other files are stored
as the node saved them. A converted file drops the PNG's text chunks (the workflow and prompt,
present when ``PNG_METADATA`` is on) unless ``keep_metadata``: then they go into EXIF the way
ComfyUI's own WebP saver writes them (``prompt:<json>`` in tag 0x0110 Model, ``workflow:<json>``
and any other key from tag 0x010F Make downwards). JPEG's EXIF holds 64 KB at most: larger
metadata is dropped with a warning in the result. JPEG has no alpha: transparency is flattened
onto white.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any, cast, get_args

from worker.errors import ErrorType, JobFailed
from worker.message.bounded import echo
from worker.message.job import ImageFormat, OutputFormat, ProducedFile

FORMATS: tuple[ImageFormat, ...] = get_args(ImageFormat)
FORMAT_FIELDS = ("format", "quality", "lossless", "keep_metadata")
DEFAULT_QUALITY = 90
SUFFIX = {"webp": ".webp", "jpeg": ".jpg"}
CONTENT_TYPE = {"webp": "image/webp", "jpeg": "image/jpeg"}
MAX_JPEG_EXIF = 65_000  # an APP1 segment holds 65,533 bytes
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _invalid(message: str) -> JobFailed:
    return JobFailed(ErrorType.INVALID_JOB, message)


def check_output(raw: Mapping[str, Any], default: OutputFormat | None = None) -> OutputFormat:
    """The format fields of an ``output`` object (its ``prefix`` is read elsewhere)."""
    given = {k: raw[k] for k in FORMAT_FIELDS if k in raw}
    base = default if default is not None and "format" not in given else OutputFormat()
    fmt = given.get("format", base.format)
    if fmt not in FORMATS or not isinstance(fmt, str):
        raise _invalid(f'"output.format" {echo(fmt)} must be one of {", ".join(FORMATS)}')
    quality = given.get("quality", base.quality)
    lossless = given.get("lossless", base.lossless)
    keep = given.get("keep_metadata", base.keep_metadata)
    if quality is not None and (
        not isinstance(quality, int) or isinstance(quality, bool) or not 1 <= quality <= 100
    ):
        raise _invalid(f'"output.quality" {echo(quality)} must be a whole number from 1 to 100')
    for name, value in (("lossless", lossless), ("keep_metadata", keep)):
        if not isinstance(value, bool):
            raise _invalid(f'"output.{name}" {echo(value)} must be true or false')
    if fmt == "png" and (quality is not None or lossless or keep):
        raise _invalid(
            '"output.quality", "lossless" and "keep_metadata" apply to "webp" and "jpeg"; '
            "PNGs are stored as ComfyUI saved them (PNG_METADATA decides their metadata)"
        )
    if fmt == "jpeg" and lossless:
        raise _invalid('"output.lossless" applies to "webp" only')
    return OutputFormat(cast(ImageFormat, fmt), quality, lossless, keep)


def convert(
    files: Sequence[ProducedFile], fmt: OutputFormat, max_pixels: int
) -> tuple[list[ProducedFile], list[str]]:
    """``files`` with each still PNG image converted to ``fmt`` (written beside it; the PNG is
    kept, so a recording retried from the kept outputs converts again to the same bytes), and
    the warnings for the result. ``JobFailed(execution_error)`` for a PNG that can't be read."""
    if fmt.format == "png":
        return list(files), []
    out: list[ProducedFile] = []
    warnings: list[str] = []
    for produced in files:
        if produced.kind != "image" or PurePosixPath(produced.name).suffix.lower() != ".png":
            out.append(produced)
            continue
        converted, note = _convert_one(produced, fmt, max_pixels)
        out.append(converted)
        if note:
            warnings.append(note)
    return out, warnings


def png_size(path: Path) -> tuple[int, int] | None:
    """Width and height from a PNG's header, or None when it isn't one."""
    with path.open("rb") as f:
        head = f.read(24)
    if len(head) < 24 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def _convert_one(
    produced: ProducedFile, fmt: OutputFormat, max_pixels: int
) -> tuple[ProducedFile, str | None]:
    from PIL import Image, PngImagePlugin

    size = png_size(produced.path)
    if size is None or size[0] * size[1] > max_pixels:
        raise _failed(produced, "is not a readable PNG" if size is None else "is too large")
    try:
        # The plugin class directly: Image.open's decompression-bomb check is set for inputs
        # (MAX_INPUT_PIXELS); this file is one of the job's own outputs, bounded above.
        with PngImagePlugin.PngImageFile(str(produced.path)) as im:
            if getattr(im, "is_animated", False):
                return produced, None
            im.load()
            texts = {k: v for k, v in im.info.items() if isinstance(k, str) and isinstance(v, str)}
            image = _for_format(im, fmt.format, Image)
    except (OSError, ValueError, SyntaxError) as exc:
        raise _failed(produced, f"could not be read ({type(exc).__name__})") from exc
    name = str(PurePosixPath(produced.name).with_suffix(SUFFIX[fmt.format]))
    dest = produced.path.with_suffix(SUFFIX[fmt.format])
    exif, note = _exif(texts, fmt, Image, produced.name) if fmt.keep_metadata else (None, None)
    options: dict[str, Any] = {"quality": fmt.quality or DEFAULT_QUALITY}
    if fmt.format == "webp":
        options.update(lossless=fmt.lossless, method=4)
    if exif is not None:
        options["exif"] = exif
    try:
        image.save(dest, format=fmt.format.upper(), **options)
    except (OSError, ValueError) as exc:
        raise _failed(produced, f"could not be written as {fmt.format} ({exc})") from exc
    return (
        replace(produced, path=dest, name=name, content_type=CONTENT_TYPE[fmt.format]),
        note,
    )


def _for_format(im: Any, fmt: str, image_module: Any) -> Any:
    """The image in a mode ``fmt`` can store: RGB or RGBA for WebP, RGB or L for JPEG."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L"):  # 16-bit grey: keep the high byte
        im = im.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    alpha = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
    if fmt == "webp":
        return im.convert("RGBA" if alpha else "RGB") if im.mode not in ("RGB", "RGBA") else im
    if alpha:
        rgba = im.convert("RGBA")
        flat = image_module.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return im if im.mode in ("RGB", "L") else im.convert("RGB")


def _exif(
    texts: Mapping[str, str], fmt: OutputFormat, image_module: Any, name: str
) -> tuple[bytes | None, str | None]:
    """The PNG's text as EXIF, in ComfyUI's WebP convention; None (and a note) if too large."""
    if not texts:
        return None, None
    exif = image_module.Exif()
    tag = 0x010F
    for key, value in texts.items():
        if key == "prompt":
            exif[0x0110] = f"prompt:{value}"
        elif tag > 0x0100:
            exif[tag] = f"{key}:{value}"
            tag -= 1
    data: bytes = exif.tobytes()
    if fmt.format == "jpeg" and len(data) > MAX_JPEG_EXIF:
        return None, (
            f"output {name}: its metadata ({len(data)} bytes) does not fit JPEG's EXIF "
            f"({MAX_JPEG_EXIF} bytes) and was dropped; use webp to keep it"
        )
    return data, None


def _failed(produced: ProducedFile, what: str) -> JobFailed:
    return JobFailed(
        ErrorType.EXECUTION_ERROR,
        f"output {echo(produced.name)} {what}: it can't be converted (output.format)",
        node_id=produced.node_id,
    )
