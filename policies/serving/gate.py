"""`HandshakeGate`: every HTTP request before a session exists (websockets' ``process_request``).

In order: `/healthz` without credentials gets liveness only; a client address in login back-off
gets 429; a request whose ``Authorization`` is missing or wrong gets 401 (more than one such header:
400), and the failure counts toward the back-off; `/metrics` and the full `/healthz` go to
authenticated callers (everyone when no token is set); a WebSocket handshake beyond the session
limits gets 503 (server full) or 429 (this address holds its share).
"""
from __future__ import annotations

import hmac
import http
import json
import math
from typing import Any

from selfflow_robot.policies.serving.admission import ConnectionLimiter, LoginThrottle
from selfflow_robot.policies.serving.metrics import Metrics
from selfflow_robot.policies.wire import PROTOCOL_VERSION

HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"


def client_address(connection: Any) -> str:
    """The peer's IP address (the key of the per-address limits)."""
    peer = getattr(connection, "remote_address", None)
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer)


def _response(connection: Any, status: http.HTTPStatus, body: dict[str, Any],
              headers: dict[str, str] | None = None) -> Any:
    response = connection.respond(status, json.dumps(body) + "\n")
    response.headers["Content-Type"] = "application/json"
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


class HandshakeGate:
    """Auth, login back-off, session limits and the plain-HTTP endpoints (the module docstring has the order).

    Args:
        token: the shared secret (bytes; None = no auth).
        metrics: the server's `Metrics` (counts auth failures and refusals; `/metrics` serves it).
        limiter: the session slots (`ConnectionLimiter`).
        throttle: the failed-login back-off (`LoginThrottle`).
        policy_summary: what an authenticated `/healthz` shows about the policy.
    """

    def __init__(self, token: bytes | None, metrics: Metrics, limiter: ConnectionLimiter,
                 throttle: LoginThrottle, policy_summary: dict[str, Any]) -> None:
        self.token = token
        self.metrics = metrics
        self.limiter = limiter
        self.throttle = throttle
        self.policy_summary = policy_summary

    def _auth_failure(self, connection: Any, address: str, status: http.HTTPStatus, message: str) -> Any:
        self.metrics.auth_failure()
        self.metrics.error("unauthorized")
        self.throttle.failure(address)
        return _response(connection, status, {"error": "unauthorized", "message": message})

    def _authenticate(self, connection: Any, request: Any, address: str) -> Any:
        """None if the request may go on; else the 429 / 400 / 401 response."""
        if self.token is None:
            return None
        wait = self.throttle.retry_after(address)
        if wait > 0:
            self.metrics.error("login_backoff")
            return _response(connection, http.HTTPStatus.TOO_MANY_REQUESTS,
                             {"error": "login_backoff", "message": f"too many failed logins from {address}; "
                              f"retry in {math.ceil(wait)} s"}, {"Retry-After": str(math.ceil(wait))})
        values = request.headers.get_all("Authorization")
        if len(values) > 1:
            return self._auth_failure(connection, address, http.HTTPStatus.BAD_REQUEST,
                                      f"{len(values)} Authorization headers; send exactly one")
        scheme, _, given = (values[0] if values else "").partition(" ")
        # compare_digest on bytes: constant time in the token's content (length may leak, as usual).
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token):
            return self._auth_failure(connection, address, http.HTTPStatus.UNAUTHORIZED,
                                      "send 'Authorization: Bearer <token>'")
        self.throttle.success(address)
        return None

    def __call__(self, connection: Any, request: Any) -> Any:
        """websockets' ``process_request``: a response ends the request, None proceeds with the handshake."""
        path = request.path.split("?", 1)[0]
        address = client_address(connection)
        if path == HEALTH_PATH and self.token is not None and "Authorization" not in request.headers:
            return _response(connection, http.HTTPStatus.OK, {"status": "ok"})  # liveness only
        refused = self._authenticate(connection, request, address)
        if refused is not None:
            return refused
        if path == HEALTH_PATH:
            return _response(connection, http.HTTPStatus.OK, {
                "status": "ok", "protocol_version": PROTOCOL_VERSION, "auth": self.token is not None,
                "policy": self.policy_summary})
        if path == METRICS_PATH:
            return _response(connection, http.HTTPStatus.OK, self.metrics.snapshot())
        if path != "/":
            return _response(connection, http.HTTPStatus.NOT_FOUND, {"error": "not_found", "message": (
                f"no endpoint {path}; use ws:// at /, or {HEALTH_PATH}, {METRICS_PATH}")})
        return self.refuse_session(connection, address)

    def refuse_session(self, connection: Any, address: str) -> Any:
        """The 503 / 429 response when `address` may not open another session now, else None."""
        why = self.limiter.refusal(address)
        if why is None:
            return None
        self.metrics.error(why)
        if why == "over_capacity":
            return _response(connection, http.HTTPStatus.SERVICE_UNAVAILABLE, {
                "error": why, "message": f"{self.limiter.max_total} sessions are open; retry later or raise "
                "max_connections"})
        return _response(connection, http.HTTPStatus.TOO_MANY_REQUESTS, {
            "error": why, "message": f"{address} holds {self.limiter.max_per_address} sessions, the most one "
            "address may (max_connections_per_address); close one first"})
