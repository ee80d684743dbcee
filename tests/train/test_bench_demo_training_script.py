"""scripts/bench_demo_training.py: the two recipes it races, and a variant of the new one (`--new-extra`)."""
from pathlib import Path

from script_module import load_script

from selfflow_robot.config import load_config, structured
from selfflow_robot.train.config import TrainRunConfig

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_demo_training.py"


def _composed(overrides: list[str]) -> TrainRunConfig:
    return structured(TrainRunConfig, load_config("train", overrides, schema=TrainRunConfig))


def test_recipes_compose_and_the_variant_changes_only_the_new_one(tmp_path):
    bench = load_script(SCRIPT)
    default = {k: _composed(v) for k, v in bench.recipes(tmp_path / "demo", tmp_path / "work").items()}
    variant = {k: _composed(v) for k, v in
               bench.recipes(tmp_path / "demo", tmp_path / "work", ["train.draws_per_window=8"]).items()}
    assert default["new"].train.draws_per_window == 4 and variant["new"].train.draws_per_window == 8
    assert default["old"] == variant["old"] and default["old"].train.draws_per_window == 1
    old, new = default["old"], default["new"]
    assert (old.model.attention, old.model.codec, old.train.precision) == ("full", "pixel", "fp32")
    assert (new.model.attention, new.model.codec, new.train.precision) == ("prefix", "ae", "bf16")
    # both race without validation or checkpoints, each in its own folder
    for cfg in (old, new):
        assert cfg.train.val_every == 0 and cfg.train.save_every == 0 and not cfg.resume
    assert {Path(old.output_dir).name, Path(new.output_dir).name} == {"old", "new"}
