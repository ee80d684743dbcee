"""What an evaluation episode drives: a trained checkpoint (through `SelfFlowPolicy`) or the task's scripted expert.

Both answer `reset(instruction, env, obs)` once per episode and `act(image, instruction, env, obs)` once per
control step with `(action (7,) [world_vector, rot_axangle, gripper], terminate)`.
"""
from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from selfflow_robot.envs.tasks import robot_state, to_action
from selfflow_robot.policies.policy import SelfFlowPolicy

EXPERT = "expert"
CHECKPOINT = "checkpoint"
POLICY_KINDS = (CHECKPOINT, EXPERT)


class Agent(Protocol):
    """What the episode loop drives: `reset` once per episode, `act` once per control step."""

    def reset(self, instruction: str, env: Any, obs: Any) -> None: ...

    def act(self, image: np.ndarray, instruction: str, env: Any, obs: Any) -> tuple[np.ndarray, bool]:
        """-> (action (7,) [world_vector, rot_axangle, gripper], terminate)."""
        ...


class CheckpointAgent:
    """A trained checkpoint through `SelfFlowPolicy` (SimplerEnv's `reset(task)` / `step(image, task)`)."""

    def __init__(self, path: str, **options: Any) -> None:
        self.policy = SelfFlowPolicy.from_pretrained(path, **options)

    def reset(self, instruction: str, env: Any, obs: Any) -> None:
        """New episode: the policy forgets its frames and chunk."""
        self.policy.reset(instruction)

    def act(self, image: np.ndarray, instruction: str, env: Any, obs: Any) -> tuple[np.ndarray, bool]:
        """One policy step on the overhead image (and the robot state, if the checkpoint takes it)."""
        state = robot_state(env) if self.policy.state_dim else None
        _, action = self.policy.step(image, instruction, state=state)
        return to_action(action), bool(np.asarray(action["terminate_episode"]).reshape(-1)[0] > 0)


class ExpertAgent:
    """The task's scripted expert (privileged state), made fresh for every episode."""

    def __init__(self, task: str) -> None:
        self.task = task
        self.expert: Any = None

    def reset(self, instruction: str, env: Any, obs: Any) -> None:
        """A fresh expert for the new episode."""
        from selfflow_robot.envs.experts import make_expert  # needs transforms3d (the `sim` extra)

        self.expert = make_expert(self.task)
        if hasattr(self.expert, "reset"):
            self.expert.reset(env, obs)

    def act(self, image: np.ndarray, instruction: str, env: Any, obs: Any) -> tuple[np.ndarray, bool]:
        """The expert's action from the privileged state (the image is not used)."""
        out = self.expert.act(env, obs)
        if isinstance(out, tuple):  # (action, terminate) if the expert says when it is done
            return to_action(out[0]), bool(out[1])
        return to_action(out), False


def make_agent(policy: str, checkpoint_path: str, task: str, **options: Any) -> Agent:
    """The agent of one evaluation job: the task's expert (`policy="expert"`) or the checkpoint with `options`."""
    return ExpertAgent(task) if policy == EXPERT else CheckpointAgent(checkpoint_path, **options)
