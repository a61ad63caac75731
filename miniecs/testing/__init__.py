"""miniecs for your own tests: ``with MiniEcs() as m:`` and a pytest plugin.

``MiniEcs`` starts an embedded miniecs (the same engine as ``miniecs server``) on a free port
with a temporary state dir, or reuses a running one named by ``$MINIECS_ENDPOINT``, and hands
out boto3 clients bound to it. On exit it removes every container and network it caused: all
Docker objects carry ``miniecs.instance=<id>`` (task containers, their pause containers and
cluster networks also carry ``miniecs.cluster=<name>``; load balancer containers belong to no
cluster and are removed by instance). The pytest plugin (:mod:`miniecs.testing.plugin`, a
``pytest11`` entry point) wraps it in a session fixture called ``miniecs``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

ENDPOINT_ENV = "MINIECS_ENDPOINT"
"""When set, MiniEcs reuses the miniecs at this URL instead of starting one."""
INSTANCE_LABEL = "miniecs.instance"


class MiniEcsError(Exception):
    """miniecs could not be started or reached; the message says why."""


class MiniEcs:
    """An embedded miniecs, started by :meth:`start` (or ``with``) and removed by :meth:`stop`.

    ``clock_speed`` makes control-plane time run faster (ECS's periods and health checks
    compress together); ``build_images`` builds the task images first (offline, seconds when
    they are current). With ``endpoint_url`` (default ``$MINIECS_ENDPOINT``; ``""`` never
    reuses) nothing is started: the clusters made through :meth:`cluster` are emptied
    through the API on stop.
    """

    def __init__(
        self,
        *,
        clock_speed: float = 1.0,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
        state_dir: Path | None = None,
        build_images: bool = True,
        strict_responses: bool = False,
    ) -> None:
        self.clock_speed = clock_speed
        self.region = region
        self._reuse = (
            os.environ.get(ENDPOINT_ENV) if endpoint_url is None else endpoint_url
        ) or None
        self._state_dir = state_dir
        self._own_state_dir: Path | None = None
        self.build_images = build_images
        self.strict_responses = strict_responses
        self.endpoint_url = self._reuse or ""
        self.instance: str | None = None
        """The instance id every Docker object of this miniecs is labelled with (None when
        reusing a server started elsewhere)."""
        self._thread: Any = None
        self._clusters: list[str] = []

    # --- life cycle ------------------------------------------------------------------------

    def __enter__(self) -> MiniEcs:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def state_dir(self) -> Path:
        path = self._state_dir or self._own_state_dir
        if path is None:
            raise MiniEcsError("no state dir: this MiniEcs reuses a server started elsewhere")
        return path

    @property
    def endpoint(self) -> str:
        """Same as :attr:`endpoint_url`."""
        return self.endpoint_url

    def start(self) -> MiniEcs:
        """Start (or find) miniecs; return self. Raises MiniEcsError with the cause."""
        if self._reuse is not None:
            self._check_reachable()
            atexit.register(self.stop)
            return self
        from miniecs.config import ServerSettings, Settings
        from miniecs.engine import Engine, EngineThread

        if self.build_images:
            self._build_images()
        if self._state_dir is None:
            self._own_state_dir = Path(tempfile.mkdtemp(prefix="miniecs-test-"))
        settings = Settings(
            state_dir=self.state_dir,
            server=ServerSettings(port=0, region=self.region),
            clock_speed=self.clock_speed,
        )
        engine = Engine(settings, strict_responses=self.strict_responses)
        self.instance = engine.instance
        self._thread = EngineThread(engine)
        atexit.register(self.stop)  # also when the caller never reaches stop()
        try:
            self.endpoint_url = self._thread.start()
        except RuntimeError as exc:
            self.stop()
            raise MiniEcsError(str(exc)) from None
        return self

    def stop(self) -> None:
        """Stop miniecs and remove what it caused; safe to call twice."""
        atexit.unregister(self.stop)
        if self._reuse is not None:
            self._empty_clusters()
            return
        thread, self._thread = self._thread, None
        try:
            if thread is not None:
                thread.stop()
        finally:
            self.remove_docker_objects()
            if self._own_state_dir is not None:
                shutil.rmtree(self._own_state_dir, ignore_errors=True)
                self._own_state_dir = None

    # --- helpers for tests -----------------------------------------------------------------

    def client(self, service: str = "ecs", **kwargs: Any) -> Any:
        """A boto3 client for ``service`` (ecs, elbv2, cloudwatch, application-autoscaling)
        bound to this miniecs, with dummy credentials."""
        import boto3

        options: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "region_name": self.region,
            "aws_access_key_id": "test",
            "aws_secret_access_key": "test",
            **kwargs,
        }
        return boto3.client(service, **options)

    def cluster(self, name: str = "default") -> str:
        """Create the cluster ``name`` (idempotent, as in ECS) and return its ARN."""
        arn = str(self.client("ecs").create_cluster(clusterName=name)["cluster"]["clusterArn"])
        if name not in self._clusters:
            self._clusters.append(name)
        return arn

    def docker_objects(self) -> list[str]:
        """Names of the containers and networks labelled with this instance (``kind:name``)."""
        if self.instance is None:
            return []
        client = _docker()
        label = f"{INSTANCE_LABEL}={self.instance}"
        containers = client.containers.list(all=True, sparse=True, filters={"label": label})
        networks = client.networks.list(filters={"label": label})
        return [f"container:{c.name}" for c in containers] + [f"network:{n.name}" for n in networks]

    def remove_docker_objects(self) -> None:
        """Remove every container, then network, labelled with this instance (best effort)."""
        if self.instance is None:
            return
        remove_by_label(f"{INSTANCE_LABEL}={self.instance}")

    # --- internals -------------------------------------------------------------------------

    def _build_images(self) -> None:
        from miniecs import images

        try:
            images.build_all(_docker())
        except images.ImageBuildError as exc:
            raise MiniEcsError(f"miniecs images could not be built: {exc}") from None

    def _check_reachable(self) -> None:
        import urllib.request

        url = f"{self.endpoint_url.rstrip('/')}/_miniecs/health"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2):
                    return
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise MiniEcsError(
                        f"no miniecs answers at {self.endpoint_url}: {exc}"
                    ) from None
            time.sleep(0.5)

    def _empty_clusters(self) -> None:
        """Through the API: delete the services, stop the tasks of the clusters we made."""
        ecs = self.client("ecs")
        for name in self._clusters:
            with contextlib.suppress(Exception):
                for arn in ecs.list_services(cluster=name).get("serviceArns", []):
                    ecs.delete_service(cluster=name, service=arn, force=True)
                for arn in ecs.list_tasks(cluster=name).get("taskArns", []):
                    ecs.stop_task(cluster=name, task=arn, reason="MiniEcs.stop")
        self._clusters.clear()


def _docker() -> Any:
    import docker

    try:
        return docker.from_env()
    except Exception as exc:
        raise MiniEcsError(f"no Docker engine answers: {exc}") from None


def remove_by_label(label: str) -> None:
    """Remove every container, then every network, carrying ``label``; errors are ignored."""
    client = _docker()
    for container in client.containers.list(sparse=True, all=True, filters={"label": label}):
        with contextlib.suppress(Exception):
            container.remove(force=True)
    for network in client.networks.list(filters={"label": label}):
        with contextlib.suppress(Exception):
            network.remove()


__all__ = ["ENDPOINT_ENV", "MiniEcs", "MiniEcsError", "remove_by_label"]
