"""The one exception hierarchy. A user mistake is an :class:`EdgesmithError` whose
message is a single line naming the file, field, layer or op and the fix; the CLI
prints it without a traceback and exits with ``exit_code``."""

from __future__ import annotations


class EdgesmithError(Exception):
    """Base class for every error edgesmith raises on purpose."""

    exit_code = 1


class RecipeError(EdgesmithError):
    """A recipe (or ``--set`` override) is invalid. ``key`` is the dotted key path."""

    exit_code = 2

    def __init__(self, key: str, message: str, file: str | None = None):
        self.key, self.message, self.file = key, message, file
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"{self.file}: " if self.file else ""
        key = f"{self.key}: " if self.key else ""
        return f"{where}{key}{self.message}"

    def with_file(self, file: str) -> RecipeError:
        return RecipeError(self.key, self.message, file)


class DataError(EdgesmithError):
    """A data source is missing, empty or malformed."""

    exit_code = 2


class MissingExtraError(EdgesmithError):
    """An optional dependency is not installed; names the extra to install."""

    exit_code = 2

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


class BundleError(EdgesmithError):
    """A bundle is missing files, tampered with, or of an unknown schema."""

    exit_code = 2


class PathError(EdgesmithError):
    """A path the user gave cannot be used: ``--out`` is a file, an output path is a
    folder or a block device, or another live run holds the run folder."""

    exit_code = 2
