"""``edgesmith demo BUNDLE``: the browser demo (``android-demo/web``) served for one
bundle on 127.0.0.1. The page runs the bundle's ONNX file with onnxruntime-web (WASM,
SIMD) and the Android core's logic ported to JavaScript: classify an image, compare two
sentences, a latency panel. Its drift hook POSTs reports to ``/telemetry``; each valid
report is appended as one JSON line to a file (the Python hook's sink format).

Routes: ``/`` and the page's own files; ``/ort/`` onnxruntime-web's ``dist`` folder;
``/bundle/`` the manifest and only the files it lists (after the bundle verified);
``POST /telemetry``. Responses carry the cross-origin isolation headers that let
onnxruntime-web use threads.

Example:
    >>> from edgesmith.bundle.demo import DemoServer
    >>> with DemoServer("runs/digits-quick/bundle", port=0) as server:  # doctest: +SKIP
    ...     print(server.url)
"""

from __future__ import annotations

import json
import mimetypes
import os
import threading
import webbrowser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

from edgesmith.bundle.manifest import MANIFEST, read_manifest
from edgesmith.bundle.telemetry.monitor import REPORT_SCHEMA
from edgesmith.errors import DataError, RecipeError

WEB = Path(__file__).resolve().parents[1] / "android-demo" / "web"
ORT_DIST = WEB / "node_modules" / "onnxruntime-web" / "dist"
PAGE_SUFFIXES = (".html", ".js", ".css")
ORT_SUFFIXES = (".mjs", ".js", ".wasm", ".map")
MAX_REPORT = 1 << 20
TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
         ".json": "application/json", ".html": "text/html; charset=utf-8", ".css": "text/css"}


class DemoServer:
    """The demo's HTTP server for one verified bundle, on 127.0.0.1.

    Args:
        bundle: The bundle folder (or its ``edgesmith.json``).
        port: Port to listen on; 0 takes a free one.
        telemetry: JSON-lines file the posted drift reports are appended to; None:
            ``demo-telemetry.jsonl`` beside the bundle folder.

    Raises:
        BundleError: The bundle does not verify (one line, naming the file).
        DataError: onnxruntime-web is not installed (``npm ci`` in android-demo/web).
        RecipeError: The port is taken.
    """

    def __init__(self, bundle: str | os.PathLike, port: int = 8765, telemetry: str | os.PathLike | None = None):
        root = Path(bundle)
        self.bundle = (root.parent if root.name == MANIFEST else root).resolve()
        manifest = read_manifest(self.bundle)
        self.files = {MANIFEST, *(c["path"] for c in manifest.get("checksums", []))}
        if not (ORT_DIST / "ort.wasm.min.mjs").is_file():
            raise DataError(f"{ORT_DIST}: onnxruntime-web is not installed; run `npm ci` in {WEB} (./setup.sh does)")
        self.telemetry = Path(telemetry) if telemetry else self.bundle.parent / "demo-telemetry.jsonl"
        self.received = 0
        self._lock = threading.Lock()
        try:
            self.httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        except OSError as e:
            raise RecipeError("--port", f"cannot listen on 127.0.0.1:{port} ({e.strerror}); pick another, "
                                        "or 0 for any free port") from None
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def append(self, report: dict) -> None:
        """Append one report to the telemetry file (one unbuffered write per line)."""
        line = json.dumps(report, separators=(",", ":")) + "\n"
        with self._lock:
            self.telemetry.parent.mkdir(parents=True, exist_ok=True)
            with open(self.telemetry, "ab", buffering=0) as f:
                f.write(line.encode())
            self.received += 1

    def start(self) -> DemoServer:
        """Serve in a background thread (tests, notebooks)."""
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="edgesmith-demo", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
        self.httpd.server_close()

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _handler(server: DemoServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet: the CLI prints the URL only
            pass

        def _send(self, code: int, body: bytes = b"", ctype: str = "text/plain; charset=utf-8") -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")  # threads need SharedArrayBuffer
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
            self.end_headers()
            if self.command != "HEAD":
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the page navigated away mid-download
                    pass

        def _file(self, path: Path) -> None:
            ctype = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            self._send(200, path.read_bytes(), ctype)

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = unquote(urlsplit(self.path).path)
            if path in ("/", "/index.html"):
                return self._file(WEB / "index.html")
            name = path[1:]
            if "/" not in name and name.endswith(PAGE_SUFFIXES) and (WEB / name).is_file():
                return self._file(WEB / name)
            if path.startswith("/ort/"):
                name = path[len("/ort/"):]
                if "/" not in name and name.endswith(ORT_SUFFIXES) and (ORT_DIST / name).is_file():
                    return self._file(ORT_DIST / name)
            if path.startswith("/bundle/"):
                rel = path[len("/bundle/"):]
                if rel in server.files:  # only what the verified manifest lists (safe paths)
                    return self._file(server.bundle / rel)
            self._send(404, f"not found: {path}\n".encode())

        do_HEAD = do_GET

        def do_POST(self) -> None:  # noqa: N802
            if urlsplit(self.path).path != "/telemetry":
                return self._send(404, b"POST drift reports to /telemetry\n")
            n = int(self.headers.get("Content-Length") or 0)
            if not 0 < n <= MAX_REPORT:
                return self._send(413 if n else 411, b"one drift report, at most 1 MB\n")
            try:
                report = json.loads(self.rfile.read(n))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                return self._send(400, f"not JSON: {e}\n".encode())
            if not isinstance(report, dict) or report.get("schema") != REPORT_SCHEMA:
                return self._send(400, f"not a drift report (schema {REPORT_SCHEMA})\n".encode())
            server.append(report)
            self._send(204)

    return Handler


def serve(bundle: str | os.PathLike, port: int = 8765, open_browser: bool = True,
          telemetry: str | os.PathLike | None = None) -> None:
    """Serve the demo for ``bundle`` until interrupted; prints the URL (and opens it)."""
    import click

    server = DemoServer(bundle, port, telemetry)
    click.echo(f"edgesmith demo: {server.bundle} at {server.url}")
    click.echo(f"drift reports posted by the page go to {server.telemetry}; Ctrl-C stops")
    if open_browser:
        webbrowser.open(server.url)
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        click.echo(f"stopped; {server.received} drift report(s) received")
    finally:
        server.httpd.server_close()
