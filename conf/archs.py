"""Recipe checks that need more than a type: names that become folders, and
architectures with their kwargs, built at validate time on PyTorch's ``meta``
device (no memory, no weights) so a typo or a negative width is a one-line
:class:`RecipeError` from ``edgesmith validate`` (exit 2), not a failure minutes
into ``edgesmith run``."""

from __future__ import annotations

import re
from typing import Any

from edgesmith.errors import RecipeError

_UNSAFE = re.compile(r"[/\\\x00-\x1f:*?\"<>|]")


def check_name(key: str, name: Any) -> None:
    """``name`` must be usable as one folder name: not empty, not ``.``/``..``, no path
    separator or control character, not starting with ``-`` or ``.``, at most 100 characters."""
    if not isinstance(name, str) or not name.strip():
        raise RecipeError(key, "must not be empty; it names the run folder")
    if name in (".", "..") or name.startswith((".", "-")) or _UNSAFE.search(name) or len(name) > 100 \
            or name != name.strip():
        raise RecipeError(key, f"{name!r} cannot be a folder name; use letters, digits, '-' and '_' "
                               "(no '/', '\\', '..', leading '.' or '-', at most 100 characters)")


def check_arch(arch: str | None, kwargs: dict, num_classes: int | None = None,
               in_channels: int | None = None) -> None:
    """Raise ``RecipeError("arch" | "kwargs", ...)`` when ``arch`` is unknown or cannot be
    built with ``kwargs`` (built on the meta device)."""
    if arch is None:
        return
    import torch

    from edgesmith.models import ARCHS, TEXT_ARCHS

    if arch in TEXT_ARCHS:  # built from the teacher and its tokenizer: its kwargs are checked when it is built
        return
    kw = dict(kwargs)
    if arch in ARCHS:
        kw = {"num_classes": num_classes or 10, "in_channels": in_channels or 3, "image_size": 64, **kw}
        build = ARCHS.get(arch)
    else:
        import torchvision

        if arch not in torchvision.models.list_models():
            raise RecipeError("arch", f"unknown architecture {arch!r}; use one of {', '.join([*ARCHS, *TEXT_ARCHS])} or a "
                                      "torchvision model name (torchvision.models.list_models())")
        kw = {"weights": None, "num_classes": num_classes or 1000, **kw}

        def build(**k: Any) -> Any:
            return torchvision.models.get_model(arch, **k)
    try:
        with torch.device("meta"):
            build(**kw)
    except (TypeError, ValueError, RuntimeError, AssertionError, ZeroDivisionError, IndexError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RecipeError("kwargs", f"{arch} cannot be built with these kwargs ({first}); fix them") from None
