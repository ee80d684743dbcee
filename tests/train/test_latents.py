"""The latent cache (`data.latents`, `selfflow-robot data encode`): tokens equal the codec's, the cache is reused
while data and codec stay the same and rebuilt when either changes, damage is found, and training on cached
tokens is the same training as on decoded frames."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from selfflow_robot import constants as C
from selfflow_robot.cli import main as cli_main
from selfflow_robot.data.backend import open_reader
from selfflow_robot.data.dataset import RT1Windows
from selfflow_robot.data.frames import decode_frames
from selfflow_robot.data.latent_cache import MANIFEST_FILE, TOKENS_FILE, LatentCache, cache_key, open_latent_cache
from selfflow_robot.data.synth import SynthConfig, write_synthetic
from selfflow_robot.data.windows import WindowConfig
from selfflow_robot.errors import DataError
from selfflow_robot.model.autoencoder import AutoencoderConfig, FrameAutoencoder
from selfflow_robot.model.codecs import AECodec
from selfflow_robot.train.latents import frame_tokens, prepare_latents
from selfflow_robot.train.logger import read_metrics

SIZE = (32, 40)


def _ae_codec(seed: int) -> AECodec:
    torch.manual_seed(seed)
    ae = FrameAutoencoder(AutoencoderConfig(image_size=list(SIZE), latent_channels=4, downsample=4, width=8))
    return AECodec(ae.eval(), SIZE, patch_size=2)


def test_cached_tokens_are_the_codecs_tokens_of_every_frame(train_data, tmp_path):
    reader, codec = open_reader(train_data), _ae_codec(0)
    cache = prepare_latents(reader, tmp_path / "lat", codec, SIZE, progress=False)
    assert sorted(cache.episodes) == reader.episode_ids
    ep = reader.read(3)
    frames = torch.from_numpy(decode_frames(ep.images, SIZE))
    want = codec.encode(frames[None])[0].reshape(len(ep), *cache.token_shape)
    torch.testing.assert_close(torch.from_numpy(np.array(cache.frames(3))), want, rtol=1e-5, atol=1e-5)
    # a window read from the cache carries the same tokens the codec gives for the window's decoded frames
    window = WindowConfig(context_frames=2, horizon=3, height=SIZE[0], width=SIZE[1])
    plain = RT1Windows(reader, window, split="all", shuffle=False)
    cached = RT1Windows(reader, window, split="all", shuffle=False, latents=cache)
    a, b = next(iter(plain)), next(iter(cached))
    assert a[C.CONTEXT_FRAMES].dtype == np.uint8 and b[C.CONTEXT_FRAMES].dtype == np.float32
    encode = frame_tokens(codec.encode)
    for key in (C.CONTEXT_FRAMES, C.FUTURE_FRAMES):
        torch.testing.assert_close(encode(torch.from_numpy(np.array(b[key]))[None]),
                                   encode(torch.from_numpy(a[key])[None]), rtol=1e-5, atol=1e-5)


def test_the_cache_is_reused_and_rebuilt_when_the_codec_or_the_data_change(train_data, tmp_path, capsys):
    reader, folder = open_reader(train_data), tmp_path / "lat"
    prepare_latents(reader, folder, _ae_codec(0), SIZE, progress=False)
    stamp = (folder / MANIFEST_FILE).stat().st_mtime_ns
    prepare_latents(reader, folder, _ae_codec(0), SIZE, progress=False)     # same weights: reused
    assert (folder / MANIFEST_FILE).stat().st_mtime_ns == stamp and "is up to date" in capsys.readouterr().out
    other = _ae_codec(1)                                                    # other weights: stale
    assert open_latent_cache(folder, cache_key(reader, other.fingerprint(), SIZE))[1].endswith("another codec")
    rebuilt = prepare_latents(reader, folder, other, SIZE, progress=False)
    assert rebuilt.key["codec"] == other.fingerprint() and not list(tmp_path.glob(".lat.*"))
    changed = tmp_path / "data2"                                            # other data: stale
    write_synthetic(SynthConfig(output_dir=str(changed), episodes=5, min_steps=8, max_steps=12, seed=4))
    cache, why = open_latent_cache(folder, cache_key(open_reader(changed), other.fingerprint(), SIZE))
    assert cache is None and "another dataset" in why


def test_a_damaged_cache_says_which_episode_and_what_to_do(train_data, tmp_path):
    folder = tmp_path / "lat"
    cache = prepare_latents(open_reader(train_data), folder, _ae_codec(0), SIZE, progress=False)
    start, length, _ = cache.episodes[2]
    with open(folder / TOKENS_FILE, "r+b") as f:          # flip one byte inside episode 2
        f.seek((start + length // 2) * cache.token_shape[0] * cache.token_shape[1] * 4)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0xFF]))
    fresh = LatentCache(folder)
    fresh.frames(1)                                       # other episodes still read
    with pytest.raises(DataError, match="episode 2 do not match their checksum.*encode again"):
        fresh.frames(2)
    with open(folder / TOKENS_FILE, "r+b") as f:          # a truncated file is found on open
        f.truncate(100)
    with pytest.raises(DataError, match="damaged"):
        LatentCache(folder)
    (folder / MANIFEST_FILE).unlink()                     # an unfinished build is no cache at all
    assert open_latent_cache(folder, cache.key)[0] is None


def test_training_on_cached_tokens_is_training_on_decoded_frames(train_data, train_cli, tmp_path):
    """Pixel tokens are exact, so a run reading the cache logs the very losses of a run decoding every frame."""
    steps = ("train.steps=3", "train.val_every=0", "train.save_every=3")
    plain, cached, shared = tmp_path / "plain", tmp_path / "cached", tmp_path / "shared_cache"
    train_cli.ok(train_cli.run(train_data, plain, *steps, "data.latents=off"))
    proc = train_cli.run(train_data, cached, *steps, f"data.latents={shared}")
    train_cli.ok(proc)
    assert "encoding every frame once" in proc.stdout and (shared / MANIFEST_FILE).is_file()
    losses = [[r["loss/total"] for r in read_metrics(run) if "loss/total" in r] for run in (plain, cached)]
    assert len(losses[0]) == 3 and losses[0] == losses[1]
    # `data encode` with the same overrides finds that cache up to date; with a latent codec `auto` caches too
    args = ["data", "encode", *train_cli.fast, f"data.path={train_data}", f"output_dir={cached}",
            f"data.latents={shared}"]
    assert cli_main(args) == 0
    assert json.loads((shared / MANIFEST_FILE).read_text())["frames"] == sum(
        len(ep) for ep in open_reader(train_data))
