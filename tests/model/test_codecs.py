"""Frame codecs: pixel patches (exact round trip) and a frozen diffusers AutoencoderKL from a local dir."""
import pytest
import torch

from selfflow_robot.errors import ConfigError, UserError
from selfflow_robot.model import PixelCodec, VAECodec, build_model, dit_config
from selfflow_robot.model.codecs import patchify, unpatchify


def test_pixel_codec_round_trip_and_layout():
    codec = PixelCodec((16, 24), 8)
    frames = torch.randint(0, 256, (2, 3, 16, 24, 3), dtype=torch.uint8)
    tokens = codec.encode(frames)
    assert tokens.shape == (2, 3 * 2 * 3, 3 * 64) and codec.token_dim == 192 and codec.grid == (2, 3)
    assert tokens.min() >= -1 and tokens.max() <= 1
    back = codec.decode(tokens, 3)
    assert back.shape == (2, 3, 16, 24, 3)
    torch.testing.assert_close(back * 255, frames.float(), atol=1e-3, rtol=0)
    # token (frame 1, row 0, col 2), channel (c=1, p=3, q=5) is pixel (16*0+3, 8*2+5) of frame 1, channel 1
    expected = frames[0, 1, 3, 21, 1].float() / 127.5 - 1
    torch.testing.assert_close(tokens[0, 1 * 6 + 0 * 3 + 2, 1 * 64 + 3 * 8 + 5], expected)


def test_patchify_inverse():
    x = torch.randn(2, 3, 4, 6, 10)
    torch.testing.assert_close(unpatchify(patchify(x, 2), 3, (3, 5), 2), x)


def test_pixel_codec_rejects_wrong_size():
    with pytest.raises(ValueError, match="resize"):
        PixelCodec((16, 24), 8).encode(torch.zeros(1, 1, 32, 24, 3, dtype=torch.uint8))


def test_build_model_returns_pixel_codec_matching_model():
    model, codec = build_model(dit_config("tiny"))
    assert isinstance(codec, PixelCodec)
    assert codec.token_dim == model.cfg.frame_token_dim and codec.grid == model.cfg.grid


@pytest.fixture(scope="module")
def tiny_vae_dir(tmp_path_factory):
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                                  up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 16),
                                  layers_per_block=1, latent_channels=4, norm_num_groups=4, sample_size=32)
    vae.config  # noqa: B018
    path = tmp_path_factory.mktemp("vae")
    vae.save_pretrained(path)
    return path


def test_vae_codec_from_local_dir(tiny_vae_dir):
    cfg = dit_config("tiny", codec="vae", vae=str(tiny_vae_dir), image_size=(16, 24), patch_size=2,
                     vae_downsample=2, latent_channels=4)
    model, codec = build_model(cfg)
    assert isinstance(codec, VAECodec)
    assert codec.grid == cfg.grid == (4, 6) and codec.token_dim == cfg.frame_token_dim == 16
    assert not any(p.requires_grad for p in codec.parameters())
    frames = torch.randint(0, 256, (2, 3, 16, 24, 3), dtype=torch.uint8)
    tokens = codec.encode(frames)
    assert tokens.shape == (2, 3 * 24, 16)
    torch.testing.assert_close(codec.encode(frames), tokens)  # posterior mean: deterministic
    out = codec.decode(tokens, 3)
    assert out.shape == (2, 3, 16, 24, 3) and out.min() >= 0 and out.max() <= 1
    codec.train()
    assert not codec.vae.training
    # tokens feed the model
    x = {"context": tokens[:, :48], "future": tokens[:, 48:]}
    assert model(x, torch.rand(2), None).velocity["future"].shape == (2, 24, 16)


def test_vae_codec_checks_latent_layout(tiny_vae_dir):
    with pytest.raises(ConfigError, match="vae_downsample=2"):
        build_model(dit_config("tiny", codec="vae", vae=str(tiny_vae_dir), image_size=(16, 16), patch_size=2))


def test_vae_codec_missing_dir_is_user_error(tmp_path):
    pytest.importorskip("diffusers")
    with pytest.raises(UserError, match="could not load the VAE"):
        VAECodec(str(tmp_path / "nope"), (16, 16), 2)
