"""The `Runtime` on a real Docker engine; the only module that imports the docker SDK.

Calls are blocking SDK calls run on a private thread pool, so a slow `docker stop` never holds
the event loop. Every container and network is labelled with the instance, cluster and task it
belongs to; listing by label is how the control plane finds what it owns after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import ipaddress
import itertools
import logging
import random
import re
import socket
import tarfile
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions

from miniecs.errors import RuntimeUnavailable
from miniecs.runtime.base import (
    LABEL_CLUSTER,
    LABEL_CONTAINER,
    LABEL_INSTANCE,
    LABEL_LOAD_BALANCER,
    LABEL_MANAGED,
    LABEL_TASK,
    ContainerCreateError,
    ContainerObservation,
    ContainerSpec,
    ExitDetails,
    ImageUnavailable,
    ProxyObservation,
    ProxySpec,
    RawUsage,
)
from miniecs.runtime.usage import UsageReader

T = TypeVar("T")
log = logging.getLogger(__name__)
PROBE_IMAGE = "miniecs/base:bookworm"
"""Image of the one-off container that reads the engine's default limits."""
_EXITED = re.compile(r"Exited \((-?\d+)\)")
_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")
_NS = 1_000_000_000
PROXY_MEMORY = 256 * 1024 * 1024
PROXY_PIDS = 256
LOG_IDLE_TIMEOUT = 300
"""Seconds a log stream may stay silent before it is re-opened (from where it was)."""
LOG_BLOCK = 262_144
LOG_GATHER_SECONDS = 0.3
"""A log reader that has caught up waits this long before reading again, so a container's
lines are read in blocks (a wake-up per line costs far more than the line)."""
PRIVILEGED_PORTS = 1024
"""Ports below this need CAP_NET_BIND_SERVICE in the host's network namespace (a container's
own namespace lets any user bind them: Docker sets ip_unprivileged_port_start=0 there)."""


def network_name(cluster: str, instance: str) -> str:
    return f"miniecs-{cluster}-{instance[:6]}"


class DockerRuntime:
    """Tasks as containers on one Docker engine (local socket, DOCKER_HOST, or remote)."""

    def __init__(
        self,
        instance: str,
        client: docker.DockerClient | None = None,
        usage_source: str = "auto",
    ) -> None:
        self.instance = instance
        self._client = client
        self.usage_source = usage_source
        """Where container usage is read: `auto`, `cgroup` or `stats` (see runtime.usage)."""
        self._usage: UsageReader | None = None
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="docker")
        self._network_locks: dict[str, asyncio.Lock] = {}
        self._address_lock = threading.Lock()
        self._assigned: dict[str, float] = {}
        self._log_client: docker.DockerClient | None = None
        self._host_ulimits: dict[str, int] | None = None

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                self._client = docker.from_env(timeout=180)
            except docker.errors.DockerException as exc:
                raise RuntimeUnavailable(f"Docker engine not reachable: {exc}") from exc
        return self._client

    @property
    def api(self) -> Any:
        return self.client.api

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))
        except (
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            ConnectionError,
        ) as exc:
            raise RuntimeUnavailable(f"Docker engine not reachable: {exc}") from exc

    def close(self) -> None:
        if self._log_client is not None:
            self._log_client.close()
        if self._usage is not None:
            self._usage.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()

    async def ping(self) -> None:
        await self._call(lambda: self.api.ping())

    async def ensure_network(self, cluster: str) -> str:
        """The cluster's network id; creation is serialised, since the engine's duplicate
        check is not atomic and parallel RunTasks would otherwise make several."""
        name = network_name(cluster, self.instance)
        lock = self._network_locks.setdefault(name, asyncio.Lock())

        def create() -> str:
            existing = sorted(self.api.networks(names=[name]), key=lambda n: n["Created"])
            existing = [n for n in existing if n["Name"] == name]
            if existing:
                return str(existing[0]["Id"])
            labels = {LABEL_MANAGED: "true", LABEL_INSTANCE: self.instance, LABEL_CLUSTER: cluster}
            # Let the engine pick a free subnet, then pin it: only a network with a configured
            # subnet lets us give each task a random address, as a VPC subnet gives an ENI one.
            probe = self.api.create_network(name, driver="bridge", labels=labels)
            config = self.api.inspect_network(probe["Id"])["IPAM"]["Config"][0]
            self.api.remove_network(probe["Id"])
            pool = docker.types.IPAMPool(subnet=config["Subnet"], gateway=config.get("Gateway"))
            created = self.api.create_network(
                name,
                driver="bridge",
                check_duplicate=True,
                labels=labels,
                ipam=docker.types.IPAMConfig(pool_configs=[pool]),
            )
            return str(created["Id"])

        async with lock:
            return await self._call(create)

    async def remove_network(self, cluster: str) -> None:
        name = network_name(cluster, self.instance)

        def remove() -> None:
            for net in self.api.networks(names=[name]):
                if net["Name"] != name:  # the engine matches names by substring
                    continue
                with contextlib.suppress(docker.errors.NotFound):
                    self.api.remove_network(net["Id"])

        await self._call(remove)

    async def list_containers(self) -> list[ContainerObservation]:
        rows = await self._call(
            lambda **kw: self.api.containers(**kw),
            all=True,
            filters={"label": [f"{LABEL_INSTANCE}={self.instance}", LABEL_TASK]},
        )
        return [_observation(row) for row in rows]

    async def ensure_image(self, image: str, timeout_s: float) -> None:
        def present() -> bool:
            try:
                self.api.inspect_image(image)
                return True
            except docker.errors.ImageNotFound:
                return False

        if await self._call(present):
            return
        repository, _, tag = image.partition("@")[0].rpartition(":")
        if not repository or "/" in tag:
            repository, tag = image, "latest"
        try:
            await asyncio.wait_for(
                self._call(lambda: self.api.pull(repository, tag=tag)), timeout=timeout_s
            )
        except TimeoutError:
            raise ImageUnavailable(
                f"CannotPullContainerError: pull image manifest has been retried 1 time(s): "
                f"failed to resolve ref {image}: timed out after {timeout_s:.0f} s"
            ) from None
        except docker.errors.APIError as exc:
            raise ImageUnavailable(
                f"CannotPullContainerError: pull image manifest has been retried 1 time(s): "
                f"failed to resolve ref {image}: {exc.explanation or exc}"
            ) from None

    async def create_container(self, spec: ContainerSpec) -> str:
        return await self._call(self._create, spec)

    def _create(self, spec: ContainerSpec) -> str:
        api = self.api
        host_config = api.create_host_config(
            network_mode=spec.network or f"container:{spec.netns_of}",
            nano_cpus=spec.nano_cpus,
            cpu_shares=spec.cpu_shares,
            mem_limit=spec.memory_bytes,
            memswap_limit=spec.memory_bytes,
            mem_reservation=spec.memory_reservation_bytes,
            pids_limit=spec.pids_limit,
            init=spec.init or None,
            read_only=spec.read_only or None,
            privileged=spec.privileged,
            cap_add=spec.cap_add or None,
            cap_drop=spec.cap_drop or None,
            ulimits=[docker.types.Ulimit(name=n, soft=s, hard=h) for n, s, h in spec.ulimits]
            or None,
            mounts=[
                docker.types.Mount(
                    target=target,
                    source=source,
                    type="bind" if source.startswith("/") else "volume",
                    read_only=read_only,
                )
                for source, target, read_only in spec.mounts
            ]
            or None,
            volumes_from=spec.volumes_from or None,
            sysctls=spec.sysctls or None,
        )
        networking = None
        if spec.network:
            address = self._random_address(spec.network)
            networking = api.create_networking_config(
                {spec.network: api.create_endpoint_config(ipv4_address=address)}
            )
        healthcheck: dict[str, Any] = {"test": ["NONE"]}
        if spec.health_check:
            hc = spec.health_check
            healthcheck = {
                "test": hc.test,
                "interval": int(hc.interval_s * _NS),
                "timeout": int(hc.timeout_s * _NS),
                "retries": hc.retries,
                "start_period": int(hc.start_period_s * _NS),
            }
        try:
            created = api.create_container(
                image=spec.image,
                name=spec.docker_name,
                command=spec.command,
                entrypoint=spec.entrypoint,
                environment=spec.environment,
                working_dir=spec.working_dir,
                user=spec.user,
                hostname=spec.hostname if spec.network else None,
                labels={**spec.docker_labels, **spec.labels},
                host_config=host_config,
                networking_config=networking,
                healthcheck=healthcheck,
                stop_signal="SIGTERM",
                tty=spec.tty,
                stdin_open=spec.stdin_open,
            )
            return str(created["Id"])
        except docker.errors.ImageNotFound as exc:
            raise ImageUnavailable(
                f"CannotPullContainerError: {spec.image}: image not found: {exc.explanation}"
            ) from None
        except docker.errors.APIError as exc:
            if exc.status_code == 409:
                return str(api.inspect_container(spec.docker_name)["Id"])
            raise ContainerCreateError(
                f"CannotCreateContainerError: {exc.explanation or exc}"
            ) from None

    def _random_address(self, network: str) -> str | None:
        """A free address of the network's subnet, chosen at random as a VPC subnet gives an
        ENI one, so a replaced task gets a new IP (None: let Docker pick)."""
        info = self.api.inspect_network(network)
        configs = (info.get("IPAM") or {}).get("Config") or []
        if not configs or not configs[0].get("Subnet"):
            return None
        subnet = ipaddress.ip_network(configs[0]["Subnet"])
        now = time.monotonic()
        with self._address_lock:
            # Created containers hold no endpoint until they start: remember what we handed out.
            self._assigned = {a: t for a, t in self._assigned.items() if now - t < 120}
            taken = set(self._assigned)
            taken.add(configs[0].get("Gateway") or str(next(subnet.hosts())))
            for endpoint in (info.get("Containers") or {}).values():
                taken.add(endpoint.get("IPv4Address", "").split("/")[0])
            free = [
                str(ip) for ip in itertools.islice(subnet.hosts(), 4096) if str(ip) not in taken
            ]
            if not free:
                return None
            address = random.choice(free)
            self._assigned[address] = now
            return address

    async def start_container(self, docker_name: str) -> None:
        def start() -> None:
            try:
                self.api.start(docker_name)
            except docker.errors.APIError as exc:
                raise ContainerCreateError(
                    f"CannotStartContainerError: {exc.explanation or exc}"
                ) from None

        await self._call(start)

    async def stop_container(self, docker_name: str, timeout_s: int) -> None:
        def stop() -> None:
            with contextlib.suppress(docker.errors.NotFound):
                self.api.stop(docker_name, timeout=timeout_s)

        await self._call(stop)

    async def exit_details(self, docker_name: str) -> ExitDetails:
        def inspect() -> ExitDetails:
            try:
                state = self.api.inspect_container(docker_name)["State"]
            except docker.errors.NotFound:
                return ExitDetails(exit_code=None, error="container removed")
            return ExitDetails(
                exit_code=state.get("ExitCode"),
                oom_killed=bool(state.get("OOMKilled")),
                error=state.get("Error") or None,
            )

        return await self._call(inspect)

    @property
    def usage(self) -> UsageReader:
        if self._usage is None:
            local = str(self.api.base_url).startswith("http+docker://localhost")
            self._usage = UsageReader(self.api, self.usage_source, local=local)
        return self._usage

    async def container_usage(self, runtime_ids: Sequence[str]) -> dict[str, RawUsage]:
        return await self._call(self.usage.read, list(runtime_ids))

    async def remove_container(self, docker_name: str) -> None:
        def remove() -> None:
            try:
                self.api.remove_container(docker_name, force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:
                if exc.status_code != 409:  # removal already in progress
                    raise

        await self._call(remove)

    async def host_network_usable(self) -> bool:
        def probe() -> bool:
            info = self.api.info()
            system = str(info.get("OperatingSystem") or "")
            if info.get("OSType") != "linux" or "Docker Desktop" in system:
                return False
            url = str(self.api.base_url)
            return url.startswith("http+docker://") or any(
                host in url for host in ("://localhost", "://127.0.0.1", "://[::1]")
            )

        return await self._call(probe)

    async def run_proxy(self, spec: ProxySpec) -> str:
        # The image runs as an unprivileged user. Only a listener below 1024 in the host's
        # network namespace needs root, and then only with CAP_NET_BIND_SERVICE (Docker gives
        # a non-root user no ambient capabilities). The root filesystem stays writable:
        # put_archive/get_archive cannot reach a tmpfs, and a read-only root refuses them.
        privileged = spec.host_network and any(p < PRIVILEGED_PORTS for p in spec.ports)

        def run() -> str:
            api = self.api
            ports = None if spec.host_network else list(spec.ports)
            host_config = api.create_host_config(
                network_mode="host" if spec.host_network else "bridge",
                port_bindings=None
                if spec.host_network
                else {p: (spec.publish_address, p) for p in spec.ports},
                init=True,
                cap_drop=["ALL"],
                cap_add=["NET_BIND_SERVICE"] if privileged else None,
                security_opt=["no-new-privileges"],
                pids_limit=PROXY_PIDS,
                mem_limit=PROXY_MEMORY,
                memswap_limit=PROXY_MEMORY,
            )
            try:
                created = api.create_container(
                    image=spec.image,
                    name=spec.docker_name,
                    command=spec.command,
                    labels=spec.labels,
                    ports=ports,
                    host_config=host_config,
                    stop_signal="SIGTERM",
                    user="0:0" if privileged else None,
                )
            except docker.errors.ImageNotFound as exc:
                raise ImageUnavailable(f"{spec.image}: not found: {exc.explanation}") from None
            except docker.errors.APIError as exc:
                raise ContainerCreateError(f"{exc.explanation or exc}") from None
            if not spec.host_network:
                for net in api.networks(filters={"label": [f"{LABEL_INSTANCE}={self.instance}"]}):
                    with contextlib.suppress(docker.errors.APIError):
                        api.connect_container_to_network(created["Id"], net["Id"])
            try:
                for path, data in spec.files.items():
                    api.put_archive(created["Id"], "/", _tar(path, data))
                api.start(created["Id"])
            except docker.errors.APIError as exc:
                with contextlib.suppress(docker.errors.APIError):
                    api.remove_container(created["Id"], force=True)
                raise ContainerCreateError(f"{exc.explanation or exc}") from None
            return str(created["Id"])

        return await self._call(run)

    async def list_proxies(self) -> list[ProxyObservation]:
        rows = await self._call(
            lambda **kw: self.api.containers(**kw),
            all=True,
            filters={"label": [f"{LABEL_INSTANCE}={self.instance}", LABEL_LOAD_BALANCER]},
        )
        return [
            ProxyObservation(
                docker_name=(row.get("Names") or ["/"])[0].lstrip("/"),
                state=row.get("State") or "unknown",
                labels=dict(row.get("Labels") or {}),
            )
            for row in rows
        ]

    async def put_file(self, docker_name: str, path: str, data: bytes) -> None:
        def put() -> None:
            try:
                self.api.put_archive(docker_name, "/", _tar(path, data))
            except docker.errors.APIError as exc:
                raise ContainerCreateError(f"{exc.explanation or exc}") from None

        await self._call(put)

    async def read_file(self, docker_name: str, path: str) -> bytes | None:
        def read() -> bytes | None:
            try:
                stream, _ = self.api.get_archive(docker_name, path)
            except docker.errors.NotFound:
                return None
            with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
                member = archive.next()
                extracted = archive.extractfile(member) if member is not None else None
                return extracted.read() if extracted is not None else None

        return await self._call(read)

    async def container_deaths(self) -> AsyncIterator[tuple[str, str]]:
        """Docker's `die` events of this instance's task containers, read by a thread of their
        own (the stream blocks) that reconnects after an engine hiccup."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        stop = threading.Event()
        streams: list[Any] = []
        filters = {
            "type": "container",
            "event": "die",
            "label": [f"{LABEL_INSTANCE}={self.instance}", LABEL_TASK],
        }

        def pump() -> None:
            while not stop.is_set():
                try:
                    stream = self.api.events(decode=True, filters=filters)
                    streams[:] = [stream]
                    for event in stream:
                        labels = (event.get("Actor") or {}).get("Attributes") or {}
                        died = (labels.get(LABEL_TASK, ""), labels.get(LABEL_CONTAINER, ""))
                        if died[0]:
                            loop.call_soon_threadsafe(queue.put_nowait, died)
                except RuntimeError:
                    return  # the event loop is closed
                except Exception:  # the engine went away: wait, then listen again
                    stop.wait(1.0)

        thread = threading.Thread(target=pump, name="docker-events", daemon=True)
        thread.start()
        try:
            while True:
                yield await queue.get()
        finally:
            stop.set()
            for stream in streams:
                with contextlib.suppress(Exception):
                    stream.close()

    async def ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        def create() -> None:
            try:
                self.api.inspect_volume(name)
            except docker.errors.NotFound:
                self.api.create_volume(name, labels={**labels, LABEL_INSTANCE: self.instance})

        await self._call(create)

    async def remove_volume(self, name: str) -> None:
        def remove() -> None:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                self.api.remove_volume(name, force=True)

        await self._call(remove)

    async def cpu_architecture(self) -> str:
        arch = str((await self._call(lambda: self.api.info())).get("Architecture") or "")
        return "ARM64" if arch in ("aarch64", "arm64") else "X86_64"

    async def host_ulimits(self) -> dict[str, int]:
        """The hard limits a container gets by default (the engine's own, which it cannot
        raise), read once from a short-lived probe container; {} when it cannot be read."""
        if self._host_ulimits is not None:
            return self._host_ulimits

        def probe() -> dict[str, int]:
            name = f"miniecs-ulimits-{self.instance[:6]}-{random.randrange(1 << 30):x}"
            try:
                api = self.api
                created = api.create_container(
                    image=PROBE_IMAGE,
                    name=name,
                    command=["cat", "/proc/self/limits"],
                    labels={LABEL_MANAGED: "true", LABEL_INSTANCE: self.instance},
                    host_config=api.create_host_config(network_mode="none"),
                )
                try:
                    api.start(created["Id"])
                    api.wait(created["Id"], timeout=30)
                    text = api.logs(created["Id"], stdout=True, stderr=False).decode()
                finally:
                    api.remove_container(created["Id"], force=True)
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                log.warning("could not read the engine's default ulimits: %s", exc)
                return {}
            return parse_proc_limits(text)

        self._host_ulimits = await self._call(probe)
        return self._host_ulimits

    @property
    def _logs_api(self) -> Any:
        """A client of its own for log streams: each holds a connection for as long as its
        container runs, more than the control plane's pool should give away."""
        if self._log_client is None:
            try:
                self._log_client = docker.from_env(timeout=LOG_IDLE_TIMEOUT, max_pool_size=1024)
            except docker.errors.DockerException as exc:
                raise RuntimeUnavailable(f"Docker engine not reachable: {exc}") from exc
        return self._log_client.api

    def log_lines(self, docker_name: str, since_s: int) -> Iterator[tuple[int, bytes]]:
        """Blocking (run it in a thread): the container's stdout and stderr lines from
        `since_s` on with their Docker timestamps in ns, following until the container stops
        or the stream stays idle for LOG_IDLE_TIMEOUT seconds. A line Docker split into 16 KiB
        parts comes back whole. On a local socket the stream is read in large blocks and
        decoded here (the SDK's per-frame reads cost about 0.5 ms a line)."""
        adapter = self.api.get_adapter("http+docker://localhost")
        socket_path = getattr(adapter, "socket_path", None)
        if str(self.api.base_url).startswith("http+docker://") and socket_path:
            yield from _socket_log_lines(socket_path, self.api._version, docker_name, since_s)
            return
        try:
            frames = self._logs_api.logs(
                docker_name,
                stdout=True,
                stderr=True,
                stream=True,
                follow=True,
                timestamps=True,
                since=since_s if since_s > 0 else None,
            )
        except docker.errors.NotFound:
            return
        lines = _LineAssembler()
        try:
            for frame in frames:
                yield from lines.frame(frame)
        except (requests.exceptions.ConnectionError, OSError, docker.errors.APIError):
            pass  # idle timeout or engine gone: the caller checks the container and resumes
        finally:
            frames.close()
        yield from lines.rest()

    def is_running(self, docker_name: str) -> bool:
        """Blocking: whether the container exists and runs."""
        try:
            state = self.api.inspect_container(docker_name)["State"]
        except docker.errors.NotFound:
            return False
        return bool(state.get("Running"))


class _LineAssembler:
    """Docker log frames ("<RFC 3339 ns timestamp> <text>") to whole lines: a frame without a
    final newline is a part of a longer line, continued by the next frames."""

    def __init__(self) -> None:
        self.pending = b""
        self.pending_ts = 0

    def frame(self, frame: bytes) -> Iterator[tuple[int, bytes]]:
        for part in _lines(frame):
            stamp, _, text = part.partition(b" ")
            if not self.pending:
                self.pending_ts = _timestamp_ns(stamp)
            if text.endswith(b"\n"):
                yield self.pending_ts, self.pending + text[:-1]
                self.pending = b""
            else:
                self.pending += text

    def rest(self) -> Iterator[tuple[int, bytes]]:
        if self.pending:
            yield self.pending_ts, self.pending
            self.pending = b""


def _socket_log_lines(
    socket_path: str, version: str, docker_name: str, since_s: int
) -> Iterator[tuple[int, bytes]]:
    """The logs API on Docker's unix socket, read in blocks: HTTP/1.1 chunked transfer, then
    Docker's stream framing (8-byte headers; none for a TTY's raw stream), then lines."""
    query = urllib.parse.urlencode(
        {"stdout": 1, "stderr": 1, "follow": 1, "timestamps": 1, "since": max(since_s, 0)}
    )
    path = f"/v{version}/containers/{urllib.parse.quote(docker_name)}/logs?{query}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(LOG_IDLE_TIMEOUT)
    lines = _LineAssembler()
    try:
        sock.connect(socket_path)
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: docker\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            block = sock.recv(65536)
            if not block:
                return
            head += block
        head, _, body = head.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        if " 200 " not in f"{status_line} ":
            return
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)
        }
        chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        framed = "multiplexed" in headers.get("content-type", "") or "raw-stream" not in (
            headers.get("content-type", "")
        )
        raw = bytearray(body)
        data = bytearray()
        while True:
            if chunked:
                while True:  # move whole chunks from `raw` to `data`
                    end = raw.find(b"\r\n")
                    if end < 0:
                        break
                    size = int(bytes(raw[:end]).split(b";")[0] or b"0", 16)
                    if size == 0:
                        raise _EndOfStream
                    if len(raw) < end + 2 + size + 2:
                        break
                    data += raw[end + 2 : end + 2 + size]
                    del raw[: end + 2 + size + 2]
            else:
                data += raw
                raw.clear()
            if framed:
                offset = 0
                while len(data) - offset >= 8:
                    size = int.from_bytes(data[offset + 4 : offset + 8], "big")
                    if len(data) - offset - 8 < size:
                        break
                    yield from lines.frame(bytes(data[offset + 8 : offset + 8 + size]))
                    offset += 8 + size
                del data[:offset]
            else:
                cut = data.rfind(b"\n") + 1
                if cut:
                    yield from lines.frame(bytes(data[:cut]))
                    del data[:cut]
            block = sock.recv(LOG_BLOCK)
            if not block:
                break
            raw += block
            if len(block) < LOG_BLOCK:
                # caught up: let lines gather instead of waking for each one
                time.sleep(LOG_GATHER_SECONDS)
    except _EndOfStream:
        pass
    except OSError:
        pass  # idle timeout or engine gone: the caller checks the container and resumes
    finally:
        sock.close()
    yield from lines.rest()


class _EndOfStream(Exception):
    pass


def _lines(frame: bytes) -> list[bytes]:
    """A frame split after each newline (a frame is one line, but a TTY's raw stream is not)."""
    if frame.count(b"\n") <= 1:
        return [frame]
    parts = frame.split(b"\n")
    out = [p + b"\n" for p in parts[:-1]]
    return [*out, parts[-1]] if parts[-1] else out


_PROC_LIMITS = {
    "Max cpu time": "cpu",
    "Max file size": "fsize",
    "Max data size": "data",
    "Max stack size": "stack",
    "Max core file size": "core",
    "Max resident set": "rss",
    "Max processes": "nproc",
    "Max open files": "nofile",
    "Max locked memory": "memlock",
    "Max file locks": "locks",
    "Max pending signals": "sigpending",
    "Max msgqueue size": "msgqueue",
    "Max nice priority": "nice",
    "Max realtime priority": "rtprio",
    "Max realtime timeout": "rttime",
}


def parse_proc_limits(text: str) -> dict[str, int]:
    """Hard limits by Docker ulimit name from /proc/<pid>/limits (unlimited ones left out)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        for label, name in _PROC_LIMITS.items():
            if line.startswith(label):
                fields = line[len(label) :].split()
                if len(fields) >= 2 and fields[1].isdigit():
                    out[name] = int(fields[1])
    return out


_SECONDS_CACHE: dict[bytes, int] = {}


def _timestamp_ns(stamp: bytes) -> int:
    """Docker's RFC 3339 timestamp with nanoseconds (`2024-05-01T10:00:00.123456789Z`) in
    epoch ns; the seconds part is cached, since consecutive lines share it."""
    head, _, frac = stamp.rstrip(b"Z").partition(b".")
    seconds = _SECONDS_CACHE.get(head)
    if seconds is None:
        try:
            parsed = dt.datetime.fromisoformat(head.decode()).replace(tzinfo=dt.UTC)
        except ValueError:
            return time.time_ns()
        seconds = int(parsed.timestamp())
        if len(_SECONDS_CACHE) > 4096:
            _SECONDS_CACHE.clear()
        _SECONDS_CACHE[head] = seconds
    return seconds * _NS + int((frac or b"0")[:9].ljust(9, b"0"))


def _tar(path: str, data: bytes) -> bytes:
    """A tar holding `data` at `path` (relative to /), for put_archive at the root."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo(path.lstrip("/"))
        info.size = len(data)
        info.mode = 0o644
        info.mtime = int(time.time())
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _observation(row: dict[str, Any]) -> ContainerObservation:
    labels = row.get("Labels") or {}
    status = row.get("Status") or ""
    exited = _EXITED.search(status)
    health = _HEALTH.search(status)
    networks = (row.get("NetworkSettings") or {}).get("Networks") or {}
    ip = mac = None
    for net in networks.values():
        if net.get("IPAddress"):
            ip, mac = net["IPAddress"], net.get("MacAddress")
            break
    return ContainerObservation(
        docker_name=(row.get("Names") or ["/"])[0].lstrip("/"),
        runtime_id=row["Id"],
        task_id=labels.get(LABEL_TASK, ""),
        cluster=labels.get(LABEL_CLUSTER, ""),
        container_name=labels.get(LABEL_CONTAINER, ""),
        state=row.get("State") or "unknown",
        exit_code=int(exited.group(1)) if exited else None,
        health=(health.group(1).replace("health: ", "") if health else None),
        ip=ip,
        mac=mac,
    )
