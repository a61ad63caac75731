"""Target groups and targets at run time: health, draining, in-flight counts, pooled
connections and the counters ``state.json`` reports.

The config (:mod:`.config`) says which targets exist; :meth:`TargetGroup.update` keeps the
objects of targets that stay (their health, connections and counters survive a new config
version) and returns the targets that left or went ``down``, whose in-flight requests the caller
answers 502.
:meth:`TargetGroup.pick` is on the hot path: it reuses a cached candidate list that is rebuilt
only when a health or draining change invalidates it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import balancing
from .config import HealthCheck, TargetGroupSpec, TargetSpec
from .health import DEREGISTRATION_IN_PROGRESS, Health, TargetState, registered

if TYPE_CHECKING:
    from .upstream import UpstreamConnection

SUSPECT_SECONDS = 1.0
"""Real seconds a target that refused a connection is passed over."""


class Target:
    """One registered ip:port of one target group."""

    __slots__ = (
        "deregistering",
        "draining",
        "group",
        "health",
        "idle",
        "in_flight",
        "ip",
        "key",
        "port",
        "removed",
        "requests",
        "routable",
        "slow_start_from",
        "suspect_until",
    )

    def __init__(self, group: TargetGroup, spec: TargetSpec, check: HealthCheck) -> None:
        self.group = group
        self.ip = spec.ip
        self.port = spec.port
        self.key = f"{spec.ip}:{spec.port}"
        self.deregistering = spec.draining
        self.draining = spec.draining or spec.down
        """Takes no new request: deregistering, or ``down``."""
        self.health = registered(check)
        self.routable = self.health.routable
        self.in_flight = 0
        self.requests = 0
        self.removed = False
        self.slow_start_from: float | None = None
        self.suspect_until = 0.0
        """Until then the target takes no new request: a connection to it was just refused or
        its host was unreachable (see :meth:`suspect`)."""
        self.idle: list[UpstreamConnection] = []
        """Pooled keep-alive connections, most recently used last."""

    def set_health(self, health: Health, now: float) -> None:
        was = self.routable
        self.health = health
        self.routable = health.routable and self.suspect_until == 0.0
        if self.routable and not was:
            others = any(t.routable for t in self.group.targets.values() if t is not self)
            # ALB skips slow start for the only healthy target (nothing to protect it from).
            self.slow_start_from = now if others and self.group.spec.slow_start > 0 else None
        if self.routable != was:
            self.group.invalidate()

    def suspect(self, now: float) -> None:
        """A connection to the target was refused or its host unreachable: choose it for no
        new request for :data:`SUSPECT_SECONDS` (the health checker's state is unchanged; its
        next result still counts). ALB has no such passive check; a task killed here would
        otherwise take a request per pick until the control plane deregisters it."""
        self.suspect_until = now + SUSPECT_SECONDS
        if self.routable:
            self.routable = False
            self.group.invalidate()

    def expire_suspicion(self, now: float) -> None:
        if self.suspect_until and now >= self.suspect_until:
            self.suspect_until = 0.0
            self.routable = self.health.routable
            self.group.invalidate()

    def view(self) -> tuple[str, str | None, str | None]:
        """(state, reason, description) as DescribeTargetHealth shows them."""
        if self.deregistering:
            return (TargetState.DRAINING.value, *DEREGISTRATION_IN_PROGRESS)
        return self.health.state.value, self.health.reason, self.health.description

    def close_idle(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            conn.close()


class TargetGroup:
    """One target group: its targets, algorithm and counters."""

    def __init__(self, spec: TargetGroupSpec) -> None:
        self.spec = spec
        self.arn = spec.arn
        self.targets: dict[tuple[str, int], Target] = {}
        self.balancer = balancing.Balancer(spec.algorithm)
        self._cands: list[Target] | None = None
        self.requests = 0
        self.codes = [0, 0, 0, 0, 0, 0]
        """Target responses by class: index 2 is 2xx ... 5 is 5xx."""
        self.response_time_sum = 0.0
        self.response_time_count = 0
        self.target_errors = 0
        """Connections to targets refused, unreachable or timed out, and responses broken
        (malformed, reset or closed before their end)."""
        self.speed = 1.0
        self.update(spec, 1.0)

    def update(self, spec: TargetGroupSpec, speed: float) -> list[Target]:
        """Apply a new spec (AWS durations run ``speed`` times faster); return the targets gone
        or newly down."""
        check_changed = spec.health_check != self.spec.health_check
        self.spec = spec
        self.speed = speed
        self.balancer.algorithm = spec.algorithm
        wanted = {(t.ip, t.port): t for t in spec.targets}
        gone = [t for key, t in self.targets.items() if key not in wanted]
        for target in gone:
            target.removed = True
            target.close_idle()
            del self.targets[(target.ip, target.port)]
        down = []
        for key, tspec in wanted.items():
            known = self.targets.get(key)
            if known is None:
                known = self.targets[key] = Target(self, tspec, spec.health_check)
                known.removed = tspec.down
                continue
            target = known
            if tspec.down and not target.removed:
                down.append(target)  # its in-flight requests get 502, like a removed one's
            target.removed = tspec.down
            if check_changed and (
                not spec.health_check.enabled or target.health.state is TargetState.UNAVAILABLE
            ):
                target.set_health(registered(spec.health_check), 0.0)
            draining = tspec.draining or tspec.down
            if draining and not target.draining:
                target.close_idle()
            target.draining = draining
            target.deregistering = tspec.draining
        self.invalidate()
        return gone + down

    def invalidate(self) -> None:
        self._cands = None

    def pick(self, now: float) -> Target | None:
        """The target for a new request; None when no target may take it (503)."""
        cands = self._cands
        if cands is None:
            cands = self._cands = balancing.candidates(list(self.targets.values()))[0]
        if not cands:
            return None
        balancer = self.balancer
        if self.spec.slow_start > 0 and any(t.slow_start_from is not None for t in cands):
            weights = [self._weight(t, now) for t in cands]
            if any(w < 1.0 for w in weights):
                return balancer.pick(cands, weights)
        if balancer.algorithm == "round_robin" and len(cands) > 1:  # Balancer.pick, inlined
            n = balancer.counter
            balancer.counter = n + 1
            return cands[n % len(cands)]
        return balancer.pick(cands)

    def _weight(self, target: Target, now: float) -> float:
        duration = self.spec.slow_start / self.speed
        weight = balancing.slow_start_weight(now, target.slow_start_from, duration)
        if weight >= 1.0:
            target.slow_start_from = None
        return weight

    def failing_open(self) -> bool:
        return balancing.candidates(list(self.targets.values()))[1]
