"""`selfflow-robot data synth`: a small dataset in the exact fractal20220817_data 0.1.0 schema.

Each episode shows a coloured object (its colour names the instruction) on a table with a
ring marking the instruction's goal; a scripted controller moves the object toward the
goal with RT-1 actions, and the frames follow the actions exactly:

- `world_vector` x (forward) moves the object up the image, y (left) moves it left, z
  (height) grows its radius; the motion is clipped at the workspace edge;
- `rotation_delta` yaw turns a bar drawn through the object; roll and pitch are always 0;
- the relative gripper command (+1 close, -1 open) flips a gripper indicator (top-left
  square: white = open, black = closed) and draws a dark ring on the object when closed;
- the last step sets `terminate_episode = [1, 0, 0]` (all others `[0, 1, 0]`).

Every action is a function of what the current frame and the instruction show, up to small
noise (so a policy CAN beat the mean action): the object starts at least `MIN_START_DISTANCE`
from its goal and moves by `0.5 * (goal - position)` (clipped to `MAX_STEP`); the bar turns by
`0.4 * (goal yaw - yaw)` toward the instruction's fixed goal yaw (`GOAL_YAW`); the gripper closes
on the first step the object is within `GRIP_DISTANCE` of the goal, after which the object is
lifted (`z` toward `LIFT_HEIGHT`, a growing disc); it opens again on the episode's last step
(the one command no frame announces). The object is large and moves several pixels per step
even at 32x40, so copying the last frame is a weak world-model baseline while the motion stays
learnable. Instructions have distinct, fixed 512-d unit embeddings.
"""
from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from tqdm import tqdm

from selfflow_robot.config import structured
from selfflow_robot.data import schema
from selfflow_robot.data.writer import DatasetWriter
from selfflow_robot.errors import ConfigError

log = logging.getLogger(__name__)

# instruction -> (object colour RGB, goal position (x forward, y left) in metres)
TASKS: dict[str, tuple[tuple[int, int, int], tuple[float, float]]] = {
    "pick coke can": ((220, 30, 30), (0.12, 0.10)),
    "move blue chip bag near apple": ((40, 70, 230), (-0.10, -0.12)),
    "open top drawer": ((40, 190, 60), (0.14, -0.10)),
    "close middle drawer": ((235, 200, 30), (-0.12, 0.12)),
    "place apple into top drawer": ((200, 50, 200), (0.0, 0.0)),
}
# instruction -> the yaw (radians) the bar is turned to; within (-pi/2, pi/2) so a bar shows it unambiguously
GOAL_YAW: dict[str, float] = {
    "pick coke can": 0.9,
    "move blue chip bag near apple": -0.8,
    "open top drawer": 0.0,
    "close middle drawer": 0.5,
    "place apple into top drawer": -0.4,
}
PIXELS_PER_METRE = 600.0      # image motion per metre of world_vector (at 256 rows)
WORKSPACE = 0.2               # |x|, |y| <= 0.2 m
MAX_STEP = 0.04               # metres per step
MIN_START_DISTANCE = 0.15     # metres between the start position and the goal
GRIP_DISTANCE = 0.025         # the gripper closes once the object is this close to its goal
LIFT_HEIGHT = 0.12            # z target after the gripper closed
ACTION_NOISE = 0.002          # std of the controller noise on world_vector (metres)
YAW_NOISE = 0.01              # std of the controller noise on yaw (radians)
OBJECT_RADIUS = 36.0          # pixels (at 256 rows) at z = 0
RADIUS_PER_METRE = 150.0      # radius growth per metre of height


def instruction_embedding(text: str) -> np.ndarray:
    """A fixed 512-d unit vector per instruction (seeded by its SHA-256), float32."""
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(512)
    return (v / np.linalg.norm(v)).astype(np.float32)


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)], np.float32)


class _Renderer:
    def __init__(self, rng: np.random.Generator, size: tuple[int, int], goal: tuple[float, float]):
        h, w = size
        self.h, self.w = h, w
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        base = rng.uniform(90, 150, size=3)
        shade = (0.75 + 0.25 * yy / h)[..., None]
        self.background = np.clip(base * shade + rng.normal(0, 3, (h, w, 3)), 0, 255).astype(np.uint8)
        gr, gc = self.pixel(*goal)  # the goal ring is static: bake it into the background
        d_goal = np.hypot(yy - gr, xx - gc)
        ring = OBJECT_RADIUS * min(h, w) / 256.0
        self.background[(d_goal > ring + 2) & (d_goal < ring + 7)] = (255, 255, 255)

    def pixel(self, x: float, y: float) -> tuple[float, float]:
        """(row, col) of a workspace point (x forward = up, y left = left)."""
        s = PIXELS_PER_METRE * min(self.h, self.w) / 256.0
        return self.h / 2 - x * s, self.w / 2 - y * s

    def draw(self, pos: np.ndarray, yaw: float, closed: bool, colour) -> np.ndarray:
        img = self.background.copy()
        r, c = self.pixel(pos[0], pos[1])
        scale = min(self.h, self.w) / 256.0
        radius = (OBJECT_RADIUS + RADIUS_PER_METRE * pos[2]) * scale
        # only the object's bounding box is touched (fast)
        r0, r1 = max(0, int(r - radius - 1)), min(self.h, int(r + radius + 2))
        c0, c1 = max(0, int(c - radius - 1)), min(self.w, int(c + radius + 2))
        if r1 > r0 and c1 > c0:
            yy, xx = np.ogrid[r0:r1, c0:c1]
            d = np.hypot(yy - r, xx - c)
            patch = img[r0:r1, c0:c1]
            patch[d < radius] = colour
            if closed:
                patch[(d < radius) & (d > radius - 6 * scale)] = (20, 20, 20)
        # the yaw bar: thick enough (8 px at 256 rows) to stay visible in 32x40 windows
        t = np.linspace(-radius - 6 * scale, radius + 6 * scale, 96)
        half = max(1, round(4 * scale))
        rows = np.round(r - t * np.cos(yaw)).astype(int)
        cols = np.round(c - t * np.sin(yaw)).astype(int)
        for dr in range(-half, half):
            for dc in range(-half, half):
                img[np.clip(rows + dr, 0, self.h - 1), np.clip(cols + dc, 0, self.w - 1)] = (250, 250, 250)
        g = max(2, round(24 * scale))
        img[4:4 + g, 4:4 + g] = (15, 15, 15) if closed else (245, 245, 245)
        return img


def synth_episode(rng: np.random.Generator, instruction: str, length: int,
                  size: tuple[int, int] = schema.IMAGE_SHAPE[:2]) -> dict:
    """One episode (writer layout: schema path -> per-step arrays; frames uint8 (T, H, W, 3))."""
    colour, goal = TASKS[instruction]
    render = _Renderer(rng, size, goal)
    while True:  # start far enough from the goal that the object moves for several steps
        pos = np.array([*rng.uniform(-WORKSPACE, WORKSPACE, 2), 0.0], np.float64)
        if np.hypot(goal[0] - pos[0], goal[1] - pos[1]) >= MIN_START_DISTANCE:
            break
    yaw, closed = float(rng.uniform(-1, 1)), False
    goal_yaw = GOAL_YAW[instruction]
    frames, wv, rd, grip, pose, closed_obs, yaws = [], [], [], [], [], [], []
    for t in range(length):
        yaws.append(yaw)
        frames.append(render.draw(pos, yaw, closed, colour))
        pose.append(np.concatenate([pos, _yaw_quat(yaw)]).astype(np.float32))
        closed_obs.append(float(closed))
        # every command follows from the current state (what this frame shows) and the instruction
        near = np.hypot(goal[0] - pos[0], goal[1] - pos[1]) < GRIP_DISTANCE
        to_goal = np.array([goal[0] - pos[0], goal[1] - pos[1], (LIFT_HEIGHT if closed else 0.0) - pos[2]])
        a = np.clip(0.5 * to_goal + rng.normal(0, ACTION_NOISE, 3), -MAX_STEP, MAX_STEP)
        r = np.array([0.0, 0.0, np.clip(0.4 * (goal_yaw - yaw) + rng.normal(0, YAW_NOISE), -0.3, 0.3)])
        g = -1.0 if (t == length - 1 and closed) else (1.0 if (near and not closed) else 0.0)
        wv.append(a)
        rd.append(r)
        grip.append([g])
        # the next state follows the commanded action (clipped to the workspace)
        pos = pos + a
        pos[:2] = np.clip(pos[:2], -WORKSPACE, WORKSPACE)
        pos[2] = np.clip(pos[2], 0.0, 0.2)
        yaw += r[2]
        closed = (g > 0.5) or (closed and g > -0.5)
    T = length
    wv_a, pose_a = np.asarray(wv, np.float32), np.asarray(pose, np.float32)
    terminate = np.tile(np.array([0, 1, 0], np.int32), (T, 1))
    terminate[-1] = (1, 0, 0)
    closed_a = np.asarray(closed_obs, np.float32)[:, None]
    vector_to_go = np.stack([np.array([goal[0], goal[1], 0.0]) - p[:3] for p in pose_a]).astype(np.float32)
    bounds = np.array([[-WORKSPACE, -WORKSPACE, 0.0], [WORKSPACE, WORKSPACE, 0.2], [0, 0, 0]], np.float32)
    return {
        "action/world_vector": wv_a,
        "action/rotation_delta": np.asarray(rd, np.float32),
        "action/gripper_closedness_action": np.asarray(grip, np.float32),
        "action/terminate_episode": terminate,
        "action/base_displacement_vector": np.zeros((T, 2), np.float32),
        "action/base_displacement_vertical_rotation": np.zeros((T, 1), np.float32),
        "observation/image": np.stack(frames),
        "observation/natural_language_instruction": instruction,
        "observation/natural_language_embedding": np.tile(instruction_embedding(instruction), (T, 1)),
        "observation/base_pose_tool_reached": pose_a,
        "observation/gripper_closed": closed_a,
        "observation/gripper_closedness_commanded": closed_a,
        "observation/height_to_bottom": pose_a[:, 2:3],
        "observation/vector_to_go": vector_to_go,
        "observation/rotation_delta_to_go": np.stack([[0.0, 0.0, goal_yaw - y] for y in yaws]).astype(np.float32),
        "observation/src_rotation": np.tile(_yaw_quat(0.0), (T, 1)),
        "observation/orientation_start": np.tile(_yaw_quat(0.0), (T, 1)),
        "observation/workspace_bounds": np.tile(bounds, (T, 1, 1)),
        "reward": (np.arange(T) == T - 1).astype(np.float32),
        "is_terminal": np.arange(T) == T - 1,
        "aspects/success": True, "aspects/feasible": True, "aspects/has_aspects": True,
        "attributes/env_name": "synthetic", "attributes/data_type_name": "synthetic",
        "attributes/task_family_name": instruction,
    }


@dataclass
class SynthConfig:
    """`selfflow-robot data synth` options.

    Args:
        output_dir: TFDS data_dir to write; the dataset lands in `output_dir/fractal20220817_data/0.1.0`.
        episodes: number of episodes.
        min_steps: shortest episode (steps).
        max_steps: longest episode (steps).
        shards: number of TFRecord shards.
        seed: random seed (same seed, same bytes).
        jpeg_quality: JPEG quality of the 256x320 frames.
        overwrite: replace an existing dataset at the same place.
    """

    output_dir: str = "data/synth"
    episodes: int = 16
    min_steps: int = 16
    max_steps: int = 32
    shards: int = 1
    seed: int = 0
    jpeg_quality: int = 90
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.episodes < 1 or self.shards < 1:
            raise ConfigError(f"episodes and shards must be >= 1, got episodes={self.episodes} shards={self.shards}")
        if not 2 <= self.min_steps <= self.max_steps:
            raise ConfigError(f"need 2 <= min_steps <= max_steps, got {self.min_steps}, {self.max_steps}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")


def write_synthetic(cfg: SynthConfig, progress: bool = False) -> Path:
    """Write the dataset described by `cfg`; returns the builder dir."""
    rng = np.random.default_rng(cfg.seed)
    names = list(TASKS)
    per_shard = -(-cfg.episodes // cfg.shards)
    with DatasetWriter(cfg.output_dir, episodes_per_shard=per_shard, overwrite=cfg.overwrite,
                       jpeg_quality=cfg.jpeg_quality,
                       description="Synthetic episodes in the fractal20220817_data schema "
                                   "(selfflow-robot data synth)") as w:
        it = range(cfg.episodes)
        if progress:
            it = tqdm(it, desc="synth episodes", unit="ep")
        for i in it:
            length = int(rng.integers(cfg.min_steps, cfg.max_steps + 1))
            w.write(synth_episode(rng, names[i % len(names)], length))
    return w.final


def main(cfg: DictConfig) -> int:
    """CLI entry: `selfflow-robot data synth output_dir=DIR episodes=N`."""
    sc = structured(SynthConfig, cfg)
    path = write_synthetic(sc, progress=True)
    print(f"wrote {sc.episodes} synthetic episodes to {path}")
    return 0
