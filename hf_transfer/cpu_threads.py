"""CPU thread count for recipes launched with `accelerate launch` and no accelerate config."""

import logging
import os

import torch

logger = logging.getLogger(__name__)


def use_all_cpu_cores_in_a_single_cpu_process() -> int:
    """Give torch every core this process may run on when it is the only process and there is no GPU.

    `accelerate launch` without a config file sets `OMP_NUM_THREADS=1` for every process, which halves a
    one-process CPU run on a 2-core machine. With several processes (or a GPU) the thread count is left
    alone; so is an explicit `HF_TRANSFER_NUM_THREADS` (a number), which wins. Returns the thread count in use.
    """
    requested = os.environ.get("HF_TRANSFER_NUM_THREADS")
    if requested:
        torch.set_num_threads(int(requested))
    elif not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if torch.get_num_threads() < cores:
            logger.info("Using %d CPU threads (OMP_NUM_THREADS was %s).", cores, os.environ.get("OMP_NUM_THREADS"))
            torch.set_num_threads(cores)
    return torch.get_num_threads()


def native_bf16_cpu() -> bool:
    """Whether this is a machine without a GPU whose CPU computes bf16 natively (AVX512-BF16 or AMX on Linux)."""
    if torch.cuda.is_available() or (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            flags = next((line.split(":", 1)[1].split() for line in handle if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_precision_defaults() -> dict:
    """The text recipes' precision default: bf16 autocast on a CPU that computes bf16 natively (measured on a
    2-core avx512_bf16 machine: 1.8-2.1x faster steps for MiniLM, target accuracy within 0.05 point of fp32 on three
    Amazon pairs, docs/benchmarks.md), fp32 everywhere else; `--bf16 false` turns it off."""
    return {"bf16": True, "use_cpu": True} if native_bf16_cpu() else {}
