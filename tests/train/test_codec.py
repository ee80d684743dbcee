"""The frame autoencoder (`model.codec=ae`): `codec train` on real (tiny) RLDS data, the codec, and checkpoints
that carry their autoencoder."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from selfflow_robot import checkpoint as ck
from selfflow_robot.config import structured
from selfflow_robot.data.backend import open_reader
from selfflow_robot.errors import ConfigError, UserError
from selfflow_robot.model.autoencoder import CONFIG_FILE, WEIGHTS_FILE, AutoencoderConfig, FrameAutoencoder, read_report
from selfflow_robot.model.codecs import AECodec
from selfflow_robot.train.codec import CodecTrainConfig, load_frames, reconstruction_psnr, train_codec

SIZE = (32, 40)


@pytest.fixture(scope="module")
def trained_ae(train_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ae")
    cfg = structured(CodecTrainConfig, {"data_path": str(train_data), "output_dir": str(out), "steps": 60,
                                        "batch_size": 8, "lr": 3e-3, "val_fraction": 0.2, "threads": 1,
                                        "codec": {"image_size": list(SIZE), "latent_channels": 4, "downsample": 4,
                                                  "width": 16}})
    return out, train_codec(cfg), cfg


def test_codec_train_writes_the_autoencoder_and_measures_it(trained_ae, train_data):
    out, report, cfg = trained_ae
    assert (out / WEIGHTS_FILE).is_file() and (out / CONFIG_FILE).is_file()
    assert read_report(out)["psnr_val"] == pytest.approx(report["psnr_val"])
    ae = FrameAutoencoder.load(out)
    assert ae.cfg.grid == (8, 10) and float(ae.latent_scale) != 1.0
    # the trained reconstruction beats the untrained one on held-out frames by a wide margin
    frames = load_frames(open_reader(train_data), SIZE, [0, 1], 0)
    torch.manual_seed(0)
    fresh = FrameAutoencoder(ae.cfg).eval()
    assert report["psnr_val"] > 12 and reconstruction_psnr(ae, frames, torch.device("cpu")) > \
        reconstruction_psnr(fresh, frames, torch.device("cpu")) + 3
    with torch.no_grad():   # the latents come out on the unit scale the transformer expects
        z = ae.encode(torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1)
    assert 0.3 < float(z.std()) < 3


def test_the_ae_codec_tokens_round_trip(trained_ae, train_data):
    out, _, _ = trained_ae
    codec = AECodec(FrameAutoencoder.load(out), SIZE, patch_size=2, expect_channels=4, expect_downsample=4)
    assert codec.grid == (4, 5) and codec.token_dim == 4 * 2 * 2
    frames = torch.from_numpy(load_frames(open_reader(train_data), SIZE, [0], 0)[None, :3])   # (1, 3, H, W, 3)
    tokens = codec.encode(frames)
    assert tokens.shape == (1, 3 * 20, 16)
    back = codec.decode(tokens, 3)
    assert back.shape == (1, 3, *SIZE, 3) and 0 <= float(back.min()) and float(back.max()) <= 1
    with pytest.raises(ConfigError, match="latent_channels=4"):
        AECodec(FrameAutoencoder.load(out), SIZE, 2, expect_channels=8)


def test_bad_geometry_and_missing_folders_say_what(tmp_path):
    with pytest.raises(ConfigError, match="divisible"):
        AutoencoderConfig(image_size=(30, 40), downsample=8)
    with pytest.raises(ConfigError, match="power of two"):
        AutoencoderConfig(downsample=6)
    with pytest.raises(UserError, match="codec train"):
        FrameAutoencoder.load(tmp_path)


def test_a_checkpoint_carries_its_autoencoder(trained_ae, train_data, train_cli, tmp_path):
    out, _, _ = trained_ae
    ae = tmp_path / "ae"
    shutil.copytree(out, ae)
    run = tmp_path / "run"
    train_cli.ok(train_cli.run(train_data, run, "train.steps=2", "train.save_every=2", "train.val_every=0",
                               "model.codec=ae", f"model.vae={ae}", "model.latent_channels=4",
                               "model.vae_downsample=4", "model.patch_size=1", "train.draws_per_window=2"))
    step = ck.find_checkpoint(run)
    assert (step / WEIGHTS_FILE).is_file() and (step / CONFIG_FILE).is_file()
    assert (run / "latent_cache" / "manifest.json").is_file()   # data.latents=auto: a latent codec reads a cache
    shutil.rmtree(ae)   # deployed elsewhere: the folder the run was trained with is gone
    pre = ck.load_pretrained(run)
    assert isinstance(pre.codec, AECodec) and pre.codec.grid == (8, 10)
    frames = torch.from_numpy(np.zeros((1, 2, *SIZE, 3), np.uint8))
    assert pre.codec.encode(frames).shape == (1, 2 * 80, 4)
