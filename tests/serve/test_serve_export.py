"""Export parity: torchscript / onnx / torch_export denoisers against the eager model, per call and per chunk."""
from __future__ import annotations

import copy
import json

import pytest
import torch

from selfflow_robot.cli import main as cli
from selfflow_robot.constants import ACTIONS, CONTEXT
from selfflow_robot.objective import sample
from selfflow_robot.policies.export import (
    FORMATS, SUFFIX, ActionDenoiser, ExportedSampler, example_inputs, export_denoiser, load_exported,
)
from selfflow_robot.train.checkpoint import load_pretrained

TOL = 1e-4


@pytest.fixture(scope="module")
def live_model(tiny_checkpoint):
    """The checkpoint's model with its adaLN-Zero / output layers re-drawn.

    A 2-step checkpoint is still at its zero init (velocity ~1e-7), where any export would "match";
    re-drawing the zero layers makes the velocity O(1) so the parity figures mean something.
    """
    model = copy.deepcopy(load_pretrained(tiny_checkpoint, device="cpu").model)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().max() < 1e-4:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    v = ActionDenoiser(model)(*example_inputs(model.cfg, 2))
    assert v.std() > 0.05, float(v.std())
    return model


def test_export_cli_on_the_real_checkpoint(tiny_checkpoint, tmp_path, capsys):
    assert cli(["export", f"ckpt={tiny_checkpoint}", "format=torchscript", f"output_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "parity vs eager: max abs diff" in out and "outside the graph" in out
    meta = json.loads((tmp_path / "export.json").read_text())
    assert meta["format"] == "torchscript" and meta["denoiser_max_abs_diff"] <= meta["tolerance"]
    assert (tmp_path / "denoiser.pt").is_file() and meta["checkpoint"] == str(tiny_checkpoint)
    print(f"\n{out}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_exported_denoiser_matches_eager_policy_sampler(live_model, fmt, tmp_path):
    result = export_denoiser(live_model, fmt, tmp_path, steps=10, tolerance=TOL)
    exported = load_exported(tmp_path / f"denoiser.{SUFFIX[fmt]}", fmt)
    # the whole chunk through the exported graph vs the policy's own eager sampler (objective.sample)
    ctx, noise, _, text, _ = example_inputs(live_model.cfg, 3, seed=7)
    chunk = ExportedSampler(exported, steps=10)(ctx, noise, text)
    with torch.no_grad():
        ref = sample(live_model, {CONTEXT: ctx, ACTIONS: noise}, [ACTIONS], text, steps=10, method="ode",
                     noise={ACTIONS: noise})[ACTIONS]
    diff = (chunk - ref).abs().max().item()
    print(f"\n{fmt}: max abs diff denoiser {result.denoiser_max_abs_diff:.2e}, chunk (export check) "
          f"{result.chunk_max_abs_diff:.2e}, chunk vs objective.sample {diff:.2e}; |chunk| mean {ref.abs().mean():.3f}")
    assert result.denoiser_max_abs_diff <= TOL and result.chunk_max_abs_diff <= TOL and diff <= TOL
    assert ref.abs().mean() > 0.1  # a real, non-trivial chunk


def test_cfg_sampler_matches_objective_sample(live_model):
    ctx, noise, _, text, _ = example_inputs(live_model.cfg, 2, seed=3)
    den = ActionDenoiser(live_model)
    with torch.no_grad():
        ours = ExportedSampler(den, steps=6, cfg_scale=2.5)(ctx, noise, text)
        ref = sample(live_model, {CONTEXT: ctx, ACTIONS: noise}, [ACTIONS], text, steps=6, cfg_scale=2.5,
                     noise={ACTIONS: noise})[ACTIONS]
    assert (ours - ref).abs().max().item() <= 1e-5


def test_failed_parity_writes_nothing(live_model, tmp_path):
    from selfflow_robot.errors import ConfigError

    # torchscript / torch_export replay the same CPU kernels (diff exactly 0); ONNX Runtime differs by ~1e-7
    with pytest.raises(ConfigError, match="differs from eager"):
        export_denoiser(live_model, "onnx", tmp_path, tolerance=1e-12)
    assert not (tmp_path / "denoiser.onnx").exists() and not (tmp_path / "export.json").exists()
    assert not list(tmp_path.glob(".export-*"))  # the temp dir is gone too
