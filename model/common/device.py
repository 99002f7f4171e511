"""Which device to run on, and the numeric precisions inference and training offer."""

from __future__ import annotations

import re

import torch

PRECISIONS = ("fp32", "tf32", "bf16")
"""fp32: full precision; tf32: float32 with TF32 matmuls and convolutions on CUDA (the official
evaluation's setting; fp32 elsewhere); bf16: autocast to bfloat16 around the model's forward pass."""


class DeviceError(ValueError):
    """A device that does not exist or is not visible; the message names the value and the fix."""


def resolve_device(value: str) -> torch.device:
    """`auto` is the GPU when there is one, else the CPU; `cpu`; `cuda[:N]` when that GPU is visible."""
    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = re.fullmatch(r"cuda(?::(\d+))?", value)
    if value != "cpu" and cuda is None:
        raise DeviceError(f"--device {value}: choose auto, cpu or cuda[:N]")
    if cuda is not None:
        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if visible == 0:
            raise DeviceError(f"--device {value}: no CUDA device is visible; use --device cpu or auto")
        if int(cuda.group(1) or 0) >= visible:
            raise DeviceError(
                f"--device {value}: only {visible} CUDA device(s) are visible; use cuda:0 to cuda:{visible - 1}"
            )
    return torch.device(value)
