"""Size presets as the `model` group, Hydra composition, config validation, xl parameter count."""
import pytest
import torch

from selfflow_robot.config import group_options, load_config, structured
from selfflow_robot.errors import ConfigError
from selfflow_robot.model import SIZES, DiTConfig, build_model, dit_config
from selfflow_robot.train.config import TrainRunConfig


@pytest.mark.parametrize("size", list(SIZES))
def test_model_group_options_are_the_size_table(size):
    """`model=<size>` composes to the preset of the one size table: no YAML copy to keep equal."""
    cfg = load_config("train", [f"model={size}"], schema=TrainRunConfig)
    assert structured(DiTConfig, cfg.model) == SIZES[size]
    assert group_options("train", schema=TrainRunConfig)["model"] == (sorted(SIZES), "tiny")


def test_hydra_composes_model_group():
    cfg = load_config("train", ["model=small", "model.horizon=2", "model.image_size=[64,80]"], schema=TrainRunConfig)
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
    (dict(image_size=(64, 80, 3)), r"\[height, width\]"),
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
