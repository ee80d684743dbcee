"""`selfflow-robot judge train`: fit the success judge to the frames of evaluation sweeps in the port.

Every episode `selfflow-robot eval` runs on a drawer task records its video and the drawer's opening at each of
its frames (`drawer_qpos` in `episodes.jsonl`), so any sweep is labelled data: the expert's (every episode
crosses from failure to success) and weak checkpoints' (failures, odd arm poses). Episodes recorded before the
per-frame openings existed still label their last frame (`final_drawer_qpos`). Frames are resized as the
world model's training frames are (`resize_like_training`), episodes are split into train and held-out ones,
and the held-out accuracy of the simulator's rule on the judged openings is reported. Where the episodes also
record the robot's state per frame (`tool_state`, every sweep since 2026-12-05), the judge learns to read it too
(`state_dim = 8`; held-out errors reported), so `imagine-eval` can score state-conditioned policies.

    selfflow-robot judge train 'sweeps=[runs/expert_eval,runs/demo/eval]' output_dir=runs/judge
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig
from tqdm.auto import tqdm

from selfflow_robot.config import structured
from selfflow_robot.constants import STATE_DIM
from selfflow_robot.data.transforms import resize_like_training
from selfflow_robot.errors import UserError
from selfflow_robot.evaluation.evaluate import EPISODES_FILE, read_records
from selfflow_robot.evaluation.imagination.judge import JudgeConfig, SuccessJudge, drawer_task, successes
from selfflow_robot.files import check_writable_dir


@dataclass
class JudgeTrainConfig:
    """Train the success judge of imagined frames.

    Attributes:
        sweeps: output folders of `selfflow-robot eval` runs on drawer tasks (with videos).
        output_dir: where `judge.safetensors` and `judge.json` go.
        image_size: (H, W) the judge reads: the world model's image size.
        width: conv width of the judge.
        steps / batch_size / lr: training schedule (AdamW, cosine decay).
        holdout: share of episodes held out for the reported accuracy.
        seed: split, initialisation and batches.
    """

    sweeps: list[str] = field(default_factory=list)
    output_dir: str = "runs/judge"
    image_size: list[int] = field(default_factory=lambda: [64, 80])
    width: int = 32
    steps: int = 3000
    batch_size: int = 64
    lr: float = 2e-3
    holdout: float = 0.2
    seed: int = 0


@dataclass
class LabelledFrames:
    """Frames uint8 `(N, H, W, 3)`, their task drawer's opening `(N,)` (m), task and episode id per frame,
    whether the frame is its episode's last (where the simulator reads success), and the robot's state `(N, 8)`
    (NaN rows where the episode did not record it; None when none did)."""

    frames: np.ndarray
    opening: np.ndarray
    tasks: list[str]
    episode: np.ndarray
    last: np.ndarray
    state: np.ndarray | None = None


def labelled_frames(sweeps: list[str], image_size: tuple[int, int]) -> LabelledFrames:
    """Every frame of every drawer episode of `sweeps` that has a video and per-frame openings."""
    records = []
    for d in sweeps:
        recs = read_records(Path(d) / EPISODES_FILE)
        if not recs:
            raise UserError(f"no {EPISODES_FILE} with episodes in {d}: pass output folders of `selfflow-robot eval`")
        records += [r for r in recs if (r.get("drawer_qpos") or r.get("final_drawer_qpos") is not None)
                    and r.get("video") and Path(r["video"]).is_file()]
    if not records:
        raise UserError(f"none of the episodes in {sweeps} has a video and drawer openings: run "
                        "`selfflow-robot eval` on drawer tasks with video=true")
    frames, opening, tasks, episode, last, state = [], [], [], [], [], []
    for i, r in enumerate(tqdm(records, desc="judge frames", unit="episode")):
        drawer_task(r["task"])
        s = np.full((1, STATE_DIM), np.nan, np.float32)
        if r.get("drawer_qpos"):
            video = np.stack(imageio.mimread(r["video"], memtest=False))
            q = np.asarray(r["drawer_qpos"], np.float32)
            if r.get("tool_state"):
                s = np.asarray(r["tool_state"], np.float32)
                if s.shape != (len(q), STATE_DIM):
                    raise UserError(f"{r['video']}: its record has {len(q)} drawer openings but tool_state of shape "
                                    f"{s.shape} (want ({len(q)}, {STATE_DIM}))")
            else:
                s = np.repeat(s, len(q), axis=0)
        else:   # an older record: only its last frame is labelled (streamed, not the whole clip in memory)
            with imageio.get_reader(r["video"]) as reader:
                *_, final = reader
            video, q = final[None], np.asarray([r["final_drawer_qpos"]], np.float32)
        if len(video) != len(q):
            raise UserError(f"{r['video']} has {len(video)} frames but its record {len(q)} drawer openings")
        frames.append(resize_like_training(video, image_size))
        opening.append(q)
        tasks += [r["task"]] * len(q)
        episode.append(np.full(len(q), i))
        last.append(np.arange(len(q)) == len(q) - 1)
        state.append(s)
    states = np.concatenate(state)
    return LabelledFrames(np.concatenate(frames), np.concatenate(opening), tasks, np.concatenate(episode),
                          np.concatenate(last), states if np.isfinite(states).all(axis=1).any() else None)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random shift (4 px), blur on half the batch (imagined frames are soft), brightness and contrast jitter."""
    B, H, W, _ = x.shape
    img = F.pad(x.permute(0, 3, 1, 2), (4, 4, 4, 4), mode="replicate")
    dy, dx = (int(v) for v in torch.randint(0, 9, (2,), generator=gen))
    img = img[:, :, dy:dy + H, dx:dx + W]
    blur = torch.rand(B, generator=gen) < 0.5
    img = torch.where(blur[:, None, None, None], F.avg_pool2d(img, 3, 1, 1, count_include_pad=False), img)
    scale = 1 + 0.2 * (torch.rand(B, 1, 1, 1, generator=gen) - 0.5)
    shift = 0.1 * (torch.rand(B, 1, 1, 1, generator=gen) - 0.5)
    mean = img.mean(dim=(1, 2, 3), keepdim=True)
    return ((img - mean) * scale + mean + shift).clamp(0, 1).permute(0, 2, 3, 1)


def judge_metrics(judge: SuccessJudge, data: LabelledFrames, rows: np.ndarray) -> dict[str, float]:
    """Held-out figures: opening MAE (m), and the accuracy of the success rule on judged openings, on every
    frame, on frames where the task succeeded / failed, and on episodes' last frames."""
    tasks = [data.tasks[i] for i in rows]
    pred = judge.opening(data.frames[rows], tasks)
    true_s, pred_s = successes(tasks, data.opening[rows]), successes(tasks, pred)
    right = pred_s == true_s
    last = data.last[rows]
    return {"frames": int(len(rows)), "opening_mae_m": float(np.abs(pred - data.opening[rows]).mean()),
            "accuracy": float(right.mean()),
            "accuracy_success_frames": float(right[true_s].mean()) if true_s.any() else float("nan"),
            "accuracy_failure_frames": float(right[~true_s].mean()) if (~true_s).any() else float("nan"),
            "accuracy_last_frames": float(right[last].mean()) if last.any() else float("nan"),
            "last_frames": int(last.sum()), **state_metrics(judge, data, rows)}


def state_metrics(judge: SuccessJudge, data: LabelledFrames, rows: np.ndarray) -> dict[str, float]:
    """Held-out errors of the judged robot state on the frames that record it: tool position (cm, mean absolute
    over x, y, z), orientation (mean absolute quaternion component) and gripper; {} for a judge without it."""
    if not judge.cfg.state_dim or data.state is None:
        return {}
    rows = rows[np.isfinite(data.state[rows]).all(axis=1)]
    if not len(rows):
        return {}
    err = np.abs(judge.state(data.frames[rows]) - data.state[rows])
    return {"state_frames": int(len(rows)), "state_position_mae_cm": float(100 * err[:, :3].mean()),
            "state_quaternion_mae": float(err[:, 3:7].mean()), "state_gripper_mae": float(err[:, 7].mean())}


def train_judge(cfg: JudgeTrainConfig, data: LabelledFrames | None = None) -> tuple[SuccessJudge, dict[str, Any]]:
    """Train on the sweeps' frames (or `data`), report held-out metrics, save to `cfg.output_dir`."""
    size = (int(cfg.image_size[0]), int(cfg.image_size[1]))
    data = labelled_frames(list(cfg.sweeps), size) if data is None else data
    rng = np.random.default_rng(cfg.seed)
    episodes = np.unique(data.episode)
    held = set(rng.permutation(episodes)[: max(1, round(cfg.holdout * len(episodes)))].tolist())
    if len(held) == len(episodes):
        raise UserError(f"{len(episodes)} episode(s) cannot be split into train and held-out; give more sweeps")
    is_held = np.isin(data.episode, list(held))
    train_rows, held_rows = np.flatnonzero(~is_held), np.flatnonzero(is_held)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    labelled = np.zeros(len(data.opening), bool) if data.state is None else np.isfinite(data.state).all(axis=1)
    state_rows = train_rows[labelled[train_rows]]
    judge = SuccessJudge(JudgeConfig(image_size=size, width=cfg.width, state_dim=STATE_DIM if len(state_rows) else 0))
    if len(state_rows):   # learn the state normalised by its training frames' spread (the gripper is 0-1, x is cm)
        judge.state_mean.copy_(torch.as_tensor(data.state[state_rows].mean(0)))
        judge.state_std.copy_(torch.as_tensor(data.state[state_rows].std(0)).clamp_min(1e-3))
    opt = torch.optim.AdamW(judge.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    drawer = torch.as_tensor([drawer_task(t)[1] for t in data.tasks])
    t0 = time.time()
    judge.train()
    bar = tqdm(range(cfg.steps), desc="judge train", unit="step")
    for _ in bar:
        rows = train_rows[torch.randint(0, len(train_rows), (cfg.batch_size,), generator=gen).numpy()]
        x = _augment(torch.as_tensor(data.frames[rows]).float() / 255.0, gen)
        openings, state = judge.read(x)
        pred = openings.gather(1, drawer[rows][:, None])[:, 0]
        loss = F.smooth_l1_loss(pred * 10, torch.as_tensor(data.opening[rows]) * 10)
        has = labelled[rows]
        if judge.cfg.state_dim and has.any():
            target = (torch.as_tensor(data.state[rows[has]]) - judge.state_mean) / judge.state_std
            loss = loss + F.smooth_l1_loss(state[torch.as_tensor(has)], target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.4f}")
    metrics = {"held_out": judge_metrics(judge, data, held_rows), "train": judge_metrics(judge, data, train_rows),
               "episodes": {"train": int(len(episodes) - len(held)), "held_out": len(held)},
               "sweeps": [str(s) for s in cfg.sweeps], "steps": cfg.steps, "seconds": round(time.time() - t0, 1)}
    judge.save(cfg.output_dir, metrics)
    return judge.eval(), metrics


def main(cfg: DictConfig) -> int:
    """Entry point of `selfflow-robot judge train` (configs/judge_train.yaml)."""
    conf = structured(JudgeTrainConfig, cfg)
    if not conf.sweeps:
        raise UserError("judge train needs sweeps=[EVAL_DIR,...]: output folders of `selfflow-robot eval` runs on "
                        "drawer tasks")
    check_writable_dir(conf.output_dir)
    _, m = train_judge(conf)
    h = m["held_out"]
    print(f"held-out ({m['episodes']['held_out']} episodes, {h['frames']} frames): opening MAE "
          f"{100 * h['opening_mae_m']:.1f} cm; success rule accuracy {h['accuracy']:.3f} (success frames "
          f"{h['accuracy_success_frames']:.3f}, failure frames {h['accuracy_failure_frames']:.3f}, last frames "
          f"{h['accuracy_last_frames']:.3f} of {h['last_frames']})")
    if "state_position_mae_cm" in h:
        print(f"robot state on {h['state_frames']} held-out frames: tool position off by "
              f"{h['state_position_mae_cm']:.1f} cm, quaternion components by {h['state_quaternion_mae']:.3f}, "
              f"gripper by {h['state_gripper_mae']:.3f}")
    print(f"wrote {conf.output_dir}")
    return 0
