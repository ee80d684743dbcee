"""The policy server over a REAL socket on 127.0.0.1 with the REAL policy from a real tiny checkpoint."""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter

import numpy as np
import pytest
from serve_fuzz import malformed_frames
from tiny_checkpoint import write_tiny_checkpoint
from websockets.exceptions import ConnectionClosed, InvalidStatus

from selfflow_robot.policies.client import AsyncPolicyClient, PolicyClient, ServerError
from selfflow_robot.policies.serving.engine import SelfFlowEngine
from selfflow_robot.policies.serving.protocol import RequestLimits
from selfflow_robot.policies.serving.server import PolicyServer

LIMITS = RequestLimits(max_image_bytes=300_000, max_image_side=512, max_frames=4, max_instruction_chars=128,
                       max_message_bytes=1_000_000)


def _image(seed: int, h: int = 256, w: int = 320) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _instruction(engine) -> str:
    return engine.policy.language.table.instructions[0]


def _get(url: str, token: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.fixture
def server(engine):
    with PolicyServer(engine, port=0, limits=LIMITS, max_batch=8, batch_wait_ms=5) as srv:
        yield srv


def test_metadata_healthz_metrics_and_one_chunk(server, engine):
    assert server.host == "127.0.0.1"
    with PolicyClient(server.uri) as c:
        meta = c.metadata
        assert meta["chunk_length"] == engine.policy.horizon and meta["action_dim"] == 7
        assert len(meta["action_q01"]) == len(meta["action_q99"]) == 7
        assert meta["limits"]["max_image_bytes"] == LIMITS.max_image_bytes
        c.reset(_instruction(engine))
        reply = c.infer(_image(0))
        assert reply["actions"].shape == (meta["chunk_length"], 7) and reply["actions"].dtype == np.float32
        assert np.isfinite(reply["actions"]).all() and reply["terminate"].shape == (meta["chunk_length"],)
        assert reply["timing"]["batch_size"] == 1 and reply["timing"]["server_ms"] > 0
        status, health = _get(f"http://127.0.0.1:{server.port}/healthz")
        assert status == 200 and health["status"] == "ok"
        metrics = c.metrics()
        assert metrics["requests"]["infer"] == 1 and metrics["latency_ms"]["n"] == 1
        assert _get(f"http://127.0.0.1:{server.port}/nope")[0] == 404


def test_same_session_same_seed_gives_same_chunk_as_the_policy(server, engine):
    """Over the wire == SelfFlowPolicy.infer in-process (same checkpoint, same seed at reset)."""
    instr, img = _instruction(engine), _image(1)
    local = engine.policy.with_options()
    local.reset(instr)
    expected = local.infer({"image": img})["actions"]
    with PolicyClient(server.uri) as c:
        c.reset(instr)
        got = c.infer(img)["actions"]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_auth_required_when_token_is_set(engine):
    with PolicyServer(engine, port=0, token="s3cret-token", limits=LIMITS) as srv:
        for bad in (None, "wrong", "s3cret-token-", "s3cret-toke"):
            with pytest.raises(InvalidStatus) as info:
                PolicyClient(srv.uri, token=bad)
            assert info.value.response.status_code == 401
        assert _get(f"http://127.0.0.1:{srv.port}/metrics")[0] == 401
        assert _get(f"http://127.0.0.1:{srv.port}/metrics", "wrong")[0] == 401
        assert _get(f"http://127.0.0.1:{srv.port}/healthz")[0] == 200  # liveness stays open
        with PolicyClient(srv.uri, token="s3cret-token") as c:
            c.reset(_instruction(engine))
            assert c.infer(_image(2))["actions"].shape[1] == 7
            assert c.metrics()["auth_failures"] == 6


def test_1000_malformed_requests_each_get_an_error_then_valid_requests_work(server, engine):
    instr = _instruction(engine)
    seen: Counter[str] = Counter()
    with PolicyClient(server.uri) as c:
        c.reset(instr)
        for category, frame in malformed_frames(1000, LIMITS, instr):
            reply = c.send_raw(frame)
            assert reply["type"] == "error" and reply["code"] == "bad_request", (category, reply)
            assert reply["message"], category
            seen[category] += 1
        # the same connection still serves valid requests, and keeps its session
        assert c.infer(_image(3))["actions"].shape[1] == 7
        c.reset(instr)
        assert c.infer(_image(3), instruction=instr)["actions"].shape[1] == 7
    with PolicyClient(server.uri) as c2:  # and new connections too
        c2.reset(instr)
        assert c2.infer(_image(4))["actions"].shape[1] == 7
        metrics = c2.metrics()
    print(f"\nmalformed requests per category: {dict(seen)}")
    assert sum(seen.values()) == 1000 and len(seen) >= 20
    assert metrics["errors"]["bad_request"] == 1000 and metrics["requests"]["infer"] == 3


def test_semantic_errors_are_replies_not_crashes(server, engine):
    with PolicyClient(server.uri) as c:
        with pytest.raises(ServerError, match="no instruction yet") as info:
            c.infer(_image(5))
        assert info.value.code == "bad_request"
        with pytest.raises(ServerError, match="(?i)instruction"):
            c.reset("recite the alphabet backwards")
        c.reset(_instruction(engine))
        assert c.infer(_image(5))["actions"].shape[1] == 7


def test_connections_beyond_capacity_get_503(engine):
    with PolicyServer(engine, port=0, max_connections=2) as srv:
        a, b = PolicyClient(srv.uri), PolicyClient(srv.uri)
        with pytest.raises(InvalidStatus) as info:
            PolicyClient(srv.uri)
        assert info.value.response.status_code == 503
        a.close()
        deadline = time.monotonic() + 10
        while srv.metrics.connections_open > 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        with PolicyClient(srv.uri) as c:  # a slot freed up
            c.reset(_instruction(engine))
            assert c.infer(_image(8))["actions"].shape[1] == 7
        b.close()


def test_oversized_frame_closes_that_connection_only(server, engine):
    with PolicyClient(server.uri) as c:
        with pytest.raises(ConnectionClosed) as info:
            c.send_raw(b"\x00" * (LIMITS.max_message_bytes + 1))
        assert info.value.rcvd.code == 1009  # message too big
    with PolicyClient(server.uri) as c:
        c.reset(_instruction(engine))
        assert c.infer(_image(6))["actions"].shape[1] == 7


def test_concurrent_requests_are_batched_and_routed_to_their_sessions(engine):
    """Several clients at once: batches > 1 form, and each client gets exactly its unbatched chunk.

    Client i first makes i requests on its own, so every session's noise generator is in a different
    state and a mix-up between sessions in the batch would show.
    """
    instr, n = _instruction(engine), 4
    images = [_image(100 + i) for i in range(n)]
    expected = []
    for i, img in enumerate(images):  # unbatched reference: the policy in-process, same request sequence
        local = engine.policy.with_options()
        local.reset(instr)
        for _ in range(i):
            local.infer({"image": img})
        expected.append(local.infer({"image": img})["actions"])

    async def run(uri: str):
        clients = [await AsyncPolicyClient.connect(uri) for _ in range(n)]
        try:
            await asyncio.gather(*(c.reset(instr) for c in clients))
            for i, (c, img) in enumerate(zip(clients, images)):
                for _ in range(i):
                    await c.infer(img)
            return await asyncio.gather(*(c.infer(img) for c, img in zip(clients, images)))
        finally:
            await asyncio.gather(*(c.close() for c in clients))

    with PolicyServer(engine, port=0, limits=LIMITS, max_batch=8, batch_wait_ms=200) as srv:
        replies = asyncio.run(run(srv.uri))
        batches = srv.metrics.snapshot()["batch_sizes"]
    assert max(r["timing"]["batch_size"] for r in replies) > 1, batches
    for got, exp in zip(replies, expected):
        np.testing.assert_allclose(got["actions"], exp, atol=1e-4)
    assert not np.allclose(expected[0], expected[1])  # the sessions really differ


@pytest.mark.slow
def test_eight_concurrent_clients_for_30_seconds(server, engine):
    instr, duration, errors, latencies = _instruction(engine), 30.0, [], []
    lock = threading.Lock()

    def worker(i: int) -> None:
        try:
            with PolicyClient(server.uri) as c:
                c.reset(instr)
                end, k = time.monotonic() + duration, 0
                while time.monotonic() < end:
                    t0 = time.perf_counter()
                    reply = c.infer(_image(1000 * i + k % 7, 128, 160))
                    with lock:
                        latencies.append((time.perf_counter() - t0) * 1e3)
                    assert reply["actions"].shape == (engine.policy.horizon, 7)
                    k += 1
                    if k % 25 == 0:
                        c.reset(instr)
        except Exception as e:  # noqa: BLE001 - collected and asserted below
            errors.append(f"client {i}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + 120)
    with PolicyClient(server.uri) as c:
        m = c.metrics()
    lat = np.asarray(latencies)
    print(f"\n8 clients x {duration:.0f} s: {lat.size} chunks ({lat.size / duration:.1f}/s), client round trip "
          f"p50 {np.percentile(lat, 50):.1f} ms, p90 {np.percentile(lat, 90):.1f} ms, "
          f"p99 {np.percentile(lat, 99):.1f} ms; "
          f"server latency {m['latency_ms']}; batch sizes {m['batch_sizes']} (mean {m['mean_batch_size']}); "
          f"errors {m['errors']}")
    assert not errors, errors[:3]
    assert m["errors_total"] == 0 and lat.size >= 8
    assert all(not t.is_alive() for t in threads)


def test_serve_cli_starts_serves_and_stops_on_sigint(tiny_checkpoint, engine):
    """`selfflow-robot serve ckpt=DIR port=0` as users run it: prints its address, serves, exits 0 on Ctrl-C."""
    env = {**os.environ, "SELFFLOW_ROBOT_SERVE_TOKEN": "tok-123"}
    proc = subprocess.Popen([sys.executable, "-m", "selfflow_robot.cli", "serve", f"ckpt={tiny_checkpoint}", "port=0",
                             "threads=1", "device=cpu", "steps=4"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env)
    try:
        lines = []
        for line in proc.stdout:  # model loading takes a few seconds
            lines.append(line)
            m = re.search(r"on ws://127\.0\.0\.1:(\d+) .*auth on", line)
            if m:
                port = int(m.group(1))
                break
        else:
            pytest.fail("server exited before listening:\n" + "".join(lines))
        with pytest.raises(InvalidStatus):
            PolicyClient(f"ws://127.0.0.1:{port}")
        with PolicyClient(f"ws://127.0.0.1:{port}", token="tok-123") as c:
            assert c.metadata["steps"] == 4
            c.reset(_instruction(engine))
            assert c.infer(_image(7))["actions"].shape == (engine.policy.horizon, 7)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert '"requests_total": 2' in out  # the final metrics line


def test_state_conditioned_checkpoint_over_the_wire(tmp_path, engine):
    """A checkpoint with proprioception: metadata says so, a request without `state` is a bad_request, a
    request with it matches the in-process policy, and a plain checkpoint refuses a `state`."""
    ckpt = write_tiny_checkpoint(tmp_path / "state_run", state_dim=8)
    state_engine = SelfFlowEngine.from_checkpoint(str(ckpt), device="cpu", steps=2)
    task = _instruction(state_engine)
    state = np.linspace(-0.5, 0.5, 8).astype(np.float32)
    with PolicyServer(state_engine, port=0, limits=LIMITS) as srv, PolicyClient(srv.uri) as c:
        assert c.metadata["state_dim"] == 8
        c.reset(task)
        with pytest.raises(ServerError, match="include 'state'") as info:
            c.infer(_image(1))
        assert info.value.code == "bad_request"
        with pytest.raises(ServerError, match="takes 8"):
            c.infer(_image(1), state=state[:3])
        got = c.infer(_image(1), state=state)["actions"]
    local = state_engine.policy.with_options()
    local.reset(task)
    np.testing.assert_allclose(got, local.infer({"image": _image(1), "state": state})["actions"], atol=1e-5)
    with PolicyServer(engine, port=0, limits=LIMITS) as srv, PolicyClient(srv.uri) as c:
        assert c.metadata["state_dim"] == 0
        c.reset(_instruction(engine))
        with pytest.raises(ServerError, match="leave 'state' out"):
            c.infer(_image(1), state=state)
