"""An Android device over adb: the ``.tflite`` file is pushed to
``/data/local/tmp/edgesmith/`` and LiteRT's ``benchmark_model`` runs it there::

    adb -s SERIAL push model.tflite /data/local/tmp/edgesmith/model.tflite
    adb -s SERIAL shell /data/local/tmp/benchmark_model --graph=/data/local/tmp/edgesmith/model.tflite \\
        --num_threads=1 --num_runs=100 --warmup_runs=10 --min_secs=1

``benchmark_model`` synthesises its own inputs and prints mean, min, max and
standard deviation of the timed runs (recent builds add p5/median/p95); the row
keeps what it printed and leaves the rest ``None`` (``latency_note`` says which).
The binary comes from the LiteRT releases (``--benchmark-model PATH``: a local
file is pushed, any other value is a path on the device).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from edgesmith.benchmarks.targets.base import Target, last_line
from edgesmith.errors import EdgesmithError, UserError

DEVICE_DIR = "/data/local/tmp/edgesmith"
DEVICE_BINARY = "/data/local/tmp/benchmark_model"
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_STATS = re.compile(rf"\b(count|first|curr|min|max|avg|std|p5|median|p95)=({_NUM})")
_SUMMARY = re.compile(
    rf"Inference timings in us: Init: ({_NUM}), First inference: ({_NUM}), "
    rf"Warmup \(avg\): ({_NUM}), Inference \(avg\): ({_NUM})"
)
_OLD_SUMMARY = re.compile(  # benchmark_model of 2018: "Average inference timings in us: Warmup: ..."
    rf"Average inference timings in us: Warmup: ({_NUM}), Init: ({_NUM}), (?:no stats|Inference): ({_NUM})"
)
_MEMORY = re.compile(
    rf"(Peak memory footprint|Memory footprint delta from the start of the tool) "
    rf"\(MB\): init=({_NUM}) overall=({_NUM})"
)
_PEAK = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({_NUM})")
_SIZE = re.compile(rf"The input model file size \(MB\): ({_NUM})")
NO_PERCENTILES = (
    "benchmark_model printed mean/min/max/std only: no percentiles (p50/p90/p99 are None)"
)


def parse_benchmark_output(text: str) -> dict[str, Any]:
    """Numbers of one ``benchmark_model`` run, times in milliseconds.

    Reads the per-run statistics line of the timed runs (the last
    ``count=... first=... curr=... min=... max=... avg=... std=...`` before the
    ``Inference timings in us`` summary; the one before it is the warm-up), the
    summary itself and the memory lines, whatever prefix (``INFO:``, logcat's
    ``I tflite :``) they carry.

    Returns:
        ``runs`` and ``warmup`` (``count`` as an int, the rest in ms, with
        ``p5/median/p95`` when printed), ``init_ms``, ``first_ms``, ``warmup_avg_ms``,
        ``inference_avg_ms``, ``memory_mb`` (``init``, ``overall``, ``kind``: ``peak``
        for old builds' "Peak memory footprint", ``delta`` for "Memory footprint
        delta from the start of the tool"; ``peak_monitored`` when printed) and
        ``model_size_mb``; absent values are ``None``.

    Raises:
        EdgesmithError: No timing summary in ``text`` (the run failed).
    """
    lines = text.replace("\r", "").splitlines()
    end = next(
        (i for i, ln in enumerate(lines) if _SUMMARY.search(ln) or _OLD_SUMMARY.search(ln)), None
    )
    if end is None:
        why = next(
            (ln.strip() for ln in reversed(lines) if re.search(r"error|fail|abort", ln, re.I)), ""
        )
        raise EdgesmithError(
            "benchmark_model printed no 'Inference timings' line"
            + (f": {why}" if why else f"; last line: {last_line(text)!r}")
        )
    stats = [
        dict(_STATS.findall(ln)) for ln in lines[:end] if "count=" in ln and "Timings" not in ln
    ]
    stats = [s for s in stats if "count" in s]

    def ms(s: dict[str, str] | None) -> dict[str, Any] | None:
        if not s:
            return None
        return {k: (int(float(v)) if k == "count" else float(v) / 1000) for k, v in s.items()}

    out: dict[str, Any] = {
        "runs": ms(stats[-1]) if stats else None,
        "warmup": ms(stats[-2]) if len(stats) > 1 else None,
    }
    m = _SUMMARY.search(lines[end])
    if m:
        init, first, warm, inf = (float(v) / 1000 for v in m.groups())
    else:
        warm, init, inf = (float(v) / 1000 for v in _OLD_SUMMARY.search(lines[end]).groups())
        first = None
    out.update(init_ms=init, first_ms=first, warmup_avg_ms=warm, inference_avg_ms=inf)
    mem = next((_MEMORY.search(ln) for ln in lines if _MEMORY.search(ln)), None)
    peak = next((_PEAK.search(ln) for ln in lines if _PEAK.search(ln)), None)
    out["memory_mb"] = (
        None
        if mem is None and peak is None
        else {
            "init": float(mem.group(2)) if mem else None,
            "overall": float(mem.group(3)) if mem else None,
            "kind": None
            if mem is None
            else ("peak" if mem.group(1).startswith("Peak") else "delta"),
            "peak_monitored": float(peak.group(1)) if peak else None,
        }
    )
    size = next((_SIZE.search(ln) for ln in lines if _SIZE.search(ln)), None)
    out["model_size_mb"] = float(size.group(1)) if size else None
    return out


def to_result(parsed: dict[str, Any]) -> dict[str, Any]:
    """A :func:`parse_benchmark_output` dict in the worker's result shape."""
    runs = parsed["runs"] or {}
    mean = runs.get("avg", parsed["inference_avg_ms"])
    median = runs.get("median")
    latency = {
        "mean": mean,
        "p50": median,
        "p90": None,
        "p99": None,
        "min": runs.get("min"),
        "max": runs.get("max"),
        "std": runs.get("std"),
        "n": runs.get("count"),
        "throughput_per_s": 1000.0 / mean if mean else None,
        "p50_ci": None,
        "p99_ci": None,
        "p5": runs.get("p5"),
        "p95": runs.get("p95"),
        "first": parsed["first_ms"],
    }
    mem = parsed["memory_mb"] or {}
    return {
        "latency_ms": latency,
        "latency_note": NO_PERCENTILES
        if median is None
        else "benchmark_model printed p5/median/p95: p50 is its median; p90/p99 are None",
        "peak_rss_mb": mem.get("peak_monitored") or mem.get("overall"),
        "load_rss_mb": mem.get("init"),
        "memory_mb": parsed["memory_mb"],
        "init_ms": parsed["init_ms"],
        "warmup_avg_ms": parsed["warmup_avg_ms"],
    }


class AdbTarget(Target):
    """``adb`` (the one connected device) or ``adb://SERIAL``.

    Args:
        url: The target string.
        benchmark_model: LiteRT ``benchmark_model`` binary: an existing local file
            is pushed to the device, anything else is taken as a device path.
        adb: The adb executable.
        timeout_s: Wall-clock limit of one run on the device.
    """

    options = ("benchmark_model", "adb", "timeout_s")
    takes_inputs = False
    suffixes = (".tflite",)

    def __init__(
        self,
        url: str,
        benchmark_model: str = DEVICE_BINARY,
        adb: str = "adb",
        timeout_s: float = 600,
    ) -> None:
        super().__init__(url)
        serial = url.partition("://")[2] if "://" in url else ""
        if url not in ("adb", "adb://") and not re.fullmatch(r"[\w.:\-]+", serial):
            raise UserError(
                f"--target {url}: expected adb or adb://SERIAL (a serial from `adb devices`)"
            )
        self.serial = serial or None
        self.local_binary = benchmark_model if Path(benchmark_model).is_file() else None
        self.binary = f"{DEVICE_DIR}/benchmark_model" if self.local_binary else benchmark_model
        self.adb, self.timeout_s = adb, timeout_s
        self.error: str | None = None
        self.device_model: str | None = None
        self.fingerprint: dict[str, Any] | None = None

    # ------------------------------------------------------------ commands
    def _adb(self, *args: str) -> list[str]:
        return [self.adb, *(["-s", self.serial] if self.serial else []), *args]

    def device_path(self, model: str | os.PathLike) -> str:
        return f"{DEVICE_DIR}/{Path(model).name}"

    def push_commands(self, model: str | os.PathLike) -> list[list[str]]:
        """The adb argv lists that stage ``model`` (and a local binary) on the device."""
        cmds = [
            self._adb("shell", "mkdir", "-p", DEVICE_DIR),
            self._adb("push", str(model), self.device_path(model)),
        ]
        if self.local_binary:
            cmds += [
                self._adb("push", self.local_binary, self.binary),
                self._adb("shell", "chmod", "755", self.binary),
            ]
        return cmds

    def run_command(
        self,
        model: str | os.PathLike,
        threads: int,
        warmup: int,
        iterations: int,
        min_seconds: float,
    ) -> list[str]:
        """The adb argv that runs ``benchmark_model`` on the pushed ``model``."""
        return self._adb(
            "shell",
            shlex.quote(self.binary),
            f"--graph={shlex.quote(self.device_path(model))}",
            f"--num_threads={threads}",
            f"--num_runs={iterations}",
            f"--warmup_runs={warmup}",
            f"--min_secs={min_seconds:g}",
        )

    def _call(self, argv: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=timeout
        )

    # ------------------------------------------------------------- stages
    def _check_device(self) -> str | None:
        """Why no device can run the benchmark, or None."""
        if shutil.which(self.adb) is None:
            return (
                f"adb: '{self.adb}' not on PATH; install Android platform-tools and connect "
                "a device with USB debugging on"
            )
        proc = self._call([self.adb, "devices"], timeout=30)
        if proc.returncode != 0:
            return f"adb devices failed: {last_line(proc.stderr) or proc.returncode}"
        states = dict(ln.split("\t", 1) for ln in proc.stdout.splitlines()[1:] if "\t" in ln)
        ready = [s for s, st in states.items() if st.strip() == "device"]
        if self.serial is None:
            if not states:
                return "adb: no device connected (`adb devices` lists none)"
            if len(ready) != 1:
                return (
                    f"adb: {len(ready)} ready devices ({', '.join(states) or 'none'}); "
                    "pick one with --target adb://SERIAL"
                )
            self.serial = ready[0]
        elif self.serial not in states:
            return f"adb: device {self.serial} not connected (connected: {', '.join(states) or 'none'})"
        elif self.serial not in ready:
            return (
                f"adb: device {self.serial} is {states[self.serial].strip()}; "
                "unlock it and accept the USB debugging prompt"
            )
        return None

    def prepare(self, model: str | os.PathLike) -> None:
        if self.device_model is not None or self.error is not None:
            return
        if Path(model).suffix.lower() != ".tflite":
            self.error = f"adb: {Path(model).name}: benchmark_model runs .tflite files only"
            return
        try:
            self.error = self._check_device()
            if self.error:
                return
            for argv in self.push_commands(model):
                proc = self._call(argv, timeout=self.timeout_s)
                if proc.returncode != 0:
                    self.error = (
                        f"adb: {' '.join(argv[-3:])} failed: {last_line(proc.stderr + proc.stdout)}"
                    )
                    return
            self.fingerprint = self._fingerprint()
        except (OSError, subprocess.TimeoutExpired) as e:
            self.error = f"adb: {e}"
            return
        self.device_model = self.device_path(model)

    def _fingerprint(self) -> dict[str, Any]:
        """The device in the fingerprint's shape, from ``getprop`` and ``/proc/cpuinfo``."""
        props = dict(
            re.findall(
                r"\[([^\]]+)\]: \[([^\]]*)\]", self._call(self._adb("shell", "getprop")).stdout
            )
        )
        cpuinfo = self._call(self._adb("shell", "cat", "/proc/cpuinfo")).stdout
        flags = sorted(
            {
                f
                for ln in cpuinfo.splitlines()
                if ln.startswith("Features")
                for f in ln.split(":")[1].split()
            }
        )
        return {
            "hostname": self.serial,
            "cpu": {
                "model": props.get("ro.soc.model") or props.get("ro.board.platform"),
                "arch": props.get("ro.product.cpu.abi"),
                "flags": flags,
                "logical_cores": sum(ln.startswith("processor") for ln in cpuinfo.splitlines())
                or None,
                "physical_cores": None,
            },
            "device": f"{props.get('ro.product.manufacturer', '')} {props.get('ro.product.model', '')}".strip(),
            "gpus": [],
            "memory_total_mb": None,
            "os": f"Android {props.get('ro.build.version.release', '?')} (SDK {props.get('ro.build.version.sdk', '?')})",
            "kernel": None,
            "python": None,
            "libraries": {"benchmark_model": self.binary},
            "threads": {},
            "affinity_cores": None,
            "load_avg": None,
        }

    def measure(
        self,
        model: str | os.PathLike,
        runtime: str | None,
        inputs: dict[str, np.ndarray],
        threads: int = 1,
        warmup: int = 10,
        iterations: int = 100,
        min_seconds: float = 1.0,
    ) -> dict[str, Any]:
        ident = {
            "runtime": "litert-benchmark_model",
            "model": str(model),
            "threads": threads,
            "device": "cpu",
            "target": self.url,
        }
        self.prepare(model)
        if self.error is not None:
            return {**ident, "error": self.error}
        argv = self.run_command(model, threads, warmup, iterations, min_seconds)
        try:
            proc = self._call(argv, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            return {**ident, "error": f"adb: benchmark_model timed out after {self.timeout_s:g} s"}
        try:
            parsed = parse_benchmark_output(proc.stdout + "\n" + proc.stderr)
        except EdgesmithError as e:
            return {**ident, "error": f"adb: {e}"}
        protocol = {
            "warmup": warmup,
            "iterations_run": (parsed["runs"] or {}).get("count"),
            "min_seconds": min_seconds,
            "tool": "benchmark_model",
            "command": " ".join(argv),
        }
        return {
            **ident,
            **to_result(parsed),
            "model_size_bytes": os.path.getsize(model),
            "protocol": protocol,
            "fingerprint": self.fingerprint,
            "error": None,
        }

    def close(self) -> None:
        if self.device_model is not None:
            try:
                self._call(
                    self._adb("shell", "rm", "-f", shlex.quote(self.device_model)), timeout=30
                )
            except (OSError, subprocess.TimeoutExpired):
                pass
            self.device_model = None
