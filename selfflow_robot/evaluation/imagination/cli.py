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

`replay=true` takes the policy out of the loop: the world model is fed, open loop, the actions each checkpoint
executed in the port sweep from the same start, and the imagined frames are scored against the port's video
(PSNR, beside copying the start frame) as well as judged. What it measures is the world model and the judge
alone, on this policy's own actions, so a closed-loop gap can be told apart from a world model that does not
draw what those actions do.

A world model trained with `train.world_model_state=true` also takes the robot's state at each chunk's start
(`wm_state`): `read` (the default) has the judge read it off the newest frame, as for a state-conditioned policy;
`recorded` (replay only) gives it the state the port recorded there, an oracle that says how well the world model
draws an arm whose place it is told; `none` gives it the learned null state.
Writes `episodes.jsonl` (one line per imagined episode), `ranking.{json,md,png}`, `videos/` and, for a replay,
`replay_psnr.png` (PSNR against the port's video per frame).
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
from selfflow_robot.data.video_metrics import psnr
from selfflow_robot.envs.tasks import TASKS
from selfflow_robot.errors import ConfigError, UserError
from selfflow_robot.evaluation.config import EvalConfig
from selfflow_robot.evaluation.evaluate import EPISODES_FILE
from selfflow_robot.evaluation.imagination.judge import SuccessJudge, successes
from selfflow_robot.evaluation.imagination.ranking import (
    PolicyResult,
    mean_present,
    port_outcomes,
    port_records,
    replay_plot,
    write_ranking_report,
)
from selfflow_robot.evaluation.imagination.rollout import (
    ImaginedEpisodes,
    Start,
    imagine_episodes,
    read_starts,
    replay_episodes,
)
from selfflow_robot.evaluation.suites import plan_jobs
from selfflow_robot.files import atomic_write_bytes, check_writable_dir
from selfflow_robot.policies.config import PolicyConfig
from selfflow_robot.policies.policy import SelfFlowPolicy
from selfflow_robot.world_model.rollout import DECODINGS, StateReader, WorldModel
from selfflow_robot.world_model.video import compose_panels, write_video

WM_STATES = ("read", "recorded", "none")


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
        replay: feed the world model the actions each checkpoint executed in the port (open loop, from `port=`
            sweeps that record them, each episode as many steps as it ran there) instead of running the policy
            on imagined frames; `max_steps` and `policy_options` are then unused.
        wm_state: for a world model that takes the robot's state: `read` (the judge reads it off the newest
            frame), `recorded` (replay only: the port's recorded state, an oracle) or `none` (the null state).
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
    replay: bool = False
    wm_state: str = "read"
    videos: int = 2
    output_dir: str = "runs/imagine_eval"
    asset_root: str | None = None
    threads: int = 0

    def __post_init__(self) -> None:
        check_choice("wm_decode", self.wm_decode, list(DECODINGS))
        check_choice("wm_state", self.wm_state, list(WM_STATES))
        if self.wm_state == "recorded" and not self.replay:
            raise ConfigError("wm_state=recorded gives the world model the port's recorded states, which only a "
                              "replay has (replay=true); closed-loop episodes use wm_state=read or none")
        if self.replay and not self.port:
            raise ConfigError("replay=true replays the actions recorded in the port: give port=[EVAL_DIR,...]")


def _side_by_side(imagined: np.ndarray, port_video: str | None) -> np.ndarray:
    """The imagined frames beside the port's video of the same policy and start (resized, equal length)."""
    if port_video is None or not Path(port_video).is_file():
        return compose_panels([imagined], ["imagined"])
    real = resize_like_training(np.stack(imageio.mimread(port_video, memtest=False)), imagined.shape[1:3])
    n = max(len(real), len(imagined))
    pad = [np.concatenate([v, np.repeat(v[-1:], n - len(v), 0)]) for v in (imagined, real)]
    return compose_panels(pad, ["imagined", "port"])


def _recorded_actions(records: list[dict], starts: list[Start], name: str
                      ) -> tuple[list[np.ndarray], list[bool], list[np.ndarray] | None]:
    """Each start's executed actions, whether the policy ended the episode, and the robot state recorded with each
    frame (None when a record lacks it), from the port's records."""
    by_key = {(r["task"], int(r["episode"])): r for r in records if r.get("actions")}
    missing = [f"{st.task} {st.episode}" for st in starts if (st.task, st.episode) not in by_key]
    if missing:
        raise UserError(f"replay=true: {name} has no port record with actions for {len(missing)} of {len(starts)} "
                        f"episodes (e.g. {missing[0]}); sweeps record them since 2026-12-05: rerun "
                        f"`selfflow-robot eval` on this checkpoint, or narrow tasks/episodes")
    recs = [by_key[(st.task, st.episode)] for st in starts]
    states = ([np.asarray(r["tool_state"], np.float32) for r in recs]
              if all(len(r.get("tool_state") or []) == len(r["actions"]) + 1 for r in recs) else None)
    return ([np.asarray(r["actions"], np.float32) for r in recs], [bool(r.get("terminated_by_policy")) for r in recs],
            states)


def _replay_state(cfg: ImagineEvalConfig, wm: WorldModel, states: list[np.ndarray] | None,
                  reader: StateReader | None) -> dict[str, Any]:
    """`replay_episodes`' state keywords for `cfg.wm_state` (none for a world model without a state input)."""
    if not wm.takes_state:
        return {}
    if cfg.wm_state == "recorded":
        if states is None:
            raise UserError("wm_state=recorded: the port records lack the robot state per frame (tool_state); "
                            "rerun `selfflow-robot eval` on this checkpoint")
        return {"states": states}
    if reader is None:
        raise ConfigError("this world model takes the robot state: give a judge that reads it (trained on sweeps "
                          "that record tool_state), or wm_state=recorded / none")
    return {"state_reader": reader}


def replay_psnr(eps: ImaginedEpisodes, starts: list[Start], videos: dict) -> np.ndarray:
    """Per episode and frame after the start, `(B, 2, T)`: the imagined frame's and the start frame's PSNR (dB)
    against the port's video of the same actions; NaN past an episode's end, and for a whole episode whose video
    is missing or whose length does not match it."""
    out = np.full((len(starts), 2, eps.frames.shape[1] - 1), np.nan)
    for i, st in enumerate(starts):
        video, n = videos.get((st.task, st.episode)), int(eps.steps[i])
        if video is None or not Path(video).is_file():
            continue
        real = resize_like_training(np.stack(imageio.mimread(video, memtest=False)), eps.frames.shape[2:4])
        if len(real) != n + 1:
            continue
        out[i, 0, :n] = psnr(eps.frames[i, 1:n + 1], real[1:])
        out[i, 1, :n] = psnr(np.repeat(eps.frames[i, :1], n, axis=0), real[1:])
    return out


def _mean_psnr(fidelity: np.ndarray) -> tuple[float, float]:
    """(imagined, copy-start) PSNR averaged over the episodes that have a port video (NaN when none has)."""
    return tuple(mean_present(mean_present(fidelity, axis=-1), axis=0).tolist())


def _episode_lines(name: str, path: str, starts: list[Start], eps: ImaginedEpisodes, opening: np.ndarray,
                   success: np.ndarray, records: list[dict], fidelity: np.ndarray | None) -> list[dict]:
    port = {(r["task"], int(r["episode"])): r for r in records}
    lines = [{"checkpoint": name, "checkpoint_path": path, "task": st.task, "episode": st.episode,
              "instruction": st.instruction, "success": bool(success[i]), "judged_opening": round(float(opening[i]), 4),
              "steps": int(eps.steps[i]), "terminated_by_policy": bool(eps.terminated[i]),
              "port_success": port[(st.task, st.episode)]["success"] if (st.task, st.episode) in port else None,
              "port_opening": port.get((st.task, st.episode), {}).get("final_drawer_qpos")}
             for i, st in enumerate(starts)]
    if fidelity is not None:
        for line, (wm, copy) in zip(lines, mean_present(fidelity, axis=-1)):
            line.update(replay_psnr_db=None if np.isnan(wm) else round(float(wm), 3),
                        copy_start_psnr_db=None if np.isnan(copy) else round(float(copy), 3))
    return lines


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
    if cfg.wm_state == "none":
        wm.state_input = None   # the learned null state
    reader = judge.state if judge.cfg.state_dim else None
    keys = list(dict.fromkeys((j.task, j.episode) for j in jobs))
    starts = read_starts(keys, asset_root=cfg.asset_root)
    max_steps = cfg.max_steps or max(TASKS[t].max_episode_steps for t, _ in keys)
    options = {k: v for k, v in dict(cfg.policy_options).items() if v is not None}
    out = Path(cfg.output_dir)
    lines, results, curves = [], [], {}
    for name, path in ckpts.items():
        records = port_records(cfg.port, path)
        port, port_cpu = port_outcomes(records)
        videos = {(r["task"], int(r["episode"])): r["video"] for r in records if r.get("video")}
        t0 = time.process_time()
        if cfg.replay:
            actions, ended, states = _recorded_actions(records, starts, name)
            eps = replay_episodes(wm, starts, actions, terminated=ended, **_replay_state(cfg, wm, states, reader))
        else:
            policy = SelfFlowPolicy.from_pretrained(path, **options)
            eps = imagine_episodes(wm, policy, starts, max_steps=max_steps, state_reader=reader)
        tasks = [st.task for st in starts]
        opening = judge.opening(eps.last_frames(), tasks)
        success = successes(tasks, opening)
        cpu = time.process_time() - t0
        fidelity = replay_psnr(eps, starts, videos) if cfg.replay else None
        if fidelity is not None:
            curves[name] = fidelity
        lines += _episode_lines(name, path, starts, eps, opening, success, records, fidelity)
        results.append(PolicyResult(name, path, {(st.task, st.episode): bool(s) for st, s in zip(starts, success)},
                                    port, cpu, port_cpu,
                                    None if fidelity is None else _mean_psnr(fidelity)))
        for j in sorted(set(np.linspace(0, len(starts) - 1, cfg.videos).astype(int).tolist())) if cfg.videos else []:
            st = starts[j]
            clip = _side_by_side(eps.frames[j, :eps.steps[j] + 1], videos.get((st.task, st.episode)))
            tag = "success" if success[j] else "failure"
            write_video(out / "videos" / name / f"{st.task}_ep{st.episode:03d}_imagined_{tag}.mp4", clip, fps=5)
        psnr_note = "" if fidelity is None else (f", replay {results[-1].replay_psnr[0]:.2f} dB against the port's "
                                                 f"video (copying the start: {results[-1].replay_psnr[1]:.2f} dB)")
        print(f"{name}: imagined {int(success.sum())}/{len(success)} successes, {cpu:.0f} CPU s{psnr_note}")
    atomic_write_bytes(out / EPISODES_FILE, "".join(json.dumps(x) + "\n" for x in lines).encode())
    paths = write_ranking_report(results, out)
    if curves:
        paths["replay_plot"] = replay_plot(curves, out / "replay_psnr.png")
    return {"paths": paths, "results": results, "episodes": lines}


def main(cfg: DictConfig) -> int:
    """Entry point of `selfflow-robot imagine-eval` (configs/imagine_eval.yaml)."""
    conf = structured(ImagineEvalConfig, cfg)
    check_writable_dir(conf.output_dir)
    result = imagine_eval(conf)
    print(Path(result["paths"]["table"]).read_text())
    print("\n".join(f"{k}: {v}" for k, v in result["paths"].items()))
    return 0
