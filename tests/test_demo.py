"""The README's main command, `selfflow-robot demo`, end to end (few steps)."""
from __future__ import annotations

import pytest

from selfflow_robot.cli import main


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", f"output_dir={out}", "episodes=10", "steps=4", "batch_size=4"]) == 0
    text = capsys.readouterr().out
    assert (out / "data" / "fractal20220817_data" / "0.1.0" / "dataset_info.json").is_file()
    assert list((out / "run" / "checkpoints").glob("step-*/model.safetensors"))
    assert list((out / "imagine").glob("*.mp4")) and list((out / "imagine").glob("*.gif"))
    assert "PSNR" in text or "psnr" in text
    assert '"world_vector"' in text and "ms/step" in text
    # rerun resumes: data reused, training already at its last step
    assert main(["demo", f"output_dir={out}", "episodes=10", "steps=4", "batch_size=4"]) == 0
    assert "reusing" in capsys.readouterr().out
