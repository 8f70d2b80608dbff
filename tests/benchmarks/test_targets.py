"""Benchmark targets: a real benchmark through a local sshd, ssh failures as error rows,
LiteRT benchmark_model output parsed from real recorded logs, adb command lines and
the no-device error row."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from edgesmith.benchmarks.store import ResultsStore
from edgesmith.benchmarks.sweep import sweep
from edgesmith.benchmarks.targets import TARGETS, get_target
from edgesmith.benchmarks.targets.adb import AdbTarget, parse_benchmark_output, to_result
from edgesmith.benchmarks.targets.ssh import SshTarget
from edgesmith.cli import main
from edgesmith.errors import EdgesmithError, UserError

LOGS = Path(__file__).with_name("data") / "benchmark_model"
SSHD = Path("/usr/sbin/sshd")
# Every registered target and the test(s) below that exercise it.
TESTED = {
    "cpu": "test_local_targets",
    "cuda": "test_local_targets",
    "ssh": "test_ssh_real_benchmark_through_cli",
    "adb": "test_adb_no_device_is_an_error_row",
}


def test_every_target_is_tested() -> None:
    assert set(TARGETS) == set(TESTED)


def test_local_targets() -> None:
    assert get_target("cpu").device == "cpu" and get_target("cuda").device == "cuda"
    with pytest.raises(EdgesmithError, match="--target tpu: unknown target"):
        get_target("tpu")
    with pytest.raises(EdgesmithError, match="--remote-python: not an option of cpu targets"):
        get_target("cpu", remote_python="python3")


@pytest.fixture(scope="module")
def token_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Embedding lookup masked by attention_mask: ids [batch, seq] -> [batch, seq, 4]."""
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 4])
    table = numpy_helper.from_array(np.arange(8000, dtype=np.float32).reshape(2000, 4), "table")
    axis = numpy_helper.from_array(np.array([-1], np.int64), "axis")
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["e"]),
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m", "axis"], ["m3"]),
        helper.make_node("Mul", ["e", "m3"], ["y"]),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "tok", [ids, mask], [y], [table, axis]),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 10  # onnxruntime 1.31 reads IR <= 13
    path = tmp_path_factory.mktemp("ssh-model") / "tok.onnx"
    onnx.save(model, str(path))
    return path


# ------------------------------------------------------------------------- ssh
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sshd:
    """An unprivileged-port sshd on 127.0.0.1 with its own host key and one client key."""

    def __init__(self, root: Path) -> None:
        self.root, self.port, self.user = root, _free_port(), getpass.getuser()
        for name in ("host_key", "client_key", "other_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(root / name)], check=True
            )
        shutil.copy(root / "client_key.pub", root / "authorized_keys")
        host_pub = (root / "host_key.pub").read_text().split()[:2]
        (root / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {' '.join(host_pub)}\n")
        sftp = next(
            (
                p
                for p in ("/usr/lib/openssh/sftp-server", "/usr/libexec/sftp-server")
                if Path(p).exists()
            ),
            "internal-sftp",
        )
        (root / "sshd_config").write_text(
            "\n".join(
                [
                    "ListenAddress 127.0.0.1",
                    f"HostKey {root / 'host_key'}",
                    f"AuthorizedKeysFile {root / 'authorized_keys'}",
                    f"PidFile {root / 'sshd.pid'}",
                    "StrictModes no",
                    "UsePAM no",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PubkeyAuthentication yes",
                    "PermitRootLogin prohibit-password",
                    f"Subsystem sftp {sftp}",
                    "",
                ]
            )
        )
        self.proc = subprocess.Popen(
            [str(SSHD), "-D", "-e", "-f", str(root / "sshd_config"), "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=open(root / "sshd.log", "w"),
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(root / 'sshd.log').read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("sshd did not start listening")

    @property
    def url(self) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}"

    def options(self, key: str = "client_key") -> dict:
        return {
            "remote_python": sys.executable,
            "identity_file": str(self.root / key),
            "ssh_options": (
                f"UserKnownHostsFile={self.root / 'known_hosts'}",
                "StrictHostKeyChecking=yes",
                "GlobalKnownHostsFile=/dev/null",
            ),
        }

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    if not SSHD.exists() or shutil.which("ssh") is None or shutil.which("scp") is None:
        pytest.skip(
            "needs /usr/sbin/sshd, ssh and scp: apt-get install openssh-server (setup.sh does)"
        )
    if os.geteuid() == 0 and not Path("/run/sshd").is_dir():
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
    root = tmp_path_factory.mktemp("sshd")
    root.chmod(stat.S_IRWXU)
    server = Sshd(root)
    yield server
    server.stop()


def test_ssh_real_benchmark_through_cli(sshd: Sshd, token_onnx: Path, tmp_path: Path) -> None:
    db = tmp_path / "results.db"
    o = sshd.options()
    args = [
        "bench",
        str(token_onnx),
        "--target",
        sshd.url,
        "--remote-python",
        o["remote_python"],
        "--ssh-identity",
        o["identity_file"],
        "--seq-len",
        "8,32",
        "--iterations",
        "20",
        "--min-seconds",
        "0.05",
        "--db",
        str(db),
    ]
    for opt in o["ssh_options"]:
        args += ["--ssh-option", opt]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    with ResultsStore(db) as store:
        rows = store.rows()
    assert len(rows) == 2 and not any(r["error"] for r in rows), [r["error"] for r in rows]
    assert {r["seq_len"] for r in rows} == {8, 32} and {r["target"] for r in rows} == {sshd.url}
    for r in rows:
        assert 0 < r["p50_ci_lo"] <= r["p50"] <= r["p50_ci_hi"] and r["n"] >= 20
        assert r["model_size_bytes"] == token_onnx.stat().st_size and r["peak_rss_mb"] > 10
        assert r["host"] == socket.gethostname() and r["cpu_model"]  # the remote's fingerprint
        assert (
            r["fingerprint"]["threads"]["OMP_NUM_THREADS"] == "1"
        )  # thread variables reached the remote


def test_ssh_target_cleans_up_and_reports_worker_errors(sshd: Sshd, token_onnx: Path) -> None:
    with SshTarget(sshd.url, **sshd.options()) as t:
        good = t.measure(
            token_onnx,
            "onnxruntime",
            {"input_ids": np.ones((1, 4), np.int64), "attention_mask": np.ones((1, 4), np.int64)},
            iterations=5,
            min_seconds=0.0,
        )
        remote_dir = t.remote_dir
        assert good["error"] is None and good["latency_ms"]["n"] >= 5 and good["target"] == sshd.url
        assert Path(remote_dir, "tok.onnx").is_file()  # the "remote" is this machine
        bad = t.measure(
            token_onnx, "onnxruntime", {"wrong_name": np.ones((1, 4), np.int64)}, iterations=5
        )
        assert bad["error"].startswith(sshd.url + ": ") and "\n" not in bad["error"]
        assert "wrong_name" in bad["error"] or "input" in bad["error"].lower()
        assert not bad.get("latency_ms")
    assert not Path(remote_dir).exists()


@pytest.mark.parametrize("case", ["refused", "auth", "no-edgesmith"])
def test_ssh_failures_are_error_rows(case: str, sshd: Sshd, token_onnx: Path) -> None:
    url, opts = sshd.url, sshd.options()
    if case == "refused":
        url = f"ssh://{sshd.user}@127.0.0.1:{_free_port()}"
    elif case == "auth":
        opts = sshd.options("other_key")  # not in authorized_keys
    else:
        opts["remote_python"] = (
            "/usr/bin/python3" if Path("/usr/bin/python3").exists() else "python-none"
        )
    t0 = time.monotonic()
    rows = sweep(
        token_onnx, target=url, seq_lens=[8, 16], iterations=5, min_seconds=0.0, target_options=opts
    )
    assert time.monotonic() - t0 < 30  # BatchMode + ConnectTimeout: no prompt, no hang
    assert len(rows) == 2 and all(r["latency_ms"] is None for r in rows)
    err = rows[0]["error"]
    assert err.startswith(url + ": ") and "\n" not in err and rows[1]["error"] == err
    expected = {
        "refused": "Connection refused",
        "auth": "Permission denied",
        "no-edgesmith": "cannot import edgesmith",
    }[case]
    assert expected in err, err
    if case == "no-edgesmith":
        assert "--remote-python" in err


def test_ssh_url_errors() -> None:
    for bad in ("ssh://", "ssh://host:99999", "ssh://u:secret@host", "ssh://host/path"):
        with pytest.raises(EdgesmithError, match="expected ssh://user@host"):
            get_target(bad)
    t = get_target("ssh://pi@raspberrypi", remote_python="/opt/venv/bin/python")
    assert isinstance(t, SshTarget) and (t.user, t.host, t.port) == ("pi", "raspberrypi", None)
    argv = t.ssh_command("true")
    assert argv[0] == "ssh" and argv[-2:] == ["pi@raspberrypi", "true"]
    assert "BatchMode=yes" in argv and any(a.startswith("ConnectTimeout=") for a in argv)
    assert t.scp_command(["a.onnx"], ":/tmp/x/")[-2:] == ["a.onnx", "pi@raspberrypi:/tmp/x/"]
    t.close()


# ------------------------------------------------------------------------- adb
# Numbers as printed in each recorded log (us and MB), asserted exactly after parsing.
RECORDED = {
    "android-tensorflow-42507.txt": dict(
        runs=dict(count=50, first=32891, curr=33978, min=32641, max=34005, avg=33209.4, std=450),
        warmup=dict(count=15, first=49060, curr=33682, min=32825, max=49060, avg=34825.1, std=3930),
        summary=(855, 49060, 34825.1, 33209.4),
        memory=dict(init=0.0, overall=12.8672, kind="peak", peak_monitored=None),
        size=0.004448,
    ),
    "raspberrypi-xnnpack-999.txt": dict(
        runs=dict(count=50, first=58154, curr=53809, min=53077, max=60727, avg=55043.2, std=1562),
        warmup=dict(count=9, first=64791, curr=56295, min=54873, max=65831, avg=57758.2, std=4065),
        summary=(18777, 64791, 57758.2, 55043.2),
        memory=dict(init=8.97656, overall=18.7227, kind="delta", peak_monitored=None),
        size=3.67827,
    ),
    "linux-info-prefix-tensorflow-73862.txt": dict(
        runs=dict(count=74, first=14850, curr=13315, min=13105, max=15765, avg=13520.2, std=470),
        warmup=dict(count=37, first=14744, curr=15520, min=13164, max=18295, avg=13764.3, std=967),
        summary=(12750, 14744, 13764.3, 13520.2),
        memory=None,
        size=16.9008,
    ),
    "riscv-qemu-meta-tensorflow-lite.txt": dict(
        runs=dict(
            count=50,
            first=2990275,
            curr=2913402,
            min=2727568,
            max=3189954,
            avg=2.95034e06,
            std=109798,
        ),
        warmup=dict(count=1, curr=3512391),
        summary=(17187, 3512391, 3.51239e06, 2.95034e06),
        memory=dict(init=4.21094, overall=46.0859, kind="delta", peak_monitored=None),
        size=16.9008,
    ),
    "android-2018-yuenshome-77.txt": dict(
        runs=dict(count=15, first=66753, curr=66800, min=66699, max=66838, avg=66767.6, std=39),
        warmup=dict(
            count=7, first=127425, curr=66709, min=66709, max=127425, avg=76605.9, std=20944
        ),
        summary=(9933, None, 76605.9, 66767.6),
        memory=None,
        size=None,
    ),
}


def _ms(d: dict) -> dict:
    return {k: (v if k == "count" else v / 1000) for k, v in d.items()}


def test_every_recorded_log_has_expectations() -> None:
    assert {p.name for p in LOGS.glob("*.txt")} == set(RECORDED)
    for p in LOGS.glob("*.txt"):
        header = [ln for ln in p.read_text().splitlines()[:8] if ln.startswith("# ")]
        assert any(ln.startswith("# https://github.com/") for ln in header), p.name


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_parse_recorded_benchmark_model_output(name: str) -> None:
    want = RECORDED[name]
    got = parse_benchmark_output((LOGS / name).read_text())
    assert got["runs"] == pytest.approx(_ms(want["runs"]), rel=1e-12)
    assert got["warmup"] == pytest.approx(_ms(want["warmup"]), rel=1e-12)
    init, first, warm, inf = want["summary"]
    assert got["init_ms"] == pytest.approx(init / 1000) and got[
        "inference_avg_ms"
    ] == pytest.approx(inf / 1000)
    assert got["warmup_avg_ms"] == pytest.approx(warm / 1000)
    assert got["first_ms"] == (None if first is None else pytest.approx(first / 1000))
    assert got["memory_mb"] == want["memory"] and got["model_size_mb"] == want["size"]
    row = to_result(got)
    lat = row["latency_ms"]
    assert (
        lat["mean"] == pytest.approx(want["runs"]["avg"] / 1000)
        and lat["n"] == want["runs"]["count"]
    )
    assert lat["min"] == pytest.approx(want["runs"]["min"] / 1000) and lat["std"] == pytest.approx(
        want["runs"]["std"] / 1000
    )
    assert lat["p50"] is None and lat["p99"] is None and "no percentiles" in row["latency_note"]
    assert row["peak_rss_mb"] == (None if want["memory"] is None else want["memory"]["overall"])


def test_parse_failed_run_is_one_line() -> None:
    text = "STARTING!\nGraph: [/data/local/tmp/x.tflite]\nERROR: Could not open '/data/local/tmp/x.tflite'.\n"
    with pytest.raises(EdgesmithError, match="no 'Inference timings' line: ERROR: Could not open"):
        parse_benchmark_output(text)


def test_adb_command_lines(tmp_path: Path) -> None:
    t = get_target("adb://R58M123ABC")
    assert isinstance(t, AdbTarget) and t.serial == "R58M123ABC" and not t.takes_inputs
    assert t.push_commands("out/model.tflite") == [
        ["adb", "-s", "R58M123ABC", "shell", "mkdir", "-p", "/data/local/tmp/edgesmith"],
        [
            "adb",
            "-s",
            "R58M123ABC",
            "push",
            "out/model.tflite",
            "/data/local/tmp/edgesmith/model.tflite",
        ],
    ]
    assert t.run_command(
        "out/model.tflite", threads=2, warmup=5, iterations=50, min_seconds=1.0
    ) == [
        "adb",
        "-s",
        "R58M123ABC",
        "shell",
        "/data/local/tmp/benchmark_model",
        "--graph=/data/local/tmp/edgesmith/model.tflite",
        "--num_threads=2",
        "--num_runs=50",
        "--warmup_runs=5",
        "--min_secs=1",
    ]
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF")
    t = get_target("adb", benchmark_model=str(binary))
    assert t.push_commands("m.tflite")[-2:] == [
        ["adb", "push", str(binary), "/data/local/tmp/edgesmith/benchmark_model"],
        ["adb", "shell", "chmod", "755", "/data/local/tmp/edgesmith/benchmark_model"],
    ]
    with pytest.raises(EdgesmithError, match="expected adb or adb://SERIAL"):
        get_target("adb://bad serial")


def test_adb_no_device_is_an_error_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "m.tflite"
    model.write_bytes(
        b"TFL3" + bytes(60)
    )  # never read locally: benchmark_model makes its own inputs
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    rows = sweep(model, target="adb", threads=[1, 2], batches=[1, 8], iterations=5)
    assert len(rows) == 2 and [r["threads"] for r in rows] == [1, 2]  # threads only: no batch sweep
    assert all(r["latency_ms"] is None and "'adb' not on PATH" in r["error"] for r in rows)
    # an adb that lists no device
    fake = tmp_path / "adb"
    fake.write_text("#!/bin/sh\nprintf 'List of devices attached\\n\\n'\n")
    fake.chmod(0o755)
    row = sweep(model, target="adb", target_options={"adb": str(fake)})[0]
    assert row["error"] == "adb: no device connected (`adb devices` lists none)"
    row = sweep(model, target="adb://emulator-5554", target_options={"adb": str(fake)})[0]
    assert row["error"] == "adb: device emulator-5554 not connected (connected: none)"
    onnx_model = tmp_path / "m.onnx"
    onnx_model.write_bytes(b"x")
    with pytest.raises(UserError, match="runs .tflite files only"):  # a user mistake: refused, exit 2
        sweep(onnx_model, target="adb", target_options={"adb": str(fake)})
    json.dumps(rows)  # rows stay JSON-ready


def test_adb_flow_replaying_a_recorded_device_log(tmp_path: Path) -> None:
    """No phone here: a stand-in adb answers like a connected device and replays the
    benchmark_model output recorded on an Android phone (tensorflow#42507), so the
    push -> run -> parse -> row path runs end to end."""
    model = tmp_path / "espcn.tflite"
    model.write_bytes(b"TFL3" + bytes(4444))
    calls = tmp_path / "calls.txt"
    fake = tmp_path / "adb"
    fake.write_text(f"""#!/bin/sh
echo "$@" >> {calls}
case "$*" in
  devices) printf 'List of devices attached\\nR58M123ABC\\tdevice\\n\\n' ;;
  *"shell getprop"*) printf '[ro.product.manufacturer]: [samsung]\\n[ro.product.model]: [SM-G973F]\\n'
                     printf '[ro.product.cpu.abi]: [arm64-v8a]\\n[ro.build.version.release]: [12]\\n'
                     printf '[ro.build.version.sdk]: [31]\\n[ro.soc.model]: [Exynos 9820]\\n' ;;
  *"cat /proc/cpuinfo"*) printf 'processor\\t: 0\\nFeatures\\t: fp asimd asimddp\\nprocessor\\t: 1\\n' ;;
  *benchmark_model*) grep -v '^# ' {LOGS / "android-tensorflow-42507.txt"} >&2 ;;
esac
""")
    fake.chmod(0o755)
    (row,) = sweep(model, target="adb", threads=[4], iterations=50, target_options={"adb": str(fake)})
    assert row["error"] is None and row["target"] == "adb" and row["threads"] == 4
    lat = row["latency_ms"]
    assert (lat["mean"], lat["min"], lat["max"], lat["std"], lat["n"]) == (33.2094, 32.641, 34.005, 0.45, 50)
    assert lat["p50"] is None and "no percentiles" in row["latency_note"]
    assert row["peak_rss_mb"] == 12.8672 and row["load_rss_mb"] == 0.0 and row["init_ms"] == 0.855
    assert row["model_size_bytes"] == 4448 and row["runtime"] == "litert-benchmark_model"
    fp = row["fingerprint"]
    assert fp["device"] == "samsung SM-G973F" and fp["os"] == "Android 12 (SDK 31)" and fp["cpu"]["logical_cores"] == 2
    assert "asimddp" in fp["cpu"]["flags"] and fp["hostname"] == "R58M123ABC"
    log = calls.read_text().splitlines()
    assert "-s R58M123ABC push " + str(model) + " /data/local/tmp/edgesmith/espcn.tflite" in log
    assert ("-s R58M123ABC shell /data/local/tmp/benchmark_model --graph=/data/local/tmp/edgesmith/espcn.tflite "
            "--num_threads=4 --num_runs=50 --warmup_runs=10 --min_secs=1") in log
    assert log[-1] == "-s R58M123ABC shell rm -f /data/local/tmp/edgesmith/espcn.tflite"  # cleaned up
