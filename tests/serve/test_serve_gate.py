"""The handshake gate over a REAL socket (issue 22, items 4-6): duplicate Authorization headers, what
`/healthz` tells strangers, and the back-off on failed logins."""
from __future__ import annotations

import http.client
import json
import logging
import time

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from selfflow_robot.policies.client import PolicyClient
from selfflow_robot.policies.serving.server import PolicyServer

TOKEN = "s3cret-token"


def _get(port: int, path: str, *authorizations: str) -> tuple[int, dict, dict]:
    """GET with zero, one or several Authorization headers (urllib would merge them)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest("GET", path)
        for value in authorizations:
            conn.putheader("Authorization", value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}"), dict(resp.getheaders())
    finally:
        conn.close()


@pytest.fixture
def server(engine):
    with PolicyServer(engine, port=0, token=TOKEN) as srv:
        yield srv


def test_two_authorization_headers_get_400_not_500(server, caplog):
    two = (f"Bearer {TOKEN}", "Bearer other")
    with caplog.at_level(logging.ERROR):
        for path in ("/metrics", "/healthz", "/"):
            status, body, _ = _get(server.port, path, *two)
            assert status == 400 and "exactly one" in body["message"], (path, status, body)
        with pytest.raises(InvalidStatus) as info:
            connect(server.uri, additional_headers=[("Authorization", v) for v in two], proxy=None)
        assert info.value.response.status_code == 400
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    assert server.metrics.snapshot()["auth_failures"] == 4


def test_two_authorization_headers_are_ignored_without_a_token(engine):
    with PolicyServer(engine, port=0) as srv:
        assert _get(srv.port, "/metrics", "Bearer a", "Bearer b")[0] == 200
        with connect(srv.uri, additional_headers=[("Authorization", "Bearer a"), ("Authorization", "b")],
                     proxy=None) as ws:
            assert ws.recv(timeout=30)


def test_healthz_tells_strangers_liveness_only(server, engine):
    status, body, _ = _get(server.port, "/healthz")
    assert status == 200 and body == {"status": "ok"}
    checkpoint = str(engine.metadata()["checkpoint"])
    status, body, _ = _get(server.port, "/healthz", f"Bearer {TOKEN}")
    assert status == 200 and body["policy"]["checkpoint"] == checkpoint and body["auth"] is True
    assert _get(server.port, "/healthz", "Bearer wrong")[0] == 401  # a wrong token is a failed login


def test_failed_logins_back_off_per_address(server):
    free = server.logins.free_failures
    for i in range(free):
        assert _get(server.port, "/metrics", f"Bearer guess-{i}")[0] == 401
    assert _get(server.port, "/metrics", "Bearer one-more")[0] == 401  # starts a 1 s block
    status, body, headers = _get(server.port, "/metrics", f"Bearer {TOKEN}")
    assert status == 429 and body["error"] == "login_backoff" and int(headers["Retry-After"]) >= 1
    with pytest.raises(InvalidStatus) as info:  # the handshake too, even with the right token
        PolicyClient(server.uri, token=TOKEN)
    assert info.value.response.status_code == 429
    assert _get(server.port, "/healthz")[0] == 200  # liveness needs no login
    time.sleep(server.logins.retry_after("127.0.0.1") + 0.05)
    assert _get(server.port, "/metrics", "Bearer still-wrong")[0] == 401  # next block: 2 s
    assert 1.5 < server.logins.retry_after("127.0.0.1") <= 2.0
    time.sleep(server.logins.retry_after("127.0.0.1") + 0.05)
    with PolicyClient(server.uri, token=TOKEN) as c:  # the right token clears the address
        assert c.metrics()["auth_failures"] == free + 2
    assert server.logins.retry_after("127.0.0.1") == 0 and "127.0.0.1" not in server.logins._by_address
