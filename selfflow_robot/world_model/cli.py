"""`selfflow-robot imagine ckpt=DIR ...`: roll the world model out and compare with what happened.

    selfflow-robot imagine ckpt=runs/demo data.path=data/synth                       # held-out episode 0
    selfflow-robot imagine ckpt=runs/demo data.path=data/synth data.episode=2 start=3 length=8
    selfflow-robot imagine ckpt=runs/demo data.path=data/synth data.num_episodes=0    # all held-out episodes
    selfflow-robot imagine ckpt=runs/demo actions=plan.npy context=now.png instruction="open top drawer"

Context frames and actions come from an episode of a dataset split (by default the checkpoint's
own held-out split: the same `val_fraction` and `seed` the run trained with), or the actions from
a `.npy` / `.json` file (and the context from image files or the episode). Writes
`<output_dir>/<name>.mp4` and `.gif` (prediction beside ground truth) and `<name>_metrics.json`, and
prints PSNR/SSIM per horizon step against the copy-last-frame baseline.
"""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from selfflow_robot.checkpoint import load_run_config
from selfflow_robot.config import check_choice, structured
from selfflow_robot.data.dataset import split_episodes
from selfflow_robot.data.frames import decode_frames
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.data.video_metrics import psnr, ssim
from selfflow_robot.errors import ConfigError, DataError
from selfflow_robot.files import check_writable_dir
from selfflow_robot.world_model.episode import Episode, load_actions_file, read_images
from selfflow_robot.world_model.rollout import DECODINGS, WorldModel
from selfflow_robot.world_model.video import write_comparison


@dataclass
class ImagineDataConfig:
    """Where the episode comes from.

    Args:
        path: RLDS dataset dir (fractal20220817_data builder dir or its parent); "" = no dataset.
        split: `val` (held out), `train` or `all`.
        episode: index of the (first) episode inside the split.
        num_episodes: episodes to imagine, from `episode` on (0 = the rest of the split); with more than
            one, the per-step PSNR/SSIM are also averaged over them.
        val_fraction: the split's held-out share; null = the checkpoint's `data.val_fraction`.
        seed: the split's seed; null = the checkpoint's `data.seed`.
    """

    path: str = ""
    split: str = "val"
    episode: int = 0
    num_episodes: int = 1
    val_fraction: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        check_choice("data.split", self.split, ["val", "train", "all"])
        if self.episode < 0 or self.num_episodes < 0:
            raise ConfigError(f"data.episode and data.num_episodes must be >= 0, got {self.episode}, "
                              f"{self.num_episodes}")


@dataclass
class ImagineConfig:
    """`selfflow-robot imagine` options.

    Args:
        ckpt: checkpoint step dir or run dir (newest complete step).
        data: the episode source (see `ImagineDataConfig`).
        actions: `.npy` ((T, 7) or (T, 8) with terminate last) or `.json` (the same as a list, or
            `{"actions": [...], "terminate": [...]}`); overrides the episode's actions.
        context: comma-separated image files (oldest first) used as context instead of the episode's frames.
        instruction: the task; "" = the episode's (needed without a dataset).
        start: episode step whose frame is the last context frame.
        length: steps to imagine (0 = up to the episode's end, or every action of the file).
        steps: denoising steps per chunk.
        sampler: `ode` or `sde`.
        cfg_scale: classifier-free guidance on the instruction (1.0 = off).
        seed: sampler noise seed.
        use_ema: use the EMA weights.
        device: torch device; `auto` = CUDA when available, else CPU.
        precision: `auto` (bf16 autocast on CUDA, fp32 on CPU), `fp32` or `bf16`.
        decode: `residual` (the codec's decoding, with the camera's detail of the last context frame kept where
            the imagined frame has not changed) or `direct` (the codec's decoding alone); `world_model/rollout.py`
            explains both.
        wm_state: for a world model trained with `train.world_model_state=true`: `recorded` gives it the episode's
            recorded robot state at each chunk's start (the real start's state for the first H frames; after that
            the state the episode really reached, which only a replay knows), `none` its learned null state.
        fps: video frame rate (RT-1 runs at 3 Hz).
        action_control: also imagine each episode from its own context with the first actions of the next
            episode of the split that has another instruction (the same noise): `psnr_other_actions` per step. A
            model whose frames follow the actions scores lower there than with the episode's own actions; one that
            ignores them does not.
        output_dir: where the videos and metrics.json go.
        name: file stem of the videos ("" = `episode<ID>_start<S>` or `imagine`).
    """

    ckpt: str = ""
    data: ImagineDataConfig = field(default_factory=ImagineDataConfig)
    actions: str = ""
    context: str = ""
    instruction: str = ""
    start: int = 0
    length: int = 0
    steps: int = 10
    sampler: str = "ode"
    cfg_scale: float = 1.0
    seed: int = 0
    use_ema: bool = True
    device: str = "auto"
    precision: str = "auto"
    decode: str = "residual"
    wm_state: str = "recorded"
    fps: float = 3.0
    action_control: bool = False
    output_dir: str = "outputs/imagine"
    name: str = ""

    def __post_init__(self) -> None:
        if not self.ckpt:
            raise ConfigError("imagine needs ckpt=<checkpoint step dir or run dir>")
        check_choice("sampler", self.sampler, ["ode", "sde"])
        check_choice("precision", self.precision, ["auto", "fp32", "bf16"])
        check_choice("decode", self.decode, list(DECODINGS))
        check_choice("wm_state", self.wm_state, ["recorded", "none"])
        if self.steps < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if self.start < 0 or self.length < 0:
            raise ConfigError(f"start and length must be >= 0, got start={self.start} length={self.length}")
        if not self.data.path and not self.actions:
            raise ConfigError("imagine needs an episode (data.path=DATASET_DIR) or an action file (actions=FILE.npy)")
        if self.data.num_episodes != 1 and (self.actions or self.context or not self.data.path):
            raise ConfigError("data.num_episodes != 1 needs data.path and no actions=/context= files "
                              "(those describe a single rollout)")
        if not self.data.path and (not self.context or not self.instruction):
            raise ConfigError("without data.path, pass context=IMAGE[,IMAGE...] and instruction=\"...\" too")


def _split_args(cfg: ImagineConfig, ckpt_config: DictConfig) -> tuple[float, int]:
    """(val_fraction, seed) of the split: the config's, else the checkpoint's training run's."""
    data_cfg = ckpt_config.get("data") or {}
    val_fraction = cfg.data.val_fraction if cfg.data.val_fraction is not None else float(
        data_cfg.get("val_fraction", 0.05))
    seed = cfg.data.seed if cfg.data.seed is not None else int(data_cfg.get("seed", 0))
    return val_fraction, seed


def load_episode(cfg: ImagineConfig, ckpt_config: DictConfig, image_size: tuple[int, int], k: int,
                 wants_state: bool = False) -> Episode:
    """Assemble context, actions and ground truth from the config (dataset split and/or files), and with
    `wants_state` the episode's recorded robot states (none when files replace its actions or context)."""
    ep, states = None, None
    if cfg.data.path:
        val_fraction, seed = _split_args(cfg, ckpt_config)
        reader = RLDSReader(cfg.data.path)
        ids = split_episodes(reader.episode_ids, val_fraction, seed)[cfg.data.split]
        if cfg.data.episode >= len(ids):
            raise DataError(f"{cfg.data.path}: split '{cfg.data.split}' has {len(ids)} episodes "
                            f"(val_fraction={val_fraction}, seed={seed}); "
                            f"data.episode={cfg.data.episode} is out of range")
        ep = reader.read(ids[cfg.data.episode])
        n = len(ep)
        if cfg.start > n - 2:
            raise DataError(f"episode {ep.episode_id} has {n} steps; start={cfg.start} leaves no step to imagine "
                            f"(use start <= {n - 2})")
        frames = decode_frames(ep.images, image_size, where=ep.where())         # (n, H, W, 3)
        ctx_idx = np.clip(np.arange(cfg.start - k + 1, cfg.start + 1), 0, None)
        context = frames[ctx_idx]
        horizon_left = n - 1 - cfg.start
        length = min(cfg.length or horizon_left, horizon_left)
        actions = ep.actions()[cfg.start:cfg.start + length]
        terminate = ep.terminate()[cfg.start:cfg.start + length]
        truth: np.ndarray | None = frames[cfg.start + 1:cfg.start + 1 + length]
        instruction, text = ep.instruction, ep.language_embedding.astype(np.float32)
        label = f"episode{ep.episode_id}_start{cfg.start}"
        states = ep.state()[cfg.start:cfg.start + length + 1] if wants_state else None
    if cfg.actions:
        states = None
        actions, terminate = load_actions_file(cfg.actions)
        if cfg.length:
            actions, terminate = actions[:cfg.length], terminate[:cfg.length]
        if ep is not None and truth is not None and len(truth) >= len(actions):
            truth = truth[:len(actions)]
        else:
            truth = None  # the file's actions go beyond (or without) a recorded episode
        if ep is None:
            label = Path(cfg.actions).stem
    if cfg.context:
        context = read_images(cfg.context, image_size)
        truth = states = None  # the recorded frames followed the episode's own context, not these images
    if cfg.instruction:
        instruction, text = cfg.instruction, None
    return Episode(context=context, actions=np.asarray(actions, np.float32),
                   terminate=np.asarray(terminate, np.float32),
                   truth=truth, instruction=instruction, text=text, label=label, states=states)


def horizon_metrics(pred: np.ndarray, truth: np.ndarray, last_context: np.ndarray) -> dict[str, list[float]]:
    """Per-step PSNR/SSIM of the prediction and of the copy-last-frame baseline, frames in [0, 1] or uint8."""
    truth_f = truth.astype(np.float32) / 255.0 if truth.dtype == np.uint8 else truth
    base = np.repeat((last_context.astype(np.float32) / 255.0)[None], len(truth_f), axis=0)
    return {"psnr": psnr(pred, truth_f).tolist(), "ssim": ssim(pred, truth_f).tolist(),
            "psnr_copy_last": psnr(base, truth_f).tolist(), "ssim_copy_last": ssim(base, truth_f).tolist()}


def next_other_task(here: int, n: int, instruction: Callable[[int], str]) -> int:
    """Index of the first of `n` episodes after `here` (wrapping around) whose `instruction(index)` differs from
    `here`'s; the next one when every episode shares it. Reads episodes only up to the first other task."""
    mine = instruction(here)
    after = ((here + j) % n for j in range(1, n))
    return next((i for i in after if instruction(i) != mine), (here + 1) % n)


def other_actions_metrics(wm: WorldModel, cfg: ImagineConfig, ckpt_config: DictConfig, ep: Episode
                          ) -> dict[str, list[float]]:
    """PSNR/SSIM per step of the rollout from `ep`'s context with another episode's first actions (the same
    noise), against `ep`'s real frames: the action-dependence control. The other episode is the next one of the
    split with a different instruction (the next one if they all share `ep`'s): scripted demos of one task move
    alike, so a same-task episode's actions would test little."""
    val_fraction, seed = _split_args(cfg, ckpt_config)
    reader = RLDSReader(cfg.data.path)
    splits = split_episodes(reader.episode_ids, val_fraction, seed)
    if len(splits["all"]) < 2:
        raise DataError(f"{cfg.data.path}: action_control needs a second episode, the dataset has one")
    split = cfg.data.split if len(splits[cfg.data.split]) >= 2 else "all"  # a one-episode split: the dataset's
    ids = splits[split]
    pick = next_other_task(ids.index(splits[cfg.data.split][cfg.data.episode]), len(ids),
                           lambda i: reader.read(ids[i]).instruction)
    nxt = replace(cfg, data=replace(cfg.data, split=split, episode=pick), start=0, length=0)
    other = load_episode(nxt, ckpt_config, wm.image_size, wm.k, wants_state=ep.states is not None)
    n = min(len(ep.actions), len(other.actions))
    pred = wm.rollout(ep.context, other.actions[:n], terminate=other.terminate[:n], instruction=ep.instruction,
                      text=ep.text, progress=False, states=None if ep.states is None else other.states[:n + 1])
    truth = ep.truth[:n].astype(np.float32) / 255.0
    return {"psnr_other_actions": psnr(pred, truth).tolist(), "ssim_other_actions": ssim(pred, truth).tolist()}


def format_metrics(m: dict[str, list[float]]) -> str:
    """A per-step table with a mean row (and an episode count column for averaged metrics)."""
    count, other = "count" in m, "psnr_other_actions" in m
    head = f"{'step':>5}  {'PSNR':>7}  {'PSNR copy-last':>14}  {'SSIM':>6}  {'SSIM copy-last':>14}"
    lines = [head + ("  PSNR other actions" if other else "") + ("  episodes" if count else "")]
    for i in range(len(m["psnr"])):
        o = m["psnr_other_actions"][i] if other and i < len(m["psnr_other_actions"]) else float("nan")
        lines.append(f"{i + 1:>5}  {m['psnr'][i]:7.2f}  {m['psnr_copy_last'][i]:14.2f}  "
                     f"{m['ssim'][i]:6.3f}  {m['ssim_copy_last'][i]:14.3f}" + (f"  {o:19.2f}" if other else "")
                     + (f"  {int(m['count'][i]):>8}" if count else ""))
    mean = {k: float(np.mean(v)) for k, v in m.items()}
    lines.append(f"{'mean':>5}  {mean['psnr']:7.2f}  {mean['psnr_copy_last']:14.2f}  "
                 f"{mean['ssim']:6.3f}  {mean['ssim_copy_last']:14.3f}"
                 + (f"  {mean['psnr_other_actions']:19.2f}" if other else ""))
    return "\n".join(lines)


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def split_size(cfg: ImagineConfig, ckpt_config: DictConfig) -> int:
    """Number of episodes in the configured split of `cfg.data.path`."""
    val_fraction, seed = _split_args(cfg, ckpt_config)
    return len(split_episodes(RLDSReader(cfg.data.path).episode_ids, val_fraction, seed)[cfg.data.split])


def mean_over_episodes(per_episode: list[dict[str, list[float]]]) -> dict[str, list[float]]:
    """Per-step means over episodes of different lengths (step i averages the episodes that reach it),
    plus `count` per step."""
    longest = max(len(m["psnr"]) for m in per_episode)
    out: dict[str, list[float]] = {}
    for key in per_episode[0]:
        cols = [[m[key][i] for m in per_episode if i < len(m[key])] for i in range(longest)]
        out[key] = [float(np.mean(c)) for c in cols]
    out["count"] = [float(sum(1 for m in per_episode if i < len(m["psnr"]))) for i in range(longest)]
    return out


def imagine(cfg: ImagineConfig) -> dict[str, Any]:
    """Run the rollout(s); returns paths and metrics (also written to `<name>_metrics.json`, and
    `summary_metrics.json` for several episodes)."""
    check_writable_dir(cfg.output_dir)
    wm = WorldModel.from_pretrained(cfg.ckpt, use_ema=cfg.use_ema, device=cfg.device, steps=cfg.steps,
                                    method=cfg.sampler, cfg_scale=cfg.cfg_scale, seed=cfg.seed,
                                    precision=cfg.precision, decode=cfg.decode)
    ckpt_config = load_run_config(wm.source)
    if cfg.data.num_episodes == 1:
        indices = [cfg.data.episode]
    else:
        total = split_size(cfg, ckpt_config)
        stop = total if cfg.data.num_episodes == 0 else min(total, cfg.data.episode + cfg.data.num_episodes)
        indices = list(range(cfg.data.episode, stop))
        if not indices:
            raise DataError(f"{cfg.data.path}: split '{cfg.data.split}' has {total} episodes; "
                            f"data.episode={cfg.data.episode} leaves none to imagine")
    out_dir = Path(cfg.output_dir)
    results = []
    for index in indices:
        one = replace(cfg, data=replace(cfg.data, episode=index))
        ep = load_episode(one, ckpt_config, wm.image_size, wm.k, wants_state=wm.takes_state and cfg.wm_state != "none")
        if wm.takes_state and cfg.wm_state == "recorded" and ep.states is None:
            raise ConfigError("this world model takes the robot state and wm_state=recorded, but action or context "
                              "files replace the episode's: pass wm_state=none")
        print(f"imagine: {len(ep.actions)} steps ({-(-len(ep.actions) // wm.horizon)} chunks of H={wm.horizon}, "
              f"k={wm.k}) for {ep.label!r}, instruction {ep.instruction!r}, checkpoint {wm.source}")
        pred = wm.rollout(ep.context, ep.actions, terminate=ep.terminate, instruction=ep.instruction,
                          text=ep.text, states=ep.states, progress=True)
        name = (f"{cfg.name}_{ep.label}" if len(indices) > 1 else cfg.name) if cfg.name else ep.label
        paths = write_comparison(out_dir / name, pred, ep.truth, context=ep.context, fps=cfg.fps)
        result: dict[str, Any] = {"checkpoint": str(wm.source), "label": ep.label, "instruction": ep.instruction,
                                  "steps": len(ep.actions), "video": {k: str(v) for k, v in paths.items()},
                                  "config": asdict(one)}
        if ep.truth is not None:
            result["metrics"] = horizon_metrics(pred, ep.truth, ep.context[-1])
            if cfg.action_control:
                result["metrics"].update(other_actions_metrics(wm, one, ckpt_config, ep))
            print(format_metrics(result["metrics"]))
        else:
            print("no ground truth for these actions: videos only, no PSNR/SSIM")
        _write_json(out_dir / f"{name}_metrics.json", result)
        print(f"wrote {paths['mp4']} and {paths['gif']}")
        results.append(result)
    if len(results) == 1:
        return results[0]
    summary = {"checkpoint": str(wm.source), "episodes": [r["label"] for r in results],
               "metrics": mean_over_episodes([r["metrics"] for r in results])}
    print(f"mean over {len(results)} episodes of split '{cfg.data.split}' (per step):")
    print(format_metrics(summary["metrics"]))
    _write_json(out_dir / "summary_metrics.json", summary)
    return summary


def main(cfg: DictConfig) -> int:
    """CLI entry (registered as `selfflow-robot imagine`)."""
    imagine(structured(ImagineConfig, cfg))
    return 0
