"""2-process DDP on CPU (gloo, torchrun) against one process on the same global batch.

One process with `grad_accum=2` and two processes with `grad_accum=1` see the same global batch
each step (loader m of rank r reads consumer shard m * world + r) with the same noise (seeded per
global micro-batch), so their losses and weights must agree up to float summation order.
"""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from selfflow_robot import constants as C
from selfflow_robot.train import checkpoint as ck
from selfflow_robot.train.logger import read_metrics


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_ddp_matches_single_process_on_same_global_batch(train_data, train_cli, tmp_path):
    common = ("train.steps=3", "train.batch_size=2", "train.save_every=0", "train.val_every=0", "device=cpu")
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    train_cli.ok(train_cli.run(train_data, single, *common, "train.grad_accum=2"))

    args = train_cli.args(train_data, ddp, *common, "train.grad_accum=1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", *args[1:]]
    proc = subprocess.run(cmd, env=train_cli.env(), capture_output=True, text=True, timeout=300)
    train_cli.ok(proc)
    assert "2 process(es) (ddp)" in proc.stderr

    a = [r for r in read_metrics(single) if "loss/total" in r]
    b = [r for r in read_metrics(ddp) if "loss/total" in r]
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b):
        for key in ("loss/total", "loss/flow", "loss/rep", "grad_norm"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-4, abs=1e-6), (ra["step"], key, ra[key], rb[key])
    wa = load_file(str(ck.find_checkpoint(single) / C.MODEL_FILE))
    wb = load_file(str(ck.find_checkpoint(ddp) / C.MODEL_FILE))
    worst = max((wa[k] - wb[k]).abs().max().item() for k in wa)
    assert worst < 1e-5, f"weights differ by up to {worst}"
    # and the run is not trivially equal to an untrained model
    assert any(not torch.equal(v, torch.zeros_like(v)) for k, v in wa.items() if "final_layer" in k)
