"""One console and progress-bar style for the whole tool (rich)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True, highlight=False)


def quiet() -> bool:
    return bool(os.environ.get("EDGESMITH_QUIET")) or "pytest" in sys.modules


@contextlib.contextmanager
def progress_bar() -> Iterator[Progress]:
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=quiet(),
    )
    with bar:
        yield bar


def log(msg: str) -> None:
    if not quiet():
        console.print(msg)
