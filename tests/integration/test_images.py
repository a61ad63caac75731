"""Offline image builds (miniecs.images) against the real Docker engine, and the workload image."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from rich.console import Console

from miniecs import images

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker engine: {exc}")
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def test_label(client: Any) -> Iterator[dict[str, str]]:
    """A label for everything a test creates; all of it is removed afterwards, errors ignored."""
    label = {"miniecs.test": uuid.uuid4().hex}
    selector = {"label": f"miniecs.test={label['miniecs.test']}"}
    try:
        yield label
    finally:
        for container in client.containers.list(sparse=True, all=True, filters=selector):
            with contextlib.suppress(docker.errors.DockerException):
                container.remove(force=True)
        for network in client.networks.list(filters=selector):
            with contextlib.suppress(docker.errors.DockerException):
                network.remove()
        for image in client.images.list(all=True, filters=selector):
            with contextlib.suppress(docker.errors.DockerException):
                client.images.remove(image.id, force=True)


def wait_on_condition(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def http_get(host: str, path: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(host, 8080, timeout=2)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_build_all_is_idempotent(client: Any) -> None:
    first = images.build_all(client)
    assert {images.BASE_IMAGE, images.WORKLOAD_IMAGE} <= set(first)
    for tag, image_id in first.items():
        image = client.images.get(tag)
        assert image.id == image_id
        assert image.labels[images.IMAGE_LABEL]
        assert image.labels[images.HASH_LABEL]

    out = io.StringIO()
    started = time.monotonic()
    second = images.build_all(client, Console(file=out, width=200))
    assert time.monotonic() - started < 10
    assert second == first
    assert out.getvalue().count("up to date") == len(first)


def test_workload_container_answers_on_bridge_and_stops_fast(
    client: Any, test_label: dict[str, str]
) -> None:
    images.build_all(client)
    network = client.networks.create(f"miniecs-test-{uuid.uuid4().hex[:8]}", labels=test_label)
    task_arn = "arn:aws:ecs:us-east-1:000000000000:task/default/feedface"
    container = client.containers.run(
        images.WORKLOAD_IMAGE,
        detach=True,
        network=network.name,
        labels=test_label,
        environment={"MINIECS_TASK_ARN": task_arn, "MINIECS_CONTAINER_NAME": "web"},
    )
    container.reload()
    ip = container.attrs["NetworkSettings"]["Networks"][network.name]["IPAddress"]
    assert ip

    def healthy() -> bool:
        try:
            return http_get(ip, "/health") == (200, {"status": "ok"})
        except OSError:
            return False

    wait_on_condition(healthy, 15, f"/health at {ip}:8080")
    status, body = http_get(ip, "/work?ms=5")
    assert status == 200
    assert body["task"] == task_arn
    assert body["taskId"] == "feedface"
    assert body["container"] == "web"
    assert body["ip"] == ip

    started = time.monotonic()
    container.stop(timeout=10)
    assert time.monotonic() - started < 2
    container.reload()
    assert container.attrs["State"]["ExitCode"] == 0
    logs = container.logs().decode()
    assert "listening on 0.0.0.0:8080" in logs


def test_build_image_rebuilds_only_when_content_changes(
    client: Any, test_label: dict[str, str], tmp_path: Path
) -> None:
    images.ensure_base(client)
    label = f"LABEL miniecs.test={test_label['miniecs.test']}"
    (tmp_path / "Dockerfile").write_text(
        f"ARG BASE\nFROM ${{BASE}}\nCOPY data.txt /data.txt\n{label}\n"
    )
    (tmp_path / "data.txt").write_text("one\n")
    (tmp_path / "ignored.txt").write_text("not part of the context\n")
    name = f"test-{test_label['miniecs.test'][:8]}"
    spec = images.ImageSpec(
        name=name, tag=f"miniecs-test/{name}:latest", context=tmp_path, files=("data.txt",)
    )

    first = images.build_image(client, spec)
    assert client.images.get(spec.tag).labels[images.IMAGE_LABEL] == name
    (tmp_path / "ignored.txt").write_text("changed, but not listed\n")
    assert images.build_image(client, spec) == first

    (tmp_path / "data.txt").write_text("two\n")
    second = images.build_image(client, spec)
    assert second != first
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(first)  # the replaced image was cleaned up
    assert images.build_image(client, spec, force=True) != second


def test_build_errors_are_clear(client: Any, test_label: dict[str, str], tmp_path: Path) -> None:
    images.ensure_base(client)
    (tmp_path / "Dockerfile").write_text(
        f"ARG BASE\nFROM ${{BASE}}\nLABEL miniecs.test={test_label['miniecs.test']}\nRUN exit 3\n"
    )
    spec = images.ImageSpec(
        name="broken", tag="miniecs-test/broken:latest", context=tmp_path, files=()
    )
    with pytest.raises(images.ImageBuildError, match="broken: docker build failed"):
        images.build_image(client, spec)

    missing = images.ImageSpec(
        name="missing", tag="miniecs-test/missing:latest", context=tmp_path, files=("nope.txt",)
    )
    with pytest.raises(images.ImageBuildError, match="cannot read build file"):
        images.build_image(client, missing)

    absent_base = images.ImageSpec(
        name="absent",
        tag="miniecs-test/absent:latest",
        context=tmp_path,
        files=(),
        base="miniecs-test/no-such:1",
    )
    with pytest.raises(images.ImageBuildError, match="cannot be pulled"):
        images.build_image(client, absent_base)
