"""The stage cache trials share: finished step folders kept by their content key.

A run's step folder ``DIR/NN-<step>/`` holds a ``stage.json`` whose ``key`` hashes the
step's config and the key of the step before it, so two trials whose recipes agree
up to a step have the same keys up to it. Before a trial runs, every step whose key
is in the cache is hard-linked into the trial's folder, where the runner finds it
finished and reuses it; after the trial, the steps it ran are added to the cache.
Hard links cost no space, and a step folder is never written in place (the runner
replaces it whole), so a trial cannot change another's files."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from edgesmith.pipeline.plan import Step


def _link_tree(src: Path, dst: Path) -> None:
    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.copytree(src, dst, copy_function=link)


def step_keys(runner) -> list[tuple[Step, str]]:
    """``(step, content key)`` for each step of ``runner``'s plan, in order."""
    keys, prev = [], None
    for step in runner.steps:
        prev = runner._key(step, prev)  # the runner's own content key: one definition of "same step"
        keys.append((step, prev))
    return keys


class StageCache:
    """Step folders by content key under ``root`` (``RUN/stages/<key>/``)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def seed(self, runner) -> list[str]:
        """Link every cached step of ``runner``'s plan into its folder; returns their names."""
        reused = []
        for step, key in step_keys(runner):
            if step.kind == "benchmark":  # measured through the timing queue, never cached
                continue
            have = _key_of(step.dir)
            if have == key:
                reused.append(step.name)
                continue
            src = self.root / key
            if not (src / "stage.json").is_file():
                continue
            if step.dir.exists():
                shutil.rmtree(step.dir)
            step.dir.parent.mkdir(parents=True, exist_ok=True)
            _link_tree(src, step.dir)
            reused.append(step.name)
        return reused

    def harvest(self, runner, reused: list[str]) -> list[str]:
        """Add the steps ``runner`` ran (not in ``reused``) to the cache; returns their names."""
        ran = []
        for step, key in step_keys(runner):
            if step.kind == "benchmark" or step.name in reused or _key_of(step.dir) != key:
                continue
            ran.append(step.name)
            if (self.root / key).exists():
                continue
            tmp = self.root / f".{key}.tmp{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            self.root.mkdir(parents=True, exist_ok=True)
            _link_tree(step.dir, tmp)
            try:
                os.replace(tmp, self.root / key)
            except OSError:  # another trial cached the same step a moment before
                shutil.rmtree(tmp, ignore_errors=True)
        return ran


def _key_of(step_dir: Path) -> str | None:
    meta = step_dir / "stage.json"
    try:
        return json.loads(meta.read_text()).get("key") if meta.is_file() else None
    except (OSError, ValueError):
        return None
