"""Scripted experts with privileged state for the drawer tasks: `act(env, obs) -> action (7,)`.

Each expert reads the simulator state (TCP pose, robot base pose, drawer link pose and joint, apple pose)
from `env.unwrapped` and returns a SimplerEnv-style action `[world_vector, rot_axangle, gripper]`
expressed in the robot base frame, so its demos are valid RT-1-convention actions.

Strategies (cabinet frame = world frame, drawers slide along +x). The drawer handles are visual only
(no collision in mk_station_recolor.urdf), so nothing can be grasped:
- close: closed fingertips in front of the open drawer's front panel, just below its top edge, push
  along -x until the drawer is shut (fingers tilted toward the cabinet for the low drawer, or when
  the arm stalls at the edge of its reach);
- open: tilt the closed fingers 65 deg into the cabinet, slide them through the slot above the front
  panel, drop them behind it (a hook) and pull along +x; start over if the hook missed;
- place apple: open the top drawer as above (to 0.25 m), back out, lift the closed fingers over the apple,
  drop them behind it and sweep it toward the robot off the cabinet's front edge into the open drawer
  (no grasp: SimplerEnv's gripper controller loses the squeeze on an object every control period);
  sweep again when the fingers slide past it.
Every expert halves its step when the arm did not move (the IK has no solution at the workspace edge).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from transforms3d.axangles import mat2axangle
from transforms3d.quaternions import quat2mat

from selfflow_robot.envs.tasks import task_spec

# drawer geometry of mk_station_recolor.urdf, in the drawer link frame
FRONT_INNER_X = 0.2975    # inner face of the front panel
FRONT_OUTER_X = 0.3125    # outer face
FRONT_TOP_Z = 0.07        # top edge of the front panel
MAX_STEP_M = 0.12         # largest translation per action (metres)
MAX_ROT = 0.1             # largest rotation per action (rad)
LOW_DRAWER_TOP = 0.4      # world z of a drawer front's top edge below which the close expert tilts (bottom)
HOOK_DEPTH = 0.01         # TCP behind the front panel's inner face when hooking (fingertips reach further)
ROT_GAIN = 0.5            # fraction of the orientation error commanded per action


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
    def read(env) -> State:
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


def roll(R: np.ndarray, angle: float) -> np.ndarray:
    """R rotated (left-multiplied) by `angle` about its own approach axis R[:, 2] (Rodrigues)."""
    a = R[:, 2]
    K = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return (np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K) @ R


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
        ang = float(np.clip(ROT_GAIN * ang, -MAX_ROT, MAX_ROT))
        rot = s.base_R.T @ (axis * ang)       # world-frame rotation vector -> base frame
    return np.concatenate([s.base_R.T @ d, rot, [gripper]]).astype(np.float32)


class PhasedExpert:
    """A scripted expert that moves through numbered phases: `phase`, and the steps spent in it."""

    phase: int = 0
    steps_in_phase: int = 0

    def _advance(self, cond: bool, limit: int) -> None:
        """Count a step of the current phase; go to the next when `cond` holds or `limit` steps have passed."""
        self.steps_in_phase += 1
        if cond or self.steps_in_phase >= limit:
            self.phase += 1
            self.steps_in_phase = 0


@dataclass
class DrawerExpert(PhasedExpert):
    """Open or close one drawer, closed-loop on the drawer joint (see module doc)."""

    mode: str                          # "open" | "close"
    open_target: float = 0.24          # pull until the drawer is this open (success: >= 0.15)
    hook_tilt_deg: float = 65.0        # approach axis tilted from vertical toward the cabinet (open)
    hook_depth: float = HOOK_DEPTH     # TCP behind the front panel's inner face when hooking (open)
    hook_above: float = 0.05           # TCP above the panel's top edge when entering the slot (open)
    hook_drop: float = -0.02           # TCP height relative to the panel's top edge when hooked (open)
    hook_roll_deg: float | None = None  # roll of the hook about the approach axis (open; None: by drawer)
    phase: int = 0
    steps_in_phase: int = 0
    R_down: np.ndarray | None = None
    R_hook: np.ndarray | None = None

    reach: bool = False
    _last_p: np.ndarray | None = None
    _stall: int = 0
    _scale: float = 1.0
    _prev_p: np.ndarray | None = None
    _roll_deg: float = 0.0

    def reset(self, env, obs=None) -> None:
        s = State.read(env)
        self.phase, self.steps_in_phase = 0, 0
        self.reach, self._last_p, self._stall, self._scale = False, None, 0, 1.0
        self._prev_p = None
        # "down" = the start orientation (fingers ~17 deg off vertical): the wrist is 0.2 rad from its limit,
        # so a truly vertical grasp is out of reach; "hook" tilts the fingers further into the cabinet (-x).
        self.R_down = s.tcp_R.copy()
        t = np.deg2rad(self.hook_tilt_deg)
        self.R_hook = rot_to(s.tcp_R, s.tcp_R[:, 2], np.array([-np.sin(t), 0.0, -np.cos(t)]))
        # Rolled 90 degrees, the closed fingers (which stop on each other at 1.075 rad, ~7 cm apart at the
        # base) lie flat: thin enough to pass between the panel's top edge and the cabinet top, and to drop
        # behind the panel. The side that reaches better differs for the bottom drawer.
        self._roll_deg = self.hook_roll_deg if self.hook_roll_deg is not None else \
            (90.0 if s.drawer_p[2] + FRONT_TOP_Z < LOW_DRAWER_TOP else -90.0)
        self.R_hook = roll(self.R_hook, np.deg2rad(self._roll_deg))

    def act(self, env, obs=None) -> np.ndarray:
        if self.R_down is None:
            self.reset(env, obs)
        s = State.read(env)
        a = self._close(s) if self.mode == "close" else self._open(s)
        return self._shrink_when_stuck(s, a)

    def _shrink_when_stuck(self, s: State, a: np.ndarray) -> np.ndarray:
        """At the edge of the workspace the IK finds no solution and the arm stays put; smaller steps often do."""
        stuck = self._prev_p is not None and np.linalg.norm(s.tcp_p - self._prev_p) < 0.001 \
            and np.linalg.norm(a[:3]) > 0.01
        self._prev_p = s.tcp_p.copy()
        self._scale = max(0.125, self._scale * 0.5) if stuck else min(1.0, self._scale * 1.5)
        out = a.copy()
        out[:6] *= self._scale
        return out

    def _close(self, s: State) -> np.ndarray:
        x_out = s.drawer_p[0] + FRONT_OUTER_X
        top = s.drawer_p[2] + FRONT_TOP_Z
        y = s.drawer_p[1]
        if top < LOW_DRAWER_TOP:     # low drawer: fingers tilted toward the cabinet from the start, for reach
            self.reach = True
        if self.phase == 0:      # in front of the open drawer, above its front edge; close the fingers
            goal = np.array([x_out + 0.10, y, max(top + 0.10, min(s.tcp_p[2], top + 0.25))])
            a = action_towards(s, goal, self.R_hook if self.reach else self.R_down, 1.0)
            self._advance(np.linalg.norm(goal - s.tcp_p) < 0.03, 30)
            return a
        if self.phase == 1:      # down in front of the front panel
            goal = np.array([x_out + 0.06, y, top - 0.02])
            a = action_towards(s, goal, self.R_hook if self.reach else self.R_down, 1.0)
            self._advance(np.linalg.norm(goal - s.tcp_p) < 0.02, 25)
            return a
        # push the front panel home (goal a little inside the closed position); when the arm stops short
        # (far robot poses: IK has no solution with the fingers down), tilt the fingers toward the cabinet
        # to reach further
        goal = np.array([s.drawer_p[0] - s.drawer_q + FRONT_OUTER_X - 0.02, y, top - 0.02])
        if self._stalled(s) and s.drawer_q > 0.01:
            self.reach = True
        return action_towards(s, goal, self.R_hook if self.reach else self.R_down, 1.0)

    def _stalled(self, s: State) -> bool:
        """True after 3 consecutive actions that moved the TCP less than 2 mm."""
        moved = self._last_p is None or np.linalg.norm(s.tcp_p - self._last_p) > 0.002
        self._last_p = s.tcp_p.copy()
        self._stall = 0 if moved else self._stall + 1
        return self._stall >= 3

    def _open(self, s: State) -> np.ndarray:
        x_in = s.drawer_p[0] + FRONT_INNER_X
        top = s.drawer_p[2] + FRONT_TOP_Z
        y = s.drawer_p[1]
        if self.phase == 0:      # tilt the closed fingers toward the cabinet, well in front of the slot
            goal = np.array([x_in + 0.22, y, top + 0.04])
            a = action_towards(s, goal, self.R_hook, 1.0)
            aligned = float(np.dot(s.tcp_R[:, 2], self.R_hook[:, 2])) > 0.97
            self._advance(np.linalg.norm(goal - s.tcp_p) < 0.025 and aligned, 45)
            return a
        if self.phase == 1:      # fingertips into the slot, just behind the front panel
            goal = np.array([x_in - self.hook_depth, y, top + self.hook_above])
            a = action_towards(s, goal, self.R_hook, 1.0)
            self._advance(np.linalg.norm(goal - s.tcp_p) < 0.012, 30)
            return a
        if self.phase == 2:      # drop behind the front panel (the hook)
            goal = np.array([x_in - self.hook_depth, y, top + self.hook_drop])
            a = action_towards(s, goal, self.R_hook, 1.0)
            self._advance(s.tcp_p[2] < top + self.hook_drop + 0.015, 25)
            return a
        if s.drawer_q < self.open_target and s.tcp_p[0] > x_in + 0.03:   # not hooked (missed or slipped): again
            self.phase, self.steps_in_phase = 0, 0
            return self._open(s)
        if s.drawer_q < self.open_target:   # pull toward the robot, staying hooked
            goal = np.array([x_in - self.hook_depth + 0.08, y, top + self.hook_drop])
            return action_towards(s, goal, self.R_hook, 1.0)
        return action_towards(s, s.tcp_p, self.R_hook, 1.0)   # hold


@dataclass
class PlaceAppleExpert(PhasedExpert):
    """Open the top drawer with the hook, then sweep the apple off the cabinet top into the open drawer.

    No grasp: SimplerEnv's gripper controller restarts each period's finger plan from the measured finger
    angle, so fingers stopped by the apple lose their squeeze every period and the apple slips out. Instead
    the closed fingers keep the hook's pose (tilted toward the cabinet, rolled flat and wide), go up and
    over the apple, drop behind it and pull it toward the robot: it rolls over the cabinet's front edge and
    falls into the opened top drawer right below, touching the drawer's interior bottom (the success rule).
    """

    opener: DrawerExpert = field(default_factory=lambda: DrawerExpert("open", open_target=0.25))
    phase: int = 0
    steps_in_phase: int = 0
    behind: float = 0.08               # TCP this far behind (-x) the apple's centre when sweeping
    sweep_z: float = 0.90              # commanded TCP height while sweeping (cabinet top 0.87, apple centre
                                       # ~0.918); the TCP stops near 0.96, the tilted fingers reaching lower
    sweep_step: float = 0.06           # largest translation per action while sweeping (slow: the apple rolls)

    def reset(self, env, obs=None) -> None:
        self.opener.reset(env, obs)
        self.phase, self.steps_in_phase = 0, 0

    def act(self, env, obs=None) -> np.ndarray:
        if self.opener.R_down is None:
            self.reset(env, obs)
        s = State.read(env)
        if self.phase == 0:                  # open the drawer (hook and pull)
            a = self.opener._open(s)
            slipped = self.opener.phase == 0 and s.drawer_q >= 0.18   # lost the hook, but open enough
            self._advance(s.drawer_q >= self.opener.open_target or slipped, 120)
            return self.opener._shrink_when_stuck(s, a)
        top = s.drawer_p[2] + FRONT_TOP_Z
        x_in = s.drawer_p[0] + FRONT_INNER_X
        apple = s.apple_p
        R = self.opener.R_hook
        behind_x = apple[0] - self.behind
        plan = [
            # (goal, tolerance, step limit, max step)
            (np.array([x_in - HOOK_DEPTH + 0.02, s.drawer_p[1], top + 0.07]), 0.015, 6, MAX_STEP_M),  # out of the hook
            (np.array([0.06, apple[1], apple[2] + 0.12]), 0.025, 10, MAX_STEP_M),              # up, in front of it
            (np.array([behind_x, apple[1], apple[2] + 0.10]), 0.02, 12, MAX_STEP_M),            # over, behind it
            (np.array([behind_x, apple[1], self.sweep_z]), 0.012, 8, MAX_STEP_M),                # down behind it
            (np.array([0.12, apple[1], self.sweep_z]), 0.0, 20, self.sweep_step),               # pull it off the edge
        ]
        k = self.phase - 1
        if k == 4 and apple[2] < 0.85:      # the apple fell off the cabinet top: done
            self.phase, k = self.phase + 1, 5
        elif k == 4 and (s.tcp_p[0] > apple[0] + 0.05 or self.steps_in_phase >= 19):
            # the fingers slid past the apple (it slipped sideways or under): over it and sweep again
            self.phase, self.steps_in_phase, k = 2, 0, 1
        if k >= len(plan):                   # done: back off and wait
            return self.opener._shrink_when_stuck(s, action_towards(s, np.array([0.25, s.tcp_p[1], 1.05]), R, 1.0))
        goal, tol, limit, step = plan[k]
        a = action_towards(s, goal, R, 1.0, max_step=step)
        self._advance(tol > 0 and np.linalg.norm(goal - s.tcp_p) < tol, limit)
        return self.opener._shrink_when_stuck(s, a)


def make_expert(task: str):
    """The scripted expert of a task: `reset(env, obs)` at episode start, then `act(env, obs) -> action (7,)`."""
    spec = task_spec(task)
    if spec.family == "apple":
        return PlaceAppleExpert()
    return DrawerExpert("close" if spec.name.startswith("close") else "open")
