"""Import of the released Self-Flow ImageNet checkpoint, on synthetic state dicts with the official names and shapes
(reference/selfflow_state_dict.md): xl geometry on the meta device, and a small geometry with real values checked
against a from-scratch implementation of the released forward (t -> 1 - t inside, output negated)."""
import math

import pytest
import torch
import torch.nn.functional as F

from selfflow_robot.errors import ConfigError, UserError
from selfflow_robot.model import SIZES, build_model, dit_config, import_selfflow
from selfflow_robot.model.import_selfflow import flip_time_embedding_weight


def official_state_dict(depth=28, width=1152, mlp=4, in_ch=4, patch=2, grid=16, classes=1001, device=None, seed=0):
    """Every tensor of the released SelfFlowPerTokenDiT with its official name and shape."""
    shapes = {
        "pos_embed": (1, grid * grid, width),
        "x_embedder.proj.weight": (width, in_ch * patch * patch), "x_embedder.proj.bias": (width,),
        "t_embedder.mlp.0.weight": (width, 256), "t_embedder.mlp.0.bias": (width,),
        "t_embedder.mlp.2.weight": (width, width), "t_embedder.mlp.2.bias": (width,),
        "y_embedder.embedding_table.weight": (classes, width),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        shapes.update({b + "attn.qkv.weight": (3 * width, width), b + "attn.qkv.bias": (3 * width,),
                       b + "attn.proj.weight": (width, width), b + "attn.proj.bias": (width,),
                       b + "mlp.fc1.weight": (mlp * width, width), b + "mlp.fc1.bias": (mlp * width,),
                       b + "mlp.fc2.weight": (width, mlp * width), b + "mlp.fc2.bias": (width,),
                       b + "adaLN_modulation.1.weight": (6 * width, width),
                       b + "adaLN_modulation.1.bias": (6 * width,)})
    shapes.update({
        "final_layer.linear.weight": (patch * patch * 2 * in_ch, width),
        "final_layer.linear.bias": (patch * patch * 2 * in_ch,),
        "final_layer.adaLN_modulation.1.weight": (2 * width, width),
        "final_layer.adaLN_modulation.1.bias": (2 * width,),
        "projector.linear1.weight": (2 * width, width), "projector.linear1.bias": (2 * width,),
        "projector.linear2.weight": (width, 2 * width), "projector.linear2.bias": (width,),
    })
    if device == "meta":
        return {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) * 0.05 for k, s in shapes.items()}


def test_xl_import_report_on_official_names_and_shapes(capsys):
    state = official_state_dict(device="meta")
    assert len(state) == 296
    assert abs(sum(v.numel() for v in state.values()) - 680.44e6) < 0.01e6
    with torch.device("meta"):
        model, _ = build_model(SIZES["xl"], with_codec=False)
    report = import_selfflow(model, {"model": {"module." + k: v for k, v in state.items()}})
    printed = capsys.readouterr().out
    assert len(report.loaded) == 294 and len(report.skipped) == 2
    assert {n for n, _ in report.skipped} == {"pos_embed", "y_embedder.embedding_table.weight"}
    assert {n for n, _ in report.reinitialised} == {
        "action_embedder.0.weight", "action_embedder.0.bias", "action_embedder.2.weight", "action_embedder.2.bias",
        "text_embedder.null_text", "text_embedder.mlp.0.weight", "text_embedder.mlp.0.bias",
        "text_embedder.mlp.2.weight", "text_embedder.mlp.2.bias", "group_embed.weight", "type_embed.weight",
        "final_layer.action_linear.weight", "final_layer.action_linear.bias"}
    loaded = {ours for ours, _, _ in report.loaded}
    assert all(n in loaded for n, _ in model.named_parameters() if n.startswith(("blocks.", "projector.")))
    assert "loaded 294 tensors" in printed and "skipped 2" in printed and "re-initialised 13" in printed
    assert "blocks.*.attn.qkv.weight  <- blocks.*.attn.qkv.weight  x28" in printed
    assert "timestep flip" in printed and "sign flipped" in printed


def reference_forward(state, tokens, tau, pos, heads):
    """The released forward, written from its description: t <- 1 - t, c = t_emb + y_emb (y_emb = 0 here),
    DiT blocks with per-token adaLN, final layer, keep the mean half of the (p q c) outputs, return -x."""
    def lin(x, name):
        return F.linear(x, state[name + ".weight"], state[name + ".bias"])

    t = 1 - tau
    half = 128
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None] * freqs[None]
    c = lin(F.silu(lin(torch.cat([torch.cos(args), torch.sin(args)], -1), "t_embedder.mlp.0")), "t_embedder.mlp.2")
    c = c[:, None]                                                         # (B, 1, D) broadcast to tokens
    x = lin(tokens, "x_embedder.proj") + pos
    B, N, D = x.shape
    i = 0
    while f"blocks.{i}.attn.qkv.weight" in state:
        b = f"blocks.{i}."
        sm, cm, gm, sp, cp, gp = lin(F.silu(c), b + "adaLN_modulation.1").chunk(6, -1)
        h = F.layer_norm(x, (D,), eps=1e-6) * (1 + cm) + sm
        q, k, v = lin(h, b + "attn.qkv").reshape(B, N, 3, heads, D // heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, D)
        x = x + gm * lin(a, b + "attn.proj")
        h = F.layer_norm(x, (D,), eps=1e-6) * (1 + cp) + sp
        x = x + gp * lin(F.gelu(lin(h, b + "mlp.fc1"), approximate="tanh"), b + "mlp.fc2")
        i += 1
    shift, scale = lin(F.silu(c), "final_layer.adaLN_modulation.1").chunk(2, -1)
    out = lin(F.layer_norm(x, (D,), eps=1e-6) * (1 + scale) + shift, "final_layer.linear")   # (B, N, p*p*2C)
    out = out.reshape(B, N, 2, 2, 8)[..., :4]                              # (p, q, c): mean half
    return -out.permute(0, 1, 4, 2, 3).reshape(B, N, 16)                   # our (c p q) token order


def small_vae_model():
    cfg = dit_config("xl", depth=2, hidden_size=64, num_heads=4, image_size=(32, 48), context_frames=1, horizon=1)
    model, _ = build_model(cfg, with_codec=False)
    return model


def test_imported_small_model_matches_released_forward():
    torch.manual_seed(0)
    model = small_vae_model()
    state = official_state_dict(depth=2, width=64, grid=6)
    report = import_selfflow(model, state, verbose=False)
    assert len(report.loaded) == 2 * 10 + 4 + 2 + 4 + 4
    with torch.no_grad():  # switch off what the ImageNet model does not have, to compare like with like
        model.group_embed.weight.zero_()
        model.type_embed.weight.zero_()
        model.text_embedder.mlp[2].weight.zero_()
        model.text_embedder.mlp[2].bias.zero_()
    tokens = torch.randn(3, 6, 16)
    tau = torch.tensor([0.05, 0.5, 0.9])
    ours = model({"future": tokens}, tau, None).velocity["future"]
    theirs = reference_forward(state, tokens, tau, model.pos_future[:6], heads=4)
    assert ours.abs().max() > 1e-3
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    # the projector and blocks are the checkpoint's tensors, unchanged
    torch.testing.assert_close(model.projector.linear1.weight, state["projector.linear1.weight"])
    torch.testing.assert_close(model.blocks[1].mlp.fc2.bias, state["blocks.1.mlp.fc2.bias"])


def test_time_embedding_flip_is_exact():
    w = torch.randn(32, 256, dtype=torch.float64)
    tau = torch.rand(7, dtype=torch.float64)
    half = 128
    f = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float64) / half)

    def emb(t):
        return torch.cat([torch.cos(t[:, None] * f), torch.sin(t[:, None] * f)], -1)

    torch.testing.assert_close(emb(tau) @ flip_time_embedding_weight(w).T, emb(1 - tau) @ w.T)


def test_pixel_codec_reinitialises_input_and_output_layers(tmp_path, capsys):
    cfg = dit_config("tiny", depth=2, hidden_size=64, num_heads=4, timestep_scale=1.0)
    model, _ = build_model(cfg, with_codec=False)
    before = model.x_embedder.proj.weight.clone()
    path = tmp_path / "selfflow_imagenet256.pt"
    torch.save({"model": official_state_dict(depth=3, width=64)}, path)  # deeper than the model
    report = import_selfflow(model, path)
    skipped = {n for n, _ in report.skipped}
    assert {"x_embedder.proj.weight", "final_layer.linear.weight", "blocks.2.attn.qkv.weight"} <= skipped
    assert "x_embedder.proj.weight" in {n for n, _ in report.reinitialised}
    torch.testing.assert_close(model.x_embedder.proj.weight, before)
    assert "'model' entry" in capsys.readouterr().out


def test_wrong_geometry_and_time_scale_are_config_errors():
    model, _ = build_model(dit_config("tiny", timestep_scale=1.0), with_codec=False)   # width 128
    with pytest.raises(ConfigError, match="use model=xl"):
        import_selfflow(model, official_state_dict(depth=1, width=64), verbose=False)
    model, _ = build_model(dit_config("tiny"), with_codec=False)                       # timestep_scale 1000
    with pytest.raises(ConfigError, match="timestep_scale=1.0"):
        import_selfflow(model, official_state_dict(depth=1, width=128), verbose=False)


def _tiny_pixel_model():
    model, _ = build_model(dit_config("tiny", depth=1, hidden_size=64, num_heads=4, timestep_scale=1.0),
                           with_codec=False)
    return model


def test_model_and_ema_entries_are_chosen_explicitly(tmp_path, capsys):
    """A file holding both `model` and `ema` (as the released one may) imports `model` by default, `ema` when asked,
    and says which in the report; several entries and no `key` entry is refused."""
    online, ema = official_state_dict(depth=1, width=64, seed=1), official_state_dict(depth=1, width=64, seed=2)
    path = tmp_path / "both.pt"
    torch.save({"model": online, "ema": ema, "opt": {"step": torch.tensor(3)}}, path)
    for key, want in ((None, online), ("model", online), ("ema", ema)):
        model = _tiny_pixel_model()
        report = import_selfflow(model, path, **({} if key is None else {"key": key}))
        name = key or "model"
        assert report.source.startswith(f"{path} ('{name}' entry")
        assert f"Self-Flow import from {path} ('{name}' entry" in capsys.readouterr().out
        torch.testing.assert_close(model.blocks[0].attn.qkv.weight, want["blocks.0.attn.qkv.weight"])
    with pytest.raises(UserError, match=r"no 'weights' entry but several state dicts \['model', 'ema'\]"):
        import_selfflow(_tiny_pixel_model(), path, key="weights", verbose=False)
    only_ema = tmp_path / "ema_only.pt"
    torch.save({"ema": ema}, only_ema)
    report = import_selfflow(_tiny_pixel_model(), only_ema, verbose=False)
    assert "'ema' entry (the only one; no 'model' entry)" in report.source


def test_legacy_non_zip_file_loads_and_garbage_is_named(tmp_path):
    state = official_state_dict(depth=1, width=64, seed=4)
    legacy = tmp_path / "legacy.pt"
    torch.save({"model": state}, legacy, _use_new_zipfile_serialization=False)  # cannot be memory-mapped
    model = _tiny_pixel_model()
    report = import_selfflow(model, legacy, verbose=False)
    assert "'model' entry" in report.source and len(report.loaded) > 10
    torch.testing.assert_close(model.blocks[0].mlp.fc1.weight, state["blocks.0.mlp.fc1.weight"])
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint" * 8)
    with pytest.raises(UserError, match=r"junk\.pt cannot be read as a PyTorch checkpoint"):
        import_selfflow(_tiny_pixel_model(), junk, verbose=False)
