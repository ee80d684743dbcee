"""Fidelity of the ManiSkill3 port against real SimplerEnv: the phases that run in our environment.

`port`: the first overhead frame of every grid episode, the grid itself (`port/grid_<task>.json`, what the
SimplerEnv phase renders), and the scripted expert's episodes of the replay subset (actions + outcome);
`port_traj`: those episodes replayed open-loop in the port (no rendering), with the TCP path and drawer
opening per step; `controller --sim port`: the controller check in the port; `report`:
`fidelity_report.write_fidelity_report`. The SimplerEnv phases and the shared layout are in
`selfflow_robot.evaluation.simpler.fidelity` (see its docstring, and docs/simpler_fidelity.md).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from selfflow_robot.envs.grid import episode_config
from selfflow_robot.envs.tasks import TASKS, make_env, overhead_rgb
from selfflow_robot.evaluation.agents import ExpertAgent
from selfflow_robot.evaluation.fidelity_report import write_fidelity_report
from selfflow_robot.evaluation.simpler.fidelity import (
    CHECK_ARM,
    CHECK_GRIPPER,
    ROBOT_JOINTS,
    append_jsonl,
    build_parser,
    controller_check_simpler,
    grid_path,
    phase_simpler,
    phase_simpler_traj,
    print_controller_check,
    read_jsonl,
    replay_episodes,
)
from selfflow_robot.evaluation.workers import EpisodeJob, run_episode


class RecordingExpert:
    """The task's expert as an eval `Agent`, remembering every action it sent."""

    def __init__(self, task: str) -> None:
        self.inner = ExpertAgent(task)
        self.actions: list[np.ndarray] = []
        self.terminate: list[bool] = []

    def reset(self, instruction: str, env: Any, obs: Any) -> None:
        """New episode: forget the recorded actions."""
        self.actions, self.terminate = [], []
        self.inner.reset(instruction, env, obs)

    def act(self, image: np.ndarray, instruction: str, env: Any, obs: Any) -> tuple[np.ndarray, bool]:
        """The expert's action, recorded."""
        action, term = self.inner.act(image, instruction, env, obs)
        self.actions.append(np.asarray(action, np.float32))
        self.terminate.append(bool(term))
        return action, term


def write_grid(out: Path, task: str) -> None:
    """`port/grid_<task>.json`: every grid episode's configuration, for the SimplerEnv phase to render."""
    spec = TASKS[task]
    episodes = [asdict(episode_config(spec.family, e)) for e in range(spec.num_episodes)]
    path = grid_path(out, task)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(episodes) + "\n")


def port_task(task: str, out: str, replay: str | None, assets: str | None, threads: int) -> str:
    """Worker: the grid and all first frames of `task`, then the replay subset's expert episodes."""
    torch.set_num_threads(threads)
    root = Path(out) / "port"
    (root / "frames").mkdir(parents=True, exist_ok=True)
    write_grid(Path(out), task)
    spec = TASKS[task]
    env = make_env(task, asset_root=assets)
    try:
        for e in range(spec.num_episodes):
            png = root / "frames" / f"{task}_ep{e:03d}.png"
            if png.is_file():
                continue
            obs, _ = env.reset(options={"episode": e})
            Image.fromarray(overhead_rgb(obs)).save(png)
        if replay is None:
            return task
        done = {(r["task"], r["episode"]) for r in read_jsonl(root / "episodes.jsonl")}
        agent = RecordingExpert(task)
        for e in replay_episodes(task, spec.num_episodes, replay):
            if (task, e) in done:
                continue
            rec = run_episode(env, agent, EpisodeJob("expert", "", "expert", task, e))
            rec["robot_yaw"] = episode_config(spec.family, e).robot_yaw
            np.savez_compressed(root / f"{task}_ep{e:03d}.npz", actions=np.stack(agent.actions),
                                terminate=np.asarray(agent.terminate))
            append_jsonl(root / "episodes.jsonl", rec)
    finally:
        env.close()
    return task


def phase_port(args: argparse.Namespace) -> None:
    """`port_task` for every task, one process each (`--workers` at a time)."""
    tasks = args.tasks or list(TASKS)
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=mp.get_context("spawn")) as pool:
        futs = [pool.submit(port_task, t, args.out, None if args.frames_only else args.replay,
                            args.asset_root, 1) for t in tasks]
        for f in futs:
            print("port done:", f.result(), f"{time.time() - t0:.0f}s", flush=True)


def phase_port_traj(args: argparse.Namespace) -> None:
    """Replay every recorded expert episode open-loop in the port (no rendering): TCP path, drawer opening,
    success."""
    torch.set_num_threads(1)
    out = Path(args.out)
    envs: dict = {}
    for rec in read_jsonl(out / "port" / "episodes.jsonl"):
        task, e = rec["task"], rec["episode"]
        dst = out / "port" / f"traj_{task}_ep{e:03d}.npz"
        if dst.is_file() or (args.tasks and task not in args.tasks):
            continue
        if task not in envs:
            envs[task] = make_env(task, asset_root=args.asset_root, obs_mode="none")
        env = envs[task]
        u = env.unwrapped
        npz = np.load(out / "port" / f"{task}_ep{e:03d}.npz")
        env.reset(options={"episode": e})
        tcp, qpos, joints, targets, ik_fail, success = [], [], [], [], [], False
        arm = u.agent.controller.controllers["arm"]
        names = [j.name for j in u.agent.robot.get_active_joints()]
        idx = [names.index(n) for n in ROBOT_JOINTS]
        for a, term in zip(npz["actions"], npz["terminate"]):
            if term and not u.is_final_subtask():
                u.advance_to_next_subtask()
            _, _, _, _, info = env.step(a)
            tcp.append(np.asarray(u.agent.tcp.pose.p).reshape(-1)[:3])
            qpos.append(float(np.asarray(u.drawer_qpos).reshape(-1)[0]))
            joints.append(np.asarray(u.agent.robot.get_qpos()).reshape(-1)[idx])
            targets.append(arm._target_qpos.cpu().numpy().reshape(-1)[:7])
            ik_fail.append(bool(np.abs(a[:6]).max() > 0 and np.allclose(arm._target_qpos.cpu().numpy(),
                                                                       arm._start_qpos.cpu().numpy())))
            success = bool(np.asarray(info["success"]).reshape(-1)[0])
        np.savez_compressed(dst, tcp=np.stack(tcp), qpos=np.asarray(qpos), joints=np.stack(joints),
                            ik_target=np.stack(targets), ik_fail=np.asarray(ik_fail), success=success)
        print(f"port replay {task} ep{e}: success {success} (closed loop {rec['success']})", flush=True)
    for env in envs.values():
        env.close()


def controller_check_port(asset_root: str | None) -> list[tuple[np.ndarray, float]]:
    """The controller check in the port (`simpler.fidelity.controller_check_simpler` is SimplerEnv's): from
    open-top-drawer grid episode 0, 6 actions `CHECK_ARM`, then `CHECK_GRIPPER`; the TCP displacement (world, m)
    and the mean finger joint (rad) after each."""
    torch.set_num_threads(1)
    env = make_env("open_top_drawer", asset_root=asset_root, obs_mode="none")
    env.reset(options={"episode": 0})
    u = env.unwrapped

    def tcp() -> np.ndarray:
        return np.asarray(u.agent.tcp.pose.p).reshape(-1)[:3]

    p0 = tcp().copy()
    rows = []
    for a in [CHECK_ARM] * 6 + [[0.0] * 6 + [g] for g in CHECK_GRIPPER]:
        env.step(np.asarray(a, np.float32))
        fingers = float(np.mean([u.agent.robot.joints_map[n].qpos.item()
                                 for n in ("joint_finger_right", "joint_finger_left")]))
        rows.append((tcp() - p0, fingers))
    env.close()
    return rows


def phase_controller(args: argparse.Namespace) -> None:
    """Print the controller check of the port (`--sim port`) or of SimplerEnv (`--sim simpler`, its environment);
    the two printouts should agree (tests/envs/test_sim_controller.py holds SimplerEnv's numbers)."""
    rows = controller_check_simpler(args.simpler_dir) if args.sim == "simpler" else controller_check_port(
        args.asset_root)
    print_controller_check(rows)


def phase_report(args: argparse.Namespace) -> None:
    """Tables, figures and `fidelity.md` / `fidelity.json` from what the other phases left in `--out`."""
    write_fidelity_report(Path(args.out), Path(args.img_dir))


PHASE_FUNCTIONS = {"port": phase_port, "port_traj": phase_port_traj, "simpler": phase_simpler,
                   "simpler_traj": phase_simpler_traj, "report": phase_report, "controller": phase_controller}


def main(argv: Sequence[str] | None = None) -> int:
    """`scripts/simpler_fidelity.py PHASE [options]` (options: `simpler.fidelity.build_parser`)."""
    args = build_parser().parse_args(argv)
    PHASE_FUNCTIONS[args.phase](args)
    return 0
