"""A well-behaved client's round trip with and without a hostile client sending huge msgpack maps.

Starts `selfflow-robot serve` in a subprocess, measures one client's `infer` round trip (and `/healthz`)
alone, then again while `--attackers` other processes each send, as fast as the server answers, one
binary frame holding a msgpack map of `--keys` entries (700,000 keys = about 5.3 MiB, the audit's attack,
issue 22). Prints both p50s side by side; the server's goal is attacked p50 <= 2x unloaded p50.

    python scripts/bench_serve_attack.py --ckpt runs/demo
    python scripts/bench_serve_attack.py                      # trains a tiny checkpoint first (~30 s)
    python scripts/bench_serve_attack.py --attackers 2 --requests 60 --json attack.json

Without --ckpt a tiny checkpoint is made like the serving tests make theirs (`data synth` + 2 `train` steps).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import msgpack
import numpy as np

from selfflow_robot.checkpoint import find_checkpoint
from selfflow_robot.cli import main as cli
from selfflow_robot.constants import LANGUAGE_TABLE_FILE
from selfflow_robot.data.language import LanguageTable
from selfflow_robot.policies.client import PolicyClient


def attack_payload(keys: int) -> bytes:
    """One frame: ``{"type": "infer", "000000": 0, "000001": 0, ...}`` with `keys` entries in all."""
    msg = {"type": "infer", **{f"{i:06x}": 0 for i in range(keys - 1)}}
    return msgpack.packb(msg, use_bin_type=True)


def run_attacker(uri: str, keys: int) -> int:
    """Attacker mode (a subprocess): send the payload, read the reply, repeat until killed."""
    payload = attack_payload(keys)
    codes: dict[str, int] = {}
    with PolicyClient(uri, timeout=600) as client:
        print(f"ready {len(payload)}", flush=True)
        while True:
            try:
                reply = client.send_raw(payload)
            except Exception as e:  # noqa: BLE001 - the server may close this connection; say how and stop
                print(f"closed {type(e).__name__}: {e} after {codes}", flush=True)
                return 0
            code = str(reply.get("code", reply.get("type")))
            codes[code] = codes.get(code, 0) + 1
            print(f"reply {code}", flush=True)


def _tiny_checkpoint(root: Path) -> Path:
    assert cli(["data", "synth", f"output_dir={root / 'synth'}", "episodes=4", "min_steps=12", "max_steps=16"]) == 0
    assert cli(["train", "train=cpu", "model=tiny", f"data.path={root / 'synth'}", "train.steps=2",
                "train.batch_size=4", "train.save_every=2", "train.val_every=0", "device=cpu",
                f"output_dir={root / 'run'}"]) == 0
    return find_checkpoint(root / "run")


def _start_server(ckpt: Path, threads: int, steps: int | None) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "selfflow_robot.cli", "serve", f"ckpt={ckpt}", "port=0", "device=cpu",
           f"threads={threads}"] + ([f"steps={steps}"] if steps else [])
    env = {**os.environ, "SELFFLOW_ROBOT_SERVE_TOKEN": ""}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        m = re.search(r"on ws://[^:]+:(\d+) ", line)
        if m:
            return proc, int(m.group(1))
    raise SystemExit("the server exited before listening:\n" + "".join(lines))


def _round_trips(client: PolicyClient, image: np.ndarray, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        client.infer(image)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def _health_trips(port: int, n: int) -> list[float]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        with opener.open(f"http://127.0.0.1:{port}/healthz", timeout=120) as r:
            r.read()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def _p50(ms: list[float]) -> float:
    return float(np.percentile(np.asarray(ms), 50))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", type=Path, help="checkpoint step or run dir (default: train a tiny one)")
    p.add_argument("--attackers", type=int, default=1, help="hostile client processes")
    p.add_argument("--keys", type=int, default=700_000, help="entries in each hostile msgpack map")
    p.add_argument("--requests", type=int, default=40, help="timed infer round trips per phase")
    p.add_argument("--threads", type=int, default=1, help="the server's torch threads")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the checkpoint's)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--attacker", metavar="URI", help=argparse.SUPPRESS)  # internal: run as one attacker
    args = p.parse_args(argv)
    if args.attacker:
        return run_attacker(args.attacker, args.keys)

    with tempfile.TemporaryDirectory(prefix="bench-attack-") as tmp:
        ckpt = find_checkpoint(args.ckpt) if args.ckpt else _tiny_checkpoint(Path(tmp))
        instruction = LanguageTable.load(ckpt / LANGUAGE_TABLE_FILE).instructions[0]
        server, port = _start_server(ckpt, args.threads, args.steps)
        uri = f"ws://127.0.0.1:{port}"
        attackers: list[subprocess.Popen] = []
        try:
            image = np.random.default_rng(0).integers(0, 256, (256, 320, 3), dtype=np.uint8)
            with PolicyClient(uri, timeout=600) as victim:
                victim.reset(instruction)
                _round_trips(victim, image, 5)  # warm-up
                alone, health_alone = _round_trips(victim, image, args.requests), _health_trips(port, 20)
                for _ in range(args.attackers):
                    attackers.append(subprocess.Popen(
                        [sys.executable, __file__, "--attacker", uri, "--keys", str(args.keys)],
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
                sizes = [int(a.stdout.readline().split()[-1]) for a in attackers]  # "ready <bytes>"
                for a in attackers:  # the attack is under way once each attacker has a reply
                    a.stdout.readline()
                attacked, health_attacked = _round_trips(victim, image, args.requests), _health_trips(port, 20)
                metrics = victim.metrics()
        finally:
            for a in attackers:
                a.kill()
            server.terminate()
            server.wait(timeout=60)
    result = {
        "victim_p50_ms": {"unloaded": round(_p50(alone), 1), "attacked": round(_p50(attacked), 1)},
        "healthz_p50_ms": {"unloaded": round(_p50(health_alone), 2), "attacked": round(_p50(health_attacked), 2)},
        "ratio": round(_p50(attacked) / _p50(alone), 2),
        "attack": {"clients": args.attackers, "keys": args.keys, "frame_bytes": sizes[0] if sizes else 0},
        "server_errors": metrics.get("errors", {}), "requests": args.requests,
    }
    print(f"victim infer round trip p50: unloaded {result['victim_p50_ms']['unloaded']} ms | "
          f"under attack {result['victim_p50_ms']['attacked']} ms ({result['ratio']}x; goal <= 2x)")
    print(f"/healthz p50:                unloaded {result['healthz_p50_ms']['unloaded']} ms | "
          f"under attack {result['healthz_p50_ms']['attacked']} ms")
    print(f"attack: {args.attackers} client(s), msgpack maps of {args.keys:,} keys "
          f"({result['attack']['frame_bytes'] / 2**20:.1f} MiB each); server errors {result['server_errors']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
