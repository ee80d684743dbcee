"""Episode execution for `selfflow-robot eval`: one episode, one agent, and a pool of worker processes.

An episode follows SimplerEnv's evaluator (`simpler_env/evaluation/maniskill2_evaluator.py`):
reset to a grid episode, read the instruction, then step until the time limit truncates or the
policy terminates on the final subtask. A terminate on an earlier subtask (place apple: "open top
drawer") advances the env to the next subtask instead; the env also forces that switch at step 100.
The env never stops on success; success is `info["success"]` of the last executed step.

Workers are separate processes (spawn), each with its own env per task and agent per checkpoint,
so the CPU-bound simulation and rendering of several episodes run on all cores. The parent owns
all writing of results (one JSON line per finished episode), so a crash loses at most the
episodes in flight.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
import torch

from selfflow_robot.envs.tasks import make_env, overhead_rgb, robot_state
from selfflow_robot.evaluation.agents import EXPERT, Agent, make_agent


@dataclass(frozen=True)
class EpisodeJob:
    """One episode to run: which agent (`checkpoint` name + path, or the expert), which task and grid index."""

    checkpoint: str            # display name (folder of results); "expert" for the scripted expert
    checkpoint_path: str       # checkpoint dir ("" for the expert)
    policy: str                # "checkpoint" | "expert"
    task: str                  # our task name, e.g. "open_top_drawer"
    episode: int               # index in the task's visual-matching grid

    @property
    def key(self) -> tuple[str, str, int]:
        """(checkpoint, task, episode): what identifies a finished episode in episodes.jsonl."""
        return (self.checkpoint, self.task, self.episode)


@dataclass
class WorkerSettings:
    """What every worker needs besides the jobs."""

    video_dir: str | None             # None = no videos
    video_fps: int = 5                   # SimplerEnv writes its videos at 5 fps
    asset_root: str | None = None
    overlay: bool = True
    render_backend: str = "cpu"
    torch_threads: int = 1
    policy_options: dict = field(default_factory=dict)


def _flag(x: Any) -> bool:
    """A ManiSkill3 batched bool (tensor of shape (1,)) or a plain bool -> bool."""
    if hasattr(x, "reshape"):
        x = x.reshape(-1)[0]
    if hasattr(x, "item"):
        x = x.item()
    return bool(x)


def video_name(success: bool, job: EpisodeJob, overlay_id: str, urdf_version: str, variant: str = "") -> str:
    """`{success|failure}_ep{NNN}_overlay_{id}_urdf_{version}.mp4` (visual matching) or
    `{success|failure}_ep{NNN}_variant_{name}.mp4` (variant aggregation): the outcome first, as SimplerEnv names
    videos."""
    head = f"{'success' if success else 'failure'}_ep{job.episode:03d}"
    if variant:
        return f"{head}_variant_{variant}.mp4"
    return f"{head}_overlay_{overlay_id}_urdf_{urdf_version or 'None'}.mp4"


def drawer_opening(u: Any) -> float | None:
    """The task drawer's joint position (m) of a drawer env, None for a task without one."""
    if not hasattr(u, "drawer_qpos"):
        return None
    return round(float(np.asarray(u.drawer_qpos).reshape(-1)[0]), 4)


def tool_state(env: Any) -> list[float]:
    """The robot's 8-D state (`envs.tasks.robot_state`: tool pose in the base frame, gripper), rounded for the
    record: where the tool went, for comparing a policy's path with the expert's (`evaluation.tool_paths`)."""
    return [round(float(v), 4) for v in robot_state(env)]


def run_episode(env: Any, agent: Agent, job: EpisodeJob, video_dir: Path | None = None,
                fps: int = 5) -> dict:
    """Run one grid episode with SimplerEnv's evaluator semantics; returns its record (and writes its mp4)."""
    t0 = time.time()
    obs, info = env.reset(options={"episode": job.episode})
    u = env.unwrapped
    instruction = u.get_language_instruction()
    instructions = [instruction]
    agent.reset(instruction, env, obs)
    writer, tmp = None, None
    if video_dir is not None:
        video_dir.mkdir(parents=True, exist_ok=True)
        tmp = video_dir / f".ep{job.episode:03d}.{os.getpid()}.tmp.mp4"
        writer = imageio.get_writer(tmp, fps=fps, codec="libx264", quality=6, macro_block_size=16)
    steps, success, terminated_by_policy = 0, False, False
    opening = [drawer_opening(u)]  # per video frame: what the success judge of imagined frames learns from
    tool = [tool_state(env)]       # per video frame: where the tool is
    executed = []                  # per step: the action sent to the simulator, for replays in the world model
    try:
        image = overhead_rgb(obs)
        if writer is not None:
            writer.append_data(image)
        while True:
            action, terminate = agent.act(image, instruction, env, obs)
            if terminate and not u.is_final_subtask():
                u.advance_to_next_subtask()   # SimplerEnv: terminate on an earlier subtask = next subtask
                terminate = False
            obs, _, _, truncated, info = env.step(action)
            executed.append([round(float(v), 5) for v in action])
            steps += 1
            success = _flag(info["success"])
            new = u.get_language_instruction()
            if new != instruction:
                instruction = new
                instructions.append(new)
            image = overhead_rgb(obs)
            opening.append(drawer_opening(u))
            tool.append(tool_state(env))
            if writer is not None:
                writer.append_data(image)
            if terminate or _flag(truncated):
                terminated_by_policy = terminate
                break
    except BaseException:
        if writer is not None:
            writer.close()
            writer = None
            tmp.unlink(missing_ok=True)  # no half video left behind
        raise
    finally:
        if writer is not None:
            writer.close()
    ep = u.episode
    record = {**asdict(job), "success": success, "steps": steps, "terminated_by_policy": terminated_by_policy,
              "instructions": instructions, "overlay_id": ep.overlay_id, "urdf_version": ep.urdf_version,
              "robot_xy": list(ep.robot_xy), "apple_xy": None if ep.apple_xy is None else list(ep.apple_xy),
              "seconds": round(time.time() - t0, 3), "tool_state": tool, "actions": executed}
    if ep.variant:
        record["variant"] = ep.variant
    if opening[-1] is not None:
        record["final_drawer_qpos"] = opening[-1]
        record["drawer_qpos"] = opening
    if tmp is not None:
        final = video_dir / video_name(success, job, ep.overlay_id, ep.urdf_version, ep.variant)
        os.replace(tmp, final)
        record["video"] = str(final)
    return record


class _Worker:
    """Per-process state: one env (for the current task) and one agent (for the current checkpoint)."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.s = settings
        self.env: Any = None
        self.env_task: str | None = None
        self.agent: Agent | None = None
        self.agent_key: tuple[str, str, str] | None = None
        if settings.torch_threads > 0:
            torch.set_num_threads(settings.torch_threads)

    def run(self, job: EpisodeJob) -> dict:
        """Run `job`, rebuilding the env on a new task and the agent on a new checkpoint (or expert task)."""
        if self.env_task != job.task:
            if self.env is not None:
                self.env.close()
            self.env = make_env(job.task, asset_root=self.s.asset_root, overlay=self.s.overlay,
                                render_backend=self.s.render_backend)
            self.env_task = job.task
        key = (job.policy, job.checkpoint_path, job.task if job.policy == EXPERT else "")
        if self.agent_key != key:
            self.agent = make_agent(job.policy, job.checkpoint_path, job.task, **self.s.policy_options)
            self.agent_key = key
        video_dir = None if self.s.video_dir is None else Path(self.s.video_dir) / job.checkpoint / job.task
        return run_episode(self.env, self.agent, job, video_dir, self.s.video_fps)

    def close(self) -> None:
        if self.env is not None:
            self.env.close()


def _worker_main(settings: WorkerSettings, jobs: mp.Queue, results: mp.Queue) -> None:
    worker = None
    try:
        worker = _Worker(settings)
        while True:
            job = jobs.get()
            if job is None:
                break
            try:
                results.put(("ok", worker.run(job)))
            except BaseException:  # report, then stop this worker: the parent decides
                results.put(("error", (asdict(job), traceback.format_exc())))
                break
    except BaseException:
        results.put(("error", (None, traceback.format_exc())))
    finally:
        if worker is not None:
            worker.close()
        results.put(("done", os.getpid()))


class EpisodeError(RuntimeError):
    """An episode raised inside a worker; carries the job and the worker's traceback."""


def run_jobs(jobs: Sequence[EpisodeJob], settings: WorkerSettings, workers: int = 1) -> Iterator[dict]:
    """Run `jobs`, yielding each finished episode's record as soon as it is done (any order).

    `workers <= 1` runs in this process; more start that many spawn-context processes (capped at
    the number of jobs). A failing episode stops the pool and raises `EpisodeError` with the
    worker's traceback; records already yielded stay valid.
    """
    jobs = list(jobs)
    if not jobs:
        return
    if workers <= 1:
        worker = _Worker(settings)
        try:
            for job in jobs:
                yield worker.run(job)
        finally:
            worker.close()
        return
    ctx = mp.get_context("spawn")  # fork would duplicate SAPIEN/Vulkan and torch state
    job_q: Any = ctx.Queue()
    res_q: Any = ctx.Queue()
    n = min(workers, len(jobs))
    for job in jobs:
        job_q.put(job)
    for _ in range(n):
        job_q.put(None)
    procs = [ctx.Process(target=_worker_main, args=(settings, job_q, res_q), daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    running = n
    try:
        while running:
            try:
                kind, payload = res_q.get(timeout=5.0)
            except queue.Empty:
                dead = [p for p in procs if not p.is_alive() and p.exitcode not in (0, None)]
                if dead:
                    raise EpisodeError(f"worker process {dead[0].pid} died (exit code {dead[0].exitcode})") from None
                continue
            if kind == "ok":
                yield payload
            elif kind == "done":
                running -= 1
            else:
                job, tb = payload
                raise EpisodeError(f"episode {job} failed in a worker:\n{tb}")
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=10)
