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
