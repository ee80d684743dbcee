"""`EventLog`: one log line per kind of event, at most once per interval, with the count of repeats.

Under file-descriptor exhaustion asyncio logged a full traceback for every failed ``accept()`` (933
of them in the audit of issue 22); a flood of bad handshakes or failing connections does the same
through `websockets`. The server routes all three sources through one `EventLog`: the event loop's
exception handler (`exception_handler`), the `websockets` server logger (`filter`) and its own
connection errors (`event`). Each kind (message + exception type) gets one line without a traceback,
then silence for `interval_s`; the next line of that kind says how many were suppressed.
"""
from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any


class EventLog:
    """Rate-limited one-line logging per kind of event (thread-safe).

    Args:
        logger: where the lines go.
        interval_s: shortest time between two lines of the same kind.
        clock: monotonic time source in seconds.
    """

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def should_log(self, kind: str) -> tuple[bool, int]:
        """Whether a line of `kind` may be written now, and how many were suppressed since the last one."""
        now = self.clock()
        with self._lock:
            last = self._last.get(kind)
            if last is not None and now - last < self.interval_s:
                self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
                return False, 0
            self._last[kind] = now
            return True, self._suppressed.pop(kind, 0)

    def event(self, kind: str, detail: str = "", level: int = logging.WARNING) -> bool:
        """Log ``kind: detail`` on one line unless `kind` was logged within `interval_s`; True if logged."""
        ok, suppressed = self.should_log(kind)
        if ok:
            more = f" ({suppressed} more since the last report)" if suppressed else ""
            self.logger.log(level, "%s%s%s", kind, f": {detail}" if detail else "", more)
        return ok

    def exception_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """For `loop.set_exception_handler`: e.g. ``socket.accept() out of system resource: OSError: ...``."""
        exc = context.get("exception")
        # "Exception in callback Loop._start_serving(<function ... at 0x7f..>, ...)" -> one kind per callback
        kind = re.sub(r"\((?!\)).*", "", str(context.get("message") or "event loop error"), flags=re.S)[:200]
        self.event(f"{kind} ({type(exc).__name__})" if exc else kind, str(exc) if exc else "", logging.ERROR)

    def filter(self) -> logging.Filter:
        """A filter for another logger: each record becomes one line (no traceback), rate-limited by kind."""
        events = self

        class _OneLine(logging.Filter):
            def filter(self, record: logging.LogRecord) -> bool:
                exc = record.exc_info[1] if record.exc_info else None
                kind = f"{record.msg} ({type(exc).__name__})" if exc else str(record.msg)
                ok, suppressed = events.should_log(kind)
                if ok and (exc is not None or suppressed):
                    record.msg = record.getMessage() + (f": {type(exc).__name__}: {exc}" if exc else "")
                    record.msg += f" ({suppressed} more since the last report)" if suppressed else ""
                    record.args, record.exc_info, record.exc_text = (), None, None
                return ok

        return _OneLine()
