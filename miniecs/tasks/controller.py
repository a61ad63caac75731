"""The task controller: a level-triggered loop that moves every task toward its desired status.

Each pass re-lists the instance's containers (one cheap engine call), plans every live task
with `plan_task`, writes the record, and launches at most one action per task in the
background. It is the only writer of a task's lastStatus. Containers that belong to no live
task are removed; if the engine does not answer, the pass is skipped and nothing is decided.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import defaultdict
from collections.abc import Callable

from miniecs.clock import Clock, wait_event
from miniecs.config import TaskSettings
from miniecs.errors import ClientException, RuntimeUnavailable
from miniecs.logs.awslogs import CREATE_STREAM_FAILED, LogShipper, awslogs_target
from miniecs.logs.store import NoSuchGroup
from miniecs.model import StopCode, Task, TaskDefinition, TaskStatus, add_event
from miniecs.runtime.base import (
    LABEL_MANAGED,
    LABEL_TASK,
    PAUSE_CONTAINER,
    ContainerCreateError,
    ContainerObservation,
    ImageUnavailable,
    Runtime,
)
from miniecs.secrets.resolve import SecretsUnavailable, resolve
from miniecs.secrets.store import SecretStore
from miniecs.store import Store
from miniecs.supervise import Guard
from miniecs.taskdef import check_refused
from miniecs.tasks.plan import Action, ActionKind, advance, plan_task, request_stop
from miniecs.tasks.specs import (
    PAUSE_IMAGE,
    SpecContext,
    clamp_ulimits,
    container_specs,
    docker_name,
    effective_container,
    stop_timeout,
    task_volumes,
)

log = logging.getLogger(__name__)
OOM_REASON = "OutOfMemoryError: Container killed due to memory usage"
LOG_DRAIN_SECONDS = 5.0
"""Real seconds teardown waits for a stopped container's last log lines to be stored."""
MAX_SERVICE_EVENTS = 100
MISSING_GROUP_OPTION = (
    "ResourceInitializationError: failed to validate logger args: must specify a value for "
    "log opt 'awslogs-group' : exit status 1"
)


class TaskController:
    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        clock: Clock,
        settings: TaskSettings,
        instance: str,
        host_cpus: int,
        stop_hold: Callable[[Task], bool] = lambda _task: False,
        logs: LogShipper | None = None,
        secrets: SecretStore | None = None,
    ) -> None:
        """`stop_hold(task)`: True while a task that must stop is still registered with a
        load balancer; its containers keep running (DEACTIVATING) until it is drained.
        `logs`: the awslogs driver (None: awslogs containers keep Docker's own logs only);
        `secrets`: where `secrets[].valueFrom` are resolved (None: a task with secrets fails)."""
        self.logs = logs
        self.secrets = secrets
        self.stop_hold = stop_hold
        self.store = store
        self.runtime = runtime
        self.clock = clock
        self.settings = settings
        self.instance = instance
        self.host_cpus = host_cpus
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self.engine_available = True
        self.guard = Guard(
            "task controller (container engine unavailable, decisions frozen)",
            expected=(RuntimeUnavailable,),
        )
        store.on_change(lambda kind: self._wake.set() if kind == "task" else None)

    async def run(self) -> None:
        """Pass after pass until cancelled; a failing pass is logged and retried."""
        while True:
            self._wake.clear()
            await self.guard.run(self.once)
            await wait_event(self._wake, self.guard.pause(self.settings.reconcile_interval))

    async def once(self) -> None:
        """One pass; an unreachable engine freezes decisions (`engine_available`)."""
        try:
            observed = await self.runtime.list_containers()
        except RuntimeUnavailable as exc:
            self.engine_available = False
            self._fail_unprovisioned(exc)
            raise
        if not self.engine_available:
            log.info("container engine available again")
        self.engine_available = True
        by_task: dict[str, dict[str, ContainerObservation]] = defaultdict(dict)
        for obs in observed:
            by_task[obs.task_id][obs.container_name] = obs
        now = self.clock.now()
        live: set[str] = set()
        for listed in self.store.list_tasks(live_only=True):
            live.add(listed.task_id)
            if listed.task_id in self._inflight:
                continue
            self._plan_and_act(listed.task_id, by_task.get(listed.task_id, {}), now)
        for task_id, containers in by_task.items():
            if task_id in live or task_id in self._inflight:
                continue
            record = self.store.get_task(task_id)
            if record is None or record.last_status is TaskStatus.STOPPED:
                self._spawn(task_id, self._remove_strays(list(containers.values())))
        self.store.delete_stopped_tasks(now - self.settings.stopped_task_retention)

    def _plan_and_act(
        self, task_id: str, observed: dict[str, ContainerObservation], now: float
    ) -> None:
        task = self.store.get_task(task_id)
        if task is None:
            return
        td = self._task_definition(task)
        self._follow_logs(task, td, observed)
        hold = task.desired_status is TaskStatus.STOPPED and self.stop_hold(task)
        step = plan_task(task, td, observed, now, hold=hold)
        if step.task != task:
            self.store.update_task(task_id, lambda _: step.task)
        if step.action is not None:
            self._spawn(task_id, self._act(step.task, td, step.action, observed))

    def _follow_logs(
        self, task: Task, td: TaskDefinition, observed: dict[str, ContainerObservation]
    ) -> None:
        """Start the awslogs reader of every started container that has none."""
        if self.logs is None:
            return
        for name, obs in observed.items():
            if name == PAUSE_CONTAINER or not obs.started or self.logs.following(obs.runtime_id):
                continue
            target = awslogs_target(td.container(name), task.task_id)
            if target is not None:
                self.logs.follow(obs.runtime_id, obs.docker_name, target)

    def _prepare_logs(self, task: Task, td: TaskDefinition) -> str | None:
        """Create the awslogs groups (awslogs-create-group) and streams as the driver does
        when a container starts; ECS's stopped reason when a group is missing."""
        if self.logs is None:
            return None
        now_ms = int(self.clock.now() * 1000)
        for container in td.containers:
            target = awslogs_target(container, task.task_id)
            if target is None:
                continue
            if not target.group:
                return MISSING_GROUP_OPTION
            if target.create_group:
                self.logs.store.ensure_group(target.group, now_ms)
            try:
                self.logs.store.ensure_stream(target.group, target.stream, now_ms)
            except NoSuchGroup:
                return CREATE_STREAM_FAILED
        return None

    async def _platform_refused(self, td: TaskDefinition) -> str | None:
        """ECS's reason when the task's runtimePlatform is one this engine cannot run (as
        Fargate cannot pull an image for a platform it does not have)."""
        platform = td.document.get("runtimePlatform") or {}
        family = str(platform.get("operatingSystemFamily") or "LINUX")
        arch = platform.get("cpuArchitecture")
        wanted = None
        if family != "LINUX":
            wanted = "windows/amd64"
        elif arch and arch != await self.runtime.cpu_architecture():
            wanted = "linux/arm64" if arch == "ARM64" else "linux/amd64"
        if wanted is None:
            return None
        image = td.containers[0]["image"]
        return (
            f"CannotPullContainerError: pull image manifest has been retried 1 time(s): "
            f"image Manifest does not contain descriptor matching platform '{wanted}' "
            f"(the Docker engine of miniecs runs {await self.runtime.cpu_architecture()}): "
            f"{image}"
        )

    def _resolve_secrets(self, td: TaskDefinition) -> dict[str, dict[str, str]]:
        """Each container's `secrets` as environment variables; raises SecretsUnavailable."""
        out: dict[str, dict[str, str]] = {}
        for container in td.containers:
            if not container.get("secrets"):
                continue
            if self.secrets is None:
                raise SecretsUnavailable("ResourceInitializationError: no secret store")
            out[container["name"]] = resolve(container["secrets"], self.secrets)
        return out

    def _note_on_service(self, task: Task, message: str) -> None:
        """A service event about one of its tasks (what ECS shows for a task's warnings)."""
        log.warning("task %s: %s", task.task_id, message)
        if task.service is None:
            return
        text = f"(service {task.service}) (task {task.task_id}) {message}."
        now = self.clock.now()
        self.store.update_service_state(
            task.cluster, task.service, lambda s: add_event(s, text, now)
        )

    def _task_definition(self, task: Task) -> TaskDefinition:
        family, _, revision = task.task_definition_arn.rpartition("/")[2].rpartition(":")
        td = self.store.get_task_definition(family, int(revision))
        if td is None:
            raise LookupError(f"task definition {task.task_definition_arn} is missing")
        return td

    def _spawn(self, task_id: str, work: object) -> None:
        async def guarded() -> None:
            try:
                await work  # type: ignore[misc]
            except RuntimeUnavailable as exc:
                log.warning("task %s: engine unavailable: %s", task_id, exc)
            except Exception:
                log.exception("task %s: action failed", task_id)
            finally:
                self._inflight.pop(task_id, None)
                self._wake.set()

        self._inflight[task_id] = asyncio.create_task(guarded(), name=f"task-{task_id}")

    async def _act(
        self,
        task: Task,
        td: TaskDefinition,
        action: Action,
        observed: dict[str, ContainerObservation],
    ) -> None:
        if action.kind is ActionKind.PROVISION:
            await self._provision(task, td)
        elif action.kind is ActionKind.START:
            await self._start(task, action.containers)
        else:
            await self._teardown(task, td, observed)

    def _fail_unprovisioned(self, exc: RuntimeUnavailable) -> None:
        """With no engine, a task that never got a container ends at once, as a Fargate task
        whose resources cannot be initialised does: STOPPED, TaskFailedToStart, the reason says
        why. Tasks that got containers keep their status (they may still be running)."""
        now = self.clock.now()
        reason = f"ResourceInitializationError: {exc}"
        for task in self.store.list_tasks(live_only=True):
            started = any(c.runtime_id for c in task.containers)
            if task.last_status is not TaskStatus.PROVISIONING or started:
                continue
            if task.task_id in self._inflight:
                continue

            def stop(t: Task) -> Task:
                t = request_stop(t, StopCode.TASK_FAILED_TO_START, reason)
                return advance(
                    dataclasses.replace(
                        t,
                        containers=tuple(
                            dataclasses.replace(c, last_status="STOPPED", reason=reason)
                            for c in t.containers
                        ),
                    ),
                    TaskStatus.STOPPED,
                    now,
                )

            self.store.update_task(task.task_id, stop)
            log.info("task %s STOPPED: %s", task.task_id, reason)

    def _fail(self, task_id: str, code: StopCode, reason: str, container_reason: str) -> None:
        def change(t: Task) -> Task:
            t = request_stop(t, code, reason)
            return dataclasses.replace(
                t,
                containers=tuple(
                    dataclasses.replace(c, reason=c.reason or container_reason)
                    for c in t.containers
                ),
            )

        self.store.update_task(task_id, change)

    async def _provision(self, task: Task, td: TaskDefinition) -> None:
        for container in td.containers:
            try:
                check_refused(container, self.settings)
            except ClientException as exc:
                # Registered while the operator allowed it; not allowed any more.
                self._fail(task.task_id, StopCode.TASK_FAILED_TO_START, exc.message, exc.message)
                return
        refused = await self._platform_refused(td)
        if refused is not None:
            self._fail(task.task_id, StopCode.TASK_FAILED_TO_START, refused, refused)
            return
        try:
            secret_env = self._resolve_secrets(td)
        except SecretsUnavailable as exc:
            self._fail(task.task_id, StopCode.TASK_FAILED_TO_START, exc.reason, exc.reason)
            return
        refused = self._prepare_logs(task, td)
        if refused is not None:
            self._fail(task.task_id, StopCode.TASK_FAILED_TO_START, refused, refused)
            return
        network = await self.runtime.ensure_network(task.cluster)
        host_ulimits = None
        if any(c.get("ulimits") for c in td.containers):
            host_ulimits = await self.runtime.host_ulimits()
            for c in td.containers:
                for note in clamp_ulimits(c.get("ulimits") or [], host_ulimits)[1]:
                    self._note_on_service(task, f"container {c['name']}: {note}")
        ctx = SpecContext(
            instance=self.instance,
            network=network,
            host_cpus=self.host_cpus,
            clock_speed=self.clock.speed,
            pids_limit=self.settings.pids_limit,
            host_ulimits=host_ulimits,
        )
        specs = container_specs(task, td, ctx, secret_env)
        for volume in task_volumes(task, td).values():
            if not volume.startswith("/"):
                await self.runtime.ensure_volume(
                    volume,
                    {
                        LABEL_MANAGED: "true",
                        **(
                            {LABEL_TASK: task.task_id}
                            if volume.startswith(f"miniecs-{task.task_id}-")
                            else {}
                        ),
                    },
                )
        try:
            for image in dict.fromkeys(s.image for s in specs):
                await self.runtime.ensure_image(image, self.settings.pull_timeout)
            for spec in specs:
                await self.runtime.create_container(spec)
                if spec.container_name == PAUSE_CONTAINER:
                    await self.runtime.start_container(spec.docker_name)
        except ImageUnavailable as exc:
            hint = " (run `miniecs images build`)" if PAUSE_IMAGE in str(exc) else ""
            self._fail(task.task_id, StopCode.TASK_FAILED_TO_START, f"{exc}{hint}", f"{exc}{hint}")
        except ContainerCreateError as exc:
            self._fail(task.task_id, StopCode.TASK_FAILED_TO_START, str(exc), str(exc))
        except RuntimeUnavailable:
            raise
        except Exception as exc:
            log.exception("task %s failed to provision", task.task_id)
            reason = f"CannotCreateContainerError: {exc}"
            self._fail(task.task_id, StopCode.TASK_FAILED_TO_START, reason, reason)

    async def _start(self, task: Task, containers: tuple[str, ...]) -> None:
        for name in containers:
            try:
                await self.runtime.start_container(docker_name(task.task_id, name))
            except ContainerCreateError as exc:
                self._fail(task.task_id, StopCode.TASK_FAILED_TO_START, str(exc), str(exc))
                return

    async def _teardown(
        self, task: Task, td: TaskDefinition, observed: dict[str, ContainerObservation]
    ) -> None:
        app = [n for n in observed if n != PAUSE_CONTAINER]

        async def stop(name: str) -> None:
            timeout = stop_timeout(effective_container(task, td.container(name)))
            real = max(1, round(self.clock.real_seconds(timeout)))
            await self.runtime.stop_container(docker_name(task.task_id, name), real)

        await asyncio.gather(*(stop(n) for n in app if observed[n].running))
        details = {
            n: await self.runtime.exit_details(docker_name(task.task_id, n))
            for n in app
            if observed[n].started
        }

        def record_exits(t: Task) -> Task:
            containers = []
            for c in t.containers:
                d = details.get(c.name)
                if d is None:
                    containers.append(c)
                    continue
                reason = c.reason or (OOM_REASON if d.oom_killed else None)
                code = d.exit_code if d.exit_code is not None else c.exit_code
                containers.append(dataclasses.replace(c, exit_code=code, reason=reason))
            return dataclasses.replace(t, containers=tuple(containers))

        self.store.update_task(task.task_id, record_exits)
        if self.logs is not None:
            shipper = self.logs
            # the readers store the last lines of the stopped containers before removal
            await asyncio.gather(
                *(
                    asyncio.to_thread(shipper.finish, obs.runtime_id, LOG_DRAIN_SECONDS)
                    for obs in observed.values()
                )
            )
        for name, obs in observed.items():
            await self.runtime.remove_container(docker_name(task.task_id, name))
            if self.logs is not None:
                self.logs.forget(obs.runtime_id)
        for volume in task_volumes(task, td).values():
            if volume.startswith(f"miniecs-{task.task_id}-"):  # Fargate task storage
                await self.runtime.remove_volume(volume)

    async def _remove_strays(self, containers: list[ContainerObservation]) -> None:
        for obs in containers:
            log.info("removing container %s: it belongs to no live task", obs.docker_name)
            await self.runtime.remove_container(obs.docker_name)

    async def drain(self, grace: float = 10.0) -> None:
        """Wait for in-flight actions (bounded), then cancel what is left."""
        pending = list(self._inflight.values())
        if not pending:
            return
        _, still = await asyncio.wait(pending, timeout=grace)
        for t in still:
            t.cancel()
        await asyncio.gather(*still, return_exceptions=True)
