"""Device and precision, chosen automatically: bf16 on GPUs that support it, else fp16 on CUDA, fp32 on CPU."""

from __future__ import annotations

import os
import random


def pick_device(prefer: str = "auto") -> str:
    """``"auto"`` -> ``"cuda"`` when a CUDA GPU is visible, ``"mps"`` on Apple silicon, else ``"cpu"``."""
    import torch

    if prefer != "auto":
        if prefer.startswith("cuda") and not torch.cuda.is_available():
            raise RuntimeError(f"device={prefer!r} was asked for but no CUDA GPU is visible; use device='auto' or 'cpu'.")
        return prefer
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_precision(device: str) -> str:
    """``"bf16"`` on a CUDA GPU that supports it, ``"fp16"`` on other CUDA GPUs, ``"fp32"`` elsewhere."""
    import torch

    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass
    try:
        import torch

        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
    except ImportError:
        pass
