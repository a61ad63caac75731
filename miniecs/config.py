"""Settings grouped by concern, each with a default; the environment is read here, nowhere else."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ACCOUNT_ID = "000000000000"
"""The account every ARN carries."""


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    """Address the AWS endpoint binds; loopback by default, so only this host reaches it."""
    port: int = 4566
    """Port of the AWS endpoint (the one boto3's endpoint_url points at)."""
    region: str = field(default_factory=lambda: _env("MINIECS_REGION", "us-east-1"))
    """Region written into every ARN."""


@dataclass(frozen=True, slots=True)
class TaskSettings:
    allow_privileged: bool = False
    """Let task definitions use privileged mode and added capabilities (Fargate refuses them)."""
    allow_host_network: bool = False
    """Let task definitions use networkMode host / pidMode host (Fargate refuses them)."""
    allow_host_mounts: bool = False
    """Let volumes bind-mount host paths (Fargate refuses them)."""
    pids_limit: int = 4096
    """Maximum processes per container."""
    pull_timeout: float = 60.0
    """Real seconds an image pull may take before the task fails (CannotPullContainerError)."""
    stopped_task_retention: float = 3600.0
    """Control-plane seconds a STOPPED task stays visible to DescribeTasks, as on ECS."""
    reconcile_interval: float = 0.5
    """Real seconds between two task-controller passes (Docker events wake it sooner)."""


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    sample_interval: float = 1.0
    """Real seconds between two samples of every running task's containers."""
    window: float = 120.0
    """Real seconds of raw samples kept in memory per container."""
    publish_period: float = 20.0
    """Control-plane seconds between two published datapoints (ECS's high resolution)."""
    source: str = "auto"
    """Where container usage is read: `auto` (the cgroup when the engine is local and the
    cgroup visible, else the Docker stats API), `cgroup`, or `stats`."""


@dataclass(frozen=True, slots=True)
class LogSettings:
    max_mib: int = 1024
    """Cap on the CloudWatch Logs events stored (MiB of messages); the oldest go first."""
    prune_interval: float = 60.0
    """Real seconds between two passes that enforce retention and the cap."""


@dataclass(frozen=True, slots=True)
class Settings:
    state_dir: Path = field(
        default_factory=lambda: Path(_env("MINIECS_STATE_DIR", str(Path.home() / ".miniecs")))
    )
    """Directory holding the SQLite state; the containers of one state dir belong to it."""
    clock_speed: float = 1.0
    """Control-plane time runs this many times faster than the wall clock."""
    server: ServerSettings = field(default_factory=ServerSettings)
    tasks: TaskSettings = field(default_factory=TaskSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    logs: LogSettings = field(default_factory=LogSettings)
    secrets_file: Path | None = None
    """JSON seeding Secrets Manager and SSM at start (`miniecs server --secrets-file`)."""
