"""The server's guards without a socket or a model: message budget, strict state, request type, the
per-address limiters and the rate-limited event log (issue 22, items 1-3, 6-8)."""
from __future__ import annotations

import logging

import msgpack
import numpy as np
import pytest

from selfflow_robot.policies.serving.admission import ConnectionLimiter, LoginThrottle, RefusalThrottle
from selfflow_robot.policies.serving.budget import BudgetError, check_budget
from selfflow_robot.policies.serving.events import EventLog
from selfflow_robot.policies.serving.protocol import MAX_DEPTH, ProtocolError, RequestLimits, parse_request
from selfflow_robot.policies.wire import packb

LIMITS = RequestLimits()
IMG = np.zeros((16, 20, 3), np.uint8)


class Clock:
    """A hand-wound monotonic clock for the time-based guards."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_valid_requests_fit_the_budget_with_room():
    msg = {"type": "infer", "image": np.zeros((2, 16, 20, 3), np.uint8), "instruction": "open the drawer",
           "state": [0.5] * 64, "id": 7}
    assert check_budget(packb(msg), LIMITS.max_entries, MAX_DEPTH, 600) < LIMITS.max_entries
    assert parse_request(packb(msg), LIMITS).state.shape == (64,)


def test_a_huge_map_is_refused_from_its_header_alone():
    """A map32 header announcing 700,000 entries with no entries behind it: refused as too many
    objects, not as truncated, so the walk never looked past the header."""
    header_only = b"\xdf" + (700_000).to_bytes(4, "big")
    with pytest.raises(BudgetError, match="more than 256 msgpack objects"):
        check_budget(header_only, 256, MAX_DEPTH, 600)
    attack = msgpack.packb({"type": "infer", **{f"{i:06x}": 0 for i in range(700_000 - 1)}})
    assert len(attack) > 5 * 2**20
    with pytest.raises(ProtocolError, match="max_entries"):
        parse_request(attack, LIMITS)


@pytest.mark.parametrize("frame, match", [
    (packb({"type": "infer", "image": [[[[0]]]]}), "deeper than 4"),
    (b"\x91" * 100_000 + b"\x01", "deeper than 4"),
    (packb({"type": "infer", "image": [[[0] * 15] * 15] * 15}), "more than 256"),
    (packb({"type": "reset", "instruction": "x" * 700}), "700-byte string"),
    (b"\xc1", "not a msgpack type"),
    (packb({"type": "infer", "image": IMG})[:40], "cut short"),
    # an ndarray ext whose [dtype, shape, bytes] header hides a wide list: walked with the same budget
    (msgpack.packb({"type": "infer", "image": msgpack.ExtType(1, msgpack.packb(["|u1", list(range(300)), b""]))}),
     "more than 256"),
])
def test_budget_counts_objects_depth_strings_and_ext_payloads(frame, match):
    with pytest.raises(BudgetError, match=match):
        check_budget(frame, 256, MAX_DEPTH, 600)
    with pytest.raises(ProtocolError):
        parse_request(frame, LIMITS)


@pytest.mark.parametrize("kind", [[], {}, [1, 2], {"a": 1}, 3, None])
def test_a_type_that_is_not_a_string_is_a_bad_request(kind):
    with pytest.raises(ProtocolError, match="'type' must be one of") as info:
        parse_request(packb({"type": kind}), LIMITS)
    assert info.value.code == "bad_request"


@pytest.mark.parametrize("state, match", [
    (np.full(8, 1e39), "limit is 10000"),
    ([0.0] * 7 + [1e39], "limit is 10000"),
    (np.full(8, 2e4, np.float32), "limit is 10000"),
    (np.full(8, 1 + 2j, np.complex64), "real float or integer"),
    (np.ones(8, bool), "real float or integer"),
    ([True] * 8, "flat list of real numbers"),
    (np.zeros((2, 4), np.float32), r"shape \(state_dim,\)"),
    (np.zeros(65, np.float32), r"shape \(state_dim,\)"),
    (np.float32(1.0), "1-D numpy array"),
    ([float("inf")] * 8, "finite"),
])
def test_state_is_validated_as_strictly_as_the_image(state, match):
    with pytest.raises(ProtocolError, match=match):
        parse_request(packb({"type": "infer", "image": IMG, "state": state}), LIMITS)


def test_valid_states_keep_their_values_as_float32():
    for state in (np.arange(8, dtype=np.int16), np.linspace(-1, 1, 8), [1, 2.5, -3] + [0] * 5):
        got = parse_request(packb({"type": "infer", "image": IMG, "state": state}), LIMITS).state
        assert got.dtype == np.float32 and got.shape == (8,)
        np.testing.assert_allclose(got, np.asarray(state, np.float64))
    with pytest.raises(ValueError):
        RequestLimits(max_state_abs=float("inf"))
    with pytest.raises(ValueError):
        RequestLimits(max_entries=10)


def test_connection_limiter_counts_per_address_and_in_all():
    lim = ConnectionLimiter(max_total=3, max_per_address=2)
    assert lim.acquire("a") is None and lim.acquire("a") is None
    assert lim.acquire("a") == "per_address" and lim.refusal("b") is None
    assert lim.acquire("b") is None and lim.acquire("c") == "over_capacity"
    lim.release("a")
    assert lim.refusal("a") is None and lim.refusal("c") is None and lim.total == 2
    lim.release("a")
    lim.release("b")
    assert lim.total == 0 and not lim.open


def test_login_throttle_backs_off_exponentially_and_forgets_on_success():
    clock = Clock()
    throttle = LoginThrottle(free_failures=3, base_s=1.0, max_s=8.0, max_addresses=2, clock=clock)
    assert [throttle.failure("a") for _ in range(3)] == [0.0, 0.0, 0.0] and throttle.retry_after("a") == 0
    assert [throttle.failure("a") for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert throttle.retry_after("a") == 8.0 and throttle.retry_after("b") == 0
    clock.now += 8.0
    assert throttle.retry_after("a") == 0
    throttle.success("a")
    assert throttle.failure("a") == 0.0  # the count starts again
    for address in ("b", "c"):  # only max_addresses are remembered: the oldest goes first
        throttle.failure(address)
    assert "a" not in throttle._by_address and set(throttle._by_address) == {"b", "c"}


def test_refusal_throttle_lets_a_burst_through_then_charges_by_size():
    clock = Clock()
    throttle = RefusalThrottle(rate=1000.0, burst=2000.0, min_cost=100, clock=clock)
    assert throttle.charge("a", 1500) == 0.0
    assert throttle.charge("a", 1000) == pytest.approx(0.5)  # 500 bytes of debt at 1000 B/s
    assert throttle.charge("b", 10) == 0.0  # another address has its own bucket
    clock.now += 10.0
    assert throttle.charge("a", 10) == 0.0  # refilled; a tiny frame still costs min_cost
    assert [throttle.charge("a", 10) for _ in range(20)][-1] == pytest.approx(0.1)


def test_event_log_writes_one_line_per_kind_and_counts_the_rest(caplog):
    clock = Clock()
    events = EventLog(logging.getLogger("test.events"), interval_s=60.0, clock=clock)
    with caplog.at_level(logging.WARNING, logger="test.events"):
        for _ in range(900):
            events.exception_handler(None, {"message": "socket.accept() out of system resource",
                                            "exception": OSError(24, "Too many open files")})
        events.event("connection handler failed", "RuntimeError: x")
        for address in ("0x7f01", "0x7f02"):  # the same callback, other arguments: one kind
            events.exception_handler(None, {"message": f"Exception in callback Loop._start_serving(<f at {address}>)",
                                            "exception": ValueError("Invalid file descriptor: -1")})
        clock.now += 61
        events.exception_handler(None, {"message": "socket.accept() out of system resource",
                                        "exception": OSError(24, "Too many open files")})
        other = logging.getLogger("test.events.ws")
        other.addFilter(events.filter())
        for _ in range(50):
            try:
                raise ConnectionResetError("reset by peer")
            except ConnectionResetError:
                other.error("opening handshake failed", exc_info=True)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 5, lines
    assert lines[0] == "socket.accept() out of system resource (OSError): [Errno 24] Too many open files"
    assert lines[1] == "connection handler failed: RuntimeError: x"
    assert lines[2] == "Exception in callback Loop._start_serving (ValueError): Invalid file descriptor: -1"
    assert lines[3].endswith("(899 more since the last report)")
    assert lines[4] == "opening handshake failed: ConnectionResetError: reset by peer"
    assert all(r.exc_info is None for r in caplog.records)  # one line each, no traceback
