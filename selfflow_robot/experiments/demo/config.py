"""The `selfflow-robot demo` settings (`DemoConfig`, schema of `configs/demo.yaml`) and its output layout."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from selfflow_robot.config import check_choice
from selfflow_robot.errors import ConfigError
from selfflow_robot.objective.config import OBJECTIVES
from selfflow_robot.policies.config import PolicyConfig

DEMO_PHASES = ("collect", "codec", "train", "eval", "imagine", "report", "curve")
DEFAULT_PHASES = DEMO_PHASES[:-1]  # `curve` scores every checkpoint: run it on request
# Each phase's folder under the demo's output dir. The autoencoder lives with the demos it was fit to, so a
# study's arms, which link the shared demos, share it too.
PHASE_DIRS = {"collect": "demos", "codec": "demos/codec", "train": "run", "eval": "eval", "imagine": "imagine",
              "report": "report", "curve": "curve"}
CONFIG_RECORD = "demo_config.json"  # the DemoConfig a run used, written into its output dir
COLLECT_SUMMARY = "collect.json"  # written last by the collect phase: marks the demos dir complete


@dataclass
class DemoConfig:
    """`selfflow-robot demo` settings (`configs/demo.yaml`).

    Args:
        output_dir: the report directory; phases write `demos/`, `run/`, `eval/`, `imagine/`, `report/` in it.
        suite: the SIMPLER suite of the ManiSkill3 port to collect demos in and score.
        tasks: a subset of the suite's tasks (default: all).
        demos_per_task: expert episodes per task, grid episodes 0.. (36 = the whole visual-matching grid).
        demo_max_steps: cut demos short (CI); default: the task's episode length.
        demo_noise_m, demo_noise_rad: std of the Gaussian noise on each executed expert translation (m) and
            rotation (rad) while collecting (DART-style: the demos also show recoveries; 0 = none).
        workers: processes for collection and evaluation (0 = all cores).
        codec: fit the small frame autoencoder to the demos (phase `codec`, `<output_dir>/demos/codec`) and
            train on its latents, read from the run's latent cache (the CPU recipe); false = pixel patches.
        codec_overrides: extra `selfflow-robot codec train` overrides (its geometry, `codec.latent_channels` and
            `codec.downsample`, also sets the model's; the frame size is the model's).
        codec_patch_size: latent cells per token side with the autoencoder (`model.patch_size`).
        objective: `selfflow` or `vanilla` (plain flow matching, the baseline): the train run's `objective=`.
        steps, batch_size, lr, seed: training length, windows per step, peak learning rate, seed (data, init, noise).
        train_overrides: extra `selfflow-robot train` overrides (model size, window, modes, ...). The default's
            `model.state_dim=8` gives the policy the robot's state (tool pose + gripper, which `collect`
            records); drop it for an image-only policy (one `imagine-eval` can score).
        eval_episodes_per_task: episodes per task scored in the suite (None: the whole grid).
        policy_options: `SelfFlowPolicy` options for the evaluation (`PolicyConfig`; None = the policy's default).
            `steps: 2`: two Euler steps of the flow. One step gives the conditional-mean chunk, which averages the
            expert's phases (reach into the slot, drop, pull) into a corner-cutting path that misses the hook;
            10 steps after a short CPU run are far noisier. Two open 13/27 and 18/27 drawers where one opens 6 and
            8 (docs/results.md, "Two denoising steps").
        imagine_length: frames the world model imagines after its context.
        imagine_steps: the world model's denoising steps per chunk in the `imagine` phase. 1 is its conditional
            mean, the best frame-by-frame estimate (PSNR) after a short CPU run: 10 sampled steps score 1.5 to
            2.6 dB lower 1 to 4 frames ahead (docs/results.md, "The robot state at a second seed").
        assets: ManiSkill2_real2sim copy (default: $SELFFLOW_ROBOT_ASSETS or the `assets fetch` cache).
        phases: the phases to run, in order (a later phase needs the earlier ones' outputs); `curve` (not run by
            default) scores the run's checkpoints for a learning curve (`experiments/demo/curve.py`).
        curve_steps: the checkpoints (steps) the `curve` phase scores (default: every one the run kept).
    """

    output_dir: str = "runs/demo"
    suite: str = "drawer_visual_matching"
    tasks: list[str] | None = None
    demos_per_task: int = 18
    demo_max_steps: int | None = None
    demo_noise_m: float = 0.015
    demo_noise_rad: float = 0.03
    workers: int = 0
    codec: bool = True
    codec_overrides: list[str] = field(default_factory=list)
    codec_patch_size: int = 2
    objective: str = "selfflow"
    steps: int = 10000
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0
    train_overrides: list[str] = field(default_factory=lambda: [
        "model=tiny", "train.draws_per_window=4", "train.precision=bf16", "train.val_every=500",
        "train.save_every=1000", "train.keep_last=12", "train.validation.batches=4", "model.state_dim=8"])
    eval_episodes_per_task: int | None = 9
    policy_options: dict[str, Any] = field(
        default_factory=lambda: {**dict.fromkeys(f.name for f in fields(PolicyConfig)), "steps": 2})
    imagine_length: int = 12
    imagine_steps: int = 1
    assets: str | None = None
    phases: list[str] = field(default_factory=lambda: list(DEFAULT_PHASES))
    curve_steps: list[int] | None = None

    def __post_init__(self) -> None:
        check_choice("objective", self.objective, list(OBJECTIVES))
        for p in self.phases:
            check_choice("phase", p, list(DEMO_PHASES))
        for name in ("demos_per_task", "steps", "batch_size", "imagine_length", "imagine_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")


def phase_dir(out: Path, phase: str) -> Path:
    """Where `phase` writes under the demo's output dir `out` (`collect` -> `out/demos`, `train` -> `out/run`, ...)."""
    return Path(out) / PHASE_DIRS[phase]


__all__ = ["COLLECT_SUMMARY", "CONFIG_RECORD", "DEFAULT_PHASES", "DEMO_PHASES", "DemoConfig", "PHASE_DIRS", "phase_dir"]
