"""`selfflow-robot eval`: score checkpoints (or the scripted expert) on SIMPLER suites of the ManiSkill3 port.

    selfflow-robot eval ckpt=runs/demo suite=drawer_visual_matching
    selfflow-robot eval ckpt=[runs/a,runs/b] suite=apple_visual_matching workers=2
    selfflow-robot eval policy=expert suite=drawer_visual_matching max_episodes=9
    selfflow-robot eval ckpt=runs/demo suite=drawer_variant_agg variants=[base,darker]
    selfflow-robot eval simpler_results=results_simpler        # report a real-SimplerEnv sweep (scripts/simpler)

A sweep is suite x checkpoint: every task of the suite, every episode of its grid (or the subset
`episodes` / `max_episodes`), for every checkpoint. A variant-aggregation suite (`drawer_variant_agg`)
runs the scene variants whose assets are present (or `variants=[...]`), and reports under the
variant-aggregation protocol beside its published numbers. Episodes run in parallel worker
processes (`workers`, default: all cores). Each finished episode is one JSON line in
`<output_dir>/episodes.jsonl` (written by the parent, flushed and fsynced); a rerun with the same
`output_dir` skips the episodes already there (`resume=true`), and refuses to when they were scored with other
policy options (each record keeps its `policy_options`: a sweep never mixes two settings). Each episode also
leaves an mp4 under `<output_dir>/videos/<checkpoint>/<task>/`, named `success_...` or `failure_...`. At the end
(and from whatever is in episodes.jsonl) the report is written: `results.json`, `results.md` (beside
the published SIMPLER numbers) and `success.png`.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from tqdm import tqdm

from selfflow_robot.config import structured
from selfflow_robot.envs.tasks import suite_protocol
from selfflow_robot.errors import UserError
from selfflow_robot.evaluation.agents import EXPERT
from selfflow_robot.evaluation.config import EvalConfig
from selfflow_robot.evaluation.report import records_from_simpler_videos, write_eval_report
from selfflow_robot.evaluation.suites import plan_jobs, variant_selection
from selfflow_robot.evaluation.workers import WorkerSettings, run_jobs
from selfflow_robot.files import check_writable_dir

EPISODES_FILE = "episodes.jsonl"


def policy_options(cfg: EvalConfig) -> dict[str, Any]:
    """The `SelfFlowPolicy` options that were set (null = keep the policy's default; none for the expert)."""
    if cfg.policy == EXPERT:
        return {}
    return {k: v for k, v in dict(cfg.policy_options).items() if v is not None}


def record_key(r: dict) -> tuple[str, str, int]:
    """An episode record's (checkpoint, task, grid episode): what `EpisodeJob.key` names, and resuming matches on."""
    return r["checkpoint"], r["task"], int(r["episode"])


def check_resumable(records: Iterable[dict], wanted: set, options: dict[str, Any], log: Path) -> None:
    """Raise `UserError` when a record this sweep would keep was scored with other policy options than `options`
    (or before records kept them): resuming would mix two settings in one report."""
    other = [r for r in records if record_key(r) in wanted and r.get("policy_options") != options]
    if other:
        was = other[0].get("policy_options", "not recorded (scored before records kept them)")
        raise UserError(f"{log}: {len(other)} of the episodes this sweep would resume were scored with policy options "
                        f"{was}, this run asks for {options}: pass the same policy_options, choose another "
                        f"output_dir, or move the old episodes aside (resume=false does)")


def read_records(path: Path) -> list[dict]:
    """Records of an episodes.jsonl; a torn last line (crash mid-write) is ignored."""
    if not path.is_file():
        return []
    out = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def append_record(f: Any, record: dict) -> None:
    """One JSON line, flushed and fsynced so a finished episode survives a crash."""
    f.write(json.dumps(record) + "\n")
    f.flush()
    os.fsync(f.fileno())


def run_sweep(cfg: EvalConfig) -> dict[str, Any]:
    """Run (or resume) the sweep and write the report; returns the report paths and run counts."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    jobs, ckpts = plan_jobs(cfg)
    variants, left_out = variant_selection(cfg)
    if variants:
        print(f"variant aggregation: variants {variants}; left out: "
              + "; ".join(f"{k} ({v})" for k, v in left_out.items()))
    log = out / EPISODES_FILE
    if log.exists() and not cfg.resume:
        aside = log.with_name(f"episodes.{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
        os.replace(log, aside)   # never delete results: keep the old run beside the new one
        print(f"resume=false: previous episodes moved to {aside}")
    opts = policy_options(cfg)
    wanted = {j.key for j in jobs}
    prior = read_records(log)
    check_resumable(prior, wanted, opts, log)
    done = {record_key(r) for r in prior}
    todo = [j for j in jobs if j.key not in done]
    workers = cfg.workers or os.cpu_count() or 1
    settings = WorkerSettings(video_dir=str(out / "videos") if cfg.video else None, video_fps=cfg.video_fps,
                              asset_root=cfg.asset_root, overlay=cfg.overlay, render_backend=cfg.render_backend,
                              torch_threads=cfg.torch_threads, policy_options=opts)
    print(f"eval {cfg.suite}: {len(jobs)} episodes ({len(jobs) - len(todo)} already done, {len(todo)} to run) "
          f"on {min(workers, max(len(todo), 1))} worker(s) -> {out}")
    t0 = time.time()
    n_run = 0
    with open(log, "a") as f, tqdm(total=len(todo), desc="episodes", unit="ep", dynamic_ncols=True) as bar:
        ok = sum(1 for r in prior if record_key(r) in wanted and r["success"])
        for rec in run_jobs(todo, settings, workers):
            rec = {**rec, "policy_options": opts}
            append_record(f, rec)
            n_run += 1
            ok += int(rec["success"])
            bar.update(1)
            bar.set_postfix(success=f"{ok}/{len(jobs) - len(todo) + n_run}")
    records = [r for r in read_records(log) if record_key(r) in wanted]
    extra = {"simulator": cfg.simulator, "policy": cfg.policy, "workers": workers, "episodes_run_now": n_run,
             "seconds_now": round(time.time() - t0, 1), "policy_options": opts, "overlay": cfg.overlay}
    if variants:
        extra.update(overlay=False, variants=variants, variants_left_out=left_out)
    paths = write_eval_report(records, out, suite=cfg.suite, protocol=suite_protocol(cfg.suite),
                              checkpoints=ckpts, extra=extra)
    return {"paths": paths, "ran": n_run, "skipped": len(jobs) - len(todo), "records": records}


def report_simpler(cfg: EvalConfig) -> dict[str, Any]:
    """Report a real-SimplerEnv results folder (mp4 names) with the same tables and plot."""
    src = Path(cfg.simpler_results)  # type: ignore[arg-type]
    records = records_from_simpler_videos(src)
    if not records:
        raise UserError(f"no SimplerEnv result videos (success_*.mp4 / failure_*.mp4) under {src}; "
                        "point simpler_results= at the LOGGING_DIR of a scripts/simpler sweep")
    paths = write_eval_report(records, cfg.output_dir, suite="simpler_env",
                              extra={"simulator": "simpler_env", "source": str(src)})
    return {"paths": paths, "ran": 0, "skipped": len(records), "records": records}


def main(cfg: DictConfig) -> int:
    """Entry point of `selfflow-robot eval` (configs/eval.yaml)."""
    conf = structured(EvalConfig, cfg)
    check_writable_dir(conf.output_dir)
    result = report_simpler(conf) if conf.simpler_results else run_sweep(conf)
    table = Path(result["paths"]["table"]).read_text()
    print(table)
    print("\n".join(f"{k}: {v}" for k, v in result["paths"].items()))
    return 0


def summarize_success(records: Iterable[dict]) -> dict[str, tuple[int, int]]:
    """(successes, episodes) per task of some records (for scripts and tests)."""
    out: dict[str, list[int]] = {}
    for r in records:
        c = out.setdefault(r["task"], [0, 0])
        c[0] += int(bool(r["success"]))
        c[1] += 1
    return {k: (v[0], v[1]) for k, v in out.items()}
