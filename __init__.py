"""edgesmith: teacher to verified, benchmarked, monitored edge bundle.

Importing ``edgesmith`` is lean: no torch, onnxruntime, LiteRT, ExecuTorch,
TensorRT or CUDA is initialised until a function that needs it is called.

Example:
    >>> import edgesmith
    >>> summary = edgesmith.run("digits-quick", out="runs/digits")  # doctest: +SKIP
    >>> summary["stages"][0]["metrics"]["accuracy"]  # doctest: +SKIP
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edgesmith")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+local"

__all__ = ["__version__", "run", "load_recipe"]


def run(recipe=None, out=None, **kwargs):
    """Run a recipe end to end; see :func:`edgesmith.pipeline.runner.run`."""
    from edgesmith.pipeline.runner import run as _run

    return _run(recipe, out, **kwargs)


def load_recipe(recipe=None, overrides=None):
    """Load and validate a recipe; see :func:`edgesmith.conf.recipe.load_recipe`."""
    from edgesmith.conf.recipe import load_recipe as _load

    return _load(recipe, overrides)
