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


def training_precision(precision: str, device: str) -> str:
    """The precision a training run uses on ``device``: ``"auto"`` -> :func:`pick_precision`; an explicit
    ``"fp32"``/``"fp16"``/``"bf16"`` is checked against the device (fp16 needs CUDA; bf16 needs CUDA or a CPU with
    bf16 matrix units, where it is autocast; emulated bf16 would be slower than fp32). Both trainers (the sequence
    labeler and the generative student) resolve through here, so one recipe means the same precision in each.

    >>> training_precision("fp32", "cpu"), training_precision("auto", "cpu")
    ('fp32', 'fp32')
    >>> training_precision("fp16", "cpu")
    Traceback (most recent call last):
    ...
    metaie_utils.core.params.ParamsError: precision = 'fp16' needs a CUDA GPU but device is 'cpu'; use precision='auto', 'fp32' or (on a CPU with bf16 units) 'bf16'.
    """
    from metaie_utils.core.params import ParamsError

    if precision == "auto":
        return pick_precision(device)
    if precision not in ("fp32", "fp16", "bf16"):
        raise ParamsError(f"precision = {precision!r}: use 'auto', 'fp32', 'fp16' or 'bf16'.")
    if precision == "fp16" and not device.startswith("cuda"):
        raise ParamsError(f"precision = 'fp16' needs a CUDA GPU but device is {device!r}; use precision='auto', "
                          f"'fp32' or (on a CPU with bf16 units) 'bf16'.")
    if precision == "bf16" and device == "cpu" and not cpu_bf16_units():
        raise ParamsError("precision = 'bf16' on this CPU: it has no bf16 matrix units (AMX or AVX512-BF16), so bf16 "
                          "autocast would be emulated and slower than fp32; use precision='fp32'.")
    if precision == "bf16" and device != "cpu" and not device.startswith("cuda"):
        raise ParamsError(f"precision = 'bf16' on device {device!r}: bf16 training runs on CUDA or a CPU with bf16 units.")
    return precision


def pick_fewshot_precision(device: str) -> str:
    """Few-shot training's ``"auto"``: the GPU's half precision (:func:`pick_precision`) on CUDA; on a CPU,
    ``"bf16"`` autocast where it has bf16 matrix units (:func:`cpu_bf16_units`), else ``"fp32"``.

    bf16 on a CPU was made the few-shot default from a measured comparison (README, "Choosing the few-shot
    recipe": F1 within the seed spread of fp32 over 3 seeds on four datasets, 1.37x faster training on an AMD EPYC
    with AVX512-BF16). Meta-training (stage 04) keeps :func:`pick_precision` (fp32 on a CPU); extraction is fp32
    (:func:`pick_extraction_precision`).
    """
    if device.startswith("cuda"):
        return pick_precision(device)
    return "bf16" if device == "cpu" and cpu_bf16_units() else "fp32"


def pick_extraction_precision(device: str) -> str:
    """Extraction's ``"auto"``: fp32 on every device (exact, and the fastest at the batch sizes extraction uses).

    Measured on an NVIDIA H200 (README, "GPU, Colab and several GPUs"): bf16 autocast extracted 1,432 pairs/s
    against fp32's 4,659 with make run's MiniLM-L6 meta-model at batch 64, and 835 against 1,681 with a
    RoBERTa-large-shaped model (autocast adds a cast kernel to every op of a small batch); it pays only from batch
    256 on the large model (2,169 against 1,553). On a CPU with bf16 units bf16 is 1.8x faster but not exact
    (98.6% span agreement on a trained checkpoint), so it stays opt-in there as well: ``precision="bf16"``.
    """
    return "fp32"


def cpu_bf16_units() -> str:
    """The CPU's bf16 matrix units: ``"amx"`` (AMX-BF16 tiles), ``"avx512_bf16"``, or ``""`` (none, or unknown).

    Read from torch's CPU capability where it names AMX, else from ``/proc/cpuinfo`` flags (Linux); on
    other systems ``""``, so bf16 training on a CPU is never chosen silently where it would be emulated.
    """
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags.update(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    try:
        import torch

        cap = str(torch.backends.cpu.get_cpu_capability()).lower()
    except Exception:  # older torch, no torch
        cap = ""
    if "amx_bf16" in flags or "amx" in cap:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    return ""


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


def machine_info() -> dict:
    """What the numbers of a run were measured on: CPU model, usable cores, bf16 units, torch threads, GPU.

    Recorded in every run's manifest, so that a results table says its machine (thread count and CPU change
    few-shot results by several F1 points; see the README).
    """
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    info = {"cpu": cpu, "cores": cores, "cpu_bf16_units": cpu_bf16_units() or None, "torch_threads": None, "gpu": None}
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:  # torch missing
        pass
    return info


def die_with_parent(sig: int | None = None) -> None:
    """In a child process (Linux): receive ``sig`` (default SIGTERM) when the parent dies, so a killed kernel or
    CLI never leaves an orphan holding the CPU (a few-shot worker still fine-tuning for a loop that is gone; the
    llama.cpp server asks for SIGKILL, see :func:`metaie_utils.llm.teacher.server_preexec`). Elsewhere a no-op."""
    import signal
    import sys

    sig = signal.SIGTERM if sig is None else sig

    if not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig))
    except OSError:
        pass
