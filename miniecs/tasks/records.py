"""New task records, made the same way for RunTask and for the service scheduler."""

from __future__ import annotations

import uuid
from typing import Any

from miniecs.model import ContainerRecord, Task, TaskDefinition


def subnets_of(network: dict[str, Any] | None) -> tuple[str, ...]:
    """The subnets of a (validated) ECS `networkConfiguration`."""
    return tuple(((network or {}).get("awsvpcConfiguration") or {}).get("subnets") or ())


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
    subnets: tuple[str, ...] = (),
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
    task_id = uuid.uuid4().hex
    return Task(
        task_id=task_id,
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
        # ECS spreads tasks over the subnets given; any one of them is faithful.
        subnet_id=subnets[int(task_id, 16) % len(subnets)] if subnets else None,
    )
