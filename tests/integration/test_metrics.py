"""Sampling real containers: one loaded task of three reads near its limit while the others
idle, a task pinned at its CPU limit reads 100 % against its own cgroup counter, and the cgroup
fast path agrees with the Docker stats API."""

from __future__ import annotations

import contextlib
import copy
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from miniecs.config import MetricsSettings, ServerSettings, Settings
from miniecs.demo import NETWORK_CONFIGURATION as NETWORK
from miniecs.demo import TASK_DEFINITION
from miniecs.engine import Engine, EngineThread
from miniecs.images import BASE_IMAGE
from miniecs.metrics import readings as usage_math
from miniecs.metrics.publish import AWS_ECS, CONTAINER_INSIGHTS
from miniecs.metrics.store import MetricId, dimensions
from miniecs.runtime.usage import CgroupReader, StatsStreams, UsageReader
from tests.conftest import boto_client, docker_client, remove_by_label, wait_for

pytestmark = pytest.mark.integration
LOAD = Path(__file__).resolve().parents[2] / "miniecs" / "_workload" / "load.py"
FAST = {"Delay": 1, "MaxAttempts": 90}
LOAD_ARGS = ["--ms", "20", "--connections", "2", "--duration", "10"]


@dataclass
class Running:
    engine: Engine
    ecs: Any


@contextlib.contextmanager
def _engine(tmp_path: Path, clock_speed: float, source: str) -> Iterator[Running]:
    settings = Settings(
        state_dir=tmp_path / "state",
        server=ServerSettings(port=0),
        clock_speed=clock_speed,
        metrics=MetricsSettings(source=source),
    )
    engine = Engine(settings, strict_responses=True)
    thread = EngineThread(engine)
    try:
        endpoint = thread.start()
        yield Running(engine, boto_client("ecs", endpoint))
    finally:
        thread.stop()
        remove_by_label(f"miniecs.instance={engine.instance}")


@pytest.fixture
def fast_engine(tmp_path: Path, images: None) -> Iterator[Running]:
    """Control-plane time ten times faster: a 20 s publish period takes 2 s."""
    with _engine(tmp_path, 10.0, "auto") as running:
        yield running


def task_ips(ecs: Any, cluster: str) -> dict[str, str]:
    arns = ecs.list_tasks(cluster=cluster)["taskArns"]
    out = {}
    for t in ecs.describe_tasks(cluster=cluster, tasks=arns)["tasks"]:
        if t["lastStatus"] == "RUNNING":
            details = {d["name"]: d["value"] for d in t["attachments"][0]["details"]}
            out[t["taskArn"].rsplit("/", 1)[-1]] = details["privateIPv4Address"]
    return out


def test_loaded_task_near_its_limit_beside_idle_ones(fast_engine: Running) -> None:
    ecs, engine = fast_engine.ecs, fast_engine.engine
    ecs.create_cluster(
        clusterName="m", settings=[{"name": "containerInsights", "value": "enhanced"}]
    )
    ecs.register_task_definition(**TASK_DEFINITION)
    ecs.create_service(
        networkConfiguration=NETWORK,
        cluster="m",
        serviceName="web",
        taskDefinition="web",
        desiredCount=3,
    )
    ecs.get_waiter("services_stable").wait(cluster="m", services=["web"], WaiterConfig=FAST)
    ips = wait_for(lambda: (found := task_ips(ecs, "m")) and len(found) == 3 and found)
    hot, hot_ip = sorted(ips.items())[0]
    load = subprocess.Popen(
        [sys.executable, str(LOAD), f"http://{hot_ip}:8080/work", *LOAD_ARGS],
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(4)  # the load ramps up and the sampler has two readings under it
        loaded_at = engine.clock.now() if engine.clock else 0.0
        latest = {u.task_id: u for u in engine.sampler.latest()}
        assert set(latest) == set(ips)
        assert latest[hot].cpu_percent > 80, latest[hot]
        for task_id in set(ips) - {hot}:
            assert latest[task_id].cpu_percent < 10, latest[task_id]
        time.sleep(4.5)  # two publish periods of 20 control-plane seconds under load
    finally:
        load.terminate()
        load.wait(10)
    service = dimensions({"ClusterName": "m", "ServiceName": "web"})
    points = engine.metrics.datapoints(
        MetricId(AWS_ECS, "CPUUtilization", service), loaded_at, loaded_at + 80, 20
    )
    assert points, engine.metrics.metrics(namespace=AWS_ECS)
    busy = max(points, key=lambda p: p.stats.maximum)
    assert busy.stats.sample_count == 3
    assert busy.stats.maximum > 80
    assert busy.stats.minimum < 10
    assert 25 < busy.stats.average < 45  # one task of three near 100 %: the average rises modestly
    hot_dims = dimensions({"ClusterName": "m", "ServiceName": "web", "TaskId": hot})
    per_task = engine.metrics.datapoints(
        MetricId(CONTAINER_INSIGHTS, "TaskCpuUtilization", hot_dims), loaded_at, loaded_at + 80, 20
    )
    assert max(p.stats.maximum for p in per_task) > 80


PINNED: dict[str, Any] = {
    **copy.deepcopy(TASK_DEFINITION),
    "family": "pinned",
    "containerDefinitions": [
        {"name": "app", "image": BASE_IMAGE, "command": ["sh", "-c", "while :; do :; done"]}
    ],
}
"""A 0.25 vCPU task whose only process spins: pinned at its limit, well under the host's cores."""


def now_ns(source: str) -> int:
    """The clock a source stamps its readings with (the stats API: the engine's wall time)."""
    return time.monotonic_ns() if source == "cgroup" else time.time_ns()


@pytest.mark.parametrize("source", ["auto", "stats"])
def test_task_pinned_at_its_limit_reads_100_percent(
    tmp_path: Path, images: None, source: str
) -> None:
    with _engine(tmp_path, 1.0, source) as running:
        ecs, engine = running.ecs, running.engine
        ecs.create_cluster(clusterName="pin")
        ecs.register_task_definition(**PINNED)
        arn = ecs.run_task(networkConfiguration=NETWORK, cluster="pin", taskDefinition="pinned")[
            "tasks"
        ][0]["taskArn"]
        ecs.get_waiter("tasks_running").wait(cluster="pin", tasks=[arn], WaiterConfig=FAST)
        task_id = arn.rsplit("/", 1)[-1]

        def reading() -> float | None:
            usage = {u.task_id: u for u in engine.sampler.latest()}.get(task_id)
            return usage.cpu_percent if usage else None

        wait_for(reading, timeout=15)
        task = engine.store.get_task(task_id)
        assert task is not None and task.containers[0].runtime_id
        runtime_id = task.containers[0].runtime_id
        used = "cgroup" if source == "auto" else "stats"
        cgroup = CgroupReader()
        paths = cgroup.locate(runtime_id)
        assert paths is not None, "the test needs the container's cgroup (local engine)"
        before, window_start = cgroup.read(paths), now_ns(used)
        samples = []
        for _ in range(5):
            time.sleep(1.0)
            samples.append(reading())
        after = cgroup.read(paths)
        assert before is not None and after is not None
        # The independent reading: the cgroup's CPU counter, read by the test itself.
        by_counter = 100 * (after.cpu_ns - before.cpu_ns) / (after.read_ns - before.read_ns) / 0.25
        assert by_counter == pytest.approx(100.0, abs=5.0)
        assert None not in samples
        average = sum(s for s in samples if s is not None) / len(samples)
        assert average == pytest.approx(100.0, abs=5.0), samples
        raw = engine.sampler.raw(runtime_id)
        assert {r.source for r in raw} == {used}
        window = [r for r in raw if r.read_ns >= window_start]
        over_window = usage_math.cpu_units(window[0], window[-1])
        assert over_window is not None
        assert 100 * over_window / 256 == pytest.approx(by_counter, abs=5.0)


def test_cgroup_fast_path_agrees_with_the_stats_api(images: None) -> None:
    client = docker_client()
    label = "miniecs.test=usage-agree"
    container = client.containers.run(
        BASE_IMAGE,
        ["sh", "-c", "while :; do :; done"],
        detach=True,
        nano_cpus=300_000_000,
        mem_limit="64m",
        labels={"miniecs.test": "usage-agree"},
    )
    try:
        cgroup = UsageReader(client.api, "cgroup")
        stats = UsageReader(client.api, "stats")
        stats.read([container.id])
        first_stats = wait_for(lambda: stats.read([container.id]).get(container.id), timeout=10)
        first_cgroup = cgroup.read([container.id])[container.id]
        time.sleep(4)
        last_cgroup = cgroup.read([container.id])[container.id]
        last_stats = wait_for(
            lambda: (
                (s := stats.read([container.id]).get(container.id))
                and s.read_ns > first_stats.read_ns
                and s
            ),
            timeout=10,
        )
        by_cgroup = usage_math.cpu_units(first_cgroup, last_cgroup)
        by_stats = usage_math.cpu_units(first_stats, last_stats)
        assert by_cgroup == pytest.approx(0.3 * 1024, rel=0.05)
        assert by_stats == pytest.approx(by_cgroup, rel=0.05)
        assert abs(last_stats.memory_bytes - last_cgroup.memory_bytes) < 4 * 1024 * 1024
        assert UsageReader(client.api, "auto").cross_check(container.id)
        stats.close()
    finally:
        remove_by_label(label)


def test_stats_streams_end_with_their_container_and_on_close(images: None) -> None:
    client = docker_client()
    label = "miniecs.test=usage-streams"
    containers = [
        client.containers.run(
            BASE_IMAGE, ["sleep", "300"], detach=True, labels={"miniecs.test": "usage-streams"}
        )
        for _ in range(2)
    ]
    streams = StatsStreams(client.api)
    try:
        ids = [c.id for c in containers]
        streams.follow(ids)
        wait_for(lambda: len(streams.latest(ids)) == 2, timeout=10)
        stopped, running = (
            next(t for t in threading.enumerate() if t.name == f"stats-{cid[:12]}") for cid in ids
        )
        assert stopped.daemon and running.daemon
        containers[0].kill()
        stopped.join(5)  # the engine's first empty document for the stopped container
        assert not stopped.is_alive() and running.is_alive()
        streams.close()
        running.join(5)  # closed here: the thread ends at its next read
        assert not running.is_alive()
    finally:
        streams.close()
        remove_by_label(label)
