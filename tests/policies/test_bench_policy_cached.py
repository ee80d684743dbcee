"""scripts/bench_policy.py on a prefix-attention model: the eager and the cached chunk side by side, the breakdown
of a cached chunk, and model overrides (the autoencoder's tokens, its encode counted)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from script_module import load_script

from selfflow_robot.model.autoencoder import AutoencoderConfig, FrameAutoencoder

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_policy.py"
QUICK = ["--size", "tiny", "--steps", "2", "--iters", "2", "--warmup", "1", "--threads", "1",
         "--modes", "eager,cached", "--breakdown"]


@pytest.fixture(scope="module")
def bench():
    return load_script(SCRIPT, "bench_policy_cached_script")


def _run(bench, tmp_path, *extra):
    out = tmp_path / "bench.json"
    assert bench.main([*QUICK, "--json", str(out), *extra]) == 0
    return json.loads(out.read_text())


def test_eager_and_cached_side_by_side_with_a_breakdown(bench, tmp_path, capsys):
    result = _run(bench, tmp_path, "--model", "image_size=[16,24]")
    printed = capsys.readouterr().out
    assert result["attention"] == "prefix" and result["codec"] == "pixel" and result["tokens"] == 2 * 6 + 4
    for mode in ("eager", "cached"):
        assert result["modes"][mode]["p50_ms"] > 0 and f"  {mode}" in printed
    parts = result["breakdown"]
    assert set(parts) == {"encode", "modulation", "context_pass", "one_step", "steps_total", "sum"}
    assert parts["steps_total"] == pytest.approx(2 * parts["one_step"])
    assert parts["sum"] == pytest.approx(sum(parts[k] for k in ("encode", "modulation", "context_pass",
                                                                   "steps_total")))
    assert "cached chunk, p50 ms" in printed


def test_autoencoder_tokens_count_the_encode(bench, tmp_path, capsys):
    ae = FrameAutoencoder(AutoencoderConfig(image_size=(32, 48), latent_channels=4, downsample=8, width=8))
    ae.save(tmp_path / "ae")
    result = _run(bench, tmp_path, "--model", "codec=ae", f"vae={tmp_path / 'ae'}", "image_size=[32,48]",
                  "latent_channels=4", "vae_downsample=8", "patch_size=2")
    printed = capsys.readouterr().out
    assert result["codec"] == "ae" and result["tokens"] == 2 * 2 * 3 + 4   # 4x6 latents, 2x2 cells per token
    assert "encode excluded" not in printed and result["breakdown"]["encode"] > 0
    assert result["modes"]["cached"]["p50_ms"] > 0
