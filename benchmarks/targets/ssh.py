"""A machine reached over ssh: the model is copied (scp) into a temporary folder
there and each point runs ``python -m edgesmith.benchmarks.worker SPEC OUT`` in a
fresh remote process; the JSON result is fetched back, with the remote machine's
fingerprint in it.

The remote needs Python with edgesmith (and the model's runtime) installed:
``--remote-python`` names that interpreter (default ``python3``). ssh runs with
``BatchMode=yes`` (keys only, never a password prompt) and ``ConnectTimeout``, so
an unreachable host or a refused key is an ``error`` row within seconds, not a hang::

    edgesmith bench student.onnx --target ssh://pi@raspberrypi --remote-python /home/pi/venv/bin/python
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from edgesmith.atomic import write_json
from edgesmith.benchmarks.latency import THREAD_ENV
from edgesmith.benchmarks.targets.base import Target, last_line
from edgesmith.errors import UserError

REMOTE_PREFIX = "edgesmith-bench."
SSH_EXIT_CONNECT = 255  # ssh's own status for connection, host key and auth failures


class SshTarget(Target):
    """``ssh://[user@]host[:port]``.

    Args:
        url: The target URL.
        remote_python: Python interpreter on the remote host that has edgesmith.
        identity_file: Private key to authenticate with (ssh ``-i``).
        ssh_options: Extra ``-o`` options (``"Key=value"``), given before the
            defaults so they override them (ssh keeps the first value of an option).
        connect_timeout: Seconds ssh waits for the connection.
        timeout_s: Wall-clock limit of one remote measurement.

    Raises:
        EdgesmithError: A malformed URL.
    """

    options = ("remote_python", "identity_file", "ssh_options", "connect_timeout", "timeout_s")

    def __init__(
        self,
        url: str,
        remote_python: str = "python3",
        identity_file: str | None = None,
        ssh_options: tuple[str, ...] | list[str] = (),
        connect_timeout: int = 10,
        timeout_s: float = 600,
    ) -> None:
        super().__init__(url)
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            raise UserError(
                f"--target {url}: bad port; expected ssh://user@host[:port]"
            ) from None
        if (
            parts.scheme != "ssh"
            or not parts.hostname
            or parts.path not in ("", "/")
            or parts.password
        ):
            raise UserError(
                f"--target {url}: expected ssh://user@host[:port] (keys only, no password)"
            )
        self.user, self.host, self.port = parts.username, parts.hostname, port
        self.remote_python = remote_python
        self.identity_file = identity_file
        self.ssh_options = list(ssh_options)
        self.connect_timeout = int(connect_timeout)
        self.timeout_s = timeout_s
        self.remote_dir: str | None = None
        self.remote_model: str | None = None
        self.error: str | None = None
        self._local = tempfile.TemporaryDirectory(prefix="edgesmith-ssh-")

    # ------------------------------------------------------------ commands
    def _opts(self) -> list[str]:
        opts = [a for o in self.ssh_options for a in ("-o", o)]
        opts += [
            "-o",
            "BatchMode=yes",
            "-o",
            f"ConnectTimeout={self.connect_timeout}",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            "LogLevel=ERROR",
        ]
        if self.identity_file:
            opts += ["-i", str(self.identity_file), "-o", "IdentitiesOnly=yes"]
        return opts

    @property
    def _dest(self) -> str:
        return f"{self.user}@{self.host}" if self.user else self.host

    def ssh_command(self, remote_command: str) -> list[str]:
        """The ``ssh`` argv that runs ``remote_command`` (a shell string) on the host."""
        port = ["-p", str(self.port)] if self.port else []
        return ["ssh", *port, *self._opts(), self._dest, remote_command]

    def scp_command(self, sources: list[str], dest: str) -> list[str]:
        """The ``scp`` argv copying ``sources`` to ``dest`` (``:`` prefix = remote path)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        remote = f"{self.user}@{host}" if self.user else host

        def where(p: str) -> str:
            return f"{remote}:{p[1:]}" if p.startswith(":") else p

        port = ["-P", str(self.port)] if self.port else []
        return ["scp", "-q", *port, *self._opts(), *(where(s) for s in sources), where(dest)]

    def _run(
        self, argv: list[str], timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout or self.connect_timeout + 120,
        )

    def _failed(self, what: str, proc: subprocess.CompletedProcess[str]) -> str:
        why = last_line(proc.stderr) or last_line(proc.stdout) or f"exit status {proc.returncode}"
        return f"{self.url}: {what} failed: {why}"

    # ------------------------------------------------------------- stages
    def prepare(self, model: str | os.PathLike) -> None:
        """Check the remote Python imports edgesmith, make a temporary folder there
        and copy ``model`` (and ``model.data`` external weights, if any) into it."""
        if self.remote_dir is not None or self.error is not None:
            return
        path = Path(model)
        py = shlex.quote(self.remote_python)
        probe = f"{py} -c {shlex.quote('import edgesmith.benchmarks.worker')} && mktemp -d /tmp/{REMOTE_PREFIX}XXXXXX"
        try:
            proc = self._run(self.ssh_command(probe))
        except (OSError, subprocess.TimeoutExpired) as e:
            self.error = f"{self.url}: ssh did not run: {e}"
            return
        if proc.returncode == SSH_EXIT_CONNECT:
            self.error = self._failed("ssh connection", proc)
            return
        if proc.returncode != 0:
            self.error = (
                f"{self.url}: remote '{self.remote_python}' cannot import edgesmith "
                f"({last_line(proc.stderr) or 'exit status ' + str(proc.returncode)}); "
                "install edgesmith there or pass --remote-python PATH"
            )
            return
        self.remote_dir = last_line(proc.stdout)
        files = [str(path)] + [str(p) for p in [path.with_name(path.name + ".data")] if p.is_file()]
        try:
            proc = self._run(
                self.scp_command(files, f":{self.remote_dir}/"), timeout=self.timeout_s
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            self.error = f"{self.url}: copying {path.name} failed: {e}"
            return
        if proc.returncode != 0:
            self.error = self._failed(f"copying {path.name}", proc)
            return
        self.remote_model = f"{self.remote_dir}/{path.name}"

    def measure(
        self,
        model: str | os.PathLike,
        runtime: str | None,
        inputs: dict[str, np.ndarray],
        threads: int = 1,
        warmup: int = 10,
        iterations: int = 100,
        min_seconds: float = 1.0,
    ) -> dict[str, Any]:
        ident = {
            "runtime": runtime,
            "model": str(model),
            "threads": threads,
            "device": self.device,
            "target": self.url,
        }
        self.prepare(model)
        if self.error is not None:
            return {**ident, "error": self.error}
        rdir = self.remote_dir
        local = Path(self._local.name)
        np.savez(local / "inputs.npz", **inputs)
        write_json(
            local / "spec.json",
            {
                "runtime": runtime,
                "model": self.remote_model,
                "threads": threads,
                "device": self.device,
                "inputs": f"{rdir}/inputs.npz",
                "warmup": warmup,
                "iterations": iterations,
                "min_seconds": min_seconds,
            },
        )
        env = " ".join(f"{k}={threads}" for k in THREAD_ENV)
        q = shlex.quote
        run = (
            f"cd {q(rdir)} && rm -f out.json && env {env} {q(self.remote_python)} "
            "-m edgesmith.benchmarks.worker spec.json out.json"
        )
        try:
            proc = self._run(
                self.scp_command([str(local / "spec.json"), str(local / "inputs.npz")], f":{rdir}/")
            )
            if proc.returncode != 0:
                return {**ident, "error": self._failed("copying the inputs", proc)}
            worker = self._run(self.ssh_command(run), timeout=self.timeout_s)
            if worker.returncode == SSH_EXIT_CONNECT:
                return {**ident, "error": self._failed("ssh connection", worker)}
            (local / "out.json").unlink(missing_ok=True)
            proc = self._run(self.scp_command([f":{rdir}/out.json"], str(local / "out.json")))
        except subprocess.TimeoutExpired as e:
            return {**ident, "error": f"{self.url}: timed out after {e.timeout:g} s"}
        except OSError as e:
            return {**ident, "error": f"{self.url}: ssh did not run: {e}"}
        try:
            result = json.loads((local / "out.json").read_text())
        except (OSError, ValueError):
            why = (
                last_line(worker.stderr)
                or last_line(proc.stderr)
                or f"exit status {worker.returncode}"
            )
            return {**ident, "error": f"{self.url}: remote benchmark worker failed: {why}"}
        result.setdefault("error", None)
        if result["error"]:
            result["error"] = f"{self.url}: {result['error']}"
        return {**result, "model": str(model), "target": self.url}

    def close(self) -> None:
        if self.remote_dir is not None and Path(self.remote_dir).name.startswith(REMOTE_PREFIX):
            try:
                self._run(self.ssh_command(f"rm -rf {shlex.quote(self.remote_dir)}"))
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.remote_dir = self.remote_model = None
        self._local.cleanup()
