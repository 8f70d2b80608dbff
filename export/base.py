"""What every exporter returns and declares."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

# At most this many calibration samples reach an int8 exporter (pipeline.steps.export_model).
CALIBRATION_SAMPLES = 64


@dataclass
class Tolerance:
    """Parity passes when ``max_abs_diff <= atol`` and ``cosine >= min_cosine``."""

    atol: float
    min_cosine: float

    def to_dict(self) -> dict[str, float]:
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

    name: ClassVar[str]
    suffix: ClassVar[str]
    runtime: ClassVar[str]
    tolerances: ClassVar[dict[str, Tolerance]]

    def export(self, model, example_inputs: tuple, task, out_dir: Path, config) -> ExportArtifact:
        raise NotImplementedError
