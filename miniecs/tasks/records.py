"""New task records, made the same way for RunTask and for the service scheduler."""

from __future__ import annotations

import uuid
from typing import Any

from miniecs.model import ContainerRecord, Task, TaskDefinition


def new_task(
    cluster: str,
    region: str,
    td: TaskDefinition,
    now: float,
    *,
    group: str | None = None,
    started_by: str | None = None,
    service: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Task:
    """A task in PROVISIONING with desiredStatus RUNNING; the task controller does the rest."""
    overrides = overrides or {}
    by_name = {o.get("name"): o for o in overrides.get("containerOverrides") or []}
    containers = []
    for c in td.containers:
        over: dict[str, Any] = by_name.get(c["name"]) or {}
        containers.append(
            ContainerRecord(
                name=c["name"],
                container_id=str(uuid.uuid4()),
                image=c["image"],
                essential=bool(c.get("essential", True)),
                has_health_check=bool(c.get("healthCheck")),
                cpu=int(over.get("cpu", c.get("cpu") or 0)),
                memory=over.get("memory", c.get("memory")),
                memory_reservation=over.get("memoryReservation", c.get("memoryReservation")),
            )
        )
    return Task(
        task_id=uuid.uuid4().hex,
        cluster=cluster,
        region=region,
        task_definition_arn=td.arn,
        family=td.family,
        cpu=overrides.get("cpu") or td.document.get("cpu"),
        memory=overrides.get("memory") or td.document.get("memory"),
        created_at=now,
        containers=tuple(containers),
        group=group or f"family:{td.family}",
        started_by=started_by,
        service=service,
        overrides=overrides,
    )
