"""The composition root: builds the store, runtime, clock, loops and the AWS endpoint from
settings, runs them together, and shuts them down in order (stop accepting requests, let
in-flight task actions finish, cancel the loops, close the store). Tasks keep running while
miniecs is down, as ECS tasks do when the control plane is away; the next start adopts them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import uvicorn

from miniecs.aws.app import LOOPBACK_NAMES, create_app
from miniecs.aws.ecs import EcsApi
from miniecs.aws.protocols import JsonService
from miniecs.clock import Clock, SystemClock
from miniecs.config import Settings
from miniecs.runtime.base import Runtime
from miniecs.runtime.docker import DockerRuntime
from miniecs.scheduler.loop import ServiceScheduler
from miniecs.store import Store
from miniecs.tasks.controller import TaskController

log = logging.getLogger(__name__)


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
        self.store = Store(self.settings.state_dir / "miniecs.db")
        instance = self.store.instance_id()
        if self.clock is None:
            anchor = self.store.get_meta("clock")
            self.clock = SystemClock(self.settings.clock_speed, float(anchor) if anchor else None)
        if self.runtime is None:
            self.runtime = DockerRuntime(instance)
        self.instance = instance
        self.controller = TaskController(
            self.store,
            self.runtime,
            self.clock,
            self.settings.tasks,
            instance,
            host_cpus=os.cpu_count() or 1,
        )
        self.scheduler = ServiceScheduler(
            self.store, self.clock, engine_available=lambda: self.controller.engine_available
        )
        self.ecs = EcsApi(self.store, self.clock, self.settings, self._cluster_deleted)
        self.services = [JsonService("ecs", self.ecs, strict=self.strict_responses)]
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _cluster_deleted(self, cluster: str) -> None:
        assert self.runtime is not None
        with contextlib.suppress(Exception):
            await self.runtime.remove_network(cluster)

    async def _persist_clock(self) -> None:
        assert self.clock is not None
        while True:
            self.store.set_meta("clock", repr(self.clock.now()))
            await asyncio.sleep(1.0)

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
                create_app(self.services, self._allowed_hosts()),
                host=self.settings.server.host,
                port=self.settings.server.port,
                log_level="warning",
                access_log=False,
                lifespan="off",
            )
        )
        serving = asyncio.create_task(server.serve(), name="aws-endpoint")
        loops = [
            asyncio.create_task(self.controller.run(), name="task-controller"),
            asyncio.create_task(self.scheduler.run(), name="service-scheduler"),
            asyncio.create_task(self._persist_clock(), name="clock"),
        ]
        while not server.started and not serving.done():  # noqa: ASYNC110 (uvicorn has no event)
            await asyncio.sleep(0.01)
        if serving.done():
            await serving
            raise SystemExit(f"could not listen on port {self.settings.server.port}")
        self.port = server.servers[0].sockets[0].getsockname()[1]
        self.ready.set()
        log.info("miniecs listening on http://%s:%s", self.settings.server.host, self.port)
        await self._stop.wait()
        log.info("shutting down: closing the endpoint")
        server.should_exit = True
        await serving
        log.info("shutting down: finishing in-flight task actions")
        await self.controller.drain()
        for loop_task in loops:
            loop_task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        self.store.set_meta("clock", repr(self.clock.now() if self.clock else 0))
        if isinstance(self.runtime, DockerRuntime):
            self.runtime.close()
        self.store.close()
        log.info("stopped")


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
