"""Closed-loop episodes inside the world model: the policy acts on imagined frames, the world model imagines
what those actions do.

An imagined episode starts where the port's grid episode starts (`read_starts`: the simulator is reset to that
episode and only its first camera frame is kept), then alternates, batched over episodes: the policy predicts a
chunk of H actions from the last frames, the world model imagines the H frames those actions lead to, and they
become the policy's next context. Like SimplerEnv's evaluator it stops at the time limit or at the step where the
policy terminates; the judge reads success off the last frame, where the simulator reads it. A policy that also
takes the robot's state gets it read off the newest imagined frame (`state_reader`, e.g. a judge trained on
sweeps that record the state): an imagined episode has no simulator to ask.

    starts = read_starts([("open_top_drawer", 0), ...], asset_root=None)
    episodes = imagine_episodes(WorldModel.from_pretrained(wm_dir, steps=1), SelfFlowPolicy.from_pretrained(p),
                                starts, max_steps=113)

A world model that takes the robot's state (`WorldModel.takes_state`) gets the same reading at each chunk's start.

`replay_episodes` is the open-loop counterpart: the world model is fed the actions a policy executed in the port
from the same start, so what it imagines can be set beside what the simulator showed, with no policy reacting to
its errors.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from selfflow_robot.data import transforms as T
from selfflow_robot.data.transforms import resize_like_training
from selfflow_robot.envs.tasks import make_env, overhead_rgb
from selfflow_robot.errors import ConfigError
from selfflow_robot.policies.policy import SelfFlowPolicy
from selfflow_robot.world_model.rollout import StateReader, WorldModel
from selfflow_robot.world_model.video import to_uint8


@dataclass(frozen=True)
class Start:
    """Where an imagined episode starts: the port's grid episode `episode` of `task`, its instruction and its
    first camera frame (uint8 `(H, W, 3)`, the simulator's size)."""

    task: str
    episode: int
    instruction: str
    frame: np.ndarray


@dataclass
class ImaginedEpisodes:
    """`frames` uint8 `(B, T + 1, h, w, 3)` (the start, then one frame per action), and per episode the number of
    actions it ran (`steps`, at most T) and whether the policy ended it (`terminated`)."""

    frames: np.ndarray
    steps: np.ndarray
    terminated: np.ndarray

    def last_frames(self) -> np.ndarray:
        """Each episode's frame after its last action: where the success rule is read."""
        return self.frames[np.arange(len(self.steps)), self.steps]


def read_starts(episodes: Sequence[tuple[str, int]], *, asset_root: str | None = None) -> list[Start]:
    """Reset the port to each (task, grid episode) and keep its instruction and first camera frame."""
    starts = []
    env, env_task = None, None
    try:
        for task, ep in tqdm(episodes, desc="start frames", unit="episode"):
            if task != env_task:
                if env is not None:
                    env.close()
                env, env_task = make_env(task, asset_root=asset_root), task
            obs, _ = env.reset(options={"episode": int(ep)})
            starts.append(Start(task, int(ep), env.unwrapped.get_language_instruction(), overhead_rgb(obs)))
    finally:
        if env is not None:
            env.close()
    return starts


def _start_batch(world_model: WorldModel, starts: Sequence[Start]) -> tuple[np.ndarray, np.ndarray | None]:
    """The starts' first frames at the world model's size, uint8 `(B, h, w, 3)`, and their instructions'
    embeddings `(B, 512)` (None for a world model without a language table)."""
    first = resize_like_training(np.stack([st.frame for st in starts]), world_model.image_size)
    text = np.stack([world_model.language(st.instruction) for st in starts]) if world_model.language else None
    return first, text


def imagine_episodes(world_model: WorldModel, policy: SelfFlowPolicy, starts: Sequence[Start], *,
                     max_steps: int, progress: bool = True,
                     state_reader: StateReader | None = None) -> ImaginedEpisodes:
    """Run every start as one closed-loop episode of at most `max_steps` actions, all episodes in one batch.

    `state_reader`: uint8 frames `(B, h, w, 3)` -> the robot states `(B, 8)` they show, for a policy or a world model
    that takes the state (`SuccessJudge.state`); unused by image-only ones."""
    if world_model.takes_state and state_reader is None:
        raise ConfigError("this world model takes the robot state (trained with train.world_model_state=true), which "
                          "an imagined episode has only as pixels: give imagine-eval a judge that reads it "
                          "(`selfflow-robot judge train` on sweeps that record tool_state)")
    if policy.state_dim and state_reader is None:
        raise ConfigError("this policy conditions on the robot state, which an imagined episode has only as pixels: "
                          "give imagine-eval a judge that reads it (`selfflow-robot judge train` on sweeps that "
                          "record tool_state), score an image-only checkpoint, or run this one on the learned null "
                          "state with policy_options.use_state=false (meaningful only if it was trained with "
                          "train.state_dropout > 0)")
    if tuple(policy.image_size) != tuple(world_model.image_size):
        raise ConfigError(f"the policy reads {tuple(policy.image_size)} frames, the world model imagines "
                          f"{tuple(world_model.image_size)}: pair checkpoints of one image size")
    B = len(starts)
    sessions = [policy.new_session() for _ in starts]
    for sess, st in zip(sessions, starts):
        policy.reset_session(sess, st.instruction)
    first, text = _start_batch(world_model, starts)
    frames = np.zeros((B, max_steps + 1, *first.shape[1:]), np.uint8)
    frames[:, 0] = first
    steps = np.full(B, max_steps)
    terminated = np.zeros(B, bool)
    t = 0
    bar = tqdm(total=max_steps, desc="imagined episodes", unit="step", disable=not progress)
    while t < max_steps and not terminated.all():
        history = frames[:, max(0, t + 1 - policy.k):t + 1]
        obs = [{T.IMAGE: history[b]} for b in range(B)]
        state = (np.asarray(state_reader(frames[:, t]), np.float32)
                 if policy.state_dim or world_model.takes_state else None)     # (B, 8) read off the newest frame
        if policy.state_dim:
            for o, s in zip(obs, state):
                o[T.STATE] = s
        replies = policy.infer_batch(list(zip(sessions, obs)))
        actions = np.stack([r[T.ACTIONS] for r in replies])                  # (B, H, 7) raw RT-1 actions
        stop = np.stack([r[T.TERMINATE_KEY] for r in replies]) >= 0.5       # (B, H)
        n = min(actions.shape[1], max_steps - t)
        context = frames[:, max(0, t + 1 - world_model.k):t + 1]
        pred = world_model.rollout(context, actions[:, :n], terminate=stop[:, :n].astype(np.float32), text=text,
                                   states=state[:, None] if world_model.takes_state else None)
        frames[:, t + 1:t + 1 + n] = to_uint8(pred)
        for b in np.flatnonzero(~terminated & stop[:, :n].any(axis=1)):
            steps[b] = t + 1 + int(np.argmax(stop[b, :n]))
            terminated[b] = True
        t += n
        bar.update(n)
    bar.close()
    return ImaginedEpisodes(frames, np.minimum(steps, t), terminated)


def replay_episodes(world_model: WorldModel, starts: Sequence[Start], actions: Sequence[np.ndarray], *,
                    terminated: Sequence[bool] | None = None, states: Sequence[np.ndarray] | None = None,
                    state_reader: StateReader | None = None,
                    progress: bool = True) -> ImaginedEpisodes:
    """Imagine each start's recorded actions `(T_i, 7)` open loop, all episodes in one batch.

    `terminated[i]`: the policy ended episode i with its last action (that action carries the terminate flag).
    Past an episode's end the world model sees what training windows show there: zero motion, terminate.
    For a world model that takes the robot's state: `states[i]` `(T_i + 1, 8)`, the state recorded with each
    frame of episode i (an oracle: where the arm really was), or `state_reader`, which reads it off each chunk's
    newest frame (the start, then imagined ones); with neither, its learned null state."""
    if len(actions) != len(starts) or any(np.asarray(a).ndim != 2 or len(a) == 0 for a in actions):
        raise ConfigError("replay_episodes needs one non-empty (T, 7) action array per start")
    B, T = len(starts), max(len(a) for a in actions)
    steps = np.array([len(a) for a in actions])
    acts = np.zeros((B, T, 7), np.float32)
    term = np.ones((B, T), np.float32)
    for i, a in enumerate(actions):
        acts[i, :steps[i]] = a
        term[i, :steps[i]] = 0.0
        if terminated is not None and terminated[i]:
            term[i, steps[i] - 1] = 1.0
    per_frame = None
    if states is not None:
        if len(states) != B or any(len(s) != n + 1 for s, n in zip(states, steps)):
            raise ConfigError("replay_episodes needs one (T_i + 1, 8) state array per start, one row per frame")
        arrays = [np.asarray(x, np.float32) for x in states]
        per_frame = np.stack([np.concatenate([a, np.repeat(a[-1:], T + 1 - len(a), 0)]) for a in arrays])
    first, text = _start_batch(world_model, starts)
    pred = world_model.rollout(first[:, None], acts, terminate=term, text=text, states=per_frame,
                               state_reader=state_reader, progress=progress)
    frames = np.concatenate([first[:, None], to_uint8(pred)], axis=1)
    ended = np.zeros(B, bool) if terminated is None else np.asarray(terminated, bool)
    return ImaginedEpisodes(frames, steps, ended)
