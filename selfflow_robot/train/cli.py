"""`selfflow-robot train`: fine-tune a Self-Flow DiT into a world model + policy.

    selfflow-robot train model=tiny data.path=DIR train.steps=200 output_dir=RUN
    selfflow-robot train output_dir=RUN --resume            # continue exactly from RUN's newest checkpoint
    torchrun --nproc_per_node=8 -m selfflow_robot.cli train model=base data.path=DIR output_dir=RUN
"""
from __future__ import annotations

from omegaconf import DictConfig

from selfflow_robot.errors import ConfigError
from selfflow_robot.train.trainer import train


def main(cfg: DictConfig) -> int:
    """Run training from the composed `configs/train.yaml`; prints the final checkpoint."""
    if cfg.get("resume") and cfg.get("init_from"):
        raise ConfigError("resume=true and init_from=... exclude each other: resume continues a run (weights, "
                          "optimizer, data position); init_from starts a new run from weights. Pick one.")
    last = train(cfg)
    if last is not None:
        print(f"final checkpoint: {last}")
    return 0
