"""Target health and deregistration, decided purely from the desired state and the data plane's
last report (state.json).

`health_of` is what DescribeTargetHealth shows for one registered target; `drain_done` says
whether a draining target may be removed (no request in flight at the load balancer, or the
deregistration delay has run out on the control-plane clock).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .store import TargetRecord


class TargetHealth(NamedTuple):
    state: str
    reason: str | None
    description: str | None


REGISTERING = TargetHealth(
    "initial", "Elb.RegistrationInProgress", "Target registration is in progress"
)
DRAINING = TargetHealth(
    "draining", "Target.DeregistrationInProgress", "Target deregistration is in progress"
)
NOT_IN_USE = TargetHealth(
    "unused",
    "Target.NotInUse",
    "Target group is not configured to receive traffic from the load balancer",
)
NOT_REGISTERED = TargetHealth(
    "unused", "Target.NotRegistered", "Target is not registered to the target group"
)
STATES = frozenset({"initial", "healthy", "unhealthy", "unused", "draining", "unavailable"})


@dataclass(frozen=True, slots=True)
class Report:
    """One load balancer's state.json, as far as the control plane uses it."""

    config_version: int
    targets: dict[str, dict[tuple[str, int], dict[str, Any]]]
    """Target group ARN → (ip, port) → the data plane's entry (state, reason, in_flight...)."""
    counters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> Report:
        targets: dict[str, dict[tuple[str, int], dict[str, Any]]] = {}
        for tg_arn, entries in (doc.get("targets") or {}).items():
            targets[tg_arn] = {(str(e["ip"]), int(e["port"])): e for e in entries}
        return cls(int(doc.get("config_version") or 0), targets, dict(doc.get("counters") or {}))

    def entry(self, tg_arn: str, ip: str, port: int) -> dict[str, Any] | None:
        return self.targets.get(tg_arn, {}).get((ip, port))


def health_of(record: TargetRecord, in_use: bool, report: Report | None) -> TargetHealth:
    """The TargetHealth of a registered target."""
    if not in_use:
        return NOT_IN_USE
    if record.draining:
        return DRAINING
    entry = report.entry(record.tg_arn, record.ip, record.port) if report else None
    if entry is None or entry.get("state") not in STATES or entry.get("state") == "draining":
        return REGISTERING
    state = str(entry["state"])
    if state == "healthy":
        return TargetHealth("healthy", None, None)
    return TargetHealth(state, entry.get("reason"), entry.get("description"))


def drain_done(
    record: TargetRecord,
    now: float,
    delay: float,
    report: Report | None,
    drain_version: int | None,
) -> bool:
    """True when a draining target can go: the delay has elapsed, or the load balancer reports,
    from a config in which the target drains (`drain_version` or newer), that nothing is in
    flight to it."""
    if record.draining_since is None:
        return False
    if now - record.draining_since >= delay:
        return True
    if report is None or drain_version is None or report.config_version < drain_version:
        return False
    entry = report.entry(record.tg_arn, record.ip, record.port)
    return entry is None or int(entry.get("in_flight") or 0) == 0
