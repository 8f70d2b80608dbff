"""Packaging: ranges in setup.cfg with exact pins only in constraints.txt, a bare
install that can run, a LICENSE, and a wheel built without warnings and without studies."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"^([A-Za-z0-9_.\-]+)")


def _cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "setup.cfg")
    return cfg


def _reqs(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith(("%", "#"))]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_requirements_are_ranges_and_every_one_is_pinned_in_constraints():
    cfg = _cfg()
    reqs = _reqs(cfg["options"]["install_requires"])
    for text in cfg["options.extras_require"].values():
        reqs += _reqs(text)
    assert reqs and not [r for r in reqs if "==" in r], "exact pins belong in constraints.txt"
    pins = {_norm(ln.split("==")[0]) for ln in (ROOT / "constraints.txt").read_text().splitlines() if "==" in ln}
    unpinned = {_norm(NAME.match(r).group(1)) for r in reqs} - pins - {"ruff", "tensorrt", "polygraphy",
                                                                      "onnx-graphsurgeon"}
    assert unpinned == set()
    assert cfg["options"]["python_requires"] == ">=3.11"


def test_a_bare_install_has_torch_and_onnxruntime_and_no_unused_packages():
    cfg = _cfg()
    core = {_norm(NAME.match(r).group(1)) for r in _reqs(cfg["options"]["install_requires"])}
    assert {"torch", "onnxruntime", "onnx", "numpy", "click"} <= core
    text = (ROOT / "setup.cfg").read_text() + (ROOT / "constraints.txt").read_text()
    assert "sentence-transformers" not in text


def test_license_is_the_apache_text():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert _cfg()["metadata"]["license"] == "Apache-2.0"


def test_wheel_builds_without_warnings_and_without_studies(tmp_path: Path):
    pytest.importorskip("setuptools")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    src = tmp_path / "src"
    for f in files:
        if (ROOT / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, src / f)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path / "whl"), "."], cwd=src, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "absent from the `packages` configuration" not in proc.stdout + proc.stderr
    (wheel,) = (tmp_path / "whl").glob("edgesmith-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if "studies" in n]
    assert "edgesmith/conf/recipes/digits-quick.yaml" in names and "edgesmith/benchmarks/dashboard.js" in names
    assert any(n.endswith("licenses/LICENSE") for n in names)


def test_setup_refuses_a_first_install_without_room_for_the_venv(tmp_path: Path):
    """Too little disk for the venv: one line naming the disk, the size and the fix, exit 2,
    and no half-made venv (the check runs before apt-get or pip touch anything)."""
    venv = tmp_path / "venv"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "EDGESMITH_VENV": str(venv),
           "EDGESMITH_SETUP_NEED_MB": str(10**12), "TMPDIR": str(tmp_path)}
    r = subprocess.run(["bash", str(ROOT / "setup.sh")], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and f"the disk of {tmp_path}" in lines[0] and "free some space" in lines[0], r.stderr
    assert r.stdout == "" and not venv.exists()
