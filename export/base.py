"""What every exporter returns and declares."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

# At most this many calibration samples reach an int8 exporter (pipeline.steps.export_model).
CALIBRATION_SAMPLES = 64


@dataclass
class Tolerance:
    """Parity passes when ``max_abs_diff <= atol`` and ``cosine >= min_cosine`` and, for
    classifiers (outputs with more than one class; top-5 with more than five), the file's
    top-1 agrees with the reference on at least ``min_agreement`` of the samples and the
    reference's top-1 is among the file's five highest on at least ``min_top5`` (None:
    not judged). The agreement floors come from the recipe (``export.parity``)."""

    atol: float
    min_cosine: float
    min_agreement: float | None = None
    min_top5: float | None = None

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


@dataclass
class ExportArtifact:
    format: str
    precision: str
    path: Path
    runtime: str
    tolerance: Tolerance
    files: list[Path] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in (self.files or [self.path]))


# Parity tolerance tiers vs the PyTorch model (edgesmith.export.parity), shared by every
# exporter and the quantize stage. For int8 the cosine is the gate; atol is a coarse net
# sized for classifier logits (|logit| up to ~30), vacuous for unit-norm embeddings.
# Measured on this CPU: digits CNNs, static int8 (x86 preset): max diff 1.1-2.5, cosine
# >= 0.9998 (0.993-0.995 when u8 x s8 saturation is left on); dynamic int8: 0.4-1.6,
# 0.9999. MiniLM dynamic int8 on 128-256 fortunes: max diff 0.03-0.04, cosine
# 0.995-0.996 (2- and 3-layer students), 0.991 (the 6-layer teacher, min 0.975).
# fp16: max diff 5e-3-8e-3 on logits, 3e-4 on embeddings, cosine 1 - 1e-7.
# The same digits-quick int8 file on an AVX-512 VNNI/AMX CPU (other int8 kernels):
# max diff 4.06 with cosine 0.99975 and 100% top-1 agreement, hence atol 8.
TIERS: dict[str, Tolerance] = {
    "fp32": Tolerance(atol=1e-4, min_cosine=0.99999),
    "fp16": Tolerance(atol=2e-2, min_cosine=0.9999),
    "int8": Tolerance(atol=8.0, min_cosine=0.99),
    "int8-dynamic": Tolerance(atol=8.0, min_cosine=0.99),
}


def tiers(*precisions: str) -> dict[str, Tolerance]:
    """The shared tolerance of each precision an exporter takes (``fp32`` always)."""
    return {p: TIERS[p] for p in ("fp32", *precisions)}


def precision_of(config: Any, fmt: str) -> str:
    """The precision ``config`` asks of format ``fmt``: its ``precision`` map's entry
    (``ExportConfig.precision``), a plain string for every format, or ``fp32``."""
    precision = getattr(config, "precision", None) or "fp32"
    return precision if isinstance(precision, str) else precision.get(fmt, "fp32")


class Exporter:
    """One format. ``tolerances`` lists the precisions it exports (fp32 always).

    An exporter with an ``int8`` precision also takes ``calibration=``: an iterable
    of input tuples (prepared like ``example_inputs``, any batch size) to observe
    activation ranges on; without it, int8 raises a one-line ExportError.
    """

    # ``name`` is the format's; the rest is set from its descriptor (edgesmith.export.formats)
    name: ClassVar[str]
    suffix: ClassVar[str]
    runtime: ClassVar[str]
    tolerances: ClassVar[dict[str, Tolerance]]

    def __init__(self) -> None:
        from edgesmith.export.formats import get_exporter

        get_exporter(self.name)  # the descriptor's facts on the class, also when instantiated directly

    def export(self, model, example_inputs: tuple, task, out_dir: Path, config) -> ExportArtifact:
        raise NotImplementedError
