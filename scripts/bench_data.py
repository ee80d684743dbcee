#!/usr/bin/env python
"""Benchmark the RT-1 training data pipeline against raw JPEG decoding, on synthetic 256x320 JPEG data.

    python scripts/bench_data.py                       # defaults: 48 episodes, 2 workers, full 256x320 + 128x160
    python scripts/bench_data.py --heights 256 --workers 0 --threads 2
    python scripts/bench_data.py --backend python tf --workers 0   # both backends (tf: pip install tensorflow-cpu)

For each frame size it runs one full epoch of `RT1Windows` through `make_loader` (TFRecord
read + CRC, record parse, JPEG decode + resize, window assembly, collate) and normalises
every batch as training does (frames -> float in [-1, 1], actions -> 8-D tokens). It prints
windows/s, decoded frames/s (each stored frame is decoded once per epoch), delivered frames/s
(windows/s x (k + H) frames handed to the model) and their ratios to raw PIL JPEG decode speed
of the same frames measured in the same run on the same cores (a thread pool over the stored
JPEG bytes, full size, no resize). `--backend tf` also runs the pipeline with the tf.data reader
(`TFRLDSReader`) and measures raw TF JPEG decode (tf.data, `num_parallel_calls=AUTOTUNE`).
"""
from __future__ import annotations

import argparse
import gc
import io
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image

from selfflow_robot import constants as C
from selfflow_robot.data.dataset import RT1Windows, make_loader
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.data.statistics import ActionNormalizer, load_or_compute_statistics
from selfflow_robot.data.synth import SynthConfig, write_synthetic
from selfflow_robot.data.tf_backend import decode_frames_tf
from selfflow_robot.data.windows import WindowConfig


def _cpu() -> float:
    """CPU seconds used so far by this process (all threads) and its finished children (DataLoader workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def raw_decode_fps(images: list[bytes], threads: int, repeats: int = 2) -> tuple[float, float]:
    """(frames per wall second, frames per CPU second) of plain PIL decode (full size, no resize)."""
    def dec(b: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))

    best, best_cpu = 0.0, 0.0
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(dec, images[:32]))  # warm-up
        for _ in range(repeats):
            t, c = time.perf_counter(), _cpu()
            list(pool.map(dec, images))
            best = max(best, len(images) / (time.perf_counter() - t))
            best_cpu = max(best_cpu, len(images) / max(_cpu() - c, 1e-9))
    return best, best_cpu


def raw_tf_decode_fps(images: list[bytes], threads: int, repeats: int = 2) -> tuple[float, float]:
    """(frames per wall second, frames per CPU second) of TF JPEG decode in tf.data (full size, no resize)."""
    decode_frames_tf(images[:32], threads=threads)  # warm-up (TF start, graph tracing)
    best, best_cpu = 0.0, 0.0
    for _ in range(repeats):
        t, c = time.perf_counter(), _cpu()
        decode_frames_tf(images, threads=threads)
        best = max(best, len(images) / (time.perf_counter() - t))
        best_cpu = max(best_cpu, len(images) / max(_cpu() - c, 1e-9))
    return best, best_cpu


def pipeline_fps(data_dir: str, height: int, batch: int, workers: int, threads: int, stats, backend: str = "python"
                 ) -> tuple[float, float, float]:
    """(windows per wall second, stored frames per wall second, windows per CPU second) of one epoch."""
    norm = ActionNormalizer(stats)
    ds = RT1Windows(data_dir, WindowConfig(context_frames=2, horizon=4, height=height), split="all",
                    shuffle=True, infinite=False, shuffle_episodes=8, decode_threads=threads, backend=backend)
    n_frames = sum(len(e) for e in ds.reader)
    loader = make_loader(ds, batch_size=batch, num_workers=workers)
    windows = 0
    t, c = time.perf_counter(), _cpu()
    for b in loader:
        ctx = b[C.CONTEXT_FRAMES].float().div_(127.5).sub_(1.0)
        fut = b[C.FUTURE_FRAMES].float().div_(127.5).sub_(1.0)
        tok = norm.normalize(b[C.ACTIONS_RAW], b[C.TERMINATE_FLAG])
        assert torch.isfinite(tok).all() and ctx.shape[0] == fut.shape[0]
        windows += len(tok)
    dt = time.perf_counter() - t
    del loader  # workers exit and are joined: their CPU time is now counted in _cpu()

    gc.collect()
    return windows / dt, n_frames / dt, windows / max(_cpu() - c, 1e-9)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=48)
    p.add_argument("--min-steps", type=int, default=30)
    p.add_argument("--max-steps", type=int, default=40)
    p.add_argument("--heights", type=int, nargs="+", default=[256, 128], help="frame heights (width keeps 256:320)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader workers (0 = in-process)")
    p.add_argument("--threads", type=int, default=0, help="decode threads per process (0 = auto)")
    p.add_argument("--repeats", type=int, default=2, help="epochs per size; the best is reported (shared machines)")
    p.add_argument("--backend", nargs="+", default=["python"], choices=["python", "tf"],
                   help="episode reader backends to run (tf needs tensorflow-cpu)")
    p.add_argument("--data", default="", help="an existing dataset to use instead of a fresh synthetic one")
    args = p.parse_args(argv)

    torch.set_num_threads(1)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if not data:
            t = time.perf_counter()
            data = str(write_synthetic(SynthConfig(output_dir=tmp, episodes=args.episodes, min_steps=args.min_steps,
                                                   max_steps=args.max_steps, shards=4, seed=0)))
            print(f"synthetic dataset: {args.episodes} episodes in {time.perf_counter() - t:.1f}s -> {data}")
        reader = RLDSReader(data)
        images = [im for e in reader for im in e.images]
        stats, _ = load_or_compute_statistics(reader)
        raw1, cpu1 = raw_decode_fps(images, 1, args.repeats)
        rawn, cpun = raw_decode_fps(images, cores, args.repeats)
        raw, raw_cpu = max(raw1, rawn), max(cpu1, cpun)
        per_window = 2 + 4  # k + H of the benchmark window
        print(f"{len(images)} frames of 256x320 JPEG ({np.mean([len(b) for b in images]) / 1024:.1f} KiB avg); "
              f"{cores} cores")
        print(f"raw PIL JPEG decode: {raw1:.0f} frames/s on 1 thread, {rawn:.0f} frames/s on {cores} threads; "
              f"reference {raw:.0f} frames/s, {raw_cpu:.0f} frames per CPU-second")
        if "tf" in args.backend:
            tf_raw, tf_cpu = raw_tf_decode_fps(images, cores, args.repeats)
            print(f"raw TF JPEG decode (tf.data): {tf_raw:.0f} frames/s on {cores} threads, {tf_cpu:.0f} frames per "
                  f"CPU-second (ratios below stay relative to PIL)")
        print(f"{'size':>8} {'backend':>7} {'workers':>7} {'windows/s':>10} {'decoded fr/s':>13} "
              f"{'delivered fr/s':>15} "
              f"{'ratio':>6} | {'delivered fr/CPU-s':>18} {'ratio':>6}")
        for h, backend, workers in ((h, b, w) for h in args.heights for b in args.backend for w in args.workers):
            runs = [pipeline_fps(data, h, args.batch, workers, args.threads, stats, backend)
                    for _ in range(max(1, args.repeats))]
            wps, fps = max(r[0] for r in runs), max(r[1] for r in runs)
            cpu_delivered = max(r[2] for r in runs) * per_window
            w = round(h * 320 / 256)
            print(f"{f'{h}x{w}':>8} {backend:>7} {workers:>7} {wps:>10.0f} {fps:>13.0f} {wps * per_window:>15.0f} "
                  f"{wps * per_window / raw:>6.2f} | {cpu_delivered:>18.0f} {cpu_delivered / raw_cpu:>6.2f}")
    if hasattr(os, "getloadavg"):
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {cores} cores (other jobs slow every figure)")
    print("goal: >= 1000 frames/s and ratio >= 0.6. window: k=2 context + H=4 future frames.\n"
          "decoded = stored frames per second (each decoded once per epoch); delivered = windows/s x (k+H), each "
          "delivered frame copied and normalised; ratio = delivered frames / raw decoded frames per wall second "
          "(left) or per CPU second (right, independent of other jobs on the machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
