"""python -m edgesmith.benchmarks.measured: the README's ratio table from any machine's runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from edgesmith.benchmarks.measured import final_name, ratio_rows

DATA = Path(__file__).parent / "data"


def test_ratio_rows_of_a_real_summary():
    summary = json.loads((DATA / "digits-quick.summary.json").read_text())
    assert final_name(summary) == "lowrank"
    rows = {r["runtime"]: r for r in ratio_rows(summary)}
    ort = rows["onnxruntime"]
    assert abs(ort["p50_ratio"] - 0.0213745 / 0.0463315) < 1e-9 and abs(ort["size_ratio"] - 20432 / 227396) < 1e-9
    assert ort["teacher_accuracy"] > ort["final_accuracy"] > 0.9 and set(rows) == {"onnxruntime", "torch"}


def test_script_writes_markdown_for_run_dirs(tmp_path: Path):
    runs = []
    for name in ("digits-quick", "minilm-sentiment"):
        (tmp_path / name).mkdir()
        shutil.copy(DATA / f"{name}.summary.json", tmp_path / name / "summary.json")
        runs.append(str(tmp_path / name))
    out = tmp_path / "measured.md"
    proc = subprocess.run([sys.executable, "-m", "edgesmith.benchmarks.measured", *runs, "-o", str(out)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    text = out.read_text()
    assert text == proc.stdout and "| recipe | runtime | final model |" in text
    assert "| digits-quick | onnxruntime | lowrank" in text and "0.46x" in text and "0.09x" in text
    assert text.count("| minilm-sentiment |") >= 1 and text.startswith("_host:")
    bad = subprocess.run([sys.executable, "-m", "edgesmith.benchmarks.measured", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "no summary.json" in bad.stderr
