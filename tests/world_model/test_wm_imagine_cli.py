"""`selfflow-robot imagine`: held-out episode -> mp4 + gif + per-step PSNR/SSIM vs copy-last-frame;
actions from files; clear errors."""
from __future__ import annotations

import json
from dataclasses import replace

import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

from selfflow_robot.checkpoint import load_run_config
from selfflow_robot.cli import main as cli
from selfflow_robot.config import structured
from selfflow_robot.data.dataset import split_episodes
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.data.video_metrics import psnr
from selfflow_robot.errors import ConfigError
from selfflow_robot.world_model.cli import (
    ImagineConfig,
    imagine,
    load_actions_file,
    load_episode,
    mean_over_episodes,
    next_other_task,
)
from selfflow_robot.world_model.rollout import WorldModel


def test_imagine_on_a_held_out_episode_writes_videos_and_metrics(wm_ckpt, wm_data, wm_val_fraction, tmp_path,
                                                                capsys):
    out = tmp_path / "imagine"
    rc = cli(["imagine", f"ckpt={wm_ckpt.parent.parent}", f"data.path={wm_data}", "steps=2", "length=5",
              f"output_dir={out}"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "PSNR copy-last" in text and "mean" in text
    val_ids = split_episodes(RLDSReader(wm_data).episode_ids, wm_val_fraction, 0)["val"]
    stem = f"episode{val_ids[0]}_start0"
    assert (out / f"{stem}.mp4").stat().st_size > 0 and (out / f"{stem}.gif").stat().st_size > 0
    result = json.loads((out / f"{stem}_metrics.json").read_text())
    m = result["metrics"]
    assert len(m["psnr"]) == 5 and len(m["ssim_copy_last"]) == 5
    assert all(np.isfinite(m["psnr"])) and all(-1 <= s <= 1 for s in m["ssim"])

    assert sum(1 for _ in imageio.get_reader(out / f"{stem}.mp4")) == 2 + 5  # k context frames + 5 predicted


def test_imagine_with_actions_from_a_file_and_context_images(wm_ckpt, tmp_path, capsys):
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"actions": [[0.01, 0, 0, 0, 0, 0, 0]] * 3, "terminate": [0, 0, 1]}))
    img = tmp_path / "now.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 320, 3), dtype=np.uint8)).save(img)
    rc = cli(["imagine", f"ckpt={wm_ckpt}", f"actions={plan}", f"context={img}", "instruction=pick coke can",
              "steps=1", f"output_dir={tmp_path / 'o'}"])
    assert rc == 0
    assert "no ground truth" in capsys.readouterr().out
    assert (tmp_path / "o" / "plan.mp4").is_file() and (tmp_path / "o" / "plan.gif").is_file()


def test_action_file_formats(tmp_path):
    np.save(tmp_path / "a.npy", np.ones((4, 8), np.float32))
    acts, term = load_actions_file(tmp_path / "a.npy")
    assert acts.shape == (4, 7) and term.tolist() == [1, 1, 1, 1]
    (tmp_path / "b.json").write_text(json.dumps([[0] * 7, [1] * 7]))
    acts, term = load_actions_file(tmp_path / "b.json")
    assert acts.shape == (2, 7) and term.tolist() == [0, 0]


@pytest.mark.parametrize("args, match", [
    ([], "needs ckpt"),
    (["ckpt=/nonexistent", "data.path=DATA"], "does not exist"),
    (["ckpt=CKPT", "data.path=DATA", "actions=ACTS"], "expected a (T, 7)"),
    (["ckpt=CKPT"], "needs an episode"),
    (["ckpt=CKPT", "actions=ACTS"], "context=IMAGE"),
    (["ckpt=CKPT", "data.path=DATA", "data.episode=99"], "out of range"),
    (["ckpt=CKPT", "data.path=DATA", "sampler=heun"], "sampler"),
])
def test_imagine_errors_are_one_line_user_errors(wm_ckpt, wm_data, tmp_path, capsys, args, match):
    np.save(tmp_path / "acts.npy", np.zeros((3, 5), np.float32))
    args = [a.replace("CKPT", str(wm_ckpt)).replace("DATA", str(wm_data)).replace("ACTS", str(tmp_path / "acts.npy"))
            for a in args]
    assert cli(["imagine", *args]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err


def test_imagine_over_several_held_out_episodes_averages_per_step(wm_ckpt, wm_data, tmp_path, capsys):
    out = tmp_path / "many"
    rc = cli(["imagine", f"ckpt={wm_ckpt}", f"data.path={wm_data}", "data.num_episodes=0", "steps=1", "length=3",
              f"output_dir={out}"])
    assert rc == 0
    summary = json.loads((out / "summary_metrics.json").read_text())
    assert len(summary["episodes"]) == 2  # 8 episodes, val_fraction 0.25
    assert summary["metrics"]["count"] == [2.0, 2.0, 2.0]
    per = [json.loads((out / f"{label}_metrics.json").read_text())["metrics"] for label in summary["episodes"]]
    assert summary["metrics"]["psnr"][0] == pytest.approx((per[0]["psnr"][0] + per[1]["psnr"][0]) / 2)
    assert len(list(out.glob("*.mp4"))) == 2
    assert "mean over 2 episodes" in capsys.readouterr().out


def test_mean_over_episodes_handles_ragged_lengths():
    a = {"psnr": [10.0, 20.0, 30.0], "ssim": [0.1, 0.2, 0.3]}
    b = {"psnr": [20.0], "ssim": [0.3]}
    m = mean_over_episodes([a, b])
    assert m["psnr"] == [15.0, 20.0, 30.0] and m["count"] == [2.0, 1.0, 1.0]
    assert m["ssim"][0] == pytest.approx(0.2)


def test_action_control_rolls_out_the_next_episodes_actions_from_the_same_context(wm_ckpt, wm_data, tmp_path,
                                                                                  capsys):
    out = tmp_path / "control"
    assert cli(["imagine", f"ckpt={wm_ckpt}", f"data.path={wm_data}", "data.num_episodes=0", "steps=1", "length=3",
                "action_control=true", f"output_dir={out}"]) == 0
    assert "PSNR other actions" in capsys.readouterr().out
    summary = json.loads((out / "summary_metrics.json").read_text())
    first = json.loads((out / f"{summary['episodes'][0]}_metrics.json").read_text())["metrics"]
    # the same rollout by hand: episode 0's context and real frames, episode 1's first three actions
    wm = WorldModel.from_pretrained(wm_ckpt, steps=1, seed=0)
    cfg = structured(ImagineConfig, {"ckpt": str(wm_ckpt), "length": 3, "data": {"path": str(wm_data)}})
    run_cfg = load_run_config(wm.source)
    own = load_episode(cfg, run_cfg, wm.image_size, wm.k)
    other = load_episode(replace(cfg, data=replace(cfg.data, episode=1)), run_cfg, wm.image_size, wm.k)
    pred = wm.rollout(own.context, other.actions, terminate=other.terminate, instruction=own.instruction,
                      text=own.text)
    assert first["psnr_other_actions"] == pytest.approx(psnr(pred, own.truth.astype(np.float32) / 255).tolist())
    assert first["psnr_other_actions"] != first["psnr"]  # another rollout (an untrained model barely differs)
    assert len(summary["metrics"]["psnr_other_actions"]) == 3


def test_the_action_control_takes_the_next_episode_of_another_task():
    def pick(here, tasks):
        return next_other_task(here, len(tasks), tasks.__getitem__)
    assert pick(0, ["open", "open", "close", "open"]) == 2
    assert pick(3, ["open", "open", "close", "open"]) == 2    # wraps around
    assert pick(2, ["open", "open", "close", "open"]) == 3
    assert pick(1, ["open", "open", "open"]) == 2              # one task: simply the next episode


def test_imagine_gives_a_world_model_that_takes_the_state_the_episodes_recorded_state(wm_state_ckpt, wm_data,
                                                                                      tmp_path, capsys):
    """wm_state=recorded (the default for such a model) reads the episode's state at each chunk's start; the control
    run pairs the other episode's actions with its own states; files replace the episode: wm_state=none."""
    runs = {}
    for s in ("recorded", "none"):
        assert cli(["imagine", f"ckpt={wm_state_ckpt}", f"data.path={wm_data}", "steps=1", "length=6",
                    "action_control=true", f"wm_state={s}", f"output_dir={tmp_path / s}"]) == 0
        runs[s] = json.loads(next((tmp_path / s).glob("*_metrics.json")).read_text())["metrics"]
    assert runs["recorded"]["psnr"] != runs["none"]["psnr"] and len(runs["recorded"]["psnr_other_actions"]) == 6
    img = tmp_path / "now.png"
    Image.fromarray(np.zeros((256, 320, 3), np.uint8)).save(img)
    with pytest.raises(ConfigError, match="wm_state=none"):
        imagine(structured(ImagineConfig, {"ckpt": str(wm_state_ckpt), "data": {"path": str(wm_data)},
                                           "context": str(img), "steps": 1, "output_dir": str(tmp_path / "f")}))
