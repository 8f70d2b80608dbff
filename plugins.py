"""Plugins: techniques, export formats, runtimes or targets defined outside edgesmith.

A plugin is a module that registers its pieces when imported (``@register_stage``,
``register_format``, ``RUNTIMES.register``). Name such modules in the environment
variable ``EDGESMITH_PLUGINS`` (comma-separated) and every process edgesmith starts
imports them: the CLI, recipe loading and the fresh-process benchmark worker, so a
plugin's runtime can be measured like a built-in one.

Example:
    EDGESMITH_PLUGINS=mycompany.openvino_format edgesmith run my-recipe.yaml
"""

from __future__ import annotations

import importlib
import os
import sys

ENV = "EDGESMITH_PLUGINS"


def load_plugins() -> list[str]:
    """Import every module named in ``EDGESMITH_PLUGINS`` (once); returns their names.

    Raises:
        UserError: A named module cannot be imported (one line naming it and the fix).
    """
    from edgesmith.errors import UserError

    names = [n.strip() for n in os.environ.get(ENV, "").split(",") if n.strip()]
    for name in names:
        if name in sys.modules:
            continue
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise UserError(f"{ENV}: cannot import plugin module '{name}' ({e}); check the name and PYTHONPATH") from None
    return names
