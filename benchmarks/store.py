"""A results store: one SQLite file that accumulates runs and measurements across machines.

    store = ResultsStore("results.db")
    store.add_run(json.load(open("runs/digits/summary.json")), source="runs/digits")
    fast = [r for r in store.rows(target="cpu") if r["p50"] and r["p50"] < 5]
    store.export_json("results.json")

Every write is one transaction (an interrupted import leaves the file as it
was); a file that is not an edgesmith store is refused and never written to.
Failed measurements are kept, with their ``error``, like any other row.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.request import pathname2url

from edgesmith.atomic import write_json, write_text
from edgesmith.errors import DataError, EdgesmithError, UserError

SCHEMA_VERSION = 1
APP = "edgesmith"
JSON_COLUMNS = {"metrics", "parity", "latency", "protocol", "fingerprint", "extra"}
# One "name TYPE[, ...]" column list per table; JSON_COLUMNS hold JSON text.
SCHEMA = {
    "runs": """id INTEGER PRIMARY KEY, digest TEXT UNIQUE NOT NULL, source TEXT, recipe TEXT,
        task TEXT, edgesmith TEXT, device TEXT, out TEXT, added_at TEXT""",
    "stages": """run_id INTEGER NOT NULL REFERENCES runs(id), position INTEGER, name TEXT,
        kind TEXT, params INTEGER, size_bytes INTEGER, seconds REAL, accuracy REAL,
        metrics TEXT, path TEXT""",
    "exports": """run_id INTEGER NOT NULL REFERENCES runs(id), position INTEGER, format TEXT,
        precision TEXT, runtime TEXT, size_bytes INTEGER, path TEXT, parity_passed INTEGER,
        max_abs_diff REAL, cosine REAL, agreement REAL, parity TEXT, error TEXT""",
    "benchmarks": """id INTEGER PRIMARY KEY, uid TEXT UNIQUE NOT NULL,
        run_id INTEGER REFERENCES runs(id), recipe TEXT, source TEXT, target TEXT, runtime TEXT,
        model TEXT, threads INTEGER, batch INTEGER, seq_len INTEGER, p50 REAL, p90 REAL,
        p99 REAL, mean REAL, min REAL, max REAL, std REAL, n INTEGER, p50_ci_lo REAL,
        p50_ci_hi REAL, p99_ci_lo REAL, p99_ci_hi REAL, throughput_per_s REAL,
        peak_rss_mb REAL, load_rss_mb REAL, model_size_bytes INTEGER, accuracy REAL,
        accuracy_on TEXT, host TEXT, cpu_model TEXT, gpu TEXT, error TEXT, latency TEXT,
        protocol TEXT, fingerprint TEXT, extra TEXT, added_at TEXT""",
}
TABLES = {t: dict(c.split(None, 1) for c in cols.split(",")) for t, cols in SCHEMA.items()}
# summary.json benchmark keys with a column of their own; the rest go to `extra`.
BENCH_KEYS = set(
    "target runtime model threads batch seq_len latency_ms peak_rss_mb load_rss_mb device "
    "model_size_bytes accuracy accuracy_on protocol fingerprint error eval_outputs".split()
)
STAGE_KEYS = ("name", "kind", "params", "size_bytes", "seconds", "path")
EXPORT_KEYS = ("format", "precision", "runtime", "size_bytes", "path", "error")
PARITY_KEYS = ("max_abs_diff", "cosine", "agreement")
COPIED_KEYS = (
    "runtime model threads batch seq_len peak_rss_mb load_rss_mb model_size_bytes "
    "accuracy accuracy_on error protocol".split()
)
LATENCY_KEYS = ("p50", "p90", "p99", "mean", "min", "max", "std", "n", "throughput_per_s")


def _pick(d: dict[str, Any], keys: Any) -> dict[str, Any]:
    return {k: d.get(k) for k in keys}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _refuse(path: Path, why: str) -> EdgesmithError:
    return UserError(f"{path}: not an edgesmith results database ({why}); use a new file")


class ResultsStore:
    """An edgesmith results database; created when ``path`` is new or empty.

    Raises:
        EdgesmithError: ``path`` is a foreign, newer or corrupt file (left untouched).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        fresh = self._check()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA foreign_keys = ON")
        if fresh:
            with self._tx():
                for table, cols in SCHEMA.items():
                    self._db.execute(f"CREATE TABLE IF NOT EXISTS {table} ({cols})")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)"
                )
                self._db.executemany(
                    "INSERT OR REPLACE INTO meta VALUES (?, ?)",
                    [("app", APP), ("schema_version", str(SCHEMA_VERSION)), ("created_at", _now())],
                )

    def _check(self) -> bool:
        """Whether the file must be initialised; refuses anything but an edgesmith store."""
        p = self.path
        if p.is_dir():
            raise DataError(f"{p}: is a folder; pass a results database file (e.g. results.db)")
        if not p.exists() or p.stat().st_size == 0:
            return True
        with open(p, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise _refuse(p, "not a SQLite file")
        try:
            con = sqlite3.connect(f"file:{pathname2url(str(p.absolute()))}?mode=ro", uri=True)
            try:
                tables = {
                    r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
                meta = dict(con.execute("SELECT key, value FROM meta")) if "meta" in tables else {}
            finally:
                con.close()
        except sqlite3.DatabaseError as e:
            raise _refuse(p, f"unreadable: {e}") from None
        if not tables:
            return True
        if meta.get("app") != APP:
            raise _refuse(p, f"no app='{APP}' marker; tables: {', '.join(sorted(tables))}")
        version = int(meta.get("schema_version", 0))
        if version > SCHEMA_VERSION:
            raise _refuse(
                p, f"schema version {version} is newer than this edgesmith's {SCHEMA_VERSION}"
            )
        if missing := set(TABLES) - tables:
            raise _refuse(p, f"missing tables {', '.join(sorted(missing))}")
        return False

    @contextlib.contextmanager
    def _tx(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _insert(self, table: str, row: dict[str, Any], ignore: bool = False) -> int:
        cols = [c for c in TABLES[table] if c in row]
        vals = [
            json.dumps(row[c]) if c in JSON_COLUMNS and row[c] is not None else row[c] for c in cols
        ]
        verb = "INSERT OR IGNORE" if ignore else "INSERT"
        sql = f"{verb} INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        cur = self._db.execute(sql, vals)
        return int(cur.lastrowid) if cur.rowcount == 1 else 0  # 0: ignored as a duplicate

    def add_run(self, summary: dict[str, Any], source: str = "") -> int:
        """Import a run's ``summary.json`` (stages, exports, benchmarks); returns the run id.

        A summary already in the store (same content) is not added twice.
        """
        text = json.dumps(summary, sort_keys=True, default=str)
        digest = hashlib.sha256(text.encode()).hexdigest()
        with self._tx():
            old = self._db.execute("SELECT id FROM runs WHERE digest = ?", (digest,)).fetchone()
            if old:
                return int(old[0])
            keys = ("recipe", "task", "edgesmith", "device", "out")
            run = {"digest": digest, "source": source, "added_at": _now(), **_pick(summary, keys)}
            run_id = self._insert("runs", run)
            teacher = [summary["teacher"]] if summary.get("teacher") else []
            for i, s in enumerate(teacher + list(summary.get("stages", []))):
                metrics = s.get("metrics") or {}
                row = {"run_id": run_id, "position": i, "metrics": metrics}
                self._insert(
                    "stages", {**row, "accuracy": metrics.get("accuracy"), **_pick(s, STAGE_KEYS)}
                )
            for i, e in enumerate(summary.get("exports", [])):
                parity = e.get("parity") or {}
                passed = None if parity.get("passed") is None else int(bool(parity["passed"]))
                row = {
                    "run_id": run_id,
                    "position": i,
                    "parity": parity or None,
                    "parity_passed": passed,
                }
                self._insert(
                    "exports", {**row, **_pick(parity, PARITY_KEYS), **_pick(e, EXPORT_KEYS)}
                )
            for b in summary.get("benchmarks", []):
                self._add_benchmark(b, summary.get("recipe"), source, run_id)
        return run_id

    def add_benchmark(
        self,
        bench: dict[str, Any],
        recipe: str | None = None,
        source: str = "",
        run_id: int | None = None,
    ) -> int:
        """Store one measurement (a ``summary.json`` benchmark entry or a ``measure()`` result).

        A failed one (``error`` set, no latency) is stored too. Returns the row id.
        """
        with self._tx():
            return self._add_benchmark(bench, recipe, source, run_id)

    def _add_benchmark(
        self, b: dict[str, Any], recipe: str | None, source: str, run_id: int | None
    ) -> int:
        lat = b.get("latency_ms") or {}
        fp = b.get("fingerprint") or {}
        gpus = fp.get("gpus") or []
        p50_ci, p99_ci = lat.get("p50_ci") or [None, None], lat.get("p99_ci") or [None, None]
        row = {
            "uid": uuid.uuid4().hex, "run_id": run_id, "recipe": recipe, "source": source,
            "target": b.get("target") or b.get("device") or "cpu",
            **_pick(b, COPIED_KEYS), **_pick(lat, LATENCY_KEYS),
            "p50_ci_lo": p50_ci[0], "p50_ci_hi": p50_ci[1],
            "p99_ci_lo": p99_ci[0], "p99_ci_hi": p99_ci[1],
            "host": fp.get("hostname"), "cpu_model": (fp.get("cpu") or {}).get("model"),
            "gpu": gpus[0].get("name") if gpus else None,
            "latency": lat or None, "fingerprint": fp or None, "added_at": _now(),
            "extra": {k: v for k, v in b.items() if k not in BENCH_KEYS} or None,
        }  # fmt: skip
        if not lat and not row["error"]:
            row["error"] = "no latency recorded"
        return self._insert("benchmarks", row)

    def _select(self, table: str, where: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        where = {k: v for k, v in (where or {}).items() if v is not None}
        clause = " AND ".join(f"{k} = ?" for k in where)
        sql = f"SELECT * FROM {table}" + (f" WHERE {clause}" if clause else "") + " ORDER BY rowid"
        cur = self._db.execute(sql, list(where.values()))
        names = [d[0] for d in cur.description]
        return [
            {
                n: json.loads(v) if n in JSON_COLUMNS and v is not None else v
                for n, v in zip(names, r, strict=True)
            }
            for r in cur
        ]

    def rows(
        self, recipe: str | None = None, target: str | None = None, runtime: str | None = None
    ) -> list[dict[str, Any]]:
        """Benchmark rows (one per measurement, failed ones included), oldest first."""
        return self._select("benchmarks", {"recipe": recipe, "target": target, "runtime": runtime})

    def runs(self) -> list[dict[str, Any]]:
        """Imported runs, oldest first."""
        return self._select("runs")

    def stages(self, run_id: int | None = None) -> list[dict[str, Any]]:
        """Teacher and stage rows (``position`` 0 is the teacher) of one or all runs."""
        return self._select("stages", {"run_id": run_id})

    def exports(self, run_id: int | None = None) -> list[dict[str, Any]]:
        """Export rows (format, size, parity) of one or all runs."""
        return self._select("exports", {"run_id": run_id})

    def export_json(self, path: str | Path) -> Path:
        """Write every table to one JSON file (read back by :meth:`import_json`)."""
        doc = {"app": APP, "schema_version": SCHEMA_VERSION, **{t: self._select(t) for t in TABLES}}
        return write_json(path, doc)

    def import_json(self, path: str | Path) -> int:
        """Add the contents of an :meth:`export_json` file; returns the new benchmark rows.

        Runs and measurements already present (same digest / uid) are skipped.
        """
        if Path(path).is_dir():
            raise DataError(f"{path}: is a folder; pass a .json results export")
        try:
            doc = json.loads(Path(path).read_text(), parse_constant=_no_constant)
        except (OSError, ValueError, RecursionError) as e:
            why = "nested too deeply" if isinstance(e, RecursionError) else str(e)
            raise DataError(f"{path}: cannot read results JSON ({why})") from None
        if not isinstance(doc, dict) or doc.get("app") != APP:
            raise DataError(f"{path}: not an edgesmith results export (no app='{APP}')")
        version = doc.get("schema_version", 0)
        if type(version) is not int or version < 0:
            raise DataError(f"{path}: schema_version {version!r} is not a version number; "
                            "pass a file written by `edgesmith results --export`")
        if version > SCHEMA_VERSION:
            raise DataError(f"{path}: schema version {version} is newer than {SCHEMA_VERSION}; "
                            "upgrade edgesmith")
        for table in TABLES:
            rows = doc.get(table, [])
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise DataError(f"{path}: '{table}' must be a list of rows")
            for i, r in enumerate(rows):
                _check_row(table, r, f"{path}: {table}[{i}]")
        try:
            return self._import_doc(doc)
        except (KeyError, TypeError, ValueError, AttributeError, sqlite3.Error) as e:
            raise DataError(
                f"{path}: malformed results export ({type(e).__name__}: {e})"
            ) from None

    def _import_doc(self, doc: dict[str, Any]) -> int:
        added, ids = 0, {}
        with self._tx():
            for r in doc.get("runs", []):
                new = self._insert("runs", {k: v for k, v in r.items() if k != "id"}, ignore=True)
                if not new:
                    found = self._db.execute("SELECT id FROM runs WHERE digest = ?", (r["digest"],))
                    new = -found.fetchone()[0]  # negative: the run was already here
                ids[r["id"]] = new
            for table in ("stages", "exports"):
                for r in doc.get(table, []):
                    if ids[r["run_id"]] > 0:
                        self._insert(table, {**r, "run_id": ids[r["run_id"]]})
            for r in doc.get("benchmarks", []):
                run_id = abs(ids[r["run_id"]]) if r.get("run_id") is not None else None
                row = {**{k: v for k, v in r.items() if k != "id"}, "run_id": run_id}
                added += bool(self._insert("benchmarks", row, ignore=True))
        return added

    def export_csv(self, path: str | Path) -> Path:
        """Write the benchmark rows as CSV (nested values as JSON text)."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(TABLES["benchmarks"]))
        writer.writeheader()
        for r in self.rows():
            writer.writerow(
                {
                    k: json.dumps(v) if k in JSON_COLUMNS and v is not None else v
                    for k, v in r.items()
                }
            )
        return write_text(path, buf.getvalue())

    def import_csv(self, path: str | Path) -> int:
        """Add benchmark rows from an :meth:`export_csv` file (without their run links).

        Returns the number of new rows; rows already present (same ``uid``) are skipped.
        """
        types = TABLES["benchmarks"]
        if Path(path).is_dir():
            raise DataError(f"{path}: is a folder; pass a .csv results export")
        try:
            with open(path, newline="", encoding="utf-8") as f:
                records = list(csv.DictReader(f))
        except (OSError, csv.Error, UnicodeDecodeError) as e:
            raise DataError(f"{path}: cannot read results CSV ({e})") from None
        if records and not {"uid", "target", "runtime"} <= set(records[0]):
            raise DataError(
                f"{path}: not an edgesmith results CSV (no uid/target/runtime columns)"
            )
        rows = []
        for n, rec in enumerate(records, start=2):  # line 1 is the header
            where = f"{path}: line {n}"
            if None in rec or any(v is None for v in rec.values()):
                raise DataError(f"{where}: the number of cells differs from the header (truncated?)")
            try:
                row = {k: _parse(k, types[k], v) for k, v in rec.items() if k in types and k != "id"}
            except (ValueError, RecursionError) as e:
                raise DataError(f"{where}: a cell does not parse ({str(e)[:80] or type(e).__name__})") from None
            _check_row("benchmarks", row, where)
            rows.append(row)
        added = 0
        with self._tx():
            for row in rows:
                added += bool(self._insert("benchmarks", {**row, "run_id": None}, ignore=True))
        return added


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a measurement")


def _check_row(table: str, row: dict[str, Any], where: str) -> None:
    """Refuse a row a dashboard could not draw: no uid, non-finite or mistyped numbers."""
    types = TABLES[table]
    if table == "benchmarks" and not (isinstance(row.get("uid"), str) and row["uid"].strip()):
        raise DataError(f"{where}: no uid; every measurement needs one (re-export the results)")
    for k, v in row.items():
        t = types.get(k, "")
        if v is None or k in JSON_COLUMNS:
            continue
        if t.startswith("INTEGER") and (isinstance(v, bool) or not isinstance(v, int)):
            raise DataError(f"{where}: {k} must be an integer, got {v!r}")
        if t.startswith("REAL"):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise DataError(f"{where}: {k} must be a finite number, got {v!r}")


def _parse(column: str, sql_type: str, text: str) -> Any:
    """A CSV cell back to its column's type; an empty cell is ``None``."""
    if text == "":
        return None
    if column in JSON_COLUMNS:
        return json.loads(text, parse_constant=_no_constant)
    if sql_type.startswith("INTEGER"):
        return int(text)
    return float(text) if sql_type == "REAL" else text
