"""Fidelity of the ManiSkill3 port against real SimplerEnv (SAPIEN 2.2.2): the SimplerEnv half, and the layout.

Two measurements over the visual-matching grid, each per task:

(a) the first overhead frame of the same initial state (robot pose, URDF colouring, overlay, drawer /
    apple state): mean absolute pixel difference (0-255, over all 640x512x3 values) and side-by-side PNGs;
(b) the port's scripted-expert action sequence replayed open-loop in SimplerEnv (rasterizer), through
    SimplerEnv's own evaluator (`run_maniskill2_eval_single_episode`: instruction switching, success
    read at the last step): does the outcome agree with the port's? Goal: >= 90% agreement.

The port and SimplerEnv live in different environments, so the measurement runs in phases that share
`--out` (`scripts/simpler_fidelity.py`, docs/simpler_fidelity.md): `port`, `port_traj` and `report` in
ours (`selfflow_robot.evaluation.fidelity`), `simpler`, `simpler_traj` and `controller --sim simpler` in
SimplerEnv's, from this module. It runs there without selfflow-robot installed (loaded by file path), so it
imports only numpy, PIL and (inside the phases) SimplerEnv; the grid episodes it renders come from the
port phase's `port/grid_<task>.json`, the replayed actions from its `port/<task>_epNNN.npz`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

try:  # a SimplerEnv dependency that bundles an ffmpeg binary for mediapy
    import imageio_ffmpeg
except ImportError:
    imageio_ffmpeg = None

# our task -> SimplerEnv env id (the visual-matching drawer and apple tasks)
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
# The controller check: 6 times CHECK_ARM, then the gripper actions of CHECK_GRIPPER.
CHECK_ARM = [0.03, 0.0, 0.03, 0.0, 0.0, 0.0, 0.0]
CHECK_GRIPPER = [1.0, 1.0, 0.0, -1.0]
PHASES = ("port", "port_traj", "simpler", "simpler_traj", "report", "controller")
SIMPLER_PHASES = ("simpler", "simpler_traj")  # and `controller --sim simpler`


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file ([] when it does not exist)."""
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


def append_jsonl(path: Path, rec: dict) -> None:
    """Append one record as a JSON line, flushed and fsynced (a phase resumes from what is there)."""
    with open(path, "a") as f:
        f.write(json.dumps(rec) + "\n")
        f.flush()
        os.fsync(f.fileno())


def grid_path(out: Path, task: str) -> Path:
    """`<out>/port/grid_<task>.json`: the task's grid episodes (`envs.grid.EpisodeConfig` fields), by the port."""
    return out / "port" / f"grid_{task}.json"


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


def print_controller_check(rows: Sequence[tuple[np.ndarray, float]]) -> None:
    """The controller check's printout: TCP displacement (world, m) and mean finger joint (rad) per action."""
    for i, (d, f) in enumerate(rows):
        print(f"action {i}: TCP displacement {[round(float(x), 4) for x in d]} m, fingers {f:.4f} rad")


def build_parser() -> argparse.ArgumentParser:
    """The options of every phase (the same in both environments)."""
    p = argparse.ArgumentParser(description="Fidelity of the ManiSkill3 port against real SimplerEnv "
                                            "(docs/simpler_fidelity.md).")
    p.add_argument("phase", choices=PHASES)
    p.add_argument("--out", default="runs/fidelity")
    p.add_argument("--tasks", nargs="*", default=None, help="subset of tasks (default: all 7)")
    p.add_argument("--replay", choices=["small", "stratified", "all"], default="stratified",
                   help="port phase: expert episodes replayed in SimplerEnv (stratified: 9 per drawer task, "
                        "12 apple; small: 4 per task; all: the whole grid)")
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
    return p


# ------------------------------------------------------------------------------------------------ SimplerEnv

class ReplayPolicy:
    """SimplerEnv policy interface replaying a recorded action sequence open-loop (plus its terminate flags)."""

    def __init__(self, actions: np.ndarray, terminate: np.ndarray) -> None:
        self.actions, self.terminate = actions, terminate
        self.i = 0
        self.first_image: np.ndarray | None = None
        self.instructions: list[str] = []

    def reset(self, task_description: str) -> None:
        """SimplerEnv starts an episode (or switches the instruction)."""
        self.instructions.append(task_description)

    def step(self, image: np.ndarray, task_description: str | None = None) -> tuple[dict, dict]:
        """The next recorded action as SimplerEnv's `(raw_action, action)`; zeros once the recording ends."""
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
        return raw, {"world_vector": a[:3], "rot_axangle": a[3:6], "gripper": a[6:7],
                     "terminate_episode": np.array([term])}

    def visualize_epoch(self, predicted_raw_actions, images, save_path) -> None:
        """Nothing to plot: the actions are the port's, already in its records."""


def simpler_kwargs(task: str, urdf_version: str) -> dict:
    """SimplerEnv's env kwargs of its visual-matching scripts for `task` and a URDF colouring."""
    kw = {"station_name": "mk_station_recolor", "light_mode": "simple", "disable_bad_material": True,
          "urdf_version": urdf_version or "None"}
    if task.startswith("place_apple"):
        kw["model_ids"] = "baked_apple_v2"
    return kw


def robot_quat(yaw: float) -> np.ndarray:
    """The robot base orientation SimplerEnv's argparse builds from a yaw offset (w, x, y, z)."""
    from sapien.core import Pose
    from transforms3d.euler import euler2quat

    return (Pose(q=euler2quat(0, 0, yaw)) * Pose(q=[0, 0, 0, 1])).q


def overlay_rgb(data: Path, overlay_id: str) -> np.ndarray:
    """`real_inpainting/open_drawer_<id>.png` as float RGB in [0, 1], as SimplerEnv holds its overlay."""
    return np.asarray(Image.open(data / "real_inpainting" / f"open_drawer_{overlay_id}.png").convert("RGB")) / 255


def simpler_frames(task: str, out: Path, data: Path, raytrace: int = 0) -> None:
    """First frame of every grid episode in SimplerEnv: one env per URDF colouring, overlay set per pose.

    `raytrace` > 0: instead, the first `raytrace` grid episodes with SimplerEnv's ray tracing (`shader_dir=rt`,
    as its drawer scripts render) into `simpler/frames_rt/`.
    """
    from simpler_env.utils.env.env_builder import build_maniskill2_env

    grid = grid_path(out, task)
    if not grid.is_file():
        raise SystemExit(f"{grid} is missing: run the port phase for {task} first (it writes the grid)")
    episodes = json.loads(grid.read_text())
    apple = task.startswith("place_apple")
    frames = out / "simpler" / ("frames_rt" if raytrace else "frames")
    frames.mkdir(parents=True, exist_ok=True)
    extra = {"shader_dir": "rt"} if raytrace else {}
    by_urdf: dict[str, list[dict]] = {}
    for ep in episodes[:raytrace] if raytrace else episodes:
        by_urdf.setdefault(ep["urdf_version"], []).append(ep)
    for urdf, eps in by_urdf.items():
        todo = [ep for ep in eps if not (frames / f"{task}_ep{ep['index']:03d}.png").is_file()]
        if not todo:
            continue
        env = build_maniskill2_env(
            SIMPLER_IDS[task], obs_mode="rgbd", robot="google_robot_static", sim_freq=513, control_mode=CONTROL_MODE,
            control_freq=3, max_episode_steps=200 if apple else 113, scene_name="dummy_drawer",
            camera_cfgs={"add_segmentation": True},
            rgb_overlay_path=str(data / "real_inpainting" / f"open_drawer_{todo[0]['overlay_id']}.png"),
            **extra, **simpler_kwargs(task, urdf))
        for ep in todo:
            # the overlay image is read at construction; switch it as SimplerEnv's prepackaged reset does
            env.unwrapped.rgb_overlay_img = overlay_rgb(data, ep["overlay_id"])
            obj = {"init_xy": np.array(ep["apple_xy"] if ep["apple_xy"] else (0.0, 0.0))}
            obs, _ = env.reset(options={"robot_init_options": {"init_xy": np.array(ep["robot_xy"]),
                                                               "init_rot_quat": robot_quat(ep["robot_yaw"])},
                                        "obj_init_options": obj})
            Image.fromarray(obs["image"]["overhead_camera"]["rgb"]).save(frames / f"{task}_ep{ep['index']:03d}.png")
        env.close()


def phase_simpler_traj(args: argparse.Namespace) -> None:
    """Replay every recorded expert episode open-loop in SimplerEnv with our own loop, recording the TCP path
    and the drawer opening per step (the evaluator's outcome is in `replays.jsonl`)."""
    os.environ.setdefault("DISPLAY", "")
    from simpler_env.utils.env.env_builder import build_maniskill2_env

    out = Path(args.out)
    data = Path(args.simpler_dir) / "ManiSkill2_real2sim" / "data"
    for rec in read_jsonl(out / "port" / "episodes.jsonl"):
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
            **simpler_kwargs(task, rec["urdf_version"]))
        u = env.unwrapped
        env.reset(options={"robot_init_options": {"init_xy": np.array(rec["robot_xy"]),
                                                  "init_rot_quat": robot_quat(rec["robot_yaw"])},
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
        np.savez_compressed(dst, tcp=np.stack(tcp), qpos=np.asarray(qpos), joints=np.stack(joints),
                            ik_target=np.stack(targets), ik_fail=np.asarray(ik_fail), success=success)
        print(f"simpler traj {task} ep{e}: success {success}", flush=True)


def _ensure_ffmpeg() -> None:
    """mediapy (SimplerEnv's video writer) needs an ffmpeg binary: use imageio-ffmpeg's when none is on PATH."""
    if shutil.which("ffmpeg") is not None or imageio_ffmpeg is None:
        return
    try:
        import mediapy
    except ImportError:
        return
    mediapy.set_ffmpeg(imageio_ffmpeg.get_ffmpeg_exe())


def phase_simpler(args: argparse.Namespace) -> None:
    """SimplerEnv's first frames of the grid (or ray-traced ones), then the port's expert episodes replayed
    through SimplerEnv's own evaluator (`simpler/replays.jsonl`)."""
    os.environ.setdefault("DISPLAY", "")
    _ensure_ffmpeg()
    from simpler_env.evaluation.maniskill2_evaluator import run_maniskill2_eval_single_episode

    out = Path(args.out)
    data = Path(args.simpler_dir) / "ManiSkill2_real2sim" / "data"
    port = read_jsonl(out / "port" / "episodes.jsonl")
    tasks = args.tasks or list(SIMPLER_IDS)
    t0 = time.time()
    if not args.skip_frames:
        for task in tasks:
            simpler_frames(task, out, data)
            print(f"frames {task}: {time.time() - t0:.0f}s", flush=True)
    if args.rt_frames:
        for task in tasks:
            simpler_frames(task, out, data, raytrace=args.rt_frames)
            print(f"ray-traced frames {task}: {time.time() - t0:.0f}s", flush=True)
        return
    log = out / "simpler" / "replays.jsonl"
    done = {(r["task"], r["episode"]) for r in read_jsonl(log)}
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
            robot_init_quat=robot_quat(rec["robot_yaw"]), control_mode=CONTROL_MODE,
            obj_init_x=apple[0] if apple else 0.0, obj_init_y=apple[1] if apple else 0.0,
            additional_env_build_kwargs=simpler_kwargs(task, rec["urdf_version"]),
            rgb_overlay_path=str(data / "real_inpainting" / f"open_drawer_{rec['overlay_id']}.png"),
            control_freq=3, sim_freq=513, max_episode_steps=200 if apple else 113, enable_raytracing=False,
            logging_dir=str(out / "simpler" / "videos"))
        videos = sorted((out / "simpler" / "videos" / name).rglob("*.mp4"), key=lambda p: p.stat().st_mtime)
        append_jsonl(log, {"task": task, "episode": e, "simpler_success": bool(ok), "port_success": rec["success"],
                           "steps_replayed": model.i, "port_steps": rec["steps"], "instructions": model.instructions,
                           "video": str(videos[-1]) if videos else None, "seconds": round(time.time() - t1, 1)})
        print(f"replay {name}: simpler {ok} port {rec['success']} ({time.time() - t1:.0f}s)", flush=True)


def controller_check_simpler(simpler_dir: str) -> list[tuple[np.ndarray, float]]:
    """The controller check in SimplerEnv (its environment): from open-top-drawer grid episode 0, 6 actions
    `CHECK_ARM`, then `CHECK_GRIPPER`; the TCP displacement (world, m) and mean finger joint (rad) after each.
    tests/envs/test_sim_controller.py holds these numbers; the port's must agree."""
    os.environ.setdefault("DISPLAY", "")
    from simpler_env.utils.env.env_builder import build_maniskill2_env

    data = Path(simpler_dir) / "ManiSkill2_real2sim" / "data"
    env = build_maniskill2_env(
        SIMPLER_IDS["open_top_drawer"], obs_mode="state_dict", robot="google_robot_static", sim_freq=513,
        control_mode=CONTROL_MODE, control_freq=3, max_episode_steps=113, scene_name="dummy_drawer",
        rgb_overlay_path=str(data / "real_inpainting" / "open_drawer_a0.png"),
        **simpler_kwargs("open_top_drawer", "recolor_cabinet_visual_matching_1"))
    u = env.unwrapped
    env.reset(options={"robot_init_options": {"init_xy": np.array([0.644, -0.179]),
                                              "init_rot_quat": robot_quat(-0.03)},
                       "obj_init_options": {"init_xy": np.array([0.0, 0.0])}})
    p0 = np.asarray(u.tcp.pose.p)[:3].copy()
    rows = []
    for a in [CHECK_ARM] * 6 + [[0.0] * 6 + [g] for g in CHECK_GRIPPER]:
        env.step(np.asarray(a, np.float64))
        rows.append((np.asarray(u.tcp.pose.p)[:3] - p0, float(np.mean(u.agent.robot.get_qpos()[-4:-2]))))
    env.close()
    return rows


def main(argv: Sequence[str] | None = None, unavailable: str | None = None) -> int:
    """The phases that run in SimplerEnv's environment (`simpler`, `simpler_traj`, `controller --sim simpler`).

    `unavailable`: why selfflow-robot's own phases cannot run here (shown when one is asked for).
    """
    args = build_parser().parse_args(argv)
    if args.phase == "controller" and args.sim == "simpler":
        print_controller_check(controller_check_simpler(args.simpler_dir))
    elif args.phase in SIMPLER_PHASES:
        {"simpler": phase_simpler, "simpler_traj": phase_simpler_traj}[args.phase](args)
    else:
        what = f"phase {args.phase}" + (" --sim port" if args.phase == "controller" else "")
        print(f"error: {what} runs in selfflow-robot's environment"
              + (f" (here: {unavailable})" if unavailable else ""), file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
