"""`selfflow-robot demo`: the built-in default job, end to end on a CPU in minutes.

Each stage is the same library call the matching CLI command makes (`data synth`, `train`,
`imagine`, the policy API), composed from the same configs, so the demo exercises the real path.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from selfflow_robot.config import load_config


def _stage(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def main(cfg: DictConfig) -> int:
    out = Path(str(cfg.output_dir))
    data_dir, run_dir, imagine_dir = out / "data", out / "run", out / "imagine"

    _stage(f"1/4 synthetic RT-1 dataset -> {data_dir}")
    from selfflow_robot.data import synth

    if (data_dir / "fractal20220817_data").exists():
        print(f"reusing {data_dir}")
    else:
        synth.main(load_config("data_synth", [f"output_dir={data_dir}", f"episodes={cfg.episodes}",
                                              f"min_steps={cfg.min_steps}", f"max_steps={cfg.max_steps}",
                                              f"seed={cfg.seed}"]))

    _stage(f"2/4 train tiny ({cfg.objective}, {cfg.steps} steps) -> {run_dir}")
    from selfflow_robot.train.trainer import train

    train_cfg = load_config("train", [
        *cfg.train_overrides, "train=cpu", f"objective={cfg.objective}", f"data.path={data_dir}",
        f"train.steps={cfg.steps}", f"train.batch_size={cfg.batch_size}", f"train.seed={cfg.seed}",
        f"train.save_every={cfg.steps}", f"train.val_every={cfg.steps}", f"output_dir={run_dir}",
        f"resume={str((run_dir / 'checkpoints').exists()).lower()}"])
    ckpt = train(train_cfg)
    print(f"checkpoint: {ckpt}")

    _stage(f"3/4 imagine a held-out episode -> {imagine_dir}")
    from selfflow_robot.world_model.cli import main as imagine_main

    imagine_main(load_config("imagine", [f"ckpt={run_dir}", f"data.path={data_dir}", f"output_dir={imagine_dir}",
                                         "length=8"]))

    _stage("4/4 the checkpoint as a SimplerEnv-style policy")
    from selfflow_robot.policies import SelfFlowPolicy

    policy = SelfFlowPolicy.from_pretrained(run_dir)
    instruction = policy.language.table.instructions[0]
    policy.reset(instruction)
    image = np.zeros((512, 640, 3), np.uint8)
    policy.step(image)  # first call includes one-time warm-up
    t0 = time.perf_counter()
    n = 6
    for _ in range(n):
        _, action = policy.step(image)
    ms = (time.perf_counter() - t0) / n * 1e3
    print(f"instruction: {instruction!r}")
    print("action: " + json.dumps({k: np.round(np.asarray(v), 4).tolist() for k, v in action.items()}))
    print(f"policy step latency (incl. chunk reuse): {ms:.1f} ms/step on {policy.device}")
    print(f"\ndone. TensorBoard: tensorboard --logdir {run_dir}; videos in {imagine_dir}")
    return 0
