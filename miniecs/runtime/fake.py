"""An in-memory `Runtime` for unit and component tests: containers are dicts that tests poke.

It keeps the same contract as the Docker runtime (idempotent create and remove, labels, states),
and adds levers a test needs: `exit()` a container, set its `health`, make an image missing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

from miniecs.errors import RuntimeUnavailable
from miniecs.runtime.base import (
    ContainerCreateError,
    ContainerObservation,
    ContainerSpec,
    ExitDetails,
    ImageUnavailable,
    ProxyObservation,
    ProxySpec,
    RawUsage,
)


@dataclasses.dataclass
class FakeUsage:
    """What a fake container uses; its counters advance at these rates on the fake's clock."""

    cpu_units: float = 0.0
    """CPU units (1024 per vCPU) the container burns."""
    memory_mib: float = 0.0
    rx_per_s: float = 0.0
    tx_per_s: float = 0.0
    read_per_s: float = 0.0
    write_per_s: float = 0.0
    counters: RawUsage | None = None


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
        self.usage: dict[str, FakeUsage] = {}
        """Synthetic usage by docker name (`set_usage`); a container without one uses nothing."""
        self.usage_time: Callable[[], float] | None = None
        """Seconds source for usage counters (tests pass a FakeClock's `now`); without it each
        `container_usage` call moves the counters one second on."""
        self._usage_tick = 0.0
        self.host_network = True
        self.proxies: dict[str, ProxyObservation] = {}
        self.proxy_specs: dict[str, ProxySpec] = {}
        self.files: dict[str, dict[str, bytes]] = {}
        """Files inside each proxy container, by path (tests write state.json here)."""
        self.deaths: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        """What `container_deaths` yields; `exit` puts into it."""
        self.volumes: dict[str, dict[str, str]] = {}
        self.ulimits: dict[str, int] = {"nofile": 1_048_576}
        """The engine's hard limits (`host_ulimits`)."""
        self.output: dict[str, list[tuple[int, bytes]]] = {}
        """Lines each container wrote, as (timestamp ns, line) (tests append here)."""

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
        self.proxies.pop(docker_name, None)
        self.files.pop(docker_name, None)

    async def host_network_usable(self) -> bool:
        self._check()
        return self.host_network

    async def run_proxy(self, spec: ProxySpec) -> str:
        self._check()
        self.calls.append(("run_proxy", spec.docker_name))
        if spec.docker_name in self.proxies:
            raise ContainerCreateError(f"Conflict. The name {spec.docker_name} is already in use")
        self.proxy_specs[spec.docker_name] = spec
        self.proxies[spec.docker_name] = ProxyObservation(spec.docker_name, "running", spec.labels)
        self.files[spec.docker_name] = dict(spec.files)
        return f"id-{spec.docker_name}"

    async def list_proxies(self) -> list[ProxyObservation]:
        self._check()
        return list(self.proxies.values())

    async def put_file(self, docker_name: str, path: str, data: bytes) -> None:
        self._check()
        if docker_name not in self.proxies:
            raise ContainerCreateError(f"No such container: {docker_name}")
        self.files[docker_name][path] = data

    async def read_file(self, docker_name: str, path: str) -> bytes | None:
        self._check()
        return self.files.get(docker_name, {}).get(path)

    async def container_usage(self, runtime_ids: Sequence[str]) -> dict[str, RawUsage]:
        self._check()
        if self.usage_time is not None:
            now = self.usage_time()
        else:
            self._usage_tick += 1.0
            now = self._usage_tick
        by_id = {c.runtime_id: c for c in self.containers.values() if c.state == "running"}
        out: dict[str, RawUsage] = {}
        for runtime_id in runtime_ids:
            obs = by_id.get(runtime_id)
            if obs is None:
                continue
            usage = self.usage.setdefault(obs.docker_name, FakeUsage())
            usage.counters = _advance(usage, now)
            out[runtime_id] = usage.counters
        return out

    # levers for tests --------------------------------------------------------------------------
    def set_usage(self, docker_name: str, **rates: float) -> None:
        """Set a container's rates (FakeUsage fields); its counters keep their totals."""
        usage = self.usage.setdefault(docker_name, FakeUsage())
        for name, value in rates.items():
            setattr(usage, name, value)

    def exit(self, docker_name: str, code: int, oom: bool = False) -> None:
        self._set(docker_name, state="exited", exit_code=code)
        died = self.containers[docker_name]
        self.deaths.put_nowait((died.task_id, died.container_name))
        if oom:
            self.oom.add(docker_name)

    def set_health(self, docker_name: str, health: str) -> None:
        self._set(docker_name, health=health)

    async def container_deaths(self) -> AsyncIterator[tuple[str, str]]:
        while True:
            self._check()
            yield await self.deaths.get()

    def log_lines(self, docker_name: str, since_s: int) -> Iterator[tuple[int, bytes]]:
        """What the container wrote from `since_s` on (no following: it returns at the end)."""
        for ts, line in list(self.output.get(docker_name, [])):
            if ts >= since_s * 1_000_000_000:
                yield ts, line

    async def ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        self._check()
        self.volumes[name] = labels

    async def remove_volume(self, name: str) -> None:
        self._check()
        self.volumes.pop(name, None)

    async def cpu_architecture(self) -> str:
        return "X86_64"

    async def host_ulimits(self) -> dict[str, int]:
        return dict(self.ulimits)

    def is_running(self, docker_name: str) -> bool:
        obs = self.containers.get(docker_name)
        return obs is not None and obs.running

    def names_of_task(self, task_id: str) -> list[str]:
        return [n for n, c in self.containers.items() if c.task_id == task_id]


def _advance(usage: FakeUsage, now: float) -> RawUsage:
    read_ns = int(now * 1_000_000_000)
    prev = usage.counters
    if prev is None:
        return RawUsage(read_ns, 0, int(usage.memory_mib * 1024 * 1024), source="fake")
    seconds = max(0.0, (read_ns - prev.read_ns) / 1_000_000_000)
    return RawUsage(
        read_ns=read_ns,
        cpu_ns=prev.cpu_ns + int(usage.cpu_units / 1024 * seconds * 1_000_000_000),
        memory_bytes=int(usage.memory_mib * 1024 * 1024),
        rx_bytes=prev.rx_bytes + int(usage.rx_per_s * seconds),
        tx_bytes=prev.tx_bytes + int(usage.tx_per_s * seconds),
        read_bytes=prev.read_bytes + int(usage.read_per_s * seconds),
        write_bytes=prev.write_bytes + int(usage.write_per_s * seconds),
        source="fake",
    )
