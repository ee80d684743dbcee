"""`selfflow-robot data synth|stats` through the real CLI dispatcher."""
from __future__ import annotations

import numpy as np

from selfflow_robot.cli import main
from selfflow_robot.data.reader import RLDSReader


def test_synth_and_stats_commands(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["data", "synth", f"output_dir={out}", "episodes=3", "min_steps=3", "max_steps=4"]) == 0
    r = RLDSReader(out)
    assert len(r) == 3 and all(3 <= len(e) <= 4 for e in r)
    assert main(["data", "synth", f"output_dir={out}", "episodes=3"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["data", "synth", f"output_dir={out}", "episodes=2", "overwrite=true", "min_steps=3",
                 "max_steps=3"]) == 0
    assert len(RLDSReader(out)) == 2
    assert main(["data", "stats", f"path={out}"]) == 0
    text = capsys.readouterr().out
    assert "2 episodes, 6 steps" in text and "dataset_statistics.json" in text
    assert main(["data", "synth", "episodes=0", f"output_dir={tmp_path / 'x'}"]) == 2


def test_stats_skip_bad_episodes_flag(make_dataset, good_features, capsys):
    rng = np.random.default_rng(0)
    feats = [good_features(rng) for _ in range(3)]
    feats[0]["steps/action/gripper_closedness_action"][1, 0] = np.inf
    root = make_dataset(feats)
    assert main(["data", "stats", f"path={root}"]) == 2
    err = capsys.readouterr().err
    assert "\nerror: " in "\n" + err and "episode 0" in err and "gripper_closedness_action" in err
    assert main(["data", "stats", f"path={root}", "--skip-bad-episodes"]) == 0
    out = capsys.readouterr().out
    assert "2 episodes" in out and "skipped 1 bad episode" in out
    assert main(["data", "stats", f"path={root / 'missing'}"]) == 2
