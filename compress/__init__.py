"""Compression techniques, one module each, every one a plain ``model -> model``
function with its config that also registers its recipe stage
(:mod:`edgesmith.compress.stage`):

- :mod:`~edgesmith.compress.distill` (``distill``, ``DistillConfig``)
- :mod:`~edgesmith.compress.prune` (``prune``, ``PruneConfig``)
- :mod:`~edgesmith.compress.lowrank` (``factorize``, ``LowRankConfig``)
- :mod:`~edgesmith.compress.vocab` (``prune_vocab``, ``VocabConfig``)
- :mod:`~edgesmith.compress.sensitivity` (``sensitivity``, ``SensitivityConfig``)
- :mod:`~edgesmith.compress.quantize` (PTQ, QAT, presets, transforms)

Importing this package loads no technique (they import torch); import the module.
"""

from __future__ import annotations

__all__ = ["distill", "lowrank", "prune", "quantize", "sensitivity", "stage", "vocab"]
