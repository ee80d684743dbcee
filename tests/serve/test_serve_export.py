"""Export parity: torchscript / onnx / torch_export denoisers against the eager model, per call and per chunk."""
from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch
from tiny_checkpoint import write_tiny_checkpoint

from selfflow_robot.checkpoint import load_pretrained
from selfflow_robot.cli import main as cli
from selfflow_robot.constants import ACTIONS, CONTEXT
from selfflow_robot.errors import ConfigError
from selfflow_robot.model import build_model
from selfflow_robot.objective import sample
from selfflow_robot.policies.client import PolicyClient, ServerError
from selfflow_robot.policies.export import (
    FORMATS,
    INPUT_NAMES,
    SUFFIX,
    ActionDenoiser,
    ExportedSampler,
    example_inputs,
    export_denoiser,
    input_names,
    load_cached,
    load_exported,
)
from selfflow_robot.policies.policy import SelfFlowPolicy
from selfflow_robot.policies.serving.engine import SelfFlowEngine
from selfflow_robot.policies.serving.server import PolicyServer

TOL = 1e-4


def _redraw_zero_layers(model: torch.nn.Module) -> torch.nn.Module:
    """Re-draw the layers adaLN-Zero initialises at zero (modulations, output layers), by name: after
    a few steps (and the EMA warm-up) they are small but not zero, so a value threshold can't find them."""
    g = torch.Generator().manual_seed(0)
    zero_init = ("adaLN_modulation", "final_layer.linear", "final_layer.action_linear", "state_embedder.mlp.2")
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
    # the context cache as two graphs (a prefix-attention checkpoint): the same chunks, with and without CFG
    assert live_model.cfg.attention == "prefix" and result.cached_chunk_max_abs_diff <= TOL
    assert [p.rsplit("/", 1)[1] for p in result.cached_paths] == [f"context.{SUFFIX[fmt]}", f"step.{SUFFIX[fmt]}"]
    graphs = load_cached(tmp_path, fmt)
    for cfg_scale in (1.0, 2.5):
        cached = ExportedSampler(graphs, steps=10, cfg_scale=cfg_scale)(ctx, noise, text)
        with torch.no_grad():
            ref = sample(live_model, {CONTEXT: ctx, ACTIONS: noise}, [ACTIONS], text, steps=10, method="ode",
                         cfg_scale=cfg_scale, noise={ACTIONS: noise})[ACTIONS]
        diff = (cached - ref).abs().max().item()
        print(f"{fmt} context cache, cfg {cfg_scale}: chunk vs objective.sample {diff:.2e}")
        assert diff <= TOL


def test_a_full_attention_checkpoint_exports_no_cached_graphs(live_model, tmp_path):
    """Its context sees the noisy tokens, so there is nothing to cache: one graph, and a clear error for the pair."""
    cfg = dataclasses.replace(live_model.cfg, attention="full")
    model, _ = build_model(cfg, with_codec=False)
    result = export_denoiser(_redraw_zero_layers(model), "torchscript", tmp_path, steps=2, tolerance=TOL)
    assert result.cached_paths is None and result.cached_chunk_max_abs_diff is None
    assert (tmp_path / "denoiser.pt").is_file() and not (tmp_path / "context.pt").exists()
    with pytest.raises(ConfigError, match="no cached graphs at .*context.pt"):
        load_cached(tmp_path, "torchscript")


def test_cached_only_exports_just_the_context_caches_graphs(live_model, tmp_path):
    """What the server loads for a prefix-attention checkpoint: the context and step graphs, parity-checked, and
    not the single graph it would never run."""
    result = export_denoiser(live_model, "torchscript", tmp_path, steps=2, tolerance=TOL, cached_only=True)
    assert not (tmp_path / "denoiser.pt").exists() and (tmp_path / "context.pt").is_file()
    assert result.path == str(tmp_path / "context.pt") and result.denoiser_max_abs_diff is None
    assert result.chunk_max_abs_diff is None and result.cached_chunk_max_abs_diff <= TOL
    assert json.loads((tmp_path / "export.json").read_text())["cached_paths"] == result.cached_paths


def test_cfg_sampler_matches_objective_sample(live_model):
    ctx, noise, _, text, _ = example_inputs(live_model.cfg, 2, seed=3)
    den = ActionDenoiser(live_model)
    with torch.no_grad():
        ours = ExportedSampler(den, steps=6, cfg_scale=2.5)(ctx, noise, text)
        ref = sample(live_model, {CONTEXT: ctx, ACTIONS: noise}, [ACTIONS], text, steps=6, cfg_scale=2.5,
                     noise={ACTIONS: noise})[ACTIONS]
    assert (ours - ref).abs().max().item() <= 1e-5


def test_failed_parity_writes_nothing(live_model, tmp_path):
    # torchscript / torch_export replay the same CPU kernels (diff exactly 0); ONNX Runtime differs by ~1e-7
    with pytest.raises(ConfigError, match="differs from eager"):
        export_denoiser(live_model, "onnx", tmp_path, tolerance=1e-12)
    assert not (tmp_path / "denoiser.onnx").exists() and not (tmp_path / "export.json").exists()
    assert not list(tmp_path.glob(".export-*"))  # the temp dir is gone too


def test_server_backend_serves_the_exported_graph_with_eager_results(tiny_checkpoint):
    """`serve backend=torchscript`: the policy's denoiser runs as the exported graph, chunks match eager."""
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


@pytest.fixture(scope="module")
def state_checkpoint(tmp_path_factory):
    """A tiny state-conditioned checkpoint (model.state_dim=8, with state statistics) with live output layers."""
    ckpt = write_tiny_checkpoint(tmp_path_factory.mktemp("state_run"), state_dim=8)
    model = load_pretrained(ckpt, device="cpu").model
    assert model.cfg.state_dim == 8
    return ckpt, _redraw_zero_layers(copy.deepcopy(model))


@pytest.mark.parametrize("fmt", FORMATS)
def test_state_conditioned_export_takes_the_state_and_matches_eager(state_checkpoint, fmt, tmp_path):
    """The graph of a state checkpoint has a 6th input `state`: parity with eager (objective.sample with
    robot_state, with and without CFG), and a different state changes the exported velocity and chunk."""
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    _, model = state_checkpoint
    result = export_denoiser(model, fmt, tmp_path, steps=6, tolerance=TOL)
    meta = json.loads((tmp_path / "export.json").read_text())
    assert result.state_dim == meta["state_dim"] == 8 and meta["input_shapes"]["state"] == [2, 8]
    assert list(meta["input_shapes"]) == [*INPUT_NAMES, "state"] == list(input_names(model.cfg))
    exported = load_exported(tmp_path / f"denoiser.{SUFFIX[fmt]}", fmt)
    args = example_inputs(model.cfg, 3, seed=5)
    assert len(args) == 6 and args[5].shape == (3, 8)
    other = (*args[:5], -args[5])
    with torch.no_grad():
        v, v_other, v_eager = exported(*args), exported(*other), ActionDenoiser(model)(*args)
    assert (v - v_eager).abs().max().item() <= TOL
    moved = (v - v_other).abs().max().item()
    assert moved > 1e-2, moved  # the state input is really wired into the graph
    ctx, noise, _, text, _, state = args
    for cfg_scale in (1.0, 2.5):
        chunk = ExportedSampler(exported, steps=6, cfg_scale=cfg_scale)(ctx, noise, text, state)
        with torch.no_grad():
            ref = sample(model, {CONTEXT: ctx, ACTIONS: noise}, [ACTIONS], text, steps=6, method="ode",
                         cfg_scale=cfg_scale, noise={ACTIONS: noise}, robot_state=state)[ACTIONS]
        other_chunk = ExportedSampler(exported, steps=6, cfg_scale=cfg_scale)(ctx, noise, text, -state)
        diff, moved = (chunk - ref).abs().max().item(), (chunk - other_chunk).abs().max().item()
        print(f"\n{fmt} state graph, cfg {cfg_scale}: chunk vs objective.sample {diff:.2e}, "
              f"other state moves {moved:.3f}")
        assert diff <= TOL and moved > 1e-2
        cached = ExportedSampler(load_cached(tmp_path, fmt), steps=6, cfg_scale=cfg_scale)(ctx, noise, text, state)
        assert (cached - ref).abs().max().item() <= TOL   # the state reaches the context's keys/values too


def test_state_free_export_keeps_its_five_inputs(live_model, tmp_path):
    assert input_names(live_model.cfg) == INPUT_NAMES and len(example_inputs(live_model.cfg)) == 5
    result = export_denoiser(live_model, "torchscript", tmp_path, steps=2, tolerance=TOL)
    assert result.state_dim == 0 and list(result.input_shapes) == list(INPUT_NAMES)
    graph_inputs = list(torch.jit.load(str(tmp_path / "denoiser.pt")).graph.inputs())[1:]  # [0] is self
    assert len(graph_inputs) == 5


def test_export_cli_on_a_state_conditioned_checkpoint(state_checkpoint, tmp_path, capsys):
    ckpt, _ = state_checkpoint
    assert cli(["export", f"ckpt={ckpt}", "format=torchscript", f"output_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "state input: (B, 8)" in out
    meta = json.loads((tmp_path / "export.json").read_text())
    assert meta["state_dim"] == 8 and meta["denoiser_max_abs_diff"] <= meta["tolerance"]


@pytest.mark.parametrize("backend", ["torchscript", "torch_export"])
def test_server_backend_serves_a_state_checkpoint_with_eager_results(state_checkpoint, backend):
    """`serve backend=...` on a state checkpoint: the normalised state reaches the graph, chunks match eager
    for the same image + state, and a different state gives a different chunk."""
    ckpt, _ = state_checkpoint
    policy = SelfFlowPolicy.from_pretrained(ckpt, device="cpu", steps=10)
    _redraw_zero_layers(policy.model)
    eager, other = policy.with_options(), policy.with_options()
    engine = SelfFlowEngine(policy.with_options(), backend=backend)
    instr = policy.language.table.instructions[0]
    img = np.random.default_rng(0).integers(0, 256, (128, 160, 3), dtype=np.uint8)
    state = np.array([0.1, -0.2, 0.3, 0.0, 0.0, 0.0, 1.0, 0.5], np.float32)  # tool pose (x y z, quaternion) + gripper
    state2 = state + np.array([-0.5, 0.5, -0.5, 0, 0, 0, 0, 0.5], np.float32)  # another arm pose, gripper closed
    eager.reset(instr)
    ref = eager.infer({"image": img, "state": state})
    other.reset(instr)
    ref2 = other.infer({"image": img, "state": state2})
    with PolicyServer(engine, port=0) as srv:
        got = []
        for s in (state, state2):  # one connection each: a fresh session, the same seeded noise
            with PolicyClient(srv.uri) as client:
                assert client.metadata["backend"] == backend and client.metadata["state_dim"] == 8
                client.reset(instr)
                got.append(client.infer(img, state=s))
    diff = max(float(np.abs(g["action_tokens"] - r["action_tokens"]).max()) for g, r in zip(got, (ref, ref2)))
    moved = float(np.abs(got[1]["action_tokens"] - got[0]["action_tokens"]).max())
    print(f"\nbackend={backend} (state checkpoint) vs eager: max abs diff {diff:.2e}; "
          f"the other state moves {moved:.3f}")
    assert diff <= TOL and moved > 1e-3
    np.testing.assert_allclose(got[0]["actions"], ref["actions"], atol=TOL)


def test_server_backend_use_state_false_feeds_the_null_state(state_checkpoint):
    """`serve use_state=false` on a state checkpoint: the metadata asks for no state, a state sent is refused,
    and the exported graph gets the learned null state, so chunks match the eager policy's null-state chunks."""
    ckpt, _ = state_checkpoint
    policy = SelfFlowPolicy.from_pretrained(ckpt, device="cpu", steps=4, use_state=False)
    _redraw_zero_layers(policy.model)
    with torch.no_grad():  # a non-zero learned null state, so feeding zeros instead would show
        policy.model.state_embedder.null_state.copy_(torch.linspace(-1, 1, 8))
    instr = policy.language.table.instructions[0]
    img = np.random.default_rng(1).integers(0, 256, (128, 160, 3), dtype=np.uint8)
    eager, with_state = policy.with_options(), policy.with_options(use_state=True)
    eager.reset(instr)
    ref = eager.infer({"image": img})
    with_state.reset(instr)
    mid = np.add(policy.statistics["state"]["q01"], policy.statistics["state"]["q99"]) / 2  # normalises to ~0
    measured = with_state.infer({"image": img, "state": mid.astype(np.float32)})
    assert np.abs(measured["action_tokens"] - ref["action_tokens"]).max() > 1e-3  # null state != a state of zeros
    with PolicyServer(SelfFlowEngine(policy.with_options(), backend="torchscript"), port=0) as srv:
        with PolicyClient(srv.uri) as client:
            assert client.metadata["state_dim"] == 0
            client.reset(instr)
            got = client.infer(img)
            with pytest.raises(ServerError, match="takes none"):
                client.infer(img, state=np.zeros(8, np.float32))
    np.testing.assert_allclose(got["action_tokens"], ref["action_tokens"], atol=TOL)


def test_a_state_readout_checkpoint_exports_the_image_only_graph(tmp_path):
    """model.aux_state_dim=8: the read-out head is a training target, so the graph keeps the five
    state-free inputs and matches eager."""
    ckpt = write_tiny_checkpoint(tmp_path / "run", aux_state_dim=8)
    model = _redraw_zero_layers(load_pretrained(ckpt, device="cpu").model)
    assert model.state_head is not None and input_names(model.cfg) == INPUT_NAMES
    result = export_denoiser(model, "torchscript", tmp_path / "export", steps=2, tolerance=TOL)
    assert result.state_dim == 0 and list(result.input_shapes) == list(INPUT_NAMES)
    assert result.denoiser_max_abs_diff <= TOL and result.chunk_max_abs_diff <= TOL
