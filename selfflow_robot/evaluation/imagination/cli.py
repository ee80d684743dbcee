"""`selfflow-robot imagine-eval`: score policy checkpoints inside the world model and rank them, checked against
the port.

    selfflow-robot imagine-eval world_model=runs/demo/run 'ckpt=[runs/demo/run/checkpoints/step-0002000,...]' \\
        judge=runs/judge 'port=[runs/demo/eval,runs/demo/curve]' max_episodes=9 output_dir=runs/imagine_eval

For each policy, every grid episode of the suite (or `tasks` / `episodes` / `max_episodes`) starts from the
port's first frame and runs closed-loop in imagination (`rollout.py`); the judge reads success off the last
frame (`judge.py`). A policy that takes the robot's state (the demo's default) gets the state the judge reads
off the newest imagined frame, so the judge must have been trained on sweeps that record it. With `port=`
folders holding the same checkpoints' `selfflow-robot eval` outcomes, the report sets both side by side
(`ranking.py`) and writes videos of imagined episodes beside the port's.
Writes `episodes.jsonl` (one line per imagined episode), `ranking.{json,md,png}` and `videos/`.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import imageio.v2 as imageio
import numpy as np
import torch
from omegaconf import DictConfig

from selfflow_robot.config import check_choice, structured
from selfflow_robot.data.transforms import resize_like_training
from selfflow_robot.envs.tasks import TASKS
from selfflow_robot.errors import UserError
from selfflow_robot.evaluation.config import EvalConfig
from selfflow_robot.evaluation.evaluate import EPISODES_FILE
from selfflow_robot.evaluation.imagination.judge import SuccessJudge, successes
from selfflow_robot.evaluation.imagination.ranking import (
    PolicyResult,
    port_outcomes,
    port_records,
    write_ranking_report,
)
from selfflow_robot.evaluation.imagination.rollout import ImaginedEpisodes, Start, imagine_episodes, read_starts
from selfflow_robot.evaluation.suites import plan_jobs
from selfflow_robot.files import atomic_write_bytes, check_writable_dir
from selfflow_robot.policies.config import PolicyConfig
from selfflow_robot.policies.policy import SelfFlowPolicy
from selfflow_robot.world_model.rollout import DECODINGS, WorldModel
from selfflow_robot.world_model.video import compose_panels, write_video


@dataclass
class ImagineEvalConfig:
    """Rank policy checkpoints by their success in imagination, against their success in the port.

    Attributes:
        world_model: checkpoint (run or step dir) whose world model imagines the episodes.
        ckpt: the policy checkpoints (a list, or one path).
        judge: a success judge folder (`selfflow-robot judge train`).
        port: `selfflow-robot eval` output folders with these checkpoints' outcomes in the port (optional).
        suite / tasks / episodes / max_episodes: which grid episodes, as in `eval`.
        max_steps: actions per episode (0 = the task's time limit, as in the port).
        wm_steps: the world model's denoising steps per chunk (1 = its conditional mean).
        wm_decode: how imagined latents become frames, `residual` or `direct` (`world_model/rollout.py`).
        policy_options: `SelfFlowPolicy` options (null = the policy's default), as in `eval`.
        videos: imagined episodes per policy written as mp4, beside the port's video of the same start when known.
        output_dir: where the episodes, the report and the videos go.
        asset_root: the simulator assets (for the start frames).
        threads: torch threads (0 = torch's default).
    """

    world_model: str | None = None
    ckpt: Any = None
    judge: str | None = None
    port: list[str] = field(default_factory=list)
    suite: str = "drawer_visual_matching"
    tasks: list[str] | None = None
    episodes: list[int] | None = None
    max_episodes: int | None = None
    max_steps: int = 0
    wm_steps: int = 1
    wm_decode: str = "residual"
    policy_options: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(f.name for f in fields(PolicyConfig)))
    videos: int = 2
    output_dir: str = "runs/imagine_eval"
    asset_root: str | None = None
    threads: int = 0

    def __post_init__(self) -> None:
        check_choice("wm_decode", self.wm_decode, list(DECODINGS))


def _side_by_side(imagined: np.ndarray, port_video: str | None) -> np.ndarray:
    """The imagined frames beside the port's video of the same policy and start (resized, equal length)."""
    if port_video is None or not Path(port_video).is_file():
        return compose_panels([imagined], ["imagined"])
    real = resize_like_training(np.stack(imageio.mimread(port_video, memtest=False)), imagined.shape[1:3])
    n = max(len(real), len(imagined))
    pad = [np.concatenate([v, np.repeat(v[-1:], n - len(v), 0)]) for v in (imagined, real)]
    return compose_panels(pad, ["imagined", "port"])


def _episode_lines(name: str, path: str, starts: list[Start], eps: ImaginedEpisodes, opening: np.ndarray,
                   success: np.ndarray, port: dict) -> list[dict]:
    return [{"checkpoint": name, "checkpoint_path": path, "task": st.task, "episode": st.episode,
             "instruction": st.instruction, "success": bool(success[i]), "judged_opening": round(float(opening[i]), 4),
             "steps": int(eps.steps[i]), "terminated_by_policy": bool(eps.terminated[i]),
             "port_success": port.get((st.task, st.episode))} for i, st in enumerate(starts)]


def imagine_eval(cfg: ImagineEvalConfig) -> dict[str, Any]:
    """Run every policy's episodes in imagination, judge them, and write the ranking report."""
    if not cfg.world_model or not cfg.judge:
        raise UserError("imagine-eval needs world_model=CKPT (the world model) and judge=DIR (`selfflow-robot judge "
                        "train`), besides ckpt=[POLICY,...]")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    jobs, ckpts = plan_jobs(EvalConfig(ckpt=cfg.ckpt, suite=cfg.suite, tasks=cfg.tasks, episodes=cfg.episodes,
                                       max_episodes=cfg.max_episodes))
    judge = SuccessJudge.load(cfg.judge)
    wm = WorldModel.from_pretrained(cfg.world_model, steps=cfg.wm_steps, decode=cfg.wm_decode)
    keys = list(dict.fromkeys((j.task, j.episode) for j in jobs))
    starts = read_starts(keys, asset_root=cfg.asset_root)
    max_steps = cfg.max_steps or max(TASKS[t].max_episode_steps for t, _ in keys)
    options = {k: v for k, v in dict(cfg.policy_options).items() if v is not None}
    out = Path(cfg.output_dir)
    lines, results = [], []
    for name, path in ckpts.items():
        t0 = time.process_time()
        policy = SelfFlowPolicy.from_pretrained(path, **options)
        eps = imagine_episodes(wm, policy, starts, max_steps=max_steps,
                               state_reader=judge.state if judge.cfg.state_dim else None)
        tasks = [st.task for st in starts]
        opening = judge.opening(eps.last_frames(), tasks)
        success = successes(tasks, opening)
        cpu = time.process_time() - t0
        records = port_records(cfg.port, path)
        port, port_cpu = port_outcomes(records)
        lines += _episode_lines(name, path, starts, eps, opening, success, port)
        results.append(PolicyResult(name, path, {(st.task, st.episode): bool(s) for st, s in zip(starts, success)},
                                    port, cpu, port_cpu))
        videos = {(r["task"], int(r["episode"])): r["video"] for r in records if r.get("video")}
        for j in sorted(set(np.linspace(0, len(starts) - 1, cfg.videos).astype(int).tolist())) if cfg.videos else []:
            st = starts[j]
            clip = _side_by_side(eps.frames[j, :eps.steps[j] + 1], videos.get((st.task, st.episode)))
            tag = "success" if success[j] else "failure"
            write_video(out / "videos" / name / f"{st.task}_ep{st.episode:03d}_imagined_{tag}.mp4", clip, fps=5)
        print(f"{name}: imagined {int(success.sum())}/{len(success)} successes, {cpu:.0f} CPU s")
    atomic_write_bytes(out / EPISODES_FILE, "".join(json.dumps(x) + "\n" for x in lines).encode())
    paths = write_ranking_report(results, out)
    return {"paths": paths, "results": results, "episodes": lines}


def main(cfg: DictConfig) -> int:
    """Entry point of `selfflow-robot imagine-eval` (configs/imagine_eval.yaml)."""
    conf = structured(ImagineEvalConfig, cfg)
    check_writable_dir(conf.output_dir)
    result = imagine_eval(conf)
    print(Path(result["paths"]["table"]).read_text())
    print("\n".join(f"{k}: {v}" for k, v in result["paths"].items()))
    return 0
