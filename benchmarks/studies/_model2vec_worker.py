"""Run in model2vec's own environment (its distill extra needs transformers 5.3,
which the project's pins exclude): distil the teacher folder with model2vec,
save it, and write its embeddings of the given texts and its batch-1 latency.

Usage: python _model2vec_worker.py TEACHER_DIR TEXTS_JSON OUT_DIR [PCA_DIMS]
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np


def main() -> None:
    teacher, texts_json, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    dims = int(sys.argv[4]) if len(sys.argv) > 4 else 256
    from model2vec.distill import distill

    t0 = time.perf_counter()
    model = distill(model_name=str(teacher), pca_dims=dims)
    distill_s = time.perf_counter() - t0
    model.save_pretrained(str(out / "model2vec"))
    texts = json.loads(texts_json.read_text())
    emb = model.encode(texts["probe"])
    np.save(out / "probe_embeddings.npy", np.asarray(emb, np.float32))
    one = texts["latency"]
    for _ in range(20):
        model.encode([one])
    samples = []
    for _ in range(300):
        t = time.perf_counter()
        model.encode([one])
        samples.append((time.perf_counter() - t) * 1000)
    size = sum(f.stat().st_size for f in (out / "model2vec").rglob("*") if f.is_file())
    (out / "model2vec.json").write_text(json.dumps({
        "distill_seconds": distill_s, "p50_ms": float(np.median(samples)), "size_bytes": size,
        "dims": dims, "version": __import__("model2vec").__version__}))


if __name__ == "__main__":
    main()
