"""Kill a real ``edgesmith run`` at every stage boundary and inside every stage, damage
one reused file per stage, and check that the final bundle is byte-identical to that
of an uninterrupted run.

    python -m edgesmith.benchmarks.studies.reliability [--recipe digits-quick] [--out DIR]
        [--set KEY=VALUE ...]

1. reference: one uninterrupted run (its own teacher cache), timing each stage;
2. kills: a second run (another fresh cache) is SIGKILLed inside each step (half its
   reference time after its temporary folder appears) and right after each step's
   folder is renamed into place, then resumed with the same command, until it
   finishes; after each resume no temporary folder may remain;
3. damage: in the finished run, one reused file per step is damaged in turn (the
   largest file truncated to half; ``stage.json`` garbled for steps without one),
   the run is repeated, and the log must name the file and recompute the step;
4. every model file (stage folders and bundle) and the manifest (without its
   ``created_utc``) are compared with the reference byte for byte.

Prints one line per event and a summary; writes ``DIR/reliability.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

MODEL_SUFFIXES = (".onnx", ".safetensors", ".pte", ".tflite", ".ptl", ".json")


def _cmd(recipe: str, out: Path, sets: list[str]) -> list[str]:
    return [sys.executable, "-m", "edgesmith.cli", "run", recipe, "--out", str(out), "--device", "cpu",
            *[a for s in sets for a in ("--set", s)]]


def _env(cache: Path) -> dict:
    return {**os.environ, "EDGESMITH_CACHE": str(cache), "EDGESMITH_QUIET": "", "COLUMNS": "400"}


def _run(recipe: str, out: Path, sets: list[str], cache: Path, log: Path) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    with open(log, "w") as f:
        rc = subprocess.call(_cmd(recipe, out, sets), env=_env(cache), stdout=f, stderr=subprocess.STDOUT)
    return rc, log.read_text(errors="replace"), time.perf_counter() - t0


def _steps(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.is_dir() and p.name[:2].isdigit())


def _fingerprint(run: Path) -> dict[str, str]:
    """sha256 of every model file and stage record, the manifest without its timestamp."""
    import hashlib

    prints = {}
    for p in sorted(run.rglob("*")):
        rel = p.relative_to(run).as_posix()
        if not p.is_file() or p.suffix not in MODEL_SUFFIXES or any(part.startswith(".") for part in p.parts[-2:]):
            continue
        if p.name in ("stage.json", "files.json", "summary.json", "export.json"):
            continue  # timings and absolute paths: not artifacts
        data = p.read_bytes()
        if p.name == "edgesmith.json":
            doc = json.loads(data)
            doc.pop("created_utc", None)
            data = json.dumps(doc, sort_keys=True).encode()
        prints[rel] = hashlib.sha256(data).hexdigest()
    return prints


def _kill_when(proc: subprocess.Popen, ready, timeout: float) -> bool:
    """SIGKILL ``proc`` once ``ready()`` is true; False when the run ended first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    return True


def _tmp_of(out: Path, step: str) -> list[Path]:
    return list(out.glob(f".{step}.*.tmp"))


def kills(recipe: str, out: Path, sets: list[str], cache: Path, durations: dict[str, float],
          logs: Path) -> list[dict]:
    """Kill inside and after each step, resuming each time; return the events."""
    events, n = [], 0
    for step in [*durations, "bundle"]:
        for where in ("inside", "after"):
            n += 1
            proc = subprocess.Popen(_cmd(recipe, out, sets), env=_env(cache), stdout=open(logs / f"kill-{n}.log", "w"),
                                    stderr=subprocess.STDOUT)
            started: list[float] = []

            def ready(step=step, where=where, started=started) -> bool:
                if where == "after":
                    done = out / step / ("edgesmith.json" if step == "bundle" else "stage.json")
                    return done.exists() and not _tmp_of(out, step)
                if not started and _tmp_of(out, step):
                    started.append(time.monotonic())
                wait = min(durations.get(step, 1.0) / 2, 20.0)
                return bool(started) and time.monotonic() - started[0] >= wait

            t0 = time.perf_counter()
            killed = _kill_when(proc, ready, timeout=1800)
            leftovers = sorted(p.name for p in out.glob(".*.tmp"))
            events.append({"kill": n, "step": step, "where": where, "killed": killed,
                           "seconds": round(time.perf_counter() - t0, 1), "tmp_left": leftovers,
                           "lock_left": (out / ".edgesmith.lock").read_text().strip()
                           if (out / ".edgesmith.lock").exists() else None})
            print(f"kill {n:2d}: {where:6s} {step:16s} killed={killed} tmp left={len(leftovers)}", flush=True)
    return events


def damage(recipe: str, out: Path, sets: list[str], cache: Path, logs: Path, ref: Path) -> list[dict]:
    """Damage one reused file per step, rerun, and record whether the log named it and
    whether the step's files (and the bundle) came back identical to the reference."""
    events = []
    want = _fingerprint(ref)
    for step in _steps(out):
        files = [p for p in (out / step).rglob("*") if p.is_file() and p.name not in ("files.json",)]
        target = max(files, key=lambda p: (p.suffix != ".json", p.stat().st_size))
        data = target.read_bytes()
        target.write_bytes(data[: len(data) // 2] if target.suffix != ".json" else b"\x00garbled")
        rc, text, secs = _run(recipe, out, sets, cache, logs / f"damage-{step}.log")
        rel = target.relative_to(out.parent).as_posix()
        flat = " ".join(text.split())
        named = rel in flat and f"recomputing {step}" in flat
        got = _fingerprint(out)
        same = all(got.get(k) == v for k, v in want.items() if k.startswith((f"{step}/", "bundle/")))
        events.append({"step": step, "file": target.relative_to(out).as_posix(), "rc": rc, "named": named,
                       "identical": same, "seconds": round(secs, 1)})
        print(f"damage {step:16s} {target.name:28s} rc={rc} log names it={named} identical={same} {secs:.0f} s",
              flush=True)
    return events


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="digits-quick")
    ap.add_argument("--out", type=Path, default=Path("runs/reliability-study"))
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    root = args.out.resolve()
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    ref, run = root / "reference", root / "run"
    for d in (ref, run):
        if d.exists():
            import shutil

            shutil.rmtree(d)

    rc, _, ref_secs = _run(args.recipe, ref, args.sets, root / "cache-ref", logs / "reference.log")
    if rc != 0:
        raise SystemExit(f"reference run failed (exit {rc}); see {logs / 'reference.log'}")
    durations = {s: json.loads((ref / s / "stage.json").read_text())["seconds"] for s in _steps(ref)}
    print(f"reference: {ref_secs:.0f} s, steps: {', '.join(f'{k} {v:.0f}s' for k, v in durations.items())}")

    t0 = time.perf_counter()
    kill_events = kills(args.recipe, run, args.sets, root / "cache-run", durations, logs)
    rc, _, _ = _run(args.recipe, run, args.sets, root / "cache-run", logs / "final-resume.log")
    kill_secs = time.perf_counter() - t0
    after_kills = _fingerprint(run) == _fingerprint(ref)
    print(f"after {len(kill_events)} kills and resumes: exit {rc}, identical to the reference: {after_kills}")

    leftovers = sorted(p.name for p in run.glob(".*") if p.name.endswith((".tmp", ".old")))
    damage_events = damage(args.recipe, run, args.sets, root / "cache-run", logs, ref)
    a, b = _fingerprint(ref), _fingerprint(run)
    differ = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    result = {
        "host": _cpu(), "recipe": args.recipe, "sets": args.sets, "reference_seconds": round(ref_secs, 1),
        "kill_phase_seconds": round(kill_secs, 1), "kills": kill_events,
        "identical_after_kills": after_kills, "leftovers_after_resume": leftovers, "damage": damage_events,
        "files_compared": len(a), "files_differing": differ, "bundle_identical": not any(
            k.startswith("bundle/") for k in differ),
    }
    (root / "reliability.json").write_text(json.dumps(result, indent=2))
    killed = sum(e["killed"] for e in kill_events)
    named = sum(e["named"] for e in damage_events)
    same = sum(e["identical"] for e in damage_events)
    print(f"\n{killed}/{len(kill_events)} kills landed; temporary folders left after the final resume: "
          f"{len(leftovers)}; {named}/{len(damage_events)} damaged files named and recomputed, {same} of them to "
          f"identical files; {len(a) - len(differ)}/{len(a)} files byte-identical to the uninterrupted run"
          + (f"; differing: {', '.join(differ)}" if differ else ""))
    return result


def _cpu() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
