"""Size presets, their YAML mirrors, Hydra composition, config validation, xl parameter count."""
import dataclasses

import pytest
import torch
from omegaconf import OmegaConf

from selfflow_robot.config import config_dir, structured
from selfflow_robot.errors import ConfigError
from selfflow_robot.model import SIZES, DiTConfig, build_model, dit_config


@pytest.mark.parametrize("size", list(SIZES))
def test_yaml_mirrors_size_preset(size):
    yaml = OmegaConf.load(config_dir() / "model" / f"{size}.yaml")
    assert set(yaml.keys()) == {f.name for f in dataclasses.fields(DiTConfig)}
    assert structured(DiTConfig, yaml) == SIZES[size]


def test_hydra_composes_model_group(tmp_path):
    """The train config will say `defaults: [model: tiny, objective: selfflow]`; check that composition here."""
    from hydra import compose, initialize_config_dir

    (tmp_path / "model").symlink_to(config_dir() / "model")
    (tmp_path / "objective").symlink_to(config_dir() / "objective")
    (tmp_path / "probe.yaml").write_text("defaults:\n  - model: tiny\n  - objective: selfflow\n  - _self_\n")
    with initialize_config_dir(config_dir=str(tmp_path), version_base="1.3"):
        cfg = compose("probe", overrides=["model=small", "model.horizon=2", "model.image_size=[64,80]"])
    model_cfg = structured(DiTConfig, cfg.model)
    assert (model_cfg.depth, model_cfg.horizon, model_cfg.image_size) == (12, 2, (64, 80))
    assert cfg.objective.name == "selfflow"


def test_xl_is_sit_xl2_geometry_with_675m_transformer():
    with torch.device("meta"):
        model, codec = build_model(SIZES["xl"], with_codec=False)
    assert codec is None
    cfg = model.cfg
    assert (cfg.depth, cfg.hidden_size, cfg.num_heads, cfg.mlp_ratio) == (28, 1152, 16, 4.0)
    transformer = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("projector."))
    projector = sum(p.numel() for p in model.projector.parameters())
    assert abs(transformer - 675e6) <= 0.01 * 675e6, transformer
    assert projector == 1152 * 2304 * 2 + 2304 + 1152  # the released SimpleHead, 5.31M
    assert all(p.is_meta for p in model.parameters())


@pytest.mark.parametrize("size", ["tiny", "small", "base"])
def test_every_size_builds_and_runs_on_meta(size):
    with torch.device("meta"):
        model, _ = build_model(SIZES[size], with_codec=False)
        cfg = model.cfg
        x = {g: torch.randn(1, cfg.num_tokens(g), cfg.token_dim(g)) for g in ("context", "future", "actions")}
        out = model(x, torch.rand(1), torch.randn(1, 512))
    assert out.velocity["future"].shape == x["future"].shape


@pytest.mark.parametrize("bad, match", [
    (dict(hidden_size=130, num_heads=4), "divisible by model.num_heads"),
    (dict(codec="vqgan"), "must be one of"),
    (dict(image_size=(60, 80)), "divisible by 8"),
    (dict(codec="vae", vae="", patch_size=2), "model.vae="),
    (dict(depth=0), "depth"),
])
def test_bad_model_config_raises_config_error(bad, match):
    with pytest.raises(ConfigError, match=match):
        dit_config("tiny", **bad)


def test_structured_rejects_unknown_key():
    with pytest.raises(ConfigError, match="DiTConfig"):
        structured(DiTConfig, {"widht": 3})


def test_window_token_counts():
    cfg = dit_config("tiny")  # 64x80, patch 8, k=2, H=4
    assert cfg.grid == (8, 10)
    assert (cfg.num_tokens("context"), cfg.num_tokens("future"), cfg.num_tokens("actions")) == (160, 320, 4)
    assert cfg.frame_token_dim == 192
    xl = SIZES["xl"]
    assert xl.grid == (16, 20) and xl.frame_token_dim == 16
