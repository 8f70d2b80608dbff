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
from typing import Any

from edgesmith.benchmarks.targets.base import Target
from edgesmith.errors import UserError
from edgesmith.registry import Registry

__all__ = ["TARGETS", "Target", "get_target", "scheme"]

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
