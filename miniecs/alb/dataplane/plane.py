"""The data plane's shared run-time state: target groups, limits, counters, open connections.

One :class:`Plane` per process. :mod:`.main` replaces its parts when a config is applied;
:mod:`.proxy` and :mod:`.upstream` read them on the hot path (attribute reads only), and
:mod:`.state` reports them. ``now`` is a coarse monotonic clock refreshed by the sweeper, good
enough for timeouts measured in seconds and free to read per request. Trace ids are
``Root=1-<epoch of the current second>-<24 hex>``, the 24 hex digits a counter that starts at a
random 63-bit value shifted left by 32 bits (so it never outgrows 96 bits): unique within the
process without a system call or a random draw per request, and across processes as long as
their random starts are more than the requests they serve apart.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import TYPE_CHECKING

from .config import Limits
from .targets import TargetGroup

if TYPE_CHECKING:
    from .proxy import ClientConnection

# Reasons a client connection stops reading (a bit set).
PAUSE_PIPELINE, PAUSE_UPSTREAM, PAUSE_BUFFER = 1, 2, 4

# http-desync-guardian's request classes, in increasing severity.
COMPLIANT, ACCEPTABLE, AMBIGUOUS, SEVERE = range(4)
NEVER = 4
DESYNC_POLICY = {
    # mode: (lowest class refused with 400, lowest class whose connections close after it)
    "monitor": (NEVER, NEVER),
    "defensive": (SEVERE, AMBIGUOUS),
    "strictest": (ACCEPTABLE, NEVER),
}
"""ALB's desync mitigation modes. Requests llhttp cannot frame (Severe or Ambiguous to the
guardian: CL with TE, bad chunk sizes, obs-fold, bare CR or LF, ...) are refused in every mode:
there is no request boundary to forward them by."""


class LoadBalancerCounters:
    """Cumulative counts of what the load balancer itself answered."""

    __slots__ = (
        "desync_acceptable",
        "desync_ambiguous",
        "desync_severe",
        "elb_4xx",
        "elb_5xx",
        "elb_502",
        "elb_503",
        "elb_504",
        "rejected",
        "requests",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.elb_4xx = 0
        self.elb_5xx = 0
        self.elb_502 = 0
        self.elb_503 = 0
        self.elb_504 = 0
        self.rejected = 0
        """Requests refused as malformed or over a limit (400, 408, 413, 431, 505)."""
        self.desync_acceptable = 0
        self.desync_ambiguous = 0
        self.desync_severe = 0
        """Requests by http-desync-guardian class (Compliant ones are the rest); Severe counts
        every request refused 400 as malformed."""

    def count_desync(self, tier: int) -> None:
        if tier == ACCEPTABLE:
            self.desync_acceptable += 1
        elif tier == AMBIGUOUS:
            self.desync_ambiguous += 1
        elif tier == SEVERE:
            self.desync_severe += 1

    def count_elb(self, status: int) -> None:
        if 400 <= status < 500:
            self.elb_4xx += 1
        elif status >= 500:
            self.elb_5xx += 1
            if status == 502:
                self.elb_502 += 1
            elif status == 503:
                self.elb_503 += 1
            elif status == 504:
                self.elb_504 += 1

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


class Plane:
    """Everything the connections of one data-plane process share."""

    def __init__(self, limits: Limits | None = None, idle_timeout: float = 60.0) -> None:
        self.groups: dict[str, TargetGroup] = {}
        self.limits = limits or Limits()
        self.idle_timeout = idle_timeout
        self.speed = 1.0
        self.desync_refuse, self.desync_close = DESYNC_POLICY["defensive"]
        self.counters = LoadBalancerCounters()
        self.clients: set[ClientConnection] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        """Connection attempts in progress (held so they are not garbage-collected)."""
        self.now = 0.0
        self.trace_prefix = b""
        self.trace_seq = random.getrandbits(63) << 32
        """The last trace id's 96 bits (incremented per generated trace id)."""
        self.tick()

    def tick(self) -> float:
        """Refresh the coarse clocks: ``now`` and the trace-id prefix of the current second."""
        self.now = time.monotonic()
        self.trace_prefix = b"X-Amzn-Trace-Id: Root=1-%08x-" % int(time.time())
        return self.now
