"""The deployment bundle: ``DIR/bundle/`` holds each exported model file, a text
model's tokenizer files and ``edgesmith.json``, the manifest an app (or
:func:`edgesmith.runtimes.load_bundle`) needs to feed and trust the files:

- ``schema_version``; ``inputs`` (names, shapes, dtypes, ``layout``) and
  ``outputs`` (name, shape, ``meaning``: ``logits`` or ``sentence_embedding``);
- ``preprocessing``: ``image`` (mean/std, size, channels, layout, uint8 scale) or
  ``text`` (tokenizer folder, ``max_length``); ``labels`` (class names or null);
- ``formats``: per file its runtime, precision, export parity (vs PyTorch on
  prepared inputs) and ``bundle_parity`` (raw inputs through the manifest's
  preprocessing and the file, vs PyTorch);
- ``checksums``: size and sha256 of every file; ``source``: the recipe and its hash;
- ``reference_profile``: input and output statistics on held-out data (drift).

The folder is built in a temporary sibling and renamed into place, so it appears
whole or not at all. A rebuilt run whose exported files and recipe are unchanged
keeps its bundle.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from edgesmith import __version__, atomic
from edgesmith.bundle.loader import (
    MANIFEST,
    SCHEMA_VERSION,
    Bundle,
    pick_format,
    preprocessing_for,
    read_manifest,
)
from edgesmith.errors import BundleError, EdgesmithError, ParityError
from edgesmith.progress import log

OUTPUT_MEANINGS = {
    "classification": ("logits", "unnormalised class scores, one per label; softmax gives probabilities"),
    "embedding": ("sentence_embedding", "one vector per text; compare with cosine similarity"),
}
PROFILE_LIMIT = 1000


def write_bundle(source: Any, model: Any = None, *, gate: bool | None = None) -> dict:
    """Write ``DIR/bundle/`` for a finished run and return its ``summary.json`` entry.

    Args:
        source: The pipeline :class:`~edgesmith.pipeline.runner.Runner`, or a finished
            run directory (its recipe is reloaded and its final model rebuilt from
            the step folders; nothing is re-run).
        model: The run's final PyTorch model (the reference for bundle parity);
            None rebuilds it.
        gate: Raise :class:`ParityError` when raw inputs through the bundle disagree
            with PyTorch; None follows the recipe's ``export.parity.gate``.

    Example:
        >>> from edgesmith.bundle.writer import write_bundle
        >>> write_bundle("runs/digits-quick")["manifest_sha256"]  # doctest: +SKIP
    """
    runner = source if hasattr(source, "ctx") else _runner_for(Path(source))
    if model is None or runner.result("export") is None:  # a finished run directory: rebuild its steps
        reloaded = runner.reload()
        model = reloaded if model is None else model
    if gate is None:
        gate = getattr(runner, "parity_gate", runner.recipe.export.parity.gate)
    return _Builder(runner, model).write(gate)


def _runner_for(run_dir: Path):
    # The one upward import: a run directory is read back by the pipeline that wrote it.
    from edgesmith.conf.recipe import load_recipe
    from edgesmith.pipeline.runner import Runner

    recipe = run_dir / "recipe.resolved.yaml"
    if not recipe.is_file():
        raise BundleError(f"{recipe}: not found; pass a run directory written by `edgesmith run`")
    return Runner(load_recipe(recipe), run_dir, "cpu")


class _Builder:
    def __init__(self, runner: Any, model: Any):
        self.runner, self.model, self.ctx = runner, model, runner.ctx
        self.out = Path(runner.out)
        self.dest = self.out / "bundle"
        self.exports = [e for e in _exports(runner) if e.get("path")]
        if not self.exports:
            raise BundleError(f"{self.out}: no exported model file to bundle; list export.formats in the recipe")
        from edgesmith.bundle.choice import speed_choices

        # never ship a slower file: a quantized file measured slower than its fp32 parent is swapped for it
        self.exports, self.choices = speed_choices(self.exports, _benchmark(runner),
                                                   runner.recipe.export.force_quantized)
        for fmt, c in self.choices.items():
            if c["shipped"] == "fp32" or c["forced"]:
                log(f"  [yellow]bundle: {fmt}: {c['reason']}[/yellow]")
        self.recipe_sha256 = atomic.sha256_json(runner.recipe.to_dict())
        self.final, self.quantizer = final_weights(runner)

    # --------------------------------------------------------------- write
    def write(self, gate: bool) -> dict:
        kept = self._reusable()
        if kept is not None:
            log("[dim]bundle: unchanged, reusing[/dim]")
            return entry(self.dest, kept)
        log("[bold cyan]bundle[/bold cyan]")
        with atomic.atomic_dir(self.dest) as tmp:
            manifest = self._manifest(tmp)
            failed = self._check_formats(tmp, manifest)
            if failed and gate:
                fmt, reason = failed[0]
                raise ParityError(f"bundle parity: {fmt} fed raw eval inputs through the manifest's preprocessing "
                                  f"disagrees with PyTorch: {reason}; rerun with --no-parity-gate to keep it anyway")
            try:
                with self._open(tmp, manifest, None) as bundle:
                    manifest["reference_profile"] = self._profile(bundle)
            except EdgesmithError as err:
                manifest["reference_profile"] = {"error": str(err)}
            atomic.write_json(tmp / MANIFEST, manifest)
        return entry(self.dest, manifest)

    def _manifest(self, tmp: Path) -> dict:
        ctx, task = self.ctx, self.ctx.task
        formats: dict[str, dict] = {}
        for e in self.exports:
            fmt = e["format"]
            (tmp / fmt).mkdir()
            files = []
            for rel in e.get("files") or [e["path"]]:
                shutil.copyfile(self.out / rel, tmp / fmt / Path(rel).name)
                files.append(f"{fmt}/{Path(rel).name}")
            bounds = e.get("dynamic_bounds") or {}
            formats[fmt] = {"path": f"{fmt}/{Path(e['path']).name}", "files": files, "runtime": e["runtime"],
                            "precision": e["precision"], "size_bytes": e["size_bytes"],
                            "layout": e.get("layout") or ("NCHW" if task.kind == "classification" else None),
                            "static_shapes": e.get("static_shapes"), "max_batch": bounds.get("batch"),
                            "device": e.get("device") or "cpu",
                            "parity": e["parity"], "model": model_of(e, self.final, self.quantizer),
                            **({"speed_choice": self.choices[fmt]} if fmt in self.choices else {})}
            if fmt == "tensorrt":  # label the engine as what it is: its precision, built and checked or not
                formats[fmt].update(engine_label(e))
        preprocessing = preprocessing_for(task.kind).describe(ctx, tmp)
        head = self._head(tmp)
        meaning, description = OUTPUT_MEANINGS[task.kind]
        example = ctx.tensors["eval"].take(slice(0, 1))
        inputs = task.prepare(example.inputs)
        output = task.predict(self.model.eval().cpu(), example)
        from edgesmith.export.signature import tensor_entry

        axes = task.dynamic_axes()
        out_spec = tensor_entry(task.output_names[0], output.shape, output.dtype, {0: "batch"})
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "edgesmith": __version__,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "source": {"recipe": self.runner.recipe.name, "recipe_sha256": self.recipe_sha256},
            "task": task.kind,
            "inputs": [{**tensor_entry(n, t.shape, t.dtype, axes.get(n, {})),
                        **({"layout": preprocessing["layout"]} if "layout" in preprocessing else {})}
                       for n, t in zip(task.input_names, inputs, strict=True)],
            "outputs": [{**out_spec, "meaning": meaning, "description": description, **_embedding_facts(self)}],
            "preprocessing": preprocessing,
            "labels": self.ctx.raw["train"].classes,
            **({"head": head} if head else {}),
            "formats": formats,
            "fidelity": fidelity(self.runner),
            "one_model": one_model(formats),
        }
        if "tflite" in formats:  # labels and normalisation inside the .tflite file too
            _tflite_metadata(tmp / formats["tflite"]["path"], manifest, formats["tflite"])
        manifest["checksums"] = [{"path": p.relative_to(tmp).as_posix(), "size": p.stat().st_size,
                                  "sha256": atomic.sha256_file(p)} for p in sorted(tmp.rglob("*")) if p.is_file()]
        return manifest

    def _head(self, tmp: Path) -> dict | None:
        """Ship the probe the run trained on the final model's embeddings (a text
        run's task head) as ``head/model.onnx``; None without a probe."""
        recipe = self.runner.recipe
        if self.ctx.task.kind != "embedding" or recipe.probe is None:
            return None
        from edgesmith.bundle.head import head_onnx
        from edgesmith.data import load_probe

        clf = self.ctx.probe_head(self.model.eval().cpu(), self.final)
        head_onnx(clf.coef_, clf.intercept_, tmp / "head" / "model.onnx", "sentence_embedding")
        classes = load_probe(recipe.probe, recipe.seed)[0].classes or [str(c) for c in clf.classes_]
        return {"path": "head/model.onnx", "input": "sentence_embedding", "output": "logits",
                "labels": [classes[int(c)] if str(c).isdigit() and int(c) < len(classes) else str(c)
                           for c in clf.classes_],
                "how": f"logistic regression (C={recipe.probe.C}) on the {self.final} model's embeddings of "
                       f"{recipe.probe.train} labelled texts of '{recipe.probe.source.name}' (the run's probe)"}

    def _check_formats(self, tmp: Path, manifest: dict) -> list[tuple[str, str]]:
        """Record each file's io and its raw-input parity; return the failures."""
        from edgesmith.export.parity import check_bundle_parity

        failed = []
        samples = self.runner.recipe.export.parity.samples
        for fmt, e in manifest["formats"].items():
            try:
                bundle = self._open(tmp, manifest, fmt)
            except EdgesmithError as err:
                ran_here = (e.get("parity") or {}).get("max_abs_diff") is not None \
                    and e.get("engine_built", True)  # an unbuilt engine's parity was on its ONNX file
                if ran_here:  # the export step ran this very file here: the bundle's copy broke it
                    e["bundle_parity"] = {"passed": False, "max_abs_diff": None,
                                          "reason": f"the bundle's file no longer loads: {err}"}
                    log(f"  [red]{fmt}: the bundle's file no longer loads: {err}[/red]")
                    failed.append((fmt, e["bundle_parity"]["reason"]))
                    continue
                # e.g. a GPU-only file on a CPU machine: recorded, not gated
                e["bundle_parity"] = {"passed": False, "max_abs_diff": None, "reason": f"not loadable here: {err}"}
                log(f"  [yellow]{fmt}: bundle parity not checked: {err}[/yellow]")
                continue
            with bundle:
                e["inputs"] = [vars(s) for s in bundle.runtime.inputs]
                e["outputs"] = [vars(s) for s in bundle.runtime.outputs]
                e["bundle_parity"] = r = check_bundle_parity(bundle, self.model, self.ctx.task,
                                                             self.ctx.raw["eval"], samples)
            status = "[green]ok[/green]" if r["passed"] else f"[red]FAILED ({r['reason']})[/red]"
            diff = "-" if r["max_abs_diff"] is None else f"{r['max_abs_diff']:.2e}"
            log(f"  {fmt}: raw eval inputs through the bundle vs PyTorch: max|diff| {diff} {status}")
            if not r["passed"]:
                failed.append((fmt, r["reason"]))
        return failed

    def _open(self, tmp: Path, manifest: dict, fmt: str | None) -> Bundle:
        from edgesmith.runtimes import load

        fmt = fmt or pick_format(manifest, None, tmp)
        e = manifest["formats"][fmt]
        rt = load(tmp / e["path"], e["runtime"], threads=1, device=e.get("device") or "cpu")
        return Bundle(tmp, manifest, fmt, rt)

    def _profile(self, bundle: Bundle) -> dict:
        from edgesmith.bundle.profile import reference_profile

        return reference_profile(bundle, self.ctx.raw["eval"], "eval", PROFILE_LIMIT)

    # --------------------------------------------------------------- reuse
    def _reusable(self) -> dict | None:
        """The existing manifest when it verifies and holds exactly the run's current files."""
        if not (self.dest / MANIFEST).is_file():
            return None
        try:
            manifest = read_manifest(self.dest)
        except EdgesmithError:
            return None
        sums = {c["path"]: c["sha256"] for c in manifest.get("checksums", [])}
        if manifest.get("edgesmith") != __version__ or "reference_profile" not in manifest \
                or manifest.get("source", {}).get("recipe_sha256") != self.recipe_sha256 \
                or set(manifest.get("formats", {})) != {e["format"] for e in self.exports} \
                or {f: e["speed_choice"] for f, e in manifest["formats"].items() if e.get("speed_choice")} \
                != self.choices:
            return None
        for e in self.exports:
            before = (manifest["formats"][e["format"]].get("metadata") or {}).get("exported_sha256")
            for rel in e.get("files") or [e["path"]]:
                bundled = f"{e['format']}/{Path(rel).name}"
                expected = before if before and bundled == manifest["formats"][e["format"]]["path"] else sums.get(bundled)
                if expected != atomic.sha256_file(self.out / rel):
                    return None
        return manifest


def _benchmark(runner: Any) -> dict:
    """The benchmark step's info (results and measured fp32 parents), or {} when it has not run."""
    bench = runner.result("benchmark")
    return bench.info if bench is not None else {}
def _tflite_metadata(path: Path, manifest: dict, entry: dict) -> None:
    """Write the manifest's labels and preprocessing into the .tflite file (recorded in
    ``entry["metadata"]``; a failure leaves the file as it was and says why)."""
    from edgesmith.bundle.tflite_metadata import (
        MAX_BYTES,
        NAME,
        bundle_metadata,
        write_tflite_metadata,
    )

    if path.stat().st_size > MAX_BYTES:
        entry["metadata"] = {"written": False, "reason": "file over 1 GB"}
        return
    exported = atomic.sha256_file(path)
    try:
        write_tflite_metadata(path, bundle_metadata(manifest))
    except Exception as e:  # noqa: BLE001 - metadata is a convenience: the file stays usable without it
        entry["metadata"] = {"written": False, "reason": f"{type(e).__name__}: {e}"}
        return
    entry["metadata"] = {"written": True, "name": NAME, "format": "JSON in the TFLite metadata table",
                         "exported_sha256": exported}  # the exported file's hash, before: for reuse
    entry["size_bytes"] = path.stat().st_size


def final_weights(runner: Any) -> tuple[str, tuple[str, str] | None]:
    """The stage whose weights the run's exports start from (the last that changed
    them; ``teacher`` if none) and the last ``quantize`` / ``qat`` stage as
    ``(name, kind)``, or None."""
    from edgesmith.compress.stage import stages

    registry, final, quantizer = stages(), "teacher", None
    for step in runner.steps:
        if not step.is_stage:
            continue
        spec = registry.get(step.kind)
        if not spec.weights:
            quantizer = (step.name, step.kind)
        elif not spec.passes_model_on:
            final = step.name
    return final, quantizer


def model_of(export: dict, final: str, quantizer: tuple[str, str] | None) -> dict:
    """Which model a bundled file is and why: the weights it holds and how it was made.
    A ``qat`` stage fine-tunes the weights, so its ONNX file holds other weights than
    the files exported from the final fp32 model."""
    precision, fmt = export.get("precision"), export["format"]
    by = export.get("quantized_by")
    if by and quantizer and by == quantizer[0] and quantizer[1] == "qat":
        return {"weights": by, "from": final, "same_weights": False,
                "how": f"the {by} stage's quantization-aware fine-tuning of the {final} weights, int8 QDQ ONNX "
                       f"(QAT changes the weights, so this file is not the other files' model)"}
    if by:
        return {"weights": final, "same_weights": True,
                "how": f"{precision} post-training quantization of the {final} weights by the {by} stage"}
    if precision in ("int8", "int8-dynamic", "fp16") and fmt != "tensorrt":
        return {"weights": final, "same_weights": True,
                "how": f"{precision} of the {final} weights by the {fmt} exporter"
                       + (" (pt2e post-training quantization, calibrated on the calibration split)"
                          if precision == "int8" else "")}
    return {"weights": final, "same_weights": True, "how": f"the {final} weights exported to {fmt} as they are"}


def one_model(formats: dict) -> dict:
    """Whether every file of the bundle holds the same weights; if not, which differ."""
    other = sorted(f for f, e in formats.items() if not e["model"]["same_weights"])
    return {"same_weights": not other, "differing_formats": other}


def engine_label(export: dict) -> dict:
    """A TensorRT entry as what it is: the engine's precision, and that parity was
    checked on the fp32 ONNX file the engine is built from, not on the engine, unless
    an engine was built here."""
    engine = export.get("engine_precision") or export.get("precision")
    built = bool(export.get("engine_built"))
    return {"precision": engine, "onnx_precision": export.get("precision"), "engine_built": built,
            "parity_checked_on": "the TensorRT engine" if built else
            f"the {export.get('precision')} ONNX file the engine is built from (onnxruntime); the {engine} "
            "engine itself was not built or checked here: run trtexec.sh on a GPU machine"}


def _exports(runner: Any) -> list[dict]:
    """The export step's entries, from the run's results (a finished run directory's
    runner has them once :meth:`Runner.reload` has rebuilt its steps)."""
    export = runner.result("export")
    if export is None:
        raise BundleError(f"{runner.out}: the export step has not run; nothing to bundle")
    return export.info["exports"]


FIDELITY_KEYS = ("accuracy", "teacher_agreement", "cosine_to_teacher", "cosine_to_teacher_p05",
                 "retrieval_r1", "retrieval_r10", "retrieval_r1_vs_teacher", "retrieval_r1_vs_teacher_lo",
                 "retrieval_r1_vs_teacher_hi")
FIDELITY_PROTOCOL = {
    "accuracy": "the probe's (or eval split's) accuracy, the same protocol for the teacher and every stage",
    "cosine_to_teacher": "mean cosine to the teacher's embedding on the held-out eval split; _p05: its 5th percentile",
    "retrieval": "held-out WordNet synsets (never in a distillation or vocabulary corpus): each example "
                 "sentence must retrieve its own gloss by cosine among the glosses of its pool of about 500; "
                 "recall@1 and @10; "
                 "retrieval_r1_vs_teacher: recall@1 as a share of the teacher's on the same queries, _lo / _hi "
                 "its 95% paired bootstrap interval",
}


def fidelity(runner: Any) -> dict:
    """The teacher's and every stage's quality metrics (``FIDELITY_KEYS``), with the
    final stage's retrieval recall as a share of the teacher's."""
    infos = [r.info for r in runner.results.values()]
    rows = {i["name"]: {k: i["metrics"][k] for k in FIDELITY_KEYS if k in i["metrics"]}
            for i in infos if i.get("metrics")}
    final = next((n for n in reversed(rows) if n != "teacher"), None)
    out: dict[str, Any] = {"protocol": FIDELITY_PROTOCOL, "final": final, "stages": rows}
    t, f = rows.get("teacher", {}), rows.get(final, {})
    if t.get("retrieval_r1") and "retrieval_r1" in f:
        out["retrieval_r1_vs_teacher"] = round(f["retrieval_r1"] / t["retrieval_r1"], 4)
        if "retrieval_r1_vs_teacher_lo" in f:
            out["retrieval_r1_vs_teacher_ci"] = [round(f[f"retrieval_r1_vs_teacher_{b}"], 4) for b in ("lo", "hi")]
    return out


def _embedding_facts(builder: _Builder) -> dict:
    teacher = builder.runner.recipe.teacher
    if builder.ctx.task.kind != "embedding":
        return {}
    return {"pooling": getattr(teacher, "pooling", None), "normalized": getattr(teacher, "normalize_embeddings", None)}


def entry(dest: Path, manifest: dict) -> dict:
    """The ``bundle`` entry of ``summary.json``."""
    files = [MANIFEST, *(c["path"] for c in manifest["checksums"])]
    choices = {f: e["speed_choice"] for f, e in manifest["formats"].items() if e.get("speed_choice")}
    return {"path": dest.name, "manifest_sha256": atomic.sha256_file(dest / MANIFEST), "files": files,
            "formats": list(manifest["formats"]), "default_format": pick_format(manifest, None, dest),
            "speed_choices": choices,
            "size_bytes": sum(c["size"] for c in manifest["checksums"]) + (dest / MANIFEST).stat().st_size}
