"""Scripted experts with privileged state for the drawer tasks: `act(env, obs) -> action (7,)`.

Each expert reads the simulator state (TCP pose, robot base pose, drawer link pose and joint, apple pose)
from `env.unwrapped` and returns a SimplerEnv-style action `[world_vector, rot_axangle, gripper]`
expressed in the robot base frame, so its demos are valid RT-1-convention actions.

Strategies (cabinet frame = world frame, drawers slide along +x):
- close: keep the gripper pointing down, put the closed fingertips in front of the drawer front
  below its top edge, push along -x until the drawer is shut;
- open: turn the gripper to point into the cabinet, slide the closed fingertips through the slot above
  the drawer front, drop them behind the front panel (a hook) and pull along +x;
- place apple: open the top drawer as above, back off, turn the gripper down, grasp the apple on the
  cabinet top, carry it over the open drawer and release it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from transforms3d.axangles import mat2axangle
from transforms3d.quaternions import quat2mat

# drawer geometry of mk_station_recolor.urdf, in the drawer link frame
FRONT_INNER_X = 0.2975    # inner face of the front panel
FRONT_OUTER_X = 0.3125    # outer face
FRONT_TOP_Z = 0.07        # top edge of the front panel
MAX_STEP_M = 0.06         # largest translation per action (metres)
MAX_ROT = 0.25            # largest rotation per action (rad)


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy().reshape(-1) if hasattr(x, "detach") else np.asarray(x).reshape(-1)


@dataclass
class State:
    """Privileged state the experts use (world frame)."""

    tcp_p: np.ndarray
    tcp_R: np.ndarray
    base_R: np.ndarray
    drawer_p: np.ndarray
    drawer_q: float
    gripper_q: float          # mean finger joint (0 open .. 1.3 closed)
    apple_p: np.ndarray | None = None

    @staticmethod
    def read(env) -> "State":
        u = env.unwrapped
        tcp = u.agent.tcp.pose
        fingers = [u.agent.robot.joints_map[n].qpos for n in ("joint_finger_right", "joint_finger_left")]
        apple = getattr(u, "apple", None)
        return State(_np(tcp.p), quat2mat(_np(tcp.q)), quat2mat(_np(u.agent.robot.pose.q)), _np(u.drawer_link.pose.p),
                     float(_np(u.drawer_qpos)[0]), float(np.mean([_np(f)[0] for f in fingers])),
                     None if apple is None else _np(apple.pose.p))


def rot_to(R: np.ndarray, a_from: np.ndarray, a_to: np.ndarray) -> np.ndarray:
    """R rotated (left-multiplied) by the smallest rotation taking direction a_from to a_to."""
    a, b = a_from / np.linalg.norm(a_from), a_to / np.linalg.norm(a_to)
    v, c = np.cross(a, b), float(np.dot(a, b))
    if np.linalg.norm(v) < 1e-8:
        return R
    K = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return (np.eye(3) + K + K @ K / (1 + c)) @ R


def action_towards(s: State, p_goal: np.ndarray, R_goal: np.ndarray | None, gripper: float,
                   max_step: float = MAX_STEP_M) -> np.ndarray:
    """Action moving the TCP toward (p_goal, R_goal) in world frame, expressed in the robot base frame."""
    d = p_goal - s.tcp_p
    n = np.linalg.norm(d)
    if n > max_step:
        d = d * (max_step / n)
    rot = np.zeros(3)
    if R_goal is not None:
        axis, ang = mat2axangle(R_goal @ s.tcp_R.T)
        ang = float(np.clip(ang, -MAX_ROT, MAX_ROT))
        rot = s.base_R.T @ (axis * ang)       # world-frame rotation vector -> base frame
    return np.concatenate([s.base_R.T @ d, rot, [gripper]]).astype(np.float32)


@dataclass
class DrawerExpert:
    """Open or close one drawer, closed-loop on the drawer joint (see module doc)."""

    mode: str                          # "open" | "close"
    open_target: float = 0.24          # pull until the drawer is this open (success: >= 0.15)
    phase: int = 0
    R_down: np.ndarray | None = None
    R_fwd: np.ndarray | None = None
    steps_in_phase: int = 0
    log: list = field(default_factory=list)

    def reset(self, env, obs=None) -> None:
        s = State.read(env)
        self.phase, self.steps_in_phase = 0, 0
        self.R_down = s.tcp_R.copy()
        # "forward": the approach axis (TCP z) pointing into the cabinet (-x), fingers' closing axis kept vertical
        self.R_fwd = rot_to(s.tcp_R, s.tcp_R[:, 2], np.array([-1.0, 0.0, 0.0]))

    def _advance(self, cond: bool, limit: int) -> None:
        self.steps_in_phase += 1
        if cond or self.steps_in_phase >= limit:
            self.phase += 1
            self.steps_in_phase = 0

    def act(self, env, obs=None) -> np.ndarray:
        if self.R_down is None:
            self.reset(env, obs)
        s = State.read(env)
        x_in = s.drawer_p[0] + FRONT_INNER_X
        x_out = s.drawer_p[0] + FRONT_OUTER_X
        top = s.drawer_p[2] + FRONT_TOP_Z
        y = s.drawer_p[1]
        near = lambda p, tol=0.015: np.linalg.norm(p - s.tcp_p) < tol  # noqa: E731
        if self.mode == "close":
            pre = np.array([x_out + 0.10, y, top - 0.03 + 0.12])
            low = np.array([x_out + 0.05, y, top - 0.03])
            if self.phase == 0:      # above and in front of the open drawer, close the fingers
                a = action_towards(s, pre, None, 1.0); self._advance(near(pre, 0.03), 25); return a
            if self.phase == 1:      # down in front of the front panel
                a = action_towards(s, low, None, 1.0); self._advance(near(low, 0.02), 20); return a
            push = np.array([s.drawer_p[0] - s.drawer_q + FRONT_OUTER_X - 0.03 + 0.02, y, top - 0.03])
            return action_towards(s, push, None, 1.0)
        # open
        pre = np.array([x_in + 0.22, y, top + 0.045])
        ins = np.array([x_in - 0.05, y, top + 0.045])
        hook = np.array([x_in - 0.05, y, top - 0.03])
        if self.phase == 0:          # turn to point into the cabinet, in front of the slot above the front panel
            a = action_towards(s, pre, self.R_fwd, 1.0); self._advance(near(pre, 0.02) and self._aligned(s), 40); return a
        if self.phase == 1:          # slide in above the front panel
            a = action_towards(s, ins, self.R_fwd, 1.0); self._advance(near(ins, 0.015), 25); return a
        if self.phase == 2:          # drop behind the front panel
            a = action_towards(s, hook, self.R_fwd, 1.0); self._advance(near(hook, 0.015), 15); return a
        if s.drawer_q < self.open_target:   # pull
            pull = np.array([x_in - 0.05 + 0.08, y, top - 0.03])
            return action_towards(s, pull, self.R_fwd, 1.0)
        return action_towards(s, s.tcp_p, self.R_fwd, 0.0)   # hold still

    def _aligned(self, s: State) -> bool:
        return float(np.dot(s.tcp_R[:, 2], self.R_fwd[:, 2])) > 0.98


def make_expert(task: str) -> DrawerExpert:
    """The scripted expert of a task (`act(env, obs) -> action (7,)`, `reset(env, obs)` at episode start).

    The place-apple expert currently only performs the first subtask (opening the top drawer).
    """
    from selfflow_robot.envs.tasks import task_spec

    spec = task_spec(task)
    return DrawerExpert("close" if spec.name.startswith("close") else "open")
