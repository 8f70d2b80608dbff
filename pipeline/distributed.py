"""``torchrun --nproc-per-node N -m edgesmith run RECIPE``: one run over N processes.

Every rank runs the same steps, so the training loop's collectives line up
(:func:`edgesmith.compress.train.fit` is data-parallel under a process group), and
only rank 0 writes the run folder. A rank above 0 works in a private hard-linked
copy of it taken before any step runs, so it sees the same finished steps (the
same resume decisions) and writes nothing rank 0 reads, and it stops after the
last training step (exports and benchmarks are rank 0's). Gloo on the CPU, NCCL
on CUDA (each rank on ``cuda:LOCAL_RANK``).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path


def is_launched() -> bool:
    """Whether this process was started by torchrun with more than one rank."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank() -> int:
    """This process's rank under torchrun (0 otherwise)."""
    return int(os.environ.get("RANK", "0"))


def setup(recipe, out: str | Path | None, device: str | None):
    """Join the process group; returns ``(recipe, out)`` this rank runs (unchanged on rank 0)."""
    import torch
    import torch.distributed as dist

    out = Path(out or Path("runs") / recipe.name)
    cuda = (device or "auto").startswith("cuda") or (device in (None, "auto") and torch.cuda.is_available())
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
        atexit.register(_close)
    rank = dist.get_rank()
    scratch = None
    if rank > 0:
        os.environ["EDGESMITH_QUIET"] = "1"
        scratch = Path(tempfile.mkdtemp(prefix=f"edgesmith-rank{rank}-"))
        if out.is_dir():
            from edgesmith.pipeline.lock import LOCK

            # not the lock file: a hard link shares its inode, so rank 0's flock would block this rank's run
            shutil.copytree(out, scratch / "run", copy_function=_link, symlinks=True, ignore=shutil.ignore_patterns(LOCK))
        atexit.register(shutil.rmtree, scratch, True)
    dist.barrier()  # rank 0 writes nothing before every rank has its copy
    if scratch is None:
        return recipe, out
    import dataclasses

    no_files = dataclasses.replace(recipe.export, formats=[])
    return dataclasses.replace(recipe, export=no_files), scratch / "run"


def _link(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _close() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
