"""The Self-Flow vs vanilla study: its maths on hand-made metrics, its report on hand-made arms, and the
script end to end at CI size (1 seed x 2 objectives, real collect/train/eval/imagine)."""
from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from script_module import load_script

from selfflow_robot.config import load_config, structured
from selfflow_robot.errors import DataError, UserError
from selfflow_robot.experiments.demo.config import DemoConfig
from selfflow_robot.experiments.study import arms as study_arms
from selfflow_robot.experiments.study import cli as study_cli
from selfflow_robot.experiments.study import config as study_config
from selfflow_robot.experiments.study import demos as study_demos
from selfflow_robot.experiments.study import report as study_report
from selfflow_robot.experiments.study import results as study_results
from selfflow_robot.experiments.study import run as study_run

REPO = Path(__file__).resolve().parents[2]


def _script():
    return load_script(REPO / "scripts" / "study_selfflow_vs_vanilla.py", "study_script")


# ---------------------------------------------------------------------------------------------------------------
# The maths
# ---------------------------------------------------------------------------------------------------------------

def _curve(pairs):
    return [{"step": s, "mean": v} for s, v in pairs]


def test_steps_to_reach_first_step_at_least_as_good_no_interpolation() -> None:
    c = _curve([(250, 0.9), (500, 0.5), (750, 0.31), (1000, 0.2)])
    r = study_results.steps_to_reach(c, 0.3, higher_is_better=False, total_steps=2000)
    # 0.3 lies between steps 750 (0.31) and 1000 (0.2): the answer is 1000, never an interpolated 770-odd
    assert r["reached"] and r["step"] == 1000 and r["ratio"] == 0.5 and r["value"] == 0.2
    r = study_results.steps_to_reach(c, 0.5, higher_is_better=False, total_steps=2000)
    assert r["step"] == 500 and r["ratio"] == 0.25  # equal counts as reached
    r = study_results.steps_to_reach(c, 0.1, higher_is_better=False, total_steps=2000)
    assert not r["reached"] and r["step"] is None and r["ratio"] is None
    # PSNR: higher is better
    p = _curve([(250, 20.0), (500, 24.0), (750, 23.0)])
    assert study_results.steps_to_reach(p, 22.5, higher_is_better=True, total_steps=1000)["step"] == 500
    assert not study_results.steps_to_reach(p, 25.0, higher_is_better=True, total_steps=1000)["reached"]


def test_seed_mean_curve_uses_the_steps_every_seed_has() -> None:
    a = [(250, 1.0), (500, 0.6), (750, 0.4)]
    b = [(250, 3.0), (500, 0.8)]          # an unfinished seed cuts the mean curve at 500
    m = study_results.seed_mean_curve([a, b, []])  # a seed without validation rows is left out
    assert [r["step"] for r in m] == [250, 500]
    assert m[0]["mean"] == pytest.approx(2.0) and m[0]["std"] == pytest.approx(math.sqrt(2.0))
    assert m[1]["mean"] == pytest.approx(0.7) and m[1]["seeds"] == 2
    assert study_results.mean_std([5.0]) == (5.0, 0.0)
    assert study_results.seed_mean_curve([]) == []


def test_validation_rows_dedupe_and_parse_nonfinite() -> None:
    rows = [{"step": 10, "loss/total": 1.0}, {"step": 250, "val/action_mse_norm": 0.5},
            {"step": 250, "val/action_mse_norm": 0.4}, {"step": 500, "val/action_mse_norm": "nan"}]
    v = study_arms.validation_rows(rows)
    assert [r["step"] for r in v] == [250, 500]
    assert v[0]["val/action_mse_norm"] == 0.4 and math.isnan(v[1]["val/action_mse_norm"])


def test_pooled_success_sums_counts_over_seeds_with_wilson() -> None:
    a = study_arms.ArmResult("selfflow-seed0", "selfflow", 0, "x", task_counts={"close_top_drawer": [2, 5],
                                                                                "open_top_drawer": [0, 5]})
    b = study_arms.ArmResult("selfflow-seed1", "selfflow", 1, "y", task_counts={"close_top_drawer": [1, 5]})
    s = study_results.success_summary([a, b])
    close = s["tasks"]["close_top_drawer"]
    assert (close["successes"], close["trials"]) == (3, 10) and close["rate"] == pytest.approx(0.3)
    # Wilson 95% of 3/10, worked by hand: centre 0.3555, half-width 0.2477
    assert close["ci95"] == pytest.approx([0.1078, 0.6032], abs=1e-4)
    mean = s["mean_over_tasks"]  # plain mean of task rates (0.3 and 0.0), Wilson on pooled 3/15
    assert mean["rate"] == pytest.approx(0.15) and (mean["successes"], mean["trials"]) == (3, 15)
    assert s["seeds"] == [0, 1]
    assert study_results.success_summary([study_arms.ArmResult("v", "vanilla", 0, "z")]) is None


# ---------------------------------------------------------------------------------------------------------------
# The comparison on hand-made arm directories
# ---------------------------------------------------------------------------------------------------------------

def make_arm(out: Path, objective: str, seed: int, mse: list[tuple[int, float]], psnr: list[tuple[int, float]],
             counts: dict[str, list[int]] | None, total: int = 1000, demos: Path | None = None,
             torn: bool = False) -> Path:
    """An arm dir as `selfflow-robot demo` leaves it: demo_config.json, run/metrics.jsonl, checkpoints, eval."""
    arm = out / study_config.arm_name(objective, seed)
    (arm / "run").mkdir(parents=True)
    _, cfg = study_config.demo_config([f"output_dir={arm}", f"objective={objective}", f"seed={seed}",
                                       f"steps={total}", "demos_per_task=2",
                                       'train_overrides=["model=tiny","train.val_every=250"]'])
    (arm / "demo_config.json").write_text(json.dumps(asdict(cfg)))
    lines = []
    for (s, m), (_, p) in zip(mse, psnr):
        lines.append(json.dumps({"step": s, "loss/total": 1.0}))
        lines.append(json.dumps({"step": s, "val/action_mse_norm": m, "val/action_mse_norm_1step": m / 2,
                                 "val/psnr": p, "val/psnr_1step": p + 1, "val/psnr_copy_last": 20.0,
                                 "val/action_mse_norm_mean_baseline": 1.0}))
    text = "\n".join(lines) + "\n" + ('{"step": 99' if torn else "")
    (arm / "run" / "metrics.jsonl").write_text(text)
    last = mse[-1][0] if mse else 0
    if last:
        (arm / "run" / "checkpoints" / f"step-{last:07d}").mkdir(parents=True)
    if counts is not None:
        (arm / "eval").mkdir()
        (arm / "eval" / "results.json").write_text(json.dumps({"checkpoints": {"run": {"tasks": {
            t: {"successes": k, "trials": n, "rate": k / n} for t, (k, n) in counts.items()}}}}))
    if demos is not None:
        study_demos.link_demos(arm, demos)
    return arm


def test_comparison_on_hand_made_arms(tmp_path) -> None:
    out = tmp_path / "study"
    demos = tmp_path / "demos"
    demos.mkdir()
    (demos / "collect.json").write_text("{}")
    steps = [250, 500, 750, 1000]
    # vanilla ends at mean action MSE 0.40; Self-Flow's seed mean is (0.45+0.35)/2 = 0.40 at step 500: ratio 0.5
    make_arm(out, "vanilla", 0, list(zip(steps, [0.9, 0.7, 0.5, 0.42])), list(zip(steps, [21, 22, 23, 24.0])),
             {"close_top_drawer": [2, 4], "open_top_drawer": [1, 4]}, demos=demos)
    make_arm(out, "vanilla", 1, list(zip(steps, [0.8, 0.6, 0.5, 0.38])), list(zip(steps, [21, 22, 23, 24.0])),
             {"close_top_drawer": [1, 4], "open_top_drawer": [0, 4]}, demos=demos)
    make_arm(out, "selfflow", 0, list(zip(steps, [0.7, 0.45, 0.3, 0.2])), list(zip(steps, [22, 23, 25, 26.0])),
             {"close_top_drawer": [4, 4], "open_top_drawer": [2, 4]}, demos=demos, torn=True)
    make_arm(out, "selfflow", 1, list(zip(steps, [0.7, 0.35, 0.3, 0.2])), list(zip(steps, [22, 23, 25, 26.0])),
             {"close_top_drawer": [4, 4], "open_top_drawer": [3, 4]}, demos=demos)
    report = tmp_path / "report"
    paths = study_report.write_study_report(out, [0, 1], ["selfflow", "vanilla"], report_dir=report)
    assert not (out / study_report.STUDY_JSON).exists()  # --report-dir: the study dir is only read
    doc = json.loads(paths["json"].read_text())   # strict JSON (no NaN)
    res = doc["result"]
    assert doc["partial"] is False and doc["settings_differ"] == {}
    r = res["steps_to_reach"]["action_mse_norm"]
    assert r["reached"] and r["step"] == 500 and r["ratio"] == 0.5 and r["target"] == pytest.approx(0.40)
    p = res["steps_to_reach"]["psnr"]  # vanilla final 24 dB, Self-Flow mean 25 at 750
    assert p["step"] == 750 and p["ratio"] == 0.75
    fv = res["objectives"]["vanilla"]["final_validation"]
    assert fv["per_seed"]["1"]["action_mse_norm"] == 0.38
    assert fv["mean"]["action_mse_norm"]["mean"] == pytest.approx(0.4)
    assert fv["mean"]["action_mse_norm"]["std"] == pytest.approx(np.std([0.42, 0.38], ddof=1))
    s = res["objectives"]["selfflow"]["success"]
    assert s["tasks"]["open_top_drawer"]["successes"] == 5 and s["mean_over_tasks"]["trials"] == 16
    assert res["goals"]["half_steps"]["verdict"] == "met"
    assert res["goals"]["success_ahead"]["verdict"] == "met"  # 13/16 vs 4/16
    assert res["goals"]["success_ahead"]["significant"] is True
    md = paths["md"].read_text()
    assert "PARTIAL" not in md and "Verdict: goal 1" in md and "**met**" in md
    assert "| close_top_drawer | 100.0% [" in md and "(8/8)" in md
    cmd = md.split("```\n")[1].split("\n")[0]
    assert f"--out {out.resolve()}" in cmd and "--seeds 0 1" in cmd and f"--demos {demos.resolve()}" in cmd
    assert "--steps 1000" in cmd and "--demos-per-task 2" in cmd
    # the command, parsed by the script, gives back the arms' settings
    args = study_cli.parse_args(shlex.split(cmd)[2:])
    assert args.out == out.resolve() and args.seeds == [0, 1] and args.demos == demos.resolve()
    _, again = study_config.demo_config(study_cli.shared_overrides(args))
    recorded = json.loads((out / "vanilla-seed0" / "demo_config.json").read_text())
    assert study_config.settings_of(again) == study_config.settings_of(recorded)
    for key in ("curves", "success"):
        with Image.open(paths[key]) as im:
            assert im.size[0] > 300 and np.asarray(im.convert("L")).std() > 5

    # a missing arm and a vanilla arm still training: partial, but the target stays that of the finished seeds
    make_arm(out, "vanilla", 2, [(250, 0.95)], [(250, 20.0)], None)
    doc = json.loads(study_report.write_study_report(out, [0, 1, 2, 3], ["selfflow", "vanilla"],
                                                   report_dir=report)["json"].read_text())
    van = doc["result"]["objectives"]["vanilla"]
    assert van["arms"]["vanilla-seed2"]["status"] == "partial" and van["arms"]["vanilla-seed3"]["status"] == "missing"
    assert doc["partial"] is True
    r = doc["result"]["steps_to_reach"]["action_mse_norm"]
    assert r["reference_step"] == 1000 and r["target"] == pytest.approx(0.40) and r["step"] == 500
    assert van["final_validation"]["seeds"] == [0, 1] and van["final_validation"]["mean"]["action_mse_norm"]["n"] == 2
    assert van["final_validation"]["per_seed"]["2"]["step"] == 250
    md = (report / study_report.STUDY_MD).read_text()
    assert "PARTIAL RESULTS" in md and "Provisional verdict" in md and "| vanilla | 2 | 250 (training) |" in md


def test_goals_undecided_until_the_reference_finishes(tmp_path) -> None:
    out = tmp_path / "study"
    # both arms still training (total 2000): vanilla's "final" is not known yet
    make_arm(out, "vanilla", 0, [(250, 0.9), (500, 0.6)], [(250, 20.0), (500, 21.0)], None, total=2000)
    make_arm(out, "selfflow", 0, [(250, 0.5), (500, 0.4)], [(250, 20.0), (500, 22.0)], None, total=2000)
    res = json.loads(study_report.write_study_report(out, [0], ["selfflow", "vanilla"])["json"].read_text())["result"]
    assert res["goals"]["half_steps"]["verdict"] == "undecided" and "not known" in res["goals"]["half_steps"]["why"]
    assert res["goals"]["success_ahead"]["verdict"] == "undecided"
    assert res["steps_to_reach"]["action_mse_norm"]["step"] == 250  # still computed, flagged not final
    assert res["steps_to_reach"]["action_mse_norm"]["reference_final"] is False
    # vanilla finished at 0.2; Self-Flow, still training, is past half its steps without reaching it: not met
    out2 = tmp_path / "study2"
    make_arm(out2, "vanilla", 0, [(1000, 0.5), (2000, 0.2)], [(1000, 20.0), (2000, 21.0)], {"close_top_drawer": [1, 2]},
             total=2000)
    make_arm(out2, "selfflow", 0, [(500, 0.5), (1000, 0.3)], [(500, 20.0), (1000, 22.0)], {"close_top_drawer": [2, 2]},
             total=2000)
    res = json.loads(study_report.write_study_report(out2, [0], ["selfflow", "vanilla"])["json"].read_text())["result"]
    assert res["goals"]["half_steps"]["verdict"] == "not met"
    # Self-Flow's evaluation (of an unfinished run) does not count as final
    assert res["objectives"]["selfflow"]["success_final"] is False
    assert res["goals"]["success_ahead"]["verdict"] == "undecided"


def test_an_eval_of_an_unfinished_run_is_stale_and_set_aside(tmp_path) -> None:
    out = tmp_path / "study"
    arm = make_arm(out, "selfflow", 0, [(500, 0.5), (1000, 0.3)], [(500, 20.0), (1000, 22.0)],
                   {"close_top_drawer": [2, 2]}, total=1000)
    (arm / "eval" / "episodes.jsonl").write_text(json.dumps({"checkpoint": "run", "task": "close_top_drawer",
                                                             "episode": 0, "success": True}) + "\n")
    weights = arm / "run" / "checkpoints" / "step-0001000" / "model.safetensors"
    weights.write_bytes(b"x")
    t = (arm / "eval" / "episodes.jsonl").stat().st_mtime
    os.utime(weights, (t + 60, t + 60))  # the final weights came after the episodes were scored
    assert study_arms.load_arm(arm, arm.name, "selfflow", 0).eval_status == "stale"
    res = json.loads(study_report.write_study_report(out, [0], ["selfflow"])["json"].read_text())["result"]
    assert res["objectives"]["selfflow"]["success_final"] is False
    assert "Evaluation `stale`" in (out / study_report.STUDY_MD).read_text()
    moved = study_run.set_aside_stale_eval(arm)
    assert moved is not None and (moved / "episodes.jsonl").is_file() and not (arm / "eval").exists()
    assert study_arms.load_arm(arm, arm.name, "selfflow", 0).eval_status == "missing"
    # scored after the final weights: complete, and left where it is
    (arm / "eval").mkdir()
    (arm / "eval" / "episodes.jsonl").write_text((moved / "episodes.jsonl").read_text())
    os.utime(weights, (t - 60, t - 60))
    os.utime(arm / "eval" / "episodes.jsonl", (t, t))
    assert not study_arms.eval_is_stale(arm) and study_run.set_aside_stale_eval(arm) is None


def test_goals_not_met_and_not_reached(tmp_path) -> None:
    out = tmp_path / "study"
    steps = [250, 500, 750, 1000]
    make_arm(out, "vanilla", 0, list(zip(steps, [0.9, 0.5, 0.3, 0.2])), list(zip(steps, [21, 22, 23, 24.0])),
             {"close_top_drawer": [3, 4]})
    make_arm(out, "selfflow", 0, list(zip(steps, [0.9, 0.6, 0.4, 0.25])), list(zip(steps, [21, 22, 23, 23.5])),
             {"close_top_drawer": [2, 4]})
    doc = json.loads(study_report.write_study_report(out, [0], ["selfflow", "vanilla"])["json"].read_text())
    g = doc["result"]["goals"]
    assert g["half_steps"]["verdict"] == "not met" and "has not reached" in g["half_steps"]["why"]
    assert g["success_ahead"]["verdict"] == "not met" and g["success_ahead"]["significant"] is False
    assert not doc["result"]["steps_to_reach"]["psnr"]["reached"]
    md = (out / study_report.STUDY_MD).read_text()
    assert "not reached (by step 1000)" in md and "**not met**" in md


def test_arms_with_different_settings_are_flagged(tmp_path) -> None:
    out = tmp_path / "study"
    make_arm(out, "vanilla", 0, [(250, 0.5)], [(250, 20.0)], None, total=1000)
    make_arm(out, "selfflow", 0, [(250, 0.5)], [(250, 20.0)], None, total=2000)
    doc = json.loads(study_report.write_study_report(out, [0], ["selfflow", "vanilla"])["json"].read_text())
    assert "steps" in doc["settings_differ"]
    assert "Warning: the arms' settings differ" in (out / study_report.STUDY_MD).read_text()


def test_compare_only_without_arms_and_bad_demos_are_user_errors(tmp_path, capsys) -> None:
    with pytest.raises(UserError, match="no arms under"):
        study_report.write_study_report(tmp_path, [0], ["selfflow", "vanilla"])
    with pytest.raises(DataError, match="collect.json"):
        study_demos.prepare_demos([], tmp_path, tmp_path / "nodemos")
    demos = tmp_path / "demos"
    demos.mkdir()
    (demos / "collect.json").write_text(json.dumps({"tasks": ["close_top_drawer"], "episodes": 3}))
    with pytest.raises(DataError, match="holds 3 demos"):
        study_demos.prepare_demos(["tasks=[close_top_drawer]", "demos_per_task=2"], tmp_path, demos)
    # a collect.json from before the noise option: noise-free demos, which a noisy study refuses
    with pytest.raises(DataError, match="action noise 0 m / 0 rad.*--set demo_noise_m=0"):
        study_demos.prepare_demos(["tasks=[close_top_drawer]", "demos_per_task=3", "demo_noise_m=0.015"], tmp_path,
                                  demos)
    clean = ["tasks=[close_top_drawer]", "demos_per_task=3", "demo_noise_m=0", "demo_noise_rad=0"]
    assert study_demos.prepare_demos(clean, tmp_path, demos) == demos.resolve()
    script = _script()
    assert script.main(["--out", str(tmp_path), "--compare-only"]) == 2
    assert "no arms under" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        script.main(["--out", str(tmp_path), "--set", "seed=3"])


def test_link_demos_refuses_other_data(tmp_path) -> None:
    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    d1.mkdir()
    d2.mkdir()
    arm = tmp_path / "study" / "selfflow-seed0"
    study_demos.link_demos(arm, d1)
    study_demos.link_demos(arm, d1)  # idempotent
    assert (arm / "demos").resolve() == d1.resolve()
    with pytest.raises(UserError, match="different data"):
        study_demos.link_demos(arm, d2)
    real = tmp_path / "study" / "vanilla-seed0" / "demos"
    real.mkdir(parents=True)
    with pytest.raises(UserError, match="real folder"):
        study_demos.link_demos(real.parent, d1)


def test_arms_run_elsewhere_are_left_alone(tmp_path) -> None:
    out = tmp_path / "study"
    demos = tmp_path / "demos"
    demos.mkdir()
    # selfflow-seed0: another study run holds its lock; vanilla-seed0: a `selfflow-robot demo` started by hand
    # from another working dir, with a relative output_dir
    (out / "selfflow-seed0").mkdir(parents=True)
    held = study_run.ArmLock(out / "selfflow-seed0")
    assert held.acquire()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "demo",
                              "output_dir=study/vanilla-seed0"], cwd=tmp_path)
    try:
        found = None
        for _ in range(200):  # until the child has exec'ed (its /proc cmdline is the parent's before that)
            found = study_run.process_running(out / "vanilla-seed0")
            if found is not None:
                break
            time.sleep(0.05)
        assert found is not None and found[0] == other.pid
        assert study_run.process_running(out / "selfflow-seed0") is None
        for parallel in (1, 2):
            status = study_run.run_arms(out, ["steps=6"], [0], ["selfflow", "vanilla"], demos, parallel=parallel)
            assert status["selfflow-seed0"].startswith("busy (another study run")
            assert status["vanilla-seed0"].startswith(f"busy (process {other.pid}")
        assert not (out / "vanilla-seed0" / "run").exists()  # nothing was started
    finally:
        other.kill()
        other.wait()
        held.release()
    assert study_run.process_running(out / "vanilla-seed0") is None
    lock = study_run.ArmLock(out / "selfflow-seed0")
    assert lock.acquire()  # released locks can be taken again
    lock.release()


def test_reproduce_command_round_trips_to_the_same_config() -> None:
    want = ['train_overrides=["model=tiny","model.image_size=[32,40]","train.val_every=3"]', "steps=6",
            "tasks=[close_top_drawer]", "demo_max_steps=14", "policy_options.steps=3", "lr=0.0003",
            "eval_episodes_per_task=1"]
    cfg = structured(DemoConfig, load_config("demo", want, schema=DemoConfig))
    defaults = structured(DemoConfig, load_config("demo", schema=DemoConfig))
    over = study_config.overrides_from_config(cfg, defaults)
    again = structured(DemoConfig, load_config("demo", over, schema=DemoConfig))
    assert study_config.settings_of(again) == study_config.settings_of(cfg)
    args = study_cli.parse_args(["--out", "x", "--steps", "6", "--set", "lr=0.0003"])
    assert study_cli.shared_overrides(args) == ["steps=6", "lr=0.0003"]


# ---------------------------------------------------------------------------------------------------------------
# End to end at CI size
# ---------------------------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.sim
def test_study_script_end_to_end_and_rerun_reuses_everything(tmp_path, sim_assets, capsys) -> None:
    out = tmp_path / "study"
    argv = ["--out", str(out), "--seeds", "0", "--demos-per-task", "2", "--steps", "6", "--batch-size", "4",
            "--eval-episodes-per-task", "1", "--workers", "1", "--set", "tasks=[close_top_drawer]",
            "--set", "demo_max_steps=14", "--set", "policy_options.steps=3", "--set", "imagine_length=4",
            "--set", 'codec_overrides=["steps=10","batch_size=8","codec.width=8"]', "--set", "codec_patch_size=1",
            "--set", ('train_overrides=["model=tiny","model.image_size=[32,40]",'
                     '"train.save_every=3","train.val_every=3"]'), "--set", f"assets={sim_assets}"]
    script = _script()
    assert script.main([*argv, "--parallel", "2"]) == 0  # both arms at once, as `selfflow-robot demo` processes
    assert "started arm vanilla-seed0" in capsys.readouterr().out
    for arm in ("selfflow-seed0", "vanilla-seed0"):
        assert "--- report done in" in (out / f"{arm}.log").read_text()
    assert json.loads((out / "demos" / "collect.json").read_text())["episodes"] == 2
    assert (out / "demos" / "codec" / "autoencoder.json").is_file()   # fit once, shared through the demos link
    for arm in ("selfflow-seed0", "vanilla-seed0"):
        assert (out / arm / "demos").is_symlink() and (out / arm / "demos").resolve() == (out / "demos").resolve()
        assert (out / arm / "run" / "checkpoints" / "step-0000006").is_dir()
        assert (out / arm / "report" / "report.md").is_file()
        cfg = json.loads((out / arm / "demo_config.json").read_text())
        assert cfg["objective"] == arm.split("-")[0] and cfg["seed"] == 0 and cfg["steps"] == 6
    doc = json.loads((out / study_report.STUDY_JSON).read_text())
    assert doc["partial"] is False and doc["settings_differ"] == {}
    for obj in ("selfflow", "vanilla"):
        o = doc["result"]["objectives"][obj]
        assert [r["step"] for r in o["curves"]["action_mse_norm"]] == [3, 6]
        assert o["success"]["tasks"]["close_top_drawer"]["trials"] == 1
        assert o["final_validation"]["per_seed"]["0"]["step"] == 6
    assert doc["result"]["goals"]["half_steps"]["verdict"] in ("met", "not met")
    md = (out / study_report.STUDY_MD).read_text()
    assert "Verdict: goal 1" in md and "Wilson" in md and "close_top_drawer" in md
    for png in (study_report.CURVES_PNG, study_report.SUCCESS_PNG):
        with Image.open(out / png) as im:
            assert im.size[0] > 300 and np.asarray(im.convert("L")).std() > 5

    # the printed command reproduces the study: rerunning it reuses the demos and both finished arms
    cmd = md.split("```\n")[1].split("\n")[0]
    assert "--steps 6" in cmd and "--demos-per-task 2" in cmd and "policy_options.steps=3" in cmd
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*/eval/episodes.jsonl")}
    assert script.main(argv) == 0
    text = capsys.readouterr().out
    assert text.count("reusing arm") == 2 and "##### arm" not in text
    # an arm without its report reruns in this process: every phase resumes, nothing is trained or scored again
    (out / "vanilla-seed0" / "report" / "report.md").unlink()
    assert script.main(argv) == 0
    text = capsys.readouterr().out
    assert "reusing arm selfflow-seed0" in text and "##### arm 1/1: vanilla-seed0" in text
    assert (out / "vanilla-seed0" / "report" / "report.md").is_file()
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/eval/episodes.jsonl")} == mtimes
    assert not list(out.glob("*/run/checkpoints/step-0000007*"))
