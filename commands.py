"""Single-step commands, as optimum-cli users expect them: quantize, export and
parity-check an existing model file without writing a recipe. Each is a thin layer
over the API the pipeline's stages use (``quantize_onnx`` + presets, the exporters of
:mod:`edgesmith.export`, :func:`edgesmith.export.parity.compare`)::

    edgesmith quantize model.onnx --preset x86-dynamic
    edgesmith export model.pt2 --to onnx
    edgesmith check model.onnx model.int8.onnx

A bundle folder is accepted wherever a model file is (its file for the runtime asked,
else the first that passed parity).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import numpy as np

from edgesmith.errors import ParityError, UserError


def resolve_model(path: Path, runtime: str | None = None) -> Path:
    """A model file, or the file of a bundle folder in ``runtime`` (default: the first
    format that passed parity)."""
    if path.is_dir() and (path / "edgesmith.json").is_file():
        from edgesmith.bundle.manifest import pick_format, read_manifest

        manifest = read_manifest(path)
        return path / manifest["formats"][pick_format(manifest, runtime, path)]["path"]
    if path.is_dir():
        raise UserError(f"{path}: a directory without edgesmith.json; give a model file or a bundle")
    if not path.is_file():
        raise UserError(f"{path}: no such model file or bundle")
    return path


def load_inputs(path: Path | None, specs: list[Any], samples: int, seed: int = 0) -> tuple[dict, str]:
    """Inputs ``{name: array}`` from an ``.npz`` (keys = input names), else ``samples``
    synthetic ones from the input spec (:func:`edgesmith.benchmarks.sweep.synth_inputs`);
    and a word on where they came from."""
    if path is not None:
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise UserError(f"{path}: cannot read it as .npz ({e})") from None
        names = [s.name for s in specs]
        if sorted(arrays) != sorted(names):
            raise UserError(f"{path}: holds {sorted(arrays)}; the model takes {names}")
        return arrays, f"{len(next(iter(arrays.values())))} inputs from {path.name}"
    from edgesmith.benchmarks.sweep import synth_inputs

    return synth_inputs(specs, samples, 16, seed), f"{samples} synthetic inputs (pass --inputs FILE.npz for real ones)"


def run_all(rt: Any, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """The first output over all inputs, one sample at a time where the file's batch is static."""
    specs = {s.name: s for s in rt.inputs}
    n = len(next(iter(inputs.values())))
    static = any(isinstance(s.shape[0], int) and s.shape[0] > 0 for s in specs.values() if s.shape)
    if not static:
        return np.asarray(rt.run(inputs)[0], dtype=np.float32)
    return np.concatenate([np.asarray(rt.run({k: v[i:i + 1] for k, v in inputs.items()})[0], dtype=np.float32)
                           for i in range(n)])


def check_files(reference: Path, candidate: Path, inputs_npz: Path | None = None, samples: int = 32,
                atol: float = 1e-4, min_cosine: float = 0.9999, runtimes: tuple[str | None, str | None] = (None, None)
                ) -> dict[str, Any]:
    """Parity of ``candidate`` against ``reference`` on the same inputs (both run in
    their runtimes): max abs diff, mean cosine, top-1 agreement, and whether they are
    within ``atol`` / ``min_cosine`` (:func:`edgesmith.export.parity.compare`)."""
    from edgesmith.export.base import Tolerance
    from edgesmith.export.parity import compare
    from edgesmith.runtimes import load

    with load(reference, runtimes[0]) as ref_rt, load(candidate, runtimes[1]) as cand_rt:
        inputs, source = load_inputs(inputs_npz, ref_rt.inputs, samples)
        ref, out = run_all(ref_rt, inputs), run_all(cand_rt, inputs)
        used = (ref_rt.name, cand_rt.name)
    result = compare(ref, out, Tolerance(atol=atol, min_cosine=min_cosine))
    return {"reference": str(reference), "candidate": str(candidate), "runtimes": list(used), "inputs": source,
            **result}


def _report(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result, indent=1, default=str))
        return
    agree = "" if result.get("agreement") is None else f", top-1 agreement {100 * result['agreement']:.2f}%"
    click.echo(f"{result['candidate']} vs {result['reference']} ({' vs '.join(result['runtimes'][::-1])}, "
               f"{result['inputs']}): max |diff| {result['max_abs_diff']:.3g}, cosine {result['cosine']:.6f}{agree}: "
               + ("passed" if result["passed"] else f"FAILED ({result.get('reason')})"))


@click.command(short_help="Parity-check a model file against another.", epilog="""\b
Examples:
  edgesmith check model.onnx model.int8.onnx --atol 0.5 --min-cosine 0.999
  edgesmith check model.onnx runs/digits-quick/bundle --runtime-b tflite
  edgesmith check model.onnx model.tflite --inputs eval.npz --json""")
@click.argument("reference", type=click.Path(path_type=Path))
@click.argument("candidate", type=click.Path(path_type=Path))
@click.option("--inputs", "inputs_npz", type=click.Path(path_type=Path), metavar="FILE.npz",
              help="Inputs to compare on (keys = input names); default: synthetic ones.")
@click.option("--samples", default=32, show_default=True, help="Synthetic inputs when --inputs is not given.")
@click.option("--atol", default=1e-4, show_default=True, help="Largest max |diff| that passes.")
@click.option("--min-cosine", default=0.9999, show_default=True, help="Smallest mean cosine that passes.")
@click.option("--runtime-a", help="Runtime for REFERENCE (default: by suffix; a bundle: the first that passed).")
@click.option("--runtime-b", help="Runtime for CANDIDATE (tflite = litert).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def check(reference: Path, candidate: Path, inputs_npz: Path | None, samples: int, atol: float, min_cosine: float,
          runtime_a: str | None, runtime_b: str | None, as_json: bool) -> None:
    """Run REFERENCE and CANDIDATE (model files or bundles) on the same inputs and
    compare their first outputs. Exits 1 when they disagree beyond the tolerance."""
    alias = {"tflite": "litert"}
    ra, rb = alias.get(runtime_a, runtime_a), alias.get(runtime_b, runtime_b)
    a, b = resolve_model(reference, ra), resolve_model(candidate, rb)
    result = check_files(a, b, inputs_npz, samples, atol, min_cosine, (ra, rb))
    _report(result, as_json)
    if not result["passed"]:
        raise ParityError(f"{b} disagrees with {a}: {result.get('reason')}")


@click.command(short_help="Quantize an ONNX file with a named preset.", epilog="""\b
Examples:
  edgesmith quantize model.onnx --preset x86-dynamic
  edgesmith quantize model.onnx --preset x86 --calibration calib.npz -o q.onnx
  edgesmith quantize runs/digits-quick/bundle --preset fp16""")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--preset", required=True, help="x86 (static int8), x86-dynamic, tensorrt (static, symmetric), fp16.")
@click.option("--out", "-o", type=click.Path(path_type=Path), help="Output file (default MODEL.<precision>.onnx).")
@click.option("--calibration", type=click.Path(path_type=Path), metavar="FILE.npz",
              help="Calibration inputs (keys = input names); required by static int8 presets.")
@click.option("--samples", default=32, show_default=True,
              help="Synthetic inputs for the SQNR check when no --calibration is given (dynamic and fp16).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def quantize(model: Path, preset: str, out: Path | None, calibration: Path | None, samples: int,
             as_json: bool) -> None:
    """Quantize MODEL (an fp32 ONNX file, or a bundle's ONNX file) with --preset, the
    same code as the recipe's ``quantize`` stage; prints size and output SQNR vs fp32."""
    from edgesmith.compress.quantize import preset as make_preset
    from edgesmith.compress.quantize import quantize_onnx
    from edgesmith.runtimes import load

    src = resolve_model(model, "onnxruntime")
    if src.suffix.lower() != ".onnx":
        raise UserError(f"{src}: quantize takes an ONNX file (.onnx), got {src.suffix or 'no suffix'}")
    config = make_preset(preset)
    static = config.precision == "int8"
    if static and calibration is None:
        raise UserError(f"--preset {preset}: static int8 needs --calibration FILE.npz (real inputs, keys = input "
                        "names); or use --preset x86-dynamic")
    with load(src, "onnxruntime") as rt:
        inputs, source = load_inputs(calibration, rt.inputs, samples)
    out = out or src.with_name(f"{src.stem}.{config.precision}.onnx")
    info = quantize_onnx(src, out, config, [inputs])
    check_info = info.get("check") or {}
    result = {"model": str(src), "out": str(out), "preset": preset, "precision": info["precision"],
              "size_bytes": info["size_bytes"], "fp32_size_bytes": info["fp32_size_bytes"],
              "sqnr_db": check_info.get("sqnr_db"), "cosine": check_info.get("cosine"), "inputs": source}
    if as_json:
        click.echo(json.dumps(result, indent=1, default=str))
        return
    ratio = info["fp32_size_bytes"] / max(info["size_bytes"], 1)
    change = f"{ratio:.2f}x smaller" if ratio >= 1 else f"{1 / ratio:.2f}x larger"
    click.echo(f"{out}: {info['precision']} ({preset}), {info['size_bytes'] / 1e3:.1f} kB vs "
               f"{info['fp32_size_bytes'] / 1e3:.1f} kB fp32 ({change}); output SQNR {result['sqnr_db']} dB "
               f"vs fp32 on {source}")


EXPORT_FORMATS = ("onnx", "tflite", "executorch", "torchscript-lite")


def _program_module():
    import torch

    class Program(torch.nn.Module):
        """A loaded ``.pt2`` program as a plain module: the exporters call ``.eval()``,
        which the unlifted program refuses (it is already an inference graph)."""

        def __init__(self, graph: torch.nn.Module) -> None:
            super().__init__()
            self.graph = graph

        def train(self, mode: bool = True) -> Program:
            self.training = mode
            return self

        def forward(self, *args: torch.Tensor) -> Any:
            return self.graph(*args)

    return Program


def _Program(graph: Any) -> Any:  # noqa: N802 - a class made on first use (torch is imported lazily)
    return _program_module()(graph)


def pt2_task(program: Any) -> Any:
    """The task a ``.pt2`` program is exported as: a classifier fed float tensors named
    like the program's inputs (token models are exported from a recipe)."""
    from edgesmith.models.tasks import ClassificationTask

    names = [s.arg.name for s in program.graph_signature.input_specs if s.kind.name == "USER_INPUT"]
    metas = {n.name: n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder"}
    if any(getattr(metas.get(n), "dtype", None) is not None and not metas[n].dtype.is_floating_point for n in names):
        raise UserError("export: this .pt2 takes integer inputs (a token model); export it with a recipe "
                        "(edgesmith run) so the tokenizer and sequence axes go with it")
    return ClassificationTask(mean=[0.0], std=[1.0], input_names=names), [metas[n] for n in names]


@click.command(name="export", short_help="Export a PyTorch .pt2 program to another format.", epilog="""\b
Examples:
  edgesmith export model.pt2 --to onnx
  edgesmith export model.pt2 --to tflite --to executorch -o exported/""")
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--to", "formats", multiple=True, required=True, type=click.Choice(EXPORT_FORMATS),
              help="Target format (repeatable).")
@click.option("--out", "-o", "out_dir", type=click.Path(path_type=Path),
              help="Output folder (default: beside MODEL, one subfolder per format).")
@click.option("--opset", default=18, show_default=True, help="ONNX opset.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def export_cmd(model: Path, formats: tuple[str, ...], out_dir: Path | None, opset: int, as_json: bool) -> None:
    """Export MODEL (a ``torch.export`` program, ``.pt2``, with float inputs) with the
    exporters the recipe's export step uses, then parity-check each file against the
    .pt2 in PyTorch (exit 1 when one disagrees beyond its format's tolerance)."""
    import torch

    from edgesmith.conf.recipe import ExportConfig
    from edgesmith.export import get_exporter
    from edgesmith.export.parity import compare

    src = resolve_model(model, "torch")
    if src.suffix.lower() != ".pt2":
        raise UserError(f"{src}: export takes a torch.export program (.pt2); save one with torch.export.save")
    program = torch.export.load(str(src))
    task, metas = pt2_task(program)
    from edgesmith.export.pt2 import with_input_names

    module = with_input_names(_Program(program.module()), task.input_names)
    example = tuple(torch.randn([d if isinstance(d, int) else 2 for d in m.shape]) for m in metas)
    config = ExportConfig(formats=list(formats), opset=opset)
    results, failed = [], []
    for fmt in formats:
        art = get_exporter(fmt)().export(module, example, task, (out_dir or src.parent / "exported") / fmt, config)
        from edgesmith.runtimes import load

        probe = tuple(torch.randn([d if isinstance(d, int) else 8 for d in m.shape]) for m in metas)
        with torch.inference_mode():
            ref = module(*probe)
        ref = (ref[0] if isinstance(ref, tuple | list) else ref).float().numpy()
        with load(art.path, art.runtime) as rt:
            out = run_all(rt, {n: t.numpy() for n, t in zip(task.input_names, probe, strict=True)})
        parity = compare(ref, out, art)
        results.append({"format": fmt, "path": str(art.path), "size_bytes": art.size_bytes, "parity": parity})
        if not parity["passed"]:
            failed.append(f"{fmt}: {parity.get('reason')}")
    if as_json:
        click.echo(json.dumps({"model": str(src), "exports": results}, indent=1, default=str))
    else:
        for r in results:
            p = r["parity"]
            click.echo(f"{r['path']}: {r['size_bytes'] / 1e3:.1f} kB, parity vs the .pt2 on 8 random inputs: "
                       f"max |diff| {p['max_abs_diff']:.3g}, cosine {p['cosine']:.6f}: "
                       + ("passed" if p["passed"] else f"FAILED ({p.get('reason')})"))
    if failed:
        raise ParityError(f"{src}: export parity failed: {'; '.join(failed)}")
