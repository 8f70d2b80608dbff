"""Small convolutional classifiers for 28x28 / 8x8 inputs, and the adaptation
of torchvision architectures to small single-channel images."""

from __future__ import annotations

import torch
from torch import nn


class ConvNet(nn.Module):
    """Conv-BN-ReLU blocks with max-pooling, then a two-layer head.

    ``pools`` lists, per conv block, whether a 2x2 max-pool follows it.

    Example:
        >>> net = ConvNet(in_channels=1, num_classes=10, widths=[32, 64], pools=[True, True],
        ...               hidden=64, image_size=28)
        >>> net(torch.zeros(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        widths: list[int] | tuple[int, ...] = (32, 64, 128, 256),
        pools: list[bool] | tuple[bool, ...] | None = None,
        hidden: int = 256,
        dropout: float = 0.2,
        image_size: int = 28,
    ):
        super().__init__()
        if pools is None:
            pools = [i in (0, 1, len(widths) - 1) for i in range(len(widths))]
        if len(pools) != len(widths):
            raise ValueError("pools and widths must have the same length")
        layers: list[nn.Module] = []
        c, size = in_channels, image_size
        for w, p in zip(widths, pools, strict=True):
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            if p:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            c = w
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(c * size * size, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def adapt_torchvision(model: nn.Module, in_channels: int, small_input: bool) -> nn.Module:
    """Change the first conv's input channels (averaging pretrained filters) and,
    for inputs of 32 px or less, swap a stride-2 7x7 stem for a stride-1 3x3 one
    and drop the stem max-pool, as is usual for CIFAR/MNIST-sized images."""
    first_name, first = next(
        ((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)), (None, None)
    )
    if first is None:
        return model
    new = first
    if first.in_channels != in_channels or (small_input and first.kernel_size[0] >= 7):
        k, s, p = (3, 1, 1) if small_input and first.kernel_size[0] >= 7 else (first.kernel_size, first.stride, first.padding)
        new = nn.Conv2d(in_channels, first.out_channels, k, s, p, bias=first.bias is not None)
        if new.weight.shape[2:] == first.weight.shape[2:]:
            with torch.no_grad():
                new.weight.copy_(first.weight.mean(1, keepdim=True).expand_as(new.weight))
        model.set_submodule(first_name, new)
    if small_input and hasattr(model, "maxpool"):
        model.maxpool = nn.Identity()
    return model

