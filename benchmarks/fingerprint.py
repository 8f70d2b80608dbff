"""The environment a measurement ran in: CPU, memory, GPU, OS, libraries, threads, load.

Cheap (a few ms; one ``nvidia-smi`` call where it exists) and import-free: library
versions come from package metadata, and torch is asked about GPUs only when
the process has already imported it.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import socket
import subprocess
import sys
from typing import Any

# CPU features that decide which kernels a runtime can use (x86 and Arm names).
CPU_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "neon",
    "asimd",
    "asimdhp",
    "asimddp",
    "sve",
    "sve2",
    "i8mm",
    "bf16",
)
# numpy and the GPU build of onnxruntime, plus every export format's toolchain (its descriptor's libraries)
BASE_LIBRARIES = ("numpy", "torch", "onnxruntime-gpu")


def libraries() -> tuple[str, ...]:
    """The distributions whose versions a result records."""
    from edgesmith.export.formats import FORMATS

    names = [*BASE_LIBRARIES, *(lib for _, spec in FORMATS.items() for lib in spec.libraries)]
    return tuple(dict.fromkeys(names))
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "OMP_PROC_BIND",
    "OMP_PLACES",
)


def fingerprint() -> dict[str, Any]:
    """Describe this machine and process for a benchmark result.

    Returns:
        ``hostname, cpu`` (``model, flags, logical_cores, physical_cores``),
        ``memory_total_mb, gpus`` (``[{name, memory_mb}]``), ``os, kernel,
        python, libraries`` (installed versions), ``threads`` (thread-pool
        variables that are set), ``affinity_cores`` and ``load_avg`` (1, 5 and
        15 minute load when called). Unknown values are ``None``.

    Example:
        >>> fp = fingerprint()
        >>> fp["cpu"]["logical_cores"] >= 1
        True
    """
    return {
        "hostname": socket.gethostname(),
        "cpu": cpu_info(),
        "memory_total_mb": _memory_total_mb(),
        "gpus": gpus(),
        "os": platform.platform(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "libraries": library_versions(),
        "threads": {k: os.environ[k] for k in THREAD_VARS if k in os.environ},
        "affinity_cores": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "load_avg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def cpu_info(path: str = "/proc/cpuinfo") -> dict[str, Any]:
    """CPU model, the flags of :data:`CPU_FLAGS` it has, and its core counts."""
    model, flags, cores = None, set(), set()
    phys = None
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key in ("model name", "Model", "Hardware") and not model:
                    model = value
                elif key in ("flags", "Features"):
                    flags.update(value.split())
                elif key == "physical id":
                    phys = value
                elif key == "core id":
                    cores.add((phys, value))
    except OSError:
        pass
    if "amx_tile" in flags:
        flags.add("amx")
    if "asimd" in flags:  # arm64 Linux calls NEON "asimd"
        flags.add("neon")
    return {
        "model": model or platform.processor() or platform.machine() or None,
        "arch": platform.machine() or None,
        "flags": [f for f in (*CPU_FLAGS, "amx") if f in flags],
        "logical_cores": os.cpu_count(),
        "physical_cores": len(cores) or None,
    }


def _memory_total_mb(path: str = "/proc/meminfo") -> float | None:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024  # KiB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    except (ValueError, OSError, AttributeError):
        return None


def gpus() -> list[dict[str, Any]]:
    """GPUs seen by an already imported torch, else by ``nvidia-smi``; ``[]`` if none."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available():
                return [
                    {
                        "name": torch.cuda.get_device_name(i),
                        "memory_mb": torch.cuda.get_device_properties(i).total_memory / 2**20,
                    }
                    for i in range(torch.cuda.device_count())
                ]
        except Exception:  # a broken CUDA set-up must not fail the benchmark
            pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.splitlines():
        name, _, mem = line.rpartition(",")
        if name.strip():
            try:
                found.append({"name": name.strip(), "memory_mb": float(mem)})
            except ValueError:
                found.append({"name": line.strip(), "memory_mb": None})
    return found


def library_versions() -> dict[str, str]:
    """Installed versions of the inference libraries, read from package metadata."""
    versions = {}
    for name in libraries():
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions
