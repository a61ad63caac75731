"""The composition root: builds the store, runtime, clock, loops and the AWS endpoint from
settings, runs them together, and shuts them down in order (stop accepting requests, let
in-flight task actions finish, cancel the loops, close the store). Tasks keep running while
miniecs is down, as ECS tasks do when the control plane is away; the next start adopts them."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import IO, Any

import uvicorn

from miniecs.alb.controller import AlbController
from miniecs.alb.store import AlbStore
from miniecs.autoscaler.loop import AutoScaler
from miniecs.autoscaler.store import ScalingStore
from miniecs.aws.app import LOOPBACK_NAMES, create_app
from miniecs.aws.autoscaling import AutoScalingApi, ScalingAlarms
from miniecs.aws.cloudwatch import CloudWatchApi
from miniecs.aws.ecs import EcsApi
from miniecs.aws.elbv2 import Elbv2Api
from miniecs.aws.logs import LogsApi
from miniecs.aws.protocols import JsonService, RpcV2CborService
from miniecs.aws.query import QueryService
from miniecs.aws.secretsmanager import SecretsManagerApi
from miniecs.aws.ssm import SsmApi
from miniecs.clock import Clock, SystemClock
from miniecs.config import Settings
from miniecs.console import Console
from miniecs.console.web import router as console_router
from miniecs.logs.awslogs import LogShipper
from miniecs.logs.store import LogStore
from miniecs.logs.tasklogs import TaskLogTail
from miniecs.metrics.publish import Publisher
from miniecs.metrics.sampler import Sampler
from miniecs.metrics.store import MetricStore
from miniecs.metrics.view import UsageView, usage_view
from miniecs.model import Service, Task, TaskStatus
from miniecs.runtime.base import PAUSE_CONTAINER, Runtime
from miniecs.runtime.docker import DockerRuntime
from miniecs.scheduler.loop import ServiceScheduler
from miniecs.scheduler.repair import repair_services
from miniecs.scheduler.targets import holds
from miniecs.secrets.seed import SeedError, seed_secrets
from miniecs.secrets.store import SecretStore
from miniecs.store import Store
from miniecs.supervise import supervise
from miniecs.tasks.controller import TaskController

log = logging.getLogger(__name__)


def _lock_state_dir(state_dir: Path) -> IO[str]:
    """Hold the state dir for this process: two controllers on one state would fight over the
    same containers. The lock goes with the process, however it ends."""
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = (state_dir / "lock").open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise SystemExit(f"another miniecs is running on the state dir {state_dir}") from None
    return handle


PORT_FILE = "port"
"""File in the state dir holding the endpoint's real port once it listens (for --port 0)."""
INSTANCE_FILE = "instance"
"""File in the state dir holding the instance id that labels every Docker object it makes."""


def state_changes(
    before: dict[str, str], tasks: list[Task], services: list[Service]
) -> tuple[dict[str, str], list[str]]:
    """The tasks' and services' current states and one line per state that changed since
    ``before`` (a task's lastStatus, a service's status and desired count)."""
    now: dict[str, str] = {}
    lines: list[str] = []
    for task in tasks:
        key = f"task {task.cluster}/{task.task_id}"
        now[key] = state = task.last_status.value
        if before.get(key) != state:
            why = f" ({task.stopped_reason})" if task.stopped_reason and state == "STOPPED" else ""
            lines.append(f"{key} {before.get(key, 'new')} -> {state}{why}")
    for service in services:
        key = f"service {service.cluster}/{service.name}"
        now[key] = state = f"{service.status} desired={service.desired_count}"
        if before.get(key) != state:
            lines.append(f"{key} {before.get(key, 'new')} -> {state}")
    return now, lines


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the engine owns signals and shutdown order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Engine:
    settings: Settings
    runtime: Runtime | None = None
    clock: Clock | None = None
    strict_responses: bool = False
    """Raise when a response does not fit botocore's model (tests turn this on)."""
    store: Store = field(init=False)
    controller: TaskController = field(init=False)
    scheduler: ServiceScheduler = field(init=False)
    ready: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    def __post_init__(self) -> None:
        self._state_lock = _lock_state_dir(self.settings.state_dir)
        self.store = Store(self.settings.state_dir / "miniecs.db")
        repair_services(self.store)
        self.metrics = MetricStore(self.settings.state_dir / "metrics.db")
        """CloudWatch series (AWS/ECS, ECS/ContainerInsights, AWS/ApplicationELB, custom)."""
        instance = self.store.instance_id()
        if self.clock is None:
            anchor = self.store.get_meta("clock")
            self.clock = SystemClock(self.settings.clock_speed, float(anchor) if anchor else None)
        if self.runtime is None:
            self.runtime = DockerRuntime(instance, usage_source=self.settings.metrics.source)
        self.instance = instance
        (self.settings.state_dir / INSTANCE_FILE).write_text(f"{instance}\n")
        self.alb_store = AlbStore(self.settings.state_dir / "alb.db")
        self.logs = LogStore(
            self.settings.state_dir / "logs.db", max_bytes=self.settings.logs.max_mib << 20
        )
        """CloudWatch Logs: groups, streams, events (awslogs containers write here)."""
        clock = self.clock
        self.shipper = LogShipper(self.logs, self.runtime, lambda: int(clock.now() * 1000))
        self.secrets = SecretStore(self.settings.state_dir / "secrets.db")
        """Secrets Manager secrets and SSM parameters (task `secrets` resolve here)."""
        if self.settings.secrets_file is not None:
            try:
                seed_secrets(
                    self.secrets,
                    self.settings.secrets_file,
                    clock.now(),
                    self.settings.server.region,
                )
            except SeedError as exc:
                self._state_lock.close()
                raise SystemExit(str(exc)) from None
        self.alb = AlbController(self.alb_store, self.runtime, self.clock, self.metrics, instance)
        """Load balancers' data-plane containers and the target API (register/deregister)."""
        self.controller = TaskController(
            self.store,
            self.runtime,
            self.clock,
            self.settings.tasks,
            instance,
            host_cpus=os.cpu_count() or 1,
            stop_hold=self._held_by_load_balancer,
            logs=self.shipper,
            secrets=self.secrets,
        )
        self.scheduler = ServiceScheduler(
            self.store,
            self.clock,
            engine_available=lambda: self.controller.engine_available,
            load_balancing=self.alb,
        )
        self.sampler = Sampler(
            self.store,
            self.runtime,
            self.clock,
            self.settings.metrics,
            Publisher(self.store, self.metrics, self.settings.metrics.publish_period),
        )
        """Per-task usage (`sampler.latest()`) and the AWS/ECS, ECS/ContainerInsights series."""
        self.ecs = EcsApi(self.store, self.clock, self.settings, self._cluster_deleted)
        self.services: list[JsonService | QueryService] = [
            JsonService("ecs", self.ecs, strict=self.strict_responses)
        ]
        self.ecs.target_group_attached = self._target_group_attached
        self.services.append(
            QueryService(
                "elbv2",
                Elbv2Api(self.alb_store, self.alb, self.clock, self.settings.server.region),
                strict=self.strict_responses,
            )
        )
        self.scaling = ScalingStore(self.settings.state_dir / "autoscaling.db")
        self.autoscaler = AutoScaler(
            self.store,
            self.scaling,
            self.metrics,
            self.clock,
            # a period's datapoint is written at the first sample after it ends
            settle=2 * self.settings.metrics.sample_interval * self.clock.speed,
        )
        """Application Auto Scaling: alarms, decisions, desired counts (`why` reads history)."""
        region = self.settings.server.region
        self.services.append(
            JsonService(
                "application-autoscaling",
                AutoScalingApi(self.store, self.scaling, self.autoscaler, self.clock, region),
                strict=self.strict_responses,
            )
        )
        self.cloudwatch = CloudWatchApi(
            self.metrics, self.clock, alarms=ScalingAlarms(self.scaling, self.clock, region)
        )
        self.services.append(
            RpcV2CborService(
                "cloudwatch",
                self.cloudwatch,
                strict=self.strict_responses,
            )
        )
        self.services.append(
            QueryService(
                "cloudwatch",
                self.cloudwatch,
                strict=self.strict_responses,
            )
        )
        for name, handlers in (
            ("logs", LogsApi(self.logs, clock.now, region)),
            ("secretsmanager", SecretsManagerApi(self.secrets, clock.now, region)),
            ("ssm", SsmApi(self.secrets, clock.now, region)),
        ):
            self.services.append(JsonService(name, handlers, strict=self.strict_responses))
        assert self.clock is not None
        self.console = Console(
            self.services,
            self.clock,
            self.usage_view,
            self.scaling_history,
            target_requests=self.alb.target_requests,
            on_change=self.store.on_change,
            logs=TaskLogTail(self.store, self.logs),
        )
        """The web console at `/` (its views call the services above in-process)."""
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _cluster_deleted(self, cluster: str) -> None:
        assert self.runtime is not None
        with contextlib.suppress(Exception):
            await self.runtime.remove_network(cluster)

    async def _log_state_changes(self) -> None:
        """One INFO line per task or service state change, read after every store write."""
        changed = asyncio.Event()
        self.store.on_change(lambda kind: changed.set() if kind in ("task", "service") else None)
        states: dict[str, str] = {}
        watched: set[str] = set()
        while True:
            tasks = self.store.list_tasks(live_only=True)
            live = {t.task_id for t in tasks}
            for gone in watched - live:  # ended since the last look: report its last state
                if (record := self.store.get_task(gone)) is not None:
                    tasks.append(record)
            watched = live
            states, lines = state_changes(states, tasks, self.store.list_services())
            for line in lines:
                log.info("%s", line)
            for key in [k for k, v in states.items() if v == "STOPPED"]:
                del states[key]
            changed.clear()
            await changed.wait()
            await asyncio.sleep(0.05)  # one read for a burst of writes

    async def _prune_logs(self) -> None:
        """Retention and the size cap of CloudWatch Logs; expired secret deletions."""
        assert self.clock is not None
        while True:
            now = self.clock.now()
            await asyncio.to_thread(self.logs.prune, int(now * 1000))
            self.secrets.purge(now)
            await asyncio.sleep(self.settings.logs.prune_interval)

    async def _persist_clock(self) -> None:
        assert self.clock is not None
        while True:
            self.store.set_meta("clock", repr(self.clock.now()))
            await asyncio.sleep(1.0)

    def _held_by_load_balancer(self, task: Task) -> bool:
        """A service's task that must stop waits (DEACTIVATING) while its target drains."""
        if task.service is None:
            return False
        service = self.store.get_service(task.cluster, task.service)
        if service is None or not holds(task, service, self.alb):
            return False
        # A live task that got this task's IP owns the target now: do not wait for it.
        return not any(
            t.private_ip == task.private_ip and t.desired_status is TaskStatus.RUNNING
            for t in self.store.list_tasks(cluster=task.cluster, live_only=True)
            if t.task_id != task.task_id
        )

    def _serving_ip_lost(self, task_id: str, container: str) -> str | None:
        """The IP a task stops serving on when `container` dies: its pause container's or an
        essential container's death stops the task (ECS), so its targets stop at once."""
        task = self.store.get_task(task_id)
        if task is None or task.private_ip is None:
            return None
        if container != PAUSE_CONTAINER and not any(
            c.name == container and c.essential for c in task.containers
        ):
            return None
        return task.private_ip

    def _target_group_attached(self, arn: str) -> bool:
        info = self.alb.target_group(arn)
        return info is not None and bool(info.load_balancer_arns)

    def usage_view(self) -> UsageView:
        """Clusters, services and tasks with the sampler's latest usage, and the load
        balancers' counters (`top`, `/metrics`)."""
        assert self.clock is not None
        return usage_view(
            self.store,
            self.sampler.latest(),
            self.clock.now(),
            self.alb.load_balancer_counters(),
        )

    def scaling_history(self, resource_id: str) -> list[dict[str, Any]] | None:
        """The autoscaler's recent evaluations of a target (None if none is registered)."""
        if self.scaling.get_target(resource_id) is None:
            return None
        return self.autoscaler.why(resource_id)

    def _allowed_hosts(self) -> frozenset[str] | None:
        host = self.settings.server.host
        if host in LOOPBACK_NAMES or host.startswith("127."):
            return LOOPBACK_NAMES | {host}
        return None

    def request_stop(self) -> None:
        """Ask a running engine to shut down (thread-safe)."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._loop.add_signal_handler(sig, self._stop.set)
        server = _Server(
            uvicorn.Config(
                create_app(
                    self.services,
                    self._allowed_hosts(),
                    usage=self.usage_view,
                    scaling=self.scaling_history,
                    console=console_router(self.console),
                ),
                host=self.settings.server.host,
                port=self.settings.server.port,
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
        )
        serving = asyncio.create_task(server.serve(), name="aws-endpoint")
        while not server.started and not serving.done():  # noqa: ASYNC110 (uvicorn has no event)
            await asyncio.sleep(0.01)
        if serving.done():
            await serving
            self._close()
            raise SystemExit(
                f"could not listen on {self.settings.server.host}:{self.settings.server.port}"
            )
        # The loops start only once the endpoint is bound: a second server that cannot bind
        # never acts on the containers.
        async with asyncio.TaskGroup() as group:
            loops = [
                group.create_task(supervise(name, loop), name=name)
                for name, loop in (
                    ("task-controller", self.controller.run),
                    ("service-scheduler", self.scheduler.run),
                    ("alb-controller", self.alb.run),
                    ("alb-deaths", partial(self.alb.watch_deaths, self._serving_ip_lost)),
                    ("metrics-sampler", self.sampler.run),
                    ("autoscaler", self.autoscaler.run),
                    ("clock", self._persist_clock),
                    ("state-log", self._log_state_changes),
                    ("logs-retention", self._prune_logs),
                    ("console", self.console.run),
                )
            ]
            self.shipper.start()
            self.port = server.servers[0].sockets[0].getsockname()[1]
            port_file = self.settings.state_dir / PORT_FILE
            port_file.write_text(f"{self.port}\n")
            self.ready.set()
            log.info(
                "miniecs listening on http://%s:%s (port written to %s)",
                self.settings.server.host,
                self.port,
                port_file,
            )
            await self._stop.wait()
            log.info("shutting down: closing the endpoint")
            self.console.close()
            server.should_exit = True
            await serving
            log.info("shutting down: finishing in-flight task actions")
            await self.controller.drain()
            await asyncio.to_thread(self.shipper.stop)
            for loop_task in loops:
                loop_task.cancel()
        self.store.set_meta("clock", repr(self.clock.now() if self.clock else 0))
        port_file.unlink(missing_ok=True)
        self._close()
        log.info("stopped")

    def _close(self) -> None:
        if isinstance(self.runtime, DockerRuntime):
            self.runtime.close()
        self.store.close()
        self.alb_store.close()
        self.metrics.close()
        self.scaling.close()
        self.logs.close()
        self.secrets.close()
        self._state_lock.close()


class EngineThread:
    """Runs an Engine on its own event loop in a background thread (tests, demo)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._thread = threading.Thread(target=self._main, name="miniecs-engine", daemon=True)
        self.error: BaseException | None = None

    def _main(self) -> None:
        try:
            asyncio.run(self.engine.run())
        except BaseException as exc:
            self.error = exc
            self.engine.ready.set()

    def start(self, timeout: float = 30.0) -> str:
        self._thread.start()
        if not self.engine.ready.wait(timeout) or self.error is not None:
            raise RuntimeError(f"miniecs did not start: {self.error!r}")
        return f"http://{self.engine.settings.server.host}:{self.engine.port}"

    def stop(self, timeout: float = 30.0) -> None:
        self.engine.request_stop()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"miniecs did not stop within {timeout:g} s")
