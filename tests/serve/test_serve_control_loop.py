"""Receding-horizon control loop against a running server (real policy) with a simulated controller."""
from __future__ import annotations

import numpy as np
import pytest

from selfflow_robot.policies.client import PolicyClient
from selfflow_robot.policies.control_loop import ActionBounds, RecedingHorizonLoop
from selfflow_robot.policies.serving.server import PolicyServer


class SimulatedArm:
    """A point end effector on a table seen by a 128x160 camera; integrates world_vector, tracks the gripper."""

    def __init__(self) -> None:
        self.pos = np.zeros(3)
        self.gripper = 0.0
        self.applied: list[np.ndarray] = []
        self.observations = 0

    def observe(self) -> np.ndarray:
        self.observations += 1
        img = np.full((128, 160, 3), 40, np.uint8)
        r = int(np.clip(64 + 400 * self.pos[0], 4, 123))
        c = int(np.clip(80 + 400 * self.pos[1], 4, 155))
        img[r - 4:r + 4, c - 4:c + 4] = (255, int(255 * (self.gripper > 0)), 0)
        return img

    def apply(self, action: np.ndarray) -> None:
        assert action.shape == (7,) and action.dtype == np.float32
        self.applied.append(action.copy())
        self.pos += action[:3]
        self.gripper = float(np.clip(self.gripper + action[6], -1, 1))


def test_action_bounds_from_quantiles_with_margin():
    b = ActionBounds.from_quantiles([-1.0, 0.0, -2.0], [1.0, 1.0, 2.0], margin=0.25)
    np.testing.assert_allclose(b.low, [-1.5, -0.25, -3.0])
    np.testing.assert_allclose(b.high, [1.5, 1.25, 3.0])
    clipped, was = b.clip(np.array([2.0, 0.5, -9.0]))
    np.testing.assert_allclose(clipped, [1.5, 0.5, -3.0])
    assert was
    assert b.clip(np.array([0.0, 0.0, 0.0]))[1] is False
    with pytest.raises(ValueError, match="non-finite"):
        b.clip(np.array([np.nan, 0, 0]))
    with pytest.raises(ValueError):
        ActionBounds.from_quantiles([0.0], [1.0], margin=-0.1)
    with pytest.raises(KeyError, match="action_q01"):
        ActionBounds.from_metadata({"chunk_length": 4})


@pytest.mark.parametrize("execute_horizon", [None, 2])
def test_control_loop_against_running_server(engine, execute_horizon):
    arm = SimulatedArm()
    instr = engine.policy.language.table.instructions[0]
    with PolicyServer(engine, port=0) as srv, PolicyClient(srv.uri) as client:
        loop = RecedingHorizonLoop(client, arm.observe, arm.apply, control_hz=5.0,
                                   execute_horizon=execute_horizon, margin=0.0)
        stats = loop.run(instr, max_steps=20, stop_on_terminate=False)
        served = client.metrics()["requests"]["infer"]
    print(f"\ncontrol loop (execute_horizon={execute_horizon}): {stats.summary()}")
    assert stats.steps == len(arm.applied) == 20 and not stats.terminated
    applied = np.stack(arm.applied)
    assert np.isfinite(applied).all()
    assert (applied >= loop.bounds.low - 1e-6).all() and (applied <= loop.bounds.high + 1e-6).all()
    # chunks kept coming while the arm moved: every request was answered and used, not just the first
    assert stats.requests == served == arm.observations and stats.chunks >= stats.requests - 1
    assert stats.chunks >= 20 // (execute_horizon or 4)
    assert stats.starved_steps < stats.steps
    assert np.abs(arm.pos).sum() > 0
