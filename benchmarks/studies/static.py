"""Static-embedding students against the teacher and against model2vec, measured in
one run: sentiment-probe accuracy (logistic regression on frozen embeddings,
2,000 / 2,000 VADER movie snippets), shipped file size, batch-1 p50.

    python -m edgesmith.benchmarks.studies.static --out runs/static-study \\
        [--model2vec-python /tmp/m2v/bin/python] [--model2vec-out runs/static-study/model2vec] \
        [--set benchmark.iterations=50 ...]

It runs the ``minilm-static`` recipe twice: as built (``stages.distill.epochs=0``:
teacher token vectors, PCA, SIF weights; what model2vec does) and fine-tuned by
distillation (the recipe as shipped). model2vec's ``distill`` needs transformers
5.3, which the project's pins exclude, so it runs in its own environment
(``--model2vec-python``: a venv with ``model2vec[distill]==0.10.0``; one that
sees this venv's torch through a ``.pth`` file avoids a second torch download).
model2vec's p50 is its own ``encode`` of one text (numpy, tokenization
included); ours is onnxruntime on token ids at sequence 128 (1 thread), the
pipeline's protocol.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path


def _row(summary: dict, label: str) -> dict:
    final = summary["stages"][-1]
    bench = {(b["model"], b["runtime"]): b for b in summary["benchmarks"] if b.get("latency_ms")}
    onnx = next(e for e in summary["exports"] if e["format"] == "onnx")
    static = next(s for s in summary["stages"] if s["kind"] == "distill")["metrics"]
    p50 = (bench.get((final["name"], "onnxruntime")) or {}).get("latency_ms", {}).get("p50")
    return {"model": label, "probe_accuracy": final["metrics"].get("accuracy"),
            "cosine_to_teacher": static.get("cosine_to_teacher"), "retrieval_r1": static.get("retrieval_r1"),
            "size_bytes": onnx["size_bytes"], "precision": onnx["precision"], "p50_ms": p50,
            "teacher_torch_p50_ms": (bench.get(("teacher", "torch")) or {}).get("latency_ms", {}).get("p50")}


def _model2vec(python: str | None, seed: int, out: Path) -> dict:
    """Distil with model2vec in its own interpreter (skipped when ``out`` already holds its
    results for these probe texts); score its embeddings with our probe protocol."""
    import numpy as np

    from edgesmith.conf.recipe import load_recipe
    from edgesmith.data import load_probe
    from edgesmith.models.encoder import package_model_path
    from edgesmith.models.tasks import fit_probe_head

    recipe = load_recipe("minilm-static")
    train, test = load_probe(recipe.probe, seed)
    out.mkdir(parents=True, exist_ok=True)
    texts = json.dumps({"probe": list(train.x) + list(test.x), "latency": test.x[0]})
    done = (out / "model2vec.json").is_file() and (out / "texts.json").is_file() \
        and (out / "texts.json").read_text() == texts
    if not done:
        if python is None:
            raise SystemExit(f"{out}: no model2vec results for these probe texts; pass --model2vec-python")
        (out / "texts.json").write_text(texts)
        worker = Path(__file__).with_name("_model2vec_worker.py")
        subprocess.run([python, str(worker), str(package_model_path(recipe.teacher.package)),
                        str(out / "texts.json"), str(out), "256"], check=True,
                       env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    info = json.loads((out / "model2vec.json").read_text())
    emb = np.load(out / "probe_embeddings.npy")
    head = fit_probe_head(emb[: len(train)], train.y, recipe.probe.C)
    acc = float((head.predict(emb[len(train):]) == test.y).mean())
    return {"model": f"model2vec {info['version']} (pca 256)", "probe_accuracy": acc, "cosine_to_teacher": None,
            "retrieval_r1": None, "size_bytes": info["size_bytes"], "precision": "fp32", "p50_ms": info["p50_ms"],
            "distill_seconds": info["distill_seconds"]}


def main(argv: list[str] | None = None) -> list[dict]:
    import edgesmith

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/static-study")
    ap.add_argument("--model2vec-python", default=None, help="a python with model2vec[distill]==0.10.0")
    ap.add_argument("--model2vec-out", default=None, help="keep (and reuse) model2vec's results here")
    ap.add_argument("--set", action="append", default=[], help="recipe override for both runs")
    ap.add_argument("--json", default=None, help="write the rows here")
    args = ap.parse_args(argv)
    out = Path(args.out)
    built = edgesmith.run("minilm-static", out / "as-built", overrides=[*args.set, "stages.distill.epochs=0"])
    tuned = edgesmith.run("minilm-static", out / "fine-tuned", overrides=args.set)
    teacher = tuned["teacher"]
    rows = [{"model": "teacher (MiniLM-L6, PyTorch fp32)", "probe_accuracy": teacher["metrics"].get("accuracy"),
             "cosine_to_teacher": 1.0, "retrieval_r1": teacher["metrics"].get("retrieval_r1"),
             "size_bytes": teacher["size_bytes"], "precision": "fp32",
             "p50_ms": _row(tuned, "")["teacher_torch_p50_ms"]},
            _row(built, "static, as built (PCA + SIF)"), _row(tuned, "static, fine-tuned by distillation")]
    if args.model2vec_out:
        rows.append(_model2vec(args.model2vec_python, 0, Path(args.model2vec_out)))
    elif args.model2vec_python:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(_model2vec(args.model2vec_python, 0, Path(tmp)))
    print(f"{'model':42} {'probe acc':>9} {'cosine':>7} {'R@1':>6} {'size':>9} {'p50':>9}")
    for r in rows:
        cos = "-" if r["cosine_to_teacher"] is None else f"{r['cosine_to_teacher']:.3f}"
        r1 = "-" if r["retrieval_r1"] is None else f"{100 * r['retrieval_r1']:.1f}%"
        p50 = "-" if r["p50_ms"] is None else f"{r['p50_ms']:.3f} ms"
        print(f"{r['model']:42} {100 * r['probe_accuracy']:8.2f}% {cos:>7} {r1:>6} "
              f"{r['size_bytes'] / 1e6:7.2f} MB {p50:>9}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return rows


if __name__ == "__main__":
    main()
