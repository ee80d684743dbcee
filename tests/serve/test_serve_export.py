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


def _redraw_zero_layers(model: torch.nn.Module) -> torch.nn.Module:
    """Re-draw the layers adaLN-Zero initialises at zero (modulations, output layers), by name: after
    a few steps (and the EMA warm-up) they are small but not zero, so a value threshold can't find them."""
    g = torch.Generator().manual_seed(0)
    zero_init = ("adaLN_modulation", "final_layer.linear", "final_layer.action_linear")
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(z in name for z in zero_init):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    return model


@pytest.fixture(scope="module")
def live_model(tiny_checkpoint):
    """The checkpoint's model with its adaLN-Zero / output layers re-drawn.

    A 2-step checkpoint is still at its zero init (velocity ~1e-7), where any export would "match";
    re-drawing the zero layers makes the velocity O(1) so the parity figures mean something.
    """
    model = _redraw_zero_layers(copy.deepcopy(load_pretrained(tiny_checkpoint, device="cpu").model))
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


def test_server_backend_serves_the_exported_graph_with_eager_results(tiny_checkpoint):
    """`serve backend=torchscript`: the policy's denoiser runs as the exported graph, chunks match eager."""
    import numpy as np

    from selfflow_robot.policies.client import PolicyClient
    from selfflow_robot.policies.policy import SelfFlowPolicy
    from selfflow_robot.policies.server import PolicyServer, SelfFlowEngine

    policy = SelfFlowPolicy.from_pretrained(tiny_checkpoint, device="cpu", steps=10)
    _redraw_zero_layers(policy.model)
    eager = policy.with_options()
    engine = SelfFlowEngine(policy.with_options(), backend="torchscript")
    instr = policy.language.table.instructions[0]
    img = np.random.default_rng(0).integers(0, 256, (128, 160, 3), dtype=np.uint8)
    eager.reset(instr)
    ref = eager.infer({"image": img})
    with PolicyServer(engine, port=0) as srv, PolicyClient(srv.uri) as client:
        assert client.metadata["backend"] == "torchscript"
        client.reset(instr)
        got = client.infer(img)
    noise = torch.randn(1, policy.horizon, 8, generator=torch.Generator().manual_seed(policy.config.seed))[0]
    moved = float(np.abs(ref["action_tokens"] - noise.numpy()).mean())
    diff = float(np.abs(got["action_tokens"] - ref["action_tokens"]).max())
    print(f"\nbackend=torchscript vs eager: max abs diff {diff:.2e} (tokens moved {moved:.3f} from the noise)")
    assert diff <= TOL and moved > 0.05
    np.testing.assert_allclose(got["actions"], ref["actions"], atol=TOL)


def test_state_conditioned_checkpoints_are_refused_by_export_and_graph_backends(tmp_path, capsys):
    """The exported graph has no robot-state input: export and the graph backends say so, eager serves."""
    from tiny_checkpoint import write_tiny_checkpoint

    from selfflow_robot.errors import ConfigError
    from selfflow_robot.policies.policy import SelfFlowPolicy
    from selfflow_robot.policies.server import SelfFlowEngine

    ckpt = write_tiny_checkpoint(tmp_path / "state_run", state_dim=8)
    assert cli(["export", f"ckpt={ckpt}", f"output_dir={tmp_path / 'out'}"]) != 0
    assert "no state input yet" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    policy = SelfFlowPolicy.from_pretrained(ckpt, device="cpu", steps=2)
    with pytest.raises(ConfigError, match="backend=eager"):
        SelfFlowEngine(policy, backend="torchscript")
    assert SelfFlowEngine(policy).policy.state_dim == 8
