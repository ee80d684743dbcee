"""Unit tests of the trainer's independent parts: LR schedule, RNG capture, NaN guard, checkpoint folders."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from selfflow_robot import checkpoint as ck
from selfflow_robot.config import structured
from selfflow_robot.constants import MODEL_FILE, TRAINER_STATE_FILE
from selfflow_robot.data.language import load_language_table
from selfflow_robot.errors import ConfigError
from selfflow_robot.train.config import ModesConfig, OptimConfig, Schedule, TrainConfig
from selfflow_robot.train.guard import TrainingDivergedError, check_finite
from selfflow_robot.train.rng import capture_rng_state, micro_batch_seed, restore_rng_state
from selfflow_robot.train.schedule import build_scheduler, lr_factor


def test_lr_schedule_warmup_then_cosine_to_floor():
    cfg = OptimConfig(lr=1.0, warmup_steps=10, min_lr_ratio=0.1)
    f = [lr_factor(s, 110, cfg) for s in range(110)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(f[:10], f[1:10]))          # warmup increases
    assert all(a >= b for a, b in zip(f[10:], f[11:]))           # cosine decreases
    assert f[-1] == pytest.approx(0.1, abs=1e-3)
    assert lr_factor(200, 110, cfg) == pytest.approx(0.1)       # past the end: the floor
    const = OptimConfig(lr=1.0, warmup_steps=0, schedule=Schedule.constant)
    assert lr_factor(50, 110, const) == 1.0


def test_scheduler_state_roundtrip():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([p], lr=2.0)
    sch = build_scheduler(opt, 100, OptimConfig(lr=2.0, warmup_steps=5))
    for _ in range(7):
        opt.step()
        sch.step()
    opt2 = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=2.0)
    sch2 = build_scheduler(opt2, 100, OptimConfig(lr=2.0, warmup_steps=5))
    sch2.load_state_dict(sch.state_dict())
    assert sch2.get_last_lr() == sch.get_last_lr()


def test_rng_capture_restore_all_generators(tmp_path):
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    state = capture_rng_state()
    torch.save(state, tmp_path / "rng.pt")
    a = (random.random(), np.random.rand(), torch.rand(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    b = (random.random(), np.random.rand(), torch.rand(3))
    assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def test_micro_batch_seed_is_a_function_of_its_inputs():
    assert micro_batch_seed(0, 5, 1) == micro_batch_seed(0, 5, 1)
    seeds = {micro_batch_seed(s, t, m) for s in range(3) for t in range(20) for m in range(4)}
    assert len(seeds) == 3 * 20 * 4


def test_nan_guard_names_the_value_and_last_checkpoint(tmp_path):
    check_finite(3, {"loss": 1.0, "grad_norm": 2.0}, None)
    with pytest.raises(TrainingDivergedError, match=r"step 7: loss=nan.*step-0000005"):
        check_finite(7, {"loss": float("nan"), "grad_norm": 1.0}, tmp_path / "step-0000005")
    with pytest.raises(TrainingDivergedError, match="grad_norm=inf.*no checkpoint"):
        check_finite(7, {"loss": 1.0, "grad_norm": float("inf")}, None)


def test_train_config_validation():
    cfg = structured(TrainConfig, {"steps": 10, "modes": {"policy": 1.0, "world_model": 0, "joint": 0}})
    assert cfg.steps == 10 and cfg.modes.probabilities()["policy"] == 1.0
    with pytest.raises(ConfigError, match="batch_size"):
        structured(TrainConfig, {"batch_size": 0})
    with pytest.raises(ConfigError, match="fp8"):
        structured(TrainConfig, {"precision": "fp8"})
    with pytest.raises(ConfigError, match=r"train.state_dropout must be in \[0, 1\], got 1.5"):
        structured(TrainConfig, {"state_dropout": 1.5})
    with pytest.raises(ConfigError, match="train.state_noise must be >= 0"):
        structured(TrainConfig, {"state_noise": -0.1})
    with pytest.raises(ConfigError, match="train.random_shift must be >= 0"):
        structured(TrainConfig, {"random_shift": -1})
    with pytest.raises(ConfigError, match="train.context_noise must be >= 0"):
        structured(TrainConfig, {"context_noise": -0.5})
    with pytest.raises(ConfigError):
        ModesConfig(world_model=0, policy=0, joint=0)


def _save(run, step, keep=2, value=0.0):
    return ck.save_checkpoint(
        run, step, config={"train": {"steps": 3}}, model_state={"w": torch.full((2, 2), value)},
        ema_state={"w": torch.full((2, 2), value + 1)}, statistics={"action": {"mean": np.zeros(7)}},
        language_table={"pick coke can": np.ones(512, np.float32), "open drawer": np.zeros(512, np.float32)},
        trainer_state={"step": step, "np": np.int64(3), "arr": np.arange(3)}, keep_last=keep)


def test_checkpoint_atomic_keep_last_and_find(tmp_path):
    run = tmp_path / "run"
    for s in (1, 2, 3):
        _save(run, s, value=float(s))
    steps = [s for s, _ in ck.list_checkpoints(run)]
    assert steps == [2, 3]                                   # keep-last-2
    assert ck.find_checkpoint(run).name == "step-0000003"
    assert ck.find_checkpoint(run / "checkpoints").name == "step-0000003"
    step2 = run / "checkpoints" / "step-0000002"
    assert ck.find_checkpoint(step2) == step2
    assert torch.equal(ck.load_weights(step2)["w"], torch.full((2, 2), 2.0))
    assert torch.equal(ck.load_weights(step2, use_ema=True)["w"], torch.full((2, 2), 3.0))
    st = ck.load_trainer_state(step2)
    assert st["step"] == 2 and st["np"] == 3 and torch.equal(st["arr"], torch.arange(3))
    table = load_language_table(step2 / "language_table.safetensors")
    assert set(table) == {"pick coke can", "open drawer"} and table["pick coke can"].sum() == 512
    assert ck.load_statistics(step2)["action"]["mean"] == [0.0] * 7
    assert ck.load_run_config(step2).train.steps == 3
    # re-saving an existing step replaces it in place
    _save(run, 3, value=7.0)
    assert torch.equal(ck.load_weights(ck.find_checkpoint(run))["w"], torch.full((2, 2), 7.0))


def test_incomplete_and_temp_folders_are_never_found(tmp_path):
    run = tmp_path / "run"
    _save(run, 1)
    # a crash mid-save leaves a temp folder (other pid) and maybe a step folder without all files
    tmp = run / "checkpoints" / ".tmp-step-0000002-999999"
    tmp.mkdir()
    (tmp / MODEL_FILE).write_bytes(b"partial")
    half = run / "checkpoints" / "step-0000005"
    half.mkdir()
    (half / TRAINER_STATE_FILE).write_bytes(b"")
    assert ck.find_checkpoint(run).name == "step-0000001"
    with pytest.raises(ck.CheckpointError, match="does not exist"):
        ck.find_checkpoint(tmp_path / "nope")
    with pytest.raises(ck.CheckpointError, match="no complete checkpoint"):
        ck.find_checkpoint(tmp_path)
    _save(run, 2)
    assert not tmp.exists()                                   # stale temp folders are cleaned up


def test_check_state_dict_reports_mismatch():
    m = torch.nn.Linear(2, 3)
    with pytest.raises(ck.CheckpointError, match="shape mismatches"):
        ck.check_state_dict(m, {"weight": torch.zeros(3, 3), "bias": torch.zeros(3)}, "x")
    with pytest.raises(ck.CheckpointError, match="missing"):
        ck.check_state_dict(m, {"weight": torch.zeros(3, 2)}, "x")
    ck.check_state_dict(m, m.state_dict(), "x")
