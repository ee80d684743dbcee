"""Jerk-limited joint paths sampled at the simulation rate, as SimplerEnv's Google-robot controllers plan them.

ManiSkill2_real2sim (`agents/utils.py` `parameterize_path`, `agents/base_controller.py` `plan_joint_path`)
asks Ruckig for a time-optimal, time-synchronised trajectory from the current joint position and velocity
(acceleration 0) to the target at rest, under symmetric velocity / acceleration / jerk limits, and samples it
at t = 0, dt, ..., sim_steps * dt (dt = 1 / sim_freq), clamped to the trajectory's duration. Sample 0 is the
start; the controller sends sample k as the drive target before simulation step k. This module does exactly
that with the same library (`ruckig`, an extra of `selfflow-robot[sim]`), for one or a batch of robots.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from selfflow_robot.errors import require


@dataclass(frozen=True)
class JointLimits:
    """Symmetric limits of a Ruckig plan: |v| <= velocity, |a| <= acceleration, |jerk| <= jerk (per joint)."""

    velocity: float
    acceleration: float
    jerk: float


def plan_joint_path(start: np.ndarray, target: np.ndarray, init_vel: np.ndarray | float, limits: JointLimits,
                    sim_steps: int, sim_freq: float) -> tuple[np.ndarray, np.ndarray]:
    """Positions and velocities (sim_steps + 1, dof) of the Ruckig plan start -> target, sampled every 1/sim_freq.

    `init_vel` is the joint velocity at the start (a scalar is broadcast); the plan ends at rest at `target`.
    Samples past the plan's duration repeat its end (the target, velocity 0).
    """
    ruckig = require("ruckig", "sim")
    start = np.asarray(start, np.float64).reshape(-1)
    target = np.asarray(target, np.float64).reshape(-1)
    dof = start.shape[0]
    inp = ruckig.InputParameter(dof)
    inp.current_position = start
    inp.current_velocity = np.broadcast_to(np.asarray(init_vel, np.float64), (dof,)).copy()
    inp.current_acceleration = np.zeros(dof)
    inp.target_position = target
    inp.target_velocity = np.zeros(dof)
    inp.target_acceleration = np.zeros(dof)
    inp.max_velocity = np.full(dof, limits.velocity)
    inp.max_acceleration = np.full(dof, limits.acceleration)
    inp.max_jerk = np.full(dof, limits.jerk)
    inp.min_velocity = np.full(dof, -limits.velocity)
    inp.min_acceleration = np.full(dof, -limits.acceleration)
    traj = ruckig.Trajectory(dof)
    result = ruckig.Ruckig(dof).calculate(inp, traj)
    if result not in (ruckig.Result.Working, ruckig.Result.Finished):
        # SimplerEnv ignores the result code; an invalid input there leaves a zero-duration trajectory at the
        # start. Same here, explicitly: hold the start (e.g. NaN targets never reach the drives).
        pos = np.repeat(start[None], sim_steps + 1, axis=0)
        return pos, np.zeros_like(pos)
    times = np.clip(np.arange(sim_steps + 1) / sim_freq, 0.0, traj.duration)
    pos = np.empty((sim_steps + 1, dof))
    vel = np.empty((sim_steps + 1, dof))
    for i, t in enumerate(times):
        p, v, _ = traj.at_time(float(t))
        pos[i], vel[i] = p, v
    return pos, vel


def plan_batch(start, target, init_vel, limits: JointLimits, sim_steps: int, sim_freq: float):
    """`plan_joint_path` for each row of (B, dof) torch tensors; returns (B, sim_steps + 1, dof) positions and
    velocities as float64 tensors on the inputs' device (planning runs on the CPU, one robot at a time)."""
    s, g, v = (x.detach().cpu().double().numpy() for x in (start, target, init_vel))
    paths = [plan_joint_path(s[i], g[i], v[i], limits, sim_steps, sim_freq) for i in range(s.shape[0])]
    pos = torch.as_tensor(np.stack([p for p, _ in paths]), dtype=torch.float64, device=start.device)
    vel = torch.as_tensor(np.stack([q for _, q in paths]), dtype=torch.float64, device=start.device)
    return pos, vel
