"""Post-training quantization of an exported fp32 ONNX file with onnxruntime's
tools: static int8 (QDQ, calibrated), dynamic int8 (weights int8, activations
quantized at run time) and fp16 (fp32 inputs and outputs kept).

Every result is run in onnxruntime on the calibration batch before it is kept:
NaN/inf outputs, or an SQNR against the fp32 file below ``min_sqnr_db``, stop
with one line naming the precision and the number. Named hardware targets live
in :mod:`edgesmith.compress.quantize.presets`.

Example:
    >>> cfg = QuantConfig(precision="int8", calibration="percentile")
    >>> info = quantize_onnx("model.onnx", "model.int8.onnx", cfg, batches)  # doctest: +SKIP
    >>> info["check"]["sqnr_db"], info["compute_precision"]["int8"]  # doctest: +SKIP
    (31.2, {'Conv': 2, 'Gemm': 3})
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import numpy as np

from edgesmith.compress.quantize.config import MIN_CALIBRATION_SAMPLES, QuantConfig
from edgesmith.conf.base import RecipeError
from edgesmith.errors import EdgesmithError, MissingExtraError, StageError, UserError
from edgesmith.numeric import mean_cosine, sqnr_db

__all__ = ["MIN_CALIBRATION_SAMPLES", "OnnxQuantConfig", "QuantConfig", "describe", "per_node_sqnr",
           "quantize_onnx"]

_TWO_GB = 2 * 1024**3
_ORT_MAX_IR = 13  # onnxruntime 1.31 refuses IR 14, onnx 1.23's default for a new model
_COMPUTE_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Attention", "Gather"}
_INTEGER_OPS = {"ConvInteger", "MatMulInteger", "DynamicQuantizeMatMul", "QAttention", "QGemm",
                "DynamicQuantizeLSTM", "QLinearConv", "QLinearMatMul"}
_INT4_OPS = {"GatherBlockQuantized", "MatMulNBits"}  # onnxruntime's block-quantized weight ops
_ENTROPY_BINS = 512  # 4x the 128 quantized bins; 2048 (TensorRT) costs ~1 s a tensor here
_CALIBRATORS = {"minmax": "MinMax", "percentile": "Percentile", "entropy": "Entropy"}


# The one config type (it was ONNX-only and named so); kept as an alias.
OnnxQuantConfig = QuantConfig


def quantize_onnx(
    fp32_path: str | os.PathLike,
    out_path: str | os.PathLike,
    config: QuantConfig,
    calibration: Iterable[dict[str, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Quantize ``fp32_path`` into ``out_path`` (written atomically, one file below 2 GB).

    Args:
        fp32_path: An fp32 ONNX file (external data beside it is read too).
        out_path: Where the quantized model goes.
        config: The precision and its settings.
        calibration: Batches ``{input_name: array}``; needed for static int8, and
            used by every precision for the NaN/inf and SQNR check.

    Returns:
        precision, size_bytes, fp32_size_bytes, op_histogram, quantize_linear /
        dequantize_linear counts, compute_precision (op types per int8/int4/fp16/fp32),
        float_nodes, calibration (method, samples), preprocess, check, config.
    """
    ort = _require("onnxruntime")
    onnx = _require("onnx")
    src, out = Path(fp32_path).absolute(), Path(out_path).absolute()
    if not src.is_file():
        raise UserError(f"{src}: no such ONNX file to quantize")
    start = time.perf_counter()
    batches = _take(calibration, config, _input_types(onnx.load(str(src), load_external_data=False)))
    fp32_size = sum(p.stat().st_size for p in _model_files(src))
    large = fp32_size > _TWO_GB
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}.") as tmp_dir:
        tmp = Path(tmp_dir)
        try:
            with _in_dir(tmp):  # onnxruntime's shape inference drops temp files in the cwd
                model, preprocess = _QUANTIZERS[config.precision](src, tmp, config, batches, large)
                if config.table_bits == 4:
                    model = _four_bit_tables(model, config)
        except EdgesmithError:
            raise
        except Exception as e:  # noqa: BLE001 - onnxruntime's tools raise anything
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise StageError(f"quantize: onnxruntime could not make the {config.precision} model of "
                             f"{src}: {first}") from None
        model.ir_version = min(model.ir_version, _ORT_MAX_IR)
        staged = tmp / out.name
        if large:
            onnx.save(model, str(staged), save_as_external_data=True, location=f"{out.name}.data")
        else:
            onnx.save(model, str(staged))
        check = _check(ort, src, staged, batches, config)
        if large:
            os.replace(tmp / f"{out.name}.data", out.parent / f"{out.name}.data")
        os.replace(staged, out)
    info = describe(model)
    size = sum(p.stat().st_size for p in _model_files(out))
    n = sum(len(next(iter(b.values()))) for b in batches)
    return {
        "precision": config.precision, "path": str(out), "size_bytes": size, "fp32_size_bytes": fp32_size,
        "size_ratio": round(fp32_size / size, 3), **info,
        "calibration": {"method": config.calibration, "samples": n, "batches": len(batches)}
        if config.precision == "int8" else None,
        "preprocess": preprocess, "check": check, "config": config.to_dict(),
        "seconds": round(time.perf_counter() - start, 2),
    }


def onnxruntime_defaults(fp32_path: str | os.PathLike, out_path: str | os.PathLike,
                         calibration: Iterable[dict[str, np.ndarray]], per_channel: bool = False) -> Path:
    """The peer our static presets are measured against: onnxruntime's own
    ``quantize_static`` with its defaults (QDQ, uint8 activations, int8 weights per
    tensor unless ``per_channel``, min/max ranges) after its ``quant_pre_process``,
    calibrated one sample at a time on ``calibration``. Returns ``out_path``."""
    q = _require("onnxruntime.quantization")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    samples = [{k: v[i:i + 1] for k, v in b.items()} for b in calibration for i in range(len(next(iter(b.values()))))]

    class Reader(q.CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(samples)

        def get_next(self) -> dict | None:
            return next(self.it, None)

    src, out = Path(fp32_path).absolute(), Path(out_path).absolute()
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        pre = Path(tmp) / "pre.onnx"
        with _in_dir(Path(tmp)), _quiet():
            quant_pre_process(str(src), str(pre))
            q.quantize_static(str(pre), str(out), Reader(), per_channel=per_channel)
    return out


def describe(model: Any) -> dict[str, Any]:
    """Op histogram, Q/DQ counts and the precision each compute node runs in."""
    from onnx import TensorProto

    ops = Counter(n.op_type for n in model.graph.node)
    inits = {t.name: t.data_type for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    low = {TensorProto.INT8, TensorProto.UINT8, TensorProto.INT4, TensorProto.UINT4, TensorProto.INT16}
    kinds: dict[str, Counter] = {"int8": Counter(), "int4": Counter(), "fp16": Counter(), "fp32": Counter()}
    float_nodes: list[str] = []
    half = any(t == TensorProto.FLOAT16 for t in inits.values())
    types = _tensor_types(model) if half else {}  # activations' dtypes, for act x act MatMuls

    def dtype(name: str) -> str:
        seen = 0
        while name not in inits and name in producer and seen < 4:  # through Transpose/Reshape
            p = producer[name]
            if p.op_type in ("DequantizeLinear", "DynamicQuantizeLinear"):
                return "int8"
            if p.op_type not in ("Transpose", "Reshape", "Squeeze", "Unsqueeze"):
                break
            name, seen = p.input[0], seen + 1
        t = inits.get(name, types.get(name))
        return "int8" if t in low else "fp16" if t == TensorProto.FLOAT16 else "fp32"

    for node in model.graph.node:
        if node.op_type in _INTEGER_OPS or node.op_type in _INT4_OPS:
            kinds["int8" if node.op_type in _INTEGER_OPS else "int4"][node.op_type] += 1
            continue
        if node.op_type not in _COMPUTE_OPS:
            continue
        if node.op_type == "Gather":
            if node.input[0] not in inits and not (
                    node.input[0] in producer and producer[node.input[0]].op_type == "DequantizeLinear"):
                continue  # a shape gather, not an embedding table
            kind = dtype(node.input[0])
        else:
            kinds_in = {dtype(i) for i in node.input[:2]}
            kind = "int8" if kinds_in == {"int8"} else "fp16" if "fp16" in kinds_in else "fp32"
        kinds[kind][node.op_type] += 1
        if kind == "fp32":
            float_nodes.append(node.name)
    return {
        "op_histogram": dict(ops.most_common()),
        "quantize_linear": ops["QuantizeLinear"] + ops["DynamicQuantizeLinear"],
        "dequantize_linear": ops["DequantizeLinear"],
        "compute_precision": {k: dict(v) for k, v in kinds.items() if v},
        "float_nodes": float_nodes,
    }


# ---------------------------------------------------------------- per precision

def _static(src: Path, tmp: Path, config: QuantConfig, batches: list[dict], large: bool):
    import onnx
    from onnxruntime import quantization as q

    if not batches:
        raise StageError(
            f"quantize: static int8 needs calibration data ({config.calibration_samples or 'all'} samples from "
            "the recipe's calibration split); pass calibration batches or use precision int8-dynamic")
    pre, how = _preprocess(src, tmp, large, symbolic=True)
    _drop_weight_shapes(pre)
    exclude = _excluded(onnx.load(str(pre), load_external_data=False).graph, config)
    op_types = _check_op_types(config, q.registry.QDQRegistry)
    cache = _calibrate(pre, tmp, config, op_types, batches, large)
    with _quiet():
        q.quantize_static(
            str(pre), str(tmp / "q.onnx"), None, calibration_cache_path=str(cache),
            quant_format=q.QuantFormat.QDQ,
            op_types_to_quantize=op_types, per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            activation_type=q.QuantType.QInt8 if config.symmetric_activations else q.QuantType.QUInt8,
            weight_type=q.QuantType.QInt8 if config.symmetric_weights else q.QuantType.QUInt8,
            nodes_to_exclude=exclude, use_external_data_format=large,
            calibrate_method=getattr(q.CalibrationMethod, _CALIBRATORS[config.calibration]),
            extra_options={"WeightSymmetric": config.symmetric_weights,
                           "ActivationSymmetric": config.symmetric_activations,
                           "OpTypesToExcludeOutputQuantization": list(config.float_op_outputs)},
        )
    model = onnx.load(str(tmp / "q.onnx"))
    if config.float_outputs:
        _float_outputs(model)
    return model, how


def _float_outputs(model: Any) -> None:
    """Remove the QuantizeLinear -> DequantizeLinear pair that ends on each graph
    output (and its now unused scale and zero point): the producer writes the output."""
    graph = model.graph
    producer = {o: n for n in graph.node for o in n.output}
    dropped: list[Any] = []
    for out in graph.output:
        dq = producer.get(out.name)
        q = producer.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
        src = producer.get(q.input[0]) if q is not None and q.op_type == "QuantizeLinear" else None
        if src is None or src.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        src.output[list(src.output).index(q.input[0])] = out.name
        dropped += [q, dq]
    for node in dropped:
        graph.node.remove(node)
    used = {i for n in graph.node for i in n.input}
    stale = [t for t in graph.initializer if t.name not in used]
    for t in stale:
        graph.initializer.remove(t)


def _calibrate(pre: Path, tmp: Path, config: QuantConfig, op_types: list[str] | None,
               batches: list[dict], large: bool) -> Path:
    """Activation ranges, written as onnxruntime's calibration cache.

    Run here rather than inside ``quantize_static``, which passes no histogram
    size to the entropy calibrator: its default of 128 bins for 128 quantized
    bins leaves KL a single candidate threshold, the min/max one (measured: the
    same scales as min/max to the last bit). Entropy uses 512 bins here.
    """
    from onnxruntime.quantization import calibrate as c

    method = getattr(c.CalibrationMethod, _CALIBRATORS[config.calibration])
    options: dict[str, Any] = {"symmetric": config.symmetric_activations}
    if config.calibration == "percentile":
        options.update(num_bins=2048, percentile=config.percentile)
    elif config.calibration == "entropy":
        options.update(num_bins=_ENTROPY_BINS, num_quantized_bins=128)
    with _quiet():
        calibrator = c.create_calibrator(pre, op_types, augmented_model_path=str(tmp / "augmented.onnx"),
                                         calibrate_method=method, use_external_data_format=large,
                                         extra_options=options)
        calibrator.collect_data(_Reader(batches))
        ranges = calibrator.compute_data()
    if config.calibration != "minmax":
        _full_range_outputs(pre, ranges, batches, config.symmetric_activations)
    c.save_tensors_data(ranges, tmp / "calibration.json")
    return tmp / "calibration.json"


def _full_range_outputs(pre: Path, ranges: Any, batches: list[dict], symmetric: bool) -> None:
    """Give the graph outputs their min/max range: clipping logits or embeddings
    changes the answer (digits logits: max diff 6.6 with KL ranges) rather than
    trading a little noise for resolution as it does inside the network."""
    import onnxruntime as ort
    from onnxruntime.quantization.calibrate import TensorData

    sess = ort.InferenceSession(str(pre), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs() if o.name in ranges]
    lo, hi = {n: 0.0 for n in names}, {n: 0.0 for n in names}  # ranges always include zero
    for b in batches:
        for n, v in zip(names, sess.run(names, b), strict=True):
            lo[n], hi[n] = min(lo[n], float(np.min(v))), max(hi[n], float(np.max(v)))
    for n in names:
        if symmetric:
            lo[n], hi[n] = -max(-lo[n], hi[n]), max(-lo[n], hi[n])
        ranges[n] = TensorData(lowest=np.array(lo[n], np.float32), highest=np.array(hi[n], np.float32))


def _dynamic(src: Path, tmp: Path, config: QuantConfig, batches: list[dict], large: bool):
    import onnx
    from onnxruntime import quantization as q

    pre, how = _preprocess(src, tmp, large, symbolic=False)
    _drop_weight_shapes(pre)
    graph = onnx.load(str(pre), load_external_data=False).graph
    # The dynamic pass first rewrites each Gemm into MatMul ("<name>_MatMul") + Add.
    exclude = _excluded(graph, config)
    gemms = {n.name for n in graph.node if n.op_type == "Gemm"}
    exclude += [f"{n}_MatMul" for n in exclude if n in gemms]
    op_types = _check_op_types(config, {*q.registry.IntegerOpsRegistry, "Gemm"})
    if op_types and "Gemm" in op_types:
        op_types = sorted({*op_types, "MatMul"} - {"Gemm"})
    with _quiet():
        q.quantize_dynamic(
            str(pre), str(tmp / "q.onnx"), op_types_to_quantize=op_types, per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            weight_type=q.QuantType.QInt8 if config.symmetric_weights else q.QuantType.QUInt8,
            nodes_to_exclude=exclude, use_external_data_format=large,
            extra_options={"WeightSymmetric": config.symmetric_weights, "MatMulConstBOnly": True},
        )
    return onnx.load(str(tmp / "q.onnx")), how


def _fp16(src: Path, tmp: Path, config: QuantConfig, batches: list[dict], large: bool):
    import onnx

    try:
        from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
    except ImportError:
        raise MissingExtraError("onnxruntime", "core", "ONNX fp16 conversion") from None
    model = onnx.load(str(src))
    exclude = _excluded(model.graph, config)
    block = list(DEFAULT_OP_BLOCK_LIST)
    if config.op_types is not None:
        present = {n.op_type for n in model.graph.node}
        missing = [t for t in config.op_types if t not in present]
        if missing:
            raise RecipeError("op_types", f"{missing[0]!r} is not an op of {src.name}; it has "
                              f"{', '.join(sorted(present))}")
        block += sorted(present - set(config.op_types))
    with _quiet():
        half = convert_float_to_float16(model, keep_io_types=True, op_block_list=block,
                                        node_block_list=exclude or None, disable_shape_infer=large)
    return half, None


_QUANTIZERS: dict[str, Callable[..., tuple[Any, str | None]]] = {
    "int8": _static, "int8-dynamic": _dynamic, "fp16": _fp16,
}


# ---------------------------------------------------------------- helpers

class _Reader:
    """onnxruntime's ``CalibrationDataReader`` protocol over a list of batches."""

    def __init__(self, batches: list[dict[str, np.ndarray]]):
        self.batches = batches
        self.rewind()

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = iter(self.batches)


def _take(calibration: Iterable[dict[str, np.ndarray]] | None, config: QuantConfig,
          inputs: dict[str, np.dtype]) -> list[dict[str, np.ndarray]]:
    """Up to ``config.calibration_samples`` samples (None: all), cast to the model's input dtypes."""
    if calibration is None:
        return []
    limit = config.calibration_samples
    out, n = [], 0
    for i, batch in enumerate(calibration):
        if not isinstance(batch, dict) or set(batch) != set(inputs):
            got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
            raise StageError(f"quantize: calibration batch {i} has inputs {got}; the model takes {sorted(inputs)}")
        take = None if limit is None else limit - n
        arrays = {k: np.ascontiguousarray(np.asarray(batch[k])[:take], dtype=inputs[k]) for k in inputs}
        size = len(next(iter(arrays.values())))
        if size:
            out.append(arrays)
            n += size
        if limit is not None and n >= limit:
            break
    if 0 < n < MIN_CALIBRATION_SAMPLES:
        raise StageError(
            f"quantize: {n} calibration samples is too few for {config.precision} (need at least "
            f"{MIN_CALIBRATION_SAMPLES}, {config.calibration_samples or 'all'} asked); enlarge data.splits.calibration")
    return out


def _input_types(model: Any) -> dict[str, np.dtype]:
    from onnx.helper import tensor_dtype_to_np_dtype

    inits = {t.name for t in model.graph.initializer}
    return {i.name: tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type)
            for i in model.graph.input if i.name not in inits}


def _model_files(path: Path) -> list[Path]:
    """The ``.onnx`` file and the external data files its tensors name."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    names = {e.value for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
             for e in t.external_data if e.key == "location"}
    return [path, *sorted(path.parent / n for n in names)]


def _preprocess(src: Path, tmp: Path, large: bool, symbolic: bool) -> tuple[Path, str]:
    """onnxruntime's ``quant_pre_process``: shape inference and graph optimisation.

    Symbolic shape inference (``symbolic``) fails on dynamo exports of
    transformers ("Incomplete symbolic shape inference", 4 s lost on MiniLM);
    ONNX shape inference alone is then used. Dynamic int8 never needs it.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    pre = tmp / "pre.onnx"
    kw = {"skip_optimization": large, "save_as_external_data": large, "all_tensors_to_one_file": True}
    with _quiet():
        if symbolic:
            try:
                quant_pre_process(str(src), str(pre), **kw)
                return pre, "symbolic-shapes+optimize"
            except Exception:  # noqa: BLE001 - the symbolic shape pass raises bare Exception
                pass
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True, **kw)
    return pre, "onnx-shapes+optimize"


def _drop_weight_shapes(pre: Path) -> None:
    """Remove ``value_info`` entries that name initializers (torch's exporter writes
    them): the dynamic pass transposes Gemm weights in place, and the stale
    shape then fails its shape inference ("existing shape differ: (32) vs (5)")."""
    import onnx

    model = onnx.load(str(pre), load_external_data=False)
    inits = {t.name for t in model.graph.initializer}
    keep = [v for v in model.graph.value_info if v.name not in inits]
    if len(keep) < len(model.graph.value_info):
        del model.graph.value_info[:]
        model.graph.value_info.extend(keep)
        onnx.save(model, str(pre))


def _excluded(graph: Any, config: QuantConfig) -> list[str]:
    """Names of the nodes the main pass leaves alone: ``exclude_nodes``, every node that
    ``include_nodes`` (when given) does not match, and with ``table_bits`` 4 the large tables,
    which :func:`_four_bit_tables` quantizes after it."""
    exclude = _match_nodes(graph, config.exclude_nodes)
    if config.include_nodes is not None:
        chosen = set(_match_nodes(graph, config.include_nodes, "include_nodes"))
        exclude += [n.name for n in graph.node if n.name and n.name not in chosen and n.name not in exclude]
    if config.table_bits == 4:
        exclude += [n for n in _big_tables(graph) if n not in exclude]
    return exclude


def _match_nodes(graph: Any, patterns: list[str], key: str = "exclude_nodes") -> list[str]:
    names = [n.name for n in graph.node]
    matched: list[str] = []
    for pat in patterns:
        hits = [n for n in names if fnmatchcase(n, pat)]
        if not hits:
            compute = [n.name for n in graph.node if n.op_type in _COMPUTE_OPS] or names
            raise RecipeError(key, f"{pat!r} matches no node of the graph; nodes include "
                              f"{', '.join(compute[:5])}{', ...' if len(compute) > 5 else ''}")
        matched += [n for n in hits if n not in matched]
    return matched


def _check_op_types(config: QuantConfig, registry: Iterable[str]) -> list[str] | None:
    """The op types the int8 pass quantizes (None: onnxruntime's default set)."""
    registry = set(registry)
    if config.op_types is None:
        return None
    bad = [t for t in config.op_types if t not in registry]
    if bad:
        raise RecipeError("op_types", f"onnxruntime cannot quantize {bad[0]!r} in {config.precision}; "
                          f"choose from {', '.join(sorted(registry))}")
    return list(config.op_types)


# A table of fewer rows stays in the int8 pass with table_bits 4: a BERT's position (512) and
# token-type (2) tables are added to every token, so their 4-bit noise reaches every output for a
# few hundred kB saved (the MiniLM student of a short run, simulated 4-bit per table, cosine to
# fp32: token table 0.9958, position 0.9967, type 0.9873; all three in ONNX 0.983, token table only 0.996)
FOUR_BIT_MIN_ROWS = 1024


def _big_tables(graph: Any) -> list[str]:
    """The Gather nodes (axis 0) of a constant float table of at least ``FOUR_BIT_MIN_ROWS`` rows."""
    from onnx import TensorProto

    rows = {t.name: t.dims[0] for t in graph.initializer if t.data_type == TensorProto.FLOAT and len(t.dims) == 2}
    return [n.name for n in graph.node if n.op_type == "Gather" and rows.get(n.input[0], 0) >= FOUR_BIT_MIN_ROWS
            and all(a.i == 0 for a in n.attribute if a.name == "axis")]


def _four_bit_tables(model: Any, config: QuantConfig) -> Any:
    """Every large embedding table (a Gather on axis 0 of a constant float table of at least
    ``FOUR_BIT_MIN_ROWS`` rows, which the int8 pass left alone) as onnxruntime's
    GatherBlockQuantized: 4-bit symmetric blocks of ``config.table_block`` values along the
    embedding, one fp32 scale a block. Fails in one line when the graph has no such table."""
    from onnxruntime.quantization import QuantFormat
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    tables = _big_tables(model.graph)
    if not tables:
        raise RecipeError("table_bits", f"is 4, but the model has no embedding table of {FOUR_BIT_MIN_ROWS} rows or "
                                        "more (a Gather of a constant float table): set it to 8")
    cfg = DefaultWeightOnlyQuantConfig(block_size=config.table_block, is_symmetric=True, accuracy_level=None,
                                       quant_format=QuantFormat.QOperator, op_types_to_quantize=("Gather",),
                                       quant_axes=(("Gather", 1),))
    with _quiet():
        quantizer = MatMulNBitsQuantizer(model, algo_config=cfg, nodes_to_exclude=[
            n.name for n in model.graph.node if n.op_type == "Gather" and n.name not in tables])
        quantizer.process()
    return quantizer.model.model


def _check(ort: Any, src: Path, staged: Path, batches: list[dict], config: QuantConfig) -> dict | None:
    """Run the fp32 and quantized files on up to 64 calibration samples.

    The quantized file runs twice: with onnxruntime's CPU kernels (fused int8
    ops, what an onnxruntime user gets) and with graph optimisations off, where
    Q/DQ pairs are evaluated in float (the reference a TensorRT-like backend
    approximates). ``config.check_on`` picks which one the SQNR floor applies to.
    """
    def session(path: Path, optimize: bool) -> Any:
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if not optimize:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    try:
        kernels = session(staged, True)
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own error kinds
        raise StageError(f"quantize: the {config.precision} model does not load in onnxruntime: "
                         f"{str(e).strip().splitlines()[0]}") from None
    if not batches:
        return None
    sessions = {"fp32": session(src, True), "onnxruntime": kernels, "qdq-reference": session(staged, False)}
    outs: dict[str, list[np.ndarray]] = {k: [] for k in sessions}
    for b in _first(batches, 64):
        for k, sess in sessions.items():
            outs[k].append(np.asarray(sess.run(None, b)[0], np.float64))
    ref, kernel, emulated = (np.concatenate(outs[k]) for k in sessions)
    got = kernel if config.check_on == "onnxruntime" else emulated
    if not np.isfinite(got).all():
        raise StageError(f"quantize: the {config.precision} model outputs NaN/inf on the calibration "
                         "batch; keep the offending nodes in float (exclude_nodes) or use fp16")
    result = {"sqnr_db": round(sqnr_db(ref, kernel), 2), "reference_sqnr_db": round(sqnr_db(ref, emulated), 2),
              "cosine": mean_cosine(ref, got), "max_abs_diff": float(np.abs(ref - got).max()),
              "samples": int(len(ref)), "gated_on": config.check_on, "warnings": []}
    lost = result["reference_sqnr_db"] - result["sqnr_db"]
    if config.precision != "fp16" and lost > 6 and not config.reduce_range:
        result["warnings"].append(
            f"onnxruntime's int8 kernels on this CPU lose {lost:.1f} dB against the QDQ reference "
            "(u8 x s8 products saturate in int16 without VNNI); set reduce_range: true")
    sqnr = result["sqnr_db"] if config.check_on == "onnxruntime" else result["reference_sqnr_db"]
    if config.min_sqnr_db is not None and sqnr < config.min_sqnr_db:
        hint = result["warnings"][0] if result["warnings"] else (
            "keep sensitive nodes in float (exclude_nodes), try another calibration, or a float precision")
        raise StageError(f"quantize: {config.precision} output SQNR {sqnr:.1f} dB vs fp32 ({config.check_on}) "
                         f"is below the {config.min_sqnr_db:g} dB floor; {hint}")
    return result


def _first(batches: list[dict[str, np.ndarray]], samples: int) -> list[dict[str, np.ndarray]]:
    out, n = [], 0
    for b in batches:
        out.append({k: v[: samples - n] for k, v in b.items()})
        n += len(out[-1][next(iter(b))])
        if n >= samples:
            break
    return out



def per_node_sqnr(fp32_path: str | os.PathLike, q_path: str | os.PathLike,
                  feed: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """SQNR (dB) of each compute node's output (Conv, Gemm, MatMul, ...) against
    fp32, in graph order: where along the graph the quantization error grows.

    A node is matched by its output tensor's name, else by its node name (the
    QDQ pass keeps node names, the dynamic pass keeps tensor names). Both graphs
    run with optimisations off, so int8 is the Q/DQ math evaluated in float;
    kernel effects (saturation) show in :func:`quantize_onnx`'s check instead.

    Returns:
        ``[{"node", "op_type", "tensor", "sqnr_db"}]``.
    """
    onnx = _require("onnx")
    ort = _require("onnxruntime")
    ref_model, q_model = onnx.load(str(fp32_path)), onnx.load(str(q_path))
    ref_types, q_types = _tensor_types(ref_model), _tensor_types(q_model)
    q_made = {o for n in q_model.graph.node for o in n.output}
    q_by_name = {n.name: n.output[0] for n in q_model.graph.node}
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    pairs = []  # (fp32 tensor, quantized tensor, fp32 node)
    for n in ref_model.graph.node:
        if n.op_type not in _COMPUTE_OPS - {"Gather"}:
            continue
        q_out = n.output[0] if n.output[0] in q_made else q_by_name.get(n.name)
        if q_out and ref_types.get(n.output[0]) in floats and q_types.get(q_out) in floats:
            pairs.append((n.output[0], q_out, n))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    results = []
    for model, types, names in ((ref_model, ref_types, [p[0] for p in pairs]),
                                (q_model, q_types, [p[1] for p in pairs])):
        known = {o.name for o in model.graph.output}
        model.graph.output.extend(onnx.helper.make_tensor_value_info(t, types[t], None)
                                  for t in dict.fromkeys(names) if t not in known)
        sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        results.append(dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed), strict=True)))
    ref, out = results
    return [{"node": n.name, "op_type": n.op_type, "tensor": r, "sqnr_db": round(sqnr_db(ref[r], out[q]), 2)}
            for r, q, n in pairs]


def _tensor_types(model: Any) -> dict[str, int]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - contrib ops can stop inference; use what is declared
        inferred = model
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.value_info, *g.output, *g.input]}
    types.update({t.name: t.data_type for t in g.initializer})
    return types


@contextlib.contextmanager
def _in_dir(path: Path):
    """Run with ``path`` as the working directory (contextlib.chdir is 3.11+)."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


@contextlib.contextmanager
def _quiet():
    """Silence onnxruntime.quantization's prints and logging warnings."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(module, "core", "ONNX quantization") from None
