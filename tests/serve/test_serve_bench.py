"""scripts/bench_policy.py: FLOP counting and a short real run."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from script_module import load_script
from tiny_checkpoint import write_tiny_checkpoint

from selfflow_robot.model.config import dit_config

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_policy.py"


@pytest.fixture(scope="module")
def bench():
    return load_script(SCRIPT, "bench_policy_script")


def test_depth_extrapolated_flops_equal_the_full_count(bench):
    cfg = dit_config("tiny")
    assert bench.chunk_flops(cfg, steps=1, batch=2) == bench._denoiser_flops(cfg, 2)
    assert bench.chunk_flops(cfg, steps=10, batch=1, cfg_scale=3.0) == 20 * bench._denoiser_flops(cfg, 1)


def test_bench_runs_eager_and_an_export(bench, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--size", "tiny", "--steps", "2", "--iters", "3", "--warmup", "1", "--threads", "1",
                       "--modes", "eager,torchscript", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    result = json.loads(out.read_text())
    for mode in ("eager", "torchscript"):
        stats = result["modes"][mode]
        assert stats["p50_ms"] > 0 and stats["p99_ms"] >= stats["p50_ms"] and stats["actions_per_s"] > 0
        assert f"  {mode}" in printed
    assert result["gflops_per_chunk"] > 0 and result["chunk"] == 4


def test_bench_xl_flops_projection(bench, capsys):
    assert bench.main(["--size", "xl", "--flops-only", "--peak-tflops", "989"]) == 0
    line = capsys.readouterr().out
    assert "model xl: 644 tokens" in line and "GFLOP/chunk" in line


def test_bench_a_state_checkpoint(bench, tmp_path, capsys):
    """A checkpoint trained with model.state_dim=8: eager and the exported graph both get a robot state."""
    ckpt = write_tiny_checkpoint(tmp_path / "run", state_dim=8)
    out = tmp_path / "bench.json"
    assert bench.main(["--ckpt", str(ckpt), "--steps", "2", "--iters", "2", "--warmup", "1", "--threads", "1",
                       "--modes", "eager,torchscript", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert all("error" not in result["modes"][m] and result["modes"][m]["p50_ms"] > 0 for m in ("eager", "torchscript"))


def test_attack_bench_prints_both_p50s(tiny_checkpoint, tmp_path, capsys):
    """scripts/bench_serve_attack.py end to end, small: a served checkpoint, one attacker; no timing asserted."""
    module = load_script(SCRIPT.parent / "bench_serve_attack.py", "bench_serve_attack_script")
    out = tmp_path / "attack.json"
    assert module.main(["--ckpt", str(tiny_checkpoint), "--keys", "20000", "--requests", "3", "--steps", "2",
                        "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "unloaded" in printed and "under attack" in printed
    result = json.loads(out.read_text())
    assert result["victim_p50_ms"]["unloaded"] > 0 and result["victim_p50_ms"]["attacked"] > 0
    assert result["attack"]["frame_bytes"] > 20000 * 7 and result["server_errors"].get("bad_request", 0) >= 1
