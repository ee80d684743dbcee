"""`selfflow-robot train` end to end on CPU: checkpoint layout, exact resume after SIGKILL, NaN guard,
fine-tuning start (`init_from`), CLI help and flag conflicts."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from selfflow_robot import checkpoint as ck
from selfflow_robot import constants as C
from selfflow_robot.cli import main as cli_main
from selfflow_robot.config import load_config
from selfflow_robot.data.language import load_language_table
from selfflow_robot.errors import ConfigError
from selfflow_robot.policies.policy import SelfFlowPolicy
from selfflow_robot.train import parallel
from selfflow_robot.train.config import TrainRunConfig
from selfflow_robot.train.logger import read_metrics
from selfflow_robot.train.trainer import Trainer
from selfflow_robot.world_model.rollout import WorldModel


def test_train_writes_complete_checkpoints_logs_and_loads(train_data, train_cli, tmp_path):
    run = tmp_path / "run"
    proc = train_cli.run(train_data, run, "train.steps=6", "train.save_every=2", "train.keep_last=2",
                         "train.val_every=3")
    train_cli.ok(proc)
    assert "final checkpoint:" in proc.stdout and "step-0000006" in proc.stdout
    # keep-last-2 of the step-2/4/6 saves; each complete with the documented files
    assert [s for s, _ in ck.list_checkpoints(run)] == [4, 6]
    last = run / "checkpoints" / "step-0000006"
    for f in ck.REQUIRED_FILES:
        assert (last / f).is_file(), f
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    cfg = ck.load_run_config(last)
    assert cfg.train.steps == 6 and cfg.model.image_size == [32, 40] and cfg.data.path == str(train_data)
    stats = json.loads((last / C.STATS_FILE).read_text())
    assert len(stats["action"]["q99"]) == C.RAW_ACTION_DIM
    table = load_language_table(last / C.LANGUAGE_TABLE_FILE)
    assert len(table) >= 2 and all(v.shape == (C.TEXT_DIM,) for v in table.values())
    state = ck.load_trainer_state(last)
    assert state["step"] == 6 and state["optimizer"]["state"] and state["ranks"][0]["data"]["loaders"]
    # the one loader: EMA weights by default, in eval mode, matching ema.safetensors
    pre = ck.load_pretrained(run)
    assert pre.path == last and not pre.model.training
    ema = load_file(str(last / C.EMA_FILE))
    assert all(torch.equal(v, ema[k]) for k, v in pre.model.state_dict().items() if k in ema)
    raw = ck.load_pretrained(last, use_ema=False)
    assert not torch.equal(raw.model.blocks[0].attn.qkv.weight, pre.model.blocks[0].attn.qkv.weight)
    # logging: per-step loss terms, lr, grad norm, throughput, EMA-teacher cosine; validation at 3 and 6
    rows = read_metrics(run)
    train_rows = [r for r in rows if "loss/total" in r]
    assert [r["step"] for r in train_rows] == [1, 2, 3, 4, 5, 6]
    for key in ("loss/flow", "loss/rep", "loss/flow_future", "loss/flow_actions", "lr", "grad_norm",
                "throughput/examples_per_s", "ema/teacher_cos", "modes/policy_fraction"):
        assert key in train_rows[-1], key
    # per-mode flow loss: every mode drawn in a step is logged (6 steps x 4 examples draw all three)
    mode_keys = {k for r in train_rows for k in r if k.startswith("loss/flow_mode_")}
    assert mode_keys == {"loss/flow_mode_world_model", "loss/flow_mode_policy", "loss/flow_mode_joint"}, mode_keys
    val_rows = [r for r in rows if "val/action_mse_norm" in r]
    assert [r["step"] for r in val_rows] == [3, 6]
    for key in ("val/action_mse_raw", "val/action_mse_norm_mean_baseline", "val/psnr", "val/ssim",
                "val/psnr_copy_last", "val/ssim_copy_last", "val/psnr_1step"):
        assert key in val_rows[-1], key
    assert "validation @ step 6" in proc.stderr and "copy-last-frame" in proc.stderr
    assert list((run / "tb").glob("events.out.tfevents.*")) and (run / "curves.png").is_file()


def _weights(step_dir: Path) -> dict[str, torch.Tensor]:
    return {**{f"model.{k}": v for k, v in load_file(str(step_dir / C.MODEL_FILE)).items()},
            **{f"ema.{k}": v for k, v in load_file(str(step_dir / C.EMA_FILE)).items()}}


def test_resume_after_sigkill_matches_uninterrupted_run(train_data, train_cli, tmp_path):
    extra = ("train.steps=6", "train.save_every=2", "train.keep_last=5", "train.val_every=0",
             "train.grad_accum=2")
    full, killed = tmp_path / "full", tmp_path / "killed"
    train_cli.ok(train_cli.run(train_data, full, *extra))

    proc = subprocess.Popen(train_cli.args(train_data, killed, *extra), env=train_cli.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and ck.latest_checkpoint(killed) is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed mid-way"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = ck.latest_checkpoint(killed)
    assert first is not None and first.name < "step-0000006"

    resumed = train_cli.run(train_data, killed, *extra, "--resume")
    train_cli.ok(resumed)
    assert f"continuing from {first}" in resumed.stdout
    a, b = _weights(full / "checkpoints" / "step-0000006"), _weights(killed / "checkpoints" / "step-0000006")
    assert a.keys() == b.keys()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"{len(diff)} tensors differ after resume, e.g. {diff[:3]}"
    sa = ck.load_trainer_state(full / "checkpoints" / "step-0000006")
    sb = ck.load_trainer_state(killed / "checkpoints" / "step-0000006")
    assert sa["ranks"][0]["data"] == sb["ranks"][0]["data"]
    for pa, pb in zip(sa["optimizer"]["state"].values(), sb["optimizer"]["state"].values()):
        assert torch.equal(pa["exp_avg_sq"], pb["exp_avg_sq"])
    # the metrics log has each step once, also across the kill
    steps = [r["step"] for r in read_metrics(killed) if "loss/total" in r]
    assert steps == list(range(1, 7))


def test_nan_guard_stops_with_message_and_keeps_last_good_checkpoint(train_data, train_cli, tmp_path):
    run = tmp_path / "run"
    # an absurd learning rate blows the weights up after the first update; the next loss is not finite
    proc = train_cli.run(train_data, run, "train.steps=6", "train.save_every=1", "train.val_every=0",
                         "train.optim.lr=1e30", "train.optim.warmup_steps=0", "train.optim.grad_clip=0")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "non-finite values at step" in proc.stderr and "last good checkpoint" in proc.stderr
    saved = ck.list_checkpoints(run)
    assert saved, "the last good checkpoint must be kept"
    bad_step = int(proc.stderr.split("non-finite values at step ")[1].split(":")[0])
    assert saved[-1][0] == bad_step - 1 and str(saved[-1][1]) in proc.stderr
    w = load_file(str(saved[-1][1] / C.MODEL_FILE))
    assert all(torch.isfinite(v).all() for v in w.values())


def test_init_from_starts_a_new_run_from_checkpoint_weights(train_data, train_cli, tmp_path):
    src = tmp_path / "src"
    train_cli.ok(train_cli.run(train_data, src, "train.steps=2", "train.val_every=0"))
    cfg = load_config("train", [*train_cli.fast, f"data.path={train_data}", f"output_dir={tmp_path / 'new'}",
                                f"init_from={src}", "train.steps=3"], schema=TrainRunConfig)
    trainer = Trainer(cfg, parallel.init_distributed("cpu"))
    ema = ck.load_weights(ck.find_checkpoint(src), use_ema=True)
    assert trainer.step == 0 and not trainer.optimizer.state
    assert all(torch.equal(v, ema[k]) for k, v in trainer.model.state_dict().items())
    with pytest.raises(ck.CheckpointError, match="no complete checkpoint"):
        bad = load_config("train", [*train_cli.fast, f"data.path={train_data}", f"output_dir={tmp_path / 'x'}",
                                    f"init_from={tmp_path}"], schema=TrainRunConfig)
        Trainer(bad, parallel.init_distributed("cpu"))


def test_help_and_flag_conflicts(capsys, train_data, tmp_path):
    assert cli_main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    assert "selfflow-robot train" in out and "grad_accum" in out and "init_from" in out
    rc = cli_main(["train", f"data.path={train_data}", f"output_dir={tmp_path}", "--resume",
                   f"init_from={tmp_path}"])
    assert rc == 2 and "exclude each other" in capsys.readouterr().err
    assert cli_main(["train", "train.batch_size=0", f"output_dir={tmp_path}"]) == 2
    assert "batch_size" in capsys.readouterr().err


def test_train_reads_through_the_tf_backend(train_data, train_cli, tmp_path):
    """`data.backend=tf` (tensorflow-datasets + tf.data) trains to the same first loss as the python reader."""
    pytest.importorskip("tensorflow", reason="the tf backend needs tensorflow-cpu (the `tf` extra)")
    losses = {}
    for backend in ("python", "tf"):
        run = tmp_path / backend
        train_cli.ok(train_cli.run(train_data, run, "train.steps=1", "train.val_every=0", f"data.backend={backend}"))
        losses[backend] = [r["loss/total"] for r in read_metrics(run) if "loss/total" in r]
    assert losses["tf"] == losses["python"] and len(losses["tf"]) == 1


def test_train_with_proprioception(train_data, train_cli, tmp_path):
    """model.state_dim=8: windows carry the state, the checkpoint ships its statistics, the state embedding
    learns, and the policy built from the checkpoint asks for the state."""
    run = tmp_path / "run"
    proc = train_cli.run(train_data, run, "train.steps=3", "train.save_every=3", "train.val_every=3",
                         "model.state_dim=8", "train.state_dropout=0.25", "train.state_noise=0.05")
    train_cli.ok(proc)
    last = run / "checkpoints" / "step-0000003"
    stats = json.loads((last / C.STATS_FILE).read_text())
    assert len(stats["state"]["q99"]) == C.STATE_DIM and stats["state"]["names"][-1] == "gripper_closed"
    assert ck.load_run_config(last).model.state_dim == 8
    raw = ck.load_pretrained(last, use_ema=False).model
    assert raw.state_embedder.mlp[2].weight.abs().sum() > 0          # zero-initialised, then trained
    assert "val/action_mse_norm" in [r for r in read_metrics(run) if "val/action_mse_norm" in r][-1]
    policy = SelfFlowPolicy.from_pretrained(run, steps=1)
    policy.reset(policy.language.table.instructions[0])
    frame = np.zeros((256, 320, 3), np.uint8)
    with pytest.raises(ConfigError, match="send `state`"):
        policy.step(frame)
    raw_action, _ = policy.step(frame, state=np.asarray(stats["state"]["mean"], np.float32))
    assert np.isfinite(raw_action["world_vector"]).all()


def test_train_the_world_model_with_the_state(train_data, train_cli, tmp_path):
    """train.world_model_state=true: world-model examples alone train the state embedding (with the null state they
    cannot), validation gives the world model the state, and the checkpoint's WorldModel takes it."""
    wm_only = ("train.steps=2", "train.save_every=2", "train.val_every=2", "model.state_dim=8",
               "train.modes.world_model=1.0", "train.modes.policy=0.0", "train.modes.joint=0.0")
    embedders = {}
    for flag in ("true", "false"):
        run = tmp_path / flag
        train_cli.ok(train_cli.run(train_data, run, *wm_only, f"train.world_model_state={flag}"))
        embedders[flag] = ck.load_pretrained(run, use_ema=False).model.state_embedder.mlp[2].weight.abs().sum()
        assert WorldModel.from_pretrained(run).takes_state == (flag == "true")
        assert "val/psnr" in [r for r in read_metrics(run) if "val/psnr" in r][-1]
    assert embedders["true"] > 0 and embedders["false"] == 0
    proc = train_cli.run(train_data, tmp_path / "no_state", "train.steps=1", "train.world_model_state=true")
    assert proc.returncode != 0 and "model.state_dim=8" in proc.stderr


def test_train_with_a_state_readout_head(train_data, train_cli, tmp_path):
    """model.aux_state_dim=8: the state is a training target only. The head learns, validation scores the
    read-out against the mean state, and the policy from the checkpoint acts without being sent a state."""
    run = tmp_path / "run"
    train_cli.ok(train_cli.run(train_data, run, "train.steps=3", "train.save_every=3", "train.val_every=3",
                               "model.aux_state_dim=8", "objective.aux_state_weight=0.5"))
    last = run / "checkpoints" / "step-0000003"
    assert ck.load_run_config(last).model.aux_state_dim == 8
    first = ck.load_pretrained(run / "checkpoints" / "step-0000003", use_ema=False).model
    assert first.state_embedder is None and first.state_head is not None
    rows = read_metrics(run)
    assert all(r["loss/state_aux"] > 0 for r in rows if "loss/total" in r)
    val = [r for r in rows if "val/state_aux_mse" in r][-1]
    assert val["val/state_aux_mse"] > 0 and val["val/state_aux_mse_mean_baseline"] > 0
    policy = SelfFlowPolicy.from_pretrained(run, steps=1)
    policy.reset(policy.language.table.instructions[0])
    raw_action, _ = policy.step(np.zeros((256, 320, 3), np.uint8))
    assert np.isfinite(raw_action["world_vector"]).all()


def test_bf16_training_on_the_cpu(train_data, train_cli, tmp_path):
    """train.precision=bf16 (the demo's recipe) trains on the CPU with prefix attention and several draws: finite
    losses, close to fp32's from the same seed but not equal (the autocast is really on)."""
    losses = {}
    for precision in ("fp32", "bf16"):
        run = tmp_path / precision
        train_cli.ok(train_cli.run(train_data, run, "train.steps=3", "train.val_every=0", "model.attention=prefix",
                                   "train.draws_per_window=2", f"train.precision={precision}"))
        losses[precision] = [r["loss/total"] for r in read_metrics(run) if "loss/total" in r]
    assert len(losses["bf16"]) == 3 and all(math.isfinite(v) for v in losses["bf16"])
    assert losses["bf16"] != losses["fp32"]
    assert losses["bf16"][0] == pytest.approx(losses["fp32"][0], rel=0.05)


def test_augmentations_change_the_training_windows(train_data, train_cli, tmp_path):
    """train.random_shift=2 (translated windows) and train.context_noise=0.3 (a noised past for the world model)
    each move the first step's loss off the plain run's from the same seed (same weights, same noise), stay
    finite, and are recorded in the checkpoint's config."""
    losses = {}
    for name, extra in {"plain": [], "shift": ["train.random_shift=2"], "noise": ["train.context_noise=0.3"]}.items():
        run = tmp_path / name
        train_cli.ok(train_cli.run(train_data, run, "train.steps=2", "train.val_every=0", "train.save_every=2",
                                   "model.attention=prefix", *extra))
        losses[name] = [r["loss/total"] for r in read_metrics(run) if "loss/total" in r]
    for name in ("shift", "noise"):
        assert len(losses[name]) == 2 and all(math.isfinite(v) for v in losses[name])
        assert losses[name][0] != losses["plain"][0]
    train = ck.load_run_config(tmp_path / "shift" / "checkpoints" / "step-0000002").train
    assert train.random_shift == 2 and train.context_noise == 0
    assert ck.load_run_config(tmp_path / "noise" / "checkpoints" / "step-0000002").train.context_noise == 0.3
