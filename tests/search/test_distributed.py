"""Training across processes (gloo on the CPU): the data-parallel loop matches one
process with the same global batch, and `torchrun -m edgesmith run` writes one run
folder (rank 0) that resumes like any other."""

import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

# The loop's arithmetic is that of one process: gradients of per-slice losses weighted by
# their share, averaged by DDP. Without BatchNorm only float summation order differs.
WEIGHT_ATOL = 1e-4
# With BatchNorm each slice normalises by its own statistics (SyncBatchNorm needs a GPU):
# quality within 5 points on 359 eval digits (measured: 0-3.3 points after 1-2 epochs).
ACCURACY_POINTS = 5.0


def _data():
    from sklearn.datasets import load_digits

    from edgesmith.models.tasks import ClassificationTask, TensorSet

    d = load_digits()
    x = torch.tensor(d.images[:, None] / 16.0, dtype=torch.float32)
    return ClassificationTask([0.0], [1.0]), TensorSet((x[:1000],), torch.tensor(d.target[:1000]))


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def _train(model):
    from edgesmith.compress.train import fit

    task, data = _data()
    # 1000 samples in batches of 64: the last batch has 40, split 20/20; batch 64 splits 32/32
    fit(model, task, data, lambda m, b: nn.functional.cross_entropy(m(*b.inputs), b.labels),
        epochs=2, lr=0.01, batch_size=64, schedule="onecycle", seed=0)
    return model


def _worker(rank, world, port, out):
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        model = _train(_model())
        if rank == 0:
            torch.save(model.state_dict(), out)
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    import torch.multiprocessing as mp

    out = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    torch.set_num_threads(1)
    one = _train(_model()).state_dict()
    two = torch.load(out)
    diff = max(float((one[k] - two[k]).abs().max()) for k in one)
    assert diff < WEIGHT_ATOL, diff
    assert any(float((one[k] - _model().state_dict()[k]).abs().max()) > 0.01 for k in one)  # it trained


RECIPE = {
    "name": "digits-ddp", "seed": 0,
    "teacher": {"source": "train", "arch": "convnet",
                "kwargs": {"widths": [16, 32], "pools": [True, True], "hidden": 64, "dropout": 0.0},
                "train": {"epochs": 1, "lr": 0.01, "batch_size": 64, "augment": []}},
    "student": {"arch": "convnet", "kwargs": {"widths": [8, 16], "pools": [True, True], "hidden": 32}},
    "data": {"sources": [{"name": "digits"}], "splits": {"calibration": 64, "eval": 0.2, "eval_from": "pool"}},
    "stages": [{"kind": "distill", "epochs": 2, "lr": 0.01, "batch_size": 64, "alpha": 0.7}],
    "export": {"formats": ["onnx"]},
    "benchmark": {"runtimes": ["onnxruntime"], "iterations": 10, "min_seconds": 0.05, "warmup": 2},
}


def _run(tmp_path, out, nproc, cache):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(RECIPE))
    env = {**os.environ, "EDGESMITH_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "edgesmith", "run", str(path), "-o", str(out)]
    if nproc > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
               "--master-port", str(_free_port()), "-m", "edgesmith", "run", str(path), "-o", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_torchrun_run_matches_one_process_and_resumes(tmp_path):
    pytest.importorskip("onnxruntime")
    _run(tmp_path, tmp_path / "one", 1, tmp_path / "cache1")
    before = set(Path(tempfile.gettempdir()).glob("edgesmith-rank1-*"))  # a crashed earlier run's are not ours
    _run(tmp_path, tmp_path / "two", 2, tmp_path / "cache2")
    a, b = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("one", "two"))
    for x, y in zip([a["teacher"], *a["stages"]], [b["teacher"], *b["stages"]], strict=True):
        assert abs(x["metrics"]["accuracy"] - y["metrics"]["accuracy"]) * 100 < ACCURACY_POINTS, (x, y)
    # rank 0 wrote the one run folder; the other rank's private copy is gone
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    assert set(Path(tempfile.gettempdir()).glob("edgesmith-rank1-*")) == before
    # resume: a second torchrun reuses every finished step on both ranks
    proc = _run(tmp_path, tmp_path / "two", 2, tmp_path / "cache2")
    assert proc.stderr.count("unchanged, reusing") >= 3
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["stages"] == b["stages"]
