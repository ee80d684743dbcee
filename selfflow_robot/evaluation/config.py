"""`selfflow-robot eval` settings: `EvalConfig`, the schema (keys, defaults, documentation) of configs/eval.yaml."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from selfflow_robot.config import check_choice, load_config, structured
from selfflow_robot.envs.grid import scene_variant
from selfflow_robot.errors import ConfigError
from selfflow_robot.evaluation.agents import CHECKPOINT, POLICY_KINDS
from selfflow_robot.policies.config import PolicyConfig


@dataclass
class EvalConfig:
    """`selfflow-robot eval` settings.

    Args:
        ckpt: checkpoint dir(s): one path, a list `[a,b]`, or comma-separated; a run dir means its newest step.
        policy: `checkpoint` (a trained policy) or `expert` (the scripted expert; `ckpt` is ignored).
        suite: a suite of `selfflow_robot.envs.tasks.SUITES` (e.g. drawer_visual_matching: 6 tasks x 36 episodes,
            drawer_variant_agg: 6 tasks x 45 episodes = 5 scene variants x 9 robot poses).
        tasks: only these tasks of the suite (default: all).
        episodes: only these grid indices of every task (default: the whole grid).
        variants: variant-aggregation suites only: run these scene variants (`grid.VARIANT_NAMES`); default:
            every variant whose asset files are present (the others are left out with a printed notice).
        max_episodes: at most this many episodes per task (the first ones of the grid, after `episodes`).
        output_dir: where episodes.jsonl, videos and the report go.
        workers: parallel worker processes (0 = all cores; 1 = run in this process).
        resume: skip episodes already recorded in `<output_dir>/episodes.jsonl`; false moves an old file aside.
        video: write one mp4 per episode.
        video_fps: frames per second of the videos (SimplerEnv: 5).
        overlay: green-screen the real image (visual matching); false renders the plain sim.
        asset_root: ManiSkill2_real2sim copy (default: SELFFLOW_ROBOT_ASSETS or the fetch cache).
        render_backend: SAPIEN render device: `cpu` (lavapipe) or `cuda`.
        torch_threads: torch threads per worker (policy inference); keeps workers from oversubscribing cores.
        policy_options: `SelfFlowPolicy` options (steps, execute_horizon, ensemble, cfg_scale, seed, device, ...);
            null values mean the policy's own default, e.g. `policy_options.steps=5`.
        simulator: name recorded in results.json.
        simpler_results: instead of running episodes, report a real-SimplerEnv results folder
            (scripts/simpler/*.sh or SimplerEnv's own main_inference.py).
    """

    ckpt: Any = None
    policy: str = CHECKPOINT
    suite: str = "drawer_visual_matching"
    tasks: list[str] | None = None
    episodes: list[int] | None = None
    variants: list[str] | None = None
    max_episodes: int | None = None
    output_dir: str = "runs/eval"
    workers: int = 0
    resume: bool = True
    video: bool = True
    video_fps: int = 5
    overlay: bool = True
    asset_root: str | None = None
    render_backend: str = "cpu"
    torch_threads: int = 1
    policy_options: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(f.name for f in fields(PolicyConfig)))
    simulator: str = "maniskill3_port"
    simpler_results: str | None = None

    def __post_init__(self) -> None:
        check_choice("policy", self.policy, POLICY_KINDS)
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0 (0 = all cores), got {self.workers}")
        if self.max_episodes is not None and self.max_episodes < 1:
            raise ConfigError(f"max_episodes must be >= 1 or null, got {self.max_episodes}")
        if self.video_fps < 1:
            raise ConfigError(f"video_fps must be >= 1, got {self.video_fps}")
        if self.variants is not None:
            for v in self.variants:
                scene_variant(str(v))  # ConfigError for an unknown name or a left-out background


def config_from_overrides(overrides: list[str]) -> EvalConfig:
    """Compose configs/eval.yaml with overrides and validate it (used by scripts/eval_simpler.py and tests)."""
    return structured(EvalConfig, load_config("eval", overrides, schema=EvalConfig))
