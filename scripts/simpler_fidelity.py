#!/usr/bin/env python
"""Fidelity of the ManiSkill3 port against real SimplerEnv (SAPIEN 2.2.2), over the visual-matching grid.

Two measurements, each per task:

(a) the first overhead frame of the same initial state (robot pose, URDF colouring, overlay, drawer /
    apple state): mean absolute pixel difference (0-255, over all 640x512x3 values) and side-by-side PNGs;
(b) the port's scripted-expert action sequence replayed open-loop in SimplerEnv (rasterizer), through
    SimplerEnv's own evaluator (`run_maniskill2_eval_single_episode`: instruction switching, success
    read at the last step): does the outcome agree with the port's? Goal: >= 90% agreement.

The port and SimplerEnv live in different environments, so this runs in three phases sharing `--out`:

    # 0. the controller alone: the same 10 actions printed in the port and (in SimplerEnv's env) in SimplerEnv
    python scripts/simpler_fidelity.py controller
    python scripts/simpler_fidelity.py controller --sim simpler --simpler-dir /path/to/SimplerEnv
    # 1. our environment: first frames of every grid episode, expert episodes (actions + outcome)
    python scripts/simpler_fidelity.py port --out runs/fidelity --workers 2
    # 2. SimplerEnv's environment (CPU: `. /tmp/vkl/env.sh` first, see docs/simpler.md)
    python scripts/simpler_fidelity.py simpler --out runs/fidelity --simpler-dir /path/to/SimplerEnv
    # 3. our environment: figures, small PNGs and the markdown section for docs/simpler_fidelity.md
    python scripts/simpler_fidelity.py report --out runs/fidelity --img-dir docs/img/fidelity

`--replay stratified` (default) replays 9 episodes per drawer task (every robot pose once, the 4 URDF
colourings in turn) and 12 apple episodes (3 poses x 4 colourings); `--replay small` 4 per task (each
colouring once); `--replay all` the whole grid (216 + 108 episodes). Frames (a) always cover the whole grid. Only numpy is imported at module level.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# our task -> (SimplerEnv env id, episode steps, extra env kwargs of SimplerEnv's visual-matching scripts)
SIMPLER_IDS = {
    "open_top_drawer": "OpenTopDrawerCustomInScene-v0",
    "open_middle_drawer": "OpenMiddleDrawerCustomInScene-v0",
    "open_bottom_drawer": "OpenBottomDrawerCustomInScene-v0",
    "close_top_drawer": "CloseTopDrawerCustomInScene-v0",
    "close_middle_drawer": "CloseMiddleDrawerCustomInScene-v0",
    "close_bottom_drawer": "CloseBottomDrawerCustomInScene-v0",
    "place_apple_in_closed_top_drawer": "PlaceIntoClosedTopDrawerCustomInScene-v0",
}
# joints recorded per step by the trajectory phases (7 arm joints, then the two fingers)
ROBOT_JOINTS = ("joint_torso", "joint_shoulder", "joint_bicep", "joint_elbow", "joint_forearm", "joint_wrist",
                "joint_gripper", "joint_finger_right", "joint_finger_left")
CONTROL_MODE = ("arm_pd_ee_delta_pose_align_interpolate_by_planner_gripper_pd_joint_target_delta_pos_"
                "interpolate_by_planner")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


def _append(path: Path, rec: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")
        f.flush()
        os.fsync(f.fileno())


def replay_episodes(task: str, n: int, mode: str) -> list[int]:
    """Grid indices replayed in SimplerEnv: all, or a stratified subset covering every pose and colouring."""
    if mode == "all":
        return list(range(n))
    if mode == "small":  # 4 episodes a task: each URDF colouring once, poses and apple cells varied
        if n == 36:
            return [0, 13, 26, 33]
        return [0, 40, 80, 83]
    if n == 36:  # drawer: e = urdf * 9 + pose; pose p with colouring p % 4
        return sorted(((p % 4) * 9 + p) for p in range(9))
    # apple: e = urdf * 27 + pose * 9 + ix * 3 + iy; every (pose, colouring), apple cell varying
    return sorted(u * 27 + p * 9 + ((p + u) % 3) * 3 + ((2 * p + u) % 3) for p in range(3) for u in range(4))


# ------------------------------------------------------------------------------------------------ phase 1: port

class _RecordingExpert:
    """The task's expert as an eval `Agent`, remembering the first frame and every action it sent."""

    def __init__(self, task: str) -> None:
        from selfflow_robot.evaluation.workers import ExpertAgent

        self.inner = ExpertAgent(task)
        self.actions: list[np.ndarray] = []
        self.terminate: list[bool] = []

    def reset(self, instruction, env, obs) -> None:
        self.actions, self.terminate = [], []
        self.inner.reset(instruction, env, obs)

    def act(self, image, instruction, env, obs):
        action, term = self.inner.act(image, instruction, env, obs)
        self.actions.append(np.asarray(action, np.float32))
        self.terminate.append(bool(term))
        return action, term


def _port_task(task: str, out: str, replay: str | None, assets: str | None, threads: int) -> str:
    """Worker: all first frames of `task`, then the replay subset's expert episodes."""
    import torch

    torch.set_num_threads(threads)
    from PIL import Image

    from selfflow_robot.evaluation.workers import EpisodeJob, run_episode
    from selfflow_robot.envs.grid import DRAWER_POSES
    from selfflow_robot.envs.tasks import TASKS, make_env, overhead_rgb

    root = Path(out) / "port"
    (root / "frames").mkdir(parents=True, exist_ok=True)
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
        done = {(r["task"], r["episode"]) for r in _jsonl(root / "episodes.jsonl")}
        agent = _RecordingExpert(task)
        yaw = {p[0]: p[3] for p in DRAWER_POSES}
        for e in replay_episodes(task, spec.num_episodes, replay):
            if (task, e) in done:
                continue
            rec = run_episode(env, agent, EpisodeJob("expert", "", "expert", task, e))
            rec["robot_yaw"] = yaw[rec["overlay_id"]]
            np.savez_compressed(root / f"{task}_ep{e:03d}.npz", actions=np.stack(agent.actions),
                                terminate=np.asarray(agent.terminate))
            _append(root / "episodes.jsonl", rec)
    finally:
        env.close()
    return task


def phase_port(args: argparse.Namespace) -> None:
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from selfflow_robot.envs.tasks import TASKS

    tasks = args.tasks or list(TASKS)
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=args.workers, mp_context=mp.get_context("spawn")) as pool:
        futs = [pool.submit(_port_task, t, args.out, None if args.frames_only else args.replay,
                            args.asset_root, 1) for t in tasks]
        for f in futs:
            print("port done:", f.result(), f"{time.time() - t0:.0f}s", flush=True)


def phase_port_traj(args: argparse.Namespace) -> None:
    """Replay every recorded expert episode open-loop in the port (no rendering): TCP path, drawer opening, success."""
    import torch

    torch.set_num_threads(1)
    from selfflow_robot.envs.tasks import make_env

    out = Path(args.out)
    envs: dict = {}
    for rec in _jsonl(out / "port" / "episodes.jsonl"):
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
        np.savez_compressed(dst, tcp=np.stack(tcp), qpos=np.asarray(qpos), joints=np.stack(joints), ik_target=np.stack(targets),
                            ik_fail=np.asarray(ik_fail), success=success)
        print(f"port replay {task} ep{e}: success {success} (closed loop {rec['success']})", flush=True)
    for env in envs.values():
        env.close()


# ------------------------------------------------------------------------------------------------ phase 2: SimplerEnv

class ReplayPolicy:
    """SimplerEnv policy interface replaying a recorded action sequence open-loop (plus its terminate flags)."""

    def __init__(self, actions: np.ndarray, terminate: np.ndarray) -> None:
        self.actions, self.terminate = actions, terminate
        self.i = 0
        self.first_image: np.ndarray | None = None
        self.instructions: list[str] = []

    def reset(self, task_description: str) -> None:
        self.instructions.append(task_description)

    def step(self, image: np.ndarray, task_description: str | None = None):
        if self.first_image is None:
            self.first_image = np.array(image)
        if task_description and task_description != self.instructions[-1]:
            self.instructions.append(task_description)
        if self.i < len(self.actions):
            a, term = self.actions[self.i].astype(np.float64), float(self.terminate[self.i])
        else:  # SimplerEnv asked for more steps than the port ran: hold still
            a, term = np.zeros(7), 0.0
        self.i += 1
        raw = {"world_vector": a[:3], "rotation_delta": a[3:6], "gripper_closedness_action": a[6:7],
               "terminate_episode": np.array([term])}
        return raw, {"world_vector": a[:3], "rot_axangle": a[3:6], "gripper": a[6:7], "terminate_episode": np.array([term])}

    def visualize_epoch(self, predicted_raw_actions, images, save_path) -> None:
        """Nothing to plot: the actions are the port's, already in its records."""


def _simpler_kwargs(task: str, urdf_version: str) -> dict:
    kw = {"station_name": "mk_station_recolor", "light_mode": "simple", "disable_bad_material": True,
          "urdf_version": urdf_version or "None"}
    if task.startswith("place_apple"):
        kw["model_ids"] = "baked_apple_v2"
    return kw


def _robot_quat(yaw: float) -> np.ndarray:
    from sapien.core import Pose
    from transforms3d.euler import euler2quat

    return (Pose(q=euler2quat(0, 0, yaw)) * Pose(q=[0, 0, 0, 1])).q  # SimplerEnv's argparse


def _simpler_frames(task: str, out: Path, data: Path, raytrace: int = 0) -> None:
    """First frame of every grid episode in SimplerEnv: one env per URDF colouring, overlay set per pose.

    `raytrace` > 0: instead, the first `raytrace` grid episodes with SimplerEnv's ray tracing (`shader_dir=rt`,
    as its drawer scripts render) into `simpler/frames_rt/`.
    """
    import cv2
    from PIL import Image
    from simpler_env.utils.env.env_builder import build_maniskill2_env

    sys.path.insert(0, str(REPO / "envs"))
    from grid import episode_config, num_episodes  # our grid table, numpy only

    family = "apple" if task.startswith("place_apple") else "drawer"
    frames = out / "simpler" / ("frames_rt" if raytrace else "frames")
    frames.mkdir(parents=True, exist_ok=True)
    extra = {"shader_dir": "rt"} if raytrace else {}
    by_urdf: dict[str, list] = {}
    for e in range(raytrace or num_episodes(family)):
        ep = episode_config(family, e)
        by_urdf.setdefault(ep.urdf_version, []).append(ep)
    for urdf, eps in by_urdf.items():
        todo = [ep for ep in eps if not (frames / f"{task}_ep{ep.index:03d}.png").is_file()]
        if not todo:
            continue
        env = build_maniskill2_env(
            SIMPLER_IDS[task], obs_mode="rgbd", robot="google_robot_static", sim_freq=513, control_mode=CONTROL_MODE,
            control_freq=3, max_episode_steps=200 if family == "apple" else 113, scene_name="dummy_drawer",
            camera_cfgs={"add_segmentation": True},
            rgb_overlay_path=str(data / "real_inpainting" / f"open_drawer_{todo[0].overlay_id}.png"),
            **extra, **_simpler_kwargs(task, urdf))
        for ep in todo:
            # the overlay image is read at construction; switch it as SimplerEnv's prepackaged reset does
            img = cv2.imread(str(data / "real_inpainting" / f"open_drawer_{ep.overlay_id}.png"))
            env.unwrapped.rgb_overlay_img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB) / 255
            obj = {"init_xy": np.array(ep.apple_xy if ep.apple_xy else (0.0, 0.0))}
            obs, _ = env.reset(options={"robot_init_options": {"init_xy": np.array(ep.robot_xy),
                                                               "init_rot_quat": _robot_quat(ep.robot_yaw)},
                                        "obj_init_options": obj})
            Image.fromarray(obs["image"]["overhead_camera"]["rgb"]).save(frames / f"{task}_ep{ep.index:03d}.png")
        env.close()


def phase_simpler_traj(args: argparse.Namespace) -> None:
    """Replay every recorded expert episode open-loop in SimplerEnv with our own loop, recording the TCP path
    and the drawer opening per step (the evaluator's outcome is in `replays.jsonl`)."""
    os.environ.setdefault("DISPLAY", "")
    from simpler_env.utils.env.env_builder import build_maniskill2_env

    out = Path(args.out)
    data = Path(args.simpler_dir) / "ManiSkill2_real2sim" / "data"
    for rec in _jsonl(out / "port" / "episodes.jsonl"):
        task, e = rec["task"], rec["episode"]
        dst = out / "simpler" / f"traj_{task}_ep{e:03d}.npz"
        if dst.is_file() or (args.tasks and task not in args.tasks):
            continue
        apple = rec.get("apple_xy")
        overlay = data / "real_inpainting" / f"open_drawer_{rec['overlay_id']}.png"
        env = build_maniskill2_env(
            SIMPLER_IDS[task], obs_mode="rgbd", robot="google_robot_static", sim_freq=513, control_mode=CONTROL_MODE,
            control_freq=3, max_episode_steps=200 if apple else 113, scene_name="dummy_drawer",
            camera_cfgs={"add_segmentation": True}, rgb_overlay_path=str(overlay),
            **_simpler_kwargs(task, rec["urdf_version"]))
        u = env.unwrapped
        env.reset(options={"robot_init_options": {"init_xy": np.array(rec["robot_xy"]),
                                                  "init_rot_quat": _robot_quat(rec["robot_yaw"])},
                           "obj_init_options": {"init_xy": np.array(apple if apple else (0.0, 0.0))}})
        npz = np.load(out / "port" / f"{task}_ep{e:03d}.npz")
        tcp, qpos, joints, targets, ik_fail, success = [], [], [], [], [], False
        arm = u.agent.controller.controllers["arm"]
        names = [j.get_name() for j in u.agent.robot.get_active_joints()]
        idx = [names.index(n) for n in ROBOT_JOINTS]
        for a, term in zip(npz["actions"], npz["terminate"]):
            if term and not u.is_final_subtask():
                u.advance_to_next_subtask()
            _, _, done, _, info = env.step(a.astype(np.float64))
            tcp.append(np.asarray(u.tcp.pose.p)[:3])
            qpos.append(float(u.art_obj.get_qpos()[u.joint_idx]))
            joints.append(u.agent.robot.get_qpos()[idx])
            targets.append(np.asarray(arm._target_qpos).reshape(-1)[:7])
            ik_fail.append(bool(np.abs(a[:6]).max() > 0 and np.allclose(arm._target_qpos, arm._start_qpos)))
            success = bool(done)
        env.close()
        dst.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(dst, tcp=np.stack(tcp), qpos=np.asarray(qpos), joints=np.stack(joints), ik_target=np.stack(targets),
                            ik_fail=np.asarray(ik_fail), success=success)
        print(f"simpler traj {task} ep{e}: success {success}", flush=True)


def phase_simpler(args: argparse.Namespace) -> None:
    os.environ.setdefault("DISPLAY", "")
    import shutil

    if shutil.which("ffmpeg") is None:  # mediapy (SimplerEnv's video writer) needs an ffmpeg binary
        try:
            import imageio_ffmpeg
            import mediapy

            mediapy.set_ffmpeg(imageio_ffmpeg.get_ffmpeg_exe())
        except ImportError:
            pass
    from simpler_env.evaluation.maniskill2_evaluator import run_maniskill2_eval_single_episode

    out = Path(args.out)
    data = Path(args.simpler_dir) / "ManiSkill2_real2sim" / "data"
    port = _jsonl(out / "port" / "episodes.jsonl")
    tasks = args.tasks or list(SIMPLER_IDS)
    t0 = time.time()
    if not args.skip_frames:
        for task in tasks:
            _simpler_frames(task, out, data)
            print(f"frames {task}: {time.time() - t0:.0f}s", flush=True)
    if args.rt_frames:
        for task in tasks:
            _simpler_frames(task, out, data, raytrace=args.rt_frames)
            print(f"ray-traced frames {task}: {time.time() - t0:.0f}s", flush=True)
        return
    log = out / "simpler" / "replays.jsonl"
    done = {(r["task"], r["episode"]) for r in _jsonl(log)}
    for rec in port:
        if rec["task"] not in tasks or (rec["task"], rec["episode"]) in done:
            continue
        task, e = rec["task"], rec["episode"]
        npz = np.load(out / "port" / f"{task}_ep{e:03d}.npz")
        model = ReplayPolicy(npz["actions"], npz["terminate"])
        apple = rec.get("apple_xy")
        name = f"{task}_ep{e:03d}"
        t1 = time.time()
        ok = run_maniskill2_eval_single_episode(
            model=model, ckpt_path=name, robot_name="google_robot_static", env_name=SIMPLER_IDS[task],
            scene_name="dummy_drawer", robot_init_x=rec["robot_xy"][0], robot_init_y=rec["robot_xy"][1],
            robot_init_quat=_robot_quat(rec["robot_yaw"]), control_mode=CONTROL_MODE,
            obj_init_x=apple[0] if apple else 0.0, obj_init_y=apple[1] if apple else 0.0,
            additional_env_build_kwargs=_simpler_kwargs(task, rec["urdf_version"]),
            rgb_overlay_path=str(data / "real_inpainting" / f"open_drawer_{rec['overlay_id']}.png"),
            control_freq=3, sim_freq=513, max_episode_steps=200 if apple else 113, enable_raytracing=False,
            logging_dir=str(out / "simpler" / "videos"))
        videos = sorted((out / "simpler" / "videos" / name).rglob("*.mp4"), key=lambda p: p.stat().st_mtime)
        _append(log, {"task": task, "episode": e, "simpler_success": bool(ok), "port_success": rec["success"],
                      "steps_replayed": model.i, "port_steps": rec["steps"], "instructions": model.instructions,
                      "video": str(videos[-1]) if videos else None, "seconds": round(time.time() - t1, 1)})
        print(f"replay {name}: simpler {ok} port {rec['success']} ({time.time() - t1:.0f}s)", flush=True)


# ------------------------------------------------------------------------------------------------ controller check

CHECK_ARM = [0.03, 0.0, 0.03, 0.0, 0.0, 0.0, 0.0]     # 6 times, then the gripper actions below
CHECK_GRIPPER = [1.0, 1.0, 0.0, -1.0]


def phase_controller(args: argparse.Namespace) -> None:
    """The controller check: from open-top-drawer grid episode 0, 6 actions `CHECK_ARM`, then gripper actions
    `CHECK_GRIPPER`; prints the TCP displacement (world, m) and the mean finger joint (rad) after each. Runs in
    the port (`--sim port`) or in SimplerEnv (`--sim simpler`, its environment); the two printouts should agree
    (tests/envs/test_sim_controller.py holds SimplerEnv's numbers)."""
    rows = []
    if args.sim == "simpler":
        os.environ.setdefault("DISPLAY", "")
        from simpler_env.utils.env.env_builder import build_maniskill2_env

        data = Path(args.simpler_dir) / "ManiSkill2_real2sim" / "data"
        env = build_maniskill2_env(
            SIMPLER_IDS["open_top_drawer"], obs_mode="state_dict", robot="google_robot_static", sim_freq=513,
            control_mode=CONTROL_MODE, control_freq=3, max_episode_steps=113, scene_name="dummy_drawer",
            rgb_overlay_path=str(data / "real_inpainting" / "open_drawer_a0.png"),
            **_simpler_kwargs("open_top_drawer", "recolor_cabinet_visual_matching_1"))
        u = env.unwrapped
        env.reset(options={"robot_init_options": {"init_xy": np.array([0.644, -0.179]),
                                                  "init_rot_quat": _robot_quat(-0.03)},
                           "obj_init_options": {"init_xy": np.array([0.0, 0.0])}})
        tcp = lambda: np.asarray(u.tcp.pose.p)[:3]                              # noqa: E731
        fingers = lambda: float(np.mean(u.agent.robot.get_qpos()[-4:-2]))        # noqa: E731
    else:
        import torch

        torch.set_num_threads(1)
        from selfflow_robot.envs.tasks import make_env

        env = make_env("open_top_drawer", asset_root=args.asset_root, obs_mode="none")
        env.reset(options={"episode": 0})
        u = env.unwrapped
        tcp = lambda: np.asarray(u.agent.tcp.pose.p).reshape(-1)[:3]            # noqa: E731
        fingers = lambda: float(np.mean([u.agent.robot.joints_map[n].qpos.item()  # noqa: E731
                                         for n in ("joint_finger_right", "joint_finger_left")]))
    p0 = tcp().copy()
    for a in [CHECK_ARM] * 6 + [[0.0] * 6 + [g] for g in CHECK_GRIPPER]:
        env.step(np.asarray(a, np.float64 if args.sim == "simpler" else np.float32))
        rows.append((tcp() - p0, fingers()))
    env.close()
    for i, (d, f) in enumerate(rows):
        print(f"action {i}: TCP displacement {[round(float(x), 4) for x in d]} m, fingers {f:.4f} rad")


# ------------------------------------------------------------------------------------------------ phase 3: report

def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _trajectory_section(out: Path, img_dir: Path) -> list[str]:
    """(c) Same actions, both simulators: TCP path divergence and drawer opening; one plot per task."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = ["", "### (c) Same action sequence in both simulators: end-effector path and drawer opening", "",
             "| task | episodes | TCP distance at step 10 (cm) | first step > 1 cm apart (median) | max TCP distance (cm) | final drawer opening port / SimplerEnv (m) | port open-loop = closed-loop |",
             "|---|---|---|---|---|---|---|"]
    closed = {(r["task"], r["episode"]): r["success"] for r in _jsonl(out / "port" / "episodes.jsonl")}
    for task in SIMPLER_IDS:
        pairs = []
        for f in sorted((out / "simpler").glob(f"traj_{task}_ep*.npz")):
            g = out / "port" / f.name
            if g.is_file():
                pairs.append((int(f.stem.rsplit("_ep", 1)[1]), np.load(g), np.load(f)))
        if not pairs:
            continue
        d10 = [100 * np.linalg.norm(a["tcp"][min(9, len(a["tcp"]) - 1)] - b["tcp"][min(9, len(b["tcp"]) - 1)]) for _, a, b in pairs]
        dmax = [100 * np.max(np.linalg.norm(a["tcp"] - b["tcp"], axis=1)) for _, a, b in pairs]
        apart = [int(np.argmax(d > 1.0)) + 1 if (d := 100 * np.linalg.norm(a["tcp"] - b["tcp"], axis=1)).max() > 1.0
                 else len(d) for _, a, b in pairs]
        qp = [a["qpos"][-1] for _, a, _ in pairs]
        qs = [b["qpos"][-1] for _, _, b in pairs]
        same = sum(bool(a["success"]) == closed.get((task, e)) for e, a, _ in pairs)
        lines.append(f"| {task} | {len(pairs)} | {np.mean(d10):.2f} | {int(np.median(apart))} | {np.mean(dmax):.1f} | "
                     f"{np.mean(qp):.3f} / {np.mean(qs):.3f} | {same}/{len(pairs)} |")
        e, a, b = pairs[0]
        fig, axes = plt.subplots(1, 4, figsize=(13, 2.6), dpi=80)
        for i, name in enumerate("xyz"):
            axes[i].plot(a["tcp"][:, i], label="port")
            axes[i].plot(b["tcp"][:, i], "--", label="SimplerEnv")
            axes[i].set_title(f"TCP {name} (m)", fontsize=9)
        axes[3].plot(a["qpos"], label="port")
        axes[3].plot(b["qpos"], "--", label="SimplerEnv")
        axes[3].set_title("drawer opening (m)", fontsize=9)
        axes[3].legend(fontsize=7)
        for ax in axes:
            ax.set_xlabel("step", fontsize=8)
            ax.tick_params(labelsize=7)
        fig.suptitle(f"{task}, grid episode {e}: the port expert's actions replayed in both simulators", fontsize=9)
        fig.tight_layout()
        fig.savefig(img_dir / f"traj_{task}.png")
        plt.close(fig)
    return lines


def phase_report(args: argparse.Namespace) -> None:
    from PIL import Image, ImageDraw

    out, img_dir = Path(args.out), Path(args.img_dir)
    img_dir.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[float]] = {}
    worst: dict[str, tuple[float, str]] = {}
    for png in sorted((out / "port" / "frames").glob("*.png")):
        other = out / "simpler" / "frames" / png.name
        if not other.is_file():
            continue
        a, b = np.asarray(Image.open(png).convert("RGB")), np.asarray(Image.open(other).convert("RGB"))
        task = png.stem.rsplit("_ep", 1)[0]
        d = _mad(a, b)
        rows.setdefault(task, []).append(d)
        if d > worst.get(task, (-1, ""))[0]:
            worst[task] = (d, png.name)
    lines = ["### (a) First overhead frame, same initial state (mean absolute difference, 0-255)", "",
             "| task | frames | mean | median | max |", "|---|---|---|---|---|"]
    allv = []
    for task, v in rows.items():
        allv += v
        lines.append(f"| {task} | {len(v)} | {np.mean(v):.2f} | {np.median(v):.2f} | {np.max(v):.2f} |")
    if allv:
        lines.append(f"| **all** | {len(allv)} | {np.mean(allv):.2f} | {np.median(allv):.2f} | {np.max(allv):.2f} |")
    # ray-traced SimplerEnv frames (its drawer scripts' default renderer), where rendered
    rt = sorted((out / "simpler" / "frames_rt").glob("*.png"))
    if rt:
        lines += ["", "Against SimplerEnv's ray-traced render (`shader_dir=rt`, as its drawer scripts), same initial states:", "",
                  "| frames | port vs SimplerEnv ray-traced | SimplerEnv rasterizer vs SimplerEnv ray-traced |", "|---|---|---|"]
        d_port, d_se = [], []
        for png in rt:
            c = np.asarray(Image.open(png).convert("RGB"))
            d_port.append(_mad(np.asarray(Image.open(out / "port" / "frames" / png.name).convert("RGB")), c))
            d_se.append(_mad(np.asarray(Image.open(out / "simpler" / "frames" / png.name).convert("RGB")), c))
        lines.append(f"| {len(rt)} | {np.mean(d_port):.2f} | {np.mean(d_se):.2f} |")
    # side-by-side PNGs: episode 0 of every task (port | SimplerEnv | ray-traced if any | |difference| x4), 320x256 each
    for task in rows:
        name = f"{task}_ep000.png"
        a = Image.open(out / "port" / "frames" / name).convert("RGB")
        b = Image.open(out / "simpler" / "frames" / name).convert("RGB")
        diff = np.clip(4 * np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)), 0, 255).astype(np.uint8)
        panels = [(a, "ManiSkill3 port"), (b, "SimplerEnv, rasterizer")]
        if (out / "simpler" / "frames_rt" / name).is_file():
            panels.append((Image.open(out / "simpler" / "frames_rt" / name).convert("RGB"), "SimplerEnv, ray-traced"))
        panels.append((Image.fromarray(diff), f"|port - SimplerEnv| x4 (MAD {_mad(np.asarray(a), np.asarray(b)):.2f})"))
        w, h = 320, 256
        canvas = Image.new("RGB", (len(panels) * w, h + 18), "white")
        for i, (im, label) in enumerate(panels):
            canvas.paste(im.resize((w, h), Image.BILINEAR), (i * w, 18))
            ImageDraw.Draw(canvas).text((i * w + 4, 3), label, fill="black")
        canvas.quantize(128).save(img_dir / f"{task}_ep000.png", optimize=True)  # palette PNG: small enough for git
    # (b) outcomes: SimplerEnv success of the open-loop replay (own loop, `simpler_traj`), cross-checked with
    # SimplerEnv's evaluator (`replays.jsonl`) where that ran too
    port_recs = {(r["task"], r["episode"]): r for r in _jsonl(out / "port" / "episodes.jsonl")}
    evaluator = {(r["task"], r["episode"]): r["simpler_success"] for r in _jsonl(out / "simpler" / "replays.jsonl")}
    reps = []
    for (task, e), rec in port_recs.items():
        f = out / "simpler" / f"traj_{task}_ep{e:03d}.npz"
        g = out / "port" / f"traj_{task}_ep{e:03d}.npz"
        if f.is_file():
            reps.append({"task": task, "episode": e, "port_success": rec["success"],
                         "port_open_loop": bool(np.load(g)["success"]) if g.is_file() else None,
                         "simpler_success": bool(np.load(f)["success"]), "evaluator": evaluator.get((task, e))})
    lines += ["", "### (b) Port expert actions replayed open-loop in SimplerEnv (rasterizer)", "",
              "| task | episodes | port expert (closed loop) | SimplerEnv, same actions | agreement | "
              "port, same actions (open loop) | agreement, same actions |", "|---|---|---|---|---|---|---|"]
    agree_all, agree_ol = [], []

    def _frac(rows: list, key: str) -> str:
        vals = [x[key] for x in rows if x[key] is not None]
        return f"{sum(vals)}/{len(vals)}" if vals else "—"

    for task in list(SIMPLER_IDS) + ["**all**"]:
        r = reps if task == "**all**" else [x for x in reps if x["task"] == task]
        if not r:
            continue
        agree = [x["port_success"] == x["simpler_success"] for x in r]
        ol = [x["port_open_loop"] == x["simpler_success"] for x in r if x["port_open_loop"] is not None]
        if task != "**all**":
            agree_all += agree
            agree_ol += ol
        lines.append(f"| {task} | {len(r)} | {_frac(r, 'port_success')} | {_frac(r, 'simpler_success')} | "
                     f"{100 * np.mean(agree):.0f}% | {_frac(r, 'port_open_loop')} | "
                     + (f"{100 * np.mean(ol):.0f}% |" if ol else "— |"))
    checked = [x for x in reps if x["evaluator"] is not None]
    if checked:
        lines += ["", f"SimplerEnv's own evaluator (`run_maniskill2_eval_single_episode`) on {len(checked)} of these "
                      f"episodes gives the same outcome as the replay loop in "
                      f"{sum(x['evaluator'] == x['simpler_success'] for x in checked)}/{len(checked)}."]
    lines += _trajectory_section(out, img_dir)
    text = "\n".join(lines) + "\n"
    (out / "fidelity.md").write_text(text)
    summary = {"frame_mad": {t: float(np.mean(v)) for t, v in rows.items()},
               "frame_mad_all": float(np.mean(allv)) if allv else None,
               "replay_agreement": float(np.mean(agree_all)) if agree_all else None,
               "replay_agreement_same_actions": float(np.mean(agree_ol)) if agree_ol else None,
               "replays": len(agree_all), "worst_frame": worst}
    (out / "fidelity.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(text)
    print(json.dumps(summary, indent=2))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("phase", choices=["port", "port_traj", "simpler", "simpler_traj", "report", "controller"])
    p.add_argument("--out", default="runs/fidelity")
    p.add_argument("--tasks", nargs="*", default=None, help="subset of tasks (default: all 7)")
    p.add_argument("--replay", choices=["small", "stratified", "all"], default="stratified")
    p.add_argument("--workers", type=int, default=2, help="port phase: processes (one task each)")
    p.add_argument("--asset-root", default=None, help="port phase: ManiSkill2_real2sim copy")
    p.add_argument("--simpler-dir", default=os.environ.get("SIMPLER_ENV_DIR", "SimplerEnv"),
                   help="simpler phase: SimplerEnv checkout (with ManiSkill2_real2sim inside)")
    p.add_argument("--skip-frames", action="store_true", help="simpler phase: replays only")
    p.add_argument("--rt-frames", type=int, default=0,
                   help="simpler phase: only render the first N grid episodes of each task ray-traced (slow on CPU)")
    p.add_argument("--frames-only", action="store_true", help="port phase: first frames only, no expert episodes")
    p.add_argument("--img-dir", default="docs/img/fidelity", help="report phase: where the side-by-side PNGs go")
    p.add_argument("--sim", choices=["port", "simpler"], default="port", help="controller phase: which simulator")
    args = p.parse_args(argv)
    {"port": phase_port, "port_traj": phase_port_traj, "simpler": phase_simpler, "simpler_traj": phase_simpler_traj,
     "report": phase_report, "controller": phase_controller}[args.phase](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
