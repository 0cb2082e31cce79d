"""Rendering of every shipped pipeline (golden API prompts) and rejection of bad parameters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from worker.errors import ErrorType, JobFailed
from worker.message.pipelines import PipelineCatalog

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = ROOT / "pipelines"
GOLDEN = Path(__file__).parent / "golden"

# The parameters each golden prompt was rendered with (fixed seeds: goldens must not drift).
GOLDEN_PARAMS: dict[str, dict[str, Any]] = {
    "demo-invert": {"width": 64, "height": 32, "color": 0x336699},
    "sd15-txt2img": {"prompt": "a lighthouse at dusk", "seed": 7, "width": 768},
    "sdxl-txt2img": {"prompt": "a red fox", "negative_prompt": "blurry", "seed": 42},
    "img2img": {"prompt": "watercolour", "image": "photos/cat.png", "seed": 1, "denoise": 0.45},
    "upscale": {"image": "small.png", "model": "4x-UltraSharp.pth", "rescale": 0.5},
    "sd15-lora": {
        "prompt": "a lighthouse in watercolour",
        "seed": 7,
        "lora": "https://huggingface.co/org/repo/resolve/main/watercolour.safetensors?download=1"
        "#sha256=" + "ab" * 32,
        "lora_strength": 0.6,
    },
}


def _seeds() -> Iterator[int]:
    n = 1000
    while True:
        n += 1
        yield n


@pytest.fixture
def catalog() -> PipelineCatalog:
    seeds = _seeds()
    return PipelineCatalog.load(PIPELINES, seed=lambda: next(seeds))


def test_ships_the_required_pipelines(catalog: PipelineCatalog) -> None:
    assert catalog.names() == sorted(GOLDEN_PARAMS)


@pytest.mark.parametrize("name", sorted(GOLDEN_PARAMS))
def test_renders_the_golden_prompt(catalog: PipelineCatalog, name: str) -> None:
    rendered = catalog.render(name, GOLDEN_PARAMS[name])
    golden = json.loads((GOLDEN / f"{name}.json").read_text())
    assert rendered.workflow == golden["workflow"]
    assert rendered.params == golden["params"]


def test_render_does_not_change_the_template(catalog: PipelineCatalog) -> None:
    first = catalog.render("demo-invert", {"width": 8})
    second = catalog.render("demo-invert", {})
    assert first.workflow["1"]["inputs"]["width"] == 8
    assert second.workflow["1"]["inputs"]["width"] == 512


def test_seed_is_random_by_default_and_recorded(catalog: PipelineCatalog) -> None:
    a = catalog.render("sd15-txt2img", {"prompt": "x"})
    b = catalog.render("sd15-txt2img", {"prompt": "x", "seed": None})
    assert a.params["seed"] == 1001 and b.params["seed"] == 1002
    assert a.workflow["3"]["inputs"]["seed"] == 1001


def test_real_random_seeds_differ() -> None:
    catalog = PipelineCatalog.load(PIPELINES)
    seeds = {catalog.render("sd15-txt2img", {"prompt": "x"}).params["seed"] for _ in range(5)}
    assert len(seeds) == 5 and all(0 <= s < 2**53 for s in seeds)


def test_defaults_fill_every_parameter(catalog: PipelineCatalog) -> None:
    rendered = catalog.render("img2img", {"prompt": "p"})
    assert rendered.params["image"] == "input.png"
    assert rendered.params["denoise"] == 0.6
    assert rendered.workflow["10"]["inputs"]["image"] == "input.png"
    assert rendered.workflow["11"]["inputs"]["width"] == 512


def test_integral_floats_and_int_floats_are_accepted(catalog: PipelineCatalog) -> None:
    rendered = catalog.render("sd15-txt2img", {"prompt": "p", "width": 640.0, "cfg": 5})
    assert rendered.params["width"] == 640 and isinstance(rendered.params["width"], int)
    assert rendered.params["cfg"] == 5.0 and isinstance(rendered.params["cfg"], float)


def _rejects(catalog: PipelineCatalog, name: str, params: Any) -> str:
    with pytest.raises(JobFailed) as info:
        catalog.render(name, params)
    assert info.value.error_type == ErrorType.INVALID_JOB
    return info.value.message


def test_unknown_pipeline_lists_the_available_ones(catalog: PipelineCatalog) -> None:
    message = _rejects(catalog, "sd3", {})
    assert "unknown pipeline 'sd3'" in message
    assert "demo-invert, img2img, sd15-lora, sd15-txt2img, sdxl-txt2img, upscale" in message


def test_unknown_parameter_lists_the_allowed_ones(catalog: PipelineCatalog) -> None:
    message = _rejects(catalog, "demo-invert", {"widht": 10})
    assert "unknown parameter 'widht'; did you mean 'width'?" in message
    assert "width (int, 1..4096, default 512)" in message
    assert "color (int, 0..16777215, default 0)" in message
    far = _rejects(catalog, "demo-invert", {"zzz": 1})
    assert "unknown parameter 'zzz'" in far and "did you mean" not in far


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"prompt": "p", "width": 4096}, "parameter 'width' must be int, 64..2048, multiple of 8"),
        ({"prompt": "p", "width": 513}, "multiple of 8"),
        ({"prompt": "p", "width": "512"}, "got '512' (string)"),
        ({"prompt": "p", "width": True}, "got True (boolean)"),
        ({"prompt": "p", "width": 512.5}, "got 512.5 (number)"),
        ({"prompt": "p", "steps": 0}, "parameter 'steps' must be int, 1..150"),
        ({"prompt": "p", "cfg": float("nan")}, "parameter 'cfg' must be float, 0..30"),
        ({"prompt": "p", "seed": -1}, "parameter 'seed' must be seed, 0..18446744073709551615"),
        ({"prompt": "p", "seed": 2**64}, "parameter 'seed'"),
        ({"prompt": "p", "sampler": "magic"}, "one of euler, euler_ancestral"),
        ({"prompt": 7}, "parameter 'prompt' must be string, required; got 7 (integer)"),
        ({"prompt": "x" * 10_001}, "at most 10000 characters"),
        ({}, "missing required parameter 'prompt'"),
    ],
)
def test_bad_values_say_what_is_allowed(
    catalog: PipelineCatalog, params: dict[str, Any], expected: str
) -> None:
    assert expected in _rejects(catalog, "sd15-txt2img", params)


@pytest.mark.parametrize("image", ["../etc/passwd", "/abs.png", "a//b.png", "a\\b.png", ""])
def test_file_parameters_must_be_relative_names(catalog: PipelineCatalog, image: str) -> None:
    message = _rejects(catalog, "upscale", {"image": image})
    assert "parameter 'image' must be file" in message


def test_every_problem_is_reported_at_once(catalog: PipelineCatalog) -> None:
    with pytest.raises(JobFailed) as info:
        catalog.render("sd15-txt2img", {"steps": 0, "bogus": 1})
    assert len(info.value.details["problems"]) == 3


def test_params_must_be_an_object(catalog: PipelineCatalog) -> None:
    message = _rejects(catalog, "demo-invert", ["width", 3])
    assert "must be an object" in message and "width (int" in message


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [("color", "0xff8800", 0xFF8800), ("width", "64", 64)],
)
def test_command_line_values(catalog: PipelineCatalog, name: str, text: str, value: Any) -> None:
    assert catalog.get("demo-invert").params[name].from_text(text) == value


def test_command_line_values_are_checked(catalog: PipelineCatalog) -> None:
    param = catalog.get("sd15-txt2img").params["cfg"]
    assert param.from_text("2.5") == 2.5
    with pytest.raises(ValueError, match="parameter 'cfg' must be float"):
        param.from_text("lots")


def test_a_model_parameter_becomes_a_models_entry(catalog: PipelineCatalog) -> None:
    from worker.config import Limits
    from worker.message.job import Delivery, ModelSpec, OutputFormat
    from worker.message.parse import Parser, Refused

    lora = "gs://team-models/loras/watercolour.safetensors"
    body = {"pipeline": "sd15-lora", "params": {"prompt": "x", "lora": lora}}
    delivery = Delivery("m", json.dumps(body).encode(), {}, 1, None)
    parser = Parser(Limits(allowed_model_buckets=("team-models",)), "out", catalog)
    job = parser.parse(delivery)
    (spec,) = job.models
    assert spec == ModelSpec(lora, "loras", spec.name) and spec.name.startswith("lora-")
    assert job.workflow["10"]["inputs"]["lora_name"] == spec.name
    assert job.output_format == OutputFormat("webp", 90)  # the pipeline's default
    with_format = {**body, "output": {"format": "jpeg"}}
    delivery = Delivery("m", json.dumps(with_format).encode(), {}, 1, None)
    assert parser.parse(delivery).output_format == OutputFormat("jpeg")
    # The URI still has to come from an allowed place.
    with pytest.raises(Refused) as info:
        Parser(Limits(), "out", catalog).parse(
            Delivery("m", json.dumps(body).encode(), {}, 1, None)
        )
    assert "ALLOWED_MODEL_BUCKETS" in info.value.error.message


@pytest.mark.parametrize(
    "value",
    [
        "file:///etc/passwd",
        "https://h/x.safetensors#frag",
        "https://h/x.safetensors#sha256=zz",
        {"uri": "gs://b/x", "extra": 1},
        {"sha256": "ab" * 32},
        7,
    ],
)
def test_bad_model_values(catalog: PipelineCatalog, value: Any) -> None:
    with pytest.raises(JobFailed) as info:
        catalog.render("sd15-lora", {"prompt": "x", "lora": value})
    assert (
        info.value.error_type is ErrorType.INVALID_JOB and "parameter 'lora'" in info.value.message
    )
