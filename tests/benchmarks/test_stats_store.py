"""edgesmith.benchmarks: bootstrap intervals, the fingerprint and the SQLite results store."""

from __future__ import annotations

import copy
import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgesmith.benchmarks.fingerprint import cpu_info, fingerprint
from edgesmith.benchmarks.stats import bootstrap_ci, cv, summarize
from edgesmith.benchmarks.store import TABLES, ResultsStore
from edgesmith.errors import EdgesmithError

DATA = Path(__file__).parent / "data"  # summary.json files of real runs on a 2-core CPU


@pytest.fixture()
def summaries() -> list[dict[str, Any]]:
    """digits-quick (classifier, 4 stages) and minilm-sentiment (encoder, 2 failed rows)."""
    return [
        json.loads((DATA / f"{n}.summary.json").read_text())
        for n in ("digits-quick", "minilm-sentiment")
    ]


@pytest.fixture()
def store(tmp_path: Path, summaries: list[dict[str, Any]]) -> ResultsStore:
    s = ResultsStore(tmp_path / "results.db")
    for summary in summaries:
        s.add_run(summary, source=summary["out"])
    return s


# ---- statistics ----


def test_percentiles_and_intervals_on_arange() -> None:
    s = summarize(np.arange(101))
    assert (s["p50"], s["p90"], s["p99"]) == (50.0, 90.0, 99.0)
    assert s["p50_ci"][0] < 50 < s["p50_ci"][1] and s["p99_ci"][0] <= 99 <= s["p99_ci"][1]
    assert s["p99_ci"][1] <= 100 and s["p50_ci"] == list(bootstrap_ci(np.arange(101), 50))
    assert bootstrap_ci([3.0], 50) == (3.0, 3.0) and bootstrap_ci(np.full(9, 2.0), 99) == (2.0, 2.0)
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        bootstrap_ci(np.arange(5), 101)


def test_bootstrap_ci_covers_the_true_median_and_shrinks() -> None:
    scale, true_median = 2.0, 2.0 * np.log(2)
    rng = np.random.default_rng(0)
    lo, hi = bootstrap_ci(rng.exponential(scale, 2000), 50)
    assert lo < true_median < hi
    lo20, hi20 = bootstrap_ci(rng.exponential(scale, 20000), 50)
    assert lo20 < true_median < hi20
    assert (hi20 - lo20) < 0.5 * (hi - lo)  # ~1/sqrt(10) expected
    # Coverage over 300 independent samples of 500 draws: a 95% interval, so 0.90..0.99.
    hits = [
        lo <= true_median <= hi
        for lo, hi in (bootstrap_ci(rng.exponential(scale, 500), 50, seed=i) for i in range(300))
    ]
    assert 0.90 <= np.mean(hits) <= 0.99


@pytest.mark.parametrize("q", [50, 90, 99])
def test_bootstrap_ci_matches_resampling(q: float) -> None:
    """The order-statistic shortcut gives the same interval as resampling with replacement."""
    rng = np.random.default_rng(1)
    x = rng.lognormal(0.0, 0.6, 300)
    idx = rng.integers(0, x.size, size=(20000, x.size))
    naive = np.percentile(np.percentile(x[idx], q, axis=1), [2.5, 97.5])
    lo, hi = bootstrap_ci(x, q, n_boot=20000)
    assert np.abs(np.array([lo, hi]) - naive).max() < 0.1 * (naive[1] - naive[0])


def test_bootstrap_ci_on_100k_samples_is_reproducible() -> None:
    x = np.random.default_rng(2).exponential(1.0, 100_000)
    assert bootstrap_ci(x, 99) == bootstrap_ci(x, 99)
    lo, hi = bootstrap_ci(x, 50)
    assert lo < np.log(2) < hi and hi - lo < 0.02


def test_cv() -> None:
    assert cv([9.0, 10.0, 11.0]) == pytest.approx(0.1)
    assert cv(np.full(5, 3.0)) == 0.0
    with pytest.raises(ValueError, match="two values"):
        cv([1.0])


# ---- fingerprint ----


def test_fingerprint_describes_this_machine() -> None:
    fp = fingerprint()
    assert fp["cpu"]["logical_cores"] >= 1 and fp["memory_total_mb"] > 100
    assert fp["libraries"]["numpy"] == np.__version__ and len(fp["load_avg"]) == 3
    assert json.loads(json.dumps(fp)) == fp


def test_cpu_info_parses_x86_and_arm(tmp_path: Path) -> None:
    x86 = tmp_path / "x86"
    x86.write_text(
        "processor\t: 0\nmodel name\t: Intel Xeon\nphysical id\t: 0\ncore id\t: 0\n"
        "flags\t\t: fpu sse4_2 avx2 avx512f avx512_vnni amx_tile\n\n"
        "processor\t: 1\nmodel name\t: Intel Xeon\nphysical id\t: 0\ncore id\t: 0\n"
    )
    info = cpu_info(str(x86))
    assert info["model"] == "Intel Xeon" and info["physical_cores"] == 1
    assert {"avx2", "avx512f", "avx512_vnni", "amx_tile", "amx"} <= set(info["flags"])
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp i8mm\n")
    assert {"neon", "asimd", "asimddp", "i8mm"} <= set(cpu_info(str(arm))["flags"])


# ---- results store ----


def test_add_run_stores_stages_exports_and_failed_rows(store: ResultsStore) -> None:
    assert [r["recipe"] for r in store.runs()] == ["digits-quick", "minilm-sentiment"]
    assert [s["name"] for s in store.stages(1)] == ["teacher", "distill", "prune", "lowrank"]
    assert store.stages(1)[0]["size_bytes"] == 214504 and store.exports(2)[0]["parity_passed"] == 1
    rows = store.rows(recipe="minilm-sentiment")
    assert len(rows) == 4 and len(store.rows()) == 8
    failed = store.rows(recipe="minilm-sentiment", runtime="torch")
    assert len(failed) == 2 and all(
        r["p50"] is None and "torch.export" in r["error"] for r in failed
    )
    ok = store.rows(recipe="digits-quick", target="cpu", runtime="onnxruntime")
    assert [r["model"] for r in ok] == ["teacher", "lowrank"] and ok[1]["p50"] == pytest.approx(
        0.0213745
    )
    assert (
        ok[1]["p50_ci_lo"] <= ok[1]["p50"] <= ok[1]["p50_ci_hi"] and ok[1]["latency"]["n"] == 4000
    )


def test_add_run_twice_adds_nothing(store: ResultsStore, summaries: list[dict[str, Any]]) -> None:
    assert store.add_run(summaries[1], source="again") == 2
    assert len(store.runs()) == 2 and len(store.rows()) == 8


def test_add_benchmark_keeps_fingerprint_and_unknown_fields(store: ResultsStore) -> None:
    result = {"runtime": "onnxruntime", "model": "m.onnx", "device": "cuda", "threads": 1,
              "latency_ms": summarize(np.arange(1.0, 11.0)), "fingerprint": fingerprint(),
              "gzip_size_bytes": 123, "error": None}  # fmt: skip
    rid = store.add_benchmark(result, recipe="r")
    row = next(r for r in store.rows() if r["id"] == rid)
    assert (row["target"], row["recipe"], row["p50"], row["cpu_model"]) == (
        "cuda",
        "r",
        5.5,
        result["fingerprint"]["cpu"]["model"],
    )
    assert row["extra"] == {"gzip_size_bytes": 123} and row["fingerprint"] == result["fingerprint"]
    rid = store.add_benchmark({"runtime": "tflite", "target": "adb"})
    assert store.rows(target="adb")[0]["id"] == rid
    assert store.rows(target="adb")[0]["error"] == "no latency recorded"


def test_json_round_trip(store: ResultsStore, tmp_path: Path) -> None:
    store.export_json(tmp_path / "results.json")
    copy_ = ResultsStore(tmp_path / "copy.db")
    assert copy_.import_json(tmp_path / "results.json") == 8
    assert copy_.rows() == store.rows() and copy_.runs() == store.runs()
    assert copy_.stages() == store.stages() and copy_.exports() == store.exports()
    assert copy_.import_json(tmp_path / "results.json") == 0  # already there
    assert len(copy_.rows()) == 8 and len(copy_.stages()) == len(store.stages())


def test_csv_round_trip(store: ResultsStore, tmp_path: Path) -> None:
    store.export_csv(tmp_path / "results.csv")
    with open(tmp_path / "results.csv", newline="") as f:
        records = list(csv.reader(f))
    assert records[0] == list(TABLES["benchmarks"]) and len(records) == 1 + 8
    p50 = records[0].index("p50")
    assert float(records[2][p50]) == pytest.approx(0.0463315) and records[5][p50] == ""
    other = ResultsStore(tmp_path / "other.db")
    assert other.import_csv(tmp_path / "results.csv") == 8
    assert other.rows() == [{**r, "run_id": None} for r in store.rows()]


def _bytes(path: Path) -> bytes:
    return path.read_bytes()


def test_foreign_and_corrupt_files_are_refused_untouched(tmp_path: Path) -> None:
    text = tmp_path / "notes.db"
    text.write_text("not a database\n")
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as con:
        con.execute("CREATE TABLE users (name TEXT)")
        con.execute("INSERT INTO users VALUES ('ada')")
    con.close()
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 8)
    newer = tmp_path / "newer.db"
    ResultsStore(newer).close()
    with sqlite3.connect(newer) as con:
        con.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    for path, why in [
        (text, "not a SQLite file"),
        (foreign, "tables: users"),
        (corrupt, "unreadable"),
        (newer, "schema version 99"),
    ]:
        before = _bytes(path)
        with pytest.raises(EdgesmithError, match="not an edgesmith results database") as e:
            ResultsStore(path)
        assert why in str(e.value) and "use a new file" in str(e.value) and "\n" not in str(e.value)
        assert _bytes(path) == before, path


def test_a_failed_import_leaves_the_store_as_it_was(
    store: ResultsStore, summaries: list[dict[str, Any]], tmp_path: Path
) -> None:
    before = (store.runs(), store.stages(), store.rows())
    bad = copy.deepcopy(summaries[0])
    bad["recipe"] = "half-written"
    bad["benchmarks"].append("not a measurement")  # fails after the run and stages are inserted
    with pytest.raises(AttributeError):
        store.add_run(bad)
    broken = tmp_path / "broken.json"
    store.export_json(broken)
    doc = json.loads(broken.read_text())
    doc["runs"][0]["digest"] = "new"  # imports a run, then fails on a stage of an unknown run
    doc["stages"].append({**doc["stages"][0], "run_id": 999})
    broken.write_text(json.dumps(doc))
    with pytest.raises(EdgesmithError, match="malformed results export"):
        store.import_json(broken)
    assert (store.runs(), store.stages(), store.rows()) == before
