"""`selfflow-robot eval`: planning, resume, reports, and the expert-as-policy on the real ManiSkill3 port."""
import json
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from selfflow_robot.config import load_config
from selfflow_robot.envs.collect import expert_success
from selfflow_robot.envs.tasks import make_env
from selfflow_robot.errors import ConfigError, UserError
from selfflow_robot.evaluation import evaluate as ev
from selfflow_robot.evaluation import suites
from selfflow_robot.evaluation.config import EvalConfig, config_from_overrides


def _cfg(*overrides: str) -> EvalConfig:
    return config_from_overrides(list(overrides))


def test_plan_covers_suite_x_checkpoints_and_subsets(eval_ckpt, tmp_path):
    other = tmp_path / "other_run"
    other.mkdir()
    cfg = _cfg(f"ckpt=[{eval_ckpt},{other}]", "max_episodes=2")
    jobs, ckpts = suites.plan_jobs(cfg)
    assert len(jobs) == 2 * 6 * 2                        # 2 checkpoints x 6 drawer tasks x 2 episodes
    assert list(ckpts) == ["tinyrun_step-0000001", "other_run"]
    assert {j.episode for j in jobs} == {0, 1}
    jobs, _ = suites.plan_jobs(_cfg("policy=expert", "suite=apple_visual_matching", "episodes=[107,3,3]"))
    assert [(j.checkpoint, j.task, j.episode) for j in jobs] == [
        ("expert", "place_apple_in_closed_top_drawer", 3), ("expert", "place_apple_in_closed_top_drawer", 107)]
    assert len(suites.plan_jobs(_cfg("policy=expert"))[0]) == 216   # the full drawer visual-matching sweep
    assert suites.checkpoint_list("a, b,") == ["a", "b"]
    # two runs that are both called `run` get the folder above them in their names
    assert suites.checkpoint_names(["x/demo/run/checkpoints/step-0002000", "x/seed1/run/checkpoints/step-0002000",
                                    "x/seed1/run/checkpoints/step-0001000"]) == [
        "demo_run_step-0002000", "seed1_run_step-0002000", "run_step-0001000"]


def test_bad_configs_say_what_and_how(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'drawer_visual_matching'"):
        suites.plan_jobs(_cfg("policy=expert", "suite=drawer_visual_matchin"))
    with pytest.raises(ConfigError, match="outside the 36-episode grid"):
        suites.plan_jobs(_cfg("policy=expert", "episodes=[36]"))
    with pytest.raises(ConfigError, match="task of suite"):
        suites.plan_jobs(_cfg("policy=expert", "tasks=[place_apple_in_closed_top_drawer]"))
    with pytest.raises(ConfigError, match="needs a checkpoint"):
        suites.plan_jobs(_cfg())
    with pytest.raises(UserError, match="does not exist"):
        suites.plan_jobs(_cfg(f"ckpt={tmp_path / 'nope'}"))
    with pytest.raises(ConfigError, match="policy must be one of"):
        _cfg("policy=random")


def test_torn_last_line_is_ignored(tmp_path):
    log = tmp_path / "episodes.jsonl"
    log.write_text(json.dumps({"checkpoint": "a", "task": "open_top_drawer", "episode": 0, "success": True})
                   + "\n" + '{"checkpoint": "a", "ta')
    assert len(ev.read_records(log)) == 1


def test_report_of_a_simpler_results_folder(tmp_path):
    d = (tmp_path / "res" / "ck" / "dummy_drawer" / "arm_mode" / "OpenTopDrawerCustomInScene-v0_urdf_version_None"
         / "rob_0.644_-0.179_rot_0.000_-0.000_3.112_rgb_overlay_open_drawer_a0")
    d.mkdir(parents=True)
    (d / "success_obj_0.0_0.0_qpos_0.2.mp4").write_bytes(b"")
    (d / "failure_obj_0.0_0.0_qpos_0.1.mp4").write_bytes(b"")
    overrides = [f"simpler_results={tmp_path / 'res'}", f"output_dir={tmp_path / 'o'}"]
    assert ev.main(load_config("eval", overrides, schema=EvalConfig)) == 0
    res = json.loads((tmp_path / "o" / "results.json").read_text())
    assert res["checkpoints"]["ck"]["sub_cells"]["open_drawer"]["rate"] == 0.5
    with pytest.raises(UserError, match="no SimplerEnv result videos"):
        ev.report_simpler(_cfg(f"simpler_results={tmp_path / 'o'}"))


@pytest.mark.slow
@pytest.mark.sim
def test_checkpoint_sweep_writes_videos_report_and_resumes(eval_ckpt, tmp_path, sim_assets):
    assets = sim_assets
    base = [f"ckpt={eval_ckpt}", "tasks=[close_top_drawer]", f"asset_root={assets}", f"output_dir={tmp_path}",
            "workers=1", "policy_options.steps=2"]
    first = ev.run_sweep(_cfg(*base, "episodes=[4]"))
    assert first["ran"] == 1 and first["skipped"] == 0
    rec = first["records"][0]
    assert rec["task"] == "close_top_drawer" and rec["episode"] == 4 and rec["overlay_id"] == "b1"
    video = Path(rec["video"])
    assert video.is_file() and video.stat().st_size > 0
    assert video.name.startswith("success_" if rec["success"] else "failure_")
    # the drawer's opening per video frame (reset + every step): what the imagination judge learns from
    assert len(rec["drawer_qpos"]) == rec["steps"] + 1 == len(imageio.mimread(video, memtest=False))
    assert rec["drawer_qpos"][0] == pytest.approx(0.2, abs=0.01) and rec["drawer_qpos"][-1] == rec["final_drawer_qpos"]
    # and the robot's state per frame (tool pose in the base frame + gripper): where the tool went
    assert len(rec["tool_state"]) == len(rec["drawer_qpos"]) and {len(s) for s in rec["tool_state"]} == {8}
    assert rec["tool_state"][0] != rec["tool_state"][-1]
    # and each executed action (what a replay in the world model feeds it)
    assert np.asarray(rec["actions"]).shape == (rec["steps"], 7) and np.abs(rec["actions"]).sum() > 0
    for name in ("results.json", "results.md", "success.png"):
        assert (tmp_path / name).is_file()
    # resume: episode 4 is recorded, only episode 13 runs now
    second = ev.run_sweep(_cfg(*base, "episodes=[4,13]"))
    assert second["ran"] == 1 and second["skipped"] == 1
    lines = [json.loads(x) for x in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert [r["episode"] for r in lines] == [4, 13]
    res = json.loads((tmp_path / "results.json").read_text())
    assert res["checkpoints"]["tinyrun_step-0000001"]["sub_cells"]["close_drawer"]["trials"] == 2
    # every record keeps its policy options; resuming with others would mix two settings: refused, nothing run
    assert {json.dumps(r["policy_options"]) for r in lines} == {json.dumps({"steps": 2})}
    other = [a.replace("policy_options.steps=2", "policy_options.steps=3") for a in base]
    with pytest.raises(UserError, match=r"2 of the episodes .* policy options \{'steps': 2\}, this run asks for "
                                        r"\{'steps': 3\}"):
        ev.run_sweep(_cfg(*other, "episodes=[4,13]"))
    # resume=false keeps the old records beside the new run instead of deleting them
    third = ev.run_sweep(_cfg(*base, "episodes=[4]", "resume=false", "video=false"))
    assert third["ran"] == 1
    assert len(list(tmp_path.glob("episodes.*.jsonl"))) == 1


@pytest.mark.sim
def test_state_conditioned_checkpoint_gets_the_robot_state(eval_state_ckpt, tmp_path, sim_assets):
    """A checkpoint with proprioception runs in the sweep: each step hands it `envs.tasks.robot_state`
    (without it the policy refuses to act)."""
    out = ev.run_sweep(_cfg(f"ckpt={eval_state_ckpt}", "tasks=[close_top_drawer]", f"asset_root={sim_assets}",
                            f"output_dir={tmp_path / 'eval'}", "workers=1", "policy_options.steps=1",
                            "episodes=[0]", "video=false"))
    assert out["ran"] == 1 and out["records"][0]["steps"] > 1


def _expert_episode(task: str, episode: int, assets: str) -> bool:
    """The expert's own outcome, as the sim side measures it (`envs.collect.expert_success`, no rendering)."""
    make_expert = pytest.importorskip("selfflow_robot.envs.experts").make_expert   # a simulator-only module
    env = make_env(task, asset_root=assets, obs_mode="none")
    try:
        return expert_success(env, make_expert(task), episode)
    finally:
        env.close()


@pytest.mark.slow
@pytest.mark.sim
def test_eval_of_the_expert_as_policy_reproduces_its_success(tmp_path, sim_assets):
    assets = sim_assets
    cases = [(t, e) for t in ("open_middle_drawer", "close_bottom_drawer") for e in (0, 20)]
    out = ev.run_sweep(_cfg("policy=expert", "tasks=[open_middle_drawer,close_bottom_drawer]", "episodes=[0,20]",
                            f"asset_root={assets}", f"output_dir={tmp_path}", "workers=2", "video=false"))
    got = {(r["task"], r["episode"]): r["success"] for r in out["records"]}
    assert len(got) == 4
    for task, episode in cases:
        assert got[(task, episode)] == _expert_episode(task, episode, assets), (task, episode)


def test_resuming_refuses_episodes_of_other_or_unknown_policy_options(tmp_path):
    key = ("ck", "open_top_drawer", 0)
    rec = {"checkpoint": "ck", "task": "open_top_drawer", "episode": 0, "success": True}
    ev.check_resumable([{**rec, "policy_options": {"steps": 2}}], {key}, {"steps": 2}, tmp_path)   # same: fine
    ev.check_resumable([{**rec, "episode": 5}], {key}, {"steps": 2}, tmp_path)   # not part of this sweep: fine
    with pytest.raises(UserError, match="not recorded"):
        ev.check_resumable([rec], {key}, {"steps": 2}, tmp_path)
    with pytest.raises(UserError, match="resume=false"):
        ev.check_resumable([{**rec, "policy_options": {}}], {key}, {"steps": 2}, tmp_path)
    assert ev.policy_options(_cfg("policy=expert", "policy_options.steps=5")) == {}
