"""Who may open a session and how fast it may misbehave: connection slots per address and in all,
a back-off on failed logins, and a throttle on the bytes of refused frames.

Both are used from the server's event loop only (the handshake gate and the connection handler), so
they need no lock.
"""
from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


class ConnectionLimiter:
    """At most `max_total` sessions, and at most `max_per_address` from one client address.

    `refusal` answers the handshake early (no slot is taken); `acquire` takes the slot once the
    session starts and re-checks, since several handshakes may pass `refusal` before any starts.
    """

    def __init__(self, max_total: int, max_per_address: int) -> None:
        self.max_total = max_total
        self.max_per_address = max_per_address
        self.open: Counter[str] = Counter()
        self.total = 0

    def refusal(self, address: str) -> str | None:
        """None if `address` may open one more session, else why not (``over_capacity`` or ``per_address``)."""
        if self.total >= self.max_total:
            return "over_capacity"
        if self.open[address] >= self.max_per_address:
            return "per_address"
        return None

    def acquire(self, address: str) -> str | None:
        """Take a slot for `address` (None) or say why there is none (and take nothing)."""
        why = self.refusal(address)
        if why is None:
            self.open[address] += 1
            self.total += 1
        return why

    def release(self, address: str) -> None:
        """Give back a slot taken by `acquire`."""
        self.total -= 1
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]


@dataclass
class _Failures:
    count: int = 0
    blocked_until: float = 0.0


class LoginThrottle:
    """Exponential back-off per client address after repeated failed logins (a wrong or missing token).

    The first `free_failures` failures cost nothing (a robot started with a stale token may retry a
    few times); each later one blocks the address for `base_s * 2**k` seconds (k = 0, 1, ...), at most
    `max_s`. While blocked, every request of that address that needs the token gets HTTP 429 before
    the token is even compared, so guessing runs at about one try per `max_s` once the back-off is
    full (it ran at ~1,660 tries/s without it). A login with the right token clears the address.
    At most `max_addresses` addresses are remembered (the least recently failed are forgotten).

    Args:
        free_failures: failures allowed before the first block.
        base_s: the first block's length in seconds.
        max_s: the longest block.
        max_addresses: addresses remembered at once.
        clock: monotonic time source in seconds.
    """

    def __init__(self, free_failures: int = 10, base_s: float = 1.0, max_s: float = 60.0,
                 max_addresses: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.free_failures = free_failures
        self.base_s = base_s
        self.max_s = max_s
        self.max_addresses = max_addresses
        self.clock = clock
        self._by_address: OrderedDict[str, _Failures] = OrderedDict()

    def retry_after(self, address: str) -> float:
        """Seconds `address` must still wait (0 = it may try to log in now)."""
        entry = self._by_address.get(address)
        return max(0.0, entry.blocked_until - self.clock()) if entry else 0.0

    def failure(self, address: str) -> float:
        """Record a failed login; returns the block it starts (0 while failures are still free)."""
        entry = self._by_address.pop(address, None) or _Failures()
        self._by_address[address] = entry  # most recent last
        while len(self._by_address) > self.max_addresses:
            self._by_address.popitem(last=False)
        entry.count += 1
        over = entry.count - self.free_failures
        if over <= 0:
            return 0.0
        block = min(self.max_s, self.base_s * 2.0 ** min(over - 1, 30))
        entry.blocked_until = self.clock() + block
        return block

    def success(self, address: str) -> None:
        """A login with the right token: forget the address's failures."""
        self._by_address.pop(address, None)


class RefusalThrottle:
    """Per-address token bucket on the bytes of refused frames: a client that keeps sending garbage is slowed.

    A valid request waits for its own inference, so a client cannot send them faster than the model
    answers; a refused frame is answered at once, so without this one client could make the server
    receive and reject 5 MiB frames as fast as the network carries them. Each refused frame costs its
    size (at least `min_cost` bytes); once an address has spent `burst` bytes, its connections wait
    ``debt / rate`` seconds before their next frame is read (TCP then holds the sender back). A client
    that sends valid requests never waits.

    Args:
        rate: bytes of refused frames per second an address may send without waiting.
        burst: bytes an address may send at once before the first wait.
        min_cost: the least a refused frame costs (so floods of tiny frames count too).
        clock: monotonic time source in seconds.
    """

    def __init__(self, rate: float = 16 * 2**20, burst: float = 16 * 2**20, min_cost: int = 4096,
                 max_addresses: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.min_cost = min_cost
        self.max_addresses = max_addresses
        self.clock = clock
        self._tokens: dict[str, tuple[float, float]] = {}  # address -> (tokens, when)

    def _refilled(self, tokens: float, when: float, now: float) -> float:
        return min(self.burst, tokens + (now - when) * self.rate)

    def charge(self, address: str, nbytes: int) -> float:
        """Charge a refused frame of `nbytes` to `address`; returns the seconds to wait before reading more."""
        now = self.clock()
        tokens, when = self._tokens.get(address, (self.burst, now))
        tokens = self._refilled(tokens, when, now) - max(nbytes, self.min_cost)
        self._tokens[address] = (tokens, now)
        if len(self._tokens) > self.max_addresses:  # forget the addresses whose bucket is full again
            self._tokens = {a: (t, w) for a, (t, w) in self._tokens.items() if self._refilled(t, w, now) < self.burst}
        return max(0.0, -tokens / self.rate)
