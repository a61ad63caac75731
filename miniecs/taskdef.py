"""Task definitions as ECS validates and normalises them on RegisterTaskDefinition.

Pure functions: a request document in, the normalised DescribeTaskDefinition document out, or a
`ClientException` worded as ECS words it. Nothing is stored here; the caller stores only what
passed. Fields Fargate refuses (privileged, host networking, host mounts, devices, added
capabilities) are refused unless the operator allowed them.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from miniecs.config import ACCOUNT_ID, TaskSettings
from miniecs.errors import ClientException

FARGATE_SIZES: dict[int, frozenset[int]] = {
    256: frozenset({512, 1024, 2048}),
    512: frozenset(range(1024, 4097, 1024)),
    1024: frozenset(range(2048, 8193, 1024)),
    2048: frozenset(range(4096, 16385, 1024)),
    4096: frozenset(range(8192, 30721, 1024)),
    8192: frozenset(range(16384, 61441, 4096)),
    16384: frozenset(range(32768, 122881, 8192)),
}
"""Valid Fargate task sizes: CPU units to the memory (MiB) values allowed with them."""

_FAMILY = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_CONTAINER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_CONDITIONS = {"START", "COMPLETE", "SUCCESS", "HEALTHY"}
FARGATE_SYSCTLS = re.compile(
    r"kernel\.(msgmax|msgmnb|msgmni|sem|shmall|shmmax|shmmni|shm_rmid_forced)|fs\.mqueue\..+"
    r"|net\..+"
)
"""systemControls Fargate takes: namespaced kernel parameters (IPC and network namespaces)."""
FARGATE_CAPABILITIES = frozenset({"SYS_PTRACE"})
"""The only capability Fargate lets a container add."""
_NOT_ON_FARGATE_CONTAINER = (
    "dockerSecurityOptions",
    "links",
    "hostname",
    "extraHosts",
    "dnsServers",
    "dnsSearchDomains",
)
_NOT_ON_FARGATE_LINUX = ("tmpfs", "sharedMemorySize", "maxSwap", "swappiness")
MIN_CONTAINER_MEMORY_MIB = 6
ULIMIT_NAMES = frozenset(
    {"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc",
     "rss", "rtprio", "rttime", "sigpending", "stack"}
)  # fmt: skip
"""ECS's UlimitName enum (botocore's ECS model)."""
FARGATE_MAX_NOFILE = 1_048_576
LOG_DRIVERS = frozenset(
    {"json-file", "syslog", "journald", "gelf", "fluentd", "awslogs", "splunk", "awsfirelens"}
)
"""ECS's LogDriver enum (botocore's ECS model)."""
_PARAMETER_NAME = re.compile(r"[a-zA-Z0-9_.\-/]+")
DEFAULT_STOP_TIMEOUT = 30
MAX_STOP_TIMEOUT = 120


@dataclass(frozen=True, slots=True)
class HealthCheck:
    command: list[str]
    interval: int = 30
    timeout: int = 5
    retries: int = 3
    start_period: int = 0


def parse_cpu(value: Any) -> int:
    """CPU units from '1024', 1024 or '1 vCPU' / '0.25 vcpu'."""
    text = str(value).strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*vcpu", text, re.IGNORECASE)
    try:
        if match:
            return round(float(match.group(1)) * 1024)
        return int(text)
    except ValueError:
        raise ClientException("Invalid 'cpu' setting for task.") from None


def parse_memory(value: Any) -> int:
    """MiB from '2048', 2048 or '2 GB' / '0.5gb'."""
    text = str(value).strip()
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*gb", text, re.IGNORECASE)
    try:
        if match:
            return round(float(match.group(1)) * 1024)
        return int(text)
    except ValueError:
        raise ClientException("Invalid 'memory' setting for task.") from None


def _container_error(name: str, text: str) -> ClientException:
    return ClientException(f"Invalid setting for container '{name}'. {text}")


def _refuse(name: str, field: str, flag: str) -> ClientException:
    return _container_error(
        name,
        f"'{field}' is not supported on Fargate; miniecs refuses it unless started with {flag}.",
    )


def normalise_health_check(name: str, raw: dict[str, Any]) -> dict[str, Any]:
    command = list(raw.get("command") or [])
    if not command:
        raise _container_error(name, "'healthCheck.command' must not be empty.")
    if command[0] not in ("CMD", "CMD-SHELL"):
        command = ["CMD", *command]
    out = {
        "command": command,
        "interval": raw.get("interval", 30),
        "timeout": raw.get("timeout", 5),
        "retries": raw.get("retries", 3),
    }
    for key, low, high in (("interval", 5, 300), ("timeout", 2, 60), ("retries", 1, 10)):
        if not low <= int(out[key]) <= high:
            raise _container_error(name, f"'healthCheck.{key}' must be between {low} and {high}.")
    if "startPeriod" in raw:
        if not 0 <= int(raw["startPeriod"]) <= 300:
            raise _container_error(name, "'healthCheck.startPeriod' must be between 0 and 300.")
        out["startPeriod"] = raw["startPeriod"]
    return out


def health_check_of(container: dict[str, Any]) -> HealthCheck | None:
    raw = container.get("healthCheck")
    if not raw:
        return None
    return HealthCheck(
        command=list(raw["command"]),
        interval=int(raw.get("interval", 30)),
        timeout=int(raw.get("timeout", 5)),
        retries=int(raw.get("retries", 3)),
        start_period=int(raw.get("startPeriod", 0)),
    )


def check_refused(c: dict[str, Any], settings: TaskSettings) -> None:
    """Refuse what Fargate refuses unless the operator allowed it."""
    name = c["name"]
    linux = c.get("linuxParameters") or {}
    added = set((linux.get("capabilities") or {}).get("add") or ())
    if c.get("privileged") and not settings.allow_privileged:
        raise _refuse(name, "privileged", "--allow-privileged")
    if added - FARGATE_CAPABILITIES and not settings.allow_privileged:
        raise _refuse(name, "linuxParameters.capabilities.add", "--allow-privileged")
    if linux.get("devices") and not settings.allow_privileged:
        raise _refuse(name, "linuxParameters.devices", "--allow-privileged")


def fargate_refusals(doc: dict[str, Any], settings: TaskSettings) -> list[str]:
    """Why a task definition cannot run on Fargate, each reason naming its field, as ECS
    words them; empty when it can. Fields the operator allowed (flags) do not count, and
    fields miniecs would only store without applying are refused here too, never ignored."""
    reasons = []
    mode = doc.get("networkMode") or "bridge"
    if mode != "awsvpc" and not (mode == "host" and settings.allow_host_network):
        reasons.append(f"Fargate only supports network mode 'awsvpc' (networkMode '{mode}').")
    if doc.get("ipcMode") and not (doc["ipcMode"] == "host" and settings.allow_host_network):
        reasons.append("'ipcMode' is not supported on Fargate.")
    if doc.get("pidMode") and not (doc["pidMode"] == "host" and settings.allow_host_network):
        reasons.append("'pidMode' is not supported by miniecs.")
    for v in doc.get("volumes") or ():
        for key in (
            "dockerVolumeConfiguration",
            "fsxWindowsFileServerVolumeConfiguration",
            "configuredAtLaunch",
        ):
            if v.get(key):
                where = (
                    "is not supported on Fargate"
                    if key.startswith("docker")
                    else ("is not emulated by miniecs")
                )
                reasons.append(f"Invalid setting for volume '{v.get('name')}'. '{key}' {where}.")
    for c in doc.get("containerDefinitions") or ():
        name = c.get("name")
        linux = c.get("linuxParameters") or {}
        for key in _NOT_ON_FARGATE_CONTAINER:
            if c.get(key):
                reasons.append(
                    f"Invalid setting for container '{name}'. '{key}' is not supported on Fargate."
                )
        for key in _NOT_ON_FARGATE_LINUX:
            if linux.get(key):
                reasons.append(
                    f"Invalid setting for container '{name}'. 'linuxParameters.{key}' is not "
                    "supported on Fargate."
                )
        for control in c.get("systemControls") or ():
            if not FARGATE_SYSCTLS.fullmatch(str(control.get("namespace") or "")):
                reasons.append(
                    f"Invalid setting for container '{name}'. 'systemControls' namespace "
                    f"'{control.get('namespace')}' is not supported on Fargate."
                )
    return reasons


def _normalise_container(
    c: dict[str, Any], network_mode: str, settings: TaskSettings
) -> dict[str, Any]:
    name = c.get("name")
    if not name or not _CONTAINER_NAME.match(str(name)):
        raise ClientException(
            "Container name should be between 1 and 255 characters and contain only "
            "letters, numbers, hyphens and underscores."
        )
    if not c.get("image"):
        raise _container_error(name, "'image' is required.")
    check_refused(c, settings)
    out = copy.deepcopy(c)
    out.setdefault("cpu", 0)
    out.setdefault("essential", True)
    for key in ("environment", "mountPoints", "volumesFrom", "systemControls"):
        out.setdefault(key, [])
    memory, reservation = c.get("memory"), c.get("memoryReservation")
    for key, value in (("memory", memory), ("memoryReservation", reservation)):
        if value is not None and int(value) < MIN_CONTAINER_MEMORY_MIB:
            raise _container_error(
                name, f"The '{key}' value must be at least {MIN_CONTAINER_MEMORY_MIB} MiB."
            )
    if memory is not None and reservation is not None and int(reservation) > int(memory):
        raise _container_error(name, "'memoryReservation' must be less than or equal to 'memory'.")
    mappings = []
    for pm in c.get("portMappings") or []:
        pm = dict(pm)
        port = pm.get("containerPort")
        if port is None or not 0 < int(port) < 65536:
            raise _container_error(name, "'portMappings.containerPort' must be 1-65535.")
        if network_mode == "awsvpc":
            if pm.get("hostPort") not in (None, port):
                raise ClientException(
                    "When networkMode=awsvpc, the host ports and container ports in port "
                    "mappings must match."
                )
            pm["hostPort"] = port
        pm.setdefault("protocol", "tcp")
        mappings.append(pm)
    out["portMappings"] = mappings
    if c.get("healthCheck"):
        out["healthCheck"] = normalise_health_check(name, c["healthCheck"])
    if "stopTimeout" in c and not 2 <= int(c["stopTimeout"]) <= MAX_STOP_TIMEOUT:
        raise _container_error(name, f"'stopTimeout' must be between 2 and {MAX_STOP_TIMEOUT}.")
    _check_ulimits(name, c.get("ulimits") or [])
    _check_secrets(name, c.get("secrets") or [])
    _check_log_configuration(name, c.get("logConfiguration"))
    return out


def _check_ulimits(name: str, ulimits: list[dict[str, Any]]) -> None:
    for u in ulimits:
        if u.get("name") not in ULIMIT_NAMES:
            raise _container_error(
                name, f"'ulimits.name' {u.get('name')!r} is not one of {sorted(ULIMIT_NAMES)}."
            )
        if int(u["softLimit"]) > int(u["hardLimit"]):
            raise _container_error(
                name, f"The soft limit of ulimit '{u['name']}' exceeds its hard limit."
            )
        if u["name"] == "nofile" and int(u["hardLimit"]) > FARGATE_MAX_NOFILE:
            raise _container_error(
                name, f"The 'nofile' ulimit cannot exceed {FARGATE_MAX_NOFILE} on Fargate."
            )


def _value_from_problem(value_from: str) -> str | None:
    """Why `valueFrom` names no Secrets Manager secret or SSM parameter (None if it does)."""
    if value_from.startswith("arn:"):
        parts = value_from.split(":")
        if len(parts) >= 7 and parts[2] == "secretsmanager" and parts[5] == "secret":
            return None if len(parts) <= 10 else "too many fields after the secret name"
        if len(parts) == 6 and parts[2] == "ssm" and parts[5].startswith("parameter/"):
            return None
        return "it is neither a Secrets Manager secret ARN nor an SSM parameter ARN"
    if not _PARAMETER_NAME.fullmatch(value_from):
        return "it is not a valid parameter name"
    return None


def _check_secrets(name: str, secrets: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for secret in secrets:
        env, value_from = str(secret.get("name") or ""), str(secret.get("valueFrom") or "")
        if not env or not value_from:
            raise _container_error(name, "'secrets' entries need a 'name' and a 'valueFrom'.")
        problem = _value_from_problem(value_from)
        if problem:
            raise _container_error(name, f"Invalid 'valueFrom' for secret '{env}': {problem}.")
        if env in seen:
            raise _container_error(name, f"Duplicate secret name '{env}'.")
        seen.add(env)


def _check_log_configuration(name: str, config: dict[str, Any] | None) -> None:
    if not config:
        return
    driver = config.get("logDriver")
    if driver not in LOG_DRIVERS:
        raise _container_error(
            name, f"'logConfiguration.logDriver' must be one of {sorted(LOG_DRIVERS)}."
        )


def _check_depends_on(containers: list[dict[str, Any]]) -> None:
    by_name = {c["name"]: c for c in containers}
    for c in containers:
        for dep in c.get("dependsOn") or []:
            target, condition = dep.get("containerName"), dep.get("condition")
            if target not in by_name:
                raise _container_error(
                    c["name"], f"'dependsOn' names container '{target}', which does not exist."
                )
            if condition not in _CONDITIONS:
                raise _container_error(
                    c["name"], f"'dependsOn.condition' must be one of {sorted(_CONDITIONS)}."
                )
            if condition in ("COMPLETE", "SUCCESS") and by_name[target]["essential"]:
                raise _container_error(
                    c["name"],
                    f"The '{condition}' condition cannot be used on essential container "
                    f"'{target}'.",
                )
            if condition == "HEALTHY" and not by_name[target].get("healthCheck"):
                raise _container_error(
                    c["name"],
                    f"The 'HEALTHY' condition needs a health check on container '{target}'.",
                )
    start_order(containers)


def start_order(containers: list[dict[str, Any]]) -> list[str]:
    """Container names in an order that respects dependsOn; a cycle is a ClientException."""
    deps = {c["name"]: [d["containerName"] for d in c.get("dependsOn") or []] for c in containers}
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in order:
            return
        if name in visiting:
            raise ClientException(f"Cyclic 'dependsOn' involving container '{name}'.")
        visiting.add(name)
        for dep in deps[name]:
            visit(dep)
        visiting.discard(name)
        order.append(name)

    for c in containers:
        visit(c["name"])
    return order


def _check_volumes(volumes: list[dict[str, Any]], settings: TaskSettings) -> None:
    for v in volumes:
        if (v.get("host") or {}).get("sourcePath") and not settings.allow_host_mounts:
            raise ClientException(
                f"Invalid setting for volume '{v.get('name')}'. 'host.sourcePath' is not "
                "supported on Fargate; miniecs refuses it unless started with "
                "--allow-host-mounts."
            )


def _check_sizes(
    doc: dict[str, Any], containers: list[dict[str, Any]], fargate: bool
) -> tuple[int | None, int | None]:
    cpu = parse_cpu(doc["cpu"]) if doc.get("cpu") is not None else None
    memory = parse_memory(doc["memory"]) if doc.get("memory") is not None else None
    if fargate:
        if cpu is None:
            raise ClientException("Fargate requires that 'cpu' be defined at the task level.")
        if memory is None:
            raise ClientException("Fargate requires that 'memory' be defined at the task level.")
        if memory not in FARGATE_SIZES.get(cpu, frozenset()):
            raise ClientException(
                f"No Fargate configuration exists for given values: {cpu} CPU, {memory} memory. "
                "See the Amazon ECS documentation for the valid values."
            )
    elif cpu is not None and not 128 <= cpu <= 196608:
        raise ClientException("Invalid 'cpu' setting for task.")
    if memory is None:
        for c in containers:
            if c.get("memory") is None and c.get("memoryReservation") is None:
                raise _container_error(
                    c["name"], "At least one of 'memory' or 'memoryReservation' must be specified."
                )
    if cpu is not None:
        total_cpu = sum(int(c.get("cpu") or 0) for c in containers)
        if total_cpu > cpu:
            raise ClientException(
                f"Invalid setting for containers. The sum of container 'cpu' ({total_cpu}) "
                f"exceeds the task 'cpu' ({cpu})."
            )
    if memory is not None:
        for key in ("memory", "memoryReservation"):
            total = sum(int(c.get(key) or 0) for c in containers)
            if total > memory:
                raise ClientException(
                    f"Invalid setting for containers. The sum of container '{key}' ({total} MiB) "
                    f"exceeds the task 'memory' ({memory} MiB)."
                )
    return cpu, memory


def normalise(
    request: dict[str, Any],
    revision: int,
    region: str,
    registered_at: float,
    settings: TaskSettings,
) -> dict[str, Any]:
    """Validate a RegisterTaskDefinition request and return the stored TaskDefinition document."""
    family = request.get("family")
    if not family or not _FAMILY.match(str(family)):
        raise ClientException(
            "Family contains invalid characters. Up to 255 letters (uppercase and lowercase), "
            "numbers, hyphens, and underscores are allowed."
        )
    raw_containers = request.get("containerDefinitions") or []
    if not raw_containers:
        raise ClientException("Container list cannot be empty.")
    requires = list(request.get("requiresCompatibilities") or [])
    fargate = "FARGATE" in requires
    network_mode = request.get("networkMode") or ("awsvpc" if fargate else "bridge")
    if fargate and network_mode != "awsvpc":
        raise ClientException(
            f"Fargate only supports network mode 'awsvpc' (networkMode '{network_mode}')."
        )
    if network_mode == "host" and not settings.allow_host_network:
        raise ClientException(
            "networkMode 'host' is not supported on Fargate; miniecs refuses it unless started "
            "with --allow-host-network."
        )
    for key in ("pidMode", "ipcMode"):
        if request.get(key) == "host" and not settings.allow_host_network:
            raise ClientException(
                f"{key} 'host' is not supported on Fargate; miniecs refuses it unless started "
                "with --allow-host-network."
            )
    containers = [_normalise_container(c, network_mode, settings) for c in raw_containers]
    names = [c["name"] for c in containers]
    if len(set(names)) != len(names):
        raise ClientException("Container names must be unique within a task definition.")
    if not any(c["essential"] for c in containers):
        raise ClientException("Task definition must have at least one essential container.")
    _check_depends_on(containers)
    volumes = list(request.get("volumes") or [])
    _check_volumes(volumes, settings)
    cpu, memory = _check_sizes(request, containers, fargate)
    off_fargate = fargate_refusals({**request, "networkMode": network_mode}, settings)
    if fargate and off_fargate:
        raise ClientException(off_fargate[0])
    # As ECS lists them (aws CLI examples: ["EXTERNAL", "EC2"] for a bridge definition).
    fargate_sized = cpu is not None and memory in FARGATE_SIZES.get(cpu, frozenset())
    if network_mode != "awsvpc":
        compatibilities = ["EXTERNAL", "EC2"]
    elif off_fargate or not fargate_sized:
        compatibilities = ["EC2"]
    else:
        compatibilities = ["EC2", "FARGATE"]

    doc: dict[str, Any] = {
        "taskDefinitionArn": (
            f"arn:aws:ecs:{region}:{ACCOUNT_ID}:task-definition/{family}:{revision}"
        ),
        "containerDefinitions": containers,
        "family": family,
        "networkMode": network_mode,
        "revision": revision,
        "volumes": volumes,
        "status": "ACTIVE",
        "requiresAttributes": [],
        "placementConstraints": list(request.get("placementConstraints") or []),
        "compatibilities": compatibilities,
        "registeredAt": registered_at,
        "registeredBy": f"arn:aws:iam::{ACCOUNT_ID}:root",
    }
    for key in (
        "taskRoleArn",
        "executionRoleArn",
        "pidMode",
        "ipcMode",
        "proxyConfiguration",
        "inferenceAccelerators",
        "ephemeralStorage",
        "runtimePlatform",
        "enableFaultInjection",
    ):
        if key in request:
            doc[key] = copy.deepcopy(request[key])
    if requires:
        doc["requiresCompatibilities"] = requires
    if cpu is not None:
        doc["cpu"] = str(cpu)
    if memory is not None:
        doc["memory"] = str(memory)
    return doc
