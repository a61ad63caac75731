"""An in-memory `Runtime` for unit and component tests: containers are dicts that tests poke.

It keeps the same contract as the Docker runtime (idempotent create and remove, labels, states),
and adds levers a test needs: `exit()` a container, set its `health`, make an image missing.
"""

from __future__ import annotations

import dataclasses
import itertools

from miniecs.errors import RuntimeUnavailable
from miniecs.runtime.base import (
    ContainerObservation,
    ContainerSpec,
    ExitDetails,
    ImageUnavailable,
)


class FakeRuntime:
    def __init__(self, images: set[str] | None = None) -> None:
        self.images: set[str] | None = images
        """Images that exist; None means every image exists."""
        self.containers: dict[str, ContainerObservation] = {}
        self.specs: dict[str, ContainerSpec] = {}
        self.networks: set[str] = set()
        self.available = True
        self.oom: set[str] = set()
        self.calls: list[tuple[str, str]] = []
        self._ips = itertools.count(2)

    def _check(self) -> None:
        if not self.available:
            raise RuntimeUnavailable("fake engine is down")

    async def ensure_network(self, cluster: str) -> str:
        self._check()
        self.networks.add(cluster)
        return f"net-{cluster}"

    async def remove_network(self, cluster: str) -> None:
        self._check()
        self.networks.discard(cluster)

    async def list_containers(self) -> list[ContainerObservation]:
        self._check()
        return list(self.containers.values())

    async def ensure_image(self, image: str, timeout_s: float) -> None:
        self._check()
        if self.images is not None and image not in self.images:
            raise ImageUnavailable(f"CannotPullContainerError: {image}: not found")

    async def create_container(self, spec: ContainerSpec) -> str:
        self._check()
        self.calls.append(("create", spec.docker_name))
        if spec.docker_name in self.containers:
            return self.containers[spec.docker_name].runtime_id
        ip = f"10.0.0.{next(self._ips)}" if spec.network else None
        self.specs[spec.docker_name] = spec
        self.containers[spec.docker_name] = ContainerObservation(
            docker_name=spec.docker_name,
            runtime_id=f"id-{spec.docker_name}",
            task_id=spec.task_id,
            cluster=spec.cluster,
            container_name=spec.container_name,
            state="created",
            ip=ip,
            health="starting" if spec.health_check else None,
        )
        return f"id-{spec.docker_name}"

    def _set(self, name: str, **changes: object) -> None:
        self.containers[name] = dataclasses.replace(self.containers[name], **changes)  # type: ignore[arg-type]

    async def start_container(self, docker_name: str) -> None:
        self._check()
        self.calls.append(("start", docker_name))
        self._set(docker_name, state="running")

    async def stop_container(self, docker_name: str, timeout_s: int) -> None:
        self._check()
        self.calls.append(("stop", docker_name))
        if docker_name in self.containers and self.containers[docker_name].running:
            self._set(docker_name, state="exited", exit_code=143)

    async def exit_details(self, docker_name: str) -> ExitDetails:
        self._check()
        obs = self.containers.get(docker_name)
        if obs is None:
            return ExitDetails(exit_code=None, error="container removed")
        return ExitDetails(exit_code=obs.exit_code, oom_killed=docker_name in self.oom)

    async def remove_container(self, docker_name: str) -> None:
        self._check()
        self.calls.append(("remove", docker_name))
        self.containers.pop(docker_name, None)

    # levers for tests --------------------------------------------------------------------------
    def exit(self, docker_name: str, code: int, oom: bool = False) -> None:
        self._set(docker_name, state="exited", exit_code=code)
        if oom:
            self.oom.add(docker_name)

    def set_health(self, docker_name: str, health: str) -> None:
        self._set(docker_name, health=health)

    def names_of_task(self, task_id: str) -> list[str]:
        return [n for n, c in self.containers.items() if c.task_id == task_id]
