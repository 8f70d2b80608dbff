"""A YAML loader for recipes and ``--set`` values that a hostile or mistyped file
cannot turn into a hang, a memory blow-up or a silent surprise.

On top of ``yaml.SafeLoader`` (no Python objects) it refuses, each with one
:class:`RecipeError` line: a path that is a folder, a file over 1 MB, a binary
file (NUL bytes), text that is not UTF-8, a duplicate key in one mapping (YAML
would keep the last one silently), anchors and aliases that expand to more than
:data:`MAX_NODES` nodes (a 2.6 kB "billion laughs" recipe otherwise takes
minutes and gigabytes), a recursive alias, and nesting deeper than
:data:`MAX_DEPTH`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgesmith.errors import RecipeError

MAX_BYTES = 1 << 20
MAX_NODES = 100_000  # expanded (aliases counted at every use); the shipped recipes have a few hundred
MAX_DEPTH = 64


def _loader_class():
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_document(self, node):  # checked once per document, before anything is built
            _check_tree(node)
            return super().construct_document(node)

    return Loader


def _check_tree(root: Any) -> None:
    import yaml

    sizes: dict[int, int] = {}
    active: set[int] = set()

    def size(node: Any, depth: int) -> int:
        if depth > MAX_DEPTH:
            raise RecipeError("", f"nested deeper than {MAX_DEPTH} levels", )
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            raise RecipeError("", f"recursive alias at line {node.start_mark.line + 1} (an anchor used inside "
                                  "itself); remove it")
        active.add(key)
        total = 1
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    if k.value in seen:
                        raise RecipeError(str(k.value), f"duplicate key at line {k.start_mark.line + 1} (first at "
                                                        f"line {seen[k.value]}); keep one")
                    seen[k.value] = k.start_mark.line + 1
                total += size(k, depth + 1) + size(v, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            total += sum(size(v, depth + 1) for v in node.value)
        active.discard(key)
        if total > MAX_NODES:
            raise RecipeError("", f"anchors and aliases expand to more than {MAX_NODES:,} values (from line "
                                  f"{root.start_mark.line + 1}); a recipe is a small file: write values out")
        sizes[key] = total
        return total

    size(root, 0)


def loads(text: str) -> Any:
    """Parse one YAML document with the checks above.

    Raises:
        RecipeError: Invalid YAML (with line and column) or one of the refusals above.
    """
    import yaml

    try:
        return yaml.load(text, Loader=_loader_class())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise RecipeError("", f"invalid YAML{where}: {problem}") from None
    except RecursionError:
        raise RecipeError("", f"nested deeper than {MAX_DEPTH} levels") from None


def read_text(path: str | os.PathLike) -> str:
    """A recipe file's text; refuses folders, large, binary and non-UTF-8 files."""
    path = Path(path)
    if path.is_dir():
        raise RecipeError("", "is a folder, not a recipe file; pass a .yaml file")
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise RecipeError("", f"{size:,} bytes; a recipe is a small YAML file (at most {MAX_BYTES:,} bytes)")
        data = path.read_bytes()
    except OSError as e:
        raise RecipeError("", f"cannot read it ({e.strerror or e})") from None
    if b"\0" in data:
        raise RecipeError("", "is a binary file, not a YAML recipe")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecipeError("", f"is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
                              "save it as UTF-8") from None


def load_file(path: str | os.PathLike) -> Any:
    """:func:`read_text` then :func:`loads`."""
    return loads(read_text(path))
