"""`selfflow-robot collect`: run a task's scripted expert over the visual-matching grid, save RT-1 RLDS.

Each episode becomes one RLDS episode in the exact fractal20220817_data schema (written by
`selfflow_robot.data.writer.DatasetWriter`, so the trainer and `RLDSReader` read it unchanged):
3 Hz overhead frames resized 640x512 -> 320x256, `world_vector` / `rotation_delta` (axis-angle) /
`gripper_closedness_action` (+1 close) as sent to the env, the proprioception seen with each frame
(`base_pose_tool_reached`, `gripper_closed`: `envs.tasks.robot_state`), the instruction of each step (it changes
at the place-apple switch), its 512-d embedding (`data.synth.instruction_embedding`), terminate on
the last step, `aspects/success` from the env's success at the last step.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from selfflow_robot.config import structured
from selfflow_robot.data import schema
from selfflow_robot.data.synth import instruction_embedding
from selfflow_robot.data.writer import DatasetWriter
from selfflow_robot.envs.assets import resolve_asset_root
from selfflow_robot.envs.tasks import SUITES, make_env, overhead_rgb, robot_state, task_spec
from selfflow_robot.errors import ConfigError


@dataclass
class CollectConfig:
    """`selfflow-robot collect` options."""

    task: Any = "open_top_drawer"       # a task name, a list of them, or a suite name (all its tasks)
    episodes: int = 10                  # episodes to record per task
    start_episode: int = 0              # first grid episode; later ones follow, wrapping around the grid
    output_dir: str = "demos"           # the dataset goes to <output_dir>/fractal20220817_data/0.1.0
    only_success: bool = False          # drop failed episodes
    overwrite: bool = False
    assets: str | None = None           # ManiSkill2_real2sim copy (default: $SELFFLOW_ROBOT_ASSETS or the fetch cache)
    overlay: bool = True                # green-screen the real background (visual matching)
    episodes_per_shard: int = 50
    max_steps: int | None = None        # cut episodes short (debugging, tests); default: the task's length
    workers: int = 1                    # worker processes rendering episodes (0 = all cores)
    action_noise_m: float = 0.0         # std of Gaussian noise on each executed translation (metres, per axis)
    action_noise_rad: float = 0.0       # ... and rotation (rad, per axis); 0 = the expert's actions exactly
    noise_seed: int = 0                 # the noise of (task, episode) is seeded by (noise_seed, task, episode)

    def __post_init__(self) -> None:
        if self.action_noise_m < 0 or self.action_noise_rad < 0:
            raise ConfigError(f"action_noise_m / action_noise_rad must be >= 0, got "
                              f"{self.action_noise_m} / {self.action_noise_rad}")
        if self.episodes < 1:
            raise ConfigError(f"episodes must be >= 1, got {self.episodes}")
        if self.start_episode < 0:
            raise ConfigError(f"start_episode must be >= 0, got {self.start_episode}")
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0 (0 = all cores), got {self.workers}")

    def task_list(self) -> list[str]:
        """The tasks to record, in order: `task` as a name, a list of names, or a suite name."""
        names = [self.task] if isinstance(self.task, str) else [str(t) for t in self.task]
        if not names:
            raise ConfigError("task is empty: give a task name, a list of them, or a suite name")
        out: list[str] = []
        for name in names:
            for t in SUITES.get(name, (name,)):
                task_spec(t)  # a clear error (with close matches) for an unknown name
                if t not in out:
                    out.append(t)
        return out

    def jobs(self) -> list[tuple[str, int]]:
        """(task, grid episode) pairs in recording order: per task, `episodes` from `start_episode`, wrapping."""
        return [(t, (self.start_episode + i) % task_spec(t).num_episodes)
                for t in self.task_list() for i in range(self.episodes)]


def resize_frame(frame: np.ndarray, size: tuple[int, int] = (256, 320)) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (size[0], size[1], 3), bilinear (PIL)."""
    if frame.shape[:2] == size:
        return frame
    return np.asarray(Image.fromarray(frame).resize((size[1], size[0]), Image.BILINEAR))


@dataclass(frozen=True)
class ActionNoise:
    """Gaussian noise on the arm part of executed actions (DART-style state coverage for imitation).

    The episode records the action it executed (expert + noise), so the frames stay consistent with the
    actions for the world model, while the noise is zero-mean and independent of the state: the conditional
    mean a policy learns is still the expert's action, now also from the perturbed states the expert
    recovers from.
    """

    trans_m: float = 0.0
    rot_rad: float = 0.0
    seed: int = 0

    def __bool__(self) -> bool:
        return self.trans_m > 0 or self.rot_rad > 0

    def rng(self, task: str, episode: int) -> np.random.Generator:
        """The generator of one (task, episode): the same noise for any worker count or order."""
        return np.random.default_rng([self.seed, zlib.crc32(task.encode()), episode])

    def executor(self, task: str, episode: int) -> Callable[[np.ndarray], np.ndarray]:
        """expert action -> executed action for one (task, episode): the seeded perturbation, or as it is."""
        if not self:
            return lambda a: a
        rng = self.rng(task, episode)
        return lambda a: self.perturb(a, rng)

    def perturb(self, action: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """`action` (7,) with noise on world_vector (0:3) and rotation_delta (3:6); the gripper is untouched."""
        out = np.asarray(action, np.float32).copy()
        out[0:3] += rng.normal(0.0, self.trans_m, 3).astype(np.float32)
        out[3:6] += rng.normal(0.0, self.rot_rad, 3).astype(np.float32)
        return out


def expert_success(env, expert, episode: int, noise: ActionNoise = ActionNoise(), task: str = "") -> bool:
    """Roll the expert out on grid `episode` to the time limit (any obs mode); success at the last step."""
    obs, _ = env.reset(options={"episode": episode})
    expert.reset(env, obs)
    execute = noise.executor(task, episode)
    truncated, info = False, {}
    while not truncated:
        obs, _, _, truncated, info = env.step(execute(expert.act(env, obs)))
        truncated = bool(np.asarray(truncated).reshape(-1)[0])
    return bool(np.asarray(info["success"]).reshape(-1)[0])


def record_episode(env, expert, episode: int, noise: ActionNoise = ActionNoise(),
                   task: str = "") -> dict[str, Any]:
    """Roll the expert out on grid `episode` until the time limit; returns the RLDS episode dict.

    With `noise`, each expert action is perturbed before it is executed (and recorded); `task` seeds it.
    """
    u = env.unwrapped
    obs, _ = env.reset(options={"episode": episode})
    expert.reset(env, obs)
    frames, actions, instructions, states = [], [], [], []
    execute = noise.executor(task, episode)
    truncated, info = False, {}
    while not truncated:
        instructions.append(u.get_language_instruction())
        frames.append(resize_frame(overhead_rgb(obs), schema.IMAGE_SHAPE[:2]))
        states.append(robot_state(env))
        a = execute(expert.act(env, obs))
        actions.append(a)
        obs, _, _, truncated, info = env.step(a)
        truncated = bool(np.asarray(truncated).reshape(-1)[0])
    T = len(actions)
    acts, state = np.asarray(actions, np.float32), np.asarray(states, np.float32)
    terminate = np.tile(np.array([0, 1, 0], np.int32), (T, 1))
    terminate[-1] = (1, 0, 0)
    success = bool(np.asarray(info["success"]).reshape(-1)[0])
    return {
        "action/world_vector": acts[:, 0:3],
        "action/rotation_delta": acts[:, 3:6],
        "action/gripper_closedness_action": acts[:, 6:7],
        "action/terminate_episode": terminate,
        "observation/image": np.stack(frames),
        schema.TOOL_POSE: state[:, :7],
        schema.GRIPPER_CLOSED: state[:, 7:],
        "observation/natural_language_instruction": instructions,
        "observation/natural_language_embedding": np.stack([instruction_embedding(s) for s in instructions]),
        "reward": (np.arange(T) == T - 1).astype(np.float32) * float(success),
        "is_terminal": np.arange(T) == T - 1,
        "aspects/success": success, "aspects/feasible": True, "aspects/has_aspects": True,
        "attributes/env_name": f"selfflow_simpler/{u.spec.id if u.spec else type(u).__name__}/episode_{episode}",
        "attributes/data_type_name": "scripted_expert" if not noise else
        f"scripted_expert_noise_{noise.trans_m:g}m_{noise.rot_rad:g}rad",
        "attributes/task_family_name": instructions[0],
    }


class _Recorder:
    """One env + expert per task, reused across episodes (per process)."""

    def __init__(self, assets: str | None, overlay: bool, max_steps: int | None,
                 noise: ActionNoise = ActionNoise()) -> None:
        self.assets, self.overlay, self.max_steps, self.noise = assets, overlay, max_steps, noise
        self.task: str | None = None
        self.env: Any = None
        self.expert: Any = None

    def __call__(self, job: tuple[str, int]) -> dict[str, Any]:
        from selfflow_robot.envs.experts import make_expert  # needs transforms3d (the `sim` extra)

        task, episode = job
        if task != self.task:
            self.close()
            extra = {} if self.max_steps is None else {"max_episode_steps": self.max_steps}
            self.env = make_env(task, asset_root=self.assets, overlay=self.overlay, **extra)
            self.expert, self.task = make_expert(task), task
        return record_episode(self.env, self.expert, episode, self.noise, task)

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
        self.env = self.task = None


_RECORDER: _Recorder | None = None  # per worker process


def _worker_init(assets: str | None, overlay: bool, max_steps: int | None, noise: ActionNoise) -> None:
    global _RECORDER
    torch.set_num_threads(1)
    _RECORDER = _Recorder(assets, overlay, max_steps, noise)


def _worker_record(job: tuple[str, int]) -> dict[str, Any]:
    assert _RECORDER is not None
    return _RECORDER(job)


def _recorded(cfg: CollectConfig, jobs: list[tuple[str, int]]) -> Iterator[dict[str, Any]]:
    """Episodes of `jobs`, in order; rendered in `cfg.workers` spawn processes when > 1."""
    workers = min(cfg.workers or os.cpu_count() or 1, len(jobs))
    noise = ActionNoise(cfg.action_noise_m, cfg.action_noise_rad, cfg.noise_seed)
    if workers <= 1:
        rec = _Recorder(cfg.assets, cfg.overlay, cfg.max_steps, noise)
        try:
            yield from map(rec, jobs)
        finally:
            rec.close()
        return
    ctx = mp.get_context("spawn")  # fork would duplicate SAPIEN/Vulkan state
    with ctx.Pool(workers, _worker_init, (cfg.assets, cfg.overlay, cfg.max_steps, noise)) as pool:
        yield from pool.imap(_worker_record, jobs)  # in job order: the dataset is the same for any worker count


def collect(cfg: CollectConfig, progress: bool = True) -> tuple[Path, int, int]:
    """Record `cfg.episodes` expert episodes per task into one dataset; returns (builder dir, written, successes)."""
    resolve_asset_root(cfg.assets)  # missing assets: one clear error before any process starts
    jobs = cfg.jobs()
    n_ok = n_written = 0
    writer = DatasetWriter(cfg.output_dir, overwrite=cfg.overwrite, episodes_per_shard=cfg.episodes_per_shard)
    desc = f"collect {jobs[0][0]}" if len({t for t, _ in jobs}) == 1 else f"collect {len(jobs)} episodes"
    try:
        bar = tqdm(_recorded(cfg, jobs), total=len(jobs), desc=desc, disable=not progress)
        for i, ep in enumerate(bar):
            n_ok += int(ep["aspects/success"])
            bar.set_postfix(success=f"{n_ok}/{i + 1}")
            if ep["aspects/success"] or not cfg.only_success:
                writer.write(ep)
                n_written += 1
        if n_written == 0:
            writer.abort()
            raise ConfigError(f"no successful episodes out of {len(jobs)} for {cfg.task}; "
                              "nothing written (set only_success=false to keep failures)")
        path = writer.close()
    except BaseException:
        if writer.tmp.exists():
            writer.abort()
        raise
    return path, n_written, n_ok


def main(cfg) -> int:
    """CLI entry point (`configs/collect.yaml`)."""
    c = structured(CollectConfig, cfg)
    path, n, ok = collect(c)
    print(f"wrote {n} episodes ({ok}/{len(c.jobs())} successful) to {path}")
    return 0
