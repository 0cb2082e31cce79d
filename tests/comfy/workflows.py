"""API-format workflows the ComfyUI tests and the benchmark run."""

from __future__ import annotations

from typing import Any

Workflow = dict[str, Any]


def model_free(color: int = 0, size: int = 64, prefix: str = "ComfyUI") -> Workflow:
    """EmptyImage -> ImageInvert -> SaveImage: ComfyUI's machinery, no model."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": size, "height": size, "batch_size": 1, "color": color},
        },
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


def load_invert(name: str) -> Workflow:
    """LoadImage (from the job's staged inputs) -> ImageInvert -> SaveImage."""
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inv"}},
    }


def every_kind() -> Workflow:
    """Text (shown and saved), audio and an animated image from one run, no model."""
    return {
        "1": {"class_type": "PrimitiveString", "inputs": {"value": "hello from ComfyUI"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
        "3": {
            "class_type": "SaveText",
            "inputs": {"text": ["1", 0], "filename_prefix": "notes/n", "format": "txt"},
        },
        "4": {
            "class_type": "EmptyAudio",
            "inputs": {"duration": 0.25, "sample_rate": 8000, "channels": 1},
        },
        "5": {"class_type": "SaveAudio", "inputs": {"audio": ["4", 0], "filename_prefix": "a"}},
        "6": {
            "class_type": "EmptyImage",
            "inputs": {"width": 32, "height": 32, "batch_size": 3, "color": 255},
        },
        "7": {
            "class_type": "SaveAnimatedWEBP",
            "inputs": {
                "images": ["6", 0],
                "filename_prefix": "anim",
                "fps": 6.0,
                "lossless": True,
                "quality": 80,
                "method": "fastest",
            },
        },
    }


def sd15(ckpt: str, seed: int = 1, steps: int = 2, size: int = 64) -> Workflow:
    """CheckpointLoaderSimple -> CLIPTextEncode x2 -> EmptyLatentImage -> KSampler -> VAEDecode
    -> SaveImage."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red cube", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "5": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": size, "height": size, "batch_size": 1},
        },
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": seed,
                "steps": steps,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "sd", "images": ["8", 0]}},
    }
