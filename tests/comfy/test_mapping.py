"""Pure mapping code of the executor (runs without ComfyUI): validation results, run endings."""

from __future__ import annotations

from typing import Any

import pytest

from worker.errors import ErrorType, JobFailed, WorkerBroken
from worker.executor.comfy import failures, prompt_errors, shape

CKPTS = ["a.safetensors", "b.safetensors"]
MODEL_FILES = {"checkpoints": CKPTS, "loras": [], "vae": []}


def options_for(class_type: str, input_name: str) -> list[str] | None:
    known = {
        ("CheckpointLoaderSimple", "ckpt_name"): CKPTS,
        ("LoraLoader", "lora_name"): [],
        ("KSampler", "sampler_name"): ["euler", "dpmpp_2m"],
    }
    return known.get((class_type, input_name))


def node_error(
    node: str,
    cls: str,
    kind: str,
    message: str,
    details: str,
    input_name: str | None = None,
    received: Any = None,
) -> dict[str, Any]:
    extra = {} if input_name is None else {"input_name": input_name, "received_value": received}
    return {
        node: {
            "class_type": cls,
            "dependent_outputs": ["9"],
            "errors": [{"type": kind, "message": message, "details": details, "extra_info": extra}],
        }
    }


def explain(error: dict[str, Any] | None, node_errors: dict[str, Any]) -> JobFailed | None:
    return prompt_errors.explain(error, node_errors, options_for, MODEL_FILES)


FAILED = {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation"}


def test_a_valid_workflow_maps_to_nothing() -> None:
    assert explain(None, {}) is None


def test_value_out_of_range_names_node_class_input_and_reason() -> None:
    err = explain(
        FAILED,
        node_error(
            "5",
            "EmptyLatentImage",
            "value_bigger_than_max",
            "Value 99999 bigger than max of 16384",
            "width",
            "width",
        ),
    )
    assert err is not None and err.error_type is ErrorType.INVALID_WORKFLOW and err.node_id == "5"
    assert err.message == (
        'workflow failed validation: node 5 (EmptyLatentImage), input "width": '
        "Value 99999 bigger than max of 16384"
    )
    assert err.details["problems"][0]["type"] == "value_bigger_than_max"


def test_unknown_checkpoint_is_a_missing_model_with_the_available_ones() -> None:
    err = explain(
        FAILED,
        node_error(
            "4",
            "CheckpointLoaderSimple",
            "value_not_in_list",
            "Value not in list",
            "ckpt_name: 'x.safetensors' not in [...]",
            "ckpt_name",
            "x.safetensors",
        ),
    )
    assert err is not None and err.error_type is ErrorType.MISSING_MODEL and err.node_id == "4"
    assert err.message == (
        'node 4 (CheckpointLoaderSimple), input "ckpt_name": model file '
        '"x.safetensors" is not installed in models folder "checkpoints"; '
        "available: a.safetensors, b.safetensors"
    )
    assert err.details["missing_models"][0]["available"] == CKPTS


def test_empty_model_folder_is_named_from_the_input() -> None:
    err = explain(
        FAILED,
        node_error(
            "10",
            "LoraLoader",
            "value_not_in_list",
            "Value not in list",
            "",
            "lora_name",
            "style.safetensors",
        ),
    )
    assert err is not None and err.error_type is ErrorType.MISSING_MODEL
    assert 'in models folder "loras"; no models are installed there' in err.message


def test_a_wrong_choice_that_is_not_a_model_stays_invalid_workflow() -> None:
    err = explain(
        FAILED,
        node_error(
            "3",
            "KSampler",
            "value_not_in_list",
            "Value not in list",
            "sampler_name: 'eulr' not in [...]",
            "sampler_name",
            "eulr",
        ),
    )
    assert err is not None and err.error_type is ErrorType.INVALID_WORKFLOW


def test_unknown_node_class_and_no_outputs() -> None:
    unknown = explain(
        {
            "type": "missing_node_type",
            "message": "Node 'X' not found.",
            "extra_info": {"node_id": "7", "class_type": "FancyNode"},
        },
        {},
    )
    assert unknown is not None and unknown.node_id == "7"
    assert 'unknown node class "FancyNode"' in unknown.message
    no_out = explain({"type": "prompt_no_outputs", "message": "Prompt has no outputs"}, {})
    assert no_out is not None and "no output node" in no_out.message


def test_node_errors_fail_the_job_even_when_another_output_was_valid() -> None:
    # ComfyUI's validate_prompt returns ok=True (error None) if any output validated.
    err = explain(
        None,
        node_error(
            "2",
            "ImageScale",
            "required_input_missing",
            "Required input is missing",
            "image",
            "image",
        ),
    )
    assert err is not None and err.error_type is ErrorType.INVALID_WORKFLOW


def broken_device() -> str:
    return "RuntimeError: CUDA error: an illegal memory access was encountered"


def test_execution_errors_map_to_failure_classes_by_type_and_device_state() -> None:
    base = {"node_id": "3", "node_type": "KSampler", "traceback": ["a", "b"]}
    plain = failures.error_for(
        base | {"exception_type": "ValueError", "exception_message": "bad shape\n\nTIPS: ..."}
    )
    assert isinstance(plain, JobFailed) and plain.error_type is ErrorType.EXECUTION_ERROR
    assert plain.message == "node 3 (KSampler) raised ValueError: bad shape"
    for oom_type in ("torch.OutOfMemoryError", "torch.cuda.OutOfMemoryError", "MemoryError"):
        oom = failures.error_for(base | {"exception_type": oom_type, "exception_message": "x"})
        assert isinstance(oom, JobFailed) and oom.error_type is ErrorType.OOM
    for suspect in ("RuntimeError", "torch.AcceleratorError"):
        error = base | {"exception_type": suspect, "exception_message": "anything"}
        # The device still works: the job's own fault (torch 2.7 raises shape errors as
        # RuntimeError too). The probe fails: the CUDA context is gone, the worker is broken.
        assert isinstance(failures.error_for(error), JobFailed)
        assert isinstance(failures.error_for(error, broken_device), WorkerBroken)
    # Only exception types a broken context raises make the worker probe at all.
    probed: list[str] = []

    def probe() -> None:
        probed.append("x")

    failures.error_for(base | {"exception_type": "KeyError", "exception_message": ""}, probe)
    assert probed == []


JOB_CHOSEN_TEXT = [
    "CUDA error: an illegal memory access was encountered",
    "CUDA out of memory. Tried to allocate 2.00 GiB",
    "cuDNN error: CUDNN_STATUS_INTERNAL_ERROR",
    "cudnn_status_not_supported",
    "CUBLAS_STATUS_EXECUTION_FAILED device-side assert triggered",
    "out of memory",
]


@pytest.mark.parametrize("text", JOB_CHOSEN_TEXT)
def test_text_a_job_controls_never_selects_a_class(text: str) -> None:
    # A job picks its input names, file names and values; ComfyUI quotes them in messages.
    error = failures.error_for(
        {
            "node_id": text,
            "node_type": "LoadImage",
            "exception_type": "FileNotFoundError",
            "exception_message": f"[Errno 2] No such file or directory: '{text}.png'",
        },
        broken_device,
    )
    assert isinstance(error, JobFailed) and error.error_type is ErrorType.EXECUTION_ERROR
    runtime = failures.error_for(
        {"node_id": "9", "exception_type": "RuntimeError", "exception_message": text}
    )
    assert isinstance(runtime, JobFailed) and runtime.error_type is ErrorType.EXECUTION_ERROR


def test_run_end_reads_the_last_terminal_status() -> None:
    msgs = [
        ("execution_start", {}),
        ("execution_cached", {}),
        ("execution_interrupted", {"node_id": "3", "node_type": "KSampler"}),
    ]
    end = failures.run_end(msgs)
    assert end.ending is failures.Ending.INTERRUPTED
    assert "node 3 (KSampler)" in str(failures.interrupted(end.data))
    with pytest.raises(WorkerBroken):
        failures.run_end([("execution_start", {})])


def test_memory_recovered_allows_a_margin_only() -> None:
    gib = 1024**3
    assert failures.memory_recovered(int(1.2 * gib), 1 * gib, 24 * gib)
    assert not failures.memory_recovered(10 * gib, 1 * gib, 24 * gib)


@pytest.mark.parametrize(
    ("workflow", "expect"),
    [
        ({}, "non-empty"),
        ({"nodes": [], "links": []}, "UI format"),
        ({"1": {"inputs": {}}}, "no class_type"),
        ({"1": {"class_type": "A", "inputs": []}}, "inputs must be an object"),
        ({"1": {"class_type": "A", "inputs": {"x": ["2", 0]}}}, "links to node '2'"),
        ({"1": {"class_type": "A", "inputs": {"x": ["1", "0"]}}}, "[node id, output index]"),
    ],
)
def test_shape_errors_say_what_is_wrong(workflow: dict[str, Any], expect: str) -> None:
    with pytest.raises(JobFailed) as caught:
        shape.check_shape(workflow)
    assert caught.value.error_type is ErrorType.INVALID_WORKFLOW and expect in caught.value.message


def test_copy_for_run_is_deep_and_fills_inputs() -> None:
    original: dict[str, Any] = {
        "1": {"class_type": "A", "inputs": {"v": 1}},
        "2": {"class_type": "B"},
    }
    copied = shape.copy_for_run(original)
    copied["1"]["inputs"]["v"] = 5
    assert original["1"]["inputs"]["v"] == 1 and copied["2"]["inputs"] == {}
