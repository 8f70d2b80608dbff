"""Model construction: teachers from every supported source, students from an
architecture or a rule, and the task (classification or embedding) that says how
a model family is fed, evaluated and exported."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from edgesmith.errors import EdgesmithError
from edgesmith.registry import Registry

ARCHS: Registry[Any] = Registry("architecture")


def _convnet(**kw: Any):
    from edgesmith.models.cnn import ConvNet

    return ConvNet(**kw)


ARCHS.register("convnet")(_convnet)

# students built from a text teacher and its tokenizer (and the corpus), not from image shapes
TEXT_ARCHS: Registry[Any] = Registry("text student architecture")


def _static(teacher, tokenizer, texts, **kw: Any):
    from edgesmith.models.static_embedding import static_student

    return static_student(teacher, tokenizer, texts, **kw)


TEXT_ARCHS.register("static")(_static)


def build_arch(name: str, kwargs: dict, num_classes: int, in_channels: int, image_size: int):
    """An untrained classifier: an edgesmith architecture or any torchvision one."""
    if name in ARCHS:
        kw = {"num_classes": num_classes, "in_channels": in_channels, "image_size": image_size, **kwargs}
        try:
            return ARCHS.get(name)(**kw)
        except TypeError as e:
            raise EdgesmithError(f"arch '{name}': bad kwargs ({e})") from None
    import torchvision

    from edgesmith.models.cnn import adapt_torchvision

    if name not in torchvision.models.list_models():
        raise EdgesmithError(
            f"arch '{name}' is neither an edgesmith architecture ({', '.join(ARCHS)}) "
            "nor a torchvision model (torchvision.models.list_models())"
        )
    model = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)
    return adapt_torchvision(model, in_channels, small_input=image_size <= 32)


def load_teacher(cfg, num_classes: int | None, in_channels: int | None, image_size: int | None):
    """Return ``(model, tokenizer_or_None, hf_path_or_None)`` for every source but
    ``train`` (whose untrained model comes from :func:`build_arch`)."""
    import torch

    from edgesmith.models import encoder

    if cfg.source in ("hf", "package"):
        path = Path(cfg.path) if cfg.source == "hf" else encoder.package_model_path(cfg.package)
        model, tok = encoder.load_hf_encoder(path, cfg.pooling, cfg.normalize_embeddings)
        return model, tok, path
    if cfg.source == "factory":
        mod_name, _, fn = cfg.factory.partition(":")
        try:
            fn_obj = getattr(importlib.import_module(mod_name), fn)
        except (ImportError, AttributeError) as e:
            raise EdgesmithError(f"teacher.factory: cannot import '{cfg.factory}' ({e})") from None
        model = fn_obj(**cfg.kwargs)
        if not isinstance(model, torch.nn.Module):
            raise EdgesmithError(f"teacher.factory: '{cfg.factory}' returned {type(model).__name__}, not an nn.Module")
        return model, None, None
    if cfg.source == "torchvision":
        model = build_arch(cfg.arch, cfg.kwargs, num_classes or 1000, in_channels or 3, image_size or 224)
        if cfg.weights:
            state = _read_state_dict(cfg.weights)
            try:
                model.load_state_dict(state)
            except RuntimeError as e:
                first = str(e).splitlines()[1].strip() if len(str(e).splitlines()) > 1 else str(e)
                raise EdgesmithError(f"teacher.weights: '{cfg.weights}' does not fit {cfg.arch}: {first}") from None
        return model, None, None
    raise EdgesmithError(f"teacher.source '{cfg.source}' is loaded by the pipeline, not load_teacher")


def _read_state_dict(path: str) -> dict:
    import torch

    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds here
        raise EdgesmithError(f"teacher.weights: cannot read '{path}' as a state dict ({str(e).splitlines()[0]})") from None
    return state.get("state_dict", state) if isinstance(state, dict) else state


def build_student(cfg, teacher, num_classes: int | None, in_channels: int | None, image_size: int | None,
                  tokenizer: Any = None, texts: list[str] | None = None):
    """A new student module; the teacher is never modified. A text architecture
    (``static``) is built from the teacher, its ``tokenizer`` and the corpus ``texts``."""
    from edgesmith.models.encoder import encoder_layers, keep_layers_student

    if cfg.arch in TEXT_ARCHS:
        try:
            return TEXT_ARCHS.get(cfg.arch)(teacher, tokenizer, list(texts or []), **cfg.kwargs)
        except TypeError as e:
            raise EdgesmithError(f"student.arch '{cfg.arch}': bad kwargs ({e})") from None
    if cfg.arch is not None:
        return build_arch(cfg.arch, cfg.kwargs, num_classes or 10, in_channels or 1, image_size or 28)
    n = len(encoder_layers(teacher))
    keep = list(range(0, n, cfg.keep_every)) if cfg.rule == "keep-every" else list(cfg.keep_layers)
    return keep_layers_student(teacher, keep, cfg.init_from_teacher)


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())
