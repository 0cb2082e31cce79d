"""``output.format``: PNG, WebP or JPEG outputs, quality bounds, metadata kept or dropped,
animated images and other files untouched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from worker.config import Limits
from worker.errors import ErrorType, JobFailed
from worker.message.job import Delivery, OutputFormat, ProducedFile
from worker.message.parse import Parser, Refused
from worker.record.output_format import check_output, convert

PROMPT = {"3": {"class_type": "KSampler", "inputs": {"seed": 7}}}
WORKFLOW_UI = {"nodes": [{"id": 3}], "links": []}
MAX_PIXELS = 2**28


def png(path: Path, mode: str = "RGB", size: tuple[int, int] = (64, 48), text: bool = True) -> Path:
    image = Image.new(mode, size)
    for x in range(size[0]):  # some structure, so that quality changes the size
        for y in range(0, size[1], 3):
            image.putpixel((x, y), (x * 4 % 256, y * 5 % 256, 90, 200)[: len(mode)])
    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text("prompt", json.dumps(PROMPT))
        info.add_text("workflow", json.dumps(WORKFLOW_UI))
    image.save(path, pnginfo=info)
    return path


def produced(path: Path, kind: str = "image", name: str | None = None) -> ProducedFile:
    return ProducedFile(path, name or path.name, kind, "9", None)  # type: ignore[arg-type]


def convert_one(path: Path, **fmt: Any) -> tuple[ProducedFile, list[str]]:
    files, notes = convert([produced(path)], OutputFormat(**fmt), MAX_PIXELS)
    return files[0], notes


@pytest.mark.parametrize(
    ("fmt", "suffix", "ctype", "pil"),
    [("webp", ".webp", "image/webp", "WEBP"), ("jpeg", ".jpg", "image/jpeg", "JPEG")],
)
def test_each_format_converts_a_still_png(
    tmp_path: Path, fmt: str, suffix: str, ctype: str, pil: str
) -> None:
    source = png(tmp_path / "ComfyUI_00001_.png")
    out, notes = convert_one(source, format=fmt)
    assert (out.name, out.content_type, out.kind, out.node_id) == (
        f"ComfyUI_00001_{suffix}",
        ctype,
        "image",
        "9",
    )
    assert notes == [] and source.exists()  # kept: a retried recording converts again
    with Image.open(out.path) as im:
        assert im.format == pil and im.size == (64, 48)
        assert not im.getexif()  # the workflow and prompt were dropped
    assert b"KSampler" not in out.path.read_bytes()


def test_png_is_stored_as_saved(tmp_path: Path) -> None:
    source = produced(png(tmp_path / "a.png"))
    assert convert([source], OutputFormat(), MAX_PIXELS) == ([source], [])


def test_quality_changes_the_bytes(tmp_path: Path) -> None:
    sizes = {}
    for quality in (1, 100):
        out, _ = convert_one(
            png(tmp_path / f"q{quality}.png", size=(256, 256)), format="jpeg", quality=quality
        )
        sizes[quality] = out.path.stat().st_size
    assert sizes[1] < sizes[100] / 3
    lossy, _ = convert_one(png(tmp_path / "l.png"), format="webp", quality=50)
    lossless, _ = convert_one(png(tmp_path / "ll.png"), format="webp", lossless=True)
    with Image.open(lossless.path) as a, Image.open(tmp_path / "ll.png") as b:
        assert a.convert("RGB").tobytes() == b.convert("RGB").tobytes()
    with Image.open(lossy.path) as a, Image.open(tmp_path / "l.png") as b:
        assert a.convert("RGB").tobytes() != b.convert("RGB").tobytes()


@pytest.mark.parametrize("fmt", ["webp", "jpeg"])
def test_metadata_kept_in_comfyuis_exif_convention(tmp_path: Path, fmt: str) -> None:
    out, notes = convert_one(png(tmp_path / "a.png"), format=fmt, keep_metadata=True)
    assert notes == []
    with Image.open(out.path) as im:
        exif = im.getexif()
    assert json.loads(exif[0x0110].removeprefix("prompt:")) == PROMPT
    assert json.loads(exif[0x010F].removeprefix("workflow:")) == WORKFLOW_UI


def test_metadata_too_large_for_jpeg_is_dropped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("workflow", "x" * 70_000)
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    out, notes = convert_one(path, format="jpeg", keep_metadata=True)
    assert len(notes) == 1 and "does not fit JPEG's EXIF" in notes[0] and "big.png" in notes[0]
    with Image.open(out.path) as im:
        assert not im.getexif()
    webp, notes = convert_one(path, format="webp", keep_metadata=True)  # WebP holds it
    assert notes == []
    with Image.open(webp.path) as im:
        assert len(im.getexif()[0x010F]) == 70_000 + len("workflow:")


def test_modes_jpeg_flattens_alpha_onto_white(tmp_path: Path) -> None:
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(rgba)
    out, _ = convert_one(rgba, format="jpeg")
    with Image.open(out.path) as im:
        pixel = im.getpixel((1, 1))
        assert im.mode == "RGB" and isinstance(pixel, tuple) and min(pixel) > 245
    out, _ = convert_one(rgba, format="webp")
    with Image.open(out.path) as im:
        pixel = im.getpixel((1, 1))
        assert im.mode == "RGBA" and isinstance(pixel, tuple) and pixel[3] == 0
    grey16 = tmp_path / "grey16.png"
    Image.new("I;16", (4, 4), 65535).save(grey16)
    for fmt in ("jpeg", "webp"):
        out, _ = convert_one(grey16, format=fmt)
        with Image.open(out.path) as im:
            assert min(im.convert("L").tobytes()) > 245
    palette = tmp_path / "p.png"
    Image.new("P", (4, 4), 3).save(palette)
    assert convert_one(palette, format="jpeg")[0].path.suffix == ".jpg"


def test_animated_images_and_other_files_are_untouched(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), (i * 60, 0, 0)) for i in range(3)]
    apng = tmp_path / "anim.png"
    frames[0].save(apng, save_all=True, append_images=frames[1:], duration=100)
    gif, awebp = tmp_path / "a.gif", tmp_path / "a.webp"
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    frames[0].save(awebp, save_all=True, append_images=frames[1:])
    video, audio, text = tmp_path / "v.mp4", tmp_path / "s.flac", tmp_path / "t.png"
    for p in (video, audio, text):
        p.write_bytes(b"not an image")
    files = [
        produced(apng),
        produced(gif),
        produced(awebp),
        produced(video, "video"),
        produced(audio, "audio"),
        produced(text, "text"),  # a .png name on a text output: not an image output
    ]
    before = {p: p.read_bytes() for p in (apng, gif, awebp, video, audio, text)}
    for fmt in (OutputFormat("webp"), OutputFormat("jpeg")):
        assert convert(files, fmt, MAX_PIXELS) == (files, [])
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in before)


def test_an_unreadable_png_fails_the_job_naming_the_output(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(JobFailed) as info:
        convert_one(bad, format="webp")
    assert info.value.error_type is ErrorType.EXECUTION_ERROR and "bad.png" in info.value.message
    with pytest.raises(JobFailed, match="is too large"):
        convert([produced(png(tmp_path / "ok.png"))], OutputFormat("jpeg"), 100)


def test_conversion_is_repeatable(tmp_path: Path) -> None:
    source = png(tmp_path / "a.png")
    first, _ = convert_one(source, format="webp", quality=80)
    data = first.path.read_bytes()
    second, _ = convert_one(source, format="webp", quality=80)
    assert second == first and second.path.read_bytes() == data


# -- the message's fields ---------------------------------------------------------------------

WORKFLOW = {"1": {"class_type": "EmptyImage", "inputs": {}}}


def parse(output: Any) -> Any:
    body = {"workflow": WORKFLOW, "output": output}
    return Parser(Limits(), "out").parse(Delivery("m", json.dumps(body).encode(), {}, 1, None))


def test_message_fields_and_their_refusals() -> None:
    job = parse({"prefix": "a/b", "format": "webp", "quality": 80, "lossless": True})
    assert job.output_prefix == "a/b"
    assert job.output_format == OutputFormat("webp", 80, True, False)
    assert parse({}).output_format == OutputFormat()
    for output, expected in [
        ({"format": "gif"}, "must be one of png, webp, jpeg"),
        ({"format": "jpeg", "quality": 0}, "from 1 to 100"),
        ({"format": "jpeg", "quality": 101}, "from 1 to 100"),
        ({"format": "jpeg", "quality": 90.5}, "from 1 to 100"),
        ({"format": "jpeg", "quality": True}, "from 1 to 100"),
        ({"format": "jpeg", "lossless": True}, 'applies to "webp" only'),
        ({"quality": 50}, 'apply to "webp" and "jpeg"'),
        ({"format": "webp", "keep_metadata": "yes"}, "must be true or false"),
        ({"format": "webp", "size": 3}, "must be an object with some of"),
    ]:
        with pytest.raises(Refused) as info:
            parse(output)
        assert info.value.error.error_type is ErrorType.INVALID_JOB
        assert expected in info.value.error.message, (output, info.value.error.message)


def test_a_pipeline_default_and_what_a_job_overrides() -> None:
    default = OutputFormat("webp", 70, False, True)
    assert check_output({}, default) == default
    assert check_output({"quality": 50}, default) == OutputFormat("webp", 50, False, True)
    assert check_output({"format": "jpeg"}, default) == OutputFormat("jpeg")
    assert check_output({"format": "png"}, default) == OutputFormat()


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 120),
    st.floats(allow_nan=False),
    st.text(max_size=6),
    st.sampled_from(["png", "webp", "jpeg", "JPEG", "jpg"]),
)


@settings(max_examples=400, deadline=None)
@given(
    raw=st.dictionaries(
        st.sampled_from(["format", "quality", "lossless", "keep_metadata"]), values, max_size=4
    )
)
def test_any_value_is_a_valid_format_or_invalid_job(raw: dict[str, Any]) -> None:
    try:
        fmt = check_output(raw)
    except JobFailed as exc:
        assert exc.error_type is ErrorType.INVALID_JOB
        return
    assert fmt.format in ("png", "webp", "jpeg")
    assert fmt.quality is None or (type(fmt.quality) is int and 1 <= fmt.quality <= 100)
    assert not (fmt.lossless and fmt.format != "webp")
    assert fmt.format != "png" or fmt == OutputFormat()
