"""What every exporter returns and declares."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar


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


class Exporter:
    name: ClassVar[str]
    suffix: ClassVar[str]
    runtime: ClassVar[str]
    tolerances: ClassVar[dict[str, Tolerance]]

    def export(self, model, example_inputs: tuple, task, out_dir: Path, config) -> ExportArtifact:
        raise NotImplementedError
