"""What sampling costs: CPU of the sampler and of the engine, and the age of the newest sample,
for 1, 10, 50 and 100 running containers, on the cgroup path and on the stats-API path.

The real `Sampler` runs against a real `DockerRuntime` over a store of synthetic RUNNING tasks
whose containers are tiny idle ones (the base image running `sleep`), publishing into an
in-memory MetricStore, one round a second. CPU comes from /proc/<pid>/stat deltas: this process
(sampler, stream threads, publisher) and the engine (dockerd, containerd and the
containerd-shims, which serve the stats API on Docker 20.10). The idle engine's own CPU is
measured just before each run and subtracted, both as medians of one-second slices, since
other work on the host (which only adds) would move means. Sample age is, after each round, how old
the oldest of the containers' newest readings is (the staleness a reader of `latest()` sees).

Run: `.venv/bin/python benchmarks/sampling_cost.py [--counts 1,10,50,100] [--seconds 10]`.
Everything it starts carries the label `miniecs.bench=sampling` and is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker

from miniecs.clock import SystemClock
from miniecs.config import MetricsSettings
from miniecs.images import BASE_IMAGE
from miniecs.metrics.publish import Publisher
from miniecs.metrics.sampler import Sampler
from miniecs.metrics.store import MetricStore
from miniecs.model import ContainerRecord, Task, TaskStatus
from miniecs.runtime.docker import DockerRuntime
from miniecs.store import Store

LABEL = "miniecs.bench"
VALUE = "sampling"
ENGINE_PROCESSES = ("dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def engine_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() in ENGINE_PROCESSES:
                    pids.append(int(entry.name))
    return pids


def engine_cpu(pids: list[int] | None = None) -> float:
    return sum(cpu_seconds(pid) for pid in (pids if pids is not None else engine_pids()))


def cleanup(client: docker.DockerClient) -> None:
    for c in client.containers.list(all=True, filters={"label": f"{LABEL}={VALUE}"}):
        with contextlib.suppress(Exception):
            c.remove(force=True)


def grow(client: docker.DockerClient, containers: list[Any], count: int) -> None:
    while len(containers) < count:
        containers.append(
            client.containers.run(
                BASE_IMAGE,
                ["sleep", "infinity"],
                detach=True,
                network_mode="none",
                mem_limit="32m",
                nano_cpus=250_000_000,
                labels={LABEL: VALUE},
            )
        )


def fill_store(store: Store, container_ids: list[str]) -> None:
    for cid in container_ids:
        task_id = uuid.uuid4().hex
        store.put_task(
            Task(
                task_id=task_id,
                cluster="bench",
                region="us-east-1",
                task_definition_arn="arn:aws:ecs:us-east-1:000000000000:task-definition/bench:1",
                family="bench",
                cpu="256",
                memory="512",
                created_at=time.time(),
                containers=(
                    ContainerRecord(
                        name="app",
                        container_id=str(uuid.uuid4()),
                        image=BASE_IMAGE,
                        last_status="RUNNING",
                        runtime_id=cid,
                    ),
                ),
                group="service:bench",
                service="bench",
                last_status=TaskStatus.RUNNING,
            )
        )


def ages(sampler: Sampler, container_ids: list[str]) -> float | None:
    """Seconds since the oldest of the containers' newest readings was taken."""
    newest = [h[-1] for cid in container_ids if (h := sampler.raw(cid))]
    if len(newest) < len(container_ids):
        return None
    now_mono, now_wall = time.monotonic_ns(), time.time_ns()
    return max(((now_mono if r.source == "cgroup" else now_wall) - r.read_ns) / 1e9 for r in newest)


async def measure(
    container_ids: list[str], source: str, seconds: float, idle_engine: float
) -> dict[str, Any]:
    runtime = DockerRuntime(f"bench{uuid.uuid4().hex[:6]}", usage_source=source)
    store = Store(":memory:")
    fill_store(store, container_ids)
    sampler = Sampler(
        store,
        runtime,
        SystemClock(),
        MetricsSettings(source=source),
        Publisher(store, MetricStore(None)),
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # warm-up: streams open, two readings each
            await sampler.once()
            if len(sampler.latest()) == len(container_ids):
                break
            await asyncio.sleep(0.2)
        pids = engine_pids()
        measuring = 0.0  # our own CPU spent reading /proc for the engine's figure

        def engine_now() -> float:
            nonlocal measuring
            began = time.thread_time()
            value = engine_cpu(pids)
            measuring += time.thread_time() - began
            return value

        me = cpu_seconds(os.getpid())
        start = time.monotonic()
        seen: list[float] = []
        engine_per_round: list[float] = []
        rounds = 0
        while time.monotonic() - start < seconds:
            began, engine = time.monotonic(), engine_now()
            await sampler.once()
            rounds += 1
            age = ages(sampler, container_ids)
            if age is not None:
                seen.append(age)
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - began)))
            engine_per_round.append((engine_now() - engine) / (time.monotonic() - began))
        span = time.monotonic() - start
        process = (cpu_seconds(os.getpid()) - me - measuring) / span
        engine_share = max(0.0, statistics.median(engine_per_round) - idle_engine)
        return {
            "process": process,
            "engine": engine_share,
            "total": process + engine_share,
            "age_median": statistics.median(seen) if seen else float("nan"),
            "age_max": max(seen) if seen else float("nan"),
            "complete": len(sampler.latest()),
            "rounds": rounds,
        }
    finally:
        runtime.close()
        store.close()


def idle_engine_cpu(seconds: float) -> float:
    """The engine's CPU with nobody sampling: the median of one-second slices, so bursts of
    other work on the host (which only add) move it less than a mean would."""
    slices = []
    pids = engine_pids()
    for _ in range(max(3, int(seconds))):
        began, before = time.monotonic(), engine_cpu(pids)
        time.sleep(1.0)
        slices.append((engine_cpu(pids) - before) / (time.monotonic() - began))
    return statistics.median(slices)


@contextlib.contextmanager
def bench_containers(client: docker.DockerClient) -> Iterator[list[Any]]:
    cleanup(client)
    containers: list[Any] = []
    try:
        yield containers
    finally:
        cleanup(client)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,10,50,100")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    client = docker.from_env()
    rows = []
    with bench_containers(client) as containers:
        for count in counts:
            grow(client, containers, count)
            ids = [c.id for c in containers[:count]]
            time.sleep(3)
            for source in ("cgroup", "stats"):
                idle = idle_engine_cpu(args.seconds / 2)
                result = asyncio.run(measure(ids, source, args.seconds, idle))
                rows.append((count, source, result))
                print(
                    f"{count:>4} {source:<6} process {result['process']:6.1%} "
                    f"engine {result['engine']:6.1%} total {result['total']:6.1%} "
                    f"age median {result['age_median']:.2f}s max {result['age_max']:.2f}s "
                    f"tasks {result['complete']}/{count}",
                    flush=True,
                )
    print()
    print(
        "| running tasks | source | sampler process | engine (dockerd+containerd+shims) "
        "| total (one core = 100 %) | newest sample age, median / max |"
    )
    print("|---:|---|---:|---:|---:|---|")
    for count, source, r in rows:
        print(
            f"| {count} | {source} | {r['process']:.1%} | {r['engine']:.1%} | {r['total']:.1%} "
            f"| {r['age_median']:.2f} s / {r['age_max']:.2f} s |"
        )


if __name__ == "__main__":
    main()
