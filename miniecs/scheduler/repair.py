"""Desired state from an older miniecs repaired at start: a service whose stored desired count
is beyond the ECS quota (an older version accepted `desiredCount=10**12`) is brought within it,
with a log line naming it, so the scheduler never acts on it and the process never crash-loops."""

from __future__ import annotations

import dataclasses
import logging

from miniecs.model import Service
from miniecs.quotas import TASKS_PER_SERVICE
from miniecs.store import Store

log = logging.getLogger(__name__)


def repair_services(store: Store) -> list[str]:
    """Clamp every stored desired count to [0, TASKS_PER_SERVICE]; returns what was repaired."""
    repaired = []
    for service in store.list_services():
        count = service.desired_count
        if isinstance(count, int) and 0 <= count <= TASKS_PER_SERVICE:
            continue
        fixed = max(0, min(TASKS_PER_SERVICE, int(count))) if isinstance(count, int) else 0

        def clamp(current: Service, fixed: int = fixed) -> Service:
            return dataclasses.replace(current, desired_count=fixed)

        store.update_service_spec(service.cluster, service.name, clamp)
        note = (
            f"service {service.cluster}/{service.name}: stored desiredCount {str(count)[:40]} "
            f"is outside 0..{TASKS_PER_SERVICE} (ECS quota: tasks per service); set to {fixed}"
        )
        log.warning("repaired state: %s", note)
        repaired.append(note)
    return repaired
