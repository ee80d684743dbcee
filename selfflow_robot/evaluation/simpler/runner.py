"""Evaluate a `selfflow-robot serve` policy in real SimplerEnv, with SimplerEnv's own evaluation code.

Run it in SimplerEnv's environment (not ours), by file path, with SimplerEnv's `main_inference.py`
arguments plus the server's address::

    python selfflow_robot/evaluation/simpler/runner.py --server ws://127.0.0.1:8000 --ckpt-path my_ckpt \\
        --robot google_robot_static --control-freq 3 --sim-freq 513 --max-episode-steps 113 \\
        --env-name OpenTopDrawerCustomInScene-v0 --scene-name dummy_drawer \\
        --robot-init-x 0.644 0.644 1 --robot-init-y -0.179 -0.179 1 \\
        --robot-init-rot-quat-center 0 0 0 1 --robot-init-rot-rpy-range 0 0 1 0 0 1 -0.03 -0.03 1 \\
        --obj-init-x-range 0 0 1 --obj-init-y-range 0 0 1 \\
        --rgb-overlay-path $SIMPLER/ManiSkill2_real2sim/data/real_inpainting/open_drawer_a0.png \\
        --enable-raytracing --additional-env-build-kwargs station_name=mk_station_recolor light_mode=simple \\
            disable_bad_material=True urdf_version=None

Everything SimplerEnv defines stays SimplerEnv's: the argument parser (`simpler_env.evaluation.argparse`),
the env kwargs and grid loops, the instruction switch of the place-apple task (the policy's terminate
on a non-final subtask calls `advance_to_next_subtask`; the env forces it at step 100), success read
from the last executed step, and the result layout
``<logging-dir>/<ckpt>/<scene>/<control_mode>/<env+kwargs>/rob_.../{success|failure}_obj_....mp4``
that SimplerEnv's `tools/calc_metrics_evaluation_videos.py` globs
(`simpler_env.evaluation.maniskill2_evaluator.maniskill2_evaluator`). This file only supplies the model:
`RemotePolicy`, SimplerEnv's policy interface (`reset`, `step`, `visualize_epoch`) over the policy server.

Imports: numpy, matplotlib and the light client (`selfflow_robot.policies.client`: numpy + msgpack +
websockets) at module level; SimplerEnv inside `main`. Without ray tracing (drop `--enable-raytracing`) SimplerEnv
renders with its rasterizer, the only practical choice on CPU (see docs/simpler.md).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

try:  # the installed package; SimplerEnv's environment usually lacks it (`load_client_module` falls back)
    from selfflow_robot.policies import client as installed_client
except ImportError:
    installed_client = None
try:  # a SimplerEnv dependency that bundles an ffmpeg binary (`ensure_ffmpeg`)
    import imageio_ffmpeg
except ImportError:
    imageio_ffmpeg = None

TOKEN_ENV = "SELFFLOW_ROBOT_SERVE_TOKEN"  # same variable the server reads


def load_client_module() -> Any:
    """`selfflow_robot.policies.client` if installed, else the `policies/client.py` of this checkout.

    The fallback loads that file by path (as a vendored copy: it imports `wire.py` beside it), so
    SimplerEnv's environment needs neither our package nor its dependencies (torch, hydra, ...), only
    numpy, msgpack and websockets.
    """
    if installed_client is not None:
        return installed_client
    path = Path(__file__).resolve().parents[3] / "policies" / "client.py"
    spec = importlib.util.spec_from_file_location("selfflow_policy_client", path)
    if spec is None or spec.loader is None or not path.is_file():
        raise ImportError(f"cannot find the policy client: install selfflow-robot or keep {path}")
    sys.path.append(str(path.parent))  # where the client's `import wire` finds the wire format
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def to_simpler_action(action7: np.ndarray, terminate: float, action_scale: float = 1.0,
                      gripper_deadzone: float = 1e-2) -> tuple[dict, dict]:
    """One unnormalised RT-1 step `(7,)` -> SimplerEnv's `(raw_action, action)` (Google robot setup).

    Same conversion as our in-process policy (`selfflow_robot.data.transforms.SimplerAction`;
    a test keeps them equal): `rotation_delta` is read as axis-angle (SimplerEnv's RT-1 wrapper),
    `world_vector` and `rot_axangle` are multiplied by `action_scale`, the relative gripper (+1 close)
    below `gripper_deadzone` in magnitude is sent as 0.
    """
    a = np.asarray(action7, np.float64).reshape(7)
    gripper = float(a[6]) if abs(float(a[6])) >= gripper_deadzone else 0.0
    raw = {"world_vector": a[0:3].copy(), "rotation_delta": a[3:6].copy(),
           "gripper_closedness_action": np.array([gripper]), "terminate_episode": np.array([float(terminate)])}
    action = {"world_vector": raw["world_vector"] * action_scale, "rot_axangle": a[3:6].copy() * action_scale,
              "gripper": np.array([gripper]), "terminate_episode": np.array([float(terminate)])}
    return raw, action


class RemotePolicy:
    """SimplerEnv's policy interface backed by `selfflow-robot serve`.

    Each chunk request carries the last `context_frames` frames (oldest first; at an episode start
    the first frame is repeated), so the server-side history is exactly the frames this episode saw,
    whatever the execute horizon. A chunk is requested every `execute_horizon` steps (default: the
    server's own setting, else the whole chunk); `terminate[i] >= 0.5` is the terminate flag, unless
    `ignore_terminate`: SimplerEnv's evaluator ends an episode (or, in the place-apple task, moves to the next
    subtask) as soon as the policy says terminate, so an undertrained checkpoint that says it early loses the
    episode after a few steps; ignoring it runs every episode to its step limit, as SimplerEnv's own Octo and
    OpenVLA adapters do (they always send 0). Its RT-1 adapter passes the model's flag on.
    """

    def __init__(self, client: Any, execute_horizon: int | None = None, action_scale: float = 1.0,
                 gripper_deadzone: float = 1e-2, ignore_terminate: bool = False) -> None:
        meta = client.metadata
        if int(meta.get("state_dim", 0) or 0):
            raise ValueError(f"the served checkpoint conditions on the robot state (state_dim={meta['state_dim']}), "
                             "but SimplerEnv's evaluation loop hands the policy only the image; score it with "
                             "`selfflow-robot eval` (the ManiSkill3 port), serve it with use_state=false (if it "
                             "was trained with train.state_dropout > 0), or serve a checkpoint trained with "
                             "model.state_dim=0")
        self.client = client
        self.chunk_length = int(meta["chunk_length"])
        self.context_frames = max(1, int(meta.get("context_frames", 1)))
        self.execute_horizon = int(execute_horizon or meta.get("execute_horizon") or self.chunk_length)
        if not 1 <= self.execute_horizon <= self.chunk_length:
            raise ValueError(f"execute_horizon must be in [1, {self.chunk_length}], got {self.execute_horizon}")
        self.action_scale = action_scale
        self.gripper_deadzone = gripper_deadzone
        self.ignore_terminate = ignore_terminate
        self.task_description: str | None = None
        self.frames: deque = deque(maxlen=self.context_frames)
        self._chunk: np.ndarray | None = None
        self._terminate: np.ndarray | None = None
        self._used = 0
        self.infer_ms: list[float] = []

    def reset(self, task_description: str) -> None:
        """New episode: the server clears its session, the frame history and the chunk are dropped."""
        self.client.reset(task_description)
        self.task_description = task_description
        self.frames.clear()
        self._chunk = None
        self._used = 0

    def step(self, image: np.ndarray, task_description: str | None = None) -> tuple[dict, dict]:
        """uint8 `(H, W, 3)` -> `(raw_action, action)`; a new instruction resets first (SimplerEnv's RT-1 rule)."""
        if task_description is not None and task_description != self.task_description:
            self.reset(task_description)
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3:
            raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        if not self.frames:
            for _ in range(self.context_frames - 1):
                self.frames.append(image)
        self.frames.append(image)
        if self._chunk is None or self._used >= self.execute_horizon:
            t0 = time.perf_counter()
            reply = self.client.infer(np.stack(list(self.frames)))
            self.infer_ms.append((time.perf_counter() - t0) * 1e3)
            chunk = np.asarray(reply["actions"], np.float64)
            if chunk.ndim != 2 or chunk.shape[1] != 7 or len(chunk) < self.execute_horizon:
                raise ValueError(f"server chunk has shape {chunk.shape}, need (>= {self.execute_horizon}, 7)")
            self._chunk = chunk
            self._terminate = np.asarray(reply.get("terminate", np.zeros(len(chunk))), np.float64).reshape(-1)
            self._used = 0
        i = self._used
        self._used += 1
        term = 1.0 if not self.ignore_terminate and self._terminate is not None and self._terminate[i] >= 0.5 else 0.0
        return to_simpler_action(self._chunk[i], term, self.action_scale, self.gripper_deadzone)

    def visualize_epoch(self, predicted_raw_actions: Sequence[dict], images: Sequence[np.ndarray],
                        save_path: str) -> None:
        """SimplerEnv calls this after each episode: plot the raw actions over time (matplotlib, SimplerEnv's dep)."""
        keys = ("world_vector", "rotation_delta", "gripper_closedness_action", "terminate_episode")
        fig = Figure(figsize=(4 * len(keys), 3))
        axes = fig.subplots(1, len(keys))
        for ax, k in zip(axes, keys):
            if predicted_raw_actions:
                ax.plot(np.stack([np.asarray(a[k]).reshape(-1) for a in predicted_raw_actions]))
            ax.set_title(k, fontsize=9)
            ax.set_xlabel("step")
        fig.tight_layout()
        fig.savefig(save_path)


def ensure_ffmpeg() -> None:
    """SimplerEnv writes its videos with mediapy, which needs an `ffmpeg` binary: without one on PATH,
    use the one bundled with imageio-ffmpeg (a SimplerEnv dependency) when it is installed."""
    if shutil.which("ffmpeg") is not None or imageio_ffmpeg is None:
        return
    try:
        import mediapy
    except ImportError:
        return
    mediapy.set_ffmpeg(imageio_ffmpeg.get_ffmpeg_exe())


def parse_runner_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Split our options from SimplerEnv's `main_inference.py` options (passed through untouched)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=False)
    p.add_argument("--server", default="ws://127.0.0.1:8000", help="the policy server's ws:// address")
    p.add_argument("--token", default=os.environ.get(TOKEN_ENV), help=f"auth token (default: ${TOKEN_ENV})")
    p.add_argument("--execute-horizon", type=int, default=None, help="actions run per chunk (default: server's)")
    p.add_argument("--gripper-deadzone", type=float, default=1e-2)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each server reply")
    p.add_argument("--ignore-terminate", action="store_true",
                   help="never send terminate_episode=1: every episode runs to its step limit (see RemotePolicy)")
    p.add_argument("--summary-jsonl", default=None,
                   help="append one JSON line per invocation (env, args, successes) to this file")
    p.add_argument("--runner-help", action="store_true", help="show these options and exit")
    ours, rest = p.parse_known_args(list(argv))
    if ours.runner_help:
        p.print_help()
        sys.exit(0)
    return ours, rest


def main(argv: Sequence[str] | None = None) -> int:
    ours, rest = parse_runner_args(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("DISPLAY", "")  # as SimplerEnv's main_inference.py: headless rendering
    from simpler_env.evaluation.argparse import get_args
    from simpler_env.evaluation.maniskill2_evaluator import maniskill2_evaluator

    ensure_ffmpeg()
    client_mod = load_client_module()
    saved = sys.argv
    try:
        sys.argv = [saved[0], *rest]
        args = get_args()
    finally:
        sys.argv = saved
    t0 = time.time()
    with client_mod.PolicyClient(ours.server, token=ours.token, timeout=ours.timeout) as client:
        if args.ckpt_path is None:  # SimplerEnv names the results folder after the checkpoint
            args.ckpt_path = Path(str(client.metadata.get("checkpoint", "selfflow"))).name or "selfflow"
        model = RemotePolicy(client, ours.execute_horizon, args.action_scale, ours.gripper_deadzone,
                             ignore_terminate=ours.ignore_terminate)
        success = maniskill2_evaluator(model, args)
    rate = float(np.mean(success)) if len(success) else float("nan")
    print(" " * 10, "Average success", rate)
    if ours.summary_jsonl:
        rec = {"env_name": args.env_name, "scene_name": args.scene_name, "ckpt": args.ckpt_path,
               "rgb_overlay_path": args.rgb_overlay_path, "enable_raytracing": bool(args.enable_raytracing),
               "additional_env_build_kwargs": args.additional_env_build_kwargs,
               "successes": [bool(s) for s in success], "seconds": time.time() - t0,
               "ignore_terminate": ours.ignore_terminate,
               "infer_ms_mean": float(np.mean(model.infer_ms)) if model.infer_ms else None}
        with open(ours.summary_jsonl, "a") as f:
            f.write(json.dumps(rec, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
