"""One timing queue per target: latency is measured one file at a time, and on a
target that is this machine (``cpu``, ``cuda``) never while a trial trains here.

Trials hold a *training lease* while they run the pipeline; a measurement waits
until no lease is held and no other measurement runs, and while it waits no new
lease is granted (measurements go first, so a busy search cannot starve them).
The same object serves the local backend (threads of one process) and the Ray
backend, where it lives in one threaded Ray actor per target
(:mod:`edgesmith.search.ray_backend`). Every lease and measurement is logged with
its start and end, so a search can show that none overlapped::

    q = TimingQueue("cpu")
    with q.training("trial 3"):
        ...  # train
    r = q.measure("model.onnx", "onnxruntime", inputs)
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from edgesmith.errors import RecipeError

LOCAL = ("cpu", "cuda")


class TimingQueue:
    """Serialises measurements on ``target`` (and, for a local target, keeps them apart from training)."""

    def __init__(self, target: str, node: str | None = None) -> None:
        from edgesmith.benchmarks.targets import scheme

        self.target = target
        self.local = scheme(target) in LOCAL
        self.node = node  # the machine a local target is (Ray: the actor's node id)
        self._cond = threading.Condition()
        self._training = 0
        self._measuring = False
        self._waiting = 0
        self.events: list[dict[str, Any]] = []

    # ------------------------------------------------------------ leases
    def acquire_training(self, label: str = "", node: str | None = None) -> float:
        """Start a training lease (blocks while a measurement runs or waits). Training on
        another machine than a local target's (``node`` differs) does not block it."""
        if not self.local or (node is not None and self.node is not None and node != self.node):
            return time.time()
        with self._cond:
            while self._measuring or self._waiting:
                self._cond.wait()
            self._training += 1
        return time.time()

    def release_training(self, label: str = "", start: float | None = None, node: str | None = None) -> None:
        if not self.local or (node is not None and self.node is not None and node != self.node):
            return
        with self._cond:
            self._training -= 1
            self.events.append({"kind": "train", "label": label, "start": start, "end": time.time()})
            self._cond.notify_all()

    @contextlib.contextmanager
    def training(self, label: str = "") -> Iterator[None]:
        start = self.acquire_training(label)
        try:
            yield
        finally:
            self.release_training(label, start)

    # -------------------------------------------------------- measurement
    def measure(self, path: str, runtime: str | None, inputs: dict[str, np.ndarray],
                eval_inputs: dict[str, np.ndarray] | None = None, threads: int = 1, warmup: int = 10,
                iterations: int = 100, min_seconds: float = 0.5, label: str = "") -> dict[str, Any]:
        """Measure one file on the target, alone. A local target also runs ``eval_inputs``
        and returns the runtime's ``eval_outputs``; a remote one returns None there."""
        with self._cond:
            self._waiting += 1
            while self._measuring or (self.local and self._training):
                self._cond.wait()
            self._waiting -= 1
            self._measuring = True
        start = time.time()
        try:
            return self._measure(path, runtime, inputs, eval_inputs, threads, warmup, iterations, min_seconds)
        finally:
            with self._cond:
                self._measuring = False
                self.events.append({"kind": "measure", "label": label, "start": start, "end": time.time()})
                self._cond.notify_all()

    def _measure(self, path, runtime, inputs, eval_inputs, threads, warmup, iterations, min_seconds):
        if self.local:
            from edgesmith.benchmarks.latency import measure

            return measure(path, runtime, inputs, threads=threads, device=self.target, warmup=warmup,
                           iterations=iterations, min_seconds=min_seconds, eval_inputs=eval_inputs,
                           eval_batch=64)
        from edgesmith.benchmarks.targets import get_target

        with get_target(self.target) as t:
            t.prepare(path)
            r = t.measure(path, runtime, inputs, threads=threads, warmup=warmup, iterations=iterations,
                          min_seconds=min_seconds)
        r["eval_outputs"] = None
        return r

    def get_events(self) -> list[dict[str, Any]]:
        with self._cond:
            return list(self.events)


def overlaps(events: list[dict[str, Any]]) -> list[tuple[dict, dict]]:
    """Pairs of logged intervals that overlap where they must not: two measurements,
    or a measurement and a training lease (both of one queue)."""
    bad = []
    ms = [e for e in events if e["kind"] == "measure"]
    for i, m in enumerate(ms):
        for other in ms[i + 1:] + [e for e in events if e["kind"] == "train"]:
            if m["start"] < other["end"] and other["start"] < m["end"]:
                bad.append((m, other))
    return bad


def check_reachable(target: str, key: str) -> None:
    """Fail in one line (a RecipeError on ``key``) when ``target`` cannot take a measurement now."""
    from edgesmith.benchmarks.targets import get_target, scheme
    from edgesmith.errors import EdgesmithError

    kind = scheme(target)
    try:
        t = get_target(target)
    except EdgesmithError as e:
        raise RecipeError(key, str(e)) from None
    why = None
    if kind == "cuda":
        import torch

        why = None if torch.cuda.is_available() else "no CUDA device is available here"
    elif kind == "ssh":
        try:
            proc = subprocess.run(t.ssh_command("true"), capture_output=True, text=True,
                                  stdin=subprocess.DEVNULL, timeout=t.connect_timeout + 10)
            why = None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["ssh failed"])[-1]
        except (OSError, subprocess.TimeoutExpired) as e:
            why = f"ssh did not run: {e}"
    elif kind == "adb":
        why = t._check_device()
    if why:
        raise RecipeError(key, f"target {target} is unreachable ({why}); fix it or measure on another target")


def host_cpu() -> str:
    """The host CPU's model name (for figures)."""
    try:
        for line in open("/proc/cpuinfo"):  # noqa: SIM115
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return os.uname().machine
