"""Checkpoints and run folders under real failures (issue 22, items 9, 13-15): a save that runs out of space, a
damaged newest checkpoint at `--resume` / load time, a read-only `output_dir`, a corrupt frame while training.

Nothing is mocked: the out-of-space case runs the real save in a child process under `RLIMIT_FSIZE` (with
SIGXFSZ ignored, so the OS answers the over-limit write with EFBIG, "File too large"); the read-only case
runs the real CLI on a 0555 folder (as root, in a child without CAP_DAC_OVERRIDE so the permission bits apply).
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest

from selfflow_robot import checkpoint as ck
from selfflow_robot import constants as C
from selfflow_robot.data import schema
from selfflow_robot.data.synth import TASKS, synth_episode
from selfflow_robot.data.writer import DatasetWriter, episode_to_features

FSIZE_LIMIT = 256 * 1024  # bytes: the config and statistics fit, the 1 MiB model file does not
SAVE = """
import numpy as np, torch
from selfflow_robot import checkpoint as ck

def save(run, step, value=0.0, big="weights"):
    w = torch.full((512, 512) if big == "weights" else (8, 8), float(value))  # 1 MiB per weights file, or tiny
    optim = torch.zeros((512, 512) if big == "optimizer" else (4,))          # ... or a 1 MiB optimizer state
    return ck.save_checkpoint(run, step, config={"step": step}, model_state={"w": w}, ema_state={"w": w + 1},
                              statistics={"a": [1.0]}, language_table={"pick": np.ones(512, np.float32)},
                              trainer_state={"step": step, "optimizer": {"m": optim}}, keep_last=5)
"""
_namespace: dict = {}
exec(SAVE, _namespace)  # the same code saves here and in the size-limited child process
_save = _namespace["save"]


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # the over-limit write fails with EFBIG instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE_LIMIT, FSIZE_LIMIT))


def test_save_out_of_space_says_what_where_how_much_and_cleans_up(tmp_path):
    run = tmp_path / "run"
    _save(run, 1)  # an earlier complete checkpoint, written without a limit
    script = SAVE + f"try:\n    save({str(run)!r}, 2)\nexcept ck.CheckpointError as e:\n    print('ERROR', e)\n"
    proc = subprocess.run([sys.executable, "-c", script], preexec_fn=_limit_file_size, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    msg = proc.stdout.strip()
    assert msg.startswith("ERROR cannot save checkpoint step 2: a file-size limit was hit (File too large)"), msg
    assert f"while writing {run / 'checkpoints'}/.tmp-step-0000002-" in msg and "model.safetensors" in msg
    assert "needs about 2.0" in msg and "MiB" in msg and "free" in msg                     # how much, and where
    assert f"newest complete checkpoint is still {run / 'checkpoints' / 'step-0000001'}" in msg
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-0000001"]  # temp folder removed
    assert ck.find_checkpoint(run).name == "step-0000001"
    # torch.save of the trainer state reports a failed write as "unexpected pos": the OS error is named instead
    script = SAVE + f"try:\n    save({str(run)!r}, 3, big='optimizer')\nexcept ck.CheckpointError as e:\n" \
                    "    print('ERROR', e)\n"
    proc = subprocess.run([sys.executable, "-c", script], preexec_fn=_limit_file_size, capture_output=True,
                          text=True, timeout=120)
    msg = proc.stdout.strip()
    assert msg.startswith("ERROR cannot save checkpoint step 3: a file-size limit was hit (File too large)"), msg
    assert "trainer_state.pt" in msg and "unexpected pos" not in msg
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-0000001"]


def test_train_stops_with_one_line_when_the_disk_fills(train_data, train_cli, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run(train_cli.args(train_data, run, "train.steps=2"), env=train_cli.env(),
                          preexec_fn=_limit_file_size, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot save checkpoint step 2: a file-size limit was hit"), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "unexpected pos" not in proc.stderr
    assert not [p for p in (run / "checkpoints").iterdir()]


def test_damaged_checkpoints_are_refused_or_skipped_with_a_warning(tmp_path, caplog):
    run = tmp_path / "run"
    s1, s2, s3 = (_save(run, i, float(i)) for i in (1, 2, 3))
    manifest = json.loads((s3 / ck.MANIFEST_FILE).read_text())
    assert set(manifest["files"]) == set(ck.REQUIRED_FILES)
    # truncate the newest: a run folder falls back to step 2 with a warning; the step folder itself is refused
    with open(s3 / C.MODEL_FILE, "r+b") as f:
        f.truncate(1000)
    with caplog.at_level(logging.WARNING):
        assert ck.find_checkpoint(run) == s2
    assert "skipping a damaged checkpoint" in caplog.text and "model.safetensors is 1000 bytes" in caplog.text
    with pytest.raises(ck.CheckpointError, match=r"step-0000003 is damaged: model.safetensors is 1000 bytes, its "
                                                 r"manifest says \d+ bytes"):
        ck.find_checkpoint(s3)
    # same size, other bytes: only the checksum sees it (asked for at resume and by the loader)
    ema = bytearray((s2 / C.EMA_FILE).read_bytes())
    ema[-5] ^= 0xFF
    (s2 / C.EMA_FILE).write_bytes(bytes(ema))
    assert ck.latest_checkpoint(run) == s2
    assert ck.latest_checkpoint(run, checksums=True) == s1
    with pytest.raises(ck.CheckpointError, match="ema.safetensors does not match the SHA-256"):
        ck.find_checkpoint(s2, checksums=[C.EMA_FILE])
    # every one damaged: an error, never a silent fresh start
    (s1 / C.STATS_FILE).write_text("{}")
    with pytest.raises(ck.CheckpointError, match="every checkpoint under .* is damaged"):
        ck.latest_checkpoint(run, checksums=True)
    # a checkpoint written before manifests existed still loads (only its files' presence is checked)
    (s3 / ck.MANIFEST_FILE).unlink()
    assert ck.find_checkpoint(s3) == s3 and ck.latest_checkpoint(run) == s3
    with pytest.raises(ck.CheckpointError, match=r"model.safetensors cannot be read .*damaged"):
        ck.load_weights(s3)  # ... and its truncated file is named when read


def test_resume_and_the_loader_fall_back_from_a_truncated_newest_checkpoint(train_data, train_cli, tmp_path):
    run = tmp_path / "run"
    train_cli.ok(train_cli.run(train_data, run, "train.steps=4", "train.save_every=2", "train.val_every=0"))
    step2, step4 = (run / "checkpoints" / f"step-000000{i}" for i in (2, 4))
    with open(step4 / C.TRAINER_STATE_FILE, "r+b") as f:
        f.truncate(100)
    pre = ck.load_pretrained(run)  # what serve, eval and export load
    assert pre.path == step2
    with pytest.raises(ck.CheckpointError, match="trainer_state.pt is 100 bytes"):
        ck.load_pretrained(step4)
    proc = train_cli.run(train_data, run, "train.steps=6", "train.save_every=2", "train.val_every=0", "--resume")
    train_cli.ok(proc)
    assert "skipping a damaged checkpoint" in proc.stderr and "trainer_state.pt is 100 bytes" in proc.stderr
    assert f"resume: continuing from {step2} (step 2)" in proc.stdout
    assert [s for s, _ in ck.list_checkpoints(run)] == [2, 4, 6]
    ck.verify_checkpoint(step4, checksums=True)  # re-saved whole


def _without_permission_override() -> None:
    """As root, drop CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH from the bounding set before exec: the child stays
    uid 0 (it can read the interpreter under /root) but file permission bits now apply to it."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_read_only_output_dir_fails_before_any_work(train_data, train_cli, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    preexec = _without_permission_override if os.geteuid() == 0 else None
    try:
        for out in (ro, ro / "run"):  # the folder itself, or one to be made inside it
            proc = subprocess.run(train_cli.args(train_data, out, "train.steps=2"), env=train_cli.env(),
                                  preexec_fn=preexec, capture_output=True, text=True, timeout=300)
            if proc.returncode != 2 and "Operation not permitted" in proc.stderr:
                pytest.skip("cannot drop CAP_DAC_OVERRIDE here")
            assert proc.returncode == 2, proc.stderr[-3000:]
            err = proc.stderr.strip().splitlines()[-1]
            assert err.startswith(f"error: output_dir={out} is not writable") and "Permission denied" in err, err
            assert "Traceback" not in proc.stderr and "train:" not in proc.stdout  # nothing was built or run
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o755)


def test_train_names_a_corrupt_frame_and_skips_its_episode(train_cli, tmp_path):
    """Item 9 end to end: the CLI error names file, episode and step; data.skip_bad_episodes=true trains on."""
    rng = np.random.default_rng(0)
    names = [list(TASKS)[i % len(TASKS)] for i in range(6)]
    feats = [episode_to_features(synth_episode(rng, name, 8), validate=False) for name in names]
    key = f"steps/{schema.IMAGE}"
    jpeg = feats[3][key][5]
    sos = jpeg.index(b"\xff\xda")  # keep the header (the reader's check passes), replace the body by noise
    feats[3][key][5] = jpeg[:sos + 20] + rng.integers(0, 256, len(jpeg) - sos - 20, dtype=np.uint8).tobytes()
    data = tmp_path / "data"
    with DatasetWriter(data, validate=False) as w:
        for f in feats:
            w.write_features(f)
    args = ("train.steps=2", "train.val_every=0", "data.val_fraction=0", "data.shuffle_episodes=6")
    proc = train_cli.run(data, tmp_path / "run", *args)
    assert proc.returncode == 2, proc.stderr[-3000:]
    err = proc.stderr.strip().splitlines()[-1]
    assert err.startswith("error: ") and "episode 3 (record 3)" in err and "the frame at step 5" in err, err
    assert "tfrecord" in err and "Traceback" not in proc.stderr
    ok = train_cli.run(data, tmp_path / "run2", *args, "data.skip_bad_episodes=true")
    train_cli.ok(ok)
    assert "skipping bad episode" in ok.stderr and "step 5" in ok.stderr
