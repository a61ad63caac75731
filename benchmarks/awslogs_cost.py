"""What the awslogs driver costs and how fast lines arrive: N containers each printing R lines a
second (every line carries the time the container wrote it), followed by the real `LogShipper`
over a real `DockerRuntime` into a `LogStore` on disk.

Reported for each N: the CPU of this process (reader threads, writer thread, SQLite) as a share
of one core, the engine's extra CPU (dockerd, containerd and shims serving the logs API) over the
same containers running unfollowed, measured just before in the same run (the reference), and
the delivery latency, from the container's write to the line being readable in the store
(median and p99; a poller reads new events every 20 ms, which bounds the resolution).

Run: `.venv/bin/python benchmarks/awslogs_cost.py [--counts 1,10,100] [--rate 10] [--seconds 10]`.
Everything it starts carries the label `miniecs.bench=awslogs` and is removed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import docker

from miniecs.images import BASE_IMAGE
from miniecs.logs.awslogs import AwslogsTarget, LogShipper
from miniecs.logs.store import LogStore, ReaderPosition
from miniecs.runtime.docker import DockerRuntime

LABEL = "miniecs.bench"
VALUE = "awslogs"
ENGINE_PROCESSES = ("dockerd", "containerd", "containerd-shim", "containerd-shim-runc-v2")
TICKS = os.sysconf("SC_CLK_TCK")
PRINTER = (
    "import sys, time\n"
    "rate = float(sys.argv[1])\n"
    "i = 0\n"
    "start = time.time()\n"
    "while True:\n"
    "    i += 1\n"
    "    ahead = start + i / rate - time.time()\n"
    "    if ahead > 0: time.sleep(ahead)\n"
    "    print(f'{time.time():.6f} line {i}', flush=True)\n"
)


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


def engine_cpu() -> float:
    return sum(cpu_seconds(p) for p in engine_pids())


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


def start_containers(client: Any, count: int, rate: float, run: str) -> list[str]:
    names = []
    for i in range(count):
        name = f"miniecs-bench-awslogs-{run}-{i}"
        client.containers.run(
            BASE_IMAGE,
            ["python3", "-c", PRINTER, str(rate)],
            name=name,
            labels={LABEL: VALUE},
            detach=True,
            network_mode="none",
            mem_limit="64m",
        )
        names.append(name)
    return names


def measure(count: int, rate: float, seconds: float) -> dict[str, float]:
    client = docker.from_env()
    run = uuid.uuid4().hex[:6]
    names = start_containers(client, count, rate, run)
    runtime = DockerRuntime(f"bench{run}")
    with tempfile.TemporaryDirectory() as tmp:
        store = LogStore(Path(tmp) / "logs.db")
        try:
            time.sleep(2)
            # reference: the same containers, not followed
            e0, t0 = engine_cpu(), time.monotonic()
            time.sleep(seconds)
            reference_engine = (engine_cpu() - e0) / (time.monotonic() - t0)
            store.ensure_group("/bench", 0)
            shipper = LogShipper(store, runtime, lambda: int(time.time() * 1000))
            shipper.start()
            ids = {}
            for name in names:
                cid = client.api.inspect_container(name)["Id"]
                ids[name] = cid
                store.ensure_stream("/bench", name, 0)
                # start from now, as a reader resumed after a restart does: the lines the
                # container wrote while the others were being created are not measured
                store.append("/bench", name, [], 0, (cid, ReaderPosition(time.time_ns(), 0)))
                shipper.follow(cid, name, AwslogsTarget("/bench", name, False))
            latencies: list[float] = []
            stop = threading.Event()

            poller_cpu = [0.0]

            def poll() -> None:
                # a reader of its own on the file, in insertion order (the sequence number):
                # a line stored late is still seen; its CPU is measured and not counted
                db = sqlite3.connect(Path(tmp) / "logs.db")
                last = db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()[0]
                c0 = time.thread_time()
                while not stop.is_set():
                    rows = db.execute(
                        "SELECT seq, message FROM events WHERE seq > ? ORDER BY seq", (last,)
                    ).fetchall()
                    now = time.time()
                    for seq, message in rows:
                        last = seq
                        latencies.append(now - float(message.split()[0]))
                    time.sleep(0.02)
                poller_cpu[0] = time.thread_time() - c0
                db.close()

            time.sleep(2)  # the readers catch up with what was written before
            poller = threading.Thread(target=poll, daemon=True)
            e0, c0, t0 = engine_cpu(), own_cpu(), time.monotonic()
            poller.start()
            time.sleep(seconds)
            elapsed = time.monotonic() - t0
            engine = (engine_cpu() - e0) / elapsed
            stop.set()
            poller.join()
            # the poller's own CPU is small next to the readers', but is not the driver's:
            own = (own_cpu() - c0 - poller_cpu[0]) / elapsed
            shipper.stop()
            lat = sorted(latencies)
            return {
                "containers": count,
                "lines_per_s": len(lat) / elapsed,
                "process_core_share": own,
                "engine_core_share": engine,
                "engine_reference_core_share": reference_engine,
                "latency_median_ms": 1000 * statistics.median(lat) if lat else float("nan"),
                "latency_p99_ms": 1000 * lat[int(0.99 * (len(lat) - 1))] if lat else float("nan"),
            }
        finally:
            for c in client.containers.list(all=True, filters={"label": f"{LABEL}={VALUE}"}):
                with contextlib.suppress(Exception):
                    c.remove(force=True)
            store.close()
            runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--counts", default="1,10,100")
    parser.add_argument("--rate", type=float, default=10.0, help="lines/s per container")
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    print(
        f"{'containers':>10} {'lines/s':>8} {'miniecs core':>12} {'engine core':>11} "
        f"{'engine ref':>10} {'p50 ms':>7} {'p99 ms':>7}"
    )
    for count in (int(c) for c in args.counts.split(",")):
        r = measure(count, args.rate, min(args.seconds, 60))
        print(
            f"{r['containers']:>10} {r['lines_per_s']:>8.0f} {r['process_core_share']:>12.3f} "
            f"{r['engine_core_share']:>11.3f} {r['engine_reference_core_share']:>10.3f} "
            f"{r['latency_median_ms']:>7.1f} {r['latency_p99_ms']:>7.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
