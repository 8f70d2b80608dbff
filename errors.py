"""The one exception hierarchy. Every error edgesmith raises on purpose is an
:class:`EdgesmithError` whose message is a single line naming the file, field, layer
or op and the fix; the CLI prints it without a traceback and exits with its
``exit_code``, by one rule:

- **2: a user mistake** (:class:`UserError` and its subclasses): a missing or wrong
  file, recipe key, ``--set`` override, option value, bundle or missing extra;
- **1: a failure of the model, a runtime or a tool** (:class:`EdgesmithError` itself,
  :class:`StageError`, :class:`ExportError`, :class:`ParityError`): the input was
  valid but the work failed;
- **130: interrupted** (Ctrl-C; finished stages are kept).
"""

from __future__ import annotations


class EdgesmithError(Exception):
    """Base class for every error edgesmith raises on purpose; as such, a failure of
    the model, a runtime or a tool (exit code 1)."""

    exit_code = 1


class UserError(EdgesmithError):
    """A user mistake: something asked for that does not exist or cannot be (exit code 2)."""

    exit_code = 2


class RecipeError(UserError):
    """A recipe (or ``--set`` override) is invalid. ``key`` is the dotted key path."""

    def __init__(self, key: str, message: str, file: str | None = None):
        self.key, self.message, self.file = key, message, file
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"{self.file}: " if self.file else ""
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.message}"

    def with_file(self, file: str) -> RecipeError:
        return RecipeError(self.key, self.message, file)


class DataError(UserError):
    """A data source is missing, empty or malformed."""


class MissingExtraError(UserError):
    """An optional dependency is not installed; names the extra to install."""

    def __init__(self, module: str, extra: str, what: str = ""):
        what = f" for {what}" if what else ""
        super().__init__(
            f"python package '{module}' is needed{what} but is not installed: "
            f"pip install 'edgesmith[{extra}]'"
        )


class StageError(EdgesmithError):
    """A pipeline stage failed for a reason the user can act on."""


class ExportError(EdgesmithError):
    """A model could not be exported to a format."""


class ParityError(EdgesmithError):
    """An exported model disagrees with the PyTorch model beyond tolerance."""


class BundleError(UserError):
    """A bundle is missing files, tampered with, or of an unknown schema."""


class PathError(UserError):
    """A path the user gave cannot be used: ``--out`` is a file, an output path is a
    folder or a block device, or another live run holds the run folder."""
