"""From a task and its task definition to the container specs a runtime creates. Pure.

Resource mapping (documented in the README):
- one-container task (the common case): task `cpu` becomes a hard CFS quota (NanoCpus) and task
  `memory` a hard limit with no swap on that container: exactly Fargate's task-level limits;
- several containers: a pause container holds the task's network namespace (as ECS's pause
  container does on awsvpc) and every container joins it, so they share one IP and reach each
  other on localhost. Each container is capped at the task's CPU (container `cpu` becomes
  relative shares) and the task memory is split: a container's own `memory` if it has one,
  an equal share of what remains otherwise, so the sum never exceeds the task memory.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from miniecs.model import Task, TaskDefinition
from miniecs.runtime.base import (
    LABEL_CLUSTER,
    LABEL_CONTAINER,
    LABEL_INSTANCE,
    LABEL_MANAGED,
    LABEL_TASK,
    PAUSE_CONTAINER,
    ContainerSpec,
    HealthCheckSpec,
)
from miniecs.taskdef import DEFAULT_STOP_TIMEOUT, health_check_of, parse_cpu, parse_memory

PAUSE_IMAGE = "miniecs/base:bookworm"
MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SpecContext:
    instance: str
    network: str
    host_cpus: int
    clock_speed: float = 1.0
    pids_limit: int = 4096
    host_ulimits: dict[str, int] | None = None
    """Hard limits a container of this engine may have, by Docker ulimit name (None: unknown).
    Docker cannot raise a limit above its own: a task's ulimits are clamped to these."""


FARGATE_NOFILE_DEFAULT = 65535
"""Fargate's default `nofile` soft and hard limit."""


def clamp_ulimits(
    ulimits: list[dict[str, Any]], host: dict[str, int] | None
) -> tuple[list[tuple[str, int, int]], list[str]]:
    """A container's ulimits as (name, soft, hard) within the host's hard limits, and a note
    for each one that had to be lowered."""
    out: list[tuple[str, int, int]] = []
    notes: list[str] = []
    for u in ulimits:
        name, soft, hard = u["name"], int(u["softLimit"]), int(u["hardLimit"])
        cap = (host or {}).get(name)
        if cap is not None and cap >= 0 and hard > cap:
            notes.append(
                f"ulimit {name} {soft}:{hard} clamped to {min(soft, cap)}:{cap}, the most the "
                "Docker host allows"
            )
            soft, hard = min(soft, cap), cap
        out.append((name, soft, hard))
    return out, notes


def docker_name(task_id: str, container_name: str) -> str:
    if container_name == PAUSE_CONTAINER:
        return f"miniecs-{task_id}.pause"  # ECS container names cannot contain a dot
    return f"miniecs-{task_id}-{container_name}"


def expected_containers(td: TaskDefinition) -> list[str]:
    """ECS container names of a task, with the pause container first when there is one."""
    names = [c["name"] for c in td.containers]
    return [PAUSE_CONTAINER, *names] if len(names) > 1 else names


def effective_container(task: Task, container: dict[str, Any]) -> dict[str, Any]:
    """A container definition with RunTask's containerOverrides applied."""
    out = dict(container)
    for override in task.overrides.get("containerOverrides") or []:
        if override.get("name") != container["name"]:
            continue
        for key in ("command", "cpu", "memory", "memoryReservation"):
            if key in override:
                out[key] = override[key]
        if override.get("environment"):
            env = {e["name"]: e.get("value", "") for e in out.get("environment") or []}
            env.update({e["name"]: e.get("value", "") for e in override["environment"]})
            out["environment"] = [{"name": k, "value": v} for k, v in env.items()]
    return out


def volume_name(task_id: str, volume: dict[str, Any]) -> str:
    """The Docker volume (or host path) behind a task definition volume.

    Fargate task storage (a volume with no configuration) is a volume of the task, shared by
    its containers and removed with it. An EFS volume is a local named volume per file system
    and root directory, shared by every task that mounts it (it persists, as EFS does). A host
    `sourcePath` (only with --allow-host-mounts) is bind-mounted."""
    efs = volume.get("efsVolumeConfiguration")
    if efs:
        root = str(efs.get("rootDirectory") or "/").strip("/").replace("/", "_")
        return f"miniecs-efs-{efs.get('fileSystemId')}" + (f"-{root}" if root else "")
    source = (volume.get("host") or {}).get("sourcePath")
    if source:
        return str(source)
    return f"miniecs-{task_id}-{volume['name']}"


def task_volumes(task: Task, td: TaskDefinition) -> dict[str, str]:
    """Task definition volume name to Docker volume name (or host path)."""
    return {v["name"]: volume_name(task.task_id, v) for v in td.document.get("volumes") or []}


def task_size(task: Task, td: TaskDefinition) -> tuple[int | None, int | None]:
    """Task CPU units and memory MiB, after taskOverride-style overrides."""
    cpu = task.overrides.get("cpu") or td.document.get("cpu")
    memory = task.overrides.get("memory") or td.document.get("memory")
    return (parse_cpu(cpu) if cpu else None, parse_memory(memory) if memory else None)


def stop_timeout(container: dict[str, Any]) -> int:
    return int(container.get("stopTimeout") or DEFAULT_STOP_TIMEOUT)


def _labels(ctx: SpecContext, task: Task, name: str) -> dict[str, str]:
    return {
        LABEL_MANAGED: "true",
        LABEL_INSTANCE: ctx.instance,
        LABEL_CLUSTER: task.cluster,
        LABEL_TASK: task.task_id,
        LABEL_CONTAINER: name,
        "com.amazonaws.ecs.cluster": task.cluster,
        "com.amazonaws.ecs.task-arn": task.arn,
        "com.amazonaws.ecs.container-name": name,
        "com.amazonaws.ecs.task-definition-family": task.family,
    }


MIN_NANO_CPUS = 10_000_000
"""Docker's smallest CPU quota (0.01 CPU, a 1 ms CFS quota); the kernel refuses less."""


def _nano_cpus(cpu_units: int, host_cpus: int) -> int:
    """CPU units as NanoCpus, clamped to the host (Docker refuses more than it has) and to
    Docker's minimum (a container `cpu` of 10 units would be a quota the kernel refuses)."""
    return max(MIN_NANO_CPUS, min(cpu_units * 1_000_000_000 // 1024, host_cpus * 1_000_000_000))


def _health(container: dict[str, Any], speed: float) -> HealthCheckSpec | None:
    hc = health_check_of(container)
    if hc is None:
        return None
    test = hc.command if hc.command[0] in ("CMD", "CMD-SHELL") else ["CMD", *hc.command]
    # Interval and start period follow the control-plane clock; the probe timeout does not,
    # since a probe needs real time to run.
    return HealthCheckSpec(
        test=test,
        interval_s=max(0.5, hc.interval / speed),
        timeout_s=float(hc.timeout),
        retries=hc.retries,
        start_period_s=hc.start_period / speed,
    )


def _memory_split(
    containers: list[dict[str, Any]], task_memory: int | None
) -> dict[str, int | None]:
    """Hard limits per container: its own `memory`, else an equal share of what the others
    leave of the task memory, never below its reservation; with nothing left, the task's."""
    explicit = {c["name"]: c.get("memory") for c in containers}
    if task_memory is None:
        return {k: int(v) if v else None for k, v in explicit.items()}
    unset = [k for k, v in explicit.items() if not v]
    remaining = task_memory - sum(int(v) for v in explicit.values() if v)
    share = remaining // len(unset) if unset else 0
    out: dict[str, int | None] = {}
    for c in containers:
        own = explicit[c["name"]]
        limit = int(own) if own else (share if share >= 6 else task_memory)
        out[c["name"]] = max(limit, int(c.get("memoryReservation") or 0))
    return out


def container_specs(
    task: Task,
    td: TaskDefinition,
    ctx: SpecContext,
    secret_env: dict[str, dict[str, str]] | None = None,
) -> list[ContainerSpec]:
    """Specs in creation order: the pause container (if any) first, then the task's containers.
    `secret_env`: each container's resolved `secrets`, by container name."""
    containers = [effective_container(task, c) for c in td.containers]
    cpu, memory = task_size(task, td)
    multi = len(containers) > 1
    specs: list[ContainerSpec] = []
    owner = docker_name(task.task_id, PAUSE_CONTAINER) if multi else None
    if multi:
        specs.append(
            ContainerSpec(
                docker_name=docker_name(task.task_id, PAUSE_CONTAINER),
                task_id=task.task_id,
                cluster=task.cluster,
                container_name=PAUSE_CONTAINER,
                image=PAUSE_IMAGE,
                labels=_labels(ctx, task, PAUSE_CONTAINER),
                command=["sleep", "infinity"],
                hostname=f"ip-{task.task_id[:12]}",
                network=ctx.network,
                memory_bytes=16 * MIB,
                pids_limit=16,
                init=True,
            )
        )
    memory_of = _memory_split(containers, memory)
    # systemControls: network ones belong to the task's network namespace (the pause
    # container's when there is one; the last container's value wins, as on ECS), the others
    # (IPC namespace) to their own container.
    network_sysctls = {
        s["namespace"]: str(s.get("value", ""))
        for c in containers
        for s in c.get("systemControls") or ()
        if str(s.get("namespace", "")).startswith("net.")
    }
    if multi and network_sysctls:
        specs[0] = dataclasses.replace(specs[0], sysctls=network_sysctls)
    volumes = task_volumes(task, td)
    for c in containers:
        name = c["name"]
        env = {e["name"]: str(e.get("value", "")) for e in c.get("environment") or []}
        env.update((secret_env or {}).get(name, {}))
        env.update(
            {
                "MINIECS_TASK_ARN": task.arn,
                "MINIECS_TASK_ID": task.task_id,
                "MINIECS_CLUSTER": task.cluster,
                "MINIECS_CONTAINER_NAME": name,
                "AWS_REGION": task.region,
                "AWS_DEFAULT_REGION": task.region,
            }
        )
        linux = c.get("linuxParameters") or {}
        caps = linux.get("capabilities") or {}
        container_cpu = int(c.get("cpu") or 0)
        if cpu is not None:
            nano = _nano_cpus(cpu, ctx.host_cpus)
        elif container_cpu:
            nano = _nano_cpus(container_cpu, ctx.host_cpus)
        else:
            nano = None
        mem = memory_of[name]
        reservation = c.get("memoryReservation")
        specs.append(
            ContainerSpec(
                docker_name=docker_name(task.task_id, name),
                task_id=task.task_id,
                cluster=task.cluster,
                container_name=name,
                image=c["image"],
                labels=_labels(ctx, task, name),
                command=c.get("command"),
                entrypoint=c.get("entryPoint"),
                environment=env,
                working_dir=c.get("workingDirectory"),
                user=c.get("user"),
                hostname=None if multi else f"ip-{task.task_id[:12]}",
                network=None if multi else ctx.network,
                netns_of=owner,
                nano_cpus=nano,
                cpu_shares=max(2, container_cpu) if multi and container_cpu else None,
                memory_bytes=mem * MIB if mem else None,
                memory_reservation_bytes=int(reservation) * MIB if reservation else None,
                pids_limit=ctx.pids_limit,
                health_check=_health(c, ctx.clock_speed),
                init=bool(linux.get("initProcessEnabled")),
                read_only=bool(c.get("readonlyRootFilesystem")),
                privileged=bool(c.get("privileged")),
                cap_add=list(caps.get("add") or []),
                cap_drop=list(caps.get("drop") or []),
                ulimits=clamp_ulimits(c.get("ulimits") or [], ctx.host_ulimits)[0],
                docker_labels=dict(c.get("dockerLabels") or {}),
                sysctls={
                    **{
                        s["namespace"]: str(s.get("value", ""))
                        for s in c.get("systemControls") or ()
                        if not str(s.get("namespace", "")).startswith("net.")
                    },
                    **({} if multi else network_sysctls),
                },
                mounts=[
                    (volumes[m["sourceVolume"]], m["containerPath"], bool(m.get("readOnly")))
                    for m in c.get("mountPoints") or []
                    if m.get("sourceVolume") in volumes and m.get("containerPath")
                ],
                volumes_from=[
                    docker_name(task.task_id, v["sourceContainer"])
                    + (":ro" if v.get("readOnly") else "")
                    for v in c.get("volumesFrom") or []
                ],
                tty=bool(c.get("pseudoTerminal")),
                stdin_open=bool(c.get("interactive")),
            )
        )
    return specs
