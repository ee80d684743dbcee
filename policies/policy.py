"""`SelfFlowPolicy`: a trained checkpoint as a SimplerEnv-compatible policy.

    policy = SelfFlowPolicy.from_pretrained("runs/demo", steps=10, execute_horizon=2)
    policy.reset("open top drawer")
    raw_action, action = policy.step(image)          # uint8 (H, W, 3), any size
    raw_action, action = policy.step(image, state=proprio)   # checkpoints trained with model.state_dim=8

Policy mode (docs/architecture.md, "Model"): the model sees only the k context frames
(clean, tau = 0) and the H action tokens (noised, integrated tau 1 -> 0 by the sampler); future
frames are dropped, so a step costs context + action tokens. The last k frames are kept as
history; at reset the first frame is repeated to fill it.

A checkpoint trained with proprioception (`model.state_dim=8`) also needs the robot's state with each
frame: RT-1's `base_pose_tool_reached` (tool position + quaternion x, y, z, w in the base frame) and
`gripper_closed`, 8 floats (`envs.tasks.robot_state` reads them from the simulator).

`infer(obs) -> dict` is the stateless-looking entry the policy server calls: it returns the whole
chunk, normalised (`action_tokens`) and unnormalised (`actions`, `terminate`), plus timing.
`step` wraps `infer` with action chunking (execute horizon, optional temporal ensembling) and
SimplerEnv's action conversion.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from selfflow_robot.checkpoint import load_pretrained
from selfflow_robot.constants import ACTIONS as ACTION_GROUP
from selfflow_robot.constants import CONTEXT, RAW_ACTION_DIM
from selfflow_robot.data import transforms as T
from selfflow_robot.data.language import HFTextEncoder, InstructionEmbedder, TextEncoder
from selfflow_robot.errors import ConfigError
from selfflow_robot.model.device import precision_autocast, resolve_device
from selfflow_robot.objective import sample
from selfflow_robot.policies.chunking import ActionChunker
from selfflow_robot.policies.config import PolicyConfig
from selfflow_robot.policies.plots import plot_episode_actions

Sampler = Literal["ode", "sde"]
TokenPredictor = Callable[[np.ndarray, np.ndarray, torch.Tensor, torch.Generator | None, np.ndarray | None],
                          torch.Tensor]  # the signature of `SelfFlowPolicy.predict_tokens`


@dataclass
class PolicySession:
    """Per-episode state: the frame history, the instruction and its embedding, the chunk executor
    and the noise generator (seeded at reset, so an episode is reproducible)."""

    history: deque
    chunker: ActionChunker
    generator: torch.Generator
    instruction: str | None = None
    text: np.ndarray | None = None
    state: np.ndarray | None = None      # latest raw proprioception (8,), for state-conditioned checkpoints


class SelfFlowPolicy:
    """SimplerEnv policy interface (`reset`, `step`) plus `infer` for the policy server."""

    def __init__(self, model: torch.nn.Module, codec: Any, *,
                 unnormalize: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                 language: InstructionEmbedder, resize_fn: Callable[[np.ndarray, tuple[int, int]], np.ndarray],
                 config: PolicyConfig | None = None, statistics: Mapping[str, Any] | None = None,
                 source: str | Path | None = None,
                 state_input: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.config = config or PolicyConfig()
        self.model = model.eval()
        self.codec = codec
        self.model_cfg = model.cfg
        self.k = int(self.model_cfg.context_frames)
        self.horizon = int(self.model_cfg.horizon)
        self.image_size = tuple(self.model_cfg.image_size)
        if self.horizon < 1:
            raise ConfigError("this checkpoint's model has horizon 0: it predicts no actions")
        self.device = torch.device(resolve_device(self.config.device))
        self.language = language
        self.statistics = dict(statistics or {})
        self.source = None if source is None else Path(source)
        self.trained_state_dim = int(getattr(self.model_cfg, "state_dim", 0))
        # the state this policy asks for: none when the checkpoint has no state input or use_state is off
        self.state_dim = self.trained_state_dim if self.config.use_state else 0
        if self.state_dim and state_input is None:
            raise ConfigError(f"this model takes proprioception (model.state_dim={self.state_dim}): give the "
                              "policy a state_input (the checkpoint's StateNormalizer)")
        if self.config.state_scale != 1.0 and not self.state_dim:
            raise ConfigError(f"state_scale={self.config.state_scale} guides on the robot state, but this policy "
                              "takes none (" + ("use_state=false" if self.trained_state_dim else
                                                "trained with model.state_dim=0") + ")")
        self.state_input = state_input
        # openpi-style mirrored chains: frames as trained, then the instruction; outputs unnormalise.
        self.transforms = T.Group().push(
            inputs=[T.ResizeImages(self.image_size[0], self.image_size[1], resize_fn), T.EmbedInstruction(language)],
            outputs=[T.UnnormalizeActions(unnormalize)])
        self.inputs = T.Compose(self.transforms.inputs)
        self.outputs = T.Compose(self.transforms.outputs)
        self.to_simpler = T.SimplerAction(self.config.action_scale, self.config.gripper_deadzone)
        self.last_timing: dict[str, float] = {}
        self.session = self.new_session()  # the state `reset`/`step`/`infer` use

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_pretrained(cls, path: str | Path, *, text_encoder: TextEncoder | str | Path | None = None,
                        **overrides: Any) -> SelfFlowPolicy:
        """Load a checkpoint (step dir or run dir) with `PolicyConfig` overrides, e.g. `steps=5`.

        Everything the policy needs travels inside the checkpoint: weights, the model config, the
        action statistics (`dataset_statistics.json`) and the instruction table.
        `text_encoder`: an object with `encode(list[str]) -> (N, D)`, or the local dir of a Hugging Face
        text model (same as the `text_encoder` option); used only for instructions not in the table.
        """
        unknown = set(overrides) - set(PolicyConfig.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown SelfFlowPolicy option(s) {sorted(unknown)}; "
                              f"allowed: {sorted(PolicyConfig.__dataclass_fields__)}")
        if isinstance(text_encoder, (str, Path)):
            overrides["text_encoder"], text_encoder = str(text_encoder), None
        config = PolicyConfig(**overrides)
        pre = load_pretrained(path, use_ema=config.use_ema, device=config.device)
        if text_encoder is None and config.text_encoder:
            text_encoder = HFTextEncoder(config.text_encoder, device=str(pre.device))
        language = InstructionEmbedder(pre.language_table, text_encoder, mode=config.text_fallback)  # type: ignore[arg-type]
        return cls(pre.model, pre.codec, unnormalize=pre.actions.unnormalize, language=language,
                   resize_fn=T.resize_like_training, config=config, statistics=pre.stats, source=pre.path,
                   state_input=pre.state.normalize if pre.state is not None else None)

    def with_options(self, **overrides: Any) -> SelfFlowPolicy:
        """A new policy sharing this one's weights with some `PolicyConfig` fields changed."""
        cfg = replace(self.config, **overrides)
        return SelfFlowPolicy(self.model, self.codec, unnormalize=self.outputs.transforms[0].unnormalize,
                              language=self.language, resize_fn=self.inputs.transforms[0].resize_fn,
                              config=cfg, statistics=self.statistics, source=self.source, state_input=self.state_input)

    # ------------------------------------------------------------------ SimplerEnv interface

    @property
    def task_description(self) -> str | None:
        """The current episode's instruction (of `self.session`)."""
        return self.session.instruction

    @property
    def text(self) -> np.ndarray | None:
        """The current instruction embedding `(512,)` (of `self.session`)."""
        return self.session.text

    @property
    def history(self) -> deque:
        """The current frame history, at most k uint8 `(h, w, 3)` frames (of `self.session`)."""
        return self.session.history

    @property
    def generator(self) -> torch.Generator:
        """The current episode's noise generator (of `self.session`)."""
        return self.session.generator

    def new_session(self) -> PolicySession:
        """Fresh per-episode state (the server keeps one per connection)."""
        gen = torch.Generator(device=self.device)
        gen.manual_seed(self.config.seed)
        return PolicySession(history=deque(maxlen=self.k), generator=gen,
                             chunker=ActionChunker(self.horizon, self.config.execute_horizon, self.config.ensemble,
                                                   self.config.ensemble_temp))

    def reset_session(self, session: PolicySession, instruction: str | None) -> None:
        """Start an episode in `session`: clear history and chunks, embed the instruction, reseed the noise.

        Raises `UnknownInstructionError` (a `UserError`) for an instruction the checkpoint does not know
        and no text encoder can embed; the session is left unchanged then.
        """
        text = None if instruction is None else self.inputs.transforms[1].embedder(instruction)
        session.history.clear()
        session.chunker.reset()
        session.generator.manual_seed(self.config.seed)
        session.instruction, session.text, session.state = instruction, text, None

    def reset(self, task_description: str | None) -> None:
        """Start an episode: clear frame history and chunks, embed the instruction, reseed the sampler."""
        self.reset_session(self.session, task_description)

    def step(self, image: np.ndarray, task_description: str | None = None, state: np.ndarray | None = None
             ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """One control step: uint8 `(H, W, 3)` -> SimplerEnv's `(raw_action, action)`.

        A new `task_description` (different from the current one) resets the policy first, as
        SimplerEnv's RT-1 wrapper does. A new chunk is predicted every `execute_horizon` steps.
        `state`: the robot's 8-D proprioception with this frame (state-conditioned checkpoints only).
        """
        sess = self.session
        if task_description is not None and task_description != sess.instruction:
            self.reset(task_description)
        if sess.text is None:
            raise ConfigError("no instruction: call reset(task_description) or pass task_description to step()")
        self._push_frames(np.asarray(image), sess)
        if state is not None:
            sess.state = self._check_state(state)
        if sess.chunker.needs_chunk():
            out = self.infer_batch([(sess, None)])[0]
            sess.chunker.push(np.concatenate([out[T.ACTIONS], out[T.TERMINATE_KEY][:, None]], axis=1))
        else:
            self.last_timing = {"infer_ms": 0.0}
        step = sess.chunker.pop()  # (8,) unnormalised action + terminate
        return self.to_simpler(step[:RAW_ACTION_DIM], float(step[RAW_ACTION_DIM] >= 0.5))

    def infer(self, obs: Mapping[str, Any]) -> dict[str, Any]:
        """Predict a whole chunk for the server.

        `obs`: `image` uint8 `(H, W, 3)` (appended to the frame history) or `(T, H, W, 3)` (the history
        itself, oldest first; fewer than k frames are padded by repeating the first), and optionally
        `instruction` (a new one resets the policy), and `state` float `(8,)`, the proprioception with the
        newest frame (required by state-conditioned checkpoints). Returns `actions` float32 `(H, 7)` (unnormalised),
        `terminate` `(H,)`, `action_tokens` `(H, 8)` (the model's normalised output) and `timing` (ms).
        """
        return self.infer_batch([(self.session, obs)])[0]

    def infer_batch(self, batch: Sequence[tuple[PolicySession, Mapping[str, Any] | None]],
                    predict_tokens: TokenPredictor | None = None) -> list[dict[str, Any]]:
        """`infer` for several sessions at once (one model call): `(session, obs)` pairs, one reply each.

        `obs=None` predicts from the session's current history without adding a frame. `predict_tokens`, a callable
        with the signature of `self.predict_tokens`, samples the tokens instead (the server's exported graphs).
        """
        t0 = time.perf_counter()
        for sess, obs in batch:
            if obs is None:
                continue
            instruction = obs.get(T.INSTRUCTION)
            if instruction is not None and instruction != sess.instruction:
                self.reset_session(sess, instruction)
            image = np.asarray(obs[T.IMAGE])
            if image.ndim == 4 and image.shape[0] > 1:
                sess.history.clear()
            self._push_frames(image, sess)
            if obs.get(T.STATE) is not None:
                sess.state = self._check_state(obs[T.STATE])
        for sess, _ in batch:
            if sess.text is None:
                raise ConfigError("no instruction: send one with the observation or reset(task_description) first")
            if not sess.history:
                raise ConfigError("no frame yet: send an image with the observation")
            if self.state_dim and sess.state is None:
                raise ConfigError(f"this checkpoint conditions on the robot state (model.state_dim={self.state_dim})"
                                  ": send `state` with the observation: base_pose_tool_reached (x, y, z, qx, qy, qz, "
                                  "qw; tool pose in the base frame) + gripper_closed (0..1), 8 floats")
        t1 = time.perf_counter()
        context = np.stack([np.stack(list(sess.history)) for sess, _ in batch])   # (B, k, h, w, 3)
        text = np.stack([sess.text for sess, _ in batch])                         # (B, 512)
        noise = torch.cat([torch.randn(1, self.horizon, self.model_cfg.action_dim, generator=sess.generator,
                                       device=self.device) for sess, _ in batch])  # (B, H, 8)
        state = np.stack([self.state_input(sess.state) for sess, _ in batch]) if self.state_dim else None  # (B, 8)
        predict = predict_tokens or self.predict_tokens
        tokens = predict(context, text, noise, batch[0][0].generator, state).cpu().numpy()
        t2 = time.perf_counter()
        replies = []
        for row in tokens:
            out = self.outputs({T.ACTION_TOKENS: row})
            replies.append({T.ACTIONS: out[T.ACTIONS], T.TERMINATE_KEY: out[T.TERMINATE_KEY],
                            T.ACTION_TOKENS: row.astype(np.float32)})
        t3 = time.perf_counter()
        self.last_timing = {"preprocess_ms": (t1 - t0) * 1e3, "infer_ms": (t2 - t1) * 1e3,
                            "postprocess_ms": (t3 - t2) * 1e3, "batch_size": float(len(batch))}
        for r in replies:
            r["timing"] = dict(self.last_timing)
        return replies

    # ------------------------------------------------------------------ internals

    def _check_state(self, state: Any) -> np.ndarray:
        """The raw proprioception as float32 `(state_dim,)`; a clear error for a wrong size or a model without one."""
        if not self.state_dim:
            why = "use_state=false" if self.trained_state_dim else "trained with model.state_dim=0"
            raise ConfigError(f"this policy takes no robot state ({why}); leave `state` out of the observation")
        arr = np.asarray(state, np.float32).reshape(-1)
        if arr.shape != (self.state_dim,) or not np.all(np.isfinite(arr)):
            raise ConfigError(f"`state` must be {self.state_dim} finite floats (base_pose_tool_reached + "
                              f"gripper_closed), got shape {np.shape(state)}")
        return arr

    def _push_frames(self, image: np.ndarray, session: PolicySession | None = None) -> None:
        """Resize `(H, W, 3)` / `(T, H, W, 3)` frames as in training and append them to the history."""
        session = self.session if session is None else session
        frames = self.inputs.transforms[0]({T.IMAGE: image})[T.IMAGE]  # (T, h, w, 3) at the training size
        if not session.history:  # reset: repeat the first frame so the context is full from step one
            for _ in range(self.k - 1):
                session.history.append(frames[0])
        for f in frames:
            session.history.append(f)

    @torch.inference_mode()
    def predict_tokens(self, context: np.ndarray, text: np.ndarray, noise: torch.Tensor,
                       generator: torch.Generator | None = None, state: np.ndarray | None = None
                       ) -> torch.Tensor:
        """Sample action tokens `(B, H, 8)` from context frames uint8 `(B, k, h, w, 3)`, text `(B, 512)`, the
        initial noise `(B, H, 8)` and, for state-conditioned models, the normalised state `(B, 8)`: the
        policy-mode forward (no future-frame tokens)."""
        frames = torch.from_numpy(np.ascontiguousarray(context)).to(self.device)
        ctx = self.codec.encode(frames)                                        # (B, k*h*w, d)
        noise = noise.to(self.device)
        with precision_autocast(self.device, self.config.precision):
            out = sample(self.model, {CONTEXT: ctx, ACTION_GROUP: noise}, [ACTION_GROUP],
                         torch.as_tensor(text, dtype=torch.float32, device=self.device),
                         steps=self.config.steps, method=self.config.sampler, cfg_scale=self.config.cfg_scale,
                         generator=generator, noise={ACTION_GROUP: noise},
                         robot_state=None if state is None else torch.as_tensor(state, device=self.device),
                         state_scale=self.config.state_scale)
        return out[ACTION_GROUP].float()                                       # (B, H, 8)

    # ------------------------------------------------------------------ extras

    @property
    def metadata(self) -> dict[str, Any]:
        """What a client needs to know: chunk length, action layout, bounds, image size, context frames."""
        meta: dict[str, Any] = {"chunk_length": self.horizon, "action_dim": RAW_ACTION_DIM,
                                "image_shape": [*self.image_size, 3], "context_frames": self.k,
                                "execute_horizon": self.session.chunker.execute_horizon, "steps": self.config.steps,
                                "sampler": self.config.sampler, "state_dim": self.state_dim}
        for key in ("q01", "q99"):
            val = _find_stat(self.statistics, key)
            if val is not None:
                meta[f"action_{key}"] = val
        if self.source is not None:
            meta["checkpoint"] = str(self.source)
        return meta

    def visualize_epoch(self, raw_actions: Sequence[Mapping[str, np.ndarray]], images: Sequence[np.ndarray],
                        save_path: str | Path) -> None:
        """Plot an episode's raw actions over time under a strip of its frames (SimplerEnv calls this)."""
        plot_episode_actions(raw_actions, images, save_path)


def _find_stat(stats: Mapping[str, Any], key: str) -> list[float] | None:
    """The action `key` (q01/q99) from dataset statistics, wherever the file nests it."""
    if key in stats and isinstance(stats[key], (list, tuple)):
        return [float(v) for v in stats[key]]
    for v in stats.values():
        if isinstance(v, Mapping):
            found = _find_stat(v, key)
            if found is not None:
                return found
    return None
