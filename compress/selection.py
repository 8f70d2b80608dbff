"""Layer selection by name pattern and op type (NNCF's ``IgnoredScope``, torchao's
``FqnToConfig``): a selection is plain data, so it fits in a recipe.

Example:
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> [n for n, _ in select(net, LayerSelection(exclude=["2"]), ["Linear"])]
    ['0']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from torch import nn

from edgesmith.conf.base import Config, RecipeError

__all__ = ["LayerSelection", "select", "op_type_matches"]


@dataclass
class LayerSelection(Config):
    """Which layers a technique touches.

    Attributes:
        include: fnmatch patterns on module names (``named_modules``); ``*`` matches dots too.
        exclude: patterns removed from what ``include`` matched.
        op_types: module class names (a subclass matches its bases' names too); empty
            means the technique's default types.
    """

    include: list[str] = field(default_factory=lambda: ["*"])
    exclude: list[str] = field(default_factory=list)
    op_types: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if not self.include:
            raise RecipeError("include", "needs at least one pattern ('*' selects every layer)")


def op_type_matches(module: nn.Module, op_types: Sequence[str]) -> bool:
    """Whether ``module``'s class, or one of its bases, is named in ``op_types``."""
    return any(c.__name__ in op_types for c in type(module).__mro__)


def select(model: nn.Module, selection: LayerSelection, default_types: Sequence[str]) -> list[tuple[str, nn.Module]]:
    """The ``(name, module)`` pairs of ``model`` that ``selection`` picks, in model order.

    Args:
        model: the model to search.
        selection: patterns and op types (anything with ``include``, ``exclude``, ``op_types``).
        default_types: op types used when ``selection.op_types`` is empty.

    Raises:
        RecipeError: (key ``include``) when nothing matches; the message lists some layer names.
    """
    types = list(selection.op_types) or list(default_types)
    candidates = [(n, m) for n, m in model.named_modules() if n and op_type_matches(m, types)]
    chosen = [
        (n, m)
        for n, m in candidates
        if any(fnmatchcase(n, p) for p in selection.include) and not any(fnmatchcase(n, p) for p in selection.exclude)
    ]
    if not chosen:
        pool = candidates or [(n, m) for n, m in model.named_modules() if n and not list(m.children())]
        names = [f"{n} ({type(m).__name__})" for n, m in pool[:6]]
        more = f" and {len(pool) - 6} more" if len(pool) > 6 else ""
        what = "layers of those types are" if candidates else "there is none; leaf layers are"
        raise RecipeError(
            "include",
            f"{selection.include} (exclude {selection.exclude}) matches no layer of type "
            f"{', '.join(types)}; {what}: {', '.join(names) or 'none'}{more}",
        )
    return chosen
