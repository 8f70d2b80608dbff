"""The algorithm / backend split of quantization (NNCF's model): a
:class:`~edgesmith.compress.quantize.config.QuantConfig` says *what* to quantize,
a registered :class:`QuantBackend` knows *how* on one toolchain. Every backend has
a name, the precisions it makes, what it takes (an ONNX file or a PyTorch graph),
a :meth:`~QuantBackend.check` that refuses the config fields it cannot honour,
and one entry point, :meth:`~QuantBackend.quantize`.

==============  ==========================  =====================================
backend         takes                       makes
==============  ==========================  =====================================
``onnxruntime``  fp32 ONNX file             static QDQ / dynamic int8, fp16 (:mod:`.ort`)
``tensorrt``     fp32 ONNX file             symmetric QDQ int8 for TensorRT (:mod:`.ort`)
``pt2e``         ``torch.export`` graph     XNNPACK int8 / dynamic int8 (:mod:`.pt2e`)
``litert``       PyTorch module             litert-torch fp16 / dynamic-int8 ``.tflite``
==============  ==========================  =====================================

Adding a backend is one subclass registered by name; nothing else changes::

    @register_backend
    class MyBackend(QuantBackend):
        name, takes, precisions = "mine", "onnx", ("int8",)

        def quantize(self, model, config, calibration=None, **options):
            ...

Importing this module is lean: each backend imports its toolchain when it runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from edgesmith.conf.base import RecipeError
from edgesmith.registry import Registry

if TYPE_CHECKING:
    from edgesmith.compress.quantize.config import QuantConfig

__all__ = ["BACKENDS", "QuantBackend", "get_backend", "quantize", "register_backend"]


class QuantBackend:
    """One quantization toolchain, written against :class:`QuantConfig`.

    Attributes:
        name: The name configs give as ``backend``.
        takes: ``onnx`` (a file path) or ``torch`` (a module or ``torch.export`` graph).
        precisions: The ``QuantConfig.precision`` values it makes.
        only: Config fields it honours at one value only (``field -> value``).
    """

    name: ClassVar[str]
    takes: ClassVar[str]
    precisions: ClassVar[tuple[str, ...]]
    only: ClassVar[dict[str, Any]] = {}

    def check(self, config: QuantConfig) -> None:
        """Refuse ``config`` with one RecipeError naming the field this backend cannot honour."""
        if config.precision not in self.precisions:
            raise RecipeError("precision", f"the {self.name} backend makes {', '.join(self.precisions)}, "
                                           f"not {config.precision}")
        for key, value in self.only.items():
            if getattr(config, key) != value:
                raise RecipeError(key, f"the {self.name} backend supports {value!r} only, "
                                       f"got {getattr(config, key)!r}")

    def quantize(self, model: Any, config: QuantConfig, calibration: Iterable | None = None,
                 **options: Any) -> Any:
        """Quantize ``model`` as ``config`` says, calibrated on ``calibration``; returns the artifact."""
        raise NotImplementedError

    def describe(self, config: QuantConfig, **options: Any) -> dict[str, Any]:
        """What a manifest records: the backend, the scheme in words and the full config."""
        return {"backend": self.name, "scheme": config.scheme(), "config": config.to_dict()}


BACKENDS: Registry[type[QuantBackend]] = Registry("quantization backend")


def register_backend(cls: type[QuantBackend]) -> type[QuantBackend]:
    """Class decorator: register ``cls`` under ``cls.name``."""
    return BACKENDS.register(cls.name)(cls)


def get_backend(name: str) -> QuantBackend:
    """The registered backend ``name``; an unknown name is one line listing the known ones."""
    return BACKENDS.get(name)()


def quantize(model: Any, config: QuantConfig, calibration: Iterable | None = None, **options: Any) -> Any:
    """Quantize ``model`` with ``config.backend`` (the one verb: dispatch on the config).

    Example:
        >>> from edgesmith.compress.quantize import preset
        >>> quantize("model.onnx", preset("x86"), batches, out="model.int8.onnx")  # doctest: +SKIP
    """
    return get_backend(config.backend).quantize(model, config, calibration, **options)


# ---------------------------------------------------------------- the built-in backends

@register_backend
class OnnxRuntimeBackend(QuantBackend):
    """onnxruntime's quantization tools on an fp32 ONNX file (:func:`.ort.quantize_onnx`):
    ``quantize(fp32_path, config, batches, out=path)`` returns its report."""

    name, takes, precisions = "onnxruntime", "onnx", ("int8", "int8-dynamic", "fp16")

    def check(self, config: QuantConfig) -> None:
        super().check(config)
        if config.precision == "int8" and config.calibration == "histogram":
            raise RecipeError("calibration", f"the {self.name} backend calibrates with minmax, percentile or "
                                             "entropy, not histogram")

    def quantize(self, model: Any, config: QuantConfig, calibration: Iterable | None = None, *,
                 out: Any, **options: Any) -> dict[str, Any]:
        """Quantize the ONNX file ``model`` into ``out`` (see :func:`.ort.quantize_onnx`)."""
        from edgesmith.compress.quantize.ort import quantize_onnx

        return quantize_onnx(model, out, config, calibration, **options)


@register_backend
class TensorRTBackend(OnnxRuntimeBackend):
    """Explicit-quantization QDQ ONNX for TensorRT, made by onnxruntime's tools: int8
    with symmetric weights and activations (TensorRT takes zero points of 0 only)."""

    name, precisions = "tensorrt", ("int8",)
    only: ClassVar[dict[str, Any]] = {"symmetric_weights": True, "symmetric_activations": True}


@register_backend
class Pt2eBackend(QuantBackend):
    """PT2E quantization of a ``torch.export`` graph with an XNNPACK quantizer
    (ExecuTorch's ``XNNPACKQuantizer``, or litert-torch's ``PT2EQuantizer`` for TFLite):
    per-channel or per-tensor symmetric int8 weights, int8 affine activations observed
    with PyTorch's ``HistogramObserver`` (static) or quantized per batch (dynamic)."""

    name, takes, precisions = "pt2e", "torch", ("int8", "int8-dynamic")
    only: ClassVar[dict[str, Any]] = {
        "symmetric_weights": True, "symmetric_activations": False, "reduce_range": False, "op_types": None,
        "exclude_nodes": [], "include_nodes": None, "min_sqnr_db": None, "float_outputs": False,
        "float_op_outputs": [],
    }
    # quantizer flavour -> (module, quantizer class, its name in manifests)
    _QUANTIZERS: ClassVar[dict[str, tuple[str, str, str]]] = {
        "xnnpack": ("executorch.backends.xnnpack.quantizer.xnnpack_quantizer", "XNNPACKQuantizer",
                    "XNNPACKQuantizer"),
        "litert": ("litert_torch.quantize.pt2e_quantizer", "PT2EQuantizer", "litert-torch PT2EQuantizer"),
    }

    def check(self, config: QuantConfig) -> None:
        super().check(config)
        if config.precision == "int8" and config.calibration != "histogram":
            raise RecipeError("calibration", f"the {self.name} backend's XNNPACK quantizers observe activations "
                                             f"with histogram, not {config.calibration}")

    def qconfig(self, config: QuantConfig, flavour: str = "xnnpack", qat: bool = False) -> Any:
        """The quantizer's per-layer spec that ``config`` describes (``qat``: with fake
        quantization for training, as :mod:`.qat` uses it on chosen layers)."""
        import importlib

        m = importlib.import_module(self._QUANTIZERS[flavour][0])
        spec: dict[str, Any] = {"is_per_channel": config.per_channel}
        if config.precision == "int8-dynamic":
            spec["is_dynamic"] = True
        if qat:
            spec["is_qat"] = True
        return m.get_symmetric_quantization_config(**spec)

    def quantizer(self, config: QuantConfig, flavour: str = "xnnpack") -> Any:
        """The PT2E quantizer of ``flavour`` (``xnnpack`` or ``litert``) with :meth:`qconfig`
        on every layer."""
        import importlib

        module, cls, _ = self._QUANTIZERS[flavour]
        return getattr(importlib.import_module(module), cls)().set_global(self.qconfig(config, flavour))

    def quantize(self, model: Any, config: QuantConfig, calibration: Iterable | None = None, *,
                 quantizer: Any = "xnnpack", **options: Any) -> Any:
        """Annotate, calibrate and convert the graph module ``model`` (see :func:`.pt2e.quantize_pt2e`;
        ``options``: ``fit``, ``fold_quantize``). ``quantizer``: a flavour name or a quantizer
        made by :meth:`quantizer`. Returns the quantized graph module."""
        from edgesmith.compress.quantize.pt2e import quantize_pt2e

        if isinstance(quantizer, str):
            quantizer = self.quantizer(config, quantizer)
        return quantize_pt2e(model, quantizer, list(calibration or []), **options)

    def describe(self, config: QuantConfig, flavour: str = "xnnpack", **options: Any) -> dict[str, Any]:
        """The base record plus the quantizer's name."""
        return {**super().describe(config), "quantizer": self._QUANTIZERS[flavour][2]}


@register_backend
class LitertBackend(QuantBackend):
    """litert-torch's quantization recipes (ai-edge-quantizer), applied while converting a
    PyTorch module to ``.tflite``: fp16 weights, or dynamic-range int8 with per-channel
    weights. ``quantize(module, config, sample=kwargs)`` returns litert-torch's edge model."""

    name, takes, precisions = "litert", "torch", ("fp16", "int8-dynamic")
    only: ClassVar[dict[str, Any]] = {
        "per_channel": True, "symmetric_weights": True, "reduce_range": False, "op_types": None,
        "exclude_nodes": [], "include_nodes": None, "min_sqnr_db": None,
    }

    def recipe(self, config: QuantConfig) -> Any:
        """litert-torch's ``QuantConfig`` for ``config``."""
        from litert_torch.generative.quantize import quant_recipes

        return {"fp16": quant_recipes.full_fp16_recipe,
                "int8-dynamic": quant_recipes.full_dynamic_recipe}[config.precision]()

    def quantize(self, model: Any, config: QuantConfig, calibration: Iterable | None = None, *,
                 sample: dict[str, Any], **options: Any) -> Any:
        """Convert ``model`` at the keyword ``sample`` with ``config``'s recipe (no calibration)."""
        import litert_torch

        return litert_torch.convert(model, sample_kwargs=sample, enable_x64=True, quant_config=self.recipe(config))

    def describe(self, config: QuantConfig, **options: Any) -> dict[str, Any]:
        """The base record plus the quantizer's name."""
        return {**super().describe(config), "quantizer": "litert-torch recipe (ai-edge-quantizer)"}
