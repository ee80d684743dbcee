"""scripts/bench_train.py runs both objectives on one config and prints one JSON line with consistent figures."""
import json
from pathlib import Path

import pytest
from script_module import load_script

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_train.py"


def test_bench_train_prints_one_json_line(capsys):
    bench = load_script(SCRIPT)
    rc = bench.main(["--model", "tiny", "--batch-size", "2", "--steps", "2", "--rounds", "1", "--warmup", "1",
                     "--peak-seconds", "0.2", "model.image_size=[32,40]", "model.horizon=2", "model.context_frames=1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert rc == 0 and len(lines) == 1
    r = json.loads(lines[0])
    assert r["tokens_per_example"] == 3 * 20 + 2
    # the printed times are rounded; the ratio is of the unrounded ones
    assert r["ratio"] == pytest.approx(r["step_s_selfflow"] / r["step_s_vanilla"], abs=2e-3)
    # the teacher adds one no-grad forward to block k = 3 of 4: more FLOPs, but far less than a second step
    assert 1.0 < r["flops_per_step_selfflow"] / r["flops_per_step_vanilla"] < 1.5
    assert r["peak_tflops"] > 0 and 0 < r["mfu_vanilla"] and 0 < r["mfu_selfflow"]
