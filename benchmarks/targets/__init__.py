"""Where a benchmark runs, named by a target string:

- ``cpu`` / ``cuda``: this machine, each point in a fresh local process;
- ``ssh://user@host[:port]``: another machine with edgesmith installed; the model is
  copied there and :mod:`edgesmith.benchmarks.worker` runs in a fresh remote process;
- ``adb`` / ``adb://SERIAL``: an Android device; the ``.tflite`` file is pushed and
  LiteRT's ``benchmark_model`` runs on the device.

Every target returns the worker's result shape (``latency_ms``, ``peak_rss_mb``, ...,
``fingerprint`` of the machine that ran it, ``error``) and never raises for a failed
measurement, so a sweep goes on::

    from edgesmith.benchmarks.targets import get_target

    with get_target("ssh://pi@raspberrypi", remote_python="/opt/venv/bin/python") as t:
        t.prepare("student.onnx")
        r = t.measure("student.onnx", None, inputs, threads=1)

The registry holds ``module:Class`` strings, so importing it imports no target.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import numpy as np

from edgesmith.benchmarks.targets.base import Target
from edgesmith.errors import UserError
from edgesmith.registry import Registry

__all__ = ["TARGETS", "Target", "check_target", "get_target", "measure_interleaved", "measure_on", "scheme"]

TARGETS: Registry[str] = Registry("benchmark target")
TARGETS.register("cpu")("edgesmith.benchmarks.targets.local:LocalTarget")
TARGETS.register("cuda")("edgesmith.benchmarks.targets.local:LocalTarget")
TARGETS.register("ssh")("edgesmith.benchmarks.targets.ssh:SshTarget")
TARGETS.register("adb")("edgesmith.benchmarks.targets.adb:AdbTarget")


def scheme(target: str) -> str:
    """The registry key of a target string: ``ssh://pi@host`` -> ``ssh``, ``cpu`` -> ``cpu``."""
    return target.partition("://")[0] if "://" in target else target


def get_target(target: str, **options: Any) -> Target:
    """The :class:`Target` a string names, with target-specific ``options``
    (``None`` values are ignored).

    Raises:
        EdgesmithError: Unknown target, a malformed URL, or an option the target
            does not take (one line each).
    """
    name = scheme(target)
    if name not in TARGETS:
        raise UserError(
            f"--target {target}: unknown target; use cpu, cuda, ssh://user@host[:port], adb or adb://SERIAL"
        )
    module, _, cls_name = TARGETS.get(name).partition(":")
    cls: type[Target] = getattr(importlib.import_module(module), cls_name)
    given = {k: v for k, v in options.items() if v is not None and v != ()}
    wrong = sorted(set(given) - set(cls.options))
    if wrong:
        flags = ", ".join("--" + w.replace("_", "-") for w in wrong)
        raise UserError(
            f"{flags}: not an option of {name} targets (it takes: "
            f"{', '.join(cls.options) or 'none'})"
        )
    return cls(target, **given)


LOCAL = ("cpu", "cuda")


def check_target(target: str) -> None:
    """Validate a target string without touching the network (recipe loading calls it).

    Raises:
        UserError: Unknown target or a malformed URL (one line).
    """
    get_target(target)


def measure_on(
    target: str,
    model: str | os.PathLike,
    runtime: str | None,
    inputs: dict[str, np.ndarray],
    threads: int = 1,
    warmup: int = 10,
    iterations: int = 100,
    min_seconds: float = 1.0,
    eval_inputs: dict[str, np.ndarray] | None = None,
    eval_batch: int = 64,
    **options: Any,
) -> dict[str, Any]:
    """One measurement of ``model`` on the target a string names: what the pipeline's
    benchmark step calls, so a recipe's ``benchmark.targets`` may name any registered
    target (``cpu``, ``cuda``, ``ssh://user@host``, ``adb``).

    Local targets also run ``eval_inputs`` and return their first output as
    ``eval_outputs`` (the accuracy of the runtime's own outputs); other targets return
    ``eval_outputs`` None (no accuracy is computed from a remote machine). Never raises
    for a failed measurement: ``error`` is set instead.
    """
    if scheme(target) in LOCAL:
        from edgesmith.benchmarks.latency import measure

        return measure(model, runtime, inputs, threads=threads, device=scheme(target), warmup=warmup,
                       iterations=iterations, min_seconds=min_seconds, eval_inputs=eval_inputs,
                       eval_batch=eval_batch)
    with get_target(target, **options) as t:
        t.prepare(model)
        r = t.measure(model, runtime, inputs, threads=threads, warmup=warmup, iterations=iterations,
                      min_seconds=min_seconds)
    return {**r, "eval_outputs": None}


def measure_interleaved(
    target: str,
    models: list[str | os.PathLike],
    runtime: str | None,
    inputs: dict[str, np.ndarray],
    rounds: int = 3,
    threads: int = 1,
    warmup: int = 10,
    iterations: int = 100,
    min_seconds: float = 1.0,
    **options: Any,
) -> list[list[float | None]]:
    """Each model's p50 (ms) in ``rounds`` interleaved rounds: A, B, A, B, ... on one
    target, each a fresh measurement (:func:`measure_on`). Timed one after the other, two
    files drift apart on a shared host (the same file read 6.2 and 9.4 ms in two runs of
    one search here); interleaved, a burst of load hits both, so the rounds pair up.

    Returns:
        Per model, its p50 in each round (None where that measurement failed).

    Example (the slower-file rule, :func:`edgesmith.bundle.choice.choose`, reads the pairs)::

        q_rounds, f_rounds = measure_interleaved("cpu", ["int8.onnx", "fp32.onnx"], "onnxruntime", inputs)
    """
    got: list[list[float | None]] = [[] for _ in models]
    for _ in range(rounds):
        for i, m in enumerate(models):
            r = measure_on(target, m, runtime, inputs, threads=threads, warmup=warmup, iterations=iterations,
                           min_seconds=min_seconds, **options)
            got[i].append((r.get("latency_ms") or {}).get("p50") if not r.get("error") else None)
    return got
