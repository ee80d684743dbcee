"""Hostile clients against the REAL server and policy on 127.0.0.1 (issue 22, items 1-3): huge msgpack
maps, idle or departed sessions, one address taking every slot, a `type` that is not a string."""
from __future__ import annotations

import threading
import time

import msgpack
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

import selfflow_robot.policies.serving.server as server_module
from selfflow_robot.policies.client import PolicyClient
from selfflow_robot.policies.serving.admission import RefusalThrottle
from selfflow_robot.policies.serving.server import PolicyServer
from selfflow_robot.policies.wire import packb, unpackb


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (64, 80, 3), dtype=np.uint8)


def _wait_for(condition, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class GatedEngine:
    """The real engine, whose batches wait for `gate` before they run (so requests queue up behind one)."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.gate = threading.Event()
        self.rows = 0

    def metadata(self):
        return self.engine.metadata()

    def new_session(self):
        return self.engine.new_session()

    def reset(self, session, instruction):
        self.engine.reset(session, instruction)

    def infer_batch(self, batch):
        assert self.gate.wait(30), "the test never opened the gate"
        self.rows += len(batch)
        return self.engine.infer_batch(batch)


def test_a_700k_key_map_is_refused_off_the_event_loop_and_others_are_served(engine, monkeypatch):
    """The audit's attack frame (5.3 MiB, 700,000 keys) gets a bad_request naming the budget; every frame
    is decoded on the decode pool (never the event-loop thread); the refused bytes are charged to the
    sender's address, which waits before its next frame is read, while another client is served."""
    threads: list[str] = []
    real_parse = server_module.parse_request

    def parse_and_record_thread(data, limits):
        threads.append(threading.current_thread().name)
        return real_parse(data, limits)

    monkeypatch.setattr(server_module, "parse_request", parse_and_record_thread)
    attack = msgpack.packb({"type": "infer", **{f"{i:06x}": 0 for i in range(700_000 - 1)}})
    instruction = engine.policy.language.table.instructions[0]
    second: dict = {}

    def attack_again(attacker: PolicyClient) -> None:
        t0 = time.monotonic()
        second["reply"] = attacker.send_raw(attack)
        second["seconds"] = time.monotonic() - t0

    with PolicyServer(engine, port=0) as srv:
        srv.refusals = RefusalThrottle(rate=2 * 2**20, burst=2 * 2**20)
        with PolicyClient(srv.uri) as victim, PolicyClient(srv.uri) as attacker:
            victim.reset(instruction)
            reply = attacker.send_raw(attack)  # 5.3 MiB against a 2 MiB burst at 2 MiB/s: 1.65 s of debt
            assert reply["code"] == "bad_request" and "limits.max_entries" in reply["message"], reply
            waiting = threading.Thread(target=attack_again, args=(attacker,))
            waiting.start()
            assert victim.infer(_image())["actions"].shape[1] == 7
            assert "reply" not in second  # the victim was served while the attacker still waited
            waiting.join(60)
        metrics = srv.metrics.snapshot()
    assert second["reply"]["code"] == "bad_request" and second["seconds"] >= 1.5, second
    assert threads and all(name.startswith("policy-decode") for name in threads), set(threads)
    assert metrics["errors"] == {"bad_request": 2} and metrics["requests"]["infer"] == 1


@pytest.mark.parametrize("kind", [[], {}])
def test_a_type_that_is_a_list_or_map_gets_bad_request_and_the_connection_stays(engine, kind):
    with PolicyServer(engine, port=0) as srv, PolicyClient(srv.uri) as c:
        reply = c.send_raw(packb({"type": kind}))
        assert reply["type"] == "error" and reply["code"] == "bad_request", reply
        c.reset(engine.policy.language.table.instructions[0])
        assert c.infer(_image())["actions"].shape[1] == 7
        assert "internal" not in srv.metrics.snapshot()["errors"]


def test_idle_sessions_are_closed_and_their_slots_freed(engine):
    with PolicyServer(engine, port=0, max_connections=2, idle_timeout_s=0.6) as srv:
        busy, idle = PolicyClient(srv.uri), PolicyClient(srv.uri)
        busy.reset(engine.policy.language.table.instructions[0])
        with pytest.raises(InvalidStatus):  # both slots are taken
            PolicyClient(srv.uri)
        for _ in range(6):  # a session that keeps sending stays open
            time.sleep(0.25)
            busy.infer(_image())
        with pytest.raises(ConnectionClosed) as info:  # pings were answered all along; no request, though
            idle.infer(_image())
        assert info.value.rcvd.code == 1000 and "idle_timeout_s" in info.value.rcvd.reason
        assert _wait_for(lambda: srv.metrics.connections_open == 1)
        with PolicyClient(srv.uri) as fresh:  # the idle session's slot is free again
            assert fresh.metadata["chunk_length"] > 0
        busy.close()
        idle.close()
        assert srv.metrics.snapshot()["errors"]["idle_timeout"] >= 1


def test_one_address_gets_only_its_share_of_the_slots(engine):
    with PolicyServer(engine, port=0, max_connections=8, max_connections_per_address=2) as srv:
        a, b = PolicyClient(srv.uri), PolicyClient(srv.uri)
        with pytest.raises(InvalidStatus) as info:
            PolicyClient(srv.uri)
        assert info.value.response.status_code == 429
        assert b"max_connections_per_address" in info.value.response.body
        a.close()
        assert _wait_for(lambda: srv.limiter.open["127.0.0.1"] == 1)
        with PolicyClient(srv.uri) as c:
            assert c.metadata["chunk_length"] > 0
        b.close()
        assert srv.metrics.snapshot()["errors"]["per_address"] == 1


def test_work_of_departed_clients_is_cancelled_and_their_slots_freed(engine):
    """Connect -> infer -> disconnect, 3x more often than there are slots, while one batch holds the model:
    every departed client's slot comes back and none of their requests is computed."""
    gated = GatedEngine(engine)
    instruction = engine.policy.language.table.instructions[0]
    with PolicyServer(gated, port=0, max_connections=4, max_connections_per_address=4, max_batch=1) as srv:
        holder = PolicyClient(srv.uri)
        holder.reset(instruction)
        holder._ws.send(packb({"type": "infer", "image": _image(), "id": 1}))  # held at the gate
        assert _wait_for(lambda: srv.metrics.requests["infer"] == 1)
        for i in range(12):
            c = PolicyClient(srv.uri)  # would get 503 from the 4th cycle on if departed sessions stayed
            c.reset(instruction)
            c._ws.send(packb({"type": "infer", "image": _image(i), "id": 1}))
            assert _wait_for(lambda n=2 + i: srv.metrics.requests["infer"] == n)
            c.close()
            assert _wait_for(lambda: srv.metrics.connections_open == 1)
        assert srv.metrics.snapshot()["requests_cancelled"] == 12
        gated.gate.set()
        assert unpackb(holder._ws.recv(timeout=60))["type"] == "chunk"
        with PolicyClient(srv.uri) as late:
            late.reset(instruction)
            assert late.infer(_image())["actions"].shape[1] == 7
        holder.close()
    assert gated.rows == 2  # the holder's request and the late client's; none of the 12 that left
