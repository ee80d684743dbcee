"""2 processes on CPU (gloo, torchrun) against one process on the same global batch: DDP and FSDP2.

One process with `grad_accum=2` and two processes with `grad_accum=1` see the same global batch
each step (loader m of rank r reads consumer shard m * world + r) with the same noise (seeded per
global micro-batch), so their losses and weights must agree up to float summation order.
"""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from selfflow_robot import checkpoint as ck
from selfflow_robot import constants as C
from selfflow_robot.train.logger import read_metrics

COMMON = ("train.steps=3", "train.batch_size=2", "train.save_every=0", "train.val_every=0", "device=cpu")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def single_run(train_data, train_cli, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    train_cli.ok(train_cli.run(train_data, out, *COMMON, "train.grad_accum=2"))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_single_process_on_same_global_batch(strategy, single_run, train_data, train_cli,
                                                                   tmp_path):
    out = tmp_path / strategy
    args = train_cli.args(train_data, out, *COMMON, "train.grad_accum=1", f"train.parallel={strategy}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", *args[1:]]
    proc = subprocess.run(cmd, env=train_cli.env(), capture_output=True, text=True, timeout=300)
    train_cli.ok(proc)
    assert f"2 process(es) ({strategy})" in proc.stderr

    a = [r for r in read_metrics(single_run) if "loss/total" in r]
    b = [r for r in read_metrics(out) if "loss/total" in r]
    assert [r["step"] for r in a] == [r["step"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b):
        for key in ("loss/total", "loss/flow", "loss/rep", "grad_norm"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-4, abs=1e-6), (ra["step"], key, ra[key], rb[key])
    for f in (C.MODEL_FILE, C.EMA_FILE):
        wa = load_file(str(ck.find_checkpoint(single_run) / f))
        wb = load_file(str(ck.find_checkpoint(out) / f))
        assert wa.keys() == wb.keys()
        worst = max((wa[k] - wb[k]).abs().max().item() for k in wa)
        assert worst < 1e-5, f"{f}: weights differ by up to {worst}"
    # trained, not trivially equal: the zero-initialised output layer has moved
    assert wa["final_layer.linear.weight"].abs().max() > 0
