"""What a job's workflow can make ComfyUI do to the host or to other jobs (real ComfyUI; skipped
without COMFYUI_DIR): save names that leave the output folder, another job's files served from
ComfyUI's cache, files that outlive their job, sizes that grow along links, frames inside one
input image, and graphs whose bookkeeping alone would hold the worker."""

from __future__ import annotations

import hashlib
import importlib
import io
import struct
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.comfy import workflows
from tests.comfy.conftest import DUMMY_MODEL, ComfyHarness
from worker.config import Limits
from worker.errors import ErrorType, JobFailed
from worker.executor.base import ExecRequest, ExecResult
from worker.executor.comfy import graph, saves

pytestmark = pytest.mark.comfyui
LIMIT = Limits().max_pixels_per_job  # the default the harness runs with
FEW = settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
_jobs = iter(range(10**9))


def run(comfy: ComfyHarness, base: Path, workflow: dict[str, Any], **files: bytes) -> ExecResult:
    """One job with its own folders; ``files`` may name subfolders (``ds/a.png``)."""
    job = f"h{next(_jobs)}"
    inputs = base / job / "in"
    inputs.mkdir(parents=True)
    for name, data in files.items():
        (inputs / name).parent.mkdir(parents=True, exist_ok=True)
        (inputs / name).write_bytes(data)
    return comfy.executor.execute(ExecRequest(job, workflow, inputs, base / job / "out"))


def refused(comfy: ComfyHarness, base: Path, workflow: dict[str, Any], **files: bytes) -> JobFailed:
    with pytest.raises(JobFailed) as failed:
        run(comfy, base, workflow, **files)
    return failed.value


def png(color: tuple[int, int, int], side: int = 8) -> bytes:
    image = importlib.import_module("PIL.Image")
    buf = io.BytesIO()
    image.new("RGB", (side, side), color).save(buf, format="PNG")
    return buf.getvalue()


def pixel(path: Path) -> tuple[int, ...]:
    image = importlib.import_module("PIL.Image")
    with image.open(path) as im:
        return tuple(im.convert("RGB").getpixel((0, 0)))


def inverted(got: tuple[int, ...], color: tuple[int, int, int]) -> bool:
    """``got`` is ``color`` inverted (LoadImage decodes through a video codec: off by a few)."""
    return all(abs(g - (255 - c)) <= 3 for g, c in zip(got, color, strict=True))


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


colors = st.tuples(*[st.integers(0, 255)] * 3)

# -- save names ----------------------------------------------------------------------------

hostile_prefix = st.one_of(
    st.builds(lambda a, b: f"{a}/../{b}", st.sampled_from(["", "x", "a/b"]), st.just("..")),
    st.builds(lambda a: "../" * a + "escape", st.integers(1, 4)),
    st.builds(lambda a: "/" + a, st.sampled_from(["tmp/x", "etc/passwd", "work/models/x"])),
    st.builds(lambda a: a.replace("/", "\\"), st.sampled_from(["..\\x", "a\\..\\..\\b"])),
    st.builds(lambda a, n: "a" * n + a, st.sampled_from(["", "/b"]), st.integers(201, 400)),
    st.builds(lambda a: f"a{a}b", st.just("\x00")),
)


@FEW
@given(prefix=hostile_prefix)
def test_a_save_name_out_of_the_output_folder_is_refused_before_anything_runs(
    comfy: ComfyHarness, tmp_path: Path, prefix: str
) -> None:
    work = comfy.executor.comfy.output_dir.parent  # type: ignore[union-attr]
    before = files_under(work)
    started = time.perf_counter()
    err = refused(comfy, tmp_path, workflows.model_free(size=16, prefix=prefix))
    assert err.error_type is ErrorType.INVALID_WORKFLOW and err.node_id == "3", err.message
    assert 'input "filename_prefix"' in err.message and "relative name" in err.message
    assert str(work) not in err.message  # no host folder quoted back
    assert not err.message.count("\x00")
    assert files_under(work) == before and time.perf_counter() - started < 5


@pytest.mark.parametrize(
    ("class_type", "inputs"),
    [
        ("CheckpointSave", {"model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2]}),
        ("SaveLatent", {"samples": ["2", 0]}),
        (
            "SaveAnimatedWEBP",
            {"images": ["3", 0], "fps": 6.0, "lossless": True, "quality": 80, "method": "fastest"},
        ),
        ("SaveAudio", {"audio": ["4", 0]}),
    ],
)
def test_model_and_media_saves_cannot_write_where_other_jobs_read(
    comfy: ComfyHarness, tmp_path: Path, class_type: str, inputs: dict[str, Any]
) -> None:
    # A checkpoint saved "../../models/checkpoints/x" would be loaded by every later job.
    workflow: dict[str, Any] = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": DUMMY_MODEL}},
        "2": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1},
        },
        "3": {
            "class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": 2, "color": 0},
        },
        "4": {
            "class_type": "EmptyAudio",
            "inputs": {"duration": 0.1, "sample_rate": 8000, "channels": 1},
        },
        "9": {
            "class_type": class_type,
            "inputs": {**inputs, "filename_prefix": "../../models/checkpoints/evil"},
        },
    }
    workflow = {
        k: v
        for k, v in workflow.items()
        if k == "9" or any(link[0] == k for link in inputs.values() if isinstance(link, list))
    }
    models = files_under(comfy.models_dir)
    err = refused(comfy, tmp_path, workflow)
    assert err.error_type is ErrorType.INVALID_WORKFLOW and err.node_id == "9", err.message
    assert '".." part' in err.message
    assert files_under(comfy.models_dir) == models


def test_a_save_name_through_a_link_is_still_kept_in_by_comfyui(
    comfy: ComfyHarness, tmp_path: Path
) -> None:
    work = comfy.executor.comfy.output_dir.parent  # type: ignore[union-attr]
    workflow = workflows.model_free(size=8)
    workflow["5"] = {"class_type": "PrimitiveString", "inputs": {"value": "../../escape"}}
    workflow["3"]["inputs"]["filename_prefix"] = ["5", 0]
    err = refused(comfy, tmp_path, workflow)
    assert err.error_type is ErrorType.EXECUTION_ERROR and err.node_id == "3"
    assert not list(work.parent.rglob("escape*")) and not list(tmp_path.rglob("escape*"))


@FEW
@given(
    prefix=st.lists(
        st.text(
            st.characters(categories=["L", "N"], include_characters="-_ ."), min_size=1, max_size=12
        ).filter(lambda p: p.strip(".") != ""),
        min_size=1,
        max_size=3,
    ).map("/".join)
)
def test_any_accepted_save_name_lands_in_the_jobs_own_folder(
    comfy: ComfyHarness, tmp_path: Path, prefix: str
) -> None:
    assert saves.problem(prefix) is None
    result = run(comfy, tmp_path, workflows.model_free(size=8, prefix=prefix))
    [out] = result.outputs
    job_out = out.path.parents[len(Path(out.name).parts) - 1]
    assert job_out.name == "out" and out.path.resolve().is_relative_to(job_out.resolve())
    assert out.path.is_file() and out.name.startswith(prefix.rsplit("/", 1)[0])


# -- another job's files from ComfyUI's cache ----------------------------------------------


@FEW
@given(mine=colors, theirs=colors)
def test_a_job_cannot_choose_the_fingerprint_that_caches_its_image_for_another(
    comfy: ComfyHarness, tmp_path: Path, mine: tuple[int, int, int], theirs: tuple[int, int, int]
) -> None:
    # ComfyUI takes a node's "is_changed" from the prompt when it is there: the attacker names
    # the victim's file's hash, so that its own image is cached under the victim's key.
    victim = png(theirs)
    attack = workflows.load_invert("in.png")
    attack["1"]["is_changed"] = [hashlib.sha256(victim).hexdigest()]
    run(comfy, tmp_path, attack, **{"in.png": png(mine)})
    result = run(comfy, tmp_path, workflows.load_invert("in.png"), **{"in.png": victim})
    assert inverted(pixel(result.outputs[0].path), theirs)


def folder_loader(folder: Any) -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImageDataSetFromFolder", "inputs": {"folder": folder}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "f"}},
    }


@FEW
@given(
    first=colors,
    second=colors,
    folder=st.sampled_from(["ds", "a/b", "photos"]),
    linked=st.booleans(),
)
def test_a_loader_that_fingerprints_nothing_never_serves_an_earlier_jobs_files(
    comfy: ComfyHarness,
    tmp_path: Path,
    first: tuple[int, int, int],
    second: tuple[int, int, int],
    folder: str,
    linked: bool,
) -> None:
    # LoadImageDataSetFromFolder is cached under its folder's name: without the worker's help
    # the second job gets the first job's (private) images back. Linked: a name built while
    # running, which no literal shows.
    workflow = folder_loader(["9", 0] if linked else folder)
    if linked:
        workflow["8"] = {
            "class_type": "StringConcatenate",
            "inputs": {"string_a": folder[:1], "string_b": folder[1:], "delimiter": ""},
        }
        workflow["9"] = {
            "class_type": "ComfySwitchNode",
            "inputs": {"switch": True, "on_true": ["8", 0], "on_false": ["8", 0]},
        }
    run(comfy, tmp_path, workflow, **{f"{folder}/a.png": png(first)})
    result = run(comfy, tmp_path, workflow, **{f"{folder}/b.png": png(second)})
    [out] = result.outputs
    assert inverted(pixel(out.path), second)


def test_the_model_loaders_and_text_stay_cached_across_jobs_with_files(
    comfy: ComfyHarness, tmp_path: Path
) -> None:
    workflow = workflows.load_invert("a.png")
    workflow["7"] = {"class_type": "PrimitiveString", "inputs": {"value": "kept"}}
    workflow["8"] = {"class_type": "PreviewAny", "inputs": {"source": ["7", 0]}}
    run(comfy, tmp_path, workflow, **{"a.png": png((1, 2, 3))})
    again = run(comfy, tmp_path, workflow, **{"a.png": png((4, 5, 6))})
    assert "7" in again.info["cached_nodes"] and "1" not in again.info["cached_nodes"]


def test_a_saved_dataset_is_the_jobs_output_and_gone_for_the_next_job(
    comfy: ComfyHarness, tmp_path: Path
) -> None:
    # SaveTrainingDataset writes into ComfyUI's "datasets" folder (by default in COMFYUI_DIR),
    # where it outlived the job and LoadTrainingDataset listed it to every later job.
    name = f"mine-{uuid.uuid4().hex[:8]}"
    save = {
        "1": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": 64, "height": 64, "batch_size": 1},
        },
        "2": {"class_type": "LotusConditioning", "inputs": {}},
        "3": {
            "class_type": "SaveTrainingDataset",
            "inputs": {
                "latents": ["1", 0],
                "conditioning": ["2", 0],
                "folder_name": name,
                "shard_size": 10,
            },
        },
    }
    before = (
        files_under(comfy.comfyui_dir / "datasets")
        if (comfy.comfyui_dir / "datasets").is_dir()
        else set()
    )
    result = run(comfy, tmp_path, save)
    assert sorted(o.name for o in result.outputs) == [
        f"datasets/{name}/metadata.json",
        f"datasets/{name}/shard_0000.pkl",
    ]
    assert all(o.path.is_file() for o in result.outputs)
    after = (
        files_under(comfy.comfyui_dir / "datasets")
        if (comfy.comfyui_dir / "datasets").is_dir()
        else set()
    )
    assert after == before
    load = {
        "1": {"class_type": "LoadTrainingDataset", "inputs": {"folder_name": name}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    err = refused(comfy, tmp_path, load)
    assert err.error_type is ErrorType.INVALID_WORKFLOW and err.node_id == "1"


# -- sizes that grow along links -----------------------------------------------------------

OPS = ("repeat", "scale", "batch", "pad")


@st.composite
def growing(draw: st.DrawFn) -> tuple[dict[str, Any], int, str | None]:
    """EmptyImage, then ops that grow it; with the true largest size and the first node over."""
    side = draw(st.integers(1, 8))
    workflow: dict[str, Any] = {
        "0": {
            "class_type": "EmptyImage",
            "inputs": {"width": side, "height": side, "batch_size": 1, "color": 0},
        }
    }
    w = h = side
    n, worst, first_over = 1, side * side, None
    ops = draw(st.lists(st.sampled_from(OPS), min_size=1, max_size=8))
    for i, op in enumerate(ops, start=1):
        prev, node = str(i - 1), str(i)
        if op == "repeat":
            amount = draw(st.sampled_from([1, 2, 64, 4096]))
            workflow[node] = {
                "class_type": "RepeatImageBatch",
                "inputs": {"image": [prev, 0], "amount": amount},
            }
            n *= amount
        elif op == "scale":
            by = draw(st.sampled_from([1.0, 2.0, 8.0]))
            workflow[node] = {
                "class_type": "ImageScaleBy",
                "inputs": {"image": [prev, 0], "upscale_method": "nearest-exact", "scale_by": by},
            }
            w, h = int(w * by), int(h * by)
        elif op == "batch":
            workflow[node] = {
                "class_type": "ImageBatch",
                "inputs": {"image1": [prev, 0], "image2": [prev, 0]},
            }
            n *= 2
        else:
            pad = draw(st.sampled_from([0, 8, 16384]))
            workflow[node] = {
                "class_type": "ImagePadForOutpaint",
                "inputs": {
                    "image": [prev, 0],
                    "left": pad,
                    "top": pad,
                    "right": 0,
                    "bottom": 0,
                    "feathering": 0,
                },
            }
            w, h = w + pad, h + pad
        worst = max(worst, w * h * n)
        if worst > LIMIT and first_over is None:
            first_over = node
    workflow["s"] = {"class_type": "PreviewImage", "inputs": {"images": [str(len(ops)), 0]}}
    return workflow, worst, first_over


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=growing())
def test_a_size_that_grows_along_links_is_refused_before_it_runs(
    comfy: ComfyHarness, tmp_path: Path, case: tuple[dict[str, Any], int, str | None]
) -> None:
    workflow, worst, first_over = case
    if first_over is None:
        if worst <= 2**18:  # small enough to really run here
            run(comfy, tmp_path, workflow)
        return
    started = time.perf_counter()
    err = refused(comfy, tmp_path, workflow)
    assert err.error_type is ErrorType.INVALID_WORKFLOW, err.message
    assert "MAX_PIXELS_PER_JOB" in err.message and err.node_id == first_over
    assert time.perf_counter() - started < 5  # nothing was allocated


@pytest.mark.parametrize(
    ("nodes", "over"),
    [
        (
            {
                "1": {"class_type": "PrimitiveInt", "inputs": {"value": 16384}},
                "2": {
                    "class_type": "EmptyImage",
                    "inputs": {"width": ["1", 0], "height": ["1", 0], "batch_size": 64, "color": 0},
                },
            },
            "2",
        ),
        (
            {
                "1": {
                    "class_type": "EmptyLatentImage",
                    "inputs": {"width": 512, "height": 512, "batch_size": 64},
                },
                "2": {
                    "class_type": "LatentUpscale",
                    "inputs": {
                        "samples": ["1", 0],
                        "upscale_method": "nearest-exact",
                        "width": 16384,
                        "height": 16384,
                        "crop": "disabled",
                    },
                },
            },
            "2",
        ),
        (
            {
                "1": {
                    "class_type": "EmptyLatentImage",
                    "inputs": {"width": 4096, "height": 4096, "batch_size": 4},
                },
                "2": {
                    "class_type": "RepeatLatentBatch",
                    "inputs": {"samples": ["1", 0], "amount": 64},
                },
            },
            "2",
        ),
        (
            {
                "1": {
                    "class_type": "EmptyAudio",
                    "inputs": {"duration": 10**7, "sample_rate": 48000, "channels": 2},
                }
            },
            "1",
        ),
        (
            {
                "1": {
                    "class_type": "EmptyQwenImageLayeredLatentImage",
                    "inputs": {"width": 4096, "height": 4096, "layers": 4096, "batch_size": 1},
                }
            },
            "1",
        ),
    ],
    ids=["primitive-width", "upscale-a-batch", "repeat-latents", "audio", "layers"],
)
def test_named_bombs_fail_with_what_to_fix(
    comfy: ComfyHarness, tmp_path: Path, nodes: dict[str, Any], over: str
) -> None:
    last = max(nodes, key=int)
    out = nodes[last]["class_type"]
    sink = "PreviewAudio" if out == "EmptyAudio" else "PreviewAny"
    workflow = {
        **nodes,
        "9": {
            "class_type": sink,
            "inputs": {"audio" if sink == "PreviewAudio" else "source": [last, 0]},
        },
    }
    err = refused(comfy, tmp_path, workflow)
    assert err.error_type is ErrorType.INVALID_WORKFLOW and err.node_id == over, err.message
    assert "MAX_PIXELS_PER_JOB" in err.message and "smaller" in err.message


def animated_gif(side: int, frames: int) -> bytes:
    """A GIF of ``frames`` frames on a ``side`` x ``side`` screen, each frame one pixel: a few
    bytes per frame that ComfyUI's LoadImage decodes to full-size frames."""
    out = bytearray(
        b"GIF89a" + struct.pack("<HHBBB", side, side, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    )
    out += b"!\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    for _ in range(frames):
        out += b"!\xf9\x04\x00\x01\x00\x00\x00"  # graphic control: 10 ms, keep the frame
        out += b"," + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return bytes(out + b";")


def test_an_input_image_of_many_frames_counts_all_of_them(
    comfy: ComfyHarness, tmp_path: Path
) -> None:
    image = importlib.import_module("PIL.Image")
    bomb = animated_gif(1000, 100)  # 4 KB; 100 M pixels once LoadImage decodes every frame
    with image.open(io.BytesIO(bomb)) as im:
        assert im.size == (1000, 1000) and im.n_frames == 100
    err = refused(comfy, tmp_path, workflows.load_invert("a.gif"), **{"a.gif": bomb})
    assert err.error_type is ErrorType.INPUT_ERROR
    assert "100 frames" in err.message and "MAX_INPUT_PIXELS" in err.message
    small = io.BytesIO()
    frames = [image.new("RGB", (16, 16), (c, 0, 0)) for c in (0, 100, 200)]
    frames[0].save(small, format="PNG", save_all=True, append_images=frames[1:], duration=40)
    result = run(comfy, tmp_path, workflows.load_invert("b.png"), **{"b.png": small.getvalue()})
    assert len(result.outputs) == 3  # a small animation still loads, every frame


# -- graphs whose bookkeeping alone would hold the worker ----------------------------------


def chain(length: int, leaves: int = 0) -> dict[str, Any]:
    workflow: dict[str, Any] = {
        "0": {
            "class_type": "EmptyImage",
            "inputs": {"width": 4, "height": 4, "batch_size": 1, "color": 0},
        }
    }
    for i in range(1, length):
        workflow[str(i)] = {"class_type": "ImageInvert", "inputs": {"image": [str(i - 1), 0]}}
    for j in range(leaves):
        workflow[f"l{j}"] = {"class_type": "ImageInvert", "inputs": {"image": [str(length - 1), 0]}}
    workflow["s"] = {"class_type": "PreviewImage", "inputs": {"images": [str(length - 1), 0]}}
    return workflow


@pytest.mark.parametrize(
    ("workflow", "expect"),
    [
        (chain(graph.MAX_DEPTH + 2), "links from the start"),
        (chain(400, 2_000), "too large for one job"),  # 208 KB: held ComfyUI over a minute
        (chain(graph.MAX_NODES + 1), "nodes; the limit is"),
    ],
    ids=["deep", "wide-after-long", "many"],
)
def test_a_graph_too_big_to_bookkeep_is_refused_at_once(
    comfy: ComfyHarness, tmp_path: Path, workflow: dict[str, Any], expect: str
) -> None:
    started = time.perf_counter()
    err = refused(comfy, tmp_path, workflow)
    assert err.error_type is ErrorType.INVALID_WORKFLOW and expect in err.message, err.message
    assert time.perf_counter() - started < 3


def test_a_cycle_is_named_once(comfy: ComfyHarness, tmp_path: Path) -> None:
    workflow = workflows.model_free(size=8)
    workflow["2"]["inputs"]["image"] = ["4", 0]
    workflow["4"] = {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}}
    err = refused(comfy, tmp_path, workflow)
    assert err.error_type is ErrorType.INVALID_WORKFLOW and "cycle" in err.message
    assert "nodes 2, 3, 4" in err.message or "nodes 2, 4" in err.message


def test_a_long_real_chain_within_the_limits_still_runs(
    comfy: ComfyHarness, tmp_path: Path
) -> None:
    assert run(comfy, tmp_path, chain(120, 50)).outputs == ()


@given(
    edges=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30)), max_size=80),
    size=st.integers(1, 31),
)
def test_graph_limits_match_a_plain_count(edges: list[tuple[int, int]], size: int) -> None:
    # Links only from lower to higher ids: a DAG; depth and ancestry by brute force.
    links = {n: sorted({a for a, b in edges if b == n and a < n < size}) for n in range(size)}
    workflow = {
        str(n): {"class_type": "X", "inputs": {f"i{a}": [str(a), 0] for a in ps}}
        for n, ps in links.items()
    }

    def ancestors(n: int) -> set[int]:
        out: set[int] = set()
        for p in links[n]:
            out |= {p} | ancestors(p)
        return out

    def depth(n: int) -> int:
        return 1 + max((depth(p) for p in links[n]), default=-1)

    total = sum(len(ancestors(n)) for n in links)
    deepest = max(depth(n) for n in links)
    graph.check_graph(workflow, max_ancestry=total, max_depth=deepest)
    if total:
        with pytest.raises(JobFailed, match="too large"):
            graph.check_graph(workflow, max_ancestry=total - 1, max_depth=deepest)
    if deepest:
        with pytest.raises(JobFailed, match="links from the start"):
            graph.check_graph(workflow, max_ancestry=total, max_depth=deepest - 1)
