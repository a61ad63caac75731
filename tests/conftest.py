"""Shared fixtures: a real miniecs (engine thread or subprocess) on a private state dir, boto3
clients pointed at it, botocore's validator on every response, and cleanup by label."""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

VALIDATED: set[str] = set()
"""Operation names whose responses passed botocore's validator in this run."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1) -> Any:
    """Poll until `condition()` is truthy; return its value or fail with the last one."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout} s (last value {value!r})")


@functools.cache
def docker_client() -> Any:
    import docker

    return docker.from_env()


def remove_by_label(label: str) -> None:
    """Remove every container, network and volume carrying `label`; errors are ignored."""
    client = docker_client()
    for c in client.containers.list(sparse=True, all=True, filters={"label": label}):
        with contextlib.suppress(Exception):
            c.remove(force=True)
    for n in client.networks.list(filters={"label": label}):
        with contextlib.suppress(Exception):
            n.remove()
    for v in client.volumes.list(filters={"label": label}):
        with contextlib.suppress(Exception):
            v.remove(force=True)


def _validate_response(http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
    from botocore.validate import ParamValidator

    if model.output_shape is None or http_response.status_code != 200:
        return
    body = {k: v for k, v in parsed.items() if k != "ResponseMetadata"}
    report = ParamValidator().validate(body, model.output_shape)
    assert not report.has_errors(), report.generate_report()
    VALIDATED.add(f"{model.service_model.service_name}.{model.name}")


def boto_client(service: str, endpoint: str) -> Any:
    import boto3

    client = boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    client.meta.events.register("after-call", _validate_response)
    return client


@dataclass
class Miniecs:
    endpoint: str
    state_dir: Path
    instance: str

    def client(self, service: str = "ecs") -> Any:
        return boto_client(service, self.endpoint)


@pytest.fixture(scope="session")
def images() -> None:
    """Build (or find up to date) the images the integration tests run."""
    from miniecs import images as builder

    builder.build_all(docker_client())


def _engine(tmp_path: Path, clock_speed: float) -> Iterator[Miniecs]:
    from miniecs.config import ServerSettings, Settings
    from miniecs.engine import Engine, EngineThread

    settings = Settings(
        state_dir=tmp_path / "state", server=ServerSettings(port=0), clock_speed=clock_speed
    )
    engine = Engine(settings, strict_responses=True)
    thread = EngineThread(engine)
    label = f"miniecs.instance={engine.instance}"
    try:
        endpoint = thread.start()
        yield Miniecs(endpoint, settings.state_dir, engine.instance)
    finally:
        thread.stop()
        remove_by_label(label)


@pytest.fixture
def miniecs(tmp_path: Path, images: None) -> Iterator[Miniecs]:
    """An engine on a private state dir in this process, with strict response shapes."""
    yield from _engine(tmp_path, 1.0)


@pytest.fixture
def fast_miniecs(tmp_path: Path, images: None) -> Iterator[Miniecs]:
    """The same, with control-plane time ten times faster (ECS's 40 s rule takes 4 s)."""
    yield from _engine(tmp_path, 10.0)


class ServerProcess:
    """`miniecs server` as a user runs it, in a subprocess that tests may SIGKILL."""

    def __init__(self, state_dir: Path, port: int, instance: str, *extra: str) -> None:
        self.state_dir, self.port, self.instance, self.extra = state_dir, port, instance, extra
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: Any = None

    def _close_log(self) -> None:
        if self.log is not None:
            self.log.close()
            self.log = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._close_log()
        self.log = open(self.state_dir.parent / "server.log", "ab")  # noqa: SIM115
        log = self.log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "miniecs",
                "server",
                "--port",
                str(self.port),
                "--state-dir",
                str(self.state_dir),
                *self.extra,
            ],
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        import httpx

        def up() -> bool:
            try:
                return httpx.get(f"{self.endpoint}/_miniecs/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=30)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close_log()

    def terminate(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        code = self.proc.wait(30)
        self._close_log()
        return code


@pytest.fixture
def server_process(tmp_path: Path, images: None) -> Iterator[ServerProcess]:
    from miniecs.store import Store

    state_dir = tmp_path / "state"
    store = Store(state_dir / "miniecs.db")
    instance = store.instance_id()
    store.close()
    server = ServerProcess(state_dir, free_port(), instance)
    try:
        yield server
    finally:
        server.kill()
        remove_by_label(f"miniecs.instance={instance}")
