"""Training windows from one episode: k context frames, H future frames, H actions + terminate.

A window is anchored at a step c of its episode (`step_index` = c, the step whose
observation is the last context frame and whose action is `actions[0]`). With frame stride s:

- context frames: observations at c-(k-1)s, ..., c-s, c (indices < 0 repeat frame 0);
- future frames:  observations at c+s, c+2s, ..., c+Hs (the results of the actions);
  past the last step they repeat the last frame and `frame_pad` is True;
- actions[j]: the RT-1 7-D raw action (world_vector, rotation_delta, relative gripper)
  taking frame j to frame j+1. With s = 1 that is step c+j's action. With s > 1 it
  aggregates steps c+js .. c+(j+1)s-1: translation and rotation deltas are summed (a
  small-angle approximation for rotations), the gripper command is the one with the
  largest magnitude (sign kept), terminate is their maximum.
  Past the episode end: zero motion, gripper 0 (hold), terminate 1, `action_pad` True.
- `terminate[j]` = 1.0 where `terminate_episode[0] > 0`.
- with `state`: the raw 8-D proprioception (`schema.STATE_KEYS`) at step c, what the robot reports
  with the last context frame.

Anchors run over c = 0, a, 2a, ... (a = `anchor_stride`) up to the second-to-last step
(so at least one future frame is real); with `pad_end=False` only windows whose H future
frames all exist are made. The keys are those of `selfflow_robot.constants`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from selfflow_robot import constants as C
from selfflow_robot.data import schema
from selfflow_robot.data.frames import decode_frames
from selfflow_robot.data.latent_cache import LatentCache
from selfflow_robot.data.reader import Episode
from selfflow_robot.errors import ConfigError, DataError


@dataclass
class WindowConfig:
    """How windows are cut from episodes.

    Args:
        context_frames: k, past frames given as clean context (the current one included).
        horizon: H, future frames and actions per window.
        frame_stride: steps between consecutive frames (1 = RT-1's 3 Hz).
        height: frame height after resize (stored frames are 256 x 320).
        width: frame width after resize; 0 keeps the stored 256:320 aspect (width = height * 1.25).
        pad_end: also make windows whose future runs past the episode end (padded, masked).
        anchor_stride: use every n-th step as a window anchor.
        state: also return the proprioception at the anchor (set from `model.state_dim > 0`).
    """

    context_frames: int = 2
    horizon: int = 4
    frame_stride: int = 1
    height: int = 256
    width: int = 0
    pad_end: bool = True
    anchor_stride: int = 1
    state: bool = False

    def __post_init__(self) -> None:
        for name in ("context_frames", "horizon", "frame_stride", "anchor_stride"):
            if getattr(self, name) < 1:
                raise ConfigError(f"window.{name} must be >= 1, got {getattr(self, name)}")
        if self.height < 8 or self.width < 0 or (self.width and self.width < 8):
            raise ConfigError(f"window.height/width must be >= 8 (width 0 = keep aspect), got "
                              f"{self.height}x{self.width}")

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of output frames."""
        h, w = schema.IMAGE_SHAPE[:2]
        width = self.width or max(1, round(self.height * w / h))
        return self.height, width

    def anchors(self, length: int) -> list[int]:
        """Anchor steps c of an episode with `length` steps."""
        last = length - 2 if self.pad_end else length - 1 - self.horizon * self.frame_stride
        return list(range(0, last + 1, self.anchor_stride)) if last >= 0 else []

    def frame_indices(self, c: int, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(context indices (k,), future indices (H,), frame_pad (H,)) for anchor c."""
        k, H, s = self.context_frames, self.horizon, self.frame_stride
        ctx = np.clip(c - s * np.arange(k - 1, -1, -1), 0, None)
        fut = c + s * np.arange(1, H + 1)
        pad = fut > length - 1
        return ctx, np.minimum(fut, length - 1), pad


def window_actions(actions: np.ndarray, terminate: np.ndarray, c: int, cfg: WindowConfig
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(actions (H, 7), terminate (H,), action_pad (H,)) of the window anchored at c."""
    T, H, s = len(actions), cfg.horizon, cfg.frame_stride
    out = np.zeros((H, C.RAW_ACTION_DIM), np.float32)
    term = np.ones(H, np.float32)
    pad = np.ones(H, bool)
    for j in range(H):
        lo = c + j * s
        if lo > T - 1:
            break
        hi = min(lo + s, T)
        pad[j] = False
        if s == 1:
            out[j] = actions[lo]
            term[j] = terminate[lo]
            continue
        chunk = actions[lo:hi]
        out[j, :C.GRIPPER] = chunk[:, :C.GRIPPER].sum(0)
        g = chunk[:, C.GRIPPER]
        out[j, C.GRIPPER] = g[np.argmax(np.abs(g))]
        term[j] = terminate[lo:hi].max()
    return out, term, pad


class EpisodeWindows:
    """The windows of one episode at `anchors`, built on access from frames decoded once.

    Construction decodes (and resizes) every frame the windows need, in parallel threads (a frame
    that does not decode raises `DataError` naming the episode and step), or, given a `LatentCache`,
    takes the episode's frame tokens from it: the windows' frame keys then hold tokens (k, n, d) instead
    of uint8 frames. `self[i]` assembles window i (copies of the frames it uses).
    """

    def __init__(self, episode: Episode, cfg: WindowConfig, anchors: list[int] | None = None, threads: int = 0,
                 latents: LatentCache | None = None):
        T = len(episode)
        self.episode_id = episode.episode_id
        self.anchors = cfg.anchors(T) if anchors is None else list(anchors)
        self.cfg = cfg
        self._idx = [cfg.frame_indices(c, T) for c in self.anchors]
        self._pos = np.zeros(T, np.int64)
        if latents is not None:  # every step's tokens, read from the memory map: nothing to decode
            self.frames = latents.frames(episode.episode_id)
            if len(self.frames) != T:
                raise DataError(f"{episode.where()}: {T} steps, but the latent cache {latents.folder} holds "
                                f"{len(self.frames)} frames for it; the cache is stale, delete it and encode again")
            self._pos[:] = np.arange(T)
        else:
            needed = (np.unique(np.concatenate([np.concatenate([a, b]) for a, b, _ in self._idx]))
                      if self.anchors else np.zeros(0, np.int64))
            self.frames = decode_frames([episode.images[i] for i in needed], cfg.image_size, threads,
                                        where=episode.where(), steps=needed)
            self._pos[needed] = np.arange(len(needed))
        self._actions, self._terminate = episode.actions(), episode.terminate()
        self._instruction = episode.instruction
        self._embedding = episode.language_embedding.astype(np.float32)
        self._state = episode.state() if cfg.state else None

    def __len__(self) -> int:
        return len(self.anchors)

    def _take(self, indices: np.ndarray) -> np.ndarray:
        """Frames at `indices`: a strided view when they are evenly spaced in the decoded array
        (the common case; `collate` then makes the only copy), else a copy."""
        p = self._pos[indices]
        if len(p) == 1:
            return self.frames[p[0]:p[0] + 1]
        step = int(p[1] - p[0])
        if step > 0 and np.all(np.diff(p) == step):
            return self.frames[p[0]:p[-1] + 1:step]
        return self.frames[p]

    def __getitem__(self, i: int) -> dict:
        c = self.anchors[i]
        ctx, fut, fpad = self._idx[i]
        act, term, apad = window_actions(self._actions, self._terminate, c, self.cfg)
        out = {
            C.CONTEXT_FRAMES: self._take(ctx),
            C.FUTURE_FRAMES: self._take(fut),
            C.ACTIONS_RAW: act,
            C.TERMINATE_FLAG: term,
            C.ACTION_PAD: apad,
            C.FRAME_PAD: fpad,
            C.INSTRUCTION: self._instruction,
            C.LANGUAGE_EMBEDDING: self._embedding,
            C.EPISODE_ID: np.int64(self.episode_id),
            C.STEP_INDEX: np.int64(c),
        }
        if self._state is not None:
            out[C.STATE] = self._state[c]
        return out


def episode_windows(episode: Episode, cfg: WindowConfig, anchors: list[int] | None = None,
                    threads: int = 0) -> list[dict]:
    """All windows of `episode` at `anchors` (default: `cfg.anchors(len(episode))`), as a list."""
    ew = EpisodeWindows(episode, cfg, anchors, threads)
    return [ew[i] for i in range(len(ew))]
