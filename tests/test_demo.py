"""The README's main command, `selfflow-robot demo`, end to end at CI size: every artefact produced and valid."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from selfflow_robot import checkpoint as ck
from selfflow_robot.cli import main
from selfflow_robot.config import load_config, structured
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.errors import ConfigError
from selfflow_robot.experiments.demo.config import DemoConfig

TASK = "close_top_drawer"
CI_SIZE = [f"tasks=[{TASK}]", "demos_per_task=3", "demo_max_steps=14", "workers=1", "steps=6", "batch_size=4",
           "eval_episodes_per_task=1", "imagine_length=4", "policy_options.steps=2",
           'codec_overrides=["steps=20","batch_size=8","codec.width=8"]', "codec_patch_size=1",
           ('train_overrides=["model=tiny","model.image_size=[32,40]","train.save_every=3",'
            '"train.val_every=3"]')]


def _links(md: str) -> list[str]:
    return re.findall(r"\]\(([^)]+)\)", md)


@pytest.mark.slow
@pytest.mark.sim
def test_demo_runs_end_to_end_and_resumes(tmp_path, sim_assets, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    args = ["demo", f"output_dir={out}", f"assets={sim_assets}", *CI_SIZE]
    assert main(args) == 0
    text = capsys.readouterr().out
    for phase in ("collect", "codec", "train", "eval", "imagine", "report"):
        assert f"--- {phase} done in" in text
    assert "done in" in text.splitlines()[-1]

    # demos: real RT-1 RLDS the reader reads back
    collect = json.loads((out / "demos" / "collect.json").read_text())
    assert collect["episodes"] == 3 and collect["tasks"] == [TASK]
    reader = RLDSReader(out / "demos")
    assert len(reader) == 3 and len(reader.read(0)) == 14 and reader.read(0).instruction == "close top drawer"

    # the autoencoder, fit to the demos; training read its latents from the run's cache
    assert (out / "demos" / "codec" / "autoencoder.json").is_file()
    assert (out / "run" / "latent_cache" / "manifest.json").is_file()
    # training: checkpoints and validation metrics
    assert list((out / "run" / "checkpoints").glob("step-0000006/model.safetensors"))
    run_cfg = ck.load_run_config(out / "run" / "checkpoints" / "step-0000006")
    assert run_cfg.model.codec == "ae" and run_cfg.model.vae == str(out / "demos" / "codec")
    # evaluation: one scored episode with its video
    results = json.loads((out / "eval" / "results.json").read_text())
    (name, scored), = results["checkpoints"].items()
    assert name == "run_step-0000006"          # the step scored, so more training is scored anew
    assert scored["tasks"][TASK]["trials"] == 1
    assert len(list((out / "eval" / "videos").rglob("*.mp4"))) == 1

    # the report: tables, and every linked file exists and is a valid image/video
    report = out / "report" / "report.md"
    md = report.read_text()
    assert "| close_top_drawer | " in md and "Wilson 95%" in md
    assert "Policy options: `steps=2`" in md                 # what the suite scores says how it was sampled
    assert "action MSE (normalised)" in md and "copy last frame" in md
    assert "| frames ahead | PSNR (dB)" in md
    assert "World model settings: `steps=1` (its conditional mean), `decode=residual`" in md
    # what training saw: 6 steps x the batch, one noise draw each, and the passes over 3 demos' windows
    seen = re.search(r"\| training seen \| ([\d,]+) windows x 1 noise draws = ([\d,]+) training signals; "
                     r"([\d.]+) passes", md)
    assert seen and seen[1] == seen[2] and int(seen[1].replace(",", "")) % 6 == 0 and float(seen[3]) > 0
    links = _links(md)
    for name in ("success.png", "curves.png", "imagine.gif", "imagine.mp4", "eval_results.md"):
        assert name in links, f"report.md does not link {name}"
    assert any(link.startswith("videos/") and link.endswith(".mp4") for link in links)
    for link in links:
        f = report.parent / link
        assert f.is_file() and f.stat().st_size > 0, link
        if f.suffix in (".png", ".gif"):
            with Image.open(f) as im:
                assert im.size[0] > 32 and im.size[1] > 32
                if f.suffix == ".gif":
                    assert getattr(im, "n_frames", 1) > 1
                else:
                    assert np.asarray(im.convert("L")).std() > 1  # a real plot, not a blank canvas
        if f.suffix == ".mp4":
            assert f.read_bytes()[4:8] == b"ftyp"

    # rerun: every phase resumes (demos reused, training already done, no episode re-run)
    mtime = (out / "eval" / "episodes.jsonl").stat().st_mtime_ns
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "reusing" in text
    assert (out / "eval" / "episodes.jsonl").read_text().count("\n") == 1
    assert (out / "eval" / "episodes.jsonl").stat().st_mtime_ns == mtime
    assert len(list((out / "run" / "checkpoints").glob("step-*"))) >= 1
    assert not list((out / "run" / "checkpoints").glob("step-0000007*"))

    # the learning curve: both kept checkpoints scored on the same grid episode, against what each had seen
    assert main([*args, "phases=[curve]"]) == 0
    assert "curve: reusing 1 episodes the eval phase scored" in capsys.readouterr().out   # step 6's
    points = json.loads((out / "curve" / "curve.json").read_text())
    assert [p["step"] for p in points] == [3, 6] and [p["signals"] for p in points] == [12, 24]
    assert all(p["success"]["close"][1] == 1 and p["validation"]["step"] == p["step"] for p in points)
    assert "| 6 | 24 | 24 | " in (out / "curve" / "curve.md").read_text()
    with Image.open(out / "curve" / "curve.png") as im:
        assert np.asarray(im.convert("L")).std() > 1


def test_demo_rejects_bad_config(tmp_path) -> None:
    with pytest.raises(ConfigError, match="objective"):
        structured(DemoConfig, load_config("demo", ["objective=flow"], schema=DemoConfig))
    with pytest.raises(ConfigError, match="phase"):
        structured(DemoConfig, load_config("demo", ["phases=[collect,trian]"], schema=DemoConfig))
    with pytest.raises(ConfigError, match="demos_per_task must be >= 1"):
        structured(DemoConfig, load_config("demo", ["demos_per_task=0"], schema=DemoConfig))
