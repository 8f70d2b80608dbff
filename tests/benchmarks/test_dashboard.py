"""edgesmith.benchmarks.dashboard: the HTML page, checked as text and in headless Chromium."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from edgesmith.benchmarks.dashboard import render
from edgesmith.benchmarks.store import ResultsStore
from edgesmith.errors import EdgesmithError

DATA = Path(__file__).parent / "data"
CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ResultsStore:
    """Two real runs, a copy of one whose final stage got slower on torch, and a failed ssh row."""
    s = ResultsStore(tmp_path_factory.mktemp("dash") / "results.db")
    runs = [
        json.loads((DATA / f"{n}.summary.json").read_text())
        for n in ("digits-quick", "minilm-sentiment")
    ]
    regressed = copy.deepcopy(runs[0])
    regressed["recipe"], regressed["out"] = "digits-regressed", "</script><b>not markup</b>"
    bench = next(
        b for b in regressed["benchmarks"] if (b["model"], b["runtime"]) == ("lowrank", "torch")
    )
    bench["latency_ms"].update(p50=0.9, p50_ci=[0.87, 0.93])  # slower than the teacher's 0.62 ms
    for summary in [*runs, regressed]:
        s.add_run(summary, source=summary["out"])
    s.add_benchmark({"target": "ssh", "runtime": "onnxruntime", "model": "lowrank",
                     "error": "ssh: connect to host pi.local port 22: Connection refused"},
                    recipe="digits-quick")  # fmt: skip
    return s


@pytest.fixture(scope="module")
def page(store: ResultsStore) -> Path:
    return render(store, store.path.with_name("report.html"))


class _Scripts(HTMLParser):
    """Collects ``<script>`` bodies by type and every attribute value of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[tuple[str, str]] = []
        self.attrs: list[tuple[str, str]] = []
        self._type: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.attrs += [(k, v or "") for k, v in attrs]
        if tag == "script":
            self._type = dict(attrs).get("type") or "text/javascript"
            self.scripts.append((self._type, ""))

    def handle_data(self, data: str) -> None:
        if self._type is not None:
            self.scripts[-1] = (self._type, self.scripts[-1][1] + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._type = None


def test_page_embeds_every_run_and_measurement(store: ResultsStore, page: Path) -> None:
    text = page.read_text()
    parser = _Scripts()
    parser.feed(text)
    (data_json,) = [body for kind, body in parser.scripts if kind == "application/json"]
    data = json.loads(data_json)
    assert [r["recipe"] for r in data["runs"]] == [
        "digits-quick",
        "minilm-sentiment",
        "digits-regressed",
    ]
    assert data["runs"][2]["source"] == "</script><b>not markup</b>"  # escaped, not markup
    assert [b["id"] for b in data["benchmarks"]] == [r["id"] for r in store.rows()] and len(
        data["benchmarks"]
    ) == 13
    assert sum(b["error"] is not None for b in data["benchmarks"]) == 3
    assert [s["name"] for s in data["runs"][0]["stages"]] == [
        "teacher",
        "distill",
        "prune",
        "lowrank",
    ]
    assert len([k for k, _ in parser.scripts if k == "text/javascript"]) == 1


def test_page_is_self_contained(page: Path) -> None:
    text = page.read_text()
    parser = _Scripts()
    parser.feed(text)
    for m in re.finditer("http", text, re.IGNORECASE):
        assert re.search(r'xmlns(:\w+)?="$', text[m.start() - 12 : m.start()]), text[
            m.start() - 60 : m.end() + 40
        ]
    assert not [v for k, v in parser.attrs if k in ("src", "href")]
    assert "<link" not in text and "@import" not in text and "fetch(" not in text


def test_render_refuses_what_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(EdgesmithError, match="no such results database"):
        render(tmp_path / "missing.db", tmp_path / "r.html")
    (tmp_path / "notes.db").write_text("hello")
    with pytest.raises(EdgesmithError, match="not an edgesmith results database"):
        render(tmp_path / "notes.db", tmp_path / "r.html")
    assert not (tmp_path / "missing.db").exists() and not (tmp_path / "r.html").exists()


def _chromium(*args: str) -> str:
    assert CHROMIUM is not None
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-dev-shm-usage", *args]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _hw_rows(dom: str) -> list[str]:
    table = re.search(r'<table id="hw">.*?<tbody>(.*?)</tbody>', dom, re.S)
    assert table, "hardware table not rendered"
    return re.findall(r"<tr\b.*?</tr>", table.group(1), re.S)


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"
)
def test_dashboard_in_headless_chromium(store: ResultsStore, page: Path, tmp_path: Path) -> None:
    rows = store.rows()
    dom = _chromium(f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.as_uri())
    assert 'data-rendered="13"' in dom  # the script ran over every row
    hw = _hw_rows(dom)
    assert len(hw) == 13 and sum('class="failed"' in r for r in hw) == 3
    assert "Connection refused" in dom
    for name in ("onnxruntime", "torch"):
        assert f'<option value="{name}">{name}</option>' in dom
    assert '<option value="ssh">ssh</option>' in dom and '<option value="digits-regressed">' in dom
    plotted = sum(
        r["error"] is None and r["accuracy"] is not None for r in rows if r["target"] == "cpu"
    )
    assert dom.count('class="pt"') == 2 * plotted  # latency and size plots
    assert dom.count("<svg") - dom.count('id="svg-ns"') == 2 * 3  # 3 recipes on cpu
    regressed = re.search(r'data-run="3".*?</table>', dom, re.S).group(0)
    slower = re.findall(
        r'<tr data-stage="(\w+)">(?:(?!</tr>).)*class="badge">slower', regressed, re.S
    )
    assert slower == ["lowrank"] and dom.count('class="num slower"') == 1

    # The budget and runtime come from the URL fragment: only rows that meet them, best first.
    budget_dom = _chromium(
        f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom",
        page.as_uri() + "#budget=0.05&runtime=onnxruntime",
    )
    meet = [
        r for r in rows if r["runtime"] == "onnxruntime" and r["error"] is None and r["p50"] <= 0.05
    ]
    assert len(_hw_rows(budget_dom)) == len(meet) == 4
    n_ort = sum(r["runtime"] == "onnxruntime" for r in rows)
    assert f"{len(meet)} of {n_ort} measurements meet p50 ≤ 0.05 ms" in budget_dom
    assert re.search(
        r'<tr class="best"[^>]*>(?:(?!</tr>).)*teacher', budget_dom, re.S
    )  # 95.26% beats 93.04%

    shot = tmp_path / "dashboard.png"
    _chromium(
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        "--window-size=1400,1800",
        page.as_uri(),
    )
    filtered = tmp_path / "dashboard-digits-regressed.png"  # one recipe: the slower badge in view
    _chromium(
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={filtered}",
        "--window-size=1400,1800",
        page.as_uri() + "#recipe=digits-regressed",
    )
    keep = Path(os.environ.get("EDGESMITH_TEST_ARTIFACTS", Path(__file__).parents[2] / ".test-artifacts"))
    keep.mkdir(parents=True, exist_ok=True)
    for png in (shot, filtered):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
        shutil.copy(png, keep / png.name)  # the test artifact CI keeps
        print(f"dashboard screenshot: {keep / png.name}")
